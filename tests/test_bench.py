"""benchmarks/bench.py: `--quick` runs, prints one JSON object, and writes RESULTS.md from it.

The figures themselves are not checked here (speed goals are the benchmark's business); only that
the benchmark works in a fresh clone, its JSON has the fields RESULTS.md reports, and the targets
table agrees with the figures.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--skip", "time_to_accuracy",
         "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout), out


def test_quick_run_prints_one_json_object_with_the_machine(quick_run):
    results, out = quick_run
    assert results["machine"]["cpu_count"] >= 1 and results["machine"]["device"] in ("cpu", "cuda", "mps")
    assert set(results) >= {"machine", "throughput", "conv", "inference", "targets", "bench_seconds"}
    assert "time_to_accuracy" not in results and "notebooks" not in results  # skipped
    assert json.loads((out / "results.json").read_text()) == results


def test_figures_are_positive_and_ratios_agree_with_them(quick_run):
    results, _ = quick_run
    t, c = results["throughput"], results["conv"]
    for key in ("dataloader_images_per_s", "on_device_images_per_s", "on_device_augmented_images_per_s"):
        assert t[key] > 0, key
    assert t["speedup"] == pytest.approx(t["on_device_images_per_s"] / t["dataloader_images_per_s"])
    assert c["forward_ratio"] == pytest.approx(c["numpy_forward_ms"] / c["torch_forward_ms"])
    assert c["forward_max_abs_error"] < 1e-3  # the NumPy conv computes the same thing
    assert results["inference"]["single_image_ms"] > 0 and results["inference"]["batched_images_per_s"] > 0
    g = results["grading"]
    assert set(g["seconds"]) == {"nbgrader_serial", "sandboxed_1_worker", f"sandboxed_{g['workers']}_workers",
                                 "unsandboxed_1_worker"} and all(s > 0 for s in g["seconds"].values())
    assert g["speedup_vs_nbgrader_serial"] == pytest.approx(
        g["seconds"]["nbgrader_serial"] / g["seconds"][f"sandboxed_{g['workers']}_workers"])


def test_results_md_reports_the_run(quick_run):
    results, out = quick_run
    text = (out / "RESULTS.md").read_text()
    assert "do not edit by hand" in text and results["machine"]["date"] in text
    assert f"{results['conv']['forward_ratio']:.1f}x" in text
    conv_met = results["targets"]["conv_forward_ratio"]
    row = next(line for line in text.splitlines() if line.startswith("| NumPy conv2d forward within 1.5x"))
    assert row.endswith("| met |" if conv_met else "| **not met** |"), row
    assert "## Grading a synthetic class" in text and "| grading with N sandboxed workers" in text
    accuracy_row = next(line for line in text.splitlines() if line.startswith("| >= 99.0%"))
    assert accuracy_row.endswith("| not measured |"), accuracy_row  # time_to_accuracy was skipped
    assert results["inference"]["predict_process_seconds"] > 0
    row = next(line for line in text.splitlines() if line.startswith("| `python -m imgrec_lib predict` on one image"))
    assert row.endswith("| met |" if results["targets"]["predict_startup"] else "| **not met** |"), row
    assert "## Design notes and history" in text and "[HISTORY.md](HISTORY.md)" in text
    assert (ROOT / "benchmarks" / "HISTORY.md").is_file()
