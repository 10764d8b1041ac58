"""Feedback that names the mistake, lesson 09: its graded test cells fed classic wrong answers.

Each test cell of solutions/09_modern_blocks (run here as in the learner's notebook: the cell's
source with the answer bound to its name) must pass the instructor's answer and fail each wrong
variant below with a message that names the mistake (the words listed with it), locally and when
graded (through the grader's judge, as tests/test_feedback.py does for lessons 00-08). The variants
are written out as a learner would write them.
"""

import numpy as np
import pytest
import torch
from torch import nn

from test_feedback import cells as lesson_cells, judged  # tests/ is on sys.path: pytest puts it there


def cells() -> dict[str, str]:
    """grade_id -> source of every nbgrader cell of the instructor's notebook."""
    return lesson_cells("09")


def answer(grade_id: str) -> dict:
    namespace = {"np": np, "torch": torch, "nn": nn}
    exec(cells()[grade_id].replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), namespace)
    return namespace


def message(test_id: str, name: str, value) -> str | None:
    """Run the test cell with `name` bound to `value`: None if it passes, else its message."""
    try:
        exec(cells()[test_id], {name: value})
    except AssertionError as error:
        return str(error)
    return None


# ---- the wrong answers ----------------------------------------------------------------------------

def bn_forward(axes=(0, 2, 3), eps_outside=False, in_place=True, unbiased_running=True, swap_momentum=False,
               batch_stats_in_eval=False, normalise_ddof=0, update_in_eval=None, fixed_eps=False, fixed_momentum=False,
               running_in_training=None, eps_in_eval=True):
    """update_in_eval: None, "before" (the running statistics updated by every call, then used in evaluation)
    or "after" (evaluation normalises with them, then updates them too). running_in_training: None, "before"
    or "after" (training normalises with the running statistics, before or after updating them)."""
    def batchnorm_forward(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
        if update_in_eval == "before":
            update(x, running_mean, running_var, momentum)
        if training and running_in_training:
            if running_in_training == "after":
                update(x, running_mean, running_var, momentum)
            mean, var = running_mean.reshape(1, -1, 1, 1).copy(), running_var.reshape(1, -1, 1, 1).copy()
            if running_in_training == "before":
                update(x, running_mean, running_var, momentum)
        elif training or batch_stats_in_eval:
            mean = x.mean(axis=axes, keepdims=True)
            var = x.var(axis=axes, keepdims=True, ddof=normalise_ddof)
            if training and update_in_eval is None:
                update(x, running_mean, running_var, momentum)
        else:
            mean, var = running_mean.reshape(1, -1, 1, 1).copy(), running_var.reshape(1, -1, 1, 1).copy()
        eps = 1e-5 if fixed_eps else eps
        if not training and not eps_in_eval:
            eps = 0.0
        std = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
        out = gamma.reshape(1, -1, 1, 1) * (x - mean) / std + beta.reshape(1, -1, 1, 1)
        if update_in_eval == "after":
            update(x, running_mean, running_var, momentum)
        return out

    def update(x, running_mean, running_var, momentum):
        momentum = 0.1 if fixed_momentum else momentum
        m = x.size // x.shape[1]
        batch_var = x.var(axis=(0, 2, 3)) * (m / (m - 1) if unbiased_running else 1)
        w_old, w_new = (momentum, 1 - momentum) if swap_momentum else (1 - momentum, momentum)
        new_mean = w_old * running_mean + w_new * x.mean(axis=(0, 2, 3))
        new_var = w_old * running_var + w_new * batch_var
        if in_place:
            running_mean[:], running_var[:] = new_mean, new_var
    return batchnorm_forward


def bn_backward(kind, axes=(0, 2, 3)):
    def batchnorm_backward(dout, x, gamma, eps=1e-5):
        if kind == "eps hard-coded":
            eps = 1e-5
        std = np.sqrt(x.var(axis=axes, keepdims=True, ddof=1 if kind == "ddof=1" else 0) + eps)
        x_hat = (x - x.mean(axis=axes, keepdims=True)) / std
        dx_hat = dout * gamma.reshape(1, -1, 1, 1)
        dx = (dx_hat - dx_hat.mean(axis=axes, keepdims=True) - x_hat * (dx_hat * x_hat).mean(axis=axes, keepdims=True)) / std
        dgamma = (dout * x_hat).sum(axis=axes)
        if kind == "constants":
            dx = dx_hat / std
        elif kind == "mean only":
            dx = (dx_hat - dx_hat.mean(axis=axes, keepdims=True)) / std
        elif kind == "sums":
            dx = (dx_hat - dx_hat.sum(axis=axes, keepdims=True) - x_hat * (dx_hat * x_hat).sum(axis=axes, keepdims=True)) / std
        elif kind == "dgamma of x":
            dgamma = (dout * x).sum(axis=axes)
        elif kind == "divided by N":
            n = x.shape[0]
            dx = (dx_hat - dx_hat.sum(axis=axes, keepdims=True) / n - x_hat * (dx_hat * x_hat).sum(axis=axes, keepdims=True) / n) / std
        if kind == "dgamma and dbeta swapped":
            return dx, dout.sum(axis=axes), dgamma
        return dx, dgamma, dout.sum(axis=axes)
    return batchnorm_backward


def drop_forward(kind):
    def dropout_forward(x, p=0.5, training=True, seed=None):
        if not training and kind == "scaled in evaluation":
            return x * (1 - p), np.ones(x.shape, dtype=bool)
        if not training and kind != "dropped in evaluation":
            return x.copy(), np.ones(x.shape, dtype=bool)
        r = np.random.default_rng(seed).random(x.shape)
        if kind == "seed ignored":
            r = np.random.random(x.shape)
        elif kind == "seed hard-coded":
            r = np.random.default_rng(0).random(x.shape)
        elif kind == "legacy generator":
            np.random.seed(seed)
            r = np.random.rand(*x.shape)
        keep = {"opposite": r < p, "keep probability p": r >= 1 - p}.get(kind, r >= p)
        if kind == "divided by p":
            return x * keep / p, keep
        if kind == "no p = 1 guard":
            return x * keep / (1 - p), keep
        scale = {"no scaling": 1.0, "times 1 - p": 1 - p}.get(kind, 1 / (1 - p) if p < 1 else 0.0)
        return x * keep * scale, keep
    return dropout_forward


def drop_backward(kind):
    def dropout_backward(dout, keep, p=0.5):
        if kind == "no scaling":
            return dout * keep
        if kind == "no p = 1 guard":
            return dout * keep / (1 - p)
        if kind == "divided by p":
            return np.zeros_like(dout) if p == 1 else dout * keep / p
        if kind == "no mask":
            return dout / (1 - p)
        if kind == "unchanged":
            return dout.copy()
        if kind == "boolean indexing":
            return np.zeros(0) if p == 1 else dout[keep] / (1 - p)
        if kind == "new mask":
            return np.zeros_like(dout) if p == 1 else dout * (np.random.default_rng(0).random(dout.shape) >= p) / (1 - p)
        return dout * ~keep / (1 - p)
    return dropout_backward


def residual_block(kind):
    class ResidualBlock(nn.Module):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__()
            bias = kind == "bias"
            stride1, stride2 = (1, stride) if kind == "stride on conv2" else (stride, 1)
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride1, padding=1, bias=bias)
            self.bn1 = nn.BatchNorm2d(out_channels)
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=stride2, padding=1, bias=bias)
            self.bn2 = self.bn1 if kind == "one BatchNorm twice" else nn.BatchNorm2d(out_channels)
            if kind == "batch statistics in evaluation":
                self.bn1 = nn.BatchNorm2d(out_channels, track_running_stats=False)
                self.bn2 = nn.BatchNorm2d(out_channels, track_running_stats=False)
            self.shortcut = nn.Identity()
            needs_projection = in_channels != out_channels if kind == "projection only for new channels" \
                else stride != 1 or in_channels != out_channels
            if kind != "no projection" and needs_projection:
                projection_stride = 1 if kind == "projection without stride" else stride
                projection = [nn.Conv2d(in_channels, out_channels, 1, stride=projection_stride, bias=False)]
                if kind != "projection without BatchNorm":
                    projection.append(nn.BatchNorm2d(out_channels))
                self.shortcut = nn.Sequential(*projection)

        def forward(self, x):
            if kind == "added after bn1":
                out = torch.relu(self.bn1(self.conv1(x)) + self.shortcut(x))
                return torch.relu(self.bn2(self.conv2(out)))
            if kind == "added after conv2":
                out = torch.relu(self.bn1(self.conv1(x)))
                return torch.relu(self.bn2(self.conv2(out) + self.shortcut(x)))
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            if kind == "relu before add":
                return torch.relu(out) + self.shortcut(x)
            if kind == "no final relu":
                return out + self.shortcut(x)
            return torch.relu(out + self.shortcut(x))
    return ResidualBlock


