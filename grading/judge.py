"""The verdicts: each graded test cell runs here, where no student code runs.

    python -m grading.judge     (a long-lived process, one per grading worker; JSON lines in and out)

For each test cell the judge execs the instructor's cell source (from solutions/, hidden tests
included) without its last statement, in a fresh namespace, and calls the test function. Its
arguments come from the student's kernel (grading/serve.py): a probe's result arrives as plain data;
a student's function becomes a `Remote`, and each call of it goes to the kernel as data (the
arguments encoded by grading/values.py) and comes back as data (the result or the exception, the
in-place changes, what it printed). The test's expected values never leave this process, and its
own asserts decide: display hooks, exception handlers, patched modules, a patched clock or lying
objects in the student's kernel cannot change a verdict, for none of them exist here.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import linecache
import sys
import traceback
from typing import Any

import numpy as np
import torch

from grading.notebooks import NotGradable, split_test_cell
from grading.values import EXCEPTIONS, Decoder, ValueTooLarge, encode


def _restore(target: Any, state: Any, decode: Decoder, depth: int = 0) -> None:
    """Copy an argument's state after the call in the kernel into the judge's own argument, where the shapes agree."""
    if state is None or depth > 6:
        return
    kind = next(iter(state))
    if kind in ("ndarray", "tensor") and isinstance(target, (np.ndarray, torch.Tensor)):
        value = decode(state)
        if tuple(value.shape) != tuple(target.shape):
            return
        if isinstance(target, np.ndarray):
            np.copyto(target, np.asarray(value), casting="unsafe")
        else:
            with torch.no_grad():
                target.copy_(torch.as_tensor(np.asarray(value)))
    elif kind == "module" and isinstance(target, torch.nn.Module):
        mine = target.state_dict(keep_vars=True)
        for name, encoded in state["module"].items():
            if name in mine:
                _restore(mine[name], encoded, decode, depth + 1)
    elif kind == "items" and isinstance(target, (list, tuple)):
        for item, item_state in zip(target, state["items"]):
            _restore(item, item_state, decode, depth + 1)
    elif kind == "keys" and isinstance(target, dict):
        for key, item in target.items():
            _restore(item, state["keys"].get(str(key)), decode, depth + 1)


MAX_WHERE = 12  # lines of the student's frames shown under a test's own


def _exception(name: str, message: str, where=None) -> BaseException:
    """The exception the student's function raised in the kernel, raised again here for the test; `where`
    (the student's innermost frames, grading/serve.student_frames) goes with it to the failure output."""
    if name == "KeyboardInterrupt":
        error: BaseException = TimeoutError(f"stopped at the time limit of its cell ({message})" if message else
                                            "stopped at the time limit of its cell")
    else:
        error = (getattr(builtins, name) if name in EXCEPTIONS else RuntimeError)(message)
    if isinstance(where, list):
        error.notebook_frames = [str(line)[:400] for line in where[-MAX_WHERE:]]
    return error


def _notebook_frames(error: BaseException) -> list[str]:
    """The student's frames that went with `error`, or with the exception the test raised it from."""
    for _ in range(5):
        if error is None:
            return []
        if getattr(error, "notebook_frames", None):
            return error.notebook_frames
        error = error.__cause__ or error.__context__
    return []


class Remote:
    """Stands in for a student's function: each call is sent to the student's kernel as data.
    `call(index, args, kwargs)` returns the kernel's reply, or None if it did not answer. `seconds`:
    how long the last call ran in the kernel, without carrying the values there and back (a test that
    times the student's code reads it: on a busy machine the carrying takes longer than the code)."""

    def __init__(self, name: str, index: int, call):
        self.__name__, self.index, self.call, self.seconds = name, index, call, None

    def __call__(self, *args, **kwargs):
        sent = [encode(list(args)), encode(kwargs)]
        opaque = _opaque_in(sent)
        if opaque:
            raise TypeError(f"{self.__name__} can only be called with plain values (numbers, strings, arrays, "
                            f"tensors, lists of them) when graded, not a {opaque}")
        self.seconds = None
        reply = self.call(self.index, *sent)
        if not isinstance(reply, dict):
            raise RuntimeError(f"{self.__name__}: your notebook stopped before it answered this call (the time "
                               "limit, the memory limit, or a kernel that died)")
        if isinstance(reply.get("seconds"), (int, float)) and reply["seconds"] >= 0:
            self.seconds = float(reply["seconds"])
        decode = Decoder()
        positional, named = (list(reply.get("args") or []) + [None, None])[:2]
        _restore(list(args), positional, decode)
        _restore(kwargs, named, decode)
        if reply.get("printed"):
            text = str(reply["printed"])
            print(text, end="" if text.endswith("\n") else "\n")
        if "raised" in reply:
            raise _exception(*[str(s) for s in (list(reply["raised"]) + ["", ""])[:2]], reply.get("where"))
        if "result" not in reply:
            raise RuntimeError(f"{self.__name__}: your notebook gave no result for this call")
        return decode(reply["result"])


def _opaque_in(x, depth: int = 0) -> str:
    """The type named by the first opaque item of an encoded value, or ''."""
    if depth > 50:
        return ""
    if isinstance(x, list):
        return next((found for v in x if (found := _opaque_in(v, depth + 1))), "")
    if isinstance(x, dict):
        if "opaque" in x and len(x) == 1:
            return str(x["opaque"])
        return next((found for v in x.values() if (found := _opaque_in(v, depth + 1))), "")
    return ""


def _error_output(error: BaseException, filename: str) -> dict:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == filename]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines += [("" if line.startswith(" ") else "  ") + line for line in _notebook_frames(error)]  # "Cell In[17], ..."
    message = f"{type(error).__name__}: {error}"
    return {"output_type": "error", "ename": type(error).__name__, "evalue": str(error)[:5000],
            "traceback": [line.rstrip("\n") for line in lines] + [message[:5000]]}


