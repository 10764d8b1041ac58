"""scripts/gpu_check.py, the check to run on a CUDA machine, runs (here on the CPU, in its quick mode).

Its training runs are what test_training and test_mixed_precision check on the CPU; here that the
script goes through every check end to end, learns, agrees with the CPU and writes its JSON (`--quick`:
1,000 digits, 2 epochs; about 7 s on an idle 2-core machine, most of it starting Python and torch).
"""

import importlib.util
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
    assert set(report) == {"device", "torch", "failed", *checks}  # the compiled run is left out of a short run
    assert report["fit"]["digits_differing_from_cpu"] == 0  # the CPU compared with itself
    assert report["fit_fp16_gradscaler_resume"]["epochs"] == 2  # one epoch, then one more on resuming
    assert all(report[c]["accuracy"] >= report[c]["bar"] == 0.3 for c in checks[:3])  # above chance (0.1)
    assert report["inference"]["same_top1_as_cpu"] == report["inference"]["files"] == 10
    for check in checks:
        assert f"PASS {check}:" in result.stdout, result.stdout[-2000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the full check runs")
def test_without_a_gpu_it_says_so_and_exits_2(capsys, monkeypatch):
    """In this process (a new one would spend seconds importing torch): main() returns the exit code."""
    monkeypatch.delenv("IMGREC_DEVICE", raising=False)
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([]) == 2
    assert "no CUDA GPU here" in capsys.readouterr().out