VARIANTS = [
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(axes=(1, 2, 3)), "per image"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(axes=(0,)), "batch axis 0 only"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(eps_outside=True), "standard deviation"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(normalise_ddof=1), "unbiased variance (ddof=1, divided by m - 1)"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(normalise_ddof=1, unbiased_running=False),
     "unbiased variance (ddof=1, divided by m - 1)"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(in_place=False), "in place"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(unbiased_running=False), "biased variance"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(swap_momentum=True), "swapped the weights"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(batch_stats_in_eval=True), "batch's own statistics"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(update_in_eval="after"), "must not change"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(update_in_eval="before"), "updated with this batch"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(fixed_momentum=True), "momentum fixed at 0.1"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(fixed_eps=True), "use the eps argument"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(running_in_training="after"), "running statistics in training"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(running_in_training="before"), "running statistics in training"),
    ("test_batchnorm_forward", "batchnorm_forward", bn_forward(eps_in_eval=False), "eps left out in evaluation"),
    ("test_batchnorm_forward_hidden", "batchnorm_forward", bn_forward(batch_stats_in_eval=True), "batch's own statistics"),
    ("test_batchnorm_forward_hidden", "batchnorm_forward", bn_forward(fixed_momentum=True), "momentum fixed at 0.1"),
    ("test_batchnorm_forward_hidden", "batchnorm_forward", bn_forward(fixed_eps=True), "use the eps argument"),
    ("test_batchnorm_backward", "batchnorm_backward", bn_backward("constants"), "treated as constants"),
    ("test_batchnorm_backward", "batchnorm_backward", bn_backward("mean only"), "through the variance"),
    ("test_batchnorm_backward", "batchnorm_backward", bn_backward("sums"), "sums where the means belong"),
    ("test_batchnorm_backward", "batchnorm_backward", bn_backward("ddof=1"), "unbiased variance (ddof=1, divided by m - 1)"),
    ("test_batchnorm_backward", "batchnorm_backward", bn_backward("", axes=(1, 2, 3)), "per image"),
    ("test_batchnorm_backward", "batchnorm_backward", bn_backward("", axes=(0,)), "batch axis 0 only"),
    ("test_batchnorm_backward", "batchnorm_backward", bn_backward("dgamma of x"), "dout * x instead"),
    ("test_batchnorm_backward", "batchnorm_backward", bn_backward("eps hard-coded"), "use the eps argument"),
    ("test_batchnorm_backward", "batchnorm_backward", bn_backward("divided by N"), "divided by N"),
    ("test_batchnorm_backward", "batchnorm_backward", bn_backward("dgamma and dbeta swapped"), "dgamma and dbeta swapped"),
    ("test_batchnorm_backward_hidden", "batchnorm_backward", bn_backward("eps hard-coded"), "eps argument"),
    ("test_batchnorm_backward_hidden", "batchnorm_backward", bn_backward("divided by N"), "divided by N"),
    ("test_batchnorm_backward_hidden", "batchnorm_backward", bn_backward("dgamma and dbeta swapped"), "dgamma and dbeta swapped"),
    ("test_batchnorm_backward_hidden", "batchnorm_backward", bn_backward("ddof=1"), "unbiased variance (ddof=1, divided by m - 1)"),
    ("test_dropout_forward", "dropout_forward", drop_forward("no scaling"), "did not scale"),
    ("test_dropout_forward", "dropout_forward", drop_forward("times 1 - p"), "multiplied by (1 - p)"),
    ("test_dropout_forward", "dropout_forward", drop_forward("opposite"), "the opposite"),
    ("test_dropout_forward", "dropout_forward", drop_forward("keep probability p"), "with probability p"),
    ("test_dropout_forward", "dropout_forward", drop_forward("scaled in evaluation"), "multiplied by (1 - p) in evaluation"),
    ("test_dropout_forward", "dropout_forward", drop_forward("dropped in evaluation"), "dropped values in evaluation"),
    ("test_dropout_forward", "dropout_forward", drop_forward("no p = 1 guard"), "1 - p = 0 without a guard"),
    ("test_dropout_forward", "dropout_forward", drop_forward("divided by p"), "divided by p"),
    ("test_dropout_forward", "dropout_forward", drop_forward("seed ignored"), "ignores seed"),
    ("test_dropout_forward", "dropout_forward", drop_forward("seed hard-coded"), "ignores seed"),
    ("test_dropout_forward", "dropout_forward", drop_forward("legacy generator"), "legacy generator"),
    ("test_dropout_forward_hidden", "dropout_forward", drop_forward("divided by p"), "divided by p"),
    ("test_dropout_forward_hidden", "dropout_forward", drop_forward("no p = 1 guard"), "1 - p = 0 without a guard"),
    ("test_dropout_backward", "dropout_backward", drop_backward("no scaling"), "forgot the factor"),
    ("test_dropout_backward", "dropout_backward", drop_backward("opposite"), "not its opposite"),
    ("test_dropout_backward", "dropout_backward", drop_backward("divided by p"), "divided by p"),
    ("test_dropout_backward", "dropout_backward", drop_backward("new mask"), "another mask"),
    ("test_dropout_backward", "dropout_backward", drop_backward("no p = 1 guard"), "1 - p = 0 without a guard"),
    ("test_dropout_backward", "dropout_backward", drop_backward("no mask"), "without the mask"),
    ("test_dropout_backward", "dropout_backward", drop_backward("unchanged"), "unchanged"),
    ("test_dropout_backward", "dropout_backward", drop_backward("boolean indexing"), "dout[keep]"),
    ("test_dropout_backward_hidden", "dropout_backward", drop_backward("no mask"), "without the mask"),
    ("test_dropout_backward_hidden", "dropout_backward", drop_backward("divided by p"), "divided by p"),
    ("test_residual_block", "ResidualBlock", residual_block("relu before add"), "ReLU before the addition"),
    ("test_residual_block", "ResidualBlock", residual_block("no final relu"), "no ReLU after the addition"),
    ("test_residual_block", "ResidualBlock", residual_block("added after bn1"), "added after bn1, before the first ReLU"),
    ("test_residual_block", "ResidualBlock", residual_block("added after conv2"), "added after conv2, before bn2"),
    ("test_residual_block", "ResidualBlock", residual_block("stride on conv2"), "stride on conv2"),
    ("test_residual_block", "ResidualBlock", residual_block("projection without stride"), "the block's stride"),
    ("test_residual_block", "ResidualBlock", residual_block("one BatchNorm twice"), "one BatchNorm module twice"),
    ("test_residual_block", "ResidualBlock", residual_block("bias"), "bias=False"),
    ("test_residual_block", "ResidualBlock", residual_block("no projection"), "no 1x1 projection"),
    ("test_residual_block", "ResidualBlock", residual_block("projection only for new channels"), "even when the channels stay"),
    ("test_residual_block", "ResidualBlock", residual_block("projection without BatchNorm"), "projection has no BatchNorm"),
    ("test_residual_block", "ResidualBlock", residual_block("batch statistics in evaluation"),
     "batch statistics in evaluation mode"),
    ("test_residual_block_hidden", "ResidualBlock", residual_block("projection only for new channels"),
     "even when the channels stay"),
    ("test_residual_block_hidden", "ResidualBlock", residual_block("projection without BatchNorm"), "projection has no BatchNorm"),
    ("test_residual_block_hidden", "ResidualBlock", residual_block("batch statistics in evaluation"),
     "batch statistics in evaluation mode"),
]


