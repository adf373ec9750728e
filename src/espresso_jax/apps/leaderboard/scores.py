"""Scores of one split's test predictive (an equal-weight Gaussian mixture per test input),
in the target's original units: RMSE of the predictive mean, NLL of the mixture, calibration
and central-interval coverage from the probability integral transform (PIT), and, given a
reference predictive (NUTS), the agreement of the predictive means and the W1 / TV distances of
:mod:`espresso_jax.apps.leaderboard.agreement`.

Calibration. The PIT of a target is the predictive CDF at it, ``u = F(y)``; a calibrated
predictive gives uniform ``u``. The *regression calibration error* is the mean absolute gap
between the empirical CDF of the PIT values and the identity at the levels ``0.05, 0.10, ...,
0.95`` (the calibration curve of Kuleshov et al. 2018, summarised by its mean absolute
deviation instead of their squared one, so it reads as a probability: 0 is calibrated, 0.25 a
predictive whose every quantile is off by a quarter on average). The central ``c`` interval
``[F^-1((1-c)/2), F^-1((1+c)/2)]`` holds ``y`` exactly when ``(1-c)/2 <= u <= (1+c)/2``
(``F`` is continuous and increasing), so the coverage is read off the PIT too.

References:
    V. Kuleshov, N. Fenner, S. Ermon. Accurate uncertainties for deep learning using
    calibrated regression. ICML 2018.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from espresso_jax import metrics
from espresso_jax.apps.leaderboard.agreement import mixture_cdf, mixture_distances

__all__ = ["CAL_LEVELS", "COVERAGE_LEVELS", "pit", "calibration_error", "coverage",
           "split_scores", "agreement_scores"]

CAL_LEVELS = np.round(np.arange(1, 20) * 0.05, 2)
"""Levels of the calibration curve: 0.05, 0.10, ..., 0.95."""
COVERAGE_LEVELS = (0.9, 0.95)


def pit(y, means, variances) -> np.ndarray:
    """PIT values ``F(y)`` of targets ``y (n,)`` under mixtures ``means, variances (T, n)``."""
    means = jnp.asarray(means)
    return np.asarray(mixture_cdf(jnp.asarray(y, means.dtype), means,
                                  jnp.broadcast_to(jnp.asarray(variances, means.dtype),
                                                   means.shape)), np.float64)


def calibration_error(u) -> float:
    """Mean over :data:`CAL_LEVELS` of ``|mean(u <= p) - p|`` for PIT values ``u (n,)``."""
    u = np.asarray(u, np.float64)
    return float(np.mean(np.abs((u[:, None] <= CAL_LEVELS[None, :]).mean(0) - CAL_LEVELS)))


def coverage(u, level: float) -> float:
    """Share of targets inside the central ``level`` interval, from their PIT values."""
    u = np.asarray(u, np.float64)
    lo, hi = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    return float(np.mean((u >= lo) & (u <= hi)))


def split_scores(y, means, variances, y_std: float) -> dict[str, float]:
    """RMSE, NLL, calibration error and coverages of one split's predictive.

    Args:
        y: ``(n,)`` standardised targets. means: ``(T, n)``; variances: ``(T, n)`` or scalar
            (standardised units). y_std: the target's training std (original units).

    Returns:
        ``{"rmse", "nll", "calibration", "coverage_90", "coverage_95"}`` (RMSE and NLL in
        original units; NLL per test point, nats).
    """
    means = jnp.asarray(means)
    variances = jnp.broadcast_to(jnp.asarray(variances, means.dtype), means.shape)
    y = jnp.asarray(y, means.dtype)
    rmse = float(metrics.rmse(y, jnp.mean(means, axis=0))) * y_std
    nll = -float(metrics.mc_log_likelihood(y, means, variances)) + math.log(y_std)
    u = pit(y, means, variances)
    out = {"rmse": rmse, "nll": nll, "calibration": calibration_error(u)}
    for level in COVERAGE_LEVELS:
        out[f"coverage_{round(100 * level)}"] = coverage(u, level)
    return out


def agreement_scores(means, variances, ref_means, ref_variances, y_std: float,
                     n_grid: int | None = None) -> dict[str, float]:
    """Agreement of a predictive with a reference one on the same test inputs.

    Returns:
        ``{"mean_rmse_vs_nuts"}``: RMSE between the two predictive means; ``"w1_vs_nuts"``:
        mean over inputs of the W1 distance (both in original units); ``"tv_vs_nuts"``: mean
        total variation.
    """
    means, ref_means = jnp.asarray(means), jnp.asarray(ref_means)
    gap = float(metrics.rmse(jnp.mean(ref_means, axis=0), jnp.mean(means, axis=0))) * y_std
    kw = {} if n_grid is None else {"n_grid": n_grid}
    w1, tv = mixture_distances(means, variances, ref_means, ref_variances, **kw)
    return {"mean_rmse_vs_nuts": gap, "w1_vs_nuts": float(jnp.mean(w1)) * y_std,
            "tv_vs_nuts": float(jnp.mean(tv))}
