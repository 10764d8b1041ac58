"""Answers a graded test's calls inside the student's sandboxed kernel; the test itself is not here.

The grader replaces each test cell with `serve("test_x", PROBES, [("conv2d", True), ...], globals(), TOKEN)`.
PROBES is the cell's probe definitions only: the test function, its expected values and its asserts
run in grading/judge.py, a process where no student code runs. Here each argument of the cell's last
statement is evaluated (a probe such as `describe_my_cnn(MyCNN)` runs now, in a fresh namespace); the
judge is told which arguments are the student's functions and gets every other value as plain data.
Then each call the judge's test makes to a student's function arrives as data, runs here, and its
result (or the exception it raised), the in-place changes to its array, tensor and module arguments
and what it printed go back as data, until the judge has decided. While the probes and those calls
run, grading/recorder.py notes what the student's code calls (torch, the library, ways around the
record); the names go with each message as "used", for grading/references.runtime_findings.

The messages travel as JSON lines over a Unix socket to grading/runner.py, which relays them to the
grader. Everything here runs with the student's permissions, so nothing it says is trusted: it is
the student's answer, in plain values, and the judge's asserts decide.
"""

from __future__ import annotations

import contextlib
import io
import json
import linecache
import os
import socket
import sys
import traceback
import warnings

import numpy as np

# The grader's modules that the notebook imported before its first test cell imported this one: a
# notebook reaches for the grader's own code only to change it (grading/recorder.py runs here).
# Those that grading/runner.py imported before the notebook's first cell (grading.recorder) are the grader's.
IMPORTED_BEFORE = sorted(name for name in sys.modules if name.startswith("grading.") and name != __name__
                         and name not in getattr(sys.modules.get("grading.recorder"), "_PRELOADED", ()))

from grading import recorder as _recorder, values as _values  # noqa: E402
from grading.recorder import PROBES, SERVE, STUDENT, Recorder  # noqa: E402
from grading.values import decode, encode, exception_name  # noqa: E402

_names = Recorder.names  # as it was when imported: a notebook that replaces it later is noted (recorder.replaced)
SOCKET = os.environ.get("IMGREC_SERVE_SOCKET", "/tmp/imgrec-serve.sock")
MAX_PRINTED = 10_000    # characters of printed output kept per call
MAX_FRAMES = 6          # the student's innermost frames sent with an exception
MAX_LINE = 300          # characters of one frame's source line


