"""A fast training path: the whole data set as tensors on the device, no DataLoader. Lesson 07.

    history = fit_fast(CourseCNN(**FAST_MODEL), digits("train"), digits("test"))  # 98.3-99.0% (seeds 0-4)

``training.fit`` is the loop to read first: one image at a time through a ``DataLoader``, which is
general (any data set, any transform) but pays Python work for every image. For a data set that
fits in memory, ``fit_fast`` does the same job with a handful of tensor operations per batch:

- the images are stacked once into one tensor (N, C, H, W) and moved to the device once;
- each epoch shuffles by a random permutation of indices, a batch is ``X[idx]``;
- augmentation is done on the whole batch on the device, not image by image in PIL: random shifts
  of up to ``shift`` pixels (one gather), then small random rotations and zooms (one
  ``F.affine_grid`` + ``F.grid_sample``);
- channels_last memory format, and mixed precision (bf16) on a GPU;
- a one-cycle learning-rate schedule, label smoothing, AdamW with a little weight decay;
- optionally ``torch.compile`` (meant for a GPU; its compile time has not been measured to pay
  for itself in a short CPU run).

The same code runs on a CPU and a GPU; ``benchmarks/bench.py`` measures both.
"""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .checkpoint import check_writable, save_checkpoint
from .data import as_tensors, classes_of
from .device import autocast, eval_mode, needs_grad_scaler, pick_device, seed_everything, to_channels_last
from .training import History, lr_at

# The recipe: a half-width net costs a third per epoch, and rotations and zooms make up for its size
# (the measurements behind each default: benchmarks/HISTORY.md).
FAST_MODEL: dict = dict(widths=(16, 32), dropout=0.1, pool_first=True)  # CourseCNN(**FAST_MODEL)
FAST_EPOCHS = 12
FAST_LR = 5e-3  # the peak of the one-cycle schedule (AdamW); 1e-2 was worse (default CourseCNN)
FAST_BATCH_SIZE = 128  # 256 was no cheaper per image on the CPU
FAST_DEGREES = 10.0  # random rotations of up to 10 degrees either way ...
FAST_SCALE = 0.1  # ... and zooms by 0.9-1.1

TensorPair = tuple[torch.Tensor, torch.Tensor]


def _stack(data: Dataset | TensorPair, what: str) -> TensorPair:
    """``(X float32 (N, C, H, W), y int64 (N,))`` from a Dataset or a pair of tensors."""
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"the {what} data should be a Dataset or a pair (X, y), got {len(data)} items")
        X, y = (torch.as_tensor(t) for t in data)
    else:
        if len(data) == 0:
            raise ValueError(f"the {what} data set is empty: check the path or the split you loaded")
        X, y = as_tensors(data)
    if X.dim() != 4:
        raise ValueError(f"expected {what} images of shape (N, C, H, W), got {tuple(X.shape)}")
    if len(X) == 0:
        raise ValueError(f"the {what} data set is empty: check the path or the split you loaded")
    if y.dim() != 1 or len(y) != len(X):
        raise ValueError(f"expected {what} labels of shape ({len(X)},) for {len(X)} images, got {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"the {what} labels must be integer class indices, got dtype {y.dtype}")
    if not X.dtype.is_floating_point:
        raise ValueError(f"the {what} images hold integers ({X.dtype}, e.g. pixel values 0-255): "
                         "pass floats in [0, 1], e.g. X.float() / 255")
    return X.float(), y.long()


def _check_fits(model: nn.Module, X: torch.Tensor, y: torch.Tensor, what: str) -> int:
    """Run a trial batch; return the number of model outputs or raise a clear ValueError."""
    try:
        with eval_mode(model), torch.no_grad(), autocast(X.device):  # no BatchNorm statistics from the trial batch
            out = model(X[:2])
    except (RuntimeError, ValueError, TypeError) as err:
        raise ValueError(
            f"the model cannot take the {what} images: a batch of shape {tuple(X[:2].shape)} gave "
            f"'{str(err).splitlines()[0]}'. Build the model for this image shape, or resize the images"
        ) from err
    if out.dim() != 2:
        raise ValueError(f"the model should return logits of shape (N, classes), got {tuple(out.shape)}")
    num_classes = out.shape[1]
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"the {what} labels run from {lo} to {hi}, but the model has {num_classes} outputs "
            f"(labels 0..{num_classes - 1}): build the model with num_classes={hi + 1}, or check the data set"
        )
    return num_classes


