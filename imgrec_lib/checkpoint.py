"""Saving and loading trained models safely. Lesson 07 (saving) and Lesson 08 (loading).

A checkpoint is one file written by ``torch.save``: a plain dict that holds

    model_name      "course_cnn" or "lenet5" (see ``imgrec_lib.models.MODELS``)
    model_config    the keyword arguments that rebuild the model
    state_dict      the weights
    classes         the class names, in label order
    input_shape     (C, H, W) of one image
    optimizer_state (optional) and anything else passed as a keyword: epoch, history, metrics, ...

It is read back with ``torch.load(weights_only=True)``, which refuses to run code from the file,
or without PyTorch (``load_checkpoint(path, as_numpy=True)``, what ``python -m imgrec_lib predict``
uses): ``torch.save`` writes a zip of a pickle and the raw bytes of each tensor, and a pickle reader
that knows only the few names a checkpoint needs (``_ArrayUnpickler``) turns the tensors into NumPy
arrays and refuses anything else. So this module imports PyTorch inside the functions that need it.

A save first writes a temporary file next to the target and then renames it over the target,
so a crash in the middle of a save leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

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
    import torch

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
    import torch

    from .models import MODELS

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


def load_checkpoint(path: str | os.PathLike, as_numpy: bool = False) -> dict:
    """Read a checkpoint dict (on the CPU) from ``path``, or raise ``CheckpointError`` saying why. Lesson 08.

    ``as_numpy=True`` reads it without PyTorch: the same dict, with NumPy arrays for the tensors.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise CheckpointError(f"checkpoint {path} {what}: {_WHAT_TO_DO}")
    try:
        if as_numpy:
            checkpoint = _load_arrays(path)
        else:
            import torch

            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated zip, a text file, pickled code, ...: torch raises many kinds
        if isinstance(err, _NotData) or "weights only load failed" in str(err).lower():
            why = ("it holds pickled Python objects, and torch.load(weights_only=True) runs no code from a file; "
                   "only load such a file yourself if you trust its source")
        else:
            why = f"the file is damaged or not a PyTorch checkpoint ({type(err).__name__}: {_first_sentence(err)})"
        raise CheckpointError(f"cannot read checkpoint {path}: {why}; {_WHAT_TO_DO}") from err
    if not isinstance(checkpoint, dict) or "model_name" not in checkpoint:
        hint = ""
        tensors_only = isinstance(checkpoint, dict) and all(hasattr(v, "shape") for v in checkpoint.values())
        if checkpoint and tensors_only:
            hint = " (it looks like a bare state_dict: load it with model.load_state_dict(torch.load(path)))"
        raise CheckpointError(f"{path} is not an imgrec checkpoint: it has no 'model_name'{hint}; {_WHAT_TO_DO}")
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; {_WHAT_TO_DO}")
    return checkpoint


class _NotData(pickle.UnpicklingError):
    """A pickle that names a class or function no checkpoint needs: code, not data."""


class _ArrayUnpickler(pickle.Unpickler):
    """Reads the ``data.pkl`` of a ``torch.save`` zip into NumPy arrays, and nothing else.

    A pickle rebuilds objects by calling the classes and functions it names. A checkpoint needs
    only these: ``OrderedDict``, ``torch.Size`` (a tuple), a storage type per dtype, and
    ``torch._utils._rebuild_tensor_v2``, which views a storage with an offset, a shape and strides.
    Each maps to NumPy here; any other name raises ``_NotData``, so reading a file runs no code
    from it (what ``torch.load(weights_only=True)`` does too).
    """

    DTYPES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
              "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
              "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool"}

    def __init__(self, archive: zipfile.ZipFile, folder: str, byteorder: str) -> None:
        super().__init__(io.BytesIO(archive.read(folder + "data.pkl")))
        self.archive, self.folder, self.order = archive, folder, "<" if byteorder == "little" else ">"
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch", "Size"):
            return tuple
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in self.DTYPES:
            return np.dtype(self.DTYPES[name]).newbyteorder(self.order)
        raise _NotData(f"it names {module}.{name}, which is not a tensor, a number or a container")

    def persistent_load(self, pid):
        """A tensor's storage: ('storage', dtype, key, device, numel) -> the 1-d array data/<key>."""
        kind, dtype, key, _, numel = pid
        if kind != "storage" or not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        if key not in self.storages:
            self.storages[key] = np.frombuffer(self.archive.read(f"{self.folder}data/{key}"), dtype=dtype)
        if len(self.storages[key]) != numel:
            raise pickle.UnpicklingError(f"storage {key} holds {len(self.storages[key])} values, not {numel}")
        return self.storages[key]


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_) -> np.ndarray:
    """``torch._utils._rebuild_tensor_v2`` in NumPy: the tensor as a copy of a strided view of its storage."""
    if 0 in size:
        return np.zeros(size, dtype=storage.dtype.newbyteorder("="))
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or min(stride, default=0) < 0 or last >= len(storage):
        raise pickle.UnpicklingError(f"a tensor of shape {tuple(size)} reaches past its storage")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=[s * storage.itemsize for s in stride])
    return view.astype(storage.dtype.newbyteorder("="))  # a copy, in this machine's byte order


def _load_arrays(path: Path):
    """What ``torch.load(path, weights_only=True)`` gives, with NumPy arrays for the tensors."""
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
        if not pickles:
            raise zipfile.BadZipFile("a zip without the data.pkl of torch.save")
        folder = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if folder + "byteorder" in archive.namelist():
            byteorder = archive.read(folder + "byteorder").decode()
        return _ArrayUnpickler(archive, folder, byteorder).load()


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
        raise misfit_error(path, type(model).__name__, "; ".join(parts))
    model.load_state_dict(state_dict)


def misfit_error(path: str | os.PathLike, architecture: str, problem: str) -> CheckpointError:
    """The error for weights in ``path`` that do not fit ``architecture`` (e.g. "CourseCNN")."""
    return CheckpointError(f"the weights in {path} do not fit the {architecture} architecture: {problem}. "
                           f"The file was saved from another model or settings; {_WHAT_TO_DO}")


def load_model(path: str | os.PathLike, device: str | torch.device | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model stored in ``path``, load its weights, put it in eval mode on ``device``. Lesson 08.

    Returns ``(model, checkpoint)``; ``checkpoint["classes"]`` names the outputs.
    """
    from .device import pick_device
    from .models import build_model

    checkpoint = load_checkpoint(path)
    try:
        model = build_model(checkpoint["model_name"], **dict(checkpoint["model_config"]))
    except (ValueError, TypeError) as err:
        raise CheckpointError(
            f"checkpoint {path} describes a model this version cannot build: {err}; {_WHAT_TO_DO}"
        ) from err
    load_weights(model, checkpoint["state_dict"], path)
    return model.to(pick_device(device)).eval(), checkpoint
