"""torchvision's ``ImageFolder``, skipping hidden folders such as ``.ipynb_checkpoints``. Lesson 08.

In a module of its own so that ``data`` imports torchvision (~1.5 s) only when a folder is read,
and so that the class pickles by name (DataLoader workers on macOS and Windows are spawned).
"""

from __future__ import annotations

from pathlib import Path

import torchvision


class ImageFolder(torchvision.datasets.ImageFolder):
    """One class per visible sub-folder of ``root``, sorted by name."""

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        classes = sorted(p.name for p in Path(directory).iterdir() if p.is_dir() and not p.name.startswith("."))
        return classes, {name: i for i, name in enumerate(classes)}
