"""The training loop: ``fit``, ``evaluate``, ``predict_batches``, and the recipes. Lesson 07.

    history = fit(net, digits("train"), digits("test"))     # CourseCNN: >= 97% in about 10 s on a CPU
    evaluate(net, digits("test"))                            # {"loss": 0.06, "accuracy": 0.98}

    recipe = RECIPES["fast"]                                 # the fast recipe: 98.5-99% in 13 short epochs
    history = fit(CourseCNN(**recipe["model"]), digits("train"), digits("test"), **recipe["fit"])

One loop, read top to bottom: batches (from a ``DataLoader``, or from the whole data set held as
tensors on the device), optional augmentation of each batch, Adam(W) on cross-entropy, a
learning-rate schedule that is a plain function of the step (like nanoGPT's ``get_lr``), mixed
precision on a GPU, a checkpoint after each epoch, and ``resume=True`` to go on from it. Started by
``torchrun`` (``imgrec_lib.distributed``), the same loop trains one copy of the model in each process
with ``DistributedDataParallel``.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Iterator, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import check_writable, load_checkpoint, load_weights, save_checkpoint
from .augment import Augment
from .data import as_tensors, classes_of
from .device import (autocast, eval_mode, model_device, needs_grad_scaler, pick_device, seed_everything,
                     to_channels_last)

DEFAULT_EPOCHS = 4  # CourseCNN on the embedded digits: 97.3-97.9% test accuracy (seeds 0-6), ~10 s on 2 CPU cores
DEFAULT_LR = 3e-3  # the peak learning rate of the one-cycle schedule (1e-3 is the usual Adam default)
SCHEDULES = ("onecycle", "cosine", "constant")

# Recipes as data: the model's arguments (for ``CourseCNN``) and ``fit``'s. "fast": a half-width net
# costs a third per epoch; shifts, rotations and zooms make up for its size; the data stay on the
# device (the measurements behind each number: benchmarks/HISTORY.md).
RECIPES: dict[str, dict[str, dict]] = {
    # "default" is `make train`: fit's defaults plus the fast recipe's shifts, rotations and zooms, with
    # which the model reads photos of real digits better (benchmarks/HISTORY.md has the figures).
    "default": {"model": {}, "fit": dict(epochs=DEFAULT_EPOCHS, lr=DEFAULT_LR,
                                         augment=Augment(shift=2, degrees=10.0, scale=0.1))},
    "fast": {"model": dict(widths=(16, 32), dropout=0.0, pool_first=True),
             "fit": dict(epochs=13, lr=6e-3, weight_decay=5e-4, label_smoothing=0.1, on_device=True,
                         augment=Augment(shift=2, degrees=10.0, scale=0.1))},
}

TensorPair = tuple[torch.Tensor, torch.Tensor]
Data = Union[Dataset, TensorPair]  # a Dataset of (image (C, H, W), label), or (X (N, C, H, W), y (N,))


@dataclass
class History:
    """What ``fit`` measured, one entry per epoch (accuracies are fractions in [0, 1]). Lesson 07."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)  # the learning rate at the end of the epoch
    epoch_seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        """The number of epochs recorded."""
        return len(self.train_loss)

    def as_dict(self) -> dict[str, list[float]]:
        """Plain lists, fit for a checkpoint or JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        """The inverse of ``as_dict``; missing keys become empty lists."""
        return cls(**{f.name: [float(v) for v in d.get(f.name, [])] for f in fields(cls)})


def lr_at(step: int, total_steps: int, lr: float, schedule: str = "onecycle") -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total_steps``. Lesson 06.

    - "constant": ``lr`` throughout.
    - "cosine": from ``lr`` down to 0 along half a cosine.
    - "onecycle": the learning rate of ``torch.optim.lr_scheduler.OneCycleLR`` with its defaults:
      over the first 30% of the steps it rises from lr/25 to lr, then falls to lr/25e4, both
      along half cosines. Large steps in the middle, small ones at the end.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: use one of {', '.join(SCHEDULES)}")

    def cos_between(a: float, b: float, t: float) -> float:  # a at t=0, b at t=1
        return b + (a - b) * 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))

    last = max(total_steps - 1, 1)
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return cos_between(lr, 0.0, step / last)
    peak = 0.3 * total_steps - 1  # the step with the highest rate, as in OneCycleLR
    if step <= peak:
        return cos_between(lr / 25, lr, step / peak)
    return cos_between(lr, lr / 25e4, (step - peak) / max(last - peak, 1e-12))


def _known_labels(data: Data) -> torch.Tensor | None:
    """All labels of a data set when it keeps them in a tensor or list, without loading images."""
    if isinstance(data, (tuple, list)):
        return data[1]
    if isinstance(data, Subset):
        labels = _known_labels(data.dataset)
        return None if labels is None else labels[torch.as_tensor(list(data.indices), dtype=torch.long)]
    if isinstance(data, TensorDataset):
        return data.tensors[-1]
    for name in ("labels", "targets"):
        labels = getattr(data, name, None)
        if labels is not None:
            return torch.as_tensor(labels)
    return None


def _check_labels(y: torch.Tensor, num_classes: int, what: str) -> None:
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"the {what} labels must be integer class indices, got dtype {y.dtype}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"the {what} labels run from {int(y.min())} to {int(y.max())}, but the model has {num_classes} "
            f"outputs (labels 0..{num_classes - 1}): build the model with num_classes={int(y.max()) + 1}, "
            "or check the data set"
        )


def _check_data(model: nn.Module, data: Data, device: torch.device, what: str) -> tuple[int, tuple]:
    """Fail early with a clear ValueError; return (number of model outputs, input shape (C, H, W))."""
    if len(data) == 0 or (isinstance(data, (tuple, list)) and len(data[0]) == 0):
        raise ValueError(f"the {what} data set is empty: check the path or the split you loaded")
    x, _ = next(batches(data, 4, device))
    try:
        with eval_mode(model), torch.no_grad(), autocast(device):  # no BatchNorm statistics from the trial batch
            out = model(to_channels_last(x, device))
    except (RuntimeError, ValueError, TypeError) as err:
        raise ValueError(
            f"the model cannot take the {what} images: a batch of shape {tuple(x.shape)} ({x.dtype}) gave "
            f"'{str(err).splitlines()[0]}'. Build the model for this image shape, or resize the images"
        ) from err
    if out.dim() != 2:
        raise ValueError(f"the model should return logits of shape (N, classes), got {tuple(out.shape)}")
    labels = _known_labels(data)
    if labels is not None:
        _check_labels(labels, out.shape[1], what)
    return out.shape[1], tuple(x.shape[1:])


def tensors_on(data: Data, device: torch.device, what: str = "training") -> TensorPair:
    """The whole data set as one pair ``(X float32 (N, C, H, W), y int64 (N,))`` on ``device``.

    Stacked and moved once, so that a batch is one indexing ``X[idx]`` with no Python work per image.
    """
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
    if y.dim() != 1 or len(y) != len(X):
        raise ValueError(f"expected {what} labels of shape ({len(X)},) for {len(X)} images, got {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"the {what} labels must be integer class indices, got dtype {y.dtype}")
    if not X.dtype.is_floating_point:
        raise ValueError(f"the {what} images hold integers ({X.dtype}, e.g. pixel values 0-255): "
                         "pass floats in [0, 1], e.g. X.float() / 255")
    return to_channels_last(X.float().to(device), device), y.long().to(device)


def batches(data: Data, batch_size: int, device: torch.device, generator: torch.Generator | None = None,
            drop_last: bool = False, rank: int = 0, world_size: int = 1) -> Iterator[TensorPair]:
    """Batches ``(X, y)`` on ``device``, in order, or shuffled by ``generator`` when one is given.

    From a pair of tensors a batch is ``X[idx]``; from a Dataset, a ``DataLoader`` collates it image
    by image (general: any data set, any transform, but Python work for every image). Both take
    the same order from the same generator. Process ``rank`` of ``world_size`` takes every
    ``world_size``-th image of that order, from its ``rank``-th on (what ``DistributedSampler``
    does): with the same generator in every process, the shares are disjoint and cover the data.
    """
    pair = isinstance(data, (tuple, list))
    n = len(data[0]) if pair else len(data)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    order = order[rank::world_size]
    if not pair:
        loader = DataLoader(data, batch_size=batch_size, sampler=order.tolist(), drop_last=drop_last,
                            num_workers=0, pin_memory=device.type == "cuda")
        for X, y in loader:
            yield X.to(device, non_blocking=True), torch.as_tensor(y).to(device, non_blocking=True).long()
        return
    X, y = data
    order = order.to(X.device)
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    for i in range(0, stop, batch_size):
        idx = order[i:i + batch_size]
        yield X[idx].to(device), y[idx].to(device).long()


def fit(
    model: nn.Module,
    train_data: Data,
    test_data: Data | None = None,
    epochs: int = DEFAULT_EPOCHS,
    lr: float = DEFAULT_LR,
    batch_size: int = 128,
    weight_decay: float = 0.0,
    device: str | torch.device | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    schedule: str = "onecycle",
    label_smoothing: float = 0.0,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    on_device: bool = False,
    compile: bool = False,
    progress: bool = True,
    seed: int = 0,
    on_epoch_end: Callable[[int, History], None] | None = None,
) -> History:
    """Train ``model`` on ``train_data`` for ``epochs`` epochs; return the ``History``. Lesson 07.

    ``train_data`` / ``test_data``: a Dataset of ``(image (C, H, W), label)`` (e.g. ``digits("train")``)
    or a pair of tensors ``(X (N, C, H, W), y (N,))``. With ``on_device=True`` (or a pair) the whole
    set is stacked and moved to ``device`` once and a batch is an index into it; otherwise a
    ``DataLoader`` brings each batch. The model is moved to ``device`` (default: ``pick_device()``)
    and trained in place with AdamW (Adam when ``weight_decay=0``) and cross-entropy with
    ``label_smoothing``; ``lr`` is the peak of the ``schedule`` (see ``lr_at``). ``augment(X,
    generator)``, e.g. ``augment.Augment(shift=2)``, changes each training batch on the device.
    ``compile=True`` runs the model through ``torch.compile``.

    After each epoch the model is evaluated on ``test_data``, ``on_epoch_end(epoch, history)`` is
    called (epoch counts from 1), and with ``checkpoint`` a path, a checkpoint is saved there.
    ``resume=True`` loads that checkpoint (weights, optimizer, history) and trains only the epochs
    still missing up to ``epochs``. Each epoch is seeded from ``seed`` and its number (shuffling,
    augmentation, dropout), so a resumed run on a CPU gives the same weights as one that never
    stopped (this reseeds the global random generators). ``epoch_seconds`` count training only.

    In a process group (``torchrun``, see ``imgrec_lib.distributed``) each process trains the model
    wrapped in ``DistributedDataParallel`` (gradients averaged over the processes at each step) on
    its share of every epoch's permutation, ``batch_size // world_size`` images a step, so the
    global batch and the number of steps stay those of one process. Dropout and augmentation draw
    different numbers in each process; the history holds the metrics of all processes together;
    only rank 0 shows progress and writes the checkpoint, and every rank loads it to resume;
    ``on_epoch_end`` runs in every process.

    Raises ``ValueError`` before training when a data set is empty, a label does not fit the
    model's outputs, or the model cannot take the images.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: use one of {', '.join(SCHEDULES)}")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs, batch_size and lr must be positive, got {epochs}, {batch_size}, {lr}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<path> to resume from")
    if checkpoint is not None:
        check_writable(checkpoint)  # a bad path fails now, not after the first epoch
    device = pick_device(device)
    named = train_data  # a data set's class names, for the checkpoint
    if on_device or isinstance(train_data, (tuple, list)):
        train_data = tensors_on(train_data, device, "training")
        if test_data is not None:
            test_data = tensors_on(test_data, device, "test")
    model.to(device)
    to_channels_last(model, device)

    num_classes, input_shape = _check_data(model, train_data, device, "training")
    if test_data is not None:
        _check_data(model, test_data, device, "test")
    classes = classes_of(named, num_classes)

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(device))
    history, start_epoch = History(), 0
    if resume:
        if not os.path.exists(checkpoint):
            raise ValueError(f"resume=True, but there is no checkpoint at {checkpoint} yet: train without resume first")
        saved = load_checkpoint(checkpoint)
        load_weights(model, saved["state_dict"], checkpoint)
        if "optimizer_state" in saved:
            optimizer.load_state_dict(saved["optimizer_state"])
        if saved.get("scaler_state"):
            scaler.load_state_dict(saved["scaler_state"])
        history = History.from_dict(saved.get("history", {}))
        start_epoch = int(saved.get("epoch", len(history)))

    rank, world = distributed.rank(), distributed.world_size()
    net = DistributedDataParallel(model) if world > 1 else model  # starts from rank 0's weights everywhere
    net = torch.compile(net) if compile else net
    progress = progress and rank == 0
    n = len(train_data[0]) if isinstance(train_data, tuple) else len(train_data)
    if min(batch_size, n) < world:
        raise ValueError(f"a batch of {min(batch_size, n)} cannot be shared by {world} processes: use a larger batch_size")
    batch_size = min(batch_size, n) // world  # images per step in each process
    steps_per_epoch = n // (batch_size * world)  # equal batches, the last partial one dropped: a batch of 1 breaks BatchNorm
    total_steps = epochs * steps_per_epoch
    bar = tqdm(total=total_steps, initial=min(start_epoch, epochs) * steps_per_epoch, disable=not progress,
               desc="training", unit="batch", dynamic_ncols=True)
    for epoch in range(start_epoch, epochs):
        base = seed * 10_000 + epoch  # the seeds of this epoch, the same after a resume
        seed_everything(base + 1_000_003 * rank)  # dropout: different masks in each process
        generator = torch.Generator().manual_seed(base)  # shuffling: the same permutation in every process
        own = generator if rank == 0 else torch.Generator().manual_seed(base + 1_000_003 * rank)  # augmentation
        model.train()
        start = time.perf_counter()
        loss_sum, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
        shares = batches(train_data, batch_size, device, generator, drop_last=True, rank=rank, world_size=world)
        for i, (X, y) in enumerate(itertools.islice(shares, steps_per_epoch)):  # the same number of steps everywhere
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total_steps, lr, schedule)
            _check_labels(y, num_classes, "training")  # for data sets whose labels we could not see upfront
            if augment is not None:
                X = augment(X, own)
            X = to_channels_last(X, device)
            with autocast(device):
                y_hat = net(X)
            loss = F.cross_entropy(y_hat.float(), y, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

            loss_sum += loss.detach() * len(y)
            correct += (y_hat.argmax(dim=1) == y).sum()
            seen += len(y)
            bar.update(1)
            if i % 10 == 0:  # .item() waits for the GPU: not every step
                bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{loss.item():.3f}", refresh=False)

        totals = distributed.all_reduce_sum(torch.stack([loss_sum, correct, torch.tensor(float(seen), device=device)]))
        history.train_loss.append(totals[0].item() / totals[2].item())
        history.train_accuracy.append(totals[1].item() / totals[2].item())
        history.lr.append(optimizer.param_groups[0]["lr"])
        history.epoch_seconds.append(time.perf_counter() - start)
        distributed.broadcast_buffers(model)  # rank 0's BatchNorm statistics: every process evaluates one model
        if test_data is not None:
            metrics = evaluate(model, test_data, device=device)
            history.test_loss.append(metrics["loss"])
            history.test_accuracy.append(metrics["accuracy"])
        if progress:
            test = ""
            if test_data is not None:
                test = f", test loss {history.test_loss[-1]:.4f} acc {history.test_accuracy[-1]:.2%}"
            bar.write(f"epoch {epoch + 1}/{epochs}: train loss {history.train_loss[-1]:.4f} "
                      f"acc {history.train_accuracy[-1]:.2%}{test} ({history.epoch_seconds[-1]:.1f} s)")

        if checkpoint is not None and rank == 0:  # one writer
            save_checkpoint(
                checkpoint, model, optimizer, classes=classes, input_shape=input_shape,
                epoch=epoch + 1, epochs=epochs, history=history.as_dict(),
                scheduler_state={"schedule": schedule, "lr": lr, "step": (epoch + 1) * steps_per_epoch,
                                 "total_steps": total_steps},
                scaler_state=scaler.state_dict() if scaler.is_enabled() else {},
                metrics={k: v[-1] for k, v in history.as_dict().items() if v},
            )
        if checkpoint is not None:
            distributed.barrier()  # the file is there before any process goes on
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, history)
    bar.close()
    return history


