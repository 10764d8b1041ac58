"""One throwaway sandbox per submission: bubblewrap namespaces plus memory, process and time limits.

Inside, the student's notebook sees a read-only system, the course's Python environment and
imgrec_lib read-only, an empty private /tmp (size-limited; gone when the sandbox ends) and no
network. It cannot see the course folder (solutions/, the gradebook, submitted/, feedback/), the
instructor's home or another submission. When the grader runs as root the sandbox also runs as
the unprivileged user `nobody`, in its own memory and pids cgroup (v1 or v2). Otherwise (the hub's
course service grades as the course's owner) the limits are rlimits: address space per process,
file size, and processes and threads counted in the sandbox's own user namespace (Linux 5.14 and
later). The sandbox is a new PID namespace: when it ends, or is killed at its wall time, every
process it started ends with it (daemons, double forks and setsid included).

What comes out is only what the program inside writes to stdout, read up to a byte limit.
"""

from __future__ import annotations

import functools
import itertools
import os
import queue
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
    """The folders the course's Python needs: the venv (and where it really is, when .venv is a link),
    the interpreter it was made from, and the folder of the editable imgrec_lib (not the rest of the
    course)."""
    import imgrec_lib

    folders = {Path(sys.prefix), Path(sys.prefix).resolve(), Path(sys.base_prefix), Path(imgrec_lib.__file__).resolve().parent}
    real = Path(os.path.realpath(sys.executable)).parent.parent
    folders.add(real)
    folders.update(_installed_imgrec_lib())
    return sorted(folders)


@functools.cache
def _installed_imgrec_lib() -> list[Path]:
    """The imgrec_lib folder that the venv's own install points to, which the notebooks import: in a
    course folder whose .venv links to another checkout's, it is that checkout's, not the one found
    from the course folder here."""
    try:
        found = subprocess.run([sys.executable, "-I", "-c", "import importlib.util; "
                                "print(*importlib.util.find_spec('imgrec_lib').submodule_search_locations, sep='\\n')"],
                               cwd="/", capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [Path(line).resolve() for line in found.stdout.splitlines() if line.strip() and Path(line).is_dir()]


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


def counts_tasks_per_user_namespace() -> bool:
    """Linux 5.14 and later count RLIMIT_NPROC per user namespace: set inside a sandbox's own
    namespace it counts that sandbox's processes and threads alone. Before, it counted every
    process of the grader's account (its other sandboxes, its Jupyter server)."""
    try:
        major, minor = (int(part) for part in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 14)


def _argv(command: list[str], binds: dict[str, str], env: dict[str, str], limits: Limits,
          sandboxed: bool) -> tuple[list[str], dict | None, bool]:
    """The command line that starts `command` in a sandbox (or, unsandboxed, as it is). Started by
    root it becomes `nobody`; started by another account there is no pids cgroup, so `prlimit`,
    inside the sandbox's user namespace, caps its processes and threads."""
    if not sandboxed:  # --unsafe-no-sandbox: the same program, with the grader's permissions
        return command, {**os.environ, **env}, False
    as_root = os.geteuid() == 0
    if as_root:
        first = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all",
                 "--no-new-privs"]
    elif shutil.which("prlimit") and counts_tasks_per_user_namespace():  # util-linux, as setpriv
        first = [shutil.which("prlimit"), f"--nproc={limits.pids}:{limits.pids}", "--"]
    else:
        first = []
    return bwrap_args(binds, env, limits, as_root) + ["--", *first, *command], None, as_root


class Service:
    """A long-lived program in its own sandbox that talks in JSON lines (the judge): same limits as a
    submission's sandbox, no time limit but per line, and no line longer than the output limit."""

    def __init__(self, command: list[str], binds: dict[str, str], env: dict[str, str], limits: Limits,
                 sandboxed: bool = True):
        self.limits, self.pending = limits, bytearray()
        self.groups = _make_cgroups(f"{os.getpid()}-{next(_names)}", limits) if sandboxed else []
        argv, run_env, as_root = _argv(command, binds, env, limits, sandboxed)
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, env=run_env,
                                        preexec_fn=_preexec(self.groups, limits, as_root))
        _widen_pipes(self.process)

    def send(self, line: bytes) -> bool:
        try:
            self.process.stdin.write(line.rstrip(b"\n") + b"\n")
            self.process.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def read_line(self, timeout: float) -> bytes | None:
        """The next line, or None if none came in time, it was too long, or the program ended."""
        import select

        deadline, fd = time.monotonic() + timeout, self.process.stdout.fileno()
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk or len(self.pending) + len(chunk) > self.limits.output_bytes:
                return None
            self.pending.extend(chunk)
        line, _, rest = bytes(self.pending).partition(b"\n")
        self.pending = bytearray(rest)
        return line + b"\n"

    def close(self) -> None:
        _kill(self.process)
        self.process.wait()
        _remove_cgroups(self.groups)


