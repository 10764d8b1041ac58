"""Numeric gradient checking: is my backward pass right? Lesson 05.

A derivative is a limit, (f(x + eps) - f(x - eps)) / (2 * eps) as eps -> 0. Computing that for every
element of x, one at a time, is slow but needs no calculus, so it is the referee for a hand-written
backward pass. Use float64 arrays: in float32 the rounding error swamps a difference of 1e-6.

Example, checking ``relu_backward`` through the scalar loss sum(relu(x) * r)::

    r = rng.standard_normal(x.shape)
    f = lambda x: np.sum(relu(x) * r)          # dLoss/d relu(x) = r
    check_gradient(f, x, relu_backward(r, x))  # raises GradientCheckError if they disagree
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class GradientCheckError(AssertionError):
    """A hand-written gradient disagrees with the numeric one (an ``AssertionError``)."""


def numeric_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """Central-difference estimate of the gradient of the scalar f(x) with respect to x. Lesson 05.

    ``f`` is called as ``f(x)`` and must return a scalar; it may also ignore its argument and read
    x through a closure, because x is perturbed in place: each element in turn is set to x + eps
    and x - eps, then restored (also if f raises). Returns an array shaped like x.
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            "x must be a NumPy array of floats (float64 for accurate checks), got "
            f"{type(x).__name__} of dtype {getattr(x, 'dtype', None)}: use x.astype(np.float64)"
        )
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        try:
            x[index] = original + eps
            f_plus = float(f(x))
            x[index] = original - eps
            f_minus = float(f(x))
        finally:
            x[index] = original
        grad[index] = (f_plus - f_minus) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """The largest absolute difference between a and b, relative to the largest value in either.

    ``max|a - b| / max(max|a|, max|b|)``: 0 for equal arrays, about 1e-8 or less for a correct
    float64 gradient, 1 or so for a wrong one. Scaling by the largest value (not element by
    element) keeps tiny gradients, where the numeric estimate is mostly rounding noise, from
    looking wrong. Lesson 05.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare arrays of different shapes {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-12)
    return float(np.max(np.abs(a - b)) / scale)


def check_gradient(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    analytic: np.ndarray,
    tol: float = 1e-6,
    eps: float = 1e-6,
) -> float:
    """Compare an analytic gradient of f at x with ``numeric_gradient``. Lesson 05.

    Returns the ``relative_error`` between them; raises ``GradientCheckError`` (an
    ``AssertionError``) naming the worst element if it exceeds ``tol``.
    """
    analytic = np.asarray(analytic)
    if analytic.shape != x.shape:
        raise ValueError(
            f"the analytic gradient must have the shape of x {x.shape}, got {analytic.shape}"
        )
    numeric = numeric_gradient(f, x, eps)
    error = relative_error(analytic, numeric)
    if not error <= tol:  # also catches nan
        worst = np.unravel_index(np.argmax(np.abs(analytic - numeric)), x.shape)
        worst = tuple(int(i) for i in worst)
        raise GradientCheckError(
            f"gradient check failed: relative error {error:.3g} > tol {tol:.3g}; worst element "
            f"at index {worst}: analytic {analytic[worst]:.6g}, numeric {numeric[worst]:.6g}"
        )
    return error
