"""The verdicts: each graded test cell, run again where no student code runs, against the record.

    python -m grading.judge     (a long-lived process, one per grading worker; JSON lines in and out)

For each test cell the judge execs the instructor's cell source (from solutions/, hidden tests
included) without its last statement, in a fresh namespace, and calls the test function with
stand-ins built from the record that grading/recorder.py wrote in the sandbox: a student function
becomes a `Replay` that returns the recorded results in order (or raises the recorded exception),
after copying the recorded in-place changes into the judge's own arguments; any other argument is
the recorded plain value. The test's own asserts decide. Display hooks, exception handlers,
patched modules or lying objects in the student's kernel cannot change a verdict: none of them
exist here, and a record holds nothing but plain values.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import linecache
import sys
import traceback
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import torch

from grading.notebooks import NotGradable, split_test_cell
from grading.values import EXCEPTIONS, Decoder, ValueTooLarge, strings_in


def _rename(x: Any, names: dict[str, str], depth: int = 0) -> Any:
    """`x` with every string (or path) that is a key of `names` replaced by its value."""
    if depth > 40:
        return x
    if isinstance(x, str) and x in names:
        return names[x]
    if isinstance(x, PurePosixPath) and str(x) in names:
        return PurePosixPath(names[str(x)])
    if isinstance(x, (list, tuple)):
        return type(x)(_rename(v, names, depth + 1) for v in x)
    if isinstance(x, dict):
        return {_rename(k, names, depth + 1): _rename(v, names, depth + 1) for k, v in x.items()}
    return x


def _restore(target: Any, state: Any, decode: Decoder, depth: int = 0) -> None:
    """Copy a recorded argument state into the judge's own argument, where the shapes agree."""
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


def _exception(name: str, message: str) -> BaseException:
    if name == "KeyboardInterrupt":
        return TimeoutError(f"stopped at the time limit of its cell ({message})" if message else
                            "stopped at the time limit of its cell")
    cls = getattr(builtins, name) if name in EXCEPTIONS else RuntimeError
    return cls(message)


class Replay:
    """Stands in for a student's function: returns what it returned in the sandbox, call by call."""

    def __init__(self, name: str, calls: list, decode: Decoder):
        self.__name__, self.calls, self.decode, self.made = name, calls, decode, 0

    def __call__(self, *args, **kwargs):
        if self.made >= len(self.calls):
            raise RuntimeError(f"{self.__name__}: call {self.made + 1} was not recorded: the notebook stopped "
                               "before it (the time limit, the memory limit, or a kernel that died)")
        call = self.calls[self.made]
        self.made += 1
        positional, named = call.get("args") or (None, None)
        _restore(list(args), positional, self.decode)
        _restore(kwargs, named, self.decode)
        if call.get("printed"):
            print(str(call["printed"]), end="" if str(call["printed"]).endswith("\n") else "\n")
        if "raised" in call:
            raise _exception(*[str(s) for s in call["raised"][:2]])
        result = self.decode(call["result"])
        theirs, ours = [str(s) for s in call.get("strings", [])], strings_in([args, kwargs])
        if theirs and len(theirs) == len(ours):
            result = _rename(result, dict(zip(theirs, ours)))
        return result


def _error_output(error: BaseException, filename: str) -> dict:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == filename]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    message = f"{type(error).__name__}: {error}"
    return {"output_type": "error", "ename": type(error).__name__, "evalue": str(error)[:5000],
            "traceback": [line.rstrip("\n") for line in lines] + [message[:5000]]}


def judge_cell(grade_id: str, source: str, record: dict | None, why_missing: str = "") -> dict:
    """{"passed": bool, "outputs": [nbformat outputs]} for one test cell."""
    filename = f"<test cell {grade_id}>"
    printed = io.StringIO()
    try:
        before, name, arguments, _ = split_test_cell(source)
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        namespace: dict[str, Any] = {"__name__": "__grading__"}
        with contextlib.redirect_stdout(printed):
            exec(compile(before, filename, "exec"), namespace)
            if record is None:
                raise RuntimeError(f"this test did not run in your notebook: {why_missing or 'it stopped before this cell'}")
            if record.get("test") != grade_id or len(record.get("arguments", [])) != len(arguments):
                raise RuntimeError("the record of this test does not match the test cell")
            decode, values = Decoder(), []
            for (argument, _), recorded in zip(arguments, record["arguments"]):
                if "raised" in recorded:
                    kind, message = (str(s) for s in recorded["raised"][:2])
                    raise RuntimeError(f"`{argument}` could not be evaluated in your notebook: {kind}: {message}")
                if "calls" in recorded:
                    values.append(Replay(argument, recorded["calls"], decode))
                else:
                    values.append(decode(recorded["value"]))
            namespace[name](*values)
    except ValueTooLarge as error:
        outputs = [_error_output(RuntimeError(f"a result was too large to check: {error}"), filename)]
        return {"passed": False, "outputs": _with_printed(printed, outputs)}
    except NotGradable:
        raise
    except BaseException as error:  # noqa: BLE001 - any failure of the test is the verdict
        return {"passed": False, "outputs": _with_printed(printed, [_error_output(error, filename)])}
    return {"passed": True, "outputs": _with_printed(printed, [])}


def _with_printed(printed: io.StringIO, outputs: list) -> list:
    text = printed.getvalue()[-100_000:]
    return ([{"output_type": "stream", "name": "stdout", "text": text}] if text else []) + outputs


def main() -> int:
    """Serve requests: one JSON line {"cells": [[grade_id, source, record, why_missing], ...]} in,
    one line {"verdicts": {grade_id: verdict}} out."""
    out = sys.stdout
    sys.stdout = sys.stderr  # a test's stray print must not break the protocol
    for line in sys.stdin:
        try:
            request = json.loads(line)
            verdicts = {cell[0]: judge_cell(*cell) for cell in request["cells"]}
            reply = {"verdicts": verdicts}
        except Exception as error:  # noqa: BLE001
            reply = {"error": f"{type(error).__name__}: {error}"[:2000]}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
