"""The splits of one UCI data set for the protocol: each split standardised with its training
rows' mean and std (:func:`espresso_jax.datasets.uci.standardized_split`) and all of them
stacked on a leading split axis (:class:`StackedSplits`), so the protocol can ``vmap`` over
splits. All splits of a data set have the same sizes; :func:`stack_splits` checks it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.datasets.uci import UCIDataset, standardized_split
from espresso_jax.validation import check_int, float_dtype

__all__ = ["StackedSplits", "mean_se", "stack_splits"]


class StackedSplits(NamedTuple):
    """The standardised splits of one data set stacked on a leading split axis.

    ``X_train: (S, N, d)``, ``y_train: (S, N)``, ``X_test: (S, n_test, d)``,
    ``y_test: (S, n_test)`` (standardised), ``y_mean, y_std: (S,)``.
    """

    X_train: jax.Array
    y_train: jax.Array
    X_test: jax.Array
    y_test: jax.Array
    y_mean: jax.Array
    y_std: jax.Array


def stack_splits(ds: UCIDataset, n_splits: int | None = None) -> StackedSplits:
    """Standardise the first ``n_splits`` splits of ``ds`` (all) and stack them."""
    n_splits = ds.n_splits if n_splits is None else check_int(
        n_splits, "n_splits", min_value=1, max_value=ds.n_splits)
    splits = [standardized_split(ds, i) for i in range(n_splits)]
    sizes = {(s.X_train.shape, s.X_test.shape) for s in splits}
    if len(sizes) != 1:
        raise ValueError(f"the splits of {ds.name} do not share their sizes: {sorted(sizes)}")
    dtype = float_dtype()

    def stack(name):
        return jnp.asarray(np.stack([getattr(s, name) for s in splits]), dtype)

    return StackedSplits(stack("X_train"), stack("y_train"), stack("X_test"), stack("y_test"),
                         jnp.asarray([s.y_mean for s in splits], dtype),
                         jnp.asarray([s.y_std for s in splits], dtype))


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error over splits, ``(mean, population std / sqrt(S))`` in float64
    (the reporting convention of the UCI reference code).

    Args:
        values: ``(S,)`` per-split numbers.
    """
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std() / math.sqrt(v.size))
