"""Plain values as JSON, both ways: what a student's kernel may hand to the trusted grader.

The sandbox encodes what the student's functions returned; the judge decodes it. Decoding builds
only plain Python, NumPy and PyTorch values (never pickle, never a class the data names), so a
lying object (an array subclass whose `==` is always true, a float whose `-` lies) arrives as the
plain number or array it holds. Anything else is encoded as an `Opaque` stand-in that names its
type and fails every check.
"""

from __future__ import annotations

import base64
import math
import sys
from pathlib import PurePosixPath
from typing import Any

import numpy as np


# dtypes that travel as raw bytes; anything else (object, structured, datetime) is opaque
ARRAY_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "float16", "float32", "float64", "complex64", "complex128"}
TORCH_ONLY_DTYPES = {"bfloat16"}  # sent as float32 and turned back
EXCEPTIONS = ("ValueError", "TypeError", "IndexError", "KeyError", "AssertionError", "RuntimeError",
              "NotImplementedError", "ZeroDivisionError", "ArithmeticError", "OverflowError",
              "AttributeError", "LookupError", "FileNotFoundError", "OSError", "MemoryError",
              "RecursionError", "KeyboardInterrupt", "StopIteration", "NameError", "ImportError")
MAX_DEPTH = 40
MAX_ITEMS = 1_000_000  # elements of all arrays in one decoded value, over a million is not a test result


class Opaque:
    """Stands in for a value the grader cannot carry (a generator, a custom object): it says what it
    was, and any use of it fails."""

    def __init__(self, type_name: str):
        object.__setattr__(self, "type_name", type_name)

    def __repr__(self) -> str:
        return f"<{self.type_name} object: not a plain value the grader can check>"

    def __getattr__(self, name):
        raise TypeError(f"the result was a {self.type_name} object, not a number, array or tensor")

    def __eq__(self, other):
        return other is self

    __hash__ = object.__hash__


class ValueTooLarge(ValueError):
    pass


def exception_name(error: BaseException) -> str:
    """The nearest built-in exception class of `error` in EXCEPTIONS (a custom ValueError subclass
    counts as a ValueError), else RuntimeError."""
    for cls in type(error).__mro__:
        if cls.__name__ in EXCEPTIONS and cls.__module__ == "builtins":
            return cls.__name__
    return "RuntimeError"


def _array(a: np.ndarray) -> dict:
    a = np.array(np.asarray(a).view(np.ndarray), order="C", copy=True)  # (ascontiguousarray makes 0-d 1-d)
    return {"dtype": a.dtype.name, "shape": list(a.shape),
            "data": base64.b64encode(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()).decode()}


def encode(x: Any, depth: int = 0) -> Any:
    """`x` as JSON-ready data, with its type kept (tuple vs list, np.float64 vs float, tensor vs array)."""
    torch = sys.modules.get("torch")  # a tensor can only come from code that imported torch
    if depth > MAX_DEPTH:
        return {"opaque": "deeply nested"}
    if x is None or type(x) in (bool, str):
        return x
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int) and not isinstance(x, np.generic):
        return {"int": str(int.__int__(x))}
    if isinstance(x, float) and not isinstance(x, np.generic):
        return {"float": float.__repr__(float.__float__(x))}
    if isinstance(x, complex):
        return {"complex": [repr(x.real), repr(x.imag)]}
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, bytes):
        return {"bytes": base64.b64encode(bytes(x)).decode()}
    if isinstance(x, np.generic):
        if x.dtype.name not in ARRAY_DTYPES:
            return {"opaque": f"numpy.{x.dtype.name}"}
        return {"npscalar": _array(np.asarray(x))}
    if isinstance(x, np.ndarray):
        if x.dtype.name not in ARRAY_DTYPES:
            return {"opaque": f"numpy array of dtype {x.dtype.name}"}
        return {"ndarray": _array(x)}
    if torch is not None and isinstance(x, torch.Size):
        return {"size": [int(d) for d in x]}
    if torch is not None and isinstance(x, torch.Tensor):
        t = torch.Tensor.detach(x).cpu()
        name = str(t.dtype).replace("torch.", "")
        if name in TORCH_ONLY_DTYPES:
            return {"tensor": _array(t.float().numpy()), "torch_dtype": name}
        if name not in ARRAY_DTYPES:
            return {"opaque": f"tensor of dtype {name}"}
        return {"tensor": _array(t.resolve_conj().resolve_neg().numpy())}
    if isinstance(x, PurePosixPath) or type(x).__name__ in ("PosixPath", "WindowsPath", "PurePath"):
        return {"path": str(x)}
    if isinstance(x, tuple):
        return {"tuple": [encode(v, depth + 1) for v in tuple.__iter__(x)]}
    if isinstance(x, list):
        return {"list": [encode(v, depth + 1) for v in list.__iter__(x)]}
    if isinstance(x, (set, frozenset)):
        return {"set": [encode(v, depth + 1) for v in x]}
    if isinstance(x, dict):
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(x)]}
    return {"opaque": type(x).__name__}


class Decoder:
    """Turns encoded data back into values, counting array elements against MAX_ITEMS."""

    def __init__(self, max_items: int = MAX_ITEMS):
        self.items_left = max_items

    def _array(self, d: dict) -> np.ndarray:
        dtype, shape = d["dtype"], [int(n) for n in d["shape"]]
        if dtype not in ARRAY_DTYPES or any(n < 0 for n in shape) or len(shape) > 32:
            raise ValueError(f"not an array: dtype {dtype!r}, shape {shape}")
        self.items_left -= math.prod(shape)
        if self.items_left < 0:
            raise ValueTooLarge(f"more than {MAX_ITEMS:,} numbers in one result")
        raw = base64.b64decode(d["data"], validate=True)
        a = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
        return a.reshape(shape).copy()

    def __call__(self, d: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH + 1:
            raise ValueError("nested too deeply")
        if d is None or type(d) in (bool, str):
            return d
        if type(d) is not dict or len(d) not in (1, 2):
            raise ValueError(f"not an encoded value: {type(d).__name__}")
        kind = next(iter(d))
        value = d[kind]
        if kind == "int":
            if len(value) > 4300:
                raise ValueTooLarge("an integer with more than 4300 digits")
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "complex":
            return complex(float(value[0]), float(value[1]))
        if kind == "bytes":
            return base64.b64decode(value, validate=True)
        if kind == "npscalar":
            return self._array(value)[()]
        if kind == "ndarray":
            return self._array(value)
        if kind in ("tensor", "size"):
            import torch  # noqa: PLC0415 - only here: a sandbox that never imported torch need not
        if kind == "tensor":
            t = torch.from_numpy(self._array(value))
            return t.to(getattr(torch, d["torch_dtype"])) if d.get("torch_dtype") in TORCH_ONLY_DTYPES else t
        if kind == "size":
            return torch.Size([int(n) for n in value])
        if kind == "path":
            return PurePosixPath(str(value))
        if kind in ("tuple", "list", "set"):
            items = [self(v, depth + 1) for v in value]
            return {"tuple": tuple, "list": list, "set": set}[kind](items)
        if kind == "dict":
            return {self(k, depth + 1): self(v, depth + 1) for k, v in value}
        if kind == "opaque":
            return Opaque(str(value)[:80])
        raise ValueError(f"unknown kind of value {kind!r}")


def decode(d: Any, max_items: int = MAX_ITEMS) -> Any:
    return Decoder(max_items)(d)
