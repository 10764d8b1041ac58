"""Lessons and library cannot drift apart: the graded answers of lessons 01-06 and 09 against imgrec_lib.

Each graded exercise whose answer re-implements a library function is listed in ``SAME``: (lesson,
grade_id of the answer cell) -> the library function. The instructor's answer cell (from
solutions/NN_*/NN_*.ipynb, the ``### BEGIN/END SOLUTION`` lines stripped) runs after the imports of
the notebook's first code cell, and is compared with the library on random inputs (hypothesis) and
on the edge cases where from-scratch layers go wrong: ties in max pooling, overlapping windows
(stride < kernel), stride > kernel, padding, a single pixel, non-square inputs and kernels. On the
edge cases PyTorch (``torch.nn.functional``) is checked too: it decides when the two disagree.
"""

import ast
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from imgrec_lib import activations, conv, dense, gradcheck, losses, models, normalization, optim, pooling, widgets

ROOT = Path(__file__).resolve().parents[1]
TOL = dict(rtol=1e-9, atol=1e-12)  # float64; only the order of the sums differs
seeds = st.integers(0, 2**32 - 1)

# (lesson, grade_id of the answer cell; the function it defines has the same name) -> library function.
SAME = {
    ("01", "conv_output_size"): conv.conv_output_size,
    ("01", "conv2d_naive"): conv.conv2d_naive,
    ("01", "conv2d"): conv.conv2d,
    ("02", "max_pool2d"): pooling.max_pool2d,
    ("02", "avg_pool2d"): pooling.avg_pool2d,
    ("03", "linear"): dense.linear,
    ("03", "relu"): activations.relu,
    ("03", "softmax"): activations.softmax,
    ("04", "mse"): losses.mse,
    ("04", "log_softmax"): activations.log_softmax,
    ("04", "cross_entropy"): losses.cross_entropy,
    ("04", "cross_entropy_grad"): losses.cross_entropy_backward,
    ("05", "numeric_gradient"): gradcheck.numeric_gradient,
    ("05", "linear_backward"): dense.linear_backward,
    ("05", "relu_backward"): activations.relu_backward,
    ("05", "max_pool2d_backward"): pooling.max_pool2d_backward,
    ("05", "conv2d_backward"): conv.conv2d_backward,
    ("06", "sgd_momentum_step"): optim.sgd_momentum_step,
    ("06", "adam_step"): optim.adam_step,
    ("09", "batchnorm_forward"): normalization.batchnorm_forward,
    ("09", "batchnorm_backward"): normalization.batchnorm_backward,
    ("09", "dropout_forward"): normalization.dropout_forward,
    ("09", "dropout_backward"): normalization.dropout_backward,
}
# Answers that define a class (its name differs from the grade_id) -> (class name, the library's class).
CLASSES = {("09", "residual_block"): ("ResidualBlock", models.ResidualBlock)}
LESSONS = sorted({number for number, _ in [*SAME, *CLASSES]})


