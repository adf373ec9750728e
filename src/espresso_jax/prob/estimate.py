"""Maximum-likelihood estimates and the sufficient statistics they are built from.

Every estimator is two steps: a jitted reduction of the data to sufficient statistics
(:class:`BinaryStats`, :class:`CategoryStats`, :class:`GaussianStats`), then a closed form on
those statistics. The same statistics feed the conjugate updates in
:mod:`espresso_jax.prob.conjugate`, so an ML fit and a Bayesian update read the data the
same way.

``sample_weight`` is a frequency weight: an integer weight ``w_i`` gives the same estimate as
repeating row ``i`` ``w_i`` times. Gaussian statistics are kept in centred form (total weight,
mean, scatter about the mean) and computed by :func:`espresso_jax.prob.moments.data_moments`
(the weighted moments the mixtures use too) in a frame shifted to the first row, so data far
from the origin keeps its precision in float32 (the one-pass ``E[x x^T] - mu mu^T`` loses every
significant digit when ``|mu| >> std``).

References:
    Bishop, PRML (2006), §2.1 (Bernoulli, binomial), §2.2 (multinomial), §2.3.4 (Gaussian ML).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.typing import ArrayLike

from espresso_jax.prob.moments import data_moments
from espresso_jax.scaling import checked_exponent
from espresso_jax.validation import (
    as_float_array,
    as_int_array,
    as_sample_weight,
    check_int,
    check_positive,
    is_traced,
)

__all__ = [
    "BinaryStats",
    "CategoryStats",
    "GaussianStats",
    "bernoulli_stats",
    "binomial_stats",
    "categorical_stats",
    "multinomial_stats",
    "gaussian_stats",
    "multivariate_gaussian_stats",
    "bernoulli",
    "binomial",
    "categorical",
    "multinomial",
    "gaussian",
    "multivariate_gaussian",
]


class BinaryStats(NamedTuple):
    """Weighted success and failure counts (Bernoulli / binomial data).

    Attributes:
        successes: ``()`` or ``(n_features,)``, sum of ``w_i * x_i``.
        failures: same shape, sum of ``w_i * (n_i - x_i)``.
    """

    successes: jax.Array
    failures: jax.Array


class CategoryStats(NamedTuple):
    """Weighted counts per category.

    Attributes:
        counts: ``(n_categories,)``.
    """

    counts: jax.Array


class GaussianStats(NamedTuple):
    """Weighted Gaussian statistics in centred form.

    Attributes:
        n: ``()`` total weight.
        mean: ``()``, ``(n_features,)`` weighted mean.
        scatter: weighted sum of squared deviations about ``mean``: ``()`` / ``(n_features,)``
            for per-feature statistics, ``(n_features, n_features)`` for the full matrix.
    """

    n: jax.Array
    mean: jax.Array
    scatter: jax.Array


# ----------------------------------------------------------------------------- shared helpers


def _column(w: jax.Array, x: jax.Array) -> jax.Array:
    """Reshape weights ``(n,)`` to broadcast against ``x`` ``(n, ...)`` without rank promotion."""
    return w.reshape(w.shape + (1,) * (x.ndim - 1))


# ------------------------------------------------------------------------------ jitted kernels


@jax.jit
def _binary_impl(x: jax.Array, total: jax.Array, w: jax.Array) -> BinaryStats:
    wc = _column(w, x)
    return BinaryStats(jnp.sum(wc * x, axis=0), jnp.sum(wc * (total - x), axis=0))


@jax.jit
def _counts_impl(counts: jax.Array, w: jax.Array) -> CategoryStats:
    return CategoryStats(w @ counts)


@jax.jit
def _gaussian_impl(x: jax.Array, w: jax.Array) -> GaussianStats:
    cm = data_moments(x.reshape(x.shape[0], -1), w, diagonal=True)
    return GaussianStats(cm.nk[0], cm.means[0].reshape(x.shape[1:]),
                         cm.scatter[0].reshape(x.shape[1:]))


@jax.jit
def _mv_gaussian_impl(X: jax.Array, w: jax.Array) -> GaussianStats:
    cm = data_moments(X, w)
    return GaussianStats(cm.nk[0], cm.means[0], cm.scatter[0])


# --------------------------------------------------------------------- sufficient statistics


def bernoulli_stats(x: ArrayLike, sample_weight: ArrayLike | None = None) -> BinaryStats:
    """Weighted success/failure counts of binary data.

    Args:
        x: ``(n_samples,)`` or ``(n_samples, n_features)`` with entries in {0, 1}.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.

    Returns:
        :class:`BinaryStats` of shape ``()`` or ``(n_features,)``.
    """
    xi = as_int_array(x, "x", ndim=(1, 2), shape_hint="(n_samples,) or (n_samples, n_features)",
                      min_value=0, max_value=1)
    w = as_sample_weight(sample_weight, xi.shape[0])
    return _binary_impl(xi.astype(w.dtype), jnp.ones((), dtype=w.dtype), w)


def binomial_stats(k: ArrayLike, total_count: ArrayLike,
                   sample_weight: ArrayLike | None = None) -> BinaryStats:
    """Weighted success/failure counts of binomial data.

    Args:
        k: ``(n_samples,)`` or ``(n_samples, n_features)`` successes, ``0 <= k <= total_count``.
        total_count: number of trials, a scalar or an array of the same shape as ``k``.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.

    Returns:
        :class:`BinaryStats`: ``successes = sum w k``, ``failures = sum w (total_count - k)``.
    """
    ki = as_int_array(k, "k", ndim=(1, 2), shape_hint="(n_samples,) or (n_samples, n_features)",
                      min_value=0)
    n = as_int_array(total_count, "total_count", ndim=(0, ki.ndim), min_value=0)
    if n.ndim and n.shape != ki.shape:
        raise ValueError(f"total_count must be a scalar or have the shape of k {ki.shape}, "
                         f"got {n.shape}")
    if not (is_traced(ki) or is_traced(n)) and bool(jnp.any(ki > n)):
        raise ValueError("k must be <= total_count (more successes than trials)")
    w = as_sample_weight(sample_weight, ki.shape[0])
    return _binary_impl(ki.astype(w.dtype), n.astype(w.dtype), w)


def categorical_stats(labels: ArrayLike, n_categories: int,
                      sample_weight: ArrayLike | None = None) -> CategoryStats:
    """Weighted counts of integer labels.

    Args:
        labels: ``(n_samples,)`` integers in ``[0, n_categories)``.
        n_categories: number of categories K.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.

    Returns:
        :class:`CategoryStats` with ``counts`` ``(n_categories,)``.
    """
    n_categories = check_int(n_categories, "n_categories", min_value=1)
    y = as_int_array(labels, "labels", ndim=1, shape_hint="(n_samples,)", min_value=0,
                     max_value=n_categories - 1)
    w = as_sample_weight(sample_weight, y.shape[0])
    return _counts_impl(jax.nn.one_hot(y, n_categories, dtype=w.dtype), w)


def multinomial_stats(counts: ArrayLike, sample_weight: ArrayLike | None = None) -> CategoryStats:
    """Weighted category totals of count vectors.

    Args:
        counts: ``(n_samples, n_categories)`` non-negative integer counts.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.

    Returns:
        :class:`CategoryStats` with ``counts`` ``(n_categories,)``.
    """
    c = as_int_array(counts, "counts", ndim=2, shape_hint="(n_samples, n_categories)",
                     min_value=0)
    w = as_sample_weight(sample_weight, c.shape[0])
    return _counts_impl(c.astype(w.dtype), w)


def gaussian_stats(x: ArrayLike, sample_weight: ArrayLike | None = None) -> GaussianStats:
    """Per-feature weighted mean and scatter (sum of squared deviations).

    Args:
        x: ``(n_samples,)`` or ``(n_samples, n_features)``.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.

    Returns:
        :class:`GaussianStats` with ``mean``/``scatter`` of shape ``()`` or ``(n_features,)``.

    Raises:
        ValueError: ``x``'s spread is so large or small that its square leaves the dtype's
            range (``scaling.checked_exponent``; the message says how to rescale).
    """
    xf = as_float_array(x, "x", ndim=(1, 2), shape_hint="(n_samples,) or (n_samples, n_features)")
    w = as_sample_weight(sample_weight, xf.shape[0])
    # the scatter is in x's units squared: reject a spread whose square leaves the dtype
    checked_exponent(xf.reshape(xf.shape[0], -1), "x", w=w, what="the scatter (variance)")
    return _gaussian_impl(xf, w)


def multivariate_gaussian_stats(X: ArrayLike,
                                sample_weight: ArrayLike | None = None) -> GaussianStats:
    """Weighted mean and scatter matrix ``sum_i w_i (x_i - mean)(x_i - mean)^T``.

    Args:
        X: ``(n_samples, n_features)``.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.

    Returns:
        :class:`GaussianStats` with ``mean`` ``(n_features,)`` and ``scatter``
        ``(n_features, n_features)`` (symmetric).
    """
    Xf = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    return _mv_gaussian_impl(Xf, as_sample_weight(sample_weight, Xf.shape[0]))


# ----------------------------------------------------------------------------- ML estimates


def _probs_from_binary(s: BinaryStats) -> jax.Array:
    return s.successes / (s.successes + s.failures)


def bernoulli(x: ArrayLike, sample_weight: ArrayLike | None = None) -> dist.Distribution:
    """ML Bernoulli fit: ``p = sum w x / sum w`` (PRML eq. 2.7).

    Args:
        x: ``(n_samples,)`` or ``(n_samples, n_features)`` binary data.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.

    Returns:
        ``numpyro.distributions.Bernoulli(probs)`` with batch shape ``()`` or ``(n_features,)``.
    """
    probs = _probs_from_binary(bernoulli_stats(x, sample_weight))
    return dist.Bernoulli(probs=probs, validate_args=False)


def binomial(k: ArrayLike, total_count: int,
             sample_weight: ArrayLike | None = None) -> dist.Distribution:
    """ML binomial fit with a known number of trials: ``p = sum w k / (total_count sum w)``.

    Args:
        k: ``(n_samples,)`` or ``(n_samples, n_features)`` successes.
        total_count: the (common) number of trials, an int >= 1.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.

    Returns:
        ``numpyro.distributions.Binomial(total_count, probs)``.
    """
    total_count = check_int(total_count, "total_count", min_value=1)
    s = binomial_stats(k, total_count, sample_weight)
    return dist.Binomial(total_count=total_count, probs=_probs_from_binary(s), validate_args=False)


def categorical(labels: ArrayLike, n_categories: int,
                sample_weight: ArrayLike | None = None) -> dist.Distribution:
    """ML categorical fit: ``pi_k = N_k / N`` (PRML eq. 2.33).

    Args:
        labels: ``(n_samples,)`` integers in ``[0, n_categories)``.
        n_categories: number of categories K.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.

    Returns:
        ``numpyro.distributions.Categorical(probs)`` with ``probs`` ``(n_categories,)``.
    """
    c = categorical_stats(labels, n_categories, sample_weight).counts
    return dist.Categorical(probs=c / jnp.sum(c), validate_args=False)


def multinomial(counts: ArrayLike, sample_weight: ArrayLike | None = None, *,
                total_count: int | None = None) -> dist.Distribution:
    """ML multinomial fit: pooled category frequencies ``pi_k = sum_i w_i c_ik / sum_i w_i N_i``.

    Args:
        counts: ``(n_samples, n_categories)`` non-negative integer counts.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
        total_count: number of trials of the returned distribution. When None, every row of
            ``counts`` must have the same total, which is used.

    Returns:
        ``numpyro.distributions.Multinomial(total_count, probs)``.
    """
    c = multinomial_stats(counts, sample_weight).counts
    if total_count is None:
        if is_traced(counts):
            raise TypeError("total_count must be given when counts is traced")
        totals = np.unique(np.asarray(counts).sum(axis=1))
        if totals.size != 1:
            raise ValueError("counts rows have different totals; pass total_count explicitly")
        total_count = int(totals[0])
    total_count = check_int(total_count, "total_count", min_value=1)
    return dist.Multinomial(total_count=total_count, probs=c / jnp.sum(c), validate_args=False)


def _variance_denominator(n: jax.Array, unbiased: bool) -> jax.Array:
    if unbiased:
        if not is_traced(n) and float(n) <= 1.0:
            raise ValueError("unbiased=True needs a total sample weight > 1, got "
                             f"{float(n)}")
        return n - 1.0
    return n


def gaussian(x: ArrayLike, sample_weight: ArrayLike | None = None, *,
             unbiased: bool = False) -> dist.Distribution:
    """ML univariate Gaussian fit (per feature for 2-D input), PRML eqs. 2.121-2.122.

    Args:
        x: ``(n_samples,)`` or ``(n_samples, n_features)``.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
        unbiased: divide the scatter by ``sum w - 1`` instead of ``sum w`` (PRML eq. 2.125).

    Returns:
        ``numpyro.distributions.Normal(loc, scale)`` with batch shape ``()`` or
        ``(n_features,)``.

    Raises:
        ValueError: a feature has zero variance (the fit would be degenerate).
    """
    s = gaussian_stats(x, sample_weight)
    var = s.scatter / _variance_denominator(s.n, unbiased)
    if not is_traced(var) and not bool(jnp.all(var > 0)):
        raise ValueError("x has zero variance (in some feature); the ML Gaussian is degenerate")
    return dist.Normal(loc=s.mean, scale=jnp.sqrt(var), validate_args=False)


def multivariate_gaussian(X: ArrayLike, sample_weight: ArrayLike | None = None, *,
                          unbiased: bool = False, reg_covar: float = 0.0) -> dist.Distribution:
    """ML multivariate Gaussian fit (PRML eqs. 2.121-2.122), covariance from centred data.

    Args:
        X: ``(n_samples, n_features)``.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
        unbiased: divide the scatter matrix by ``sum w - 1`` instead of ``sum w``.
        reg_covar: non-negative value added to the covariance diagonal.

    Returns:
        ``numpyro.distributions.MultivariateNormal(loc, covariance_matrix)``.

    Raises:
        ValueError: the covariance is not positive definite (too few distinct points);
            raise ``reg_covar``.
    """
    reg_covar = check_positive(reg_covar, "reg_covar", allow_zero=True)
    s = multivariate_gaussian_stats(X, sample_weight)
    cov = s.scatter / _variance_denominator(s.n, unbiased)
    cov = cov + reg_covar * jnp.eye(cov.shape[-1], dtype=cov.dtype)
    if not is_traced(cov) and not bool(jnp.all(jnp.isfinite(jnp.linalg.cholesky(cov)))):
        raise ValueError("the ML covariance of X is singular (fewer distinct samples than "
                         "features, or collinear features); pass reg_covar > 0")
    return dist.MultivariateNormal(loc=s.mean, covariance_matrix=cov, validate_args=False)
