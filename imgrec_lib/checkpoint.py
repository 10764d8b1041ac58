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

import numpy as np
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
    """A checkpoint file is missing, damaged, does not fit the model, or cannot be written."""


def _plain(value):
    """``value`` with NumPy numbers and arrays, also inside dicts, lists and tuples, turned into Python
    numbers and tensors: ``torch.load(weights_only=True)`` reads those back, NumPy objects it refuses
    (e.g. ``lr=np.float64(3e-3)`` from an ``np.logspace`` sweep would make the file unreadable)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


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
    (``epoch=3, history=..., metrics=...``) go into the dict; NumPy numbers and arrays among them
    become Python numbers and tensors. The new file must load back with
    ``torch.load(weights_only=True)`` before it replaces the old one: anything else in it (your
    own objects) raises ``CheckpointError``, and so does a path that cannot be written; in both
    cases the previous checkpoint stays as it was.
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
        "model_config": _plain(dict(config)),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "classes": [str(c) for c in classes],
        "input_shape": tuple(int(s) for s in input_shape),
    }
    if optimizer is not None:
        checkpoint["optimizer_state"] = _plain(optimizer.state_dict())
    checkpoint.update(_plain(extra))

    path = Path(path)
    check_writable(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise CheckpointError(f"cannot write checkpoint {path}: {err.strerror or err}; "
                              "choose a path in a folder you can write to") from err
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the checkpoint
        try:
            torch.load(tmp, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(
                f"not saved: {path} would not load back with torch.load(weights_only=True) "
                f"({_first_sentence(err)}). Pass only numbers, strings, lists, dicts and tensors as extra "
                "keywords; the previous checkpoint is unchanged"
            ) from err
        os.chmod(tmp, 0o644)  # mkstemp makes the file private (0600); a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def check_writable(path: str | os.PathLike) -> None:
    """Make the folder of ``path`` if needed, or raise ``CheckpointError`` if a checkpoint cannot be
    written there (``path`` is a folder, or a file stands where a folder should be). Call it before
    a long training run, so that a bad path fails at once and not after the first epoch."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder: give a file name, e.g. {path / 'model.pt'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CheckpointError(f"cannot write checkpoint {path}: cannot make its folder {path.parent} "
                              f"({err.strerror or err}); choose a path in a folder you can write to") from err


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
