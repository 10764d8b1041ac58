"""Executes one notebook inside the sandbox and relays between its kernel and the grader.

    python -m grading.runner                 (run by grading/sandbox.py, never by hand)
    python -m grading.runner --listen PATH   (in a Job's isolated container: the grader connects to PATH)

Reads the notebook to run as the first line of stdin (built by grading/notebooks.py: the student's
cells, each test cell replaced by a grading/serve.py call), runs its code cells in a fresh kernel with
a time limit per cell, and writes one JSON line per event to stdout: `{"cell": i, "outputs": [...]}`
after each cell, `{"done": ...}` at the end. While a test cell runs, its kernel talks to the grader
through this process: the kernel's lines (from a Unix socket) go out on stdout marked `kernel `, so
that no line of the kernel's passes for one of this process's events, and the grader's later stdin
lines go to the kernel. This process runs with the student's permissions inside the sandbox, but the
kernel (its child, where the student's code runs) cannot read its memory or open its pipes: it makes
itself non-dumpable first. The grader trusts its events only as far as the student could not forge
them from the notebook; everything the kernel says is data.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from queue import Empty

import nbformat
from jupyter_client import AsyncKernelClient, AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from traitlets import Type

from grading import KERNEL, jupyter_fix

SOCKET = os.environ.get("IMGREC_SERVE_SOCKET", "/tmp/imgrec-serve.sock")
# Run by the kernel before the notebook's first cell, outside its history (the cells keep their numbers,
# In [N] == "Cell In[N]"): grading/recorder.py binds sys.setprofile and the rest before the notebook can
# replace them.
PRELOAD = '__import__("grading.recorder").recorder.preloaded()'
PR_SET_DUMPABLE = 4


def keep_out_of_reach() -> None:
    """Make this process non-dumpable: another process of the same user (the kernel, which runs the
    student's code) can then neither read its memory (where the test cells' tokens are) nor open its
    pipes through /proc/PID/fd (where its events go). Raise if the system does not allow it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


class Relay:
    """The kernel's end: a Unix socket the test cells connect to. The newest connection is the one
    the grader talks to: a new one cuts the one before (a connection a cell of the student's left
    open cannot keep the test cells waiting). What the current connection writes goes out with
    `send_line`, and `{"served": null}` when it ends or is cut; `forward` passes the grader's lines to it."""

    def __init__(self, path: str, send_line):
        self.send_line, self.current, self.lock = send_line, None, threading.Lock()
        if os.path.exists(path):
            os.unlink(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(4)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            connection, _ = self.listener.accept()
            with self.lock:
                if self.current is not None:
                    self._cut(self.current)
                self.current = connection
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as lines:
            try:
                for line in lines:
                    with self.lock:
                        if self.current is not connection:
                            break
                        self.send_line(KERNEL + line)
            except OSError:
                pass
        with self.lock:
            if self.current is connection:
                self._cut(connection)

    def _cut(self, connection: socket.socket) -> None:
        """Stop relaying `connection` (the lock held): the grader hears that it ended."""
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        self.current = None
        self.send_line(b'{"served": null}')

    def forward(self, line: bytes) -> None:
        with self.lock:
            if self.current is not None:
                try:
                    self.current.sendall(line.rstrip(b"\n") + b"\n")
                except OSError:
                    pass


class ReadyClient(AsyncKernelClient):
    """jupyter_client's client, ready as soon as the kernel has answered kernel_info and its IOPub
    channel carries messages. jupyter_client then also waits for IOPub to be quiet for 0.2 s; nbclient
    reads only the messages that answer its own requests, so that wait is left out (0.2 s a submission)."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                try:
                    await self.iopub_channel.get_msg(timeout=0.2)  # IOPub is connected
                    self._handle_kernel_info_reply(reply)
                    return
                except Empty:
                    pass
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")


class ReadyKernelManager(AsyncKernelManager):
    """nbclient's kernel manager, with `ReadyClient` as its client."""

    client_factory = Type(ReadyClient, klass=AsyncKernelClient)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    keep_out_of_reach()
    jupyter_fix.apply()  # a widget cell must not stall the run for minutes
    if argv[:1] == ["--listen"]:  # the grader is in another container: one connection carries both ways
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(argv[1])
        os.chmod(argv[1], 0o660)  # the grader is another user in this socket's group (the Job's fsGroup)
        listener.listen(1)
        connection, _ = listener.accept()
        incoming, results = connection.makefile("rb"), connection.makefile("wb")
    else:
        incoming, results = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # fd 1 goes to stderr for the kernel: only events use our channel
    lock, said_done = threading.Lock(), threading.Event()

    def send_line(line: bytes) -> None:
        with lock:
            try:
                results.write(line.rstrip(b"\n") + b"\n")
                results.flush()
            except OSError:
                if not said_done.is_set():
                    raise  # after the last event the grader may have hung up: nothing more is read

    def send(event: dict) -> None:
        send_line(json.dumps(event).encode())

    nb = nbformat.reads(incoming.readline().decode(), as_version=4)
    relay = Relay(SOCKET, send_line)

    def from_grader() -> None:
        for line in incoming:
            relay.forward(line)

    threading.Thread(target=from_grader, daemon=True).start()
    timeout = int(os.environ.get("IMGREC_CELL_TIMEOUT", "120"))
    model = Path(os.environ.get("IMGREC_MODEL", "/nonexistent"))
    if model.is_file():  # the instructor's model, where the lessons look for it (writable copy)
        Path("checkpoints").mkdir(exist_ok=True)
        shutil.copy(model, "checkpoints/course_cnn.pt")

    last_code_cell = max((i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"), default=-1)

    def done(event: dict) -> None:
        """The last event, sent once: the grader may hang up as soon as it has it."""
        if not said_done.is_set():
            said_done.set()
            send(event)

    def cell_done(cell, cell_index, execute_reply=None, **_):
        send({"cell": cell_index, "outputs": cell.get("outputs", [])})
        if cell_index == last_code_cell:  # all said: the grader need not wait for the kernel to shut down
            done({"done": "ok"})

    # No output history (`_`, `Out`, `_oh`): an answer cannot take a value an earlier cell displayed
    # without naming where it came from (grading/references.py reads the names).
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            kernel_manager_class=ReadyKernelManager,
                            interrupt_on_timeout=True, iopub_timeout=10, record_timing=False,
                            shutdown_kernel="immediate", extra_arguments=[f"--IPKernelApp.exec_lines={PRELOAD}",
                                                                    "--InteractiveShell.cache_size=0"],
                            resources={"metadata": {"path": os.getcwd()}})
    client.on_cell_executed = cell_done
    try:
        client.execute()
        done({"done": "ok"})
    except DeadKernelError as error:
        done({"done": "kernel died", "detail": str(error)[:500]})
    except Exception as error:  # a cell that would not stop, a kernel that would not start ...
        done({"done": type(error).__name__, "detail": str(error)[:500]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