class Session:
    """A program running in a new sandbox, talked to in lines: `send` writes to its stdin,
    `next_line` reads its stdout (up to the output limit in all) until it ends or its wall time is
    up; `close` ends it, with everything it started, and says how it ended."""

    def __init__(self, command: list[str], binds: dict[str, str], env: dict[str, str], limits: Limits,
                 *, sandboxed: bool = True):
        self.limits, self.sandboxed = limits, sandboxed
        self.groups = _make_cgroups(f"{os.getpid()}-{next(_names)}", limits) if sandboxed else []
        argv, run_env, as_root = _argv(command, binds, env, limits, sandboxed)
        self.started = time.monotonic()
        self.deadline = self.started + limits.wall_seconds
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env=run_env, preexec_fn=_preexec(self.groups, limits, as_root),
                                        cwd=None if sandboxed else env.get("HOME"))
        _widen_pipes(self.process)
        self.lines: queue.Queue = queue.Queue()
        self.err, self.ended, self.received = bytearray(), "exited", 0
        self.readers = [threading.Thread(target=self._read_stdout, daemon=True),
                        threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read_stdout(self) -> None:
        self._pump(lambda n: self.process.stdout.read1(n), self._stop)
        self.process.stdout.close()

    def _stop(self) -> None:
        _kill(self.process)

    def _pump(self, read, stop) -> None:
        """Lines from `read(n)` into self.lines (None at the end), `stop()` at the output limit."""
        partial = b""
        while chunk := read(1 << 20):
            if self.received + len(chunk) > self.limits.output_bytes:  # keep what fits, then stop it
                partial += chunk[: self.limits.output_bytes - self.received]
                self.ended = "output limit"
                stop()
                break
            self.received += len(chunk)
            *whole, partial = (partial + chunk).split(b"\n")
            for line in whole:
                self.lines.put(line + b"\n")
        if partial:
            self.lines.put(partial)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        while chunk := self.process.stderr.read1(1 << 16):
            self.err.extend(chunk)
            del self.err[: max(0, len(self.err) - 65536)]  # keep the tail

    def send(self, data: bytes, *, last: bool = False) -> bool:
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
            if last:
                self.process.stdin.close()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def next_line(self) -> bytes | None:
        """The next line it wrote, or None once it has ended (or its wall time is up: then it is killed)."""
        try:
            line = self.lines.get(timeout=max(0.0, self.deadline - time.monotonic()))
        except queue.Empty:
            self.ended = "wall time"
            self._stop()
            return None
        if line is None:
            self.lines.put(None)  # it stays ended
        return line

    def close(self, *, at_once: bool = False) -> Result:
        """End the program and say how it ended. `at_once`: it has said all it had to say, so it is
        ended now rather than waited for (a runner's Python and kernel take about a second to exit)."""
        if at_once:
            _kill(self.process)
        try:
            self.process.wait(timeout=max(0.0, min(10.0, self.deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            if self.ended == "exited":
                self.ended = "wall time" if time.monotonic() >= self.deadline else "stopped"
            _kill(self.process)
            self.process.wait()
        for reader in self.readers:
            reader.join(timeout=10)
        _remove_cgroups(self.groups)
        if not self.sandboxed:  # no PID namespace: end what it left behind (its session) by hand
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return Result(b"", self.err.decode("utf-8", "replace"), time.monotonic() - self.started, self.ended,
                      self.process.returncode)


class Connection(Session):
    """The same conversation with a runner started elsewhere (a Job's isolated container) that
    listens on a Unix socket: the output and wall-time limits hold; the other limits are that
    container's."""

    def __init__(self, path: Path, limits: Limits, wait_seconds: float = 300):
        import socket

        self.limits, self.sandboxed, self.groups, self.process = limits, True, [], None
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        give_up = time.monotonic() + wait_seconds
        while True:
            try:
                self.socket.connect(str(path))
                break
            except OSError:
                if time.monotonic() > give_up:
                    raise
                time.sleep(0.5)
        self.started = time.monotonic()
        self.deadline = self.started + limits.wall_seconds
        self.lines, self.err, self.ended, self.received = queue.Queue(), bytearray(), "exited", 0
        self.readers = [threading.Thread(target=self._pump, args=(self.socket.recv, self._stop), daemon=True)]
        self.readers[0].start()

    def _stop(self) -> None:
        import socket

        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send(self, data: bytes, *, last: bool = False) -> bool:
        try:
            self.socket.sendall(data)
            return True
        except OSError:
            return False

    def close(self) -> Result:
        self._stop()
        self.socket.close()
        self.readers[0].join(timeout=10)
        return Result(b"", "", time.monotonic() - self.started, self.ended, 0)


def run(command: list[str], stdin: bytes, binds: dict[str, str], env: dict[str, str], limits: Limits,
        *, sandboxed: bool = True) -> Result:
    """Run `command` in a new sandbox with `stdin`; return what it wrote to stdout (up to the limit)."""
    session = Session(command, binds, env, limits, sandboxed=sandboxed)
    session.send(stdin, last=True)
    out = bytearray()
    while (line := session.next_line()) is not None:
        out.extend(line)
    result = session.close()
    result.stdout = bytes(out)
    return result


def _widen_pipes(process: subprocess.Popen) -> None:
    """1 MB pipe buffers (Linux): a large call or result then crosses in one go instead of 64 KB
    at a time, each waiting for the other side to be scheduled (that was most of a call's time)."""
    import fcntl

    for stream in (process.stdin, process.stdout):
        try:
            fcntl.fcntl(stream.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
        except (OSError, ValueError, AttributeError):
            pass


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # bwrap and its PID namespace; --die-with-parent does the rest
    except (ProcessLookupError, PermissionError):
        process.kill()
