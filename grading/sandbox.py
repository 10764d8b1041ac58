"""One throwaway sandbox per submission: bubblewrap namespaces plus memory, process and time limits.

Inside, the student's notebook sees a read-only system, the course's Python environment and
imgrec_lib read-only, an empty private /tmp (size-limited; gone when the sandbox ends) and no
network. It cannot see the course folder (solutions/, the gradebook, submitted/, feedback/), the
instructor's home or another submission. When the grader runs as root the sandbox also runs as
the unprivileged user `nobody`, in its own memory and pids cgroup (v1 or v2); otherwise the
limits are rlimits. The sandbox is a new PID namespace: when it ends, or is killed at its wall
time, every process it started ends with it (daemons, double forks and setsid included).

What comes out is only what the program inside writes to stdout, read up to a byte limit.
"""

from __future__ import annotations

import itertools
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

NOBODY = 65534
CGROUP = Path("/sys/fs/cgroup")
_names = itertools.count()


@dataclass
class Limits:
    memory_bytes: int = 4 * 2**30      # the kernel, its children and the private /tmp together
    pids: int = 256                    # processes and threads
    wall_seconds: float = 900          # the whole notebook
    output_bytes: int = 64 * 2**20     # what the sandbox may send back
    tmp_bytes: int = 1 * 2**30         # its private /tmp
    threads: int = 1                   # BLAS/OpenMP threads: workers share the cores


@dataclass
class Result:
    stdout: bytes
    stderr_tail: str
    seconds: float
    ended: str = "exited"              # exited | wall time | output limit
    returncode: int | None = None
    notes: list[str] = field(default_factory=list)


class SandboxUnavailable(RuntimeError):
    pass


def _system_binds() -> list[str]:
    """Read-only binds of the system folders, keeping merged-/usr symlinks as symlinks."""
    args = []
    for top in ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"]:
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.exists():
            args += ["--ro-bind", top, top]
    return args


def python_binds() -> list[Path]:
    """The folders the course's Python needs: the venv, the interpreter it was made from, and the
    folder of the editable imgrec_lib (not the rest of the course)."""
    import imgrec_lib

    folders = {Path(sys.prefix), Path(sys.base_prefix), Path(imgrec_lib.__file__).resolve().parent}
    real = Path(os.path.realpath(sys.executable)).parent.parent
    folders.add(real)
    return sorted(folders)


def _cgroup_dirs(name: str) -> list[Path]:
    """Make the cgroups for one sandbox (v1: memory and pids; v2: one group); [] if not possible."""
    if os.geteuid() != 0:
        return []
    v1 = [CGROUP / "memory", CGROUP / "pids"]
    if all((c / "cgroup.procs").exists() for c in v1):
        return [c / "imgrec-grading" / name for c in v1]
    if (CGROUP / "cgroup.subtree_control").exists():
        return [CGROUP / "imgrec-grading" / name]
    return []


def _set(path: Path, value) -> bool:
    try:
        path.write_text(str(value))
        return True
    except OSError:
        return False


def _make_cgroups(name: str, limits: Limits) -> list[Path]:
    made = []
    for group in _cgroup_dirs(name):
        try:
            group.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if (group / "memory.max").exists() or not (group / "memory.limit_in_bytes").exists():  # v2
            _set(group.parent / "cgroup.subtree_control", "+memory +pids")
            _set(group / "memory.max", limits.memory_bytes)
            _set(group / "memory.swap.max", 0)
            _set(group / "pids.max", limits.pids)
        if (group / "memory.limit_in_bytes").exists():  # v1 memory
            _set(group / "memory.limit_in_bytes", limits.memory_bytes)
            _set(group / "memory.memsw.limit_in_bytes", limits.memory_bytes)
        if (group / "pids.max").exists():
            _set(group / "pids.max", limits.pids)
        made.append(group)
    return made