def cell_name(filename: str) -> str:
    """A notebook cell's file name as IPython shows it in a traceback ("Cell In[17]"), else the name as it is."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        label = shell.compile.format_code_name(filename)
    except Exception:  # noqa: BLE001 - not in a kernel, or an IPython without cell names
        label = None
    return f"{label[0]} {label[1]}" if label else filename


def student_frames(error: BaseException, recorder: Recorder) -> list[str]:
    """Where in the student's code `error` was raised: its innermost frames that are the student's (no
    probes', grader's or library's frame), as IPython names them: "Cell In[17], line 3, in relu_backward"
    followed by that line of source. A learner finds the mistake there, not at the test's call."""
    frames = []
    for frame, line in traceback.walk_tb(error.__traceback__):
        if recorder.kind(frame.f_code)[0] == STUDENT:
            frames.append((frame.f_code, line))
    shown = []
    for code, line in frames[-MAX_FRAMES:]:
        source = linecache.getline(code.co_filename, line).strip()
        shown.append(f"{cell_name(code.co_filename)}, line {line}, in {code.co_name[:100]}")
        if source:
            shown.append("    " + source[:MAX_LINE])
    return shown


def _state(x, depth: int = 0):
    """What the judge copies back into its own arguments after a call: arrays, tensors, a module's
    parameters and buffers, also inside lists, tuples and dicts; None for anything else."""
    torch = sys.modules.get("torch")  # only code that imported torch can hold a tensor
    if depth > 6:
        return None
    if isinstance(x, np.ndarray) or torch is not None and isinstance(x, torch.Tensor):
        return encode(x)
    if torch is not None and isinstance(x, torch.nn.Module):
        return {"module": {name: encode(t) for name, t in x.state_dict(keep_vars=False).items()}}
    if isinstance(x, (list, tuple)):
        return {"items": [_state(v, depth + 1) for v in x]}
    if isinstance(x, dict):
        return {"keys": {str(k): _state(v, depth + 1) for k, v in x.items()}}
    return None


def arguments_of(probes: str, arguments: list[tuple[str, bool]], user: dict,
                 recorder: Recorder | None = None) -> tuple[list[dict], dict]:
    """Evaluate the test call's arguments [(expression, is a bare name)] with the cell's `probes`
    defined in a fresh namespace (falling back to the student's namespace `user`). Returns what the
    judge is told about each, and {index: the student's function} for the ones called from there.
    `recorder` notes what the student's code that the probes call calls (grading/recorder.py)."""
    import builtins
    import collections

    namespace = {"__name__": "__graded_test__", "__builtins__": builtins}
    described, functions = [], {}
    try:
        code = compile(probes, PROBES, "exec")
        _recorder.trust(code)
        exec(code, namespace)
    except BaseException as error:
        return [{"source": "(the probes)", "raised": [exception_name(error), str(error)[:2000]]}], {}
    scope = collections.ChainMap(namespace, user)
    for index, (expression, is_name) in enumerate(arguments):
        try:
            code = compile(expression, PROBES, "eval")
            _recorder.trust(code)
            with recorder or contextlib.nullcontext():
                value = eval(code, namespace, scope)
        except BaseException as error:
            described.append({"source": expression, "raised": [exception_name(error), str(error)[:2000]],
                              "traceback": traceback.format_exc(limit=-8)[-6000:]})
            break
        if is_name and callable(value) and not isinstance(value, type) and not hasattr(value, "state_dict"):
            functions[index] = value
            described.append({"source": expression, "function": True})
        else:
            described.append({"source": expression, "value": encode(value)})
    return described, functions


def answer(functions: dict, call: dict) -> dict:
    """Run one call the judge's test makes: {"argument": index, "args": ..., "kwargs": ...} in,
    {"result" or "raised" and "where" (the student's frames), "printed", "args": in-place state, "used": what
    it called (grading/recorder.py), "seconds": how long the function ran, here, without carrying its
    arguments and result} out."""
    reply: dict = {}
    printed = io.StringIO()
    args, kwargs = [], {}
    recorder = Recorder()
    try:
        function = functions[int(call["argument"])]
        args, kwargs = list(decode(call["args"])), dict(decode(call["kwargs"]))
        # Quiet: a wrong answer's overflow warning is noise next to the test's message, which names the mistake.
        with contextlib.redirect_stdout(printed), np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with recorder:
                start = _recorder.perf_counter()  # bound before the notebook ran: a notebook's fake clock is not it
                try:
                    result = function(*args, **kwargs)
                finally:
                    reply["seconds"] = _recorder.perf_counter() - start
        reply["result"] = encode(result)
    except BaseException as error:  # the judge's test sees the same kind of exception
        reply["raised"] = [exception_name(error), str(error)[:2000]]
        try:
            reply["where"] = student_frames(error, recorder)
        except Exception:  # noqa: BLE001 - a traceback the student's code made strange: the test's message still says what failed
            pass
    reply["printed"] = printed.getvalue()[:MAX_PRINTED]
    reply["args"] = [_state(args), _state(kwargs)]
    reply["used"] = _names(recorder)
    return reply


def serve(test_name: str, probes: str, arguments: list[tuple[str, bool]], user: dict, token: str = "") -> None:
    """The test cell, as it runs in the student's kernel while grading. `token` is the cell's word for
    the grader (grading/worker.Run): it goes first, before any code of the student's runs here."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(SOCKET)
    channel = connection.makefile("rwb")

    def send(message: dict) -> None:
        channel.write(json.dumps(message).encode() + b"\n")
        channel.flush()

    send({"hello": test_name, "token": token})
    del token
    try:
        recorder = Recorder()
        described, functions = arguments_of(probes, arguments, user, recorder)
        tampered = [f"switched-off:{name} imported by the notebook before the tests" for name in IMPORTED_BEFORE]
        tampered += [f"switched-off:grading.serve.{name} replaced" for name, value in _OWN.items()
                     if globals().get(name, _OWN) is not value]
        send({"serve": test_name, "arguments": described, "used": [*tampered, *_names(recorder)]})
        while line := channel.readline():
            call = json.loads(line).get("call")
            if call is None:  # the judge has decided
                break
            reply = answer(functions, call)
            send({"reply": reply})
            if reply.get("raised", [""])[0] == "KeyboardInterrupt":  # the cell's time limit
                break
        print(f"{test_name}: checked by the grader")
    finally:
        with contextlib.suppress(OSError):
            send({"served": test_name})
        connection.close()


_recorder.trust(_values)
_recorder.trust(sys.modules[__name__], SERVE)  # it calls the student's function: what that function is matters
_OWN = {name: value for name, value in globals().items() if not name.startswith("__")}  # as imported
