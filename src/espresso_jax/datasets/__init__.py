"""Data sets: a user's CSV/NPY table, bundled (Old Faithful, MNIST 10k), UCI regression from a
data directory, and synthetic generators that take a PRNG key."""

from espresso_jax.datasets.bundled import MNIST_N_TRAIN, load_faithful, load_mnist
from espresso_jax.datasets.synthetic import (
    gaussian_mixture,
    linear_regression,
    logistic_classification,
    sinusoidal,
)
from espresso_jax.datasets.table import Table, load_table
from espresso_jax.datasets.uci import (
    UCI_NAMES,
    UCIDataset,
    UCISplit,
    default_data_dir,
    load_uci,
    standardized_split,
)

__all__ = [
    "load_faithful", "load_mnist", "MNIST_N_TRAIN",
    "UCI_NAMES", "UCIDataset", "UCISplit", "default_data_dir", "load_uci", "standardized_split",
    "Table", "load_table",
    "gaussian_mixture", "linear_regression", "logistic_classification", "sinusoidal",
]
