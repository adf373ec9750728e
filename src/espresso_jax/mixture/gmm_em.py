"""The EM model of the maximum-likelihood Gaussian mixture, and the state a restart starts from.

The state keeps the means as offsets ``delta = mean − shift`` from FIXED reference points
``shift`` (the initial means), and the E-step accumulates moment statistics
(:mod:`espresso_jax.prob.moments`) relative to the same points, which keeps float32 covariances
positive definite far from the origin. :func:`em_model` packs the E-step, M-step and objective
for the shared engine (:mod:`espresso_jax.em`); :func:`init_state` builds the initial state of
one restart from the ``init`` strategy and any explicit initial values (see
:mod:`espresso_jax.mixture.gmm` for the strategies).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from espresso_jax import em
from espresso_jax.mixture import gaussian as gauss
from espresso_jax.prob.moments import MomentStats, centred_moments, data_moments, moment_stats

__all__ = [
    "GMMState",
    "GMMStats",
    "InitOverrides",
    "em_model",
    "init_state",
    "initial_em_state",
    "log_joint",
    "m_step_from_moments",
    "responsibilities",
]


class GMMState(NamedTuple):
    """EM state: means are kept as ``delta = mean − shift`` around FIXED reference points.

    Attributes:
        weights: ``(K,)`` mixing weights.
        delta: ``(K, D)`` means minus ``shift``.
        covariances, prec_chol: covariances and upper precision Cholesky factors, in the
            layout of the covariance type (as in :class:`~espresso_jax.mixture.gmm.GMMParams`).
        shift: ``(K, D)`` reference points (the initial means; fixed during a fit).
        reg_covar: ``()`` added to the covariance diagonals by the M-step.
    """

    weights: jax.Array
    delta: jax.Array
    covariances: jax.Array
    prec_chol: jax.Array
    shift: jax.Array
    reg_covar: jax.Array


class GMMStats(NamedTuple):
    """Additive E-step statistics of a block of rows.

    Attributes:
        moments: responsibility-weighted moments relative to the state's ``shift``.
        loglik: ``()`` ``Σ w log p(x)``.
        wsum: ``()`` ``Σ w``.
    """

    moments: MomentStats
    loglik: jax.Array
    wsum: jax.Array


# --------------------------------------------------------------------------------------------
# EM model


def log_joint(state: GMMState, X: jax.Array, ctype: str) -> tuple[jax.Array, jax.Array]:
    """``(K, B)`` log π_k + log N(x_b | μ_k, Σ_k) and the ``(K, B, D)`` shifted rows."""
    dx = X[None, :, :] - state.shift[:, None, :]
    logp = gauss.log_gaussian(dx, state.delta, state.prec_chol, ctype)
    return logp + jnp.log(state.weights)[:, None], dx


def responsibilities(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Softmax over components ``(K, B)`` and the log normaliser ``(B,)``; rows whose every
    component underflows get zero responsibilities (their weight decides whether they count)."""
    norm = jax.nn.logsumexp(logits, axis=0)
    ok = jnp.isfinite(norm)
    resp = jnp.where(ok[None, :], jnp.exp(logits - jnp.where(ok, norm, 0.0)[None, :]), 0.0)
    return resp, norm


def m_step_from_moments(moments: MomentStats, shift: jax.Array, reg_covar: jax.Array,
                        ctype: str) -> GMMState:
    """The M-step: maximum-likelihood state from the moment statistics (scikit-learn's
    regularisation: ``reg_covar`` on the covariance diagonals, ``10·eps`` on the counts).

    Args:
        moments: :class:`~espresso_jax.prob.moments.MomentStats` accumulated relative to
            ``shift`` (``nk (K,)``, ``sx (K, D)`` and the scatter).
        shift: ``(K, D)`` reference points (kept as the new state's ``shift``).
        reg_covar: ``()`` added to the covariance diagonals.
        ctype: covariance type.

    Returns:
        :class:`GMMState` (an empty component gets ``delta = 0``, i.e. its reference point as
        mean, and ``reg_covar · I`` as covariance).
    """
    raw = moments.nk
    safe = jnp.where(raw > 0, raw, 1.0)
    delta = jnp.where((raw > 0)[:, None], moments.sx / safe[:, None], 0.0)
    scatter = centred_moments(moments, shift).scatter
    nk = raw + 10.0 * jnp.finfo(raw.dtype).eps
    cov = gauss.regularise(scatter, nk, reg_covar, ctype)
    cov, prec_chol = gauss.precision_cholesky(cov, ctype)
    return GMMState(weights=nk / jnp.sum(nk), delta=delta, covariances=cov,
                    prec_chol=prec_chol, shift=shift, reg_covar=reg_covar)


@functools.cache
def em_model(ctype: str) -> em.EMModel:
    """The mixture's :class:`~espresso_jax.em.EMModel` for covariance type ``ctype`` (one per
    type, cached: no recompiles). Shared by :func:`espresso_jax.mixture.gmm.fit` and the
    stepwise fitter of :mod:`espresso_jax.mixture.gmm_online`."""
    diagonal = ctype in ("diag", "spherical")

    def e_step(state: GMMState, X: jax.Array, w: jax.Array) -> GMMStats:
        logits, _ = log_joint(state, X, ctype)
        resp, norm = responsibilities(logits)
        moments = moment_stats(X, w, resp.T, state.shift, diagonal=diagonal)
        loglik = jnp.sum(jnp.where(w > 0, w * norm, 0.0))
        return GMMStats(moments=moments, loglik=loglik, wsum=jnp.sum(w))

    def m_step(state: GMMState, stats: GMMStats) -> GMMState:
        return m_step_from_moments(stats.moments, state.shift, state.reg_covar, ctype)

    def objective(old: GMMState, new: GMMState, stats: GMMStats) -> jax.Array:
        return stats.loglik / stats.wsum

    return em.EMModel(e_step=e_step, m_step=m_step, objective=objective)


