"""Loss functions from scratch in NumPy, with their gradients.

Lesson 04 builds the losses, lesson 05 their gradients. Each loss returns a float, the mean over the
batch, like ``torch.nn.functional.cross_entropy`` / ``mse_loss`` with ``reduction="mean"``; each
``*_backward`` returns dLoss/d(first argument), shaped like it.
"""

from __future__ import annotations

import numpy as np

from imgrec_lib.activations import log_softmax, softmax


def _check_labels(logits, y) -> tuple[np.ndarray, np.ndarray]:
    """logits (N, K) need one integer class index per row, y (N,) in [0, K): a readable error otherwise."""
    logits, y = np.asarray(logits), np.asarray(y)
    if logits.ndim != 2 or y.shape != logits.shape[:1] or y.dtype.kind not in "iu":
        raise ValueError(f"expected logits of shape (N, num_classes) and integer class indices y of shape (N,), "
                         f"got logits {logits.shape} and y {y.shape} of dtype {y.dtype}: "
                         "not one-hot vectors or probabilities (use y.astype(np.int64))")
    if y.size and (y.min() < 0 or y.max() >= logits.shape[1]):
        raise ValueError(f"class indices in y must be in [0, {logits.shape[1] - 1}] for {logits.shape[1]} classes, "
                         f"got values from {y.min()} to {y.max()}")
    return logits, y


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of integer labels under softmax(logits). Lesson 04.

    logits (N, K) unnormalised scores, y (N,) class indices in [0, K) -> a float:
    mean over n of -log softmax(logits[n])[y[n]], computed with ``log_softmax`` so logits
    like 1000 do not overflow. Equals ``torch.nn.functional.cross_entropy(logits, y)``.
    """
    logits, y = _check_labels(logits, y)
    log_probs = log_softmax(logits, axis=1)
    return float(-np.mean(log_probs[np.arange(len(y)), y]))


def cross_entropy_backward(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of ``cross_entropy`` with respect to the logits. Lesson 05.

    Returns (N, K): (softmax(logits) - one_hot(y)) / N. The predicted probabilities minus the
    target ones, divided by N because the loss is a mean.
    """
    logits, y = _check_labels(logits, y)
    dlogits = softmax(logits, axis=1)
    dlogits[np.arange(len(y)), y] -= 1
    return dlogits / len(y)


def _check_same_shape(pred, target) -> tuple[np.ndarray, np.ndarray]:
    """mse needs pred and target of the same shape (no silent broadcasting)."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got pred {pred.shape} and target "
            f"{target.shape}: for one-hot targets, convert class indices with np.eye(K)[y]"
        )
    return pred, target


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error, the mean of (pred - target)**2 over all elements. Lesson 04.

    Equals ``torch.nn.functional.mse_loss(pred, target)``.
    """
    pred, target = _check_same_shape(pred, target)
    return float(np.mean((pred - target) ** 2))


def mse_backward(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Gradient of ``mse`` with respect to pred: 2 * (pred - target) / pred.size. Lesson 05."""
    pred, target = _check_same_shape(pred, target)
    return 2 * (pred - target) / pred.size
