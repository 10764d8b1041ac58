"""grading/values.py, recorder.py and judge.py: a test recorded in one place, decided in another.

Here both halves run in this process: `record` runs a test cell's test with the student's function
(as the sandbox does) and `judge_cell` replays the record against the instructor's cell source.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from grading import judge, recorder, values

CELL = '''def test_double(double):
    import numpy as np
    got = double(np.arange(3.0))
    assert isinstance(got, np.ndarray), f"double should return an array, got {type(got).__name__}"
    assert got.shape == (3,), f"expected shape (3,), got {got.shape}"
    assert float(abs(got - np.array([0.0, 2.0, 4.0])).max()) == 0, f"expected [0, 2, 4], got {got}"
    try:
        double("x")
    except TypeError:
        pass
    else:
        raise AssertionError("double should raise TypeError for a string")
    print("double: correct")


test_double(double)
'''


def record(cell: str, monkeypatch, tmp_path, **student) -> dict:
    """What the sandbox would send: run the cell's test with the student's objects, read the record."""
    monkeypatch.setenv("IMGREC_RECORDS", str(tmp_path))
    before, name, arguments, _ = judge.split_test_cell(cell)
    recorder.record("test_x", before, name, arguments, dict(student))
    return json.loads((tmp_path / "test_x.json").read_text())


def verdict(cell: str, rec: dict) -> dict:
    return judge.judge_cell("test_x", cell, json.loads(json.dumps(rec)))


def right(x):
    if isinstance(x, str):
        raise TypeError("not a number")
    return 2 * np.asarray(x)


def test_values_keep_their_types_and_lying_objects_arrive_plain():
    class Liar(np.ndarray):
        def __eq__(self, other):
            return np.ones(np.shape(self), bool)

    class LyingFloat(float):
        def __sub__(self, other):
            return 0.0

    for value in [1, 2.5, True, None, "s", b"b", (1, [2.0]), {"k": (1,)}, {1, 2}, np.float32(1.5), np.int64(3),
                  np.arange(6).reshape(2, 3), torch.ones(2, dtype=torch.bfloat16), torch.Size([2, 3]), 1 + 2j]:
        back = values.decode(json.loads(json.dumps(values.encode(value))))
        assert type(back) is type(value), (value, back)
        assert repr(back) == repr(value) or (isinstance(value, torch.Tensor) and torch.equal(back, value))
    liar = values.decode(values.encode(np.arange(3.0).view(Liar)))
    assert type(liar) is np.ndarray and not (liar == np.zeros(3)).all()
    lying = values.decode(values.encode(LyingFloat(2.0)))
    assert type(lying) is float and lying - 1.0 == 1.0
    opaque = values.decode(values.encode(x for x in []))
    assert "generator" in repr(opaque)
    with pytest.raises(TypeError):
        opaque.shape


def test_a_right_answer_passes_and_a_wrong_one_fails_with_the_tests_message(monkeypatch, tmp_path):
    good = verdict(CELL, record(CELL, monkeypatch, tmp_path, double=right))
    assert good["passed"] and "double: correct" in good["outputs"][0]["text"]
    bad = verdict(CELL, record(CELL, monkeypatch, tmp_path, double=lambda x: 3 * np.asarray(x)))
    assert not bad["passed"]
    error = bad["outputs"][-1]
    assert error["ename"] == "AssertionError" and "expected [0, 2, 4], got [0. 3. 6.]" in error["evalue"]
    no_raise = verdict(CELL, record(CELL, monkeypatch, tmp_path, double=lambda x: 2 * np.asarray(x, dtype=object)))
    assert not no_raise["passed"]


def test_what_the_student_controls_in_the_record_cannot_pass_a_wrong_answer(monkeypatch, tmp_path):
    rec = record(CELL, monkeypatch, tmp_path, double=lambda x: 3 * np.asarray(x))
    forged = json.loads(json.dumps(rec))
    forged.pop("stopped", None)                       # "the test ran to the end"
    forged["arguments"][0]["calls"] = forged["arguments"][0]["calls"][:1]  # and the raise? not recorded
    assert not verdict(CELL, forged)["passed"]
    forged["arguments"][0]["calls"][0]["result"] = "ok"  # a string instead of the array
    assert not verdict(CELL, forged)["passed"]
    forged["arguments"][0] = {"source": "double", "value": {"opaque": "function"}}
    assert not verdict(CELL, forged)["passed"]
    assert not verdict(CELL, None)["passed"]          # nothing recorded at all
    huge = {"ndarray": {"dtype": "float64", "shape": [10**7], "data": ""}}
    forged["arguments"][0] = {"source": "double", "calls": [{"result": huge, "args": [None, None]}]}
    result = verdict(CELL, forged)
    assert not result["passed"] and "too large" in result["outputs"][-1]["evalue"]


def test_in_place_changes_and_file_paths_are_replayed(monkeypatch, tmp_path):
    cell = '''def test_step(step, name_of):
    import numpy as np
    p = np.ones(3)
    assert step(p) is None
    assert (p == 0.5).all(), f"step should halve p in place, got {p}"
    import tempfile, os
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "seven.png")
        assert name_of(path) == (path, 7), name_of(path)


test_step(step, name_of)
'''

    def step(p):
        p *= 0.5

    rec = record(cell, monkeypatch, tmp_path, step=step, name_of=lambda path: (path, 7))
    assert verdict(cell, rec)["passed"], verdict(cell, rec)
    rec = record(cell, monkeypatch, tmp_path, step=lambda p: None, name_of=lambda path: ("other", 7))
    assert not verdict(cell, rec)["passed"]


def test_a_probe_returns_plain_values_the_test_checks(monkeypatch, tmp_path):
    cell = '''def describe(Net):
    net = Net()
    return {"params": sum(p.numel() for p in net.parameters())}


def test_net(facts):
    assert facts["params"] == 4 * 3 + 3, f"expected 15 parameters, got {facts['params']}"


test_net(describe(Net))
'''
    good = record(cell, monkeypatch, tmp_path, Net=lambda: torch.nn.Linear(4, 3))
    assert verdict(cell, good)["passed"]
    bad = record(cell, monkeypatch, tmp_path, Net=lambda: torch.nn.Linear(4, 4))
    assert "expected 15 parameters, got 20" in verdict(cell, bad)["outputs"][-1]["evalue"]
    broken = record(cell, monkeypatch, tmp_path, Net=lambda: 1 / 0)
    assert "ZeroDivisionError" in verdict(cell, broken)["outputs"][-1]["evalue"]


def test_the_test_gets_plain_copies_and_clean_builtins_in_the_sandbox_too(monkeypatch, tmp_path):
    """An object of the student's cannot watch the test's arithmetic (and copy the expected values
    into the record), and a student's `abs = ...` does not break the test's run in the sandbox."""
    seen = []

    class Watcher(np.ndarray):
        def __sub__(self, other):
            seen.append(np.asarray(other))
            return np.zeros(np.shape(other))
        __rsub__ = __sub__

    rec = record(CELL, monkeypatch, tmp_path, double=lambda x: np.zeros(3).view(Watcher) if not isinstance(x, str)
                 else right(x), abs=lambda x: 0.0)
    assert not seen, "the test handed the expected values to the student's object"
    assert rec["stopped"][0] == "AssertionError"  # the wrong zeros fail in the sandbox as in the judge
    assert not verdict(CELL, rec)["passed"]
    assert verdict(CELL, record(CELL, monkeypatch, tmp_path, double=right, abs=lambda x: 0.0))["passed"]


def test_a_test_cell_must_end_with_a_call_of_its_test():
    with pytest.raises(judge.NotGradable):
        judge.split_test_cell("def test_x(f):\n    pass\n\nprint('no call')\n")
    before, name, arguments, after = judge.split_test_cell(CELL + "### END HIDDEN TESTS\n")
    assert name == "test_double" and arguments == [("double", True)] and "END HIDDEN" in after
