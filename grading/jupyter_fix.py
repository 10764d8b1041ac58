"""A workaround for headless notebook runs that stall after a widget cell (maintainers only).

``nbconvert --execute`` and ``nbgrader autograde`` talk to the kernel through
``jupyter_client``'s asyncio channels. After a cell that sends many widget messages, the
cell's ``execute_reply`` sometimes sits unread in the shell socket: the asyncio poll never
wakes up, because ZeroMQ's edge-triggered file descriptor missed the event (measured here:
lessons 01 and 06 stalled in about half of the ``nbconvert`` runs, for 2 to 10 minutes, while
the kernel was idle; reading the socket's ``zmq.EVENTS`` showed the reply waiting). A poll
with a timeout does not have the problem: when it times out pyzmq asks ZeroMQ directly.

``apply()`` makes ``AsyncZMQSocketChannel.get_msg`` poll in slices of at most one second, so a
missed wake-up costs one second instead of minutes. The total timeout is unchanged. It is
called from ``nbgrader_config.py`` at the repository root, ``scripts/nbconvert_config.py``, the
grading runner and the venv's ``etc/jupyter/jupyter_nbconvert_config.py`` (written by ``make install``),
so ``make execute``, ``make autograde``, ``make bench``, the tests and a learner's plain
``jupyter nbconvert --execute`` get it. JupyterLab does not need it: the server reads the kernel's
sockets another way.
"""

from __future__ import annotations

from queue import Empty
from time import monotonic
from typing import Any

from jupyter_client.channels import AsyncZMQSocketChannel

POLL_SLICE_S = 1.0  # the longest a missed wake-up can delay a message

_original_get_msg = AsyncZMQSocketChannel.get_msg


async def get_msg_in_slices(self: AsyncZMQSocketChannel, timeout: float | None = None) -> dict[str, Any]:
    """``AsyncZMQSocketChannel.get_msg``, but waiting at most ``POLL_SLICE_S`` per poll.

    Raises ``queue.Empty`` after ``timeout`` seconds (None: wait for ever), like the original.
    """
    assert self.socket is not None
    deadline = None if timeout is None else monotonic() + timeout
    while True:
        left = POLL_SLICE_S if deadline is None else max(0.0, deadline - monotonic())
        if await self.socket.poll(int(1000 * min(POLL_SLICE_S, left))):
            return await self._recv()
        if deadline is not None and monotonic() >= deadline:
            raise Empty


def apply() -> None:
    """Install ``get_msg_in_slices`` on jupyter_client's asyncio channel (idempotent)."""
    AsyncZMQSocketChannel.get_msg = get_msg_in_slices  # type: ignore[method-assign]


def undo() -> None:
    """Restore jupyter_client's own ``get_msg`` (for tests)."""
    AsyncZMQSocketChannel.get_msg = _original_get_msg  # type: ignore[method-assign]
