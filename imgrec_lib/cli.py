"""The command line: ``python -m imgrec_lib train | evaluate | predict`` (or ``imgrec ...``).

    python -m imgrec_lib train --data digits --epochs 4 --checkpoint checkpoints/course_cnn.pt
    python -m imgrec_lib evaluate --checkpoint checkpoints/course_cnn.pt
    python -m imgrec_lib predict my_digit.png another.jpg --top-k 3
    python -m imgrec_lib predict photo.jpg --show seen/     # and the 28x28 the model was given
    python -m imgrec_lib predict my_digit.png --device cuda  # PyTorch instead of the NumPy layers
    torchrun --nproc_per_node=2 -m imgrec_lib train --quiet # train in 2 processes (2 GPUs, or CPU cores)

Exit codes scripts can rely on: 0 success, 1 bad input (a data set, checkpoint or image that cannot
be used; the message says which and what to do), 2 a wrong command line (argparse's usage error),
130 interrupted with Ctrl-C. Errors are one line on stderr, never a traceback (set IMGREC_DEBUG=1
to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_CHECKPOINT = "checkpoints/course_cnn.pt"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m imgrec_lib",
        description="Train, evaluate and use the imgrec course CNN.",
        epilog="Exit codes: 0 ok, 1 bad input (data, checkpoint or image), 2 usage error, 130 interrupted.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate,predict}")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                         help=f"checkpoint file (default: {DEFAULT_CHECKPOINT})")
        sub.add_argument("--device", default=None,
                         help="cuda, cuda:1, mps or cpu (default: the best available; env IMGREC_DEVICE)")

    train = commands.add_parser("train", help="train a model and save a checkpoint")
    train.add_argument("--data", default="digits",
                       help="digits (embedded, offline), shapes, mnist, fashion-mnist, cifar10, or a folder "
                            "with train/ and test/, each with one sub-folder per class (default: digits)")
    train.add_argument("--root", default="data", help="where torchvision data sets live (default: data)")
    train.add_argument("--model", default="course_cnn", choices=["course_cnn", "lenet5"])
    train.add_argument("--epochs", type=_positive(int), default=None, help="number of epochs (default: the library's)")
    train.add_argument("--lr", type=_positive(float), default=None, help="peak learning rate (default: the library's)")
    train.add_argument("--batch-size", type=_positive(int), default=None,
                       help="images per step, all processes together under torchrun (default: 128)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    train.add_argument("--force", action="store_true",
                       help="replace an existing --checkpoint (without it, train refuses to overwrite one)")
    train.add_argument("--fast", action="store_true",
                       help="the fast recipe (imgrec_lib.training.RECIPES['fast']): a half-width CourseCNN, data "
                            "as tensors on the device, random shifts, rotations and zooms, label smoothing")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    common(train)

    evaluate = commands.add_parser("evaluate", help="accuracy and loss of a checkpoint on a test split")
    evaluate.add_argument("--data", default=None,
                          help="data set to evaluate on, the one the checkpoint was trained on (default: digits)")
    evaluate.add_argument("--root", default="data")
    common(evaluate)

    predict = commands.add_parser("predict", help="classify image files (PNG, JPEG; any size)")
    predict.add_argument("images", nargs="+", type=Path, help="image files")
    predict.add_argument("--top-k", type=_positive(int), default=3, help="how many classes to print (default: 3)")
    predict.add_argument("--show", type=Path, default=None, metavar="DIR",
                         help="also write the picture the model actually saw for each image into DIR, as "
                              "<image name>.seen.png, enlarged 8x: when a prediction is wrong, look there first. "
                              "Two images of one name get .seen.png and .2.seen.png; a later run replaces them")
    predict.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                         help=f"checkpoint file (default: {DEFAULT_CHECKPOINT})")
    predict.add_argument("--device", default="numpy",
                         help="numpy (the default): the course's own NumPy layers run the trained net, and predict "
                              "starts without importing PyTorch; or cpu, cuda, cuda:1, mps to run it with PyTorch "
                              "(IMGREC_DEVICE is not read here)")
    return parser


def _positive(kind: type):
    """argparse type for a count (``int``: at least 1) or a rate (``float``: above 0). A wrong one is
    a usage error (exit 2), like any other."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be at least 1, got {text}" if kind is int else
                                             f"must be above 0, got {text}")
        return value
    return parse


def train(args: argparse.Namespace) -> int:
    """Train in this process, or, started by torchrun, as one of several (``imgrec_lib.distributed``)."""
    from . import distributed

    if not distributed.launched_by_torchrun():
        return _train(args, args.device)
    device = distributed.setup(args.device)
    try:
        return _train(args, device)
    finally:
        distributed.teardown()


