"""Saving and loading trained models safely. Lesson 07 (saving) and Lesson 08 (loading).

A checkpoint is one file written by ``torch.save``: a plain dict that holds

    model_name      "course_cnn" or "lenet5" (see ``imgrec_lib.models.MODELS``)
    model_config    the keyword arguments that rebuild the model
    state_dict      the weights
    classes         the class names, in label order
    input_shape     (C, H, W) of one image
    optimizer_state (optional) and anything else passed as a keyword: epoch, history, metrics, ...

It is read back with ``torch.load(weights_only=True)``, which refuses to run code from the file.
A save first writes a temporary file next to the target and then renames it over the target,
so a crash in the middle of a save leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from .device import pick_device
from .models import MODELS, build_model

REQUIRED_KEYS = ("model_name", "model_config", "state_dict", "classes", "input_shape")
_WHAT_TO_DO = "re-train with `make train`, or pass the right --checkpoint"


def _first_sentence(err: Exception) -> str:
    text = str(err).strip().split(". ")[0].splitlines()[0] if str(err).strip() else "no details"
    return text[:160]


class CheckpointError(Exception):
    """A checkpoint file is missing, damaged, or does not fit the model."""


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    classes: list[str],
    input_shape: tuple[int, int, int],
    **extra,
) -> Path:
    """Write model (and optimizer) to ``path`` atomically; return the path. Lesson 07.

    ``model`` must come from ``imgrec_lib.models`` (it needs ``name`` and ``config``). Extra keywords
    (``epoch=3, history=..., metrics=...``) go into the dict as they are; keep them to plain
    Python values and tensors so that ``torch.load(weights_only=True)`` can read them.
    """
    name, config = getattr(model, "name", None), getattr(model, "config", None)
    if name not in MODELS or not isinstance(config, dict):
        raise CheckpointError(
            f"cannot save a {type(model).__name__}: save_checkpoint needs a model from imgrec_lib.models "
            f"({', '.join(MODELS)}) that knows its name and config; for your own model use "
            "torch.save(model.state_dict(), path)"
        )
    checkpoint = {
        "model_name": name,
        "model_config": dict(config),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "classes": [str(c) for c in classes],
        "input_shape": tuple(int(s) for s in input_shape),
    }
    if optimizer is not None:
        checkpoint["optimizer_state"] = optimizer.state_dict()
    checkpoint.update(extra)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the checkpoint
        os.chmod(tmp, 0o644)  # mkstemp makes the file private (0600); a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint dict (on the CPU) from ``path``, or raise ``CheckpointError`` saying why. Lesson 08."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise CheckpointError(f"checkpoint {path} {what}: {_WHAT_TO_DO}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated zip, a text file, pickled code, ...: torch raises many kinds
        if "weights only load failed" in str(err).lower():
            why = ("it holds pickled Python objects, and torch.load(weights_only=True) runs no code from a file; "
                   "only load such a file yourself if you trust its source")
        else:
            why = f"the file is damaged or not a PyTorch checkpoint ({type(err).__name__}: {_first_sentence(err)})"
        raise CheckpointError(f"cannot read checkpoint {path}: {why}; {_WHAT_TO_DO}") from err
    if not isinstance(checkpoint, dict) or "model_name" not in checkpoint:
        hint = ""
        tensors_only = isinstance(checkpoint, dict) and all(isinstance(v, torch.Tensor) for v in checkpoint.values())
        if checkpoint and tensors_only:
            hint = " (it looks like a bare state_dict: load it with model.load_state_dict(torch.load(path)))"
        raise CheckpointError(f"{path} is not an imgrec checkpoint: it has no 'model_name'{hint}; {_WHAT_TO_DO}")
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; {_WHAT_TO_DO}")
    return checkpoint


def load_weights(model: nn.Module, state_dict: dict, path: str | os.PathLike = "the checkpoint") -> None:
    """Load ``state_dict`` into ``model``; a mismatch raises a short ``CheckpointError``. Lesson 08.

    PyTorch's own error lists every key; this one says how many keys are missing, unexpected or
    of another shape, with a few examples.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    reshaped = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
                for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or reshaped:
        parts = [f"{len(v)} {what} (e.g. {', '.join(v[:2])})"
                 for v, what in [(missing, "missing"), (unexpected, "unexpected"), (reshaped, "of another shape")] if v]
        raise CheckpointError(
            f"the weights in {path} do not fit the {type(model).__name__} architecture: {'; '.join(parts)}. "
            f"The file was saved from another model or settings; {_WHAT_TO_DO}"
        )
    model.load_state_dict(state_dict)


def load_model(path: str | os.PathLike, device: str | torch.device | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model stored in ``path``, load its weights, put it in eval mode on ``device``. Lesson 08.

    Returns ``(model, checkpoint)``; ``checkpoint["classes"]`` names the outputs.
    """
    checkpoint = load_checkpoint(path)
    try:
        model = build_model(checkpoint["model_name"], **dict(checkpoint["model_config"]))
    except (ValueError, TypeError) as err:
        raise CheckpointError(
            f"checkpoint {path} describes a model this version cannot build: {err}; {_WHAT_TO_DO}"
        ) from err
    load_weights(model, checkpoint["state_dict"], path)
    return model.to(pick_device(device)).eval(), checkpoint
