"""The networks of the course: the course CNN and LeNet-5. Lesson 07.

Each model keeps ``self.config``, the keyword arguments that rebuild it, so a checkpoint can store
the architecture as plain data: ``build_model(checkpoint["model_name"], **checkpoint["model_config"])``.
"""

from __future__ import annotations

import torch
from torch import nn


def _check_input(model: nn.Module, x: torch.Tensor) -> None:
    """A readable error for the usual mistakes: no batch axis, the wrong number of channels, or pixels
    of another dtype than the weights (uint8 0-255, float64 from NumPy). Reads only x's shape and
    dtype, so it costs nothing next to the forward pass; a wrong image size fails in the first Linear."""
    c, dtype = model.config["in_channels"], model.features[0].weight.dtype
    if x.dim() == 4 and x.shape[1] == c and x.dtype == dtype:
        return
    name, size = type(model).__name__, model.config["image_size"]
    if x.dim() == 4 and x.shape[1] == c:
        scale = " / 255 (pixel values 0-255 become 0-1)" if not x.dtype.is_floating_point else ""
        raise ValueError(f"{name} has {dtype} weights but got {x.dtype} images: convert them with x.to({dtype}){scale}")
    fix = "pass a batch (N, C, H, W)"
    if x.dim() == 3:
        fix = "add the batch dimension with x.unsqueeze(0)"
    elif x.dim() == 4:
        fix = f"build the model with in_channels={x.shape[1]} for these images"
    raise ValueError(f"{name} expects a batch of shape (N, {c}, {size}, {size}), got {tuple(x.shape)}: {fix}")


class CourseCNN(nn.Module):
    """The course CNN: one conv block per width, then a small classifier. Lesson 07.

    Each block is conv3x3 (padding 1) -> BatchNorm -> ReLU -> max-pool 2x2, so it keeps the size and
    then halves it: with the defaults 28x28 -> 14x14 -> 7x7. One conv per block (not two) trains as
    well on the course data at a third of the cost. BatchNorm lets the large learning rates of the
    one-cycle schedule work.

    ``pool_first=True`` reorders each block to conv -> max-pool -> BatchNorm -> ReLU: the same
    number of weights, but BatchNorm and ReLU run on the pooled maps, a quarter of the pixels. On a
    CPU, where these memory-bound layers take a large share of a training step, that is cheaper
    (used by the fast recipe, ``training.RECIPES["fast"]``). ``config`` names it only when set, so a default
    model's config and checkpoint do not depend on it.

    Input (N, in_channels, image_size, image_size) in [0, 1]; output logits (N, num_classes).
    Works for 28x28 grey digits (the defaults) and 32x32 colour images (``in_channels=3, image_size=32``).
    """

    name = "course_cnn"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        widths: tuple[int, ...] = (32, 64),
        hidden: int = 128,
        dropout: float = 0.25,
        pool_first: bool = False,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or image_size // 2 ** len(widths) < 1:
            raise ValueError(
                f"image_size={image_size} is too small for {len(widths)} pooling blocks: "
                f"use at most {max(0, image_size.bit_length() - 1)} widths"
            )
        self.config = dict(
            in_channels=in_channels, num_classes=num_classes, image_size=image_size,
            widths=widths, hidden=hidden, dropout=dropout,
        )
        if pool_first:
            self.config["pool_first"] = True
        blocks, c, size = [], in_channels, image_size
        for w in widths:
            conv = nn.Conv2d(c, w, kernel_size=3, padding=1, bias=False)  # BatchNorm has the bias
            if pool_first:
                blocks += [conv, nn.MaxPool2d(2), nn.BatchNorm2d(w), nn.ReLU()]
            else:
                blocks += [conv, nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
            c, size = w, size // 2
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * size * size, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) -> logits (N, num_classes)."""
        _check_input(self, x)
        return self.classifier(self.features(x))


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998): conv5 -> pool -> conv5 -> pool -> 120 -> 84 -> classes. Lesson 07.

    Layout as in the paper: 6 then 16 filters of 5x5, 2x2 pooling, dense layers of 120 and 84.
    The paper fed 32x32 images; 28x28 input (MNIST) gets padding 2 in the first conv, as usual,
    so both sizes reach 16 maps of 5x5 before the dense layers.

    We use ReLU and max pooling, not the paper's scaled tanh and trainable average "subsampling":
    ReLU does not saturate, so with Adam it trains in a few epochs where tanh needs many more, and
    it matches the rest of the course. Swap them in as an exercise to see the difference.

    Input (N, in_channels, image_size, image_size); output logits (N, num_classes).
    """

    name = "lenet5"

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        padding = 2 if image_size < 32 else 0
        size = ((image_size + 2 * padding - 4) // 2 - 4) // 2  # conv5, pool, conv5, pool
        if size < 1:
            raise ValueError(f"LeNet5 needs images of at least 12x12 pixels, got image_size={image_size}")
        self.config = dict(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=padding), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * size * size, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) -> logits (N, num_classes)."""
        _check_input(self, x)
        return self.classifier(self.features(x))


MODELS = {"course_cnn": CourseCNN, "lenet5": LeNet5}


def build_model(name: str, **config) -> nn.Module:
    """Build a model by name ("course_cnn" or "lenet5") with the given keyword arguments. Lesson 07.

    ``build_model(net.name, **net.config)`` builds a fresh copy of the architecture of ``net``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    try:
        return MODELS[name](**config)
    except TypeError as err:
        raise ValueError(f"bad settings for model {name!r}: {err}") from None


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """The number of (trainable) parameters of a model. Lesson 07."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class ResidualBlock(nn.Module):
    """A ResNet "basic block" (He et al., 2016): out = relu(F(x) + shortcut(x)). Lesson 09.

    F is conv3x3 (stride) -> BatchNorm -> ReLU -> conv3x3 -> BatchNorm, with no conv bias (BatchNorm
    has one). The shortcut is the identity when the shape stays (stride 1, same channels), else a
    1x1 conv with the same stride and a BatchNorm (a "projection"), so the two can be added.
    Because the block adds to x instead of replacing it, its gradient has a path around F: deep
    stacks of blocks still train. Input (N, in_channels, H, W); output (N, out_channels, H', W')
    with H' = ceil(H / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, W) -> (N, C_out, H', W')."""
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A small ResNet: a conv stem, one residual block per width, global average pooling, a linear
    layer. Lesson 09.

    stem conv3x3 -> BatchNorm -> ReLU keeps the size; then each block halves it (stride 2) while it
    widens the maps: with the defaults 32x32 -> 16x16x16 -> 8x8x32 -> 4x4x64. Global average pooling turns each map into one number, so the classifier has only
    widths[-1] * num_classes + num_classes weights and the network takes any image size.

    Input (N, in_channels, H, W) in [0, 1]; output logits (N, num_classes).
    """

    name = "small_resnet"

    def __init__(self, in_channels: int = 3, num_classes: int = 10, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        self.config = dict(in_channels=in_channels, num_classes=num_classes, widths=widths)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for c, w in zip(widths[:1] + widths[:-1], widths):  # (16, 16), (16, 32), (32, 64)
            layers.append(ResidualBlock(c, w, stride=2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # global average pooling: (N, C, H, W) -> (N, C, 1, 1)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) -> logits (N, num_classes)."""
        return self.classifier(self.pool(self.features(x)).flatten(1))
