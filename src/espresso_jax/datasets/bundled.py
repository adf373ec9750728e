"""Data sets that ship inside the package: Old Faithful and the MNIST 10k test set."""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np

from espresso_jax.validation import check_choice

MNIST_N_TRAIN = 8000
"""Fixed split of the 10k MNIST test set: the first 8,000 images train, the last 2,000 test."""

_IMAGES = "t10k-images-idx3-ubyte.gz"
_LABELS = "t10k-labels-idx1-ubyte.gz"


def _data_file(name: str):
    return resources.files("espresso_jax.datasets").joinpath("data", name)


def load_faithful() -> np.ndarray:
    """Old Faithful eruptions (Härdle 1991), the R ``datasets::faithful`` table.

    Returns:
        ``(272, 2)`` float64 array, columns ``eruptions`` (minutes) and ``waiting`` (minutes to
        the next eruption).
    """
    with _data_file("faithful.csv").open("r") as f:
        return np.loadtxt(f, delimiter=",", skiprows=1, dtype=np.float64)


def _read_idx(name: str, magic: int, header: int) -> np.ndarray:
    with _data_file(name).open("rb") as f:
        raw = gzip.decompress(f.read())
    if int.from_bytes(raw[:4], "big") != magic:
        raise ValueError(f"{name} is not an IDX file with magic number {magic}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header)


def load_mnist(split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test set (LeCun, Cortes, Burges): 10,000 28×28 digits.

    The 60k training set is not shipped; this library uses a fixed split of the 10k set:
    ``"train"`` is the first :data:`MNIST_N_TRAIN` (8,000) images, ``"test"`` the last 2,000.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.

    Returns:
        images ``(n, 784)`` float32 in [0, 1] and labels ``(n,)`` int32.
    """
    check_choice(split, "split", ("train", "test", "all"))
    images = _read_idx(_IMAGES, 2051, 16).reshape(10000, 784).astype(np.float32) / 255.0
    labels = _read_idx(_LABELS, 2049, 8).astype(np.int32)
    if split == "train":
        return images[:MNIST_N_TRAIN], labels[:MNIST_N_TRAIN]
    if split == "test":
        return images[MNIST_N_TRAIN:], labels[MNIST_N_TRAIN:]
    return images, labels
