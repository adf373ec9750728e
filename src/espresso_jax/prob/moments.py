"""Weighted counts, means and scatter matrices: the statistics every Gaussian fit is made of.

One implementation serves the maximum-likelihood estimates of :mod:`espresso_jax.prob.estimate`,
the Lloyd step of k-means, and the M-steps of the Gaussian mixture and its variational version.
Statistics are accumulated in a per-group frame: rows are shifted by a reference point
``shift[k]`` near the data (a mixture keeps it fixed during a fit, e.g. the initial means; a
single data set uses its first row), so that

    nk[k]  = Σ_n w_n r_nk
    sx[k]  = Σ_n w_n r_nk (x_n − shift_k)
    sxx[k] = Σ_n w_n r_nk (x_n − shift_k)(x_n − shift_k)ᵀ      (or its diagonal)

are additive over rows (chunks, minibatches, devices), and the scatter
``sxx − nk δδᵀ`` with ``δ = mean − shift`` never subtracts two huge numbers: the one-pass
``E[xxᵀ] − μμᵀ`` form loses every digit in float32 once ``|μ| ≫ σ`` (e.g. data offset by 1e4).
``r`` is a matrix of responsibilities (soft assignments) or a vector of integer labels (hard
assignments, as k-means has).

References:
    T. F. Chan, G. H. Golub and R. J. LeVeque, "Algorithms for computing the sample variance:
    analysis and recommendations", The American Statistician 37(3), 1983 (shifted data).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["MomentStats", "CentredMoments", "moment_stats", "centred_moments", "data_moments"]


class MomentStats(NamedTuple):
    """Additive, shifted moment statistics of ``K`` weighted groups.

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
        means: ``(K, D)`` weighted means (the shift for empty groups).
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
        resp: ``(B, K)`` responsibilities (rows sum to 1), or ``(B,)`` integer labels in
            ``[0, K)`` for hard assignments.
        shift: ``(K, D)`` per-group reference points.
        diagonal: keep only the diagonal of the second moments.

    Returns:
        :class:`MomentStats`. Responsibilities cost O(B·K·D²) (O(B·K·D) diagonal) as batched
        GEMMs, with no ``(B, K, D, D)`` tensor; labels cost O(B·D²) (O(B·D)) by segment sums.
    """
    if resp.ndim == 1:
        K = shift.shape[0]
        dx = X - shift[resp]                                    # (B, D)
        wdx = w[:, None] * dx
        sxx = wdx * dx if diagonal else wdx[:, :, None] * dx[:, None, :]

        def segment(a):
            return jax.ops.segment_sum(a, resp, num_segments=K)

        return MomentStats(nk=segment(w), sx=segment(wdx), sxx=segment(sxx))
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
    """Means and scatter about the means from shifted statistics.

    Args:
        stats: :class:`MomentStats` of ``K`` groups.
        shift: ``(K, D)`` the reference points they were accumulated with.

    Returns:
        :class:`CentredMoments`. Empty groups keep ``mean = shift`` and zero scatter (no
        division by zero); diagonal scatter is clipped at 0, full scatter symmetrised.
    """
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


def data_moments(X: jax.Array, w: jax.Array, *, diagonal: bool = False) -> CentredMoments:
    """Total weight, weighted mean and scatter of all rows (one group, shifted by row 0).

    Args:
        X: ``(n, D)`` rows.
        w: ``(n,)`` non-negative weights.
        diagonal: per-feature scatter ``(1, D)`` instead of the matrix ``(1, D, D)``.

    Returns:
        :class:`CentredMoments` with ``nk (1,)``, ``means (1, D)`` and the scatter.
    """
    shift = X[:1]
    ones = jnp.ones((X.shape[0], 1), X.dtype)
    return centred_moments(moment_stats(X, w, ones, shift, diagonal=diagonal), shift)
