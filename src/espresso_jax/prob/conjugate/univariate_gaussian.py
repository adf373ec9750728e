"""Conjugate updates of a univariate Gaussian: the mean with known variance (Normal prior),
the precision with known mean (Gamma prior), and both (the Normal-Gamma family, with its
marginals, posterior predictive, joint log-density and sampling).

Data with several features are treated as independent per feature.

References:
    Bishop, PRML (2006), §2.3.6.
    K. P. Murphy, "Conjugate Bayesian analysis of the Gaussian distribution" (2007), §3-§4.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.typing import ArrayLike

from espresso_jax.prob.conjugate.checks import as_param, check_stats
from espresso_jax.prob.estimate import GaussianStats, gaussian_stats
from espresso_jax.validation import (
    as_float_array,
    as_positive_array,
    check_distribution,
    check_key,
)

__all__ = [
    "normal_mean_update", "normal_known_variance",
    "gamma_precision_update", "gamma_known_mean",
    "NormalGamma", "normal_gamma_update", "normal_gamma", "normal_gamma_precision",
    "normal_gamma_mean", "normal_gamma_predictive", "normal_gamma_log_prob",
    "normal_gamma_sample",
]


class NormalGamma(NamedTuple):
    """Normal-Gamma over (mean m, precision tau): ``tau ~ Gamma(a, rate=b)``,
    ``m | tau ~ Normal(mu, 1 / (kappa tau))`` (Murphy 2007 eq. 52; PRML eq. 2.154).

    Attributes (all ``()`` or a common batch shape):
        mu: location of the mean.
        kappa: pseudo-observations on the mean (Murphy's kappa, PRML's lambda), > 0.
        a: Gamma shape of the precision, > 0.
        b: Gamma rate of the precision, > 0.
    """

    mu: jax.Array
    kappa: jax.Array
    a: jax.Array
    b: jax.Array


def _check_normal_gamma(p: Any, name: str = "prior") -> NormalGamma:
    if not isinstance(p, NormalGamma):
        raise TypeError(f"{name} must be a NormalGamma, got {type(p).__name__}")
    return NormalGamma(as_float_array(p.mu, f"{name}.mu"),
                       as_positive_array(p.kappa, f"{name}.kappa"),
                       as_positive_array(p.a, f"{name}.a"), as_positive_array(p.b, f"{name}.b"))


# -------------------------------------------------------------- Gaussian mean / precision


@jax.jit
def _normal_mean_impl(loc: jax.Array, scale: jax.Array, s: GaussianStats,
                      variance: jax.Array) -> tuple[jax.Array, jax.Array]:
    prec0 = 1.0 / (scale * scale)
    prec_data = s.n / variance
    prec = prec0 + prec_data
    return loc + prec_data * (s.mean - loc) / prec, jax.lax.rsqrt(prec)


def normal_mean_update(prior: dist.Normal, stats: GaussianStats,
                       variance: ArrayLike) -> dist.Normal:
    """Posterior of a Gaussian mean with known ``variance`` (PRML eqs. 2.141-2.142).

    Args:
        prior: ``numpyro.distributions.Normal`` prior on the mean.
        stats: :class:`GaussianStats` (only ``n`` and ``mean`` are used).
        variance: known observation variance, > 0 (scalar or per feature).

    Returns:
        ``numpyro.distributions.Normal`` posterior on the mean.
    """
    check_distribution(prior, "prior", dist.Normal)
    s = check_stats(stats, GaussianStats)
    var = as_positive_array(variance, "variance")
    loc, scale = _normal_mean_impl(as_param(prior.loc), as_param(prior.scale), s, var)
    return dist.Normal(loc, scale, validate_args=False)


def normal_known_variance(prior: dist.Normal, x: ArrayLike, variance: ArrayLike,
                          sample_weight: ArrayLike | None = None) -> dist.Normal:
    """Normal posterior on a Gaussian mean with known ``variance``.

    Args:
        prior: ``numpyro.distributions.Normal`` prior on the mean.
        x: ``(n_samples,)`` or ``(n_samples, n_features)`` draws from ``N(mean, variance)``.
        variance: known observation variance, > 0.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
    """
    check_distribution(prior, "prior", dist.Normal)
    return normal_mean_update(prior, gaussian_stats(x, sample_weight), variance)


@jax.jit
def _gamma_precision_impl(a: jax.Array, b: jax.Array, s: GaussianStats,
                          mean: jax.Array) -> tuple[jax.Array, jax.Array]:
    dm = s.mean - mean
    return a + 0.5 * s.n, b + 0.5 * (s.scatter + s.n * dm * dm)


def gamma_precision_update(prior: dist.Gamma, stats: GaussianStats,
                           mean: ArrayLike) -> dist.Gamma:
    """Posterior of a Gaussian precision with known ``mean`` (PRML eqs. 2.150-2.151):
    ``a + n/2``, ``b + sum w (x - mean)^2 / 2`` (computed from the centred statistics).

    Args:
        prior: ``numpyro.distributions.Gamma(concentration=a, rate=b)`` on the precision.
        stats: per-feature :class:`GaussianStats`.
        mean: the known mean (scalar or per feature).
    """
    check_distribution(prior, "prior", dist.Gamma)
    s = check_stats(stats, GaussianStats)
    m = as_float_array(mean, "mean")
    a, b = _gamma_precision_impl(as_param(prior.concentration), as_param(prior.rate), s, m)
    return dist.Gamma(a, b, validate_args=False)


def gamma_known_mean(prior: dist.Gamma, x: ArrayLike, mean: ArrayLike,
                     sample_weight: ArrayLike | None = None) -> dist.Gamma:
    """Gamma posterior on a Gaussian precision with known ``mean``.

    Args:
        prior: ``numpyro.distributions.Gamma(concentration, rate)`` on the precision.
        x: ``(n_samples,)`` or ``(n_samples, n_features)`` draws from ``N(mean, 1/precision)``.
        mean: the known mean.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
    """
    check_distribution(prior, "prior", dist.Gamma)
    return gamma_precision_update(prior, gaussian_stats(x, sample_weight), mean)


# -------------------------------------------------------------------------- Normal-Gamma


@jax.jit
def _normal_gamma_impl(p: NormalGamma, s: GaussianStats) -> NormalGamma:
    kappa = p.kappa + s.n
    dm = s.mean - p.mu
    return NormalGamma(mu=p.mu + s.n * dm / kappa, kappa=kappa, a=p.a + 0.5 * s.n,
                       b=p.b + 0.5 * s.scatter + 0.5 * p.kappa * s.n * dm * dm / kappa)


def normal_gamma_update(prior: NormalGamma, stats: GaussianStats) -> NormalGamma:
    """Normal-Gamma posterior (Murphy 2007 eqs. 86-89):
    ``kappa_n = kappa + n``, ``mu_n = (kappa mu + n xbar) / kappa_n``, ``a_n = a + n/2``,
    ``b_n = b + S/2 + kappa n (xbar - mu)^2 / (2 kappa_n)`` with ``S`` the scatter."""
    return _normal_gamma_impl(_check_normal_gamma(prior), check_stats(stats, GaussianStats))


def normal_gamma(prior: NormalGamma, x: ArrayLike,
                 sample_weight: ArrayLike | None = None) -> NormalGamma:
    """Normal-Gamma posterior over an unknown Gaussian mean and precision.

    Args:
        prior: :class:`NormalGamma`.
        x: ``(n_samples,)`` (or ``(n_samples, n_features)``, independent per feature).
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
    """
    _check_normal_gamma(prior)
    return normal_gamma_update(prior, gaussian_stats(x, sample_weight))


def normal_gamma_precision(p: NormalGamma) -> dist.Gamma:
    """Marginal of the precision: ``Gamma(a, rate=b)``."""
    p = _check_normal_gamma(p, "p")
    return dist.Gamma(p.a, p.b, validate_args=False)


@partial(jax.jit, static_argnames="predictive")
def _ng_student_params(p: NormalGamma, predictive: bool) -> tuple[jax.Array, ...]:
    factor = (p.kappa + 1.0) if predictive else jnp.ones_like(p.kappa)
    return 2.0 * p.a, p.mu, jnp.sqrt(p.b * factor / (p.a * p.kappa))


def normal_gamma_mean(p: NormalGamma) -> dist.StudentT:
    """Marginal of the mean: ``StudentT(2a, mu, sqrt(b / (a kappa)))`` (Murphy eq. 93)."""
    return dist.StudentT(*_ng_student_params(_check_normal_gamma(p, "p"), False),
                         validate_args=False)


def normal_gamma_predictive(p: NormalGamma) -> dist.StudentT:
    """Posterior predictive of a new observation:
    ``StudentT(2a, mu, sqrt(b (kappa + 1) / (a kappa)))`` (Murphy eq. 100; PRML eq. 2.159)."""
    return dist.StudentT(*_ng_student_params(_check_normal_gamma(p, "p"), True),
                         validate_args=False)


@jax.jit
def _normal_gamma_log_prob_impl(p: NormalGamma, mean: jax.Array,
                                precision: jax.Array) -> jax.Array:
    return (dist.Normal(p.mu, jax.lax.rsqrt(p.kappa * precision)).log_prob(mean)
            + dist.Gamma(p.a, p.b).log_prob(precision))


def normal_gamma_log_prob(p: NormalGamma, mean: ArrayLike, precision: ArrayLike) -> jax.Array:
    """Joint log-density ``log N(mean | mu, 1/(kappa precision)) + log Gamma(precision | a, b)``.

    Args:
        p: :class:`NormalGamma`.
        mean, precision: broadcastable arrays of points (precision > 0).
    """
    p = _check_normal_gamma(p, "p")
    return _normal_gamma_log_prob_impl(p, as_float_array(mean, "mean"),
                                       as_positive_array(precision, "precision"))


@partial(jax.jit, static_argnames="sample_shape")
def _normal_gamma_sample_impl(key: jax.Array, p: NormalGamma,
                              sample_shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    k_tau, k_mean = jax.random.split(key)
    shape = sample_shape + jnp.broadcast_shapes(*(jnp.shape(v) for v in p))
    mu, kappa, a, b = (jnp.broadcast_to(v, shape) for v in p)
    tau = jax.random.gamma(k_tau, a, shape, dtype=a.dtype) / b
    z = jax.random.normal(k_mean, shape, dtype=mu.dtype)
    return mu + z * jax.lax.rsqrt(kappa * tau), tau


def normal_gamma_sample(key: jax.Array, p: NormalGamma,
                        sample_shape: tuple[int, ...] = ()) -> tuple[jax.Array, jax.Array]:
    """Draw ``(mean, precision)`` pairs of shape ``sample_shape + batch_shape``."""
    check_key(key)
    p = _check_normal_gamma(p, "p")
    return _normal_gamma_sample_impl(key, p, tuple(int(s) for s in sample_shape))
