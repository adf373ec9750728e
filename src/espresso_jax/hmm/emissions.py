"""Emission models of a hidden Markov model: log-likelihoods, additive statistics, M-steps.

Two families, each a NamedTuple of arrays (``K`` states):

- :class:`GaussianEmission`: a mixture of ``M`` Gaussians per state (``M = 1`` is the Gaussian
  HMM), full or diagonal covariances. The ``K·M`` components are evaluated, accumulated and
  updated by the Gaussian-mixture math of :mod:`espresso_jax.mixture` (one home):
  :func:`~espresso_jax.mixture.gaussian.log_gaussian` in per-component frames around fixed
  reference points ``shift``, :func:`~espresso_jax.prob.moments.moment_stats` weighted by
  ``γ_t(k) · r_t(m | k)`` and :func:`~espresso_jax.mixture.gmm_em.m_step_from_moments`
  (``reg_covar`` on the covariance diagonals).
- :class:`CategoricalEmission`: ``M`` symbols; observations enter as one-hot rows.

Every function works on rows ``X (B, F)`` (``F = D`` features, or ``M`` one-hot columns); the
model flattens its ``(N, T)`` steps into rows.

References:
    Rabiner (1989), §IV; Juang, Levinson & Sondhi (1986), "Maximum likelihood estimation for
    multivariate mixture observations of Markov chains" (the GMM emission update).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from espresso_jax.mixture import gaussian as gauss
from espresso_jax.mixture.gmm_em import m_step_from_moments
from espresso_jax.prob.moments import MomentStats, moment_stats

__all__ = ["CategoricalEmission", "Emission", "GaussianEmission", "covariance_type",
           "log_likelihood", "m_step", "sample", "sufficient_stats"]


class GaussianEmission(NamedTuple):
    """Gaussian-mixture emissions, ``M`` components per state (``M = 1``: one Gaussian).

    Attributes:
        weights: ``(K, M)`` mixture weights within each state (rows sum to 1).
        means: ``(K, M, D)``.
        covariances: ``(K, M, D, D)`` full or ``(K, M, D)`` diagonal.
        precisions_cholesky: upper ``U`` with ``Σ⁻¹ = U Uᵀ`` in the same layout
            (``1 / sqrt(variances)`` for diagonal).
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array
    precisions_cholesky: jax.Array


class CategoricalEmission(NamedTuple):
    """Categorical emissions. Attributes: probs: ``(K, M)`` symbol probabilities per state."""

    probs: jax.Array


Emission = GaussianEmission | CategoricalEmission


def covariance_type(emission: GaussianEmission) -> str:
    """"full" or "diag", read from the covariance shape (static under jit)."""
    return "full" if emission.covariances.ndim == 4 else "diag"


def _flat(a: jax.Array) -> jax.Array:
    """``(K, M, ...) -> (K·M, ...)``."""
    return a.reshape((-1,) + a.shape[2:])


def _component_log_joint(em: GaussianEmission, X: jax.Array, shift: jax.Array) -> jax.Array:
    """``(B, K, M)`` ``log w_km + log N(x_b | μ_km, Σ_km)``; ``shift (K·M, D)``."""
    k, m = em.weights.shape
    dx = X[None, :, :] - shift[:, None, :]
    logp = gauss.log_gaussian(dx, _flat(em.means) - shift, _flat(em.precisions_cholesky),
                              covariance_type(em))                     # (K·M, B)
    return logp.T.reshape(X.shape[0], k, m) + jnp.log(em.weights)[None]


def log_likelihood(em: Emission, X: jax.Array, shift: jax.Array | None = None) -> jax.Array:
    """``(B, K)`` emission log-likelihoods ``log p(x_b | z = k)`` of rows ``X (B, F)``.

    ``shift``: ``(K·M, D)`` reference points of the Gaussian frames (default: the means).
    """
    if isinstance(em, CategoricalEmission):
        return jnp.log(X @ em.probs.T)
    shift = _flat(em.means) if shift is None else shift
    return jax.nn.logsumexp(_component_log_joint(em, X, shift), axis=-1)


def sufficient_stats(em: Emission, X: jax.Array, w: jax.Array, gamma: jax.Array,
                     shift: jax.Array) -> MomentStats | jax.Array:
    """Additive emission statistics of rows ``X (B, F)`` with weights ``w (B,)`` and state
    posteriors ``gamma (B, K)``: Gaussian: moments about ``shift (K·M, D)`` of the ``K·M``
    components; categorical: ``(K, M)`` expected symbol counts."""
    wg = gamma * w[:, None]
    if isinstance(em, CategoricalEmission):
        return wg.T @ X
    joint = _component_log_joint(em, X, shift)
    within = jax.nn.softmax(joint, axis=-1)                            # r(m | k, x)
    resp = (gamma[:, :, None] * within).reshape(X.shape[0], -1)        # (B, K·M)
    return moment_stats(X, w, resp, shift, diagonal=covariance_type(em) == "diag")


def m_step(em: Emission, stats: MomentStats | jax.Array, shift: jax.Array,
           reg_covar: jax.Array) -> Emission:
    """Maximum-likelihood emissions from summed statistics (a state or component with no
    weight keeps a uniform row / its reference point and ``reg_covar · I``)."""
    if isinstance(em, CategoricalEmission):
        counts = jnp.asarray(stats)
        total = counts.sum(-1, keepdims=True)
        uniform = jnp.ones_like(counts) / counts.shape[-1]
        return CategoricalEmission(jnp.where(total > 0, counts / jnp.where(total > 0, total, 1.0),
                                             uniform))
    if not isinstance(stats, MomentStats):
        raise TypeError("Gaussian emissions need MomentStats")
    k, m = em.weights.shape
    ctype = covariance_type(em)
    new = m_step_from_moments(stats, shift, reg_covar, ctype)
    nk = stats.nk.reshape(k, m) + 10.0 * jnp.finfo(stats.nk.dtype).eps
    return GaussianEmission(
        weights=nk / nk.sum(-1, keepdims=True),
        means=(shift + new.delta).reshape(em.means.shape),
        covariances=new.covariances.reshape(em.covariances.shape),
        precisions_cholesky=new.prec_chol.reshape(em.precisions_cholesky.shape))


def sample(key: jax.Array, em: Emission, states: jax.Array) -> jax.Array:
    """One observation per state of ``states (T,)``: ``(T, D)`` floats (Gaussian) or ``(T,)``
    int32 symbols (categorical)."""
    if isinstance(em, CategoricalEmission):
        return jax.random.categorical(key, jnp.log(em.probs[states])).astype(jnp.int32)
    k_mix, k_noise = jax.random.split(key)
    comp = jax.random.categorical(k_mix, jnp.log(em.weights[states]))          # (T,)
    means = em.means[states, comp]
    cov = em.covariances[states, comp]
    eps = jax.random.normal(k_noise, means.shape, means.dtype)
    if covariance_type(em) == "diag":
        return means + jnp.sqrt(cov) * eps
    return means + jnp.einsum("tij,tj->ti", jnp.linalg.cholesky(cov), eps)
