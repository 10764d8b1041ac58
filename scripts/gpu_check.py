"""Does the course's training code run unchanged on a CUDA GPU? One script, for a machine that has one.

    python scripts/gpu_check.py              # on a CUDA machine: every check, exit 1 if one fails
    python scripts/gpu_check.py --quick      # tiny runs; with --allow-cpu also on a CPU (a smoke test)

It needs only the library's own dependencies (torch, torchvision, numpy, pillow, tqdm), not
Jupyter. Each check trains or predicts on the device that ``pick_device()`` chooses and compares
with the CPU where that makes sense:

- ``fit`` with the default recipe (bf16 autocast on Ampere and newer) reaches the CPU's bar, and a
  checkpoint saved from the GPU loads on the CPU with the same predictions;
- the fp16 + ``GradScaler`` path (what older GPUs get), with a checkpoint and a resume;
- ``fit`` with the fast recipe (data on the device, augmentation), and with ``compile=True``;
- ``predict_files`` and ``saliency`` on the GPU agree with the CPU.

Prints one line per check and a JSON summary (also written to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from PIL import Image
from torch.utils.data import Subset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imgrec_lib import checkpoint, data, inference, training  # noqa: E402
from imgrec_lib.device import amp_dtype, pick_device  # noqa: E402
from imgrec_lib.models import CourseCNN  # noqa: E402


def predictions(model, dataset, device) -> torch.Tensor:
    return training.predict_batches(model, dataset, device=device)[0].argmax(dim=1)


def check_fit(device, train, test, epochs, bar, folder):
    torch.manual_seed(0)
    net = CourseCNN()
    history = training.fit(net, train, test, epochs=epochs, device=device, progress=False,
                           checkpoint=folder / "fit.pt")
    on_cpu, _ = checkpoint.load_model(folder / "fit.pt", device="cpu")
    differ = int((predictions(net, test, device).cpu() != predictions(on_cpu, test, "cpu")).sum())
    ok = history.test_accuracy[-1] >= bar and differ <= max(2, len(test) // 200)
    return ok, {"accuracy": history.test_accuracy[-1], "bar": bar, "digits_differing_from_cpu": differ,
                "seconds": sum(history.epoch_seconds), "amp_dtype": str(amp_dtype(device))}


def check_fp16(device, train, test, epochs, bar, folder):
    with mock.patch.object(torch.cuda, "is_bf16_supported", lambda *a, **k: False):  # an older GPU
        torch.manual_seed(0)
        path = folder / "fp16.pt"
        training.fit(CourseCNN(), train, test, epochs=epochs, device=device, progress=False, checkpoint=path)
        history = training.fit(CourseCNN(), train, test, epochs=epochs + 1, device=device, progress=False,
                               checkpoint=path, resume=True)
        scaler = checkpoint.load_checkpoint(path)["scaler_state"]
    finite = all(torch.isfinite(torch.tensor(history.train_loss)))
    needs_scaler = device.type == "cuda"
    ok = finite and history.test_accuracy[-1] >= bar and (bool(scaler) or not needs_scaler)
    return ok, {"accuracy": history.test_accuracy[-1], "bar": bar, "epochs": len(history),
                "scale": scaler.get("scale")}


def check_fast_recipe(device, train, test, epochs, bar, compile_model):
    torch.manual_seed(0)
    recipe = training.RECIPES["fast"]
    net = CourseCNN(**recipe["model"])
    start = time.perf_counter()
    history = training.fit(net, train, test, **dict(recipe["fit"], epochs=epochs), device=device, progress=False,
                           compile=compile_model)
    return history.test_accuracy[-1] >= bar, {"accuracy": history.test_accuracy[-1], "bar": bar,
                                              "seconds_with_compile": time.perf_counter() - start,
                                              "train_seconds": sum(history.epoch_seconds)}


def check_inference(device, train, folder):
    torch.manual_seed(0)
    net = CourseCNN()
    training.fit(net, Subset(train, range(0, len(train), 4)), epochs=1, device="cpu", progress=False)
    images, labels = data.load_digits_arrays("test")
    paths = []
    for i in range(0, 1000, 100):
        paths.append(folder / f"digit_{i}.png")
        Image.fromarray(images[i]).save(paths[-1])
    classes = [str(d) for d in range(10)]
    on_cpu = inference.predict_files(net.to("cpu"), paths, classes, device="cpu")
    on_device = inference.predict_files(net, paths, classes, device=device)
    same = [a.top_k[0][0] == b.top_k[0][0] for a, b in zip(on_cpu, on_device)]
    x = inference.load_image(paths[0])
    heat = inference.saliency(net, x)
    ok = all(same) and heat.shape[-2:] == x.shape[-2:] and bool(torch.isfinite(heat).all())
    return ok, {"same_top1_as_cpu": sum(same), "files": len(paths), "saliency_shape": list(heat.shape)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs (checks that the script works)")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a CUDA GPU too")
    parser.add_argument("--out", type=Path, default=None, help="folder for gpu_check.json")
    args = parser.parse_args(argv)

    device = pick_device()
    if device.type != "cuda" and not args.allow_cpu:
        print(f"no CUDA GPU here ({device.type}): nothing to check (--allow-cpu runs it anyway)")
        return 2
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else device.type
    print(f"device {device} ({name}), torch {torch.__version__}")
    train, test = data.digits("train"), data.digits("test")
    if args.quick:
        train, test = Subset(train, range(0, 4000, 4)), Subset(test, range(0, 1000, 5))
    epochs, fit_bar, fast_bar = (2, 0.3, 0.3) if args.quick else (training.DEFAULT_EPOCHS, 0.97, 0.985)
    fast_epochs = training.RECIPES["fast"]["fit"]["epochs"]

    results, failed = {"device": name, "torch": torch.__version__}, []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checks = {
            "fit": lambda: check_fit(device, train, test, epochs, fit_bar, folder),
            "fit_fp16_gradscaler_resume": lambda: check_fp16(device, train, test, max(1, epochs // 2),
                                                             fit_bar if args.quick else 0.95, folder),
            "fit_fast_recipe": lambda: check_fast_recipe(device, train, test, epochs if args.quick else fast_epochs,
                                                         fast_bar, False),
            "fit_fast_recipe_compiled": lambda: check_fast_recipe(device, train, test, 1 if args.quick else fast_epochs,
                                                                  fast_bar, True),
            "inference": lambda: check_inference(device, train, folder),
        }
        if args.quick:
            del checks["fit_fast_recipe_compiled"]  # compiling takes 15-40 s on a CPU
        for check, run in checks.items():
            try:
                ok, details = run()
            except Exception as err:  # a device error is a finding, not the end of the report
                ok, details = False, {"error": f"{type(err).__name__}: {err}"[:500]}
            results[check] = {"ok": ok, **details}
            print(f"{'PASS' if ok else 'FAIL'} {check}: {json.dumps(details)}", flush=True)
            if not ok:
                failed.append(check)
    results["failed"] = failed
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.json").write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
