"""Posterior draws of the truncated DP-GMM and their label-invariant summaries.

:class:`DPGMMPosterior` holds the draws (in the units of the fitted data, components in stick
order). The component labels of a mixture are not identified, so the summaries here either sort
each draw's components by weight (:func:`sort_by_weight`, :func:`posterior_summary`) or pool the
components nearest each of a few given centres (:func:`cluster_summary`, which is also invariant
to a cluster being split); see :mod:`espresso_jax.fully_bayes.dpgmm` for when each is reliable.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from espresso_jax import validation as V
from espresso_jax.fully_bayes.mcmc import summarize

__all__ = ["DPGMMClusters", "DPGMMPosterior", "DPGMMSummary", "check_posterior",
           "cluster_summary", "posterior_summary", "sort_by_weight"]


class DPGMMPosterior(NamedTuple):
    """Posterior draws of the truncated DP-GMM, in the units of the fitted ``X``.

    Components are in the model's stick order (use :func:`sort_by_weight` to order them by
    weight per draw). Draws of several chains are concatenated chain by chain.

    Attributes:
        weights: ``(n_draws, K)`` mixing weights (each row sums to 1).
        means: ``(n_draws, K, D)`` component means.
        covariances: ``(n_draws, K, D, D)`` component covariances.
        scale_tril: ``(n_draws, K, D, D)`` their lower Cholesky factors.
        num_chains: chains the draws came from (1 for SVI).
        num_divergent: ``()`` divergent NUTS transitions after warm-up (0 for SVI).
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array
    scale_tril: jax.Array
    num_chains: int
    num_divergent: jax.Array


class DPGMMSummary(NamedTuple):
    """Host-side summary of the components with non-negligible weight (weight-sorted).

    Attributes:
        n_components: number of components whose posterior-mean (sorted) weight exceeds the
            threshold.
        weights, weights_sd: ``(n_components,)`` posterior mean and sd of their weights.
        means, means_sd: ``(n_components, D)`` posterior mean and sd of their means.
        covariances: ``(n_components, D, D)`` posterior-mean covariances.
        sorted_weights: ``(K,)`` posterior mean of all weight-sorted weights.
        weights_ess, weights_r_hat: ``(K,)`` effective sample size and split R-hat of the
            sorted weights (R-hat is NaN with fewer than 4 draws per chain).
    """

    n_components: int
    weights: np.ndarray
    weights_sd: np.ndarray
    means: np.ndarray
    means_sd: np.ndarray
    covariances: np.ndarray
    sorted_weights: np.ndarray
    weights_ess: np.ndarray
    weights_r_hat: np.ndarray


class DPGMMClusters(NamedTuple):
    """Per-draw cluster summaries from :func:`cluster_summary` (NumPy, float64).

    Attributes:
        weights: ``(n_draws, J)`` total weight of the components assigned to each centre.
        means: ``(n_draws, J, D)`` weight-averaged mean of those components (NaN in a draw
            where a centre received no weight).
        r_hat: ``(J, 1 + D)`` split R-hat of each cluster's weight and mean coordinates over
            the chains (NaN with a single chain, fewer than 4 draws per chain, or a centre
            that received no weight in some draw).
    """

    weights: np.ndarray
    means: np.ndarray
    r_hat: np.ndarray


def check_posterior(posterior: Any) -> tuple[jax.Array, ...]:
    """Validate a :class:`DPGMMPosterior` on the host: its ``(weights, means, covariances,
    scale_tril)`` as float arrays of shapes ``(S, K)``, ``(S, K, D)``, ``(S, K, D, D)`` and
    ``(S, K, D, D)`` (``TypeError`` / ``ValueError`` otherwise)."""
    if not isinstance(posterior, DPGMMPosterior):
        raise TypeError(f"posterior must be a DPGMMPosterior, got {type(posterior).__name__}")
    w = V.as_float_array(posterior.weights, "posterior.weights", ndim=2,
                         shape_hint="(n_draws, K)")
    m = V.as_float_array(posterior.means, "posterior.means", ndim=3,
                         shape_hint="(n_draws, K, D)")
    c = V.as_float_array(posterior.covariances, "posterior.covariances", ndim=4,
                         shape_hint="(n_draws, K, D, D)")
    L = V.as_float_array(posterior.scale_tril, "posterior.scale_tril", ndim=4,
                         shape_hint="(n_draws, K, D, D)")
    S, K, D = m.shape
    for name, arr, shape in (("weights", w, (S, K)), ("covariances", c, (S, K, D, D)),
                             ("scale_tril", L, (S, K, D, D))):
        if arr.shape != shape:
            raise ValueError(f"posterior.{name} has shape {arr.shape}, expected {shape} "
                             f"to match posterior.means {m.shape}")
    return w, m, c, L