def code_cells(number: str) -> list[dict]:
    (path,) = (ROOT / "solutions").glob(f"{number}_*/{number}_*.ipynb")
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def answer_cells(number: str) -> dict[str, str]:
    """grade_id -> the code of each answer cell of a lesson, without the solution markers."""
    answers = {}
    for cell in code_cells(number):
        nbgrader = cell.get("metadata", {}).get("nbgrader", {})
        if nbgrader.get("solution"):
            lines = source(cell).splitlines()
            answers[nbgrader["grade_id"]] = "\n".join(
                line for line in lines if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    return answers


@functools.cache
def lesson(number: str) -> dict:
    """A namespace with the imports of the lesson's first code cell and all its answer cells, in order."""
    setup = "\n".join(line for line in source(code_cells(number)[0]).splitlines() if not line.startswith("%"))
    imports = [node for node in ast.parse(setup).body if isinstance(node, (ast.Import, ast.ImportFrom))]
    namespace: dict = {}
    exec(compile(ast.Module(imports, type_ignores=[]), f"lesson {number} imports", "exec"), namespace)
    for grade_id, code in answer_cells(number).items():
        exec(compile(code, f"lesson {number}, answer {grade_id}", "exec"), namespace)
    return namespace


def pair(number: str, name: str):
    """(the lesson's function, the library's)."""
    return lesson(number)[name], SAME[number, name]


def test_the_table_lists_every_answer_of_lessons_01_to_06():
    answers = {(number, grade_id) for number in LESSONS for grade_id in answer_cells(number)}
    assert answers == set(SAME) | set(CLASSES), "a new exercise re-implements a library function? add it to SAME"
    for number, name in SAME:
        assert callable(lesson(number).get(name)), f"lesson {number}'s answer cell defines no {name}"
    for (number, _), (name, _) in CLASSES.items():
        assert isinstance(lesson(number).get(name), type), f"lesson {number}'s answer cell defines no class {name}"


# --------------------------------------------------------------------------- convolution (01, 05)

@st.composite
def conv_cases(draw):
    """x (N, C, H, W), w (F, C, KH, KW), b, stride, padding: kernels and inputs need not be square."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    padding, stride = draw(st.integers(0, 2)), draw(st.integers(1, 3))
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(max(1, kh - 2 * padding), 8)), draw(st.integers(max(1, kw - 2 * padding), 8))
    rng = np.random.default_rng(draw(seeds))
    return (rng.standard_normal((n, c, h, w)), rng.standard_normal((f, c, kh, kw)), rng.standard_normal(f),
            stride, padding)


# (x shape, w shape, stride, padding)
CONV_EDGES = {
    "single pixel": ((1, 1, 1, 1), (1, 1, 1, 1), 1, 0),
    "single pixel, padded": ((1, 2, 1, 1), (3, 2, 3, 3), 1, 1),
    "padding larger than the input": ((1, 1, 2, 2), (1, 1, 3, 3), 1, 2),
    "kernel as large as the input": ((2, 1, 5, 4), (2, 1, 5, 4), 1, 0),
    "stride > kernel, rows and columns left over": ((2, 3, 7, 9), (2, 3, 2, 2), 3, 0),
    "overlapping windows, stride 2 < kernel 3": ((1, 2, 7, 7), (2, 2, 3, 3), 2, 1),
    "non-square input and kernel": ((2, 2, 6, 3), (3, 2, 3, 1), 2, 2),
}


def conv_edge_inputs(x_shape, w_shape):
    rng = np.random.default_rng(0)
    return rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])


@given(size=st.integers(1, 30), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3))
@settings(max_examples=30, deadline=None)
def test_conv_output_size(size, k, s, p):
    ours, library = pair("01", "conv_output_size")
    if k <= size + 2 * p:
        assert ours(size, k, s, p) == library(size, k, s, p)


@pytest.mark.parametrize("name", ["conv2d_naive", "conv2d"])
@given(case=conv_cases())
@settings(max_examples=15, deadline=None)
def test_conv2d(name, case):
    ours, library = pair("01", name)
    x, w, b, stride, padding = case
    np.testing.assert_allclose(ours(x, w, b, stride, padding), library(x, w, b, stride, padding), **TOL)
    np.testing.assert_allclose(ours(x, w, None, stride, padding), library(x, w, None, stride, padding), **TOL)


@pytest.mark.parametrize("name", ["conv2d_naive", "conv2d"])
@pytest.mark.parametrize("edge", list(CONV_EDGES))
def test_conv2d_edge_cases(name, edge):
    ours, library = pair("01", name)
    x_shape, w_shape, stride, padding = CONV_EDGES[edge]
    x, w, b = conv_edge_inputs(x_shape, w_shape)
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride, padding).numpy()
    np.testing.assert_allclose(library(x, w, b, stride, padding), expected, **TOL)
    np.testing.assert_allclose(ours(x, w, b, stride, padding), expected, **TOL)


def assert_conv_grads_agree(dout, x, w, stride, padding, reference=None):
    ours, library = pair("05", "conv2d_backward")
    if reference is None:
        reference = library(dout, x, w, stride, padding)
    for what, got, want in zip(("dx", "dw", "db"), ours(dout, x, w, stride, padding), reference):
        np.testing.assert_allclose(got, want, **TOL, err_msg=what)


@given(case=conv_cases())
@settings(max_examples=20, deadline=None)
def test_conv2d_backward(case):
    x, w, _, stride, padding = case
    dout = np.random.default_rng(1).standard_normal(conv.conv2d(x, w, None, stride, padding).shape)
    assert_conv_grads_agree(dout, x, w, stride, padding)


@pytest.mark.parametrize("edge", list(CONV_EDGES))
def test_conv2d_backward_edge_cases(edge):
    x_shape, w_shape, stride, padding = CONV_EDGES[edge]
    x, w, b = conv_edge_inputs(x_shape, w_shape)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    out = F.conv2d(xt, wt, bt, stride, padding)
    dout = np.random.default_rng(1).standard_normal(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    expected = xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()
    for got, want in zip(conv.conv2d_backward(dout, x, w, stride, padding), expected):
        np.testing.assert_allclose(got, want, **TOL)
    assert_conv_grads_agree(dout, x, w, stride, padding, reference=expected)


# --------------------------------------------------------------------------- pooling (02, 05)

@st.composite
def pool_cases(draw):
    """x (N, C, H, W), kernel_size, stride (an int or None). With ``ties``, x holds only 0, 1 and 2, so
    most windows hold their maximum more than once."""
    k, stride = draw(st.integers(1, 4)), draw(st.one_of(st.none(), st.integers(1, 4)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(k, 9)), draw(st.integers(k, 9)))
    rng = np.random.default_rng(draw(seeds))
    x = rng.integers(0, 3, shape).astype(np.float64) if draw(st.booleans()) else rng.standard_normal(shape)
    return x, k, stride


# (x, kernel_size, stride)
POOL_EDGES = {
    "all equal: every window a tie": (np.ones((1, 2, 4, 4)), 2, None),
    "a tie in every window, overlapping windows": (np.array([[1, 2, 2], [2, 0, 2], [1, 2, 1.0]])[None, None], 2, 1),
    "ties, overlapping, non-square": (np.tile([[0.0, 3, 3, 0]], (5, 2))[None, None], 3, 1),
    "stride > kernel, rows and columns left over": (np.random.default_rng(2).standard_normal((2, 1, 7, 8)), 2, 3),
    "single pixel": (np.array([[[[5.0]]]]), 1, None),
    "kernel as large as the input": (np.random.default_rng(3).standard_normal((1, 3, 3, 5)), 3, None),
    "non-square, overlapping": (np.random.default_rng(4).standard_normal((2, 3, 5, 8)), 3, 2),
}


def call(fn, *args, kernel_size, stride):
    """Call with the lesson's default stride when stride is None, as a learner would."""
    return fn(*args, kernel_size) if stride is None else fn(*args, kernel_size, stride)


def assert_pooling_agrees(x, k, stride, torch_check=False):
    for name, torch_pool in (("max_pool2d", F.max_pool2d), ("avg_pool2d", F.avg_pool2d)):
        ours, library = pair("02", name)
        got = call(library, x, kernel_size=k, stride=stride)
        np.testing.assert_allclose(call(ours, x, kernel_size=k, stride=stride), got, **TOL, err_msg=name)
        if torch_check:
            np.testing.assert_allclose(got, torch_pool(torch.from_numpy(x), k, stride).numpy(), **TOL, err_msg=name)
    ours, library = pair("05", "max_pool2d_backward")
    dout = np.random.default_rng(5).standard_normal(pooling.max_pool2d(x, k, stride).shape)
    got = call(library, dout, x, kernel_size=k, stride=stride)
    np.testing.assert_array_equal(call(ours, dout, x, kernel_size=k, stride=stride), got,
                                  err_msg="max_pool2d_backward: the lesson and the library route the gradient differently")
    if torch_check:
        xt = torch.tensor(x, requires_grad=True)
        F.max_pool2d(xt, k, stride).backward(torch.from_numpy(dout))
        np.testing.assert_array_equal(got, xt.grad.numpy(), err_msg="max_pool2d_backward differs from PyTorch")


@given(case=pool_cases())
@settings(max_examples=40, deadline=None)
def test_pooling_and_its_backward(case):
    assert_pooling_agrees(*case)


@pytest.mark.parametrize("edge", list(POOL_EDGES))
def test_pooling_edge_cases(edge):
    assert_pooling_agrees(*POOL_EDGES[edge], torch_check=True)


def test_a_tie_sends_the_whole_gradient_to_the_first_maximum():
    ours, library = pair("05", "max_pool2d_backward")
    x = np.array([[0.0, 7.0], [7.0, 7.0]])[None, None]
    for backward in (ours, library):
        assert backward(np.full((1, 1, 1, 1), 3.0), x, 2)[0, 0].tolist() == [[0, 3], [0, 0]]


# --------------------------------------------------------------------------- dense, activations, losses (03, 04, 05)

logit_scales = st.sampled_from([1.0, 10.0, 1000.0])


@given(n=st.integers(1, 5), d_in=st.integers(1, 6), d_out=st.integers(1, 6), seed=seeds)
@settings(max_examples=20, deadline=None)
def test_linear_and_its_backward(n, d_in, d_out, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((n, d_in)), rng.standard_normal((d_out, d_in)), rng.standard_normal(d_out)
    ours, library = pair("03", "linear")
    np.testing.assert_allclose(ours(x, w, b), library(x, w, b), **TOL)
    ours, library = pair("05", "linear_backward")
    dout = rng.standard_normal((n, d_out))
    for got, want in zip(ours(dout, x, w), library(dout, x, w)):
        np.testing.assert_allclose(got, want, **TOL)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=seeds)
@settings(max_examples=20, deadline=None)
def test_relu_and_its_backward(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    x[rng.random(shape) < 0.3] = 0.0  # the kink: both give 0 there, like PyTorch
    dout = rng.standard_normal(shape)
    np.testing.assert_array_equal(lesson("03")["relu"](x), activations.relu(x))
    np.testing.assert_array_equal(lesson("05")["relu_backward"](dout, x), activations.relu_backward(dout, x))


@pytest.mark.parametrize("number, name", [("03", "softmax"), ("04", "log_softmax")])
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), scale=logit_scales, seed=seeds)
@settings(max_examples=15, deadline=None)
def test_softmax_and_log_softmax(number, name, shape, scale, seed):
    z = scale * np.random.default_rng(seed).standard_normal(shape)  # scale 1000 would overflow a naive exp
    ours, library = pair(number, name)
    np.testing.assert_allclose(ours(z), library(z), **TOL)


