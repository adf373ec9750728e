"""Beta and Dirichlet conjugate updates: posteriors of Bernoulli / binomial and categorical /
multinomial probabilities (PRML §2.1.1, §2.2.1).
"""

from __future__ import annotations

import jax
import numpyro.distributions as dist
from jax.typing import ArrayLike

from espresso_jax.prob.conjugate.checks import as_param, check_stats
from espresso_jax.prob.estimate import (
    BinaryStats,
    CategoryStats,
    bernoulli_stats,
    binomial_stats,
    categorical_stats,
    multinomial_stats,
)
from espresso_jax.validation import check_distribution

__all__ = [
    "beta_update", "beta_bernoulli", "beta_binomial",
    "dirichlet_update", "dirichlet_categorical", "dirichlet_multinomial",
]


@jax.jit
def _beta_impl(c1: jax.Array, c0: jax.Array, s: BinaryStats) -> tuple[jax.Array, jax.Array]:
    return c1 + s.successes, c0 + s.failures


def beta_update(prior: dist.Beta, stats: BinaryStats) -> dist.Beta:
    """Beta posterior ``Beta(a + successes, b + failures)`` (PRML eq. 2.18).

    Args:
        prior: ``numpyro.distributions.Beta`` (batch shape ``()`` or ``(n_features,)``).
        stats: :class:`BinaryStats` from ``bernoulli_stats`` / ``binomial_stats``.

    Returns:
        ``numpyro.distributions.Beta`` posterior.
    """
    check_distribution(prior, "prior", dist.Beta)
    s = check_stats(stats, BinaryStats)
    c1, c0 = _beta_impl(as_param(prior.concentration1), as_param(prior.concentration0), s)
    return dist.Beta(c1, c0, validate_args=False)


def beta_bernoulli(prior: dist.Beta, x: ArrayLike,
                   sample_weight: ArrayLike | None = None) -> dist.Beta:
    """Beta posterior of a Bernoulli probability.

    Args:
        prior: ``numpyro.distributions.Beta``.
        x: ``(n_samples,)`` or ``(n_samples, n_features)`` binary data.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.

    Returns:
        ``numpyro.distributions.Beta`` posterior (batch shape ``()`` or ``(n_features,)``).
    """
    check_distribution(prior, "prior", dist.Beta)
    return beta_update(prior, bernoulli_stats(x, sample_weight))


def beta_binomial(prior: dist.Beta, k: ArrayLike, n: ArrayLike,
                  sample_weight: ArrayLike | None = None) -> dist.Beta:
    """Beta posterior of a binomial probability.

    Args:
        prior: ``numpyro.distributions.Beta``.
        k: ``(n_samples,)`` successes.
        n: trials per observation, a scalar or ``(n_samples,)``.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
    """
    check_distribution(prior, "prior", dist.Beta)
    return beta_update(prior, binomial_stats(k, n, sample_weight))


@jax.jit
def _dirichlet_impl(alpha: jax.Array, s: CategoryStats) -> jax.Array:
    return alpha + s.counts


def dirichlet_update(prior: dist.Dirichlet, stats: CategoryStats) -> dist.Dirichlet:
    """Dirichlet posterior ``Dir(alpha + counts)`` (PRML eq. 2.41).

    Args:
        prior: ``numpyro.distributions.Dirichlet`` with concentration ``(n_categories,)``.
        stats: :class:`CategoryStats` with ``counts`` ``(n_categories,)``.
    """
    check_distribution(prior, "prior", dist.Dirichlet)
    s = check_stats(stats, CategoryStats)
    if s.counts.shape[-1:] != prior.event_shape:
        raise ValueError(f"stats.counts has {s.counts.shape[-1]} categories but prior has "
                         f"{prior.event_shape[0]}")
    alpha = _dirichlet_impl(as_param(prior.concentration), s)
    return dist.Dirichlet(alpha, validate_args=False)


def dirichlet_categorical(prior: dist.Dirichlet, labels: ArrayLike,
                          sample_weight: ArrayLike | None = None) -> dist.Dirichlet:
    """Dirichlet posterior of categorical probabilities.

    Args:
        prior: ``numpyro.distributions.Dirichlet`` with concentration ``(n_categories,)``.
        labels: ``(n_samples,)`` integers in ``[0, n_categories)``.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
    """
    check_distribution(prior, "prior", dist.Dirichlet)
    return dirichlet_update(prior, categorical_stats(labels, prior.event_shape[0], sample_weight))


def dirichlet_multinomial(prior: dist.Dirichlet, counts: ArrayLike,
                          sample_weight: ArrayLike | None = None) -> dist.Dirichlet:
    """Dirichlet posterior of multinomial probabilities.

    Args:
        prior: ``numpyro.distributions.Dirichlet`` with concentration ``(n_categories,)``.
        counts: ``(n_samples, n_categories)`` non-negative integer counts.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
    """
    check_distribution(prior, "prior", dist.Dirichlet)
    s = multinomial_stats(counts, sample_weight)
    if s.counts.shape != prior.event_shape:
        raise ValueError(f"counts has {s.counts.shape[0]} categories but prior has "
                         f"{prior.event_shape[0]}")
    return dirichlet_update(prior, s)
