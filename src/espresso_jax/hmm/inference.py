"""Exact inference in a hidden Markov model, in log space, for one (padded) sequence.

All functions take the log start probabilities ``log_start (K,)``, the log transition matrix
``log_trans (K, K)`` (row ``i`` is ``log p(z_t = · | z_{t-1} = i)``), the per-step emission
log-likelihoods ``log_obs (T, K)`` and a ``mask (T,)`` of real steps; ``vmap`` them over a batch
of sequences. A masked step (padding) is given the identity transition and a zero
log-emission, so it changes nothing: padding anywhere leaves the likelihood, the posteriors
of the real steps and the Viterbi path of the real steps unchanged (the posteriors and pairwise
sums of padded steps are to be weighted by the mask, as :func:`posteriors` does).

The forward and backward recursions run under ``lax.scan`` (O(T·K²) work, T sequential steps;
each step shifts the log message by its maximum and multiplies by the transition probabilities,
so messages stay in log space without a K² log-sum-exp per step).
:func:`forward_backward_associative` computes the same messages with ``lax.associative_scan``
over products of ``(K, K)`` matrices in the log semiring (``(A ⊗ B)_ij = logsumexp_k A_ik +
B_kj``): O(T·K³) work but O(log T) depth, for long sequences on parallel hardware.

References:
    L. R. Rabiner, "A tutorial on hidden Markov models and selected applications in speech
    recognition", Proc. IEEE, 1989; C. M. Bishop, PRML (2006), §13.2;
    S. Särkkä & Á. F. García-Fernández, "Temporal parallelization of Bayesian smoothers",
    IEEE TAC, 2021 (the associative formulation).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["Posterior", "backward_messages", "forward_backward_associative", "forward_messages",
           "log_matmul", "posteriors", "sample_states", "step_matrices", "viterbi"]


class Posterior(NamedTuple):
    """Posterior quantities of one sequence.

    Attributes:
        gamma: ``(T, K)`` posterior marginals ``p(z_t | x)`` (zero on masked steps).
        xi_sum: ``(K, K)`` expected transition counts ``Σ_t p(z_{t-1}=i, z_t=j | x)`` over the
            real steps ``t ≥ 1``.
        loglik: ``()`` ``log p(x)`` of the real steps.
    """

    gamma: jax.Array
    xi_sum: jax.Array
    loglik: jax.Array


def step_matrices(log_trans: jax.Array, log_obs: jax.Array,
                  mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-step transitions and emissions with padding made neutral.

    Returns:
        ``(T, K, K)`` log transitions (the identity, 0 on the diagonal and −inf elsewhere, on
        masked steps) and ``(T, K)`` log emissions (0 on masked steps).
    """
    k = log_trans.shape[0]
    log_eye = jnp.where(jnp.eye(k, dtype=bool), 0.0, -jnp.inf).astype(log_trans.dtype)
    trans = jnp.where(mask[:, None, None], log_trans[None], log_eye[None])
    obs = jnp.where(mask[:, None], log_obs, 0.0)
    return trans, obs


def log_matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """``(..., K, K) ⊗ (..., K, K)`` in the log semiring: ``logsumexp_k a_ik + b_kj``."""
    return jax.nn.logsumexp(a[..., :, :, None] + b[..., None, :, :], axis=-2)


def _log_vecmat(log_v: jax.Array, m: jax.Array) -> jax.Array:
    """``log Σ_i exp(log_v_i) m_ij`` for a message ``log_v (K,)`` and a probability matrix
    ``m (K, K)``, as ``log(exp(log_v − max) @ m) + max``: the message stays in log space and
    the sequential step costs K exponentials and one vector–matrix product, not K² of each."""
    top = jnp.max(log_v)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    prod = jnp.matmul(jnp.exp(log_v - top), m, precision=lax.Precision.HIGHEST)
    return jnp.log(prod) + top


