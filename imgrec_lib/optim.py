"""Optimizers as step functions on NumPy arrays. Lesson 06.

Each function updates the parameter arrays **in place** (``p -= ...``), so the caller's arrays (and
any layer holding them) see the new values, and uses the same update rule as ``torch.optim.SGD``
and ``torch.optim.Adam``. The optimizer's memory lives in a plain list or dict that the caller
creates once and passes to every step::

    params = [w1, b1, w2, b2]           # NumPy float arrays, updated in place
    velocities = []                     # SGD with momentum: filled on the first step
    state = {}                          # Adam: filled on the first step
    for step in range(num_steps):
        grads = compute_gradients(params)          # same order and shapes as params
        sgd_momentum_step(params, grads, velocities, lr=0.1)
        # or: adam_step(params, grads, state, lr=1e-3)

``weight_decay`` is the L2 penalty of PyTorch: ``weight_decay * p`` is added to the gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check_params_and_grads(params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
    """params and grads must pair up: same length, same shapes, params writable float arrays."""
    if len(params) != len(grads):
        raise ValueError(
            f"got {len(params)} params but {len(grads)} grads: pass one grad per param"
        )
    for i, (p, g) in enumerate(zip(params, grads)):
        if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
            raise ValueError(
                f"params[{i}] must be a NumPy float array (it is updated in place), "
                f"got {type(p).__name__} of dtype {getattr(p, 'dtype', None)}"
            )
        if np.shape(g) != p.shape:
            raise ValueError(f"grads[{i}] has shape {np.shape(g)} but params[{i}] has {p.shape}")


def sgd_step(
    params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: float, weight_decay: float = 0.0
) -> None:
    """Plain gradient descent: p -= lr * (g + weight_decay * p). Lesson 06.

    ``torch.optim.SGD(params, lr, weight_decay=weight_decay)``.
    """
    _check_params_and_grads(params, grads)
    for p, g in zip(params, grads):
        p -= lr * (g + weight_decay * p)


def sgd_momentum_step(
    params: Sequence[np.ndarray],
    grads: Sequence[np.ndarray],
    velocities: list[np.ndarray],
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> None:
    """SGD with momentum, exactly as ``torch.optim.SGD(params, lr, momentum, weight_decay=...)``.

    Lesson 06. For each parameter p with gradient g and velocity v::

        g = g + weight_decay * p
        v = momentum * v + g        (on the first step v = g)
        p = p - lr * v

    ``velocities`` is a list the caller keeps between steps: pass an empty list on the first step
    and it is filled with one velocity per parameter (passing
    ``[np.zeros_like(p) for p in params]`` gives the same result). It is updated in place.
    """
    _check_params_and_grads(params, grads)
    if len(velocities) == 0:
        velocities.extend(np.zeros_like(p) for p in params)
    if len(velocities) != len(params):
        raise ValueError(
            f"got {len(velocities)} velocities for {len(params)} params: pass the same list on "
            "every step, empty on the first"
        )
    for p, g, v in zip(params, grads, velocities):
        g = g + weight_decay * p
        v *= momentum
        v += g
        p -= lr * v


def adam_step(
    params: Sequence[np.ndarray],
    grads: Sequence[np.ndarray],
    state: dict,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None:
    """Adam, exactly as ``torch.optim.Adam(params, lr, betas, eps, weight_decay)``. Lesson 06.

    For each parameter p with gradient g, at step t = 1, 2, ...::

        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g          running mean of the gradient
        v = beta2 * v + (1 - beta2) * g**2       running mean of its square
        m_hat = m / (1 - beta1**t)               bias correction: m and v start at 0
        v_hat = v / (1 - beta2**t)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)

    ``state`` is a dict the caller keeps between steps: pass ``{}`` on the first step. It holds
    ``"step"`` (t, an int) and the lists ``"m"`` and ``"v"``, one array per parameter.
    """
    _check_params_and_grads(params, grads)
    beta1, beta2 = betas
    if not state:
        state["step"] = 0
        state["m"] = [np.zeros_like(p) for p in params]
        state["v"] = [np.zeros_like(p) for p in params]
    if len(state["m"]) != len(params):
        raise ValueError(
            f"state holds moments for {len(state['m'])} params but got {len(params)}: "
            "use one state dict per list of params, empty on the first step"
        )
    state["step"] += 1
    t = state["step"]
    for p, g, m, v in zip(params, grads, state["m"], state["v"]):
        g = g + weight_decay * p
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        p -= lr * m_hat / (np.sqrt(v_hat) + eps)
