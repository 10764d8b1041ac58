"""A trained checkpoint run by the course's own NumPy layers, without PyTorch. Lesson 08.

The network PyTorch trained in lesson 07 is a few arrays of weights and a recipe. Here the recipe is
written with the layers the learner built: ``conv2d`` (lesson 01), ``max_pool2d`` (02), ``linear``,
``flatten`` and ``relu`` (03), ``softmax`` (03) and ``batchnorm_forward`` in evaluation mode (09);
dropout is the identity in evaluation. They give PyTorch's probabilities to within float32 rounding,
and ``python -m imgrec_lib predict`` uses them: a process that never imports PyTorch starts in a
fraction of the time (the checkpoint is read by ``checkpoint.load_checkpoint(path, as_numpy=True)``).

    net, checkpoint = load_model("checkpoints/course_cnn.pt")
    prediction = predict_array(net, x, checkpoint["classes"])   # x (C, H, W) float32 in [0, 1]
    print(prediction)                                           # 7 (99.1%); then 2 0.5%, 3 0.2%

``FORWARD`` holds the models this module knows (``models.MODELS``: the course CNN and LeNet-5);
any other needs PyTorch (``checkpoint.load_model``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from .activations import relu, softmax
from .checkpoint import CheckpointError, load_checkpoint, misfit_error
from .conv import conv2d
from .dense import flatten, linear
from .inference import Prediction, rank_classes
from .normalization import batchnorm_forward
from .pooling import max_pool2d


def _batchnorm(x: np.ndarray, w: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """The BatchNorm layer ``name`` of a state_dict in evaluation mode: its running statistics."""
    return batchnorm_forward(x, w[f"{name}.weight"], w[f"{name}.bias"], w[f"{name}.running_mean"],
                             w[f"{name}.running_var"], training=False)


def course_cnn(x: np.ndarray, w: Mapping[str, np.ndarray], config: Mapping) -> np.ndarray:
    """``models.CourseCNN`` in NumPy: x (N, C, H, W) -> logits (N, num_classes).

    ``w`` is its state_dict, ``config`` its ``config``. Each block is conv3x3 -> BatchNorm -> ReLU
    -> max-pool 2x2, or conv -> max-pool -> BatchNorm -> ReLU with ``pool_first``; the names are
    the positions in ``nn.Sequential``, four layers a block."""
    pool_first = config.get("pool_first", False)
    for i in range(len(config["widths"])):
        x = conv2d(x, w[f"features.{4 * i}.weight"], padding=1)  # no bias: BatchNorm has one
        if pool_first:
            x = relu(_batchnorm(max_pool2d(x, 2), w, f"features.{4 * i + 2}"))
        else:
            x = max_pool2d(relu(_batchnorm(x, w, f"features.{4 * i + 1}")), 2)
    x = relu(linear(flatten(x), w["classifier.1.weight"], w["classifier.1.bias"]))
    return linear(x, w["classifier.4.weight"], w["classifier.4.bias"])  # dropout (classifier.3): the identity


def lenet5(x: np.ndarray, w: Mapping[str, np.ndarray], config: Mapping) -> np.ndarray:
    """``models.LeNet5`` in NumPy: x (N, C, H, W) -> logits (N, num_classes)."""
    padding = 2 if config["image_size"] < 32 else 0
    x = max_pool2d(relu(conv2d(x, w["features.0.weight"], w["features.0.bias"], padding=padding)), 2)
    x = max_pool2d(relu(conv2d(x, w["features.3.weight"], w["features.3.bias"])), 2)
    x = relu(linear(flatten(x), w["classifier.1.weight"], w["classifier.1.bias"]))
    x = relu(linear(x, w["classifier.3.weight"], w["classifier.3.bias"]))
    return linear(x, w["classifier.5.weight"], w["classifier.5.bias"])


FORWARD = {"course_cnn": course_cnn, "lenet5": lenet5}
CLASS_NAMES = {"course_cnn": "CourseCNN", "lenet5": "LeNet5"}  # as PyTorch's errors name them


class NumpyNet:
    """A course model as NumPy weights; calling it runs the forward pass in evaluation mode.

    ``name`` is a key of ``FORWARD``, ``config`` the model's ``config`` and ``weights`` its
    state_dict as arrays (what ``load_checkpoint(path, as_numpy=True)`` gives)."""

    def __init__(self, name: str, config: Mapping, weights: Mapping[str, np.ndarray]) -> None:
        if name not in FORWARD:
            raise ValueError(f"the NumPy layers run {', '.join(FORWARD)}, not {name!r}: use checkpoint.load_model")
        self.name, self.config, self.weights = name, dict(config), dict(weights)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) in [0, 1] -> logits (N, num_classes)."""
        return FORWARD[self.name](np.asarray(x, dtype=np.float32), self.weights, self.config)

    def __repr__(self) -> str:
        return f"NumpyNet({self.name!r}, {self.config})"


