"""benchmarks/bench.py: `--quick` runs, prints one JSON object, and writes RESULTS.md from it.

The figures themselves are not checked here (speed goals are the benchmark's business); only that
the benchmark works in a fresh clone, its JSON has the fields RESULTS.md reports, and the targets
table agrees with the figures.

One real `--quick` run end to end (a new process, as `make bench` starts it), without the sections
that only train (time_to_accuracy; throughput, whose fields and table are checked by running
bench_throughput in this process on 256 digits: its figures are the same function of any data set)
and without grading, which grades one submission four ways through the paths test_autograde and
test_lessons already run: its table and targets are checked from figures made up here.
"""

import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--skip", "time_to_accuracy", "throughput", "grading",
         "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout), out


@pytest.fixture(scope="module")
def bench():
    """benchmarks/bench.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("imgrec_bench", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_throughput(bench):
    """bench_throughput's result on the first 256 training digits (2 batches of 128 an epoch); the
    random generators it seeds are put back afterwards."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    real = bench.digits
    bench.digits = lambda split="train", **kwargs: Subset(real(split, **kwargs), range(256))
    try:
        return bench.bench_throughput(epochs=2)
    finally:
        bench.digits = real
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def test_quick_run_prints_one_json_object_with_the_machine(quick_run):
    results, out = quick_run
    assert results["machine"]["cpu_count"] >= 1 and results["machine"]["device"] in ("cpu", "cuda", "mps")
    assert set(results) >= {"machine", "conv", "inference", "targets", "bench_seconds"}
    assert not {"time_to_accuracy", "throughput", "notebooks", "grading"} & set(results)  # skipped
    assert json.loads((out / "results.json").read_text()) == results


def test_figures_are_positive_and_ratios_agree_with_them(quick_run, tiny_throughput):
    results, _ = quick_run
    t, c = tiny_throughput, results["conv"]
    for key in ("dataloader_images_per_s", "on_device_images_per_s", "on_device_augmented_images_per_s"):
        assert t[key] > 0, key
    assert t["speedup"] == pytest.approx(t["on_device_images_per_s"] / t["dataloader_images_per_s"])
    assert t["batch_size"] == 128 and t["epochs_timed"] == 1
    assert c["forward_ratio"] == pytest.approx(c["numpy_forward_ms"] / c["torch_forward_ms"])
    one = c["one_thread"]
    assert one["forward_ratio"] == pytest.approx(one["numpy_forward_ms"] / one["torch_forward_ms"])
    assert c["torch_threads"] == results["machine"]["torch_threads"]  # one_thread() gave the threads back
    assert c["forward_max_abs_error"] < 1e-3  # the NumPy conv computes the same thing
    assert results["inference"]["single_image_ms"] > 0 and results["inference"]["batched_images_per_s"] > 0


def test_results_md_reports_the_run(quick_run):
    results, out = quick_run
    text = (out / "RESULTS.md").read_text()
    assert "do not edit by hand" in text and results["machine"]["date"] in text
    assert f"{results['conv']['forward_ratio']:.1f}x" in text
    conv_met = results["targets"]["conv_forward_ratio"]
    row = next(line for line in text.splitlines() if line.startswith("| NumPy conv2d forward within 1.5x"))
    assert row.endswith("| met |" if conv_met else "| **not met** |"), row
    assert f"({results['conv']['one_thread']['forward_ratio']:.1f}x on one thread each)" in row
    assert "## Grading a synthetic class" not in text  # skipped
    row = next(line for line in text.splitlines() if line.startswith("| grading with N sandboxed workers"))
    assert row.endswith("| - | not measured |"), row
    accuracy_row = next(line for line in text.splitlines() if line.startswith("| >= 99.0%"))
    assert accuracy_row.endswith("| not measured |"), accuracy_row  # time_to_accuracy was skipped
    assert results["inference"]["predict_process_seconds"] > 0
    row = next(line for line in text.splitlines() if line.startswith("| `python -m imgrec_lib predict` on one image"))
    assert row.endswith("| met |" if results["targets"]["predict_startup"] else "| **not met** |"), row
    assert "## Design notes and history" in text and "[HISTORY.md](HISTORY.md)" in text
    assert (ROOT / "benchmarks" / "HISTORY.md").is_file()


def test_results_md_reports_the_throughput(bench, quick_run, tiny_throughput, tmp_path):
    results, _ = quick_run
    bench.write_results_md(dict(results, throughput=tiny_throughput), tmp_path / "RESULTS.md")
    text = (tmp_path / "RESULTS.md").read_text()
    t = tiny_throughput
    assert f"## Training throughput (CourseCNN, batch 128, {t['device']})" in text
    for key in ("dataloader_images_per_s", "on_device_images_per_s", "on_device_augmented_images_per_s"):
        assert f"| {t[key]:,.0f} |" in text, key
    assert f"| {t['speedup']:.2f}x |" in text


def test_lesson07_bar_reads_the_spec_model_and_the_bars_from_the_notebook(bench):
    """The section trains what the notebook specifies and judges by the graded cells' own thresholds."""
    cells = bench.lesson07_cells()
    MyCNN = bench.lesson07_spec_model(cells)
    net = MyCNN()
    assert tuple(net(torch.zeros(2, 1, 28, 28)).shape) == (2, 10)
    assert [type(m).__name__ for m in net.modules() if not list(m.children())][:3] == ["Conv2d", "ReLU", "MaxPool2d"]
    bars = bench.lesson07_bars(cells)
    assert set(bars) == {"visible", "held_out"} and 0.9 < bars["held_out"] <= bars["visible"] < 1
    results = {"lesson07_bar": {"seeds": 20, "seeds_passing": 18, "bars": bars, "runs": [],
                                "training": "t"}}
    assert bench.check_targets(results)["lesson07_bar_fair"] is False
    results["lesson07_bar"]["seeds_passing"] = 19
    assert bench.check_targets(results)["lesson07_bar_fair"] is True


def test_results_md_reports_grading_and_its_targets(bench, quick_run, tmp_path):
    results, _ = quick_run
    seconds = {"nbgrader_serial": 90.0, "sandboxed_1_worker": 80.0, "sandboxed_2_workers": 45.0,
               "unsandboxed_1_worker": 70.0}
    grading = {"lessons": {"01_convolution": 8, "05_backpropagation": 4}, "submissions": 12, "workers": 2,
               "seconds": seconds, "submissions_per_minute": {k: 60 * 12 / v for k, v in seconds.items()},
               "speedup_vs_nbgrader_serial": 2.0, "sandbox_seconds_per_submission": 10 / 12}
    figures = dict(results, grading=grading)
    figures["targets"] = dict(results["targets"], **bench.check_targets(figures))
    assert figures["targets"]["grading_speedup_1_8x"] is True and figures["targets"]["sandbox_within_1_s"] is True
    bench.write_results_md(figures, tmp_path / "RESULTS.md")
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Grading a synthetic class (12 submissions: 8 x 01_convolution, 4 x 05_backpropagation)" in text
    assert "| sandboxed 2 workers | 45.0 | 16.0 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| grading with N sandboxed workers"))
    assert row.endswith("| 2.00x (2 workers) | met |"), row
    grading["speedup_vs_nbgrader_serial"] = 1.5
    assert bench.check_targets(figures)["grading_speedup_1_8x"] is False