def random_shift(X: torch.Tensor, shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Move each image (N, C, H, W) by its own random offset of -shift..shift pixels in x and y.

    Pixels that move in from outside are 0 (the background of the digits). Done as one gather on
    whatever device ``X`` is on: pad, then read an (H, W) window at a random corner per image.
    ``generator`` draws the offsets (on the CPU, so a seed gives the same shifts on any device).
    Returns a new tensor of the same shape; ``shift=0`` returns ``X`` itself. Lesson 07.
    """
    if X.dim() != 4:
        raise ValueError(f"expected a batch of shape (N, C, H, W), got {tuple(X.shape)}")
    if shift < 0:
        raise ValueError(f"shift must be >= 0 pixels, got {shift}")
    if shift == 0:
        return X
    n, c, h, w = X.shape
    padded = F.pad(X, (shift, shift, shift, shift))
    dy, dx = torch.randint(0, 2 * shift + 1, (2, n, 1), generator=generator).to(X.device)
    rows = (dy + torch.arange(h, device=X.device))[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx + torch.arange(w, device=X.device))[:, None, None, :]  # (N, 1, 1, W)
    batch = torch.arange(n, device=X.device)[:, None, None, None]
    channel = torch.arange(c, device=X.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_affine(
    X: torch.Tensor, degrees: float, scale: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rotate each image (N, C, H, W) by its own random angle and zoom it by its own random factor.

    Angles are drawn uniformly from -degrees..degrees, zoom factors from 1-scale..1+scale, about the
    image centre; pixels from outside are 0. One ``F.affine_grid`` + ``F.grid_sample`` (bilinear)
    on the whole batch, on whatever device ``X`` is on; ``generator`` draws on the CPU.
    ``degrees=0`` and ``scale=0`` return ``X`` itself. Lesson 07.
    """
    if X.dim() != 4:
        raise ValueError(f"expected a batch of shape (N, C, H, W), got {tuple(X.shape)}")
    if degrees < 0 or not 0 <= scale < 1:
        raise ValueError(f"expected degrees >= 0 and 0 <= scale < 1, got degrees={degrees}, scale={scale}")
    if degrees == 0 and scale == 0:
        return X
    n = len(X)
    u = torch.rand(2, n, generator=generator) * 2 - 1  # uniform in -1..1
    angle = torch.deg2rad(u[0] * degrees)
    zoom = 1 + u[1] * scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom  # the grid maps output to input: 1/zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(theta.to(X.device, X.dtype), list(X.shape), align_corners=False)
    return F.grid_sample(X, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@torch.no_grad()
def evaluate_tensors(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on images X (N, C, H, W) and labels y (N,).

    X and y should already be on the model's device. The model's train/eval mode is restored.
    """
    loss_sum, correct = torch.zeros((), device=X.device), torch.zeros((), device=X.device)
    with eval_mode(model):
        for i in range(0, len(X), batch_size):
            with autocast(X.device):
                y_hat = model(X[i:i + batch_size]).float()
            loss_sum += F.cross_entropy(y_hat, y[i:i + batch_size], reduction="sum")
            correct += (y_hat.argmax(dim=1) == y[i:i + batch_size]).sum()
    return {"loss": loss_sum.item() / len(X), "accuracy": correct.item() / len(X)}


def fit_fast(
    model: nn.Module,
    train_data: Dataset | TensorPair,
    test_data: Dataset | TensorPair | None = None,
    epochs: int = FAST_EPOCHS,
    lr: float = FAST_LR,
    batch_size: int = FAST_BATCH_SIZE,
    weight_decay: float = 5e-4,
    device: str | torch.device | None = None,
    label_smoothing: float = 0.1,
    shift: int = 2,
    degrees: float = FAST_DEGREES,
    scale: float = FAST_SCALE,
    schedule: str = "onecycle",
    compile: bool = False,
    seed: int = 0,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
) -> History:
    """Train ``model`` with the whole data set held as tensors on the device; return the History. Lesson 07.

    ``train_data`` / ``test_data``: a Dataset of ``(image (C, H, W), label)`` (e.g. ``digits("train")``)
    or a pair of tensors ``(X (N, C, H, W), y (N,))``; they are stacked and moved to ``device``
    (default ``pick_device()``) once. Each step takes a batch by index, moves each image by up to
    ``shift`` pixels, rotates it by up to ``degrees`` and zooms it by up to ``scale`` (see
    ``random_shift`` and ``random_affine``; 0 turns them off), and takes an AdamW step on
    cross-entropy with ``label_smoothing``, the learning rate following ``schedule`` (see
    ``training.lr_at``) with peak ``lr``.

    ``compile=True`` runs the model through
    ``torch.compile``. With ``checkpoint`` a path, the trained model is saved there at the end in
    the format of ``checkpoint.save_checkpoint`` (``load_model`` reads it).

    On a CPU a given ``seed`` gives the same weights every time. ``History.epoch_seconds`` counts
    training only, not the evaluation on ``test_data``. Raises ``ValueError`` before training when
    a data set is empty, a label does not fit the model's outputs, or the model cannot take the images.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs, batch_size and lr must be positive, got {epochs}, {batch_size}, {lr}")
    lr_at(0, 1, lr, schedule)  # raises ValueError on an unknown schedule
    if checkpoint is not None:
        check_writable(checkpoint)  # a bad path fails now, not after the training
    device = pick_device(device)
    seed_everything(seed)  # the weights of a fresh model are already drawn; this seeds dropout

    X, y = _stack(train_data, "training")
    X, y = to_channels_last(X.to(device), device), y.to(device)
    model.to(device)
    to_channels_last(model, device)
    num_classes = _check_fits(model, X, y, "training")
    classes = classes_of(train_data, num_classes)
    if test_data is not None:
        X_test, y_test = _stack(test_data, "test")
        X_test, y_test = to_channels_last(X_test.to(device), device), y_test.to(device)
        _check_fits(model, X_test, y_test, "test")

    net = torch.compile(model) if compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(device))
    generator = torch.Generator().manual_seed(seed)  # shuffling and shifts, drawn on the CPU

    n = len(X)
    batch_size = min(batch_size, n)
    steps_per_epoch = n // batch_size  # equal batches: drop the last partial one
    total_steps = epochs * steps_per_epoch
    history = History()
    bar = tqdm(total=total_steps, disable=not progress, desc="fast training", unit="batch", dynamic_ncols=True)
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(n, generator=generator).to(device)
        loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total_steps, lr, schedule)
            idx = order[i * batch_size:(i + 1) * batch_size]
            X_batch = random_affine(random_shift(X[idx], shift, generator), degrees, scale, generator)
            X_batch = to_channels_last(X_batch, device)
            y_batch = y[idx]
            with autocast(device):
                y_hat = net(X_batch)
            loss = F.cross_entropy(y_hat.float(), y_batch, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach() * len(idx)
            correct += (y_hat.argmax(dim=1) == y_batch).sum()
            bar.update(1)

        seen = steps_per_epoch * batch_size
        history.train_loss.append(loss_sum.item() / seen)
        history.train_accuracy.append(correct.item() / seen)
        history.lr.append(optimizer.param_groups[0]["lr"])
        history.epoch_seconds.append(time.perf_counter() - start)
        if test_data is not None:
            metrics = evaluate_tensors(model, X_test, y_test)
            history.test_loss.append(metrics["loss"])
            history.test_accuracy.append(metrics["accuracy"])
        if progress:
            test = f", test acc {history.test_accuracy[-1]:.2%}" if test_data is not None else ""
            bar.write(f"epoch {epoch + 1}/{epochs}: train loss {history.train_loss[-1]:.4f}{test} "
                      f"({history.epoch_seconds[-1]:.1f} s)")
    bar.close()

    if checkpoint is not None:
        save_checkpoint(
            checkpoint, model, optimizer, classes=classes, input_shape=tuple(X.shape[1:]),
            epoch=epochs, epochs=epochs, history=history.as_dict(), trained_with="fit_fast",
            metrics={k: v[-1] for k, v in history.as_dict().items() if v},
        )
    return history