@given(n=st.integers(1, 6), k=st.integers(1, 6), scale=logit_scales, seed=seeds)
@settings(max_examples=20, deadline=None)
def test_cross_entropy_and_its_gradient(n, k, scale, seed):
    rng = np.random.default_rng(seed)
    logits, y = scale * rng.standard_normal((n, k)), rng.integers(0, k, n)
    ours, library = pair("04", "cross_entropy")
    assert ours(logits, y) == pytest.approx(library(logits, y), rel=1e-9, abs=1e-12)
    ours, library = pair("04", "cross_entropy_grad")
    np.testing.assert_allclose(ours(logits, y), library(logits, y), **TOL)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=seeds)
@settings(max_examples=15, deadline=None)
def test_mse(shape, seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    ours, library = pair("04", "mse")
    assert ours(pred, target) == pytest.approx(library(pred, target), rel=1e-12)


def test_losses_and_softmax_on_extreme_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0]])
    y = np.array([2, 0])
    np.testing.assert_allclose(lesson("03")["softmax"](z), activations.softmax(z), **TOL)
    np.testing.assert_allclose(lesson("04")["log_softmax"](z), activations.log_softmax(z), **TOL)
    assert lesson("04")["cross_entropy"](z, y) == pytest.approx(losses.cross_entropy(z, y), rel=1e-12)
    np.testing.assert_allclose(lesson("04")["cross_entropy_grad"](z, y), losses.cross_entropy_backward(z, y), **TOL)
    expected = F.cross_entropy(torch.from_numpy(z), torch.from_numpy(y)).item()
    assert losses.cross_entropy(z, y) == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- numeric gradient (05)

