"""Responsibility-weighted Gaussian statistics shared by the mixture models.

Statistics are accumulated in a per-component frame: rows are shifted by a reference point
``shift[k]`` (the model keeps it fixed during a fit, e.g. the initial means), so that

    nk[k]  = Σ_n w_n r_nk
    sx[k]  = Σ_n w_n r_nk (x_n − shift_k)
    sxx[k] = Σ_n w_n r_nk (x_n − shift_k)(x_n − shift_k)ᵀ      (or its diagonal)

are additive over rows (chunks, minibatches, devices) and the covariance
``sxx/nk − δδᵀ`` with ``δ = mean − shift`` never subtracts two huge numbers: the one-pass
``E[xxᵀ] − μμᵀ`` form loses every digit in float32 once |μ| ≫ σ (e.g. data offset by 1e4).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["MomentStats", "CentredMoments", "moment_stats", "centred_moments"]


class MomentStats(NamedTuple):
    """Additive, shifted moment statistics of ``K`` weighted components.

    Attributes:
        nk: ``(K,)`` weighted counts.
        sx: ``(K, D)`` shifted first moments.
        sxx: ``(K, D, D)`` shifted second moments, or ``(K, D)`` diagonals when
            ``diagonal=True`` was requested.
    """

    nk: jax.Array
    sx: jax.Array
    sxx: jax.Array


class CentredMoments(NamedTuple):
    """Counts, means and scatter matrices about the means.

    Attributes:
        nk: ``(K,)`` weighted counts.
        means: ``(K, D)`` weighted means (the shift for empty components).
        scatter: ``(K, D, D)`` (or ``(K, D)`` diagonal) ``Σ w r (x − mean)(x − mean)ᵀ``.
    """

    nk: jax.Array
    means: jax.Array
    scatter: jax.Array


def moment_stats(X: jax.Array, w: jax.Array, resp: jax.Array, shift: jax.Array, *,
                 diagonal: bool = False) -> MomentStats:
    """Shifted moment statistics of one block of rows.

    Args:
        X: ``(B, D)`` rows.
        w: ``(B,)`` row weights (0 for padding).
        resp: ``(B, K)`` responsibilities (rows sum to 1; hard assignments are one-hot).
        shift: ``(K, D)`` per-component reference points.
        diagonal: keep only the diagonal of the second moments (diag/spherical models).

    Returns:
        :class:`MomentStats`. Cost O(B·K·D²) (O(B·K·D) diagonal) as batched GEMMs; no
        ``(B, K, D, D)`` tensor is formed.
    """
    wr = resp * w[:, None]                                      # (B, K)
    nk = wr.sum(0)
    dx = X[None, :, :] - shift[:, None, :]                      # (K, B, D)
    wdx = wr.T[:, :, None] * dx                                 # (K, B, D)
    sx = wdx.sum(1)
    if diagonal:
        sxx = jnp.sum(wdx * dx, axis=1)
    else:
        sxx = jnp.einsum("kbi,kbj->kij", wdx, dx, precision=jax.lax.Precision.HIGHEST)
    return MomentStats(nk=nk, sx=sx, sxx=sxx)


def centred_moments(stats: MomentStats, shift: jax.Array) -> CentredMoments:
    """Means and scatter about the means from shifted statistics (empty components keep
    ``mean = shift`` and zero scatter; no division by zero)."""
    nk = stats.nk
    safe = jnp.where(nk > 0, nk, 1.0)
    delta = jnp.where((nk > 0)[:, None], stats.sx / safe[:, None], 0.0)     # mean − shift
    means = shift + delta
    if stats.sxx.ndim == 2:
        scatter = stats.sxx - nk[:, None] * delta * delta
        scatter = jnp.maximum(scatter, 0.0)
    else:
        scatter = stats.sxx - nk[:, None, None] * delta[:, :, None] * delta[:, None, :]
        scatter = 0.5 * (scatter + jnp.swapaxes(scatter, 1, 2))
    return CentredMoments(nk=nk, means=means, scatter=scatter)