class _Reading(dict):
    """A state_dict that notes which weights are read, to find those a forward pass never uses."""

    def __init__(self, weights: Mapping) -> None:
        super().__init__(weights)
        self.read: set[str] = set()

    def __getitem__(self, key: str):
        self.read.add(key)
        return super().__getitem__(key)


def from_checkpoint(checkpoint: Mapping, path: str | os.PathLike = "the checkpoint") -> NumpyNet:
    """The ``NumpyNet`` of a checkpoint dict read with ``as_numpy=True``. Lesson 08.

    One image of zeros goes through it first, so that weights that do not fit the architecture
    raise a ``CheckpointError`` here, like ``checkpoint.load_weights``, and not at the first image.
    A model the NumPy layers do not know (not in ``FORWARD``) raises one too."""
    name, config = checkpoint["model_name"], dict(checkpoint["model_config"])
    if name not in FORWARD:
        raise CheckpointError(f"checkpoint {path} holds a {name!r}, which only PyTorch can run "
                              f"(the NumPy layers run {', '.join(FORWARD)}): use checkpoint.load_model")
    weights = _Reading(checkpoint["state_dict"])
    problem = None
    try:
        FORWARD[name](np.zeros((1, *checkpoint["input_shape"]), np.float32), weights, config)
    except KeyError as err:
        problem = f"{err.args[0]} missing"
    except (ValueError, TypeError, AttributeError) as err:  # a shape that does not fit, or not an array at all
        problem = str(err)
    unused = sorted(set(weights) - weights.read - {k for k in weights if k.endswith(".num_batches_tracked")})
    if problem is None and unused:
        problem = f"{len(unused)} unexpected (e.g. {', '.join(unused[:2])})"
    if problem is not None:
        raise misfit_error(path, CLASS_NAMES[name], problem)
    return NumpyNet(name, config, checkpoint["state_dict"])


def load_model(path: str | os.PathLike) -> tuple[NumpyNet, dict]:
    """``checkpoint.load_model`` without PyTorch: ``(NumpyNet, checkpoint dict with arrays)``. Lesson 08.

    Raises ``CheckpointError`` for a file that cannot be read, weights that do not fit, or a model
    the NumPy layers do not know (``FORWARD``)."""
    checkpoint = load_checkpoint(path, as_numpy=True)
    return from_checkpoint(checkpoint, path), checkpoint


def predict_array(net: NumpyNet, x: np.ndarray, classes: Sequence | None = None,
                  top_k: int = 3) -> Prediction | list[Prediction]:
    """``inference.predict_tensor`` for a ``NumpyNet``: one image (C, H, W) -> a ``Prediction``, a
    batch (N, C, H, W) -> a list of them. Lesson 08."""
    if np.ndim(x) not in (3, 4):
        raise ValueError(f"expected an image (C, H, W) or a batch (N, C, H, W) array, got {np.shape(x)}")
    single = np.ndim(x) == 3
    probabilities = softmax(net(x[None] if single else x).astype(np.float64), axis=1)
    predictions = rank_classes(probabilities, classes, top_k)
    return predictions[0] if single else predictions
