"""Baum–Welch as an :class:`~espresso_jax.em.EMModel`, and the model-level inference calls.

Data are a padded batch: ``X (N, T, F)`` (``F`` features, or ``M`` one-hot symbol columns)
with step weights ``w (N, T)``: a sequence's weight on its real steps, 0 on padding. The
E-step runs the forward–backward recursions of :mod:`espresso_jax.hmm.inference` on every
sequence of a block (``vmap``) and returns statistics that add over sequences, so the engine
gives chunked E-steps (blocks of sequences), sequences sharded over devices, stepwise EM and
vmapped restarts unchanged. A sequence's weight ``s_n`` is the largest weight of its steps
(use one weight per sequence).

MAP estimation: Dirichlet priors ``α`` on the start probabilities and ``β_i`` on each
transition row, with a sticky ``κ`` added to the self-transition (Fox et al., 2011):
``π ∝ max(α − 1 + E[n_start], 0)``, ``A_i ∝ max(β_i − 1 + κ e_i + E[n_i→·], 0)`` (hmmlearn's
update for ``κ = 0``). All-ones priors and ``κ = 0`` give maximum likelihood. The objective
(``history``) is ``(log p(X | θ) + log p(θ)) / Σ w`` before each M-step (the log prior is 0 for
flat priors), which EM never decreases.

References:
    L. E. Baum et al., "A maximization technique occurring in the statistical analysis of
    probabilistic functions of Markov chains", Ann. Math. Stat., 1970; Rabiner (1989);
    E. B. Fox, E. B. Sudderth, M. I. Jordan, A. S. Willsky, "A sticky HDP-HMM with application
    to speaker diarization", Ann. Appl. Stat., 2011.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from espresso_jax import em
from espresso_jax.hmm import emissions
from espresso_jax.hmm.emissions import Emission
from espresso_jax.hmm.inference import Posterior, posteriors, sample_states, viterbi

__all__ = ["HMMParams", "HMMState", "HMMStats", "batch_log_likelihoods", "batch_posteriors",
           "batch_viterbi", "em_model", "log_prior", "sample_sequence"]


class HMMParams(NamedTuple):
    """Parameters of a hidden Markov model with ``K`` states.

    Attributes:
        start: ``(K,)`` initial state probabilities.
        trans: ``(K, K)`` transition probabilities, row ``i`` = ``p(z_t | z_{t-1} = i)``.
        emission: :class:`~espresso_jax.hmm.emissions.GaussianEmission` or
            :class:`~espresso_jax.hmm.emissions.CategoricalEmission`.
    """

    start: jax.Array
    trans: jax.Array
    emission: Emission


class HMMState(NamedTuple):
    """EM state: parameters plus what stays fixed during a fit.

    Attributes:
        params: :class:`HMMParams`.
        shift: ``(K·M, D)`` reference points of the Gaussian frames (the initial means;
            ``(0, 0)`` for categorical emissions).
        reg_covar: ``()`` added to the covariance diagonals.
        start_prior: ``(K,)`` Dirichlet concentration of the start probabilities.
        trans_prior: ``(K, K)`` Dirichlet concentrations of the transition rows, sticky ``κ``
            already added to the diagonal.
    """

    params: HMMParams
    shift: jax.Array
    reg_covar: jax.Array
    start_prior: jax.Array
    trans_prior: jax.Array


class HMMStats(NamedTuple):
    """Additive E-step statistics of a block of sequences.

    Attributes:
        start: ``(K,)`` expected initial-state counts; trans: ``(K, K)`` expected transitions.
        emission: emission statistics (:func:`espresso_jax.hmm.emissions.sufficient_stats`).
        loglik: ``()`` ``Σ_n s_n log p(x_n)``; wsum: ``()`` ``Σ w`` over steps.
    """

    start: jax.Array
    trans: jax.Array
    emission: Any
    loglik: jax.Array
    wsum: jax.Array


def batch_log_likelihoods(params: HMMParams, X: jax.Array,
                          shift: jax.Array | None = None) -> jax.Array:
    """``(N, T, K)`` emission log-likelihoods of a padded batch ``X (N, T, F)``."""
    n, t = X.shape[:2]
    rows = X.reshape((n * t,) + X.shape[2:])
    return emissions.log_likelihood(params.emission, rows, shift).reshape(n, t, -1)


def batch_posteriors(params: HMMParams, X: jax.Array, mask: jax.Array, *,
                     method: str = "scan", shift: jax.Array | None = None) -> Posterior:
    """:class:`~espresso_jax.hmm.inference.Posterior` of every sequence of ``X (N, T, F)``
    with ``mask (N, T)``: ``gamma (N, T, K)``, ``xi_sum (N, K, K)``, ``loglik (N,)``."""
    log_obs = batch_log_likelihoods(params, X, shift)
    fn = functools.partial(posteriors, method=method)
    return jax.vmap(fn, in_axes=(None, None, 0, 0))(jnp.log(params.start),
                                                    jnp.log(params.trans), log_obs, mask)


def batch_viterbi(params: HMMParams, X: jax.Array,
                  mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Viterbi paths ``(N, T)`` int32 and their log joint probabilities ``(N,)``."""
    log_obs = batch_log_likelihoods(params, X)
    return jax.vmap(viterbi, in_axes=(None, None, 0, 0))(jnp.log(params.start),
                                                         jnp.log(params.trans), log_obs, mask)


