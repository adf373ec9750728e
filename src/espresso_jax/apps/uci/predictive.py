"""The test predictive of the protocol's refit networks, per split, for scores beyond RMSE and
log-likelihood (calibration, coverage, agreement with a reference posterior: see
:mod:`espresso_jax.apps.leaderboard`).

:func:`~espresso_jax.apps.uci.protocol.run_protocol` keeps only the test RMSE and
log-likelihood of its refit networks. :func:`refit_predictive` trains the same refit networks
again, with the grid points the protocol chose (``result.chosen_index``), the same key
(``run_protocol`` splits its key into grid, validation, refit and test keys, in that order) and
the same settings (``result.settings``), in one compiled call (``train_grid`` with shape
``(S, 1)``: the refit call of a protocol run with ``progress=False``, so it is a compile-cache
hit; ``on_epoch=None`` is passed explicitly as the protocol does, since ``jit`` keys its cache
on the keywords given), and returns the per-sample test means and precisions. Training is
deterministic given its key, so the networks are the protocol's and the returned predictive
reproduces ``result.rmse`` and ``result.log_likelihood`` with ``n_samples =
result.settings["n_samples"]`` (tested); the cost is one more refit, ``1 / (G + 1)`` of the
protocol's training for a grid of ``G`` points.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from espresso_jax.apps.uci.grid_search import train_grid
from espresso_jax.apps.uci.method import UCIMethod
from espresso_jax.apps.uci.protocol import ProtocolResult
from espresso_jax.apps.uci.splits import stack_splits
from espresso_jax.datasets.uci import UCIDataset
from espresso_jax.validation import check_int, check_key

__all__ = ["TestPredictive", "refit_predictive"]


class TestPredictive(NamedTuple):
    """Per-split test predictive, in standardised-target units.

    Attributes:
        means: ``(S, T, n)`` per-sample predictive means (the mixture's component means).
        variances: ``(S, T, n)`` per-sample noise variances ``1 / precision``.
        y_test: ``(S, n)`` standardised test targets.
        y_mean, y_std: ``(S,)`` the training split's target mean and std (original units are
            ``y_std * value + y_mean``; variances scale by ``y_std^2``).
    """

    means: np.ndarray
    variances: np.ndarray
    y_test: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray


def refit_predictive(key: jax.Array, ds: UCIDataset, method: UCIMethod, result: ProtocolResult,
                     *, optimizer: optax.GradientTransformation,
                     n_samples: int | None = None) -> TestPredictive:
    """The test predictive of ``result``'s refit networks (see the module docstring).

    Args:
        key: the key given to ``run_protocol``.
        ds, method, optimizer: those given to ``run_protocol`` (``optimizer`` equal to it:
            e.g. ``optax.adam(1e-3)`` again).
        result: what ``run_protocol`` returned for them.
        n_samples: MC samples ``T`` per split (default ``result.settings["n_samples"]``).

    Returns:
        :class:`TestPredictive`.
    """
    key = check_key(key)
    if not isinstance(result, ProtocolResult):
        raise TypeError(f"result must be a ProtocolResult, got {type(result).__name__}")
    if result.dataset != ds.name or result.method != method.name:
        raise ValueError(f"result is for {result.method} on {result.dataset}, not "
                         f"{method.name} on {ds.name}")
    settings = result.settings
    n_samples = settings["n_samples"] if n_samples is None else check_int(
        n_samples, "n_samples", min_value=1)
    S = int(settings["n_splits"])
    data = stack_splits(ds, S)
    grid = method.grid(ds)
    best = np.asarray(result.chosen_index)
    chosen_std = jax.vmap(method.standardize)(jax.tree.map(lambda a: a[best], grid),
                                              data.y_std)
    _, _, refit_key, test_key = jax.random.split(key, 4)
    refit, _ = train_grid(jax.random.split(refit_key, (S, 1)), method, data.X_train,
                          data.y_train, jax.tree.map(lambda a: a[:, None], chosen_std),
                          optimizer=optimizer, n_hidden=int(settings["n_hidden"]),
                          batch_size=int(settings["batch_size_refit"]),
                          n_epochs=int(settings["n_epochs"]), on_epoch=None)
    refit = jax.tree.map(lambda a: a[:, 0], refit)

    def one(args):
        k, p, x, hp = args
        means, precisions = method.predict(k, p, x, hp, n_samples)
        return means, jnp.broadcast_to(1.0 / precisions, means.shape)

    means, variances = jax.lax.map(one, (jax.random.split(test_key, S), refit, data.X_test,
                                         chosen_std))
    return TestPredictive(np.asarray(means), np.asarray(variances), np.asarray(data.y_test),
                          np.asarray(data.y_mean), np.asarray(data.y_std))
