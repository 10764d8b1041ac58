"""scripts/gpu_check.py, the check to run on a CUDA machine, runs (here on the CPU, in its quick mode)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_quick_run_passes_every_check_and_writes_json(tmp_path):
    result = run("--quick", "--allow-cpu", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    checks = ["fit", "fit_fp16_gradscaler_resume", "fit_fast_recipe", "inference"]
    assert report["failed"] == [] and all(report[c]["ok"] for c in checks)
    assert report["fit"]["digits_differing_from_cpu"] == 0  # the CPU compared with itself
    assert report["inference"]["same_top1_as_cpu"] == report["inference"]["files"] == 10


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the full check runs")
def test_without_a_gpu_it_says_so_and_exits_2():
    result = run()
    assert result.returncode == 2 and "no CUDA GPU here" in result.stdout
