"""Runs a graded test inside the student's sandboxed kernel and writes down what the student's code did.

For each graded test cell, the grader replaces the cell with `record("test_x", SOURCE, "test_x",
["a", ...], globals())`: SOURCE (the cell without its last statement, `test_x(a, ...)`) is run in
a fresh namespace, so names the student rebound do not reach the test. Each argument is evaluated
here: a function the student wrote is wrapped so that every call's result (or the exception it
raised), the in-place changes to its array, tensor and module arguments, its string arguments and
what it printed are written down, and the test gets a plain copy of the result (so an object of
the student's cannot watch the test's arithmetic); any other value is written down as it is. The
test runs here only to make the calls; whether it passes is decided later by grading/judge.py,
which replays the record in a process where no student code runs: a record passes only with
right values.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import sys
import time
import traceback

import numpy as np

from grading.values import decode, encode, exception_name, strings_in

MAX_CALLS = 10_000      # calls recorded per function and test
MAX_PRINTED = 10_000    # characters of printed output kept per call


def _state(x, depth: int = 0):
    """What the judge copies back into its own arguments after a call: arrays, tensors, a module's
    parameters and buffers, also inside lists, tuples and dicts; None for anything else."""
    torch = sys.modules.get("torch")  # only code that imported torch can pass a tensor
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


@contextlib.contextmanager
def _own_rng():
    """The test's random draws must not depend on the student's: keep the global generators' states."""
    torch = sys.modules.get("torch")
    states = torch and torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        if torch is not None and states[0] is not None:
            torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


def _wrap(name: str, function, calls: list):
    def recorded(*args, **kwargs):
        if len(calls) >= MAX_CALLS:
            raise RuntimeError(f"{name} was called more than {MAX_CALLS} times")
        call = {"strings": strings_in([args, kwargs])}
        printed = io.StringIO()
        try:
            with _own_rng(), contextlib.redirect_stdout(printed):
                result = function(*args, **kwargs)
        except BaseException as error:
            call["raised"] = [exception_name(error), str(error)[:2000]]
            raise
        else:
            call["result"] = encode(result)
            return decode(call["result"])  # a plain copy: the test computes with data, not the student's object
        finally:
            call["printed"] = printed.getvalue()[:MAX_PRINTED]
            call["args"] = _state(list(args)), _state(kwargs)
            calls.append(call)

    recorded.__name__ = getattr(function, "__name__", name)
    return recorded


def record(test_name: str, source: str, function: str, arguments: list[tuple[str, bool]], user: dict) -> None:
    """Run the test cell's `source` in a fresh namespace, evaluate `arguments` [(expression, is a
    bare name)] there (falling back to the student's namespace `user`), run the test function with
    them and write the record to $IMGREC_RECORDS/<test_name>.json."""
    import builtins
    import collections

    entry = {"test": test_name, "arguments": []}
    values, started = [], time.monotonic()
    try:
        namespace = {"__name__": "__graded_test__", "__builtins__": builtins}
        exec(compile(source, f"<test cell {test_name}>", "exec"), namespace)
        test = namespace[function]
        scope = collections.ChainMap(namespace, user)
        for expression, is_name in arguments:
            try:
                value = eval(expression, namespace, scope)
            except BaseException as error:
                entry["arguments"].append({"source": expression, "raised": [exception_name(error), str(error)[:2000]],
                                           "traceback": traceback.format_exc(limit=-8)[-6000:]})
                raise
            if is_name and callable(value) and not isinstance(value, type) and not hasattr(value, "state_dict"):
                calls: list = []
                entry["arguments"].append({"source": expression, "calls": calls})
                values.append(_wrap(expression, value, calls))
            else:
                entry["arguments"].append({"source": expression, "value": encode(value)})
                values.append(value)
        test(*values)
        print(f"{test_name}: ran; the grader checks the results")
    except BaseException as error:  # the judge decides; this run only had to make the calls
        entry["stopped"] = [exception_name(error), str(error)[:2000]]
        print(f"{test_name}: stopped with {type(error).__name__}; the grader checks the results")
    finally:
        entry["seconds"] = round(time.monotonic() - started, 3)
        folder = os.environ.get("IMGREC_RECORDS", ".")
        with open(os.path.join(folder, f"{test_name}.json"), "w") as file:
            json.dump(entry, file)