# ------------------------------------------------------------------------ label switching
@jax.jit
def _sort_impl(post_arrays):
    weights, means, cov, tril = post_arrays
    order = jnp.argsort(-weights, axis=-1)                          # (S, K), stable

    def take(a):
        return jnp.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)

    return take(weights), take(means), take(cov), take(tril)


def sort_by_weight(posterior: DPGMMPosterior) -> DPGMMPosterior:
    """Reorder each draw's components by decreasing weight (the label-switching fix used by
    :func:`posterior_summary`).

    Args:
        posterior: :class:`DPGMMPosterior`.

    Returns:
        :class:`DPGMMPosterior` whose component ``0`` is the heaviest in every draw.
    """
    arrays = check_posterior(posterior)
    return posterior._replace(**dict(zip(("weights", "means", "covariances", "scale_tril"),
                                         _sort_impl(arrays), strict=True)))


def posterior_summary(posterior: DPGMMPosterior, threshold: float = 0.05) -> DPGMMSummary:
    """Components with non-negligible posterior-mean weight, after sorting by weight per draw.

    Each draw's components are sorted by decreasing weight (:func:`sort_by_weight`); the
    ``j``-th heaviest components are then averaged over draws. A component counts when its
    posterior-mean sorted weight exceeds ``threshold``.

    Args:
        posterior: :class:`DPGMMPosterior`.
        threshold: weight threshold in [0, 1).

    Returns:
        :class:`DPGMMSummary` (NumPy arrays, float64).
    """
    threshold = V.check_probability(threshold, "threshold")
    s = sort_by_weight(posterior)
    w = np.asarray(s.weights, np.float64)
    S, K = w.shape
    C = posterior.num_chains if S % max(posterior.num_chains, 1) == 0 else 1
    if S // C >= 2:
        diag = summarize({"w": w.reshape(C, S // C, K)}, group_by_chain=True)["w"]
        ess, r_hat = diag.ess, diag.r_hat
    else:
        ess, r_hat = np.full(K, np.nan), np.full(K, np.nan)
    mean_w = w.mean(0)
    n = int(np.sum(mean_w > threshold))
    means = np.asarray(s.means, np.float64)[:, :n]
    cov = np.asarray(s.covariances, np.float64)[:, :n]
    sd = (lambda a: a.std(0, ddof=1)) if S > 1 else (lambda a: np.zeros(a.shape[1:]))
    return DPGMMSummary(n, mean_w[:n], sd(w[:, :n]), means.mean(0), sd(means), cov.mean(0),
                        mean_w, np.asarray(ess), np.asarray(r_hat))


def cluster_summary(posterior: DPGMMPosterior, centres: ArrayLike) -> DPGMMClusters:
    """Label- and split-invariant summaries: each component of each draw is assigned to the
    nearest of ``J`` given centres (e.g. the means of an EM or variational fit); per draw, a
    cluster's weight is the sum of its components' weights and its mean is their
    weight-averaged mean.

    Unlike the weight-sorted components of :func:`posterior_summary`, these do not change when
    a draw splits a cluster into two components, so they can be compared across chains and
    with point fits even when the number of occupied components mixes slowly.

    Args:
        posterior: :class:`DPGMMPosterior`.
        centres: ``(J, D)`` reference points, in the units of the fitted data.

    Returns:
        :class:`DPGMMClusters`.
    """
    weights, means, _, _ = check_posterior(posterior)
    w = np.asarray(weights, np.float64)
    m = np.asarray(means, np.float64)
    centres = np.asarray(V.as_float_array(centres, "centres", ndim=2,
                                          shape_hint="(n_centres, n_features)"), np.float64)
    if centres.shape[1] != m.shape[-1]:
        raise ValueError(f"centres has {centres.shape[1]} features but the posterior has "
                         f"{m.shape[-1]}")
    nearest = np.argmin(np.sum((m[:, :, None, :] - centres) ** 2, axis=-1), axis=-1)  # (S, K)
    member = nearest[..., None] == np.arange(len(centres))                       # (S, K, J)
    cw = np.einsum("sk,skj->sj", w, member)
    with np.errstate(invalid="ignore", divide="ignore"):
        cm = np.einsum("sk,skj,skd->sjd", w, member, m) / cw[..., None]
    S, J = cw.shape
    C = posterior.num_chains if S % max(posterior.num_chains, 1) == 0 else 1
    stacked = np.concatenate([cw[..., None], cm], axis=-1)                       # (S, J, 1+D)
    if C >= 2 and S // C >= 4 and np.all(np.isfinite(stacked)):
        r_hat = summarize({"c": stacked.reshape((C, S // C) + stacked.shape[1:])},
                          group_by_chain=True)["c"].r_hat
    else:
        r_hat = np.full(stacked.shape[1:], np.nan)
    return DPGMMClusters(cw, cm, np.asarray(r_hat, np.float64))
