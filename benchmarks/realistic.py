"""Two sections of ``make bench`` (issue 14): reading real people's digits, and reproducible training.

    realistic     the project's realistic set (scripts/make_realistic_digits.py, 450 images in 15
                  categories) through ``python -m imgrec_lib predict``'s pipeline, for the models of
                  `make train` and of `make train FAST=1` (seeds 0-2): top-1 accuracy overall and per
                  category, and the milliseconds to read, preprocess and classify a 1600x1200
                  phone-style JPEG on one CPU core
    reproducible  `make train` (the default recipe) for seeds 0-4: each seed's test accuracy on the
                  embedded digits, and whether seed 0 trained twice gives the same checkpoint

Each model is trained by the command line itself (``cli.main(["train", ...])``), so the figures are
those of `make train`. ``bench.py`` runs both; run alone: ``python benchmarks/realistic.py``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from imgrec_lib import checkpoint, cli, inference  # noqa: E402
import make_realistic_digits  # noqa: E402

TARGETS = {
    "realistic_accuracy": 0.95,  # top-1 over the realistic set, both models ...
    "realistic_category": 0.90,  # ... and no category below this
    "photo_ms": 50.0,  # read + preprocess + classify a 1600x1200 JPEG, one CPU core
    "make_train_accuracy": 0.97,  # `make train`'s test accuracy for every seed 0-4
}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def train(path: Path, seed: int, fast: bool = False) -> dict:
    """Train as `make train` does (``--fast`` for FAST=1); return the checkpoint's metrics and the
    SHA-256 of its weights."""
    argv = ["train", "--data", "digits", "--checkpoint", str(path), "--force", "--quiet", "--seed", str(seed),
            "--device", "cpu"] + (["--fast"] if fast else [])
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # stdout is for the benchmark's JSON
        status = cli.main(argv)
    if status != 0:
        raise RuntimeError(f"training failed: python -m imgrec_lib {' '.join(argv)}")
    saved = checkpoint.load_checkpoint(path)
    weights = b"".join(t.cpu().numpy().tobytes() for t in saved["state_dict"].values())
    return {"seed": seed, "test_accuracy": saved["metrics"]["test_accuracy"],
            "seconds": time.perf_counter() - start, "sha256": hashlib.sha256(weights).hexdigest()}


def accuracy_by_category(model_path: Path, folder: Path) -> dict:
    """Top-1 accuracy of a checkpoint over the realistic set in ``folder``, overall and per category,
    with the files it got wrong; a picture the pipeline finds no digit in is wrong ("no digit")."""
    net, saved = checkpoint.load_model(model_path, device="cpu")
    rows = list(csv.DictReader(open(folder / "labels.csv")))
    right, total, wrong = Counter(), Counter(), []
    for r in rows:
        try:
            label = inference.predict_files(net, [folder / r["path"]], saved["classes"], device="cpu")[0].label
        except inference.NoDigitError:
            label = "no digit"
        total[r["category"]] += 1
        right[r["category"]] += label == r["label"]
        if label != r["label"]:
            wrong.append(f"{r['path']} -> {label}")
    per_category = {c: right[c] / total[c] for c in make_realistic_digits.CATEGORIES if total[c]}
    return {"accuracy": sum(right.values()) / len(rows), "per_category": per_category,
            "lowest_category": min(per_category.values()), "wrong": wrong}


def photo_milliseconds(model_path: Path, photo: Path, repeats: int = 21) -> float:
    """Median milliseconds to read a 1600x1200 JPEG, preprocess it and classify it, one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net, saved = checkpoint.load_model(model_path, device="cpu")
        inference.predict_files(net, [photo], saved["classes"])  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            inference.predict_files(net, [photo], saved["classes"])
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)
    finally:
        torch.set_num_threads(threads)