# --------------------------------------------------------------------------------------------
# Initialisation


class InitOverrides(NamedTuple):
    """Explicit initial values (``None`` where not given)."""

    weights: Any
    means: Any
    covariances: Any
    precisions: Any


def _sum_blocks(fn, X: jax.Array, w: jax.Array, chunk_size: int | None):
    """``Σ_blocks fn(X_b, w_b, rows_b)`` with the engine's chunking and the global row indices
    of each block (for per-row random draws that do not depend on ``chunk_size``)."""
    rows = jnp.arange(X.shape[0], dtype=jnp.uint32)
    return em.sum_blocks(fn, (X, w, rows), chunk_size)


def _kmeans_centres(key, X, w, n_components: int, init: str, chunk_size):
    from espresso_jax.mixture import kmeans  # imported lazily: a sibling module

    if init == "kmeans++":
        return kmeans.kmeans_plusplus(key, X, n_components, sample_weight=w)
    return kmeans.fit(key, X, n_components, n_init=1, sample_weight=w,
                      chunk_size=chunk_size).params.centres


def init_state(key, X, w, Xp, wp, reg_covar, over: InitOverrides, *, n_components: int,
               ctype: str, init: str, chunk_size) -> GMMState:
    """Initial EM state for one restart.

    Args:
        key: PRNG key of the initialisation.
        X, w: ``(n_samples, n_features)`` data and ``(n_samples,)`` weights, unpadded (for
            k-means); Xp, wp: the same padded to whole blocks of ``chunk_size`` rows.
        reg_covar: ``()`` added to the covariance diagonals.
        over: :class:`InitOverrides`; responsibilities (from ``init``) and an initial M-step
            are computed only when the overrides do not give every field.
        n_components, ctype, init, chunk_size: as in :func:`~espresso_jax.mixture.gmm.fit`.
    """
    dtype = X.dtype
    need_resp = over.weights is None or over.means is None or (
        over.covariances is None and over.precisions is None)
    weights = means = cov = prec_chol = None
    if need_resp:
        if init == "random":
            shift = jnp.broadcast_to(data_moments(X, w, diagonal=True).means,
                                     (n_components, X.shape[1]))

            def resp_fn(Xb, rows):
                # drawn in float32 whatever the dtype: float32 and float64 data start alike
                u = jax.vmap(lambda r: jax.random.uniform(
                    jax.random.fold_in(key, r), (n_components,), jnp.float32))(rows).astype(dtype)
                return u / jnp.sum(u, axis=1, keepdims=True)
        else:
            shift = _kmeans_centres(key, X, w, n_components, init, chunk_size).astype(dtype)

            def resp_fn(Xb, rows):
                d2 = jnp.sum(jnp.square(Xb[None, :, :] - shift[:, None, :]), axis=-1)
                return jax.nn.one_hot(jnp.argmin(d2, axis=0), n_components, dtype=dtype)

        moments = _sum_blocks(
            lambda Xb, wb, rows: moment_stats(Xb, wb, resp_fn(Xb, rows), shift,
                                              diagonal=ctype in ("diag", "spherical")),
            Xp, wp, chunk_size)
        s = m_step_from_moments(moments, shift, reg_covar, ctype)
        weights, means, cov, prec_chol = s.weights, s.shift + s.delta, s.covariances, s.prec_chol
    if over.weights is not None:
        weights = over.weights
    if over.means is not None:
        means = over.means
    if over.covariances is not None:
        cov, prec_chol = gauss.precision_cholesky(over.covariances, ctype)
    elif over.precisions is not None:
        prec_chol = gauss.precision_cholesky_from_precision(over.precisions, ctype)
        cov = gauss.covariance_from_precision_cholesky(prec_chol, ctype)
    # every field is set: by the initial M-step, or by the overrides that made it unnecessary
    if weights is None or means is None or cov is None or prec_chol is None:
        raise RuntimeError("internal error: a GMM initial state field was left unset")
    return GMMState(weights=weights, delta=jnp.zeros_like(means), covariances=cov,
                    prec_chol=prec_chol, shift=means, reg_covar=reg_covar)


@functools.partial(jax.jit, static_argnames=("n_components", "ctype", "init"))
def initial_em_state(key: jax.Array, X: jax.Array, w: jax.Array, reg_covar: jax.Array, *,
                     n_components: int, ctype: str, init: str):
    """The EM state one restart of :func:`~espresso_jax.mixture.gmm.fit` starts from (no user
    overrides, no padding).

    Args:
        key: PRNG key of the initialisation.
        X: ``(n_samples, n_features)`` data; w: ``(n_samples,)`` sample weights.
        reg_covar: added to the covariance diagonals.
        n_components, ctype, init: as :func:`~espresso_jax.mixture.gmm.fit`'s
            ``n_components``, ``covariance_type`` and ``init``.
    """
    none = InitOverrides(None, None, None, None)
    return init_state(key, X, w, X, w, reg_covar, none, n_components=n_components,
                      ctype=ctype, init=init, chunk_size=None)