@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=seeds)
@settings(max_examples=10, deadline=None)
def test_numeric_gradient(shape, seed):
    rng = np.random.default_rng(seed)
    x, r = rng.standard_normal(shape), rng.standard_normal(shape)
    before = x.copy()
    ours, library = pair("05", "numeric_gradient")
    f = lambda x: float(np.sum(np.sin(x) * r))  # noqa: E731
    np.testing.assert_allclose(ours(f, x), library(f, x), **TOL)
    np.testing.assert_array_equal(x, before)  # both put every element back


# --------------------------------------------------------------------------- optimizers (06)

def params_and_grads(seed):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    return params, [[rng.standard_normal(p.shape) for p in params] for _ in range(5)]


@given(seed=seeds, lr=st.floats(1e-3, 0.5), momentum=st.sampled_from([0.0, 0.5, 0.9]),
       weight_decay=st.sampled_from([0.0, 0.01]))
@settings(max_examples=15, deadline=None)
def test_sgd_momentum_step(seed, lr, momentum, weight_decay):
    params, grads = params_and_grads(seed)
    ours, library = pair("06", "sgd_momentum_step")
    mine, theirs = [p.copy() for p in params], [p.copy() for p in params]
    velocities_mine, velocities_theirs = [], []
    for step_grads in grads:  # five steps, the memory carried from one to the next
        ours(mine, step_grads, velocities_mine, lr, momentum, weight_decay)
        library(theirs, step_grads, velocities_theirs, lr, momentum, weight_decay)
        for a, b in zip(mine + velocities_mine, theirs + velocities_theirs):
            np.testing.assert_allclose(a, b, **TOL)


