"""The UCI regression benchmark of Hernández-Lobato & Adams (2015) and Gal & Ghahramani (2016)
with its fixed train/test splits, loaded from a data directory.

The directory holds one folder per data set (``data.txt``, ``index_features.txt``,
``index_target.txt``, ``index_train_{i}.txt``, ``index_test_{i}.txt`` and the protocol's
settings). It is found, in order, from the ``data_dir`` argument, the ``ESPRESSO_JAX_DATA``
environment variable, or a ``shared/data`` folder beside one of the parents of the current
directory or of this package (the layout of this repository's checkout).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from espresso_jax.validation import check_choice, check_int

UCI_NAMES = (
    "bostonHousing", "concrete", "energy", "kin8nm", "naval-propulsion-plant",
    "power-plant", "protein-tertiary-structure", "wine-quality-red", "yacht",
)


class UCIDataset(NamedTuple):
    """One UCI data set with its standard splits and protocol settings.

    Attributes:
        name: folder name.
        X: ``(n, d)`` inputs. y: ``(n,)`` target.
        train_index, test_index: tuples of integer index arrays, one per split.
        n_hidden, n_epochs: protocol network width and epoch count.
        dropout_rates, tau_values: the hyper-parameter grids of the protocol.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    train_index: tuple[np.ndarray, ...]
    test_index: tuple[np.ndarray, ...]
    n_hidden: int
    n_epochs: int
    dropout_rates: np.ndarray
    tau_values: np.ndarray

    @property
    def n_splits(self) -> int:
        return len(self.train_index)


class UCISplit(NamedTuple):
    """One standardised split. Inputs and target are standardised with the training split's
    mean and std; ``y_mean``/``y_std`` map predictions back to the target's original units."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    y_mean: float
    y_std: float


def default_data_dir() -> Path | None:
    """The data directory: ``$ESPRESSO_JAX_DATA`` or a ``shared/data`` folder found beside a
    parent of the working directory or of this package; ``None`` when there is none."""
    env = os.environ.get("ESPRESSO_JAX_DATA")
    if env:
        return Path(env)
    for start in (Path.cwd(), Path(__file__).resolve()):
        for parent in (start, *start.parents):
            candidate = parent / "shared" / "data"
            if (candidate / "uci").is_dir():
                return candidate
    return None


def _resolve(data_dir: str | os.PathLike | None) -> Path:
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if root is None:
        raise FileNotFoundError(
            "no data directory: pass data_dir= or set ESPRESSO_JAX_DATA to the folder that "
            "holds uci/")
    uci = root / "uci" if (root / "uci").is_dir() else root
    if not uci.is_dir():
        raise FileNotFoundError(f"data_dir {root} has no uci/ folder")
    return uci


def _ints(path: Path) -> np.ndarray:
    return np.atleast_1d(np.loadtxt(path, dtype=np.int64))


def _floats(path: Path) -> np.ndarray:
    return np.atleast_1d(np.loadtxt(path, dtype=np.float64))


def load_uci(name: str, data_dir: str | os.PathLike | None = None) -> UCIDataset:
    """Load one UCI regression data set with its standard splits.

    Args:
        name: one of :data:`UCI_NAMES`.
        data_dir: folder holding ``uci/`` (or the ``uci`` folder itself); see module doc.

    Returns:
        :class:`UCIDataset`.
    """
    check_choice(name, "name", UCI_NAMES)
    folder = _resolve(data_dir) / name
    if not folder.is_dir():
        raise FileNotFoundError(f"UCI data set folder not found: {folder}")
    data = np.loadtxt(folder / "data.txt", dtype=np.float64)
    features = _ints(folder / "index_features.txt")
    target = int(_ints(folder / "index_target.txt")[0])
    n_splits = int(_ints(folder / "n_splits.txt")[0])
    train = tuple(_ints(folder / f"index_train_{i}.txt") for i in range(n_splits))
    test = tuple(_ints(folder / f"index_test_{i}.txt") for i in range(n_splits))
    return UCIDataset(
        name=name,
        X=data[:, features],
        y=data[:, target],
        train_index=train,
        test_index=test,
        n_hidden=int(_ints(folder / "n_hidden.txt")[0]),
        n_epochs=int(_ints(folder / "n_epochs.txt")[0]),
        dropout_rates=_floats(folder / "dropout_rates.txt"),
        tau_values=_floats(folder / "tau_values.txt"),
    )


def check_dataset(ds: object, name: str = "ds") -> UCIDataset:
    """Return ``ds`` if it is a :class:`UCIDataset`; TypeError naming ``name`` otherwise."""
    if not isinstance(ds, UCIDataset):
        raise TypeError(f"{name} must be a UCIDataset (datasets.uci.load_uci), got "
                        f"{type(ds).__name__}")
    return ds


def standardized_split(ds: UCIDataset, i: int) -> UCISplit:
    """Split ``i`` of ``ds``, standardised with the training split's statistics (constant
    columns get std 1 so they stay finite)."""
    check_int(i, "i", min_value=0, max_value=ds.n_splits - 1)
    tr, te = ds.train_index[i], ds.test_index[i]
    x_mean, x_std = ds.X[tr].mean(0), ds.X[tr].std(0)
    x_std = np.where(x_std > 0, x_std, 1.0)
    y_mean, y_std = float(ds.y[tr].mean()), float(ds.y[tr].std())
    return UCISplit(
        X_train=(ds.X[tr] - x_mean) / x_std,
        y_train=(ds.y[tr] - y_mean) / y_std,
        X_test=(ds.X[te] - x_mean) / x_std,
        y_test=(ds.y[te] - y_mean) / y_std,
        y_mean=y_mean,
        y_std=y_std,
    )
