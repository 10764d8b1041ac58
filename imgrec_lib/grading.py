"""Graded test cells that a student's code cannot talk into passing (instructors and maintainers).

A lesson's test cells run in the same kernel as the student's answers, after them, so an answer
cell could rebind ``abs``, replace ``numpy.allclose`` or ``torch.nn.functional.mse_loss``, or wrap
the reference function a test compares with. Every graded test cell therefore

1. is written as a function ``test_x(exercise_function, ..., check)`` that imports the builtins and
   modules it uses inside itself, so names rebound in the notebook do not reach it;
2. is run by ``run_checked``, loaded fresh in the cell with ``importlib.reload`` (so nothing done to
   this module before counts), which wraps each of the student's functions: every call's result is
   reduced to a *fingerprint* (shape, the sums of its positive and negative parts, its sum of
   squares, two strided sums) and compared with the fingerprint of the instructor's answer to the
   same call, stored in the cell as numbers. A patched reference can make the readable checks
   pass, but not the fingerprints, which hold no reference to anything the student can change.

The fingerprints are recorded from the instructor's solution: a cell with ``fingerprints=None``
runs its checks, prints ``FINGERPRINTS [...]`` and passes; ``scripts/record_fingerprints.py``
executes a solution notebook that way and writes the numbers into the cells (see
docs/LESSON_GUIDE.md). Not protected, and said so in docs/INSTRUCTOR_GUIDE.md: patching the
``builtins`` module, ``importlib`` or ``sys.modules``, rewriting files, or C-level tampering.
"""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any, Callable, Sequence

import numpy as np
import torch

RECORD_PREFIX = "FINGERPRINTS "


def _plain_float(x: Any) -> float:
    """``x`` as a Python float read from its stored value: a subclass of float or int that redefines
    ``__float__`` (or ``-``, ``==``) cannot change the number a fingerprint sees."""
    if isinstance(x, float):
        return float.__float__(x)
    if isinstance(x, int):
        return float(int.__int__(x))
    return float(np.asarray(x, dtype=np.float64))


def fingerprint(x: Any, out: list[float] | None = None) -> list[float]:
    """A list of numbers that changes when ``x`` changes: arrays, tensors, numbers, names, containers.

    An array or tensor gives its number of dimensions, its shape, the sums of its positive and of
    its negative parts, its sum of squares and two strided sums; a module its parameters; a file
    path the letters of its name (not its folder); a list, tuple or dict its length and items.
    Arrays are read as plain float64 ndarrays, so an ndarray subclass whose ``-`` or ``sum`` lies
    is summed by NumPy's own code.
    """
    out = [] if out is None else out
    if isinstance(x, torch.nn.Module):
        for p in x.parameters():
            fingerprint(p, out)
    elif isinstance(x, torch.Tensor) and x.ndim == 0:
        out.append(float(x.detach().cpu().double()))
    elif isinstance(x, (bool, int, float, np.generic)) or isinstance(x, np.ndarray) and x.ndim == 0:
        out.append(_plain_float(x))
    elif isinstance(x, (torch.Tensor, np.ndarray)):
        a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else x
        shape, a = a.shape, np.asarray(a, dtype=np.float64).ravel()
        pos, neg = abs(a) + a, abs(a) - a
        out += [len(shape), *shape, pos.sum(), neg.sum(), (a * a).sum(), pos[::3].sum(), neg[1::4].sum()]
    elif isinstance(x, (str, PurePath)):
        name = str(x).replace("\\", "/").split("/")[-1]
        out += [len(name), sum((i + 1) * ord(c) for i, c in enumerate(name))]
    elif isinstance(x, (list, tuple, dict)):
        out.append(len(x))
        for key in (sorted(x, key=str) if isinstance(x, dict) else []):
            fingerprint(key, out)
            fingerprint(x[key], out)
        for item in (x if not isinstance(x, dict) else []):
            fingerprint(item, out)
    return out


def close(got: Sequence[float], want: Sequence[float], rtol: float) -> bool:
    """Same length and every number within ``rtol * (1 + |want|)``."""
    return len(got) == len(want) and all(abs(float(g) - float(w)) <= rtol * (1 + abs(float(w)))
                                         for g, w in zip(got, want))


def run_checked(test: Callable, functions: Sequence[tuple[Callable, bool | None]],
                fingerprints: list[list[float]] | None, rtol: float) -> None:
    """Run ``test(*functions, check)`` with each function's results compared with ``fingerprints``.

    ``functions``: ``(function, in_place)`` pairs; ``in_place=True`` also fingerprints the arguments
    after the call (an optimizer step that updates its parameters), ``False`` requires the arguments
    unchanged, ``None`` passes the function unwrapped (a class, a trained model). ``check(value,
    what)`` compares a value the test computed with the next fingerprint. A call with the same
    arguments as the one before it (a timing loop) is compared with the same fingerprint. A result
    that differs is reported after the test's own checks, so their message, which says what was
    expected, comes first.
    ``fingerprints=None`` records instead: the test runs and ``FINGERPRINTS [...]`` is printed.
    """
    recording = fingerprints is None
    recorded: list[list[float]] = []
    calls: dict[str, Any] = {"next": 0, "last": None, "wrong": ""}

    def expect(got: list[float], what: str) -> list[float]:
        if recording:
            recorded.append(got)
            return got
        assert calls["next"] < len(fingerprints), f"{what} was called or checked more often than the test expects"
        want = fingerprints[calls["next"]]
        calls["next"] += 1
        return want

    def wrap(function: Callable, in_place: bool) -> Callable:
        name = getattr(function, "__name__", "your function")

        def checked(*args, **kwargs):
            before = fingerprint([args, kwargs])
            result = function(*args, **kwargs)
            after = fingerprint([args, kwargs])
            got = fingerprint([result, args, kwargs] if in_place else [result])
            if not in_place:
                assert close(after, before, rtol), f"{name} changed the arrays it was given: compute new ones instead"
            if calls["last"] is not None and close(before, calls["last"][0], rtol):
                want = calls["last"][1]  # the same call again
            else:
                want = expect(got, name)
            calls["last"] = (before, want)
            if not close(got, want, rtol) and not calls["wrong"]:  # reported after the test's own checks
                calls["wrong"] = (f"{name}: call {calls['next']} of this test gave a result that differs from the "
                                  f"instructor's answer (fingerprint {[float(v) for v in got[:8]]}, expected "
                                  f"{[float(v) for v in want[:8]]})")
            return result

        checked.__name__ = name
        return checked

    def check(value: Any, what: str) -> None:
        got = fingerprint([value])
        want = expect(got, what)
        assert close(got, want, rtol), (f"{what}: differs from the instructor's (fingerprint "
                                        f"{[float(v) for v in got[:8]]}, expected {want[:8]})")

    test(*[f if in_place is None else wrap(f, in_place) for f, in_place in functions], check)
    assert not calls["wrong"], calls["wrong"]
    if recording:
        print(RECORD_PREFIX + json.dumps(recorded))
    else:
        assert calls["next"] == len(fingerprints), (
            f"the test checked {calls['next']} results of {len(fingerprints)}: was a call skipped?")