def forward_messages(log_start: jax.Array, log_trans: jax.Array, log_obs: jax.Array,
            mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Forward messages ``log α_t(k) = log p(x_{0..t}, z_t = k)`` by ``lax.scan``.

    Returns:
        ``(T, K)`` log α and the ``()`` log-likelihood ``logsumexp_k log α_{T-1}(k)``.
    """
    trans, obs = step_matrices(log_trans, log_obs, mask)
    alpha0 = log_start + obs[0]

    def body(prev, inputs):
        a_t, b_t = inputs
        alpha = _log_vecmat(prev, a_t) + b_t
        return alpha, alpha

    last, rest = lax.scan(body, alpha0, (jnp.exp(trans[1:]), obs[1:]))
    log_alpha = jnp.concatenate([alpha0[None], rest])
    return log_alpha, jax.nn.logsumexp(last)


def backward_messages(log_trans: jax.Array, log_obs: jax.Array, mask: jax.Array) -> jax.Array:
    """Backward messages ``log β_t(k) = log p(x_{t+1..T-1} | z_t = k)`` by ``lax.scan``:
    ``(T, K)``, with ``β_{T-1} = 1``."""
    trans, obs = step_matrices(log_trans, log_obs, mask)
    beta_last = jnp.zeros_like(obs[0])

    def body(nxt, inputs):
        a_t, b_t = inputs          # transition into step t+1 and its emission
        beta = _log_vecmat(b_t + nxt, a_t.T)
        return beta, beta

    _, rest = lax.scan(body, beta_last, (jnp.exp(trans[1:]), obs[1:]), reverse=True)
    return jnp.concatenate([rest, beta_last[None]])


def forward_backward_associative(log_start: jax.Array, log_trans: jax.Array,
                                 log_obs: jax.Array,
                                 mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The forward and backward messages by ``lax.associative_scan`` (equal to
    :func:`forward_messages` and :func:`backward_messages` up to rounding).

    With ``C_t(i, j) = log A_t(i, j) + log b_t(j)`` (``C_0(i, j) = log π_j + log b_0(j)``),
    ``log α_t`` is any row of ``C_0 ⊗ … ⊗ C_t`` and ``log β_t(i) = logsumexp_j (C_{t+1} ⊗ …
    ⊗ C_{T-1})_ij``.

    Returns:
        ``(T, K)`` log α, ``(T, K)`` log β and the ``()`` log-likelihood.
    """
    trans, obs = step_matrices(log_trans, log_obs, mask)
    c = trans + obs[:, None, :]
    first = jnp.broadcast_to((log_start + obs[0])[None, :], c.shape[1:])
    c = c.at[0].set(first)
    prefix = lax.associative_scan(log_matmul, c)                 # C_0 ⊗ … ⊗ C_t
    log_alpha = prefix[:, 0, :]
    # suffix products C_t ⊗ … ⊗ C_{T-1}: scan the reversed sequence, new factors on the left
    suffix = jnp.flip(lax.associative_scan(lambda a, b: log_matmul(b, a), jnp.flip(c, 0)), 0)
    beta_inner = jax.nn.logsumexp(suffix[1:], axis=-1)
    log_beta = jnp.concatenate([beta_inner, jnp.zeros_like(obs[:1])])
    return log_alpha, log_beta, jax.nn.logsumexp(log_alpha[-1])


def posteriors(log_start: jax.Array, log_trans: jax.Array, log_obs: jax.Array,
               mask: jax.Array, *, method: str = "scan") -> Posterior:
    """Posterior marginals, expected transition counts and log-likelihood of one sequence.

    Args:
        log_start: ``(K,)``; log_trans: ``(K, K)``; log_obs: ``(T, K)``; mask: ``(T,)`` bool.
        method: "scan" (sequential ``lax.scan``) or "associative" (``lax.associative_scan``).

    Returns:
        :class:`Posterior` (``gamma`` and ``xi_sum`` count the real steps only).
    """
    if method == "scan":
        log_alpha, loglik = forward_messages(log_start, log_trans, log_obs, mask)
        log_beta = backward_messages(log_trans, log_obs, mask)
    elif method == "associative":
        log_alpha, log_beta, loglik = forward_backward_associative(log_start, log_trans,
                                                                    log_obs, mask)
    else:
        raise ValueError(f"method must be 'scan' or 'associative', got {method!r}")
    m = mask.astype(log_obs.dtype)
    gamma = jnp.exp(log_alpha + log_beta - loglik) * m[:, None]
    trans, obs = step_matrices(log_trans, log_obs, mask)
    log_xi = (log_alpha[:-1, :, None] + trans[1:] + (obs[1:] + log_beta[1:])[:, None, :]
              - loglik)
    xi_sum = jnp.einsum("t,tij->ij", m[1:], jnp.exp(log_xi))
    return Posterior(gamma=gamma, xi_sum=xi_sum, loglik=loglik)


def viterbi(log_start: jax.Array, log_trans: jax.Array, log_obs: jax.Array,
            mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Most probable state path (max-product in log space, ``lax.scan`` both ways).

    Returns:
        ``(T,)`` int32 states (a masked step repeats the state before it) and the ``()`` log
        joint probability of the path and the real steps. Ties go to the lowest state index.
    """
    trans, obs = step_matrices(log_trans, log_obs, mask)
    delta0 = log_start + obs[0]

    def body(prev, inputs):
        a_t, b_t = inputs
        scores = prev[:, None] + a_t                       # (from, to)
        best = jnp.argmax(scores, axis=0).astype(jnp.int32)
        return jnp.max(scores, axis=0) + b_t, best

    last, back = lax.scan(body, delta0, (trans[1:], obs[1:]))
    final = jnp.argmax(last).astype(jnp.int32)

    def trace(state, pointers):
        prev = pointers[state]
        return prev, state

    first, path = lax.scan(trace, final, back, reverse=True)
    return jnp.concatenate([first[None], path]), jnp.max(last)


def sample_states(key: jax.Array, start: jax.Array, trans: jax.Array,
                  n_steps: int) -> jax.Array:
    """A state path of ``n_steps`` from the Markov chain: ``(n_steps,)`` int32
    (``start (K,)`` and ``trans (K, K)`` are probabilities)."""
    keys = jax.random.split(key, n_steps)
    z0 = jax.random.categorical(keys[0], jnp.log(start)).astype(jnp.int32)

    def body(z, k):
        nxt = jax.random.categorical(k, jnp.log(trans[z])).astype(jnp.int32)
        return nxt, nxt

    _, rest = lax.scan(body, z0, keys[1:])
    return jnp.concatenate([z0[None], rest])