def judge_cell(grade_id: str, source: str, arguments: list, call) -> dict:
    """{"passed": bool, "outputs": [nbformat outputs]} for one test cell. `arguments`: what the
    student's kernel said about the test call's arguments (grading/serve.py); `call(index, args,
    kwargs)` sends a call of the student's function `index` there and returns the reply."""
    filename = f"<test cell {grade_id}>"
    printed = io.StringIO()
    try:
        before, name, expected, _ = split_test_cell(source)
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        namespace: dict[str, Any] = {"__name__": "__grading__"}
        with contextlib.redirect_stdout(printed):
            exec(compile(before, filename, "exec"), namespace)
            values = []
            for index, (argument, _) in enumerate(expected):
                told = arguments[index] if isinstance(arguments, list) and index < len(arguments) else None
                if not isinstance(told, dict) or told.get("source") != argument:
                    raise RuntimeError(f"your notebook did not evaluate `{argument}` for this test")
                if "raised" in told:
                    kind, message = (str(s) for s in (list(told["raised"]) + ["", ""])[:2])
                    raise RuntimeError(f"`{argument}` could not be evaluated in your notebook: {kind}: {message}")
                if told.get("function") is True:
                    values.append(Remote(argument, index, call))
                else:
                    values.append(Decoder()(told.get("value")))
            namespace[name](*values)
    except ValueTooLarge as error:
        outputs = [_error_output(RuntimeError(f"a result was too large to check: {error}"), filename)]
        return {"passed": False, "outputs": _with_printed(printed, outputs)}
    except NotGradable:
        raise
    except BaseException as error:  # noqa: BLE001 - any failure of the test is the verdict
        return {"passed": False, "outputs": _with_printed(printed, [_error_output(error, filename)])}
    return {"passed": True, "outputs": _with_printed(printed, [])}


def not_run(why: str) -> dict:
    """The verdict on a test cell that the notebook never reached."""
    message = f"this test did not run in your notebook: {why or 'it stopped before this cell'}"
    return {"passed": False, "outputs": [{"output_type": "error", "ename": "RuntimeError", "evalue": message,
                                          "traceback": [f"RuntimeError: {message}"]}]}


def _with_printed(printed: io.StringIO, outputs: list) -> list:
    text = printed.getvalue()[-100_000:]
    return ([{"output_type": "stream", "name": "stdout", "text": text}] if text else []) + outputs


def main() -> int:
    """Serve the worker in JSON lines: {"ready": true} out once started; then, one test at a time,
    {"test": grade_id, "source": cell source, "arguments": [...]} in; while the test runs,
    {"call": {"argument", "args", "kwargs"}} out and {"reply": {...} or null} in, once per call of a
    student's function; then {"verdict": ...} out."""
    out, stdin = sys.stdout, sys.stdin
    sys.stdout = sys.stderr  # a test's stray print must not break the protocol

    def send(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    def call(index: int, args, kwargs):
        send({"call": {"argument": index, "args": args, "kwargs": kwargs}})
        line = stdin.readline()
        if not line:
            raise SystemExit(0)
        return json.loads(line).get("reply")

    send({"ready": True})  # torch is imported: the worker may start the notebook
    while line := stdin.readline():
        try:
            request = json.loads(line)
            grade_id = str(request["test"])
            send({"test": grade_id, "verdict": judge_cell(grade_id, str(request["source"]), request.get("arguments"), call)})
        except Exception as error:  # noqa: BLE001 - a course error (a test cell the grader cannot use)
            send({"error": f"{type(error).__name__}: {error}"[:2000]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