@torch.no_grad()
def predict_batches(
    model: nn.Module, data: Data, device: str | torch.device | None = None, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities (N, K) and true labels (N,) for a whole data set, on the CPU. Lesson 08.

    ``data``: a Dataset or a pair ``(X, y)``. ``device`` defaults to where the model already is.
    The model is put in eval mode for the predictions and back in its previous mode afterwards.
    """
    if len(data) == 0 or (isinstance(data, (tuple, list)) and len(data[0]) == 0):
        raise ValueError("the data set is empty: nothing to predict")
    device = model_device(model) if device is None else pick_device(device)
    model.to(device)
    probs, labels = [], []
    with eval_mode(model):
        for X, y in batches(data, batch_size, device):
            with autocast(device):
                y_hat = model(to_channels_last(X, device))
            probs.append(y_hat.float().softmax(dim=1).cpu())
            labels.append(y.cpu())
    return torch.cat(probs), torch.cat(labels)


@torch.no_grad()
def evaluate(
    model: nn.Module, data: Data, device: str | torch.device | None = None, batch_size: int = 512
) -> dict[str, float]:
    """Mean cross-entropy and accuracy (a fraction in [0, 1]) of ``model`` on ``data``. Lesson 07.

    ``data``: a Dataset or a pair ``(X, y)``. ``device`` defaults to where the model already is;
    the model's train/eval mode is restored.
    """
    if len(data) == 0 or (isinstance(data, (tuple, list)) and len(data[0]) == 0):
        raise ValueError("the data set is empty: nothing to evaluate")
    device = model_device(model) if device is None else pick_device(device)
    model.to(device)
    loss_sum, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
    with eval_mode(model):
        for X, y in batches(data, batch_size, device):
            with autocast(device):
                y_hat = model(to_channels_last(X, device))
            loss_sum += F.cross_entropy(y_hat.float(), y, reduction="sum")
            correct += (y_hat.argmax(dim=1) == y).sum()
            seen += len(y)
    return {"loss": loss_sum.item() / seen, "accuracy": correct.item() / seen}