@given(seed=seeds, lr=st.floats(1e-3, 0.5), betas=st.sampled_from([(0.9, 0.999), (0.5, 0.9)]),
       eps=st.sampled_from([1e-8, 1e-3]), weight_decay=st.sampled_from([0.0, 0.01]))
@settings(max_examples=15, deadline=None)
def test_adam_step(seed, lr, betas, eps, weight_decay):
    params, grads = params_and_grads(seed)
    ours, library = pair("06", "adam_step")
    mine, theirs = [p.copy() for p in params], [p.copy() for p in params]
    state_mine, state_theirs = {}, {}
    for step_grads in grads:
        ours(mine, step_grads, state_mine, lr, betas, eps, weight_decay)
        library(theirs, step_grads, state_theirs, lr, betas, eps, weight_decay)
        assert state_mine["step"] == state_theirs["step"]
        for a, b in zip(mine + state_mine["m"] + state_mine["v"], theirs + state_theirs["m"] + state_theirs["v"]):
            np.testing.assert_allclose(a, b, **TOL)


def test_the_widget_runs_on_lesson_06s_ravine():
    (cell,) = [source(c) for c in code_cells("06") if "def ravine_loss" in source(c)]
    namespace = {"np": np}
    exec(cell, namespace)
    surface, start, _ = widgets.SURFACES["ravine"]
    np.testing.assert_array_equal(start, namespace["w_start"])
    for w in np.random.default_rng(0).standard_normal((10, 2)) * 3:
        loss, grad = surface(w)
        assert loss == pytest.approx(namespace["ravine_loss"](w), rel=1e-15)
        np.testing.assert_allclose(grad, namespace["ravine_grad"](w), rtol=1e-15)


# --------------------------------------------------------------------------- batch norm, dropout, residual block (09)

@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(2, 4),
       momentum=st.sampled_from([0.1, 0.5]), eps=st.sampled_from([1e-5, 1e-2]), seed=seeds)
@settings(max_examples=20, deadline=None)
def test_batchnorm_forward_and_backward(n, c, h, w, momentum, eps, seed):
    rng = np.random.default_rng(seed)
    x, dout = rng.standard_normal((n, c, h, w)) * 2 + 1, rng.standard_normal((n, c, h, w))
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    stats = {who: (rng_stats.standard_normal(c), rng_stats.uniform(0.5, 2, c))
             for who, rng_stats in [("ours", np.random.default_rng(seed)), ("library", np.random.default_rng(seed))]}
    for training in (True, False):  # training updates the running statistics in place, evaluation uses them
        outs = {who: fn(x, gamma, beta, *stats[who], training, momentum, eps)
                for who, fn in zip(["ours", "library"], pair("09", "batchnorm_forward"))}
        np.testing.assert_allclose(outs["ours"], outs["library"], **TOL)
        for a, b in zip(stats["ours"], stats["library"]):
            np.testing.assert_allclose(a, b, **TOL)
    ours, library = pair("09", "batchnorm_backward")
    for a, b in zip(ours(dout, x, gamma, eps), library(dout, x, gamma, eps)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), p=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
       training=st.booleans(), seed=seeds)
@settings(max_examples=20, deadline=None)
def test_dropout_forward_and_backward(shape, p, training, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    (out, keep), (out_lib, keep_lib) = (fn(x, p, training, seed) for fn in pair("09", "dropout_forward"))
    np.testing.assert_array_equal(keep, keep_lib)
    np.testing.assert_allclose(out, out_lib, **TOL)
    ours, library = pair("09", "dropout_backward")
    np.testing.assert_allclose(ours(x, keep, p), library(x, keep, p), **TOL)


@pytest.mark.parametrize("c_in, c_out, stride", [(4, 4, 1), (3, 6, 2), (4, 8, 1), (5, 5, 2)])
def test_residual_block(c_in, c_out, stride):
    (name, library_class), = CLASSES.values()
    torch.manual_seed(0)
    ours, library = lesson("09")[name](c_in, c_out, stride).double(), library_class(c_in, c_out, stride).double()
    with torch.no_grad():
        for p in library.parameters():
            p.normal_()
    ours.load_state_dict(library.state_dict())  # the same names, shapes and buffers
    x = torch.randn(2, c_in, 7, 7, dtype=torch.float64)
    for training in (True, False):
        ours.train(training)
        library.train(training)
        torch.testing.assert_close(ours(x), library(x))