@pytest.mark.parametrize("test_id, name", sorted({(t, n) for t, n, _, _ in VARIANTS}))
def test_the_instructors_answer_passes(test_id, name):
    grade_id = test_id.removeprefix("test_").removesuffix("_hidden")
    assert message(test_id, name, answer(grade_id)[name]) is None


@pytest.mark.parametrize("test_id, name, wrong, words", VARIANTS, ids=[f"{t}-{w}" for t, _, _, w in VARIANTS])
def test_a_classic_mistake_is_named(test_id, name, wrong, words):
    text = message(test_id, name, wrong)
    assert text is not None, f"{test_id} passed a wrong answer ({words})"
    assert words in text.splitlines()[0], f"{test_id}: the message does not name the mistake ({words!r}): {text}"


@pytest.mark.parametrize("test_id, name, wrong, words", VARIANTS, ids=[f"{t}-{w}" for t, _, _, w in VARIANTS])
def test_when_graded_the_message_is_the_tests_own(test_id, name, wrong, words):
    """The grader shows the test's own message, naming the mistake (test_feedback.judged: the judge's verdict)."""
    verdict = judged("09", test_id, **{name: wrong})
    errors = [o for o in verdict["outputs"] if o["output_type"] == "error"]
    assert not verdict["passed"] and errors, f"{test_id} passed a wrong answer ({words}) when graded"
    assert errors[0]["ename"] == "AssertionError", f"{test_id}: {errors[0]['ename']}: {errors[0]['evalue']}"
    assert errors[0]["evalue"] == message(test_id, name, wrong)
    assert words in errors[0]["evalue"].splitlines()[0]
