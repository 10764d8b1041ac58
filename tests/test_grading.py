"""imgrec_lib/grading.py: fingerprints, run_checked (check and record), and the record script."""

import importlib
import json
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import imgrec_lib.grading as grading

ROOT = Path(__file__).resolve().parents[1]


def mse(a, b):
    return float(((a - b) ** 2).mean())


def mse_wrong(a, b):
    return float(abs(a - b).mean())


def cell_test_mse(mse, check):
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0])
    assert mse(a, b) >= 0
    check(mse(a, b) * 2, "twice the mse")


def record(test, functions, capsys):
    grading.run_checked(test, functions, None, rtol=1e-9)
    line = capsys.readouterr().out.strip()
    assert line.startswith(grading.RECORD_PREFIX)
    return json.loads(line[len(grading.RECORD_PREFIX):])


def test_fingerprints_tell_arrays_tensors_and_containers_apart():
    a = np.arange(6.0).reshape(2, 3)
    assert grading.fingerprint(a) == grading.fingerprint(torch.from_numpy(a))
    assert grading.fingerprint(a) != grading.fingerprint(a.reshape(3, 2))  # the shape counts
    assert grading.fingerprint(a) != grading.fingerprint(-a)  # the sign counts
    b = a.copy()
    b[1, 2] += 1e-3
    assert not grading.close(grading.fingerprint(a), grading.fingerprint(b), 1e-9)
    assert grading.fingerprint(Path("/x/seven.png")) == grading.fingerprint("seven.png")  # the folder does not
    assert grading.fingerprint({"a": 1}) != grading.fingerprint({"b": 1})
    net = torch.nn.Linear(2, 2)
    assert len(grading.fingerprint(net)) == 2 * 8 - 1  # weight (2 dims) and bias (1 dim)


def test_recorded_fingerprints_pass_the_right_answer_and_fail_a_wrong_one(capsys):
    fingerprints = record(cell_test_mse, [(mse, False)], capsys)
    assert len(fingerprints) == 2  # one call of mse (the second is the same call) and one check
    grading.run_checked(cell_test_mse, [(mse, False)], fingerprints, rtol=1e-9)
    with pytest.raises(AssertionError, match="differs from the instructor's"):
        grading.run_checked(cell_test_mse, [(mse_wrong, False)], fingerprints, rtol=1e-9)


def test_a_patched_reference_does_not_help(capsys):
    """The test compares with np.mean; a student replaces np.mean: the fingerprints still fail them."""
    def test_against_numpy(mse, check):
        a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0])
        assert abs(mse(a, b) - np.mean((a - b) ** 2)) < 1e-12

    fingerprints = record(test_against_numpy, [(mse, False)], capsys)
    real_mean = np.mean
    try:
        np.mean = lambda x: float(abs(np.sqrt(x)).sum() / x.size)  # what mse_wrong computes
        with pytest.raises(AssertionError, match="differs from the instructor's"):
            grading.run_checked(test_against_numpy, [(mse_wrong, False)], fingerprints, rtol=1e-9)
    finally:
        np.mean = real_mean


def test_a_reloaded_copy_ignores_patches_to_the_module(capsys):
    fingerprints = record(cell_test_mse, [(mse, False)], capsys)
    real = grading.run_checked
    try:
        grading.run_checked = lambda *args, **kwargs: None  # a student "disables" the checker
        fresh = importlib.reload(grading).run_checked
        with pytest.raises(AssertionError):
            fresh(cell_test_mse, [(mse_wrong, False)], fingerprints, rtol=1e-9)
    finally:
        importlib.reload(grading)
    assert grading.run_checked is not real  # a reload makes new functions


def test_arguments_changed_in_place_fail_unless_allowed():
    def scale_in_place(a):
        a *= 2
        return a

    def test_scale(scale, check):
        scale(np.ones(3))

    with pytest.raises(AssertionError, match="changed the arrays it was given"):
        grading.run_checked(test_scale, [(scale_in_place, False)], [[1, 3, 6, 0, 12, 2, 0]], rtol=1e-9)
    grading.run_checked(test_scale, [(scale_in_place, True)],
                        [grading.fingerprint([np.full(3, 2.0), (np.full(3, 2.0),), {}])], rtol=1e-9)


def test_a_skipped_call_fails(capsys):
    fingerprints = record(cell_test_mse, [(mse, False)], capsys)
    with pytest.raises(AssertionError, match="was a call skipped"):
        grading.run_checked(cell_test_mse, [(mse, False)], fingerprints + [[1, 0.0]], rtol=1e-9)


def test_record_script_writes_the_numbers_into_the_cell(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import record_fingerprints
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    cell = ("def test_double(double, check):\n    assert double(2.0) == 4.0\n\n"
            "import importlib\nimport imgrec_lib.grading\n"
            "run_checked = importlib.reload(imgrec_lib.grading).run_checked\n"
            "run_checked(test_double, [(double, False)], rtol=1e-9, fingerprints=None)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def double(x):\n    return 2 * x"),
                                         nbformat.v4.new_code_cell(cell)])
    path = tmp_path / "lesson.ipynb"
    nbformat.write(nb, path)
    assert record_fingerprints.record(path) == 0
    source = nbformat.read(path, as_version=4).cells[1].source
    assert "fingerprints=None" not in source and "fingerprints=[\n    [1, 4],\n]" in source, source