def _train(args: argparse.Namespace, device: "str | torch.device | None") -> int:
    from . import augment, checkpoint, data, distributed, models, training
    from .device import seed_everything

    recipe = training.RECIPES["fast" if args.fast else "default"]
    if not distributed.is_main():
        distributed.barrier()  # under torchrun rank 0 reads (or downloads) the data first, the others after it
    train_data = data.get_dataset(args.data, "train", root=args.root)
    if args.data == "digits":  # + 480 printed digits: no hand in MNIST draws a printed 1's foot (augment.py)
        train_data = augment.with_printed_digits(train_data)
    test_data = data.get_dataset(args.data, "test", root=args.root)
    if distributed.is_main():
        distributed.barrier()
    folder = Path(args.data)
    if folder.is_dir() and not (folder / "train").is_dir() and distributed.is_main():
        print(f"note: {folder} has no train/ and test/ sub-folders, so the same images train and test the "
              f"model: its test accuracy only says how well it learned them by heart. For an honest figure "
              f"put some images of each class into {folder / 'test'}/<class>/ and the rest into "
              f"{folder / 'train'}/<class>/.", file=sys.stderr)
    given = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size}
    options = dict(recipe["fit"], **{name: value for name, value in given.items() if value is not None})
    epochs = options["epochs"]
    if args.resume:
        done = checkpoint.load_checkpoint(args.checkpoint).get("epoch", 0)
        if done >= epochs:
            raise ValueError(f"{args.checkpoint} is already trained for {done} epochs: pass --epochs with more "
                             f"than {done} to train it further")
    elif Path(args.checkpoint).exists() and not args.force:
        raise ValueError(f"{args.checkpoint} already exists: pass --force to replace it, --resume to train it "
                         f"further, or another --checkpoint")
    image, _ = train_data[0]
    channels, height, _ = image.shape
    seed_everything(args.seed, deterministic=True)  # the same seed, the same starting weights and checkpoint
    net = models.build_model(args.model, in_channels=channels, num_classes=len(data.classes_of(train_data)),
                             image_size=height, **(recipe["model"] if args.model == "course_cnn" else {}))
    processes = f" in {distributed.world_size()} processes" if distributed.world_size() > 1 else ""
    if distributed.is_main():  # one process speaks for all
        print(f"training {args.model} ({models.count_parameters(net):,} parameters) on {args.data}{processes}: "
              f"{len(train_data):,} train / {len(test_data):,} test images")
    history = training.fit(net, train_data, test_data, device=device,
                           checkpoint=args.checkpoint, resume=args.resume, progress=not args.quiet,
                           seed=args.seed, **options)
    if distributed.is_main():
        print(f"test accuracy {history.test_accuracy[-1]:.2%} after {len(history.train_loss)} epochs "
              f"({sum(history.epoch_seconds):.1f} s); checkpoint saved to {args.checkpoint}")
    return EXIT_OK


def evaluate(args: argparse.Namespace) -> int:
    from . import checkpoint, data, training

    net, ckpt = checkpoint.load_model(args.checkpoint, device=args.device)
    name = args.data or "digits"
    test_data = data.get_dataset(name, "test", root=args.root)
    if list(data.classes_of(test_data)) != list(ckpt["classes"]):
        raise ValueError(f"{args.checkpoint} was trained on classes {ckpt['classes']}, "
                         f"but {name} has {data.classes_of(test_data)}: pass the matching --data")
    metrics = training.evaluate(net, test_data, device=args.device)
    print(f"{name} test split: accuracy {metrics['accuracy']:.2%}, loss {metrics['loss']:.4f} "
          f"({len(test_data):,} images)")
    return EXIT_OK


def predict(args: argparse.Namespace) -> int:
    from . import checkpoint, inference, numpy_net

    device = None if args.device == "numpy" else args.device
    if device is not None:
        from .device import available_devices, pick_device

        try:
            pick_device(device)
        except ValueError:
            raise ValueError(f"--device {device} is not available on this machine: use numpy (the default) or one "
                             f"of {', '.join(available_devices())}") from None
    net = None
    if device is None:
        ckpt = checkpoint.load_checkpoint(args.checkpoint, as_numpy=True)
        if ckpt["model_name"] in numpy_net.FORWARD:
            net = numpy_net.from_checkpoint(ckpt, args.checkpoint)
    if net is None:  # --device cpu, cuda, mps; or a model only PyTorch can run
        net, ckpt = checkpoint.load_model(args.checkpoint, device=device)
    if args.show is not None:
        if args.show.exists() and not args.show.is_dir():
            raise ValueError(f"--show {args.show} is a file: give a folder to write the pictures into")
        args.show.mkdir(parents=True, exist_ok=True)
    status, written = EXIT_OK, set()
    for path in args.images:  # one at a time, so one bad file does not hide the others' answers
        try:
            x = inference.load_pixels(path, ckpt["input_shape"])
        except (inference.ImageError, inference.NoDigitError) as err:
            print(f"error: {err}", file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        if isinstance(net, numpy_net.NumpyNet):
            prediction = numpy_net.predict_array(net, x, ckpt["classes"], top_k=args.top_k)
        else:
            import torch

            prediction = inference.predict_tensor(net, torch.from_numpy(x), ckpt["classes"], top_k=args.top_k,
                                                  device=device)
        ranked = ", ".join(f"{label} {p:.1%}" for label, p in prediction.top_k)
        seen = ""
        if args.show is not None:
            seen_path, n = args.show / f"{path.name}.seen.png", 1
            while seen_path in written:  # two images of the same name from different folders
                n += 1
                seen_path = args.show / f"{path.name}.{n}.seen.png"
            written.add(seen_path)
            inference.save_seen(x, seen_path)
            seen = f" (saw {seen_path})"
        print(f"{path}: {ranked}{seen}")
    return status


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (``python -m imgrec_lib`` exits with it)."""
    args = build_parser().parse_args(argv)  # exits with 2 on a usage error
    from .checkpoint import CheckpointError
    from .inference import ImageError

    expected: tuple[type[Exception], ...] = (CheckpointError, ImageError, ValueError, RuntimeError)
    if args.command != "predict":  # predict reads no data set: it starts without torchvision (~1.5 s of imports)
        from .data import DataError
        expected += (DataError,)
    try:
        return {"train": train, "evaluate": evaluate, "predict": predict}[args.command](args)
    except expected as err:
        if os.environ.get("IMGREC_DEBUG"):  # IMGREC_DEBUG=1 shows the full traceback
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
