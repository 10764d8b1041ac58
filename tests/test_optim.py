"""imgrec_lib.optim against torch.optim.SGD / Adam, step by step (float64)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imgrec_lib.optim import adam_step, sgd_momentum_step, sgd_step

NUM_STEPS = 10
TOL = dict(rtol=1e-6, atol=1e-6)


def random_problem(seed):
    """A few random parameter arrays and NUM_STEPS rounds of random gradients for them."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 1, 3)]
    params = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(NUM_STEPS)]
    return params, grads


def run_both(seed, ours_step, make_torch_optimizer):
    """Apply ours_step and the torch optimizer to the same params and grads; compare every step."""
    params, grads = random_problem(seed)
    torch_params = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    optimizer = make_torch_optimizer(torch_params)
    for step_grads in grads:
        for tp, g in zip(torch_params, step_grads):
            tp.grad = torch.tensor(g)
        optimizer.step()
        ours_step(params, step_grads)
        for p, tp in zip(params, torch_params):
            np.testing.assert_allclose(p, tp.detach().numpy(), **TOL)


lrs = st.sampled_from([1e-3, 0.01, 0.1, 0.5])
weight_decays = st.sampled_from([0.0, 1e-4, 0.1])
seeds = st.integers(0, 2**32 - 1)


@given(seed=seeds, lr=lrs, weight_decay=weight_decays)
@settings(max_examples=25, deadline=None)
def test_sgd_matches_torch(seed, lr, weight_decay):
    run_both(
        seed,
        lambda p, g: sgd_step(p, g, lr, weight_decay=weight_decay),
        lambda tp: torch.optim.SGD(tp, lr=lr, weight_decay=weight_decay),
    )


@given(
    seed=seeds, lr=lrs, momentum=st.sampled_from([0.0, 0.5, 0.9, 0.99]), weight_decay=weight_decays
)
@settings(max_examples=25, deadline=None)
def test_sgd_momentum_matches_torch(seed, lr, momentum, weight_decay):
    velocities = []
    run_both(
        seed,
        lambda p, g: sgd_momentum_step(p, g, velocities, lr, momentum, weight_decay),
        lambda tp: torch.optim.SGD(tp, lr=lr, momentum=momentum, weight_decay=weight_decay),
    )
    assert len(velocities) == 3


@given(
    seed=seeds,
    lr=lrs,
    betas=st.sampled_from([(0.9, 0.999), (0.8, 0.99), (0.5, 0.9)]),
    eps=st.sampled_from([1e-8, 1e-3]),
    weight_decay=weight_decays,
)
@settings(max_examples=25, deadline=None)
def test_adam_matches_torch(seed, lr, betas, eps, weight_decay):
    state = {}
    run_both(
        seed,
        lambda p, g: adam_step(p, g, state, lr, betas, eps, weight_decay),
        lambda tp: torch.optim.Adam(tp, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay),
    )
    assert state["step"] == NUM_STEPS and len(state["m"]) == len(state["v"]) == 3


def test_zero_velocities_give_the_same_result_as_an_empty_list():
    params_a, grads = random_problem(0)
    params_b = [p.copy() for p in params_a]
    velocities_a, velocities_b = [], [np.zeros_like(p) for p in params_b]
    for g in grads:
        sgd_momentum_step(params_a, g, velocities_a, lr=0.1)
        sgd_momentum_step(params_b, g, velocities_b, lr=0.1)
    for a, b in zip(params_a, params_b):
        np.testing.assert_array_equal(a, b)


def test_steps_update_the_callers_arrays_in_place():
    w = np.ones(3)
    alias = w
    sgd_step([w], [np.ones(3)], lr=0.5)
    adam_step([w], [np.ones(3)], {}, lr=0.5)
    assert alias is w
    np.testing.assert_allclose(w, np.zeros(3), atol=1e-6)  # 1 - 0.5 (SGD) - 0.5 (Adam, step 1)


def test_adam_moves_every_parameter_by_about_lr_on_the_first_step():
    # m_hat / sqrt(v_hat) = g / |g| on step 1, whatever the gradient's scale.
    w = np.zeros(4)
    adam_step([w], [np.array([1e-4, -3.0, 50.0, -1e3])], {}, lr=0.01)
    np.testing.assert_allclose(w, [-0.01, 0.01, -0.01, 0.01], rtol=1e-3)


def test_bad_arguments_raise_helpful_errors():
    w, g = np.zeros(3), np.zeros(3)
    with pytest.raises(ValueError, match="got 1 params but 2 grads"):
        sgd_step([w], [g, g], lr=0.1)
    with pytest.raises(ValueError, match=r"grads\[0\] has shape \(4,\) but params\[0\] has \(3,\)"):
        sgd_step([w], [np.zeros(4)], lr=0.1)
    with pytest.raises(ValueError, match=r"params\[0\] must be a NumPy float array"):
        sgd_step([[0.0, 1.0]], [[0.0, 1.0]], lr=0.1)
    with pytest.raises(ValueError, match="got 2 velocities for 1 params"):
        sgd_momentum_step([w], [g], [g, g], lr=0.1)
    state = {}
    adam_step([w, w.copy()], [g, g], state)
    with pytest.raises(ValueError, match="state holds moments for 2 params but got 1"):
        adam_step([w], [g], state)