def bench_realistic_and_reproducible(seeds: list[int], quick: bool = False,
                                     realistic_seeds: int = 3) -> tuple[dict, dict]:
    """Both sections at once: the `make train` models of the first ``realistic_seeds`` seeds, and
    `make train FAST=1`'s of the same seeds, read the realistic set; all of ``seeds`` serve the
    reproducibility check."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        log("realistic digits: writing the set")
        make_realistic_digits.make_set(tmp / "set")
        runs = []
        for seed in seeds:
            runs.append(train(tmp / f"default_{seed}.pt", seed))
            log(f"make train, seed {seed}: {runs[-1]['test_accuracy']:.2%} in {runs[-1]['seconds']:.0f} s")
        again = train(tmp / "default_0_again.pt", seeds[0])
        models = {}
        for i, seed in enumerate(seeds[:realistic_seeds]):  # seed 0 keeps the plain names
            fast = train(tmp / f"fast_{seed}.pt", seed, fast=True)
            log(f"make train FAST=1, seed {seed}: {fast['test_accuracy']:.2%}")
            suffix = f", seed {seed}" if i else ""
            models[f"make train{suffix}"] = (tmp / f"default_{seed}.pt", runs[i])
            models[f"make train FAST=1{suffix}"] = (tmp / f"fast_{seed}.pt", fast)
        realistic = {"images": len(list(csv.DictReader(open(tmp / "set" / "labels.csv")))),
                     "categories": list(make_realistic_digits.CATEGORIES), "models": {}}
        for name, (path, run) in models.items():
            result = accuracy_by_category(path, tmp / "set")
            result["mnist_test_accuracy"] = run["test_accuracy"]
            realistic["models"][name] = result
            log(f"realistic digits, {name}: {result['accuracy']:.1%}, lowest category {result['lowest_category']:.1%}")
        photo = tmp / "set" / "photos" / "3_1.jpg"  # 1600x1200
        realistic["photo_size"] = list(inference.read_image(photo).shape[::-1])
        realistic["photo_ms"] = photo_milliseconds(models["make train"][0], photo, repeats=5 if quick else 21)
        log(f"a {realistic['photo_size'][0]}x{realistic['photo_size'][1]} JPEG read, preprocessed, classified: "
            f"{realistic['photo_ms']:.1f} ms")
    reproducible = {"recipe": "make train (RECIPES['default'])", "runs": runs,
                    "same_checkpoint_twice": again["sha256"] == runs[0]["sha256"],
                    "lowest_accuracy": min(r["test_accuracy"] for r in runs)}
    return realistic, reproducible


def check_targets(realistic: dict | None, reproducible: dict | None) -> dict:
    """Met (True), not met (False) or not measured (None) for this file's targets."""
    models = (realistic or {}).get("models", {}).values()
    return {
        "realistic_95_no_category_below_90": None if not models else all(
            m["accuracy"] >= TARGETS["realistic_accuracy"] and m["lowest_category"] >= TARGETS["realistic_category"]
            for m in models),
        "photo_within_50_ms": None if not realistic else realistic["photo_ms"] <= TARGETS["photo_ms"],
        "make_train_97_every_seed": None if not reproducible or len(reproducible["runs"]) < 5 else
            reproducible["lowest_accuracy"] >= TARGETS["make_train_accuracy"],
        "same_seed_same_checkpoint": None if not reproducible else reproducible["same_checkpoint_twice"],
    }


def results_md_lines(realistic: dict | None, reproducible: dict | None, met) -> tuple[list[str], list[str]]:
    """Rows for RESULTS.md's targets table, and this file's own sections; ``met`` formats a flag."""
    targets = check_targets(realistic, reproducible)
    models = (realistic or {}).get("models", {})
    rows = [
        f"| >= {TARGETS['realistic_accuracy']:.0%} top-1 on the realistic digits, no category below "
        f"{TARGETS['realistic_category']:.0%} (`make train` and FAST=1 models) | "
        + ("; ".join(f"{n}: {m['accuracy']:.1%}, lowest {m['lowest_category']:.1%}" for n, m in models.items()) or "-")
        + f" | {met(targets['realistic_95_no_category_below_90'])} |",
        f"| read, preprocess and classify a 1600x1200 JPEG in <= {TARGETS['photo_ms']:.0f} ms, one core | "
        + (f"{realistic['photo_ms']:.1f} ms" if realistic else "-") + f" | {met(targets['photo_within_50_ms'])} |",
        f"| `make train` >= {TARGETS['make_train_accuracy']:.0%} test accuracy for each seed 0-4 | "
        + (", ".join(f"{r['test_accuracy']:.1%}" for r in reproducible["runs"]) if reproducible else "-")
        + f" | {met(targets['make_train_97_every_seed'])} |",
        "| `make train` twice with one seed gives the same checkpoint | "
        + ("same" if reproducible and reproducible["same_checkpoint_twice"] else "different" if reproducible else "-")
        + f" | {met(targets['same_seed_same_checkpoint'])} |",
    ]
    sections = []
    if models:
        categories = realistic["categories"]
        sections += ["", f"## Realistic digits ({realistic['images']} images, scripts/make_realistic_digits.py)", "",
                     "| model | MNIST test | all | " + " | ".join(categories) + " |",
                     "|---|---|---|" + "---|" * len(categories)]
        sections += [f"| {n} | {m['mnist_test_accuracy']:.1%} | {m['accuracy']:.1%} | "
                     + " | ".join(f"{m['per_category'][c]:.0%}" for c in categories) + " |" for n, m in models.items()]
        sections += ["", "Misread: " + "; ".join(f"{n}: " + (", ".join(m["wrong"]) or "none") for n, m in models.items())]
    return rows, sections


if __name__ == "__main__":
    realistic, reproducible = bench_realistic_and_reproducible([0, 1, 2, 3, 4])
    print(json.dumps({"realistic": realistic, "reproducible": reproducible,
                      "targets": check_targets(realistic, reproducible)}, indent=2))
