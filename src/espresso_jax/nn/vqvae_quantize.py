"""Vector quantisation for the VQ-VAE: nearest-code assignment, the straight-through
estimator, the codebook and commitment terms, EMA codebook updates, codebook usage and
perplexity (van den Oord, Vinyals and Kavukcuoglu 2017). Pure functions of arrays.

Notation: encoder outputs ``z_e: (n, D)`` (any leading shape, flattened where stated), a
codebook ``e: (K, D)``, assignments ``k(i) = argmin_j ‖z_e,i − e_j‖²``.

References:
    A. van den Oord, O. Vinyals and K. Kavukcuoglu, "Neural discrete representation
    learning", NeurIPS 2017 (Eq. 3 and Appendix A.1, the EMA updates).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "EMAState",
    "nearest_code",
    "quantize",
    "vq_terms",
    "init_ema",
    "ema_update",
    "codebook_usage",
    "perplexity",
]


def nearest_code(z_e: jax.Array, codebook: jax.Array) -> jax.Array:
    """Index of the nearest codebook vector (squared Euclidean distance).

    Args:
        z_e: ``(..., D)`` encoder outputs.
        codebook: ``(K, D)`` code vectors.

    Returns:
        ``(...)`` int32 indices in ``[0, K)`` (ties go to the lowest index).
    """
    # ‖z − e‖² = ‖z‖² − 2 z·e + ‖e‖²; ‖z‖² is the same for every code, so it is left out.
    sq_norms = jnp.sum(codebook * codebook, axis=-1)
    scores = sq_norms.reshape((1,) * (z_e.ndim - 1) + sq_norms.shape) - 2.0 * z_e @ codebook.T
    return jnp.argmin(scores, axis=-1).astype(jnp.int32)


def quantize(z_e: jax.Array, codebook: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Quantise ``z_e`` to its nearest codes with the straight-through gradient.

    The forward value is ``e_{k(z)}``; the gradient with respect to ``z_e`` is copied from
    the decoder's input, ``z_q = z_e + stop_gradient(e_k − z_e)``, and no decoder gradient
    reaches the codebook (it learns through the codebook term of :func:`vq_terms`, or EMA).

    Args:
        z_e: ``(..., D)`` encoder outputs.
        codebook: ``(K, D)``.

    Returns:
        ``(z_q (..., D), indices (...))``.
    """
    idx = nearest_code(z_e, codebook)
    e = codebook[idx]
    return z_e + jax.lax.stop_gradient(e - z_e), idx


def vq_terms(z_e: jax.Array, codebook: jax.Array, indices: jax.Array
             ) -> tuple[jax.Array, jax.Array]:
    """The codebook term ``‖sg[z_e] − e_k‖²`` and the commitment term ``‖z_e − sg[e_k]‖²``.

    The first moves the codes towards the encoder outputs, the second (weighted by β in the
    loss) keeps the encoder committed to its codes (Eq. 3 of the paper). Both have the same
    value; they differ in where the gradient goes.

    Args:
        z_e: ``(..., D)`` encoder outputs.
        codebook: ``(K, D)``.
        indices: ``(...)`` assignments (from :func:`quantize`).

    Returns:
        ``(codebook_term (...), commitment_term (...))``, summed over ``D``.
    """
    e = codebook[indices]
    codebook_term = jnp.sum((jax.lax.stop_gradient(z_e) - e) ** 2, axis=-1)
    commitment = jnp.sum((z_e - jax.lax.stop_gradient(e)) ** 2, axis=-1)
    return codebook_term, commitment


class EMAState(NamedTuple):
    """Exponential moving averages of the codebook statistics.

    Attributes:
        counts: ``(K,)`` moving average of the number of vectors assigned to each code.
        sums: ``(K, D)`` moving average of the sum of the vectors assigned to each code.
    """

    counts: jax.Array
    sums: jax.Array


def init_ema(codebook: jax.Array) -> EMAState:
    """EMA statistics that reproduce ``codebook`` (unit counts, sums equal to the codes)."""
    return EMAState(jnp.ones(codebook.shape[:1], codebook.dtype), codebook)


def ema_update(ema: EMAState, z_e: jax.Array, indices: jax.Array, decay: float | jax.Array,
               epsilon: float | jax.Array) -> tuple[EMAState, jax.Array]:
    """One EMA codebook update (Appendix A.1 of the paper), on a batch of encoder outputs.

    ``N_j ← γ N_j + (1 − γ) n_j``, ``m_j ← γ m_j + (1 − γ) Σ_{i: k(i)=j} z_i``, then with
    Laplace smoothing of the counts ``Ñ_j = (N_j + ε) / (Σ N + K ε) · Σ N`` the new codes are
    ``e_j = m_j / Ñ_j``. With ``γ = 0`` and ``ε = 0`` this is one k-means (Lloyd) step on the
    batch: each used code moves to the mean of its assigned vectors (an unused code has a
    zero count; give ``ε > 0`` to keep it finite).

    Args:
        ema: current :class:`EMAState`.
        z_e: ``(n, D)`` encoder outputs (flattened over examples and latent positions).
        indices: ``(n,)`` their assignments.
        decay: ``γ`` in ``[0, 1)``.
        epsilon: ``ε >= 0``, the Laplace smoothing of the counts.

    Returns:
        ``(new EMAState, new codebook (K, D))``.
    """
    K = ema.counts.shape[0]
    one_hot = jax.nn.one_hot(indices, K, dtype=z_e.dtype)            # (n, K)
    counts = decay * ema.counts + (1.0 - decay) * jnp.sum(one_hot, axis=0)
    sums = decay * ema.sums + (1.0 - decay) * one_hot.T @ z_e
    total = jnp.sum(counts)
    smoothed = (counts + epsilon) / (total + K * epsilon) * total
    return EMAState(counts, sums), sums / smoothed[:, None]


def codebook_usage(indices: jax.Array, codebook_size: int) -> jax.Array:
    """Fraction of the assignments that go to each code, ``(K,)`` summing to 1.

    Args:
        indices: integer assignments of any shape.
        codebook_size: ``K``.
    """
    one_hot = jax.nn.one_hot(jnp.ravel(indices), codebook_size)
    return jnp.mean(one_hot, axis=0)


def perplexity(indices: jax.Array, codebook_size: int) -> jax.Array:
    """Perplexity of the code usage, ``exp(−Σ_j p_j log p_j)`` with ``p`` from
    :func:`codebook_usage` (``0 log 0 = 0``): 1 when one code takes everything, ``K`` when
    all codes are used equally often.

    Args:
        indices: integer assignments of any shape.
        codebook_size: ``K``.

    Returns:
        ``()`` perplexity.
    """
    p = codebook_usage(indices, codebook_size)
    return jnp.exp(-jnp.sum(jax.scipy.special.xlogy(p, p)))
