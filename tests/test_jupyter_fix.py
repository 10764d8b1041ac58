"""grading/jupyter_fix.py: a missed ZeroMQ wake-up costs at most a poll slice, not minutes."""

import asyncio
from pathlib import Path
from queue import Empty

import pytest
from jupyter_client.channels import AsyncZMQSocketChannel
from traitlets.config.loader import PyFileConfigLoader

from grading import jupyter_fix

ROOT = Path(__file__).resolve().parents[1]


class MissedWakeUpSocket:
    """A socket whose message is there from the start, but whose poll without a timeout never
    wakes (the bug) and whose timed poll sees the message only from the ``ready_after``-th call."""

    def __init__(self, ready_after: int | None):
        self.ready_after, self.timeouts = ready_after, []

    async def poll(self, timeout_ms=None):
        self.timeouts.append(timeout_ms)
        if timeout_ms is None:
            await asyncio.Event().wait()  # never set: the missed wake-up
        ready = self.ready_after is not None and len(self.timeouts) >= self.ready_after
        if not ready:
            await asyncio.sleep(timeout_ms / 1000)  # a timed poll waits its whole timeout
        return 1 if ready else 0


class Channel:
    """Just what get_msg uses of an AsyncZMQSocketChannel: .socket and ._recv()."""

    def __init__(self, socket):
        self.socket = socket

    async def _recv(self):
        return {"msg_type": "execute_reply"}


def test_a_missed_wake_up_costs_one_slice_not_forever(monkeypatch):
    monkeypatch.setattr(jupyter_fix, "POLL_SLICE_S", 0.1)
    channel = Channel(MissedWakeUpSocket(ready_after=3))
    msg = asyncio.run(asyncio.wait_for(jupyter_fix.get_msg_in_slices(channel, timeout=None), 5))
    assert msg == {"msg_type": "execute_reply"}
    assert len(channel.socket.timeouts) == 3
    assert all(t is not None and 0 <= t <= 1000 * jupyter_fix.POLL_SLICE_S for t in channel.socket.timeouts), \
        f"every poll must have a timeout of at most one slice, got {channel.socket.timeouts}"


def test_the_original_get_msg_hangs_on_the_same_socket():
    """The fake socket reproduces the bug: jupyter_client's own get_msg never returns."""
    channel = Channel(MissedWakeUpSocket(ready_after=1))
    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(asyncio.wait_for(jupyter_fix._original_get_msg(channel, timeout=None), 0.5))


def test_the_total_timeout_still_raises_empty():
    channel = Channel(MissedWakeUpSocket(ready_after=None))
    with pytest.raises(Empty):
        asyncio.run(jupyter_fix.get_msg_in_slices(channel, timeout=0.25))
    assert 240 <= sum(channel.socket.timeouts) <= 260, channel.socket.timeouts


@pytest.mark.parametrize("config", ["nbgrader_config.py", "scripts/nbconvert_config.py"])
def test_the_course_configs_install_the_fix(config):
    jupyter_fix.undo()
    assert AsyncZMQSocketChannel.get_msg is jupyter_fix._original_get_msg
    try:
        PyFileConfigLoader(config, path=str(ROOT)).load_config()
        assert AsyncZMQSocketChannel.get_msg is jupyter_fix.get_msg_in_slices, f"{config} does not apply the fix"
    finally:
        jupyter_fix.undo()


def test_a_real_kernel_answers_through_the_patched_channel():
    from jupyter_client.manager import AsyncKernelManager

    async def run():
        km = AsyncKernelManager(kernel_name="python3")
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            msg_id = kc.execute("6 * 7")
            while True:
                reply = await kc.shell_channel.get_msg(timeout=30)
                if reply["parent_header"].get("msg_id") == msg_id:
                    return reply
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)

    jupyter_fix.apply()
    try:
        reply = asyncio.run(run())
    finally:
        jupyter_fix.undo()
    assert reply["content"]["status"] == "ok"


def test_a_plain_nbconvert_in_the_venv_gets_the_fix(tmp_path):
    """`make install` writes the venv's jupyter_nbconvert_config.py: a learner's plain
    `jupyter nbconvert --execute`, started from any folder, polls in slices too."""
    import subprocess
    import sys

    config = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_nbconvert_config.py"
    assert config.is_file(), f"{config} is missing: run make install"
    probe = ("from nbconvert.nbconvertapp import NbConvertApp\n"
             "NbConvertApp().load_config_file()\n"
             "from jupyter_client.channels import AsyncZMQSocketChannel\n"
             "print(AsyncZMQSocketChannel.get_msg.__name__)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "get_msg_in_slices", result.stderr[-2000:]