def _remove_cgroups(groups: list[Path]) -> None:
    for group in groups:
        for _ in range(50):
            try:
                pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
            except OSError:
                pids = []
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def bwrap_args(binds: dict[str, str], env: dict[str, str], limits: Limits, as_root: bool) -> list[str]:
    """The bubblewrap command line; binds maps a host path to its read-only place inside.

    Run by root, bubblewrap makes the mounts with root's rights (so a Python under /root can be
    bound) and the sandbox then becomes `nobody` with no capabilities left (setpriv, with
    no_new_privs); run by anyone else, it uses an unprivileged user namespace."""
    if as_root:
        args = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args = ["bwrap", "--unshare-all"]
    args += ["--die-with-parent", "--new-session", *_system_binds(), "--proc", "/proc", "--dev", "/dev",
             "--size", str(limits.tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp",
             "--size", str(limits.tmp_bytes // 4), "--perms", "1777", "--tmpfs", "/dev/shm"]
    made = {"/"}
    for host, inside in [*((str(f), str(f)) for f in python_binds()), *binds.items()]:
        for parent in reversed(Path(inside).parents):  # readable by the sandbox's user (a venv under /tmp too)
            if str(parent) not in made and str(parent) not in ("/tmp", "/proc", "/dev") \
                    and not str(parent).startswith(("/usr", "/etc")):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
        args += ["--ro-bind", host, inside]
    args += ["--perms", "0777", "--dir", "/tmp/work", "--perms", "0777", "--dir", "/tmp/home",
             "--chdir", "/tmp/work", "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args


def sandbox_env(limits: Limits, extra: dict[str, str] | None = None) -> dict[str, str]:
    threads = str(limits.threads)
    env = {
        "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp/home", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": "/opt/imgrec-grading", "IPYTHONDIR": "/tmp/home/.ipython",
        "JUPYTER_RUNTIME_DIR": "/tmp/home/runtime", "JUPYTER_PLATFORM_DIRS": "1",
        "MPLCONFIGDIR": "/tmp/home/matplotlib", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads, "TORCH_NUM_THREADS": threads,
    }
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # see the env notes: old OpenBLAS needs them
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra or {})
    return env


def check() -> None:
    """Raise SandboxUnavailable, saying what to do, unless a sandbox can be started here."""
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable(
            "grading runs every submission in a bubblewrap sandbox, and `bwrap` is not installed: "
            "`make sandbox` installs it (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install "
            "bubblewrap). To grade without a sandbox anyway (student code then runs with your "
            "permissions), pass --unsafe-no-sandbox.")
    result = run(["/bin/true"], b"", {}, {}, Limits(wall_seconds=30, output_bytes=1000))
    if result.returncode != 0:
        raise SandboxUnavailable(
            f"bubblewrap is installed but could not start a sandbox: {result.stderr_tail.strip()[-400:]}\n"
            "It needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or in a "
            "container: --security-opt seccomp=unconfined or a privileged runner). Or pass --unsafe-no-sandbox.")


def _preexec(groups: list[Path], limits: Limits, as_root: bool):
    def setup():
        os.setsid()
        for group in groups:
            (group / "cgroup.procs").write_text(str(os.getpid()))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.tmp_bytes, limits.tmp_bytes))
        if not groups:  # no cgroup: each process gets the memory limit as address space
            cap = limits.memory_bytes + 4 * 2**30  # torch alone reserves ~3.3 GB of addresses
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        if as_root:  # counts the processes of `nobody`, whom the sandbox becomes
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids * 4, limits.pids * 4))
    return setup


def _argv(command: list[str], binds: dict[str, str], env: dict[str, str], limits: Limits,
          sandboxed: bool) -> tuple[list[str], dict | None, bool]:
    """The command line that starts `command` in a sandbox (or, unsandboxed, as it is)."""
    if not sandboxed:  # --unsafe-no-sandbox: the same program, with the grader's permissions
        return command, {**os.environ, **env}, False
    as_root = os.geteuid() == 0
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all",
            "--no-new-privs"] if as_root else []
    return bwrap_args(binds, env, limits, as_root) + ["--", *drop, *command], None, as_root


class Service:
    """A long-lived program in its own sandbox that answers one JSON line with one JSON line
    (the judge): same limits as a submission's sandbox, no time limit but per request."""

    def __init__(self, command: list[str], binds: dict[str, str], env: dict[str, str], limits: Limits,
                 sandboxed: bool = True):
        self.limits = limits
        self.groups = _make_cgroups(f"{os.getpid()}-{next(_names)}", limits) if sandboxed else []
        argv, run_env, as_root = _argv(command, binds, env, limits, sandboxed)
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, env=run_env,
                                        preexec_fn=_preexec(self.groups, limits, as_root))

    def ask(self, line: bytes, timeout: float) -> bytes | None:
        """Send one line, return the reply line, or None if none came in time or it was too long."""
        import select

        try:
            self.process.stdin.write(line.rstrip(b"\n") + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        reply, deadline = bytearray(), time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while not reply.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk or len(reply) + len(chunk) > self.limits.output_bytes:
                return None
            reply.extend(chunk)
        return bytes(reply)

    def close(self) -> None:
        _kill(self.process)
        self.process.wait()
        _remove_cgroups(self.groups)


def run(command: list[str], stdin: bytes, binds: dict[str, str], env: dict[str, str], limits: Limits,
        *, sandboxed: bool = True) -> Result:
    """Run `command` in a new sandbox with `stdin`; return what it wrote to stdout (up to the limit)."""
    groups = _make_cgroups(f"{os.getpid()}-{next(_names)}", limits) if sandboxed else []
    argv, run_env, as_root = _argv(command, binds, env, limits, sandboxed)
    started = time.monotonic()
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=run_env, preexec_fn=_preexec(groups, limits, as_root),
                               cwd=None if sandboxed else env.get("HOME"))
    out, err, ended = bytearray(), bytearray(), ["exited"]

    def read_stdout():
        while chunk := process.stdout.read1(1 << 16):
            if len(out) + len(chunk) > limits.output_bytes:
                out.extend(chunk[: limits.output_bytes - len(out)])
                ended[0] = "output limit"
                _kill(process)
                break
            out.extend(chunk)
        process.stdout.close()

    def read_stderr():
        while chunk := process.stderr.read1(1 << 16):
            err.extend(chunk)
            del err[: max(0, len(err) - 65536)]  # keep the tail

    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for reader in readers:
        reader.start()
    try:
        process.stdin.write(stdin)
        process.stdin.close()
    except BrokenPipeError:
        pass
    try:
        process.wait(timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:
        ended[0] = "wall time"
        _kill(process)
        process.wait()
    for reader in readers:
        reader.join(timeout=10)
    _remove_cgroups(groups)
    if not sandboxed:  # no PID namespace: end what it left behind (its session) by hand
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return Result(bytes(out), err.decode("utf-8", "replace"), time.monotonic() - started, ended[0],
                  process.returncode)


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # bwrap and its PID namespace; --die-with-parent does the rest
    except (ProcessLookupError, PermissionError):
        process.kill()