def _xlogy(x: jax.Array, y: jax.Array) -> jax.Array:
    """``x · log y`` with ``0 · log 0 = 0``."""
    return jnp.where(x == 0, 0.0, x * jnp.log(jnp.where(x == 0, 1.0, y)))


def log_prior(state: HMMState) -> jax.Array:
    """Unnormalised log Dirichlet density of the start and transition probabilities
    (``Σ (α − 1) log π + Σ (β − 1) log A``; 0 for flat priors)."""
    p = state.params
    return (jnp.sum(_xlogy(state.start_prior - 1.0, p.start))
            + jnp.sum(_xlogy(state.trans_prior - 1.0, p.trans)))


def _dirichlet_map(prior: jax.Array, counts: jax.Array, old: jax.Array) -> jax.Array:
    """Rows ``∝ max(prior − 1 + counts, 0)``; a row with nothing left keeps ``old``."""
    num = jnp.maximum(prior - 1.0 + counts, 0.0)
    total = num.sum(-1, keepdims=True)
    return jnp.where(total > 0, num / jnp.where(total > 0, total, 1.0), old)


@functools.cache
def em_model(method: str = "scan") -> em.EMModel:
    """Baum–Welch as an :class:`~espresso_jax.em.EMModel` (cached per forward–backward
    ``method``, "scan" or "associative"). ``X (B, T, F)`` is a block of padded sequences and
    ``w (B, T)`` its step weights."""

    def e_step(state: HMMState, X: jax.Array, w: jax.Array) -> HMMStats:
        p = state.params
        post = batch_posteriors(p, X, w > 0, method=method, shift=state.shift)
        s = jnp.max(w, axis=1)                                          # sequence weights
        n, t = w.shape
        rows = X.reshape((n * t,) + X.shape[2:])
        em_stats = emissions.sufficient_stats(p.emission, rows, w.reshape(-1),
                                              post.gamma.reshape(n * t, -1), state.shift)
        return HMMStats(start=s @ post.gamma[:, 0, :],
                        trans=jnp.einsum("n,nij->ij", s, post.xi_sum),
                        emission=em_stats,
                        loglik=jnp.sum(jnp.where(s > 0, s * post.loglik, 0.0)),
                        wsum=jnp.sum(w))

    def m_step(state: HMMState, stats: HMMStats) -> HMMState:
        p = state.params
        params = HMMParams(
            start=_dirichlet_map(state.start_prior, stats.start, p.start),
            trans=_dirichlet_map(state.trans_prior, stats.trans, p.trans),
            emission=emissions.m_step(p.emission, stats.emission, state.shift, state.reg_covar))
        return state._replace(params=params)

    def objective(old: HMMState, new: HMMState, stats: HMMStats) -> jax.Array:
        return (stats.loglik + log_prior(old)) / stats.wsum

    return em.EMModel(e_step=e_step, m_step=m_step, objective=objective)


def sample_sequence(key: jax.Array, params: HMMParams, n_steps: int) -> tuple[jax.Array,
                                                                             jax.Array]:
    """One sequence from the model: observations (``(n_steps, D)`` floats or ``(n_steps,)``
    int32 symbols) and the ``(n_steps,)`` int32 states."""
    k_states, k_obs = jax.random.split(key)
    states = sample_states(k_states, params.start, params.trans, n_steps)
    return emissions.sample(k_obs, params.emission, states), states
