"""Gaussian mixture models fitted by maximum likelihood with EM.

Model (Bishop PRML §9.2): ``p(x) = Σ_k π_k N(x | μ_k, Σ_k)`` with full, tied, diagonal or
spherical covariances (layouts in :mod:`espresso_jax.mixture.gaussian`). Parameters are stored
as scikit-learn's ``GaussianMixture`` stores them: weights, means, covariances and the upper
precision Cholesky factors ``U`` (``Σ⁻¹ = U Uᵀ``), so the E-step is one batched triangular GEMM
per block of rows. Like scikit-learn, the M-step adds ``reg_covar`` to the diagonal of every
covariance and ``10·eps`` to every component count (an empty component keeps a tiny weight,
its previous mean and ``reg_covar · I``: nothing is divided by zero).

The fit goes through the shared engine :func:`espresso_jax.em.fit_em` (one jitted
``lax.while_loop``): the E-step returns additive statistics (:mod:`espresso_jax.prob.moments`,
accumulated relative to the fixed initial means, which keeps float32 covariances positive
definite far from the origin), so ``chunk_size``, row-sharded ``X`` and ``sample_weight`` all
come from the engine. ``history[i]`` is the weighted mean log-likelihood of the parameters
before the ``i``-th M-step, the same quantity as scikit-learn's ``lower_bounds_``; the fit stops
when it changes by less than ``tol``. Restarts (``n_init``) are ``vmap``-ed over keys and the
best is chosen on device.

Initialisation (``init``):

- ``"kmeans"``: a k-means fit (:func:`espresso_jax.mixture.kmeans.fit`, one start), then hard
  responsibilities by nearest final centre (scikit-learn's ``"kmeans"``);
- ``"kmeans++"``: k-means++ seeds only, then hard responsibilities by nearest seed (scikit-learn's
  ``"k-means++"`` instead puts each component on its single seed point);
- ``"random"``: responsibilities uniform on [0, 1] per row, normalised (scikit-learn's
  ``"random"``); row ``n`` uses ``fold_in(key, n)``, so the draw does not depend on ``chunk_size``;
- explicit parameters: ``weights_init``, ``means_init``, ``precisions_init`` override the
  corresponding part of the initialisation above (scikit-learn's semantics; with all three, no
  responsibilities are computed), or ``init_params`` (a :class:`GMMParams`) gives them all.

References:
    A. P. Dempster, N. M. Laird, D. B. Rubin, "Maximum likelihood from incomplete data via the
    EM algorithm", JRSS B, 1977.
    C. M. Bishop, *Pattern Recognition and Machine Learning*, 2006, §9.2, §9.3.3.
    G. Schwarz, "Estimating the dimension of a model", Ann. Stat., 1978 (BIC).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from espresso_jax import em
from espresso_jax.mixture import gaussian as gauss
from espresso_jax.prob.moments import MomentStats, centred_moments, data_moments, moment_stats
from espresso_jax.validation import (
    as_float_array,
    as_sample_weight,
    check_choice,
    check_int,
    check_key,
    check_positive,
    is_traced,
)

__all__ = [
    "GMMParams",
    "GMMResult",
    "INITS",
    "aic",
    "bic",
    "check_X",
    "covariance_type",
    "em_model",
    "fit",
    "initial_em_state",
    "n_parameters",
    "predict",
    "predict_proba",
    "sample",
    "score",
    "score_samples",
]

INITS = ("kmeans++", "kmeans", "random")
"""The ``init`` strings of :func:`fit` (one spelling each, shared with the other mixtures)."""


class GMMParams(NamedTuple):
    """Parameters of a Gaussian mixture (``K`` components, ``D`` features).

    Attributes:
        weights: ``(K,)`` mixing weights (sum to 1).
        means: ``(K, D)`` component means.
        covariances: ``(K, D, D)`` full, ``(1, D, D)`` tied, ``(K, D)`` diag or ``(K,)``
            spherical (the shape encodes the covariance type; see :func:`covariance_type`).
        precisions_cholesky: upper-triangular ``U`` with ``Σ⁻¹ = U Uᵀ``, same layout
            (``1/sqrt(variances)`` for diag and spherical).
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array
    precisions_cholesky: jax.Array


class GMMResult(NamedTuple):
    """Result of :func:`fit` (the best of the ``n_init`` restarts).

    Attributes:
        params: fitted :class:`GMMParams`.
        history: ``(max_iter,)`` weighted mean log-likelihood before each M-step (scikit-learn's
            ``lower_bounds_``), NaN after ``n_iter``.
        n_iter: ``()`` number of EM iterations run.
        converged: ``()`` whether the change of the mean log-likelihood fell below ``tol``.
    """

    params: GMMParams
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array


class _State(NamedTuple):
    """EM state: means are kept as ``delta = mean − shift`` around FIXED reference points."""

    weights: jax.Array
    delta: jax.Array
    covariances: jax.Array
    prec_chol: jax.Array
    shift: jax.Array
    reg_covar: jax.Array


class _Stats(NamedTuple):
    moments: MomentStats
    loglik: jax.Array      # Σ w log p(x)
    wsum: jax.Array        # Σ w


def covariance_type(params: GMMParams) -> str:
    """The covariance type of ``params`` ("full", "tied", "diag" or "spherical"), read from
    the shapes (static: usable inside jit)."""
    return gauss.covariance_type_of(params.covariances, params.means.shape[0])


# --------------------------------------------------------------------------------------------
# EM model


def _log_joint(state: _State, X: jax.Array, ctype: str) -> tuple[jax.Array, jax.Array]:
    """``(K, B)`` log π_k + log N(x_b | μ_k, Σ_k) and the ``(K, B, D)`` shifted rows."""
    dx = X[None, :, :] - state.shift[:, None, :]
    logp = gauss.log_gaussian(dx, state.delta, state.prec_chol, ctype)
    return logp + jnp.log(state.weights)[:, None], dx


def _responsibilities(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Softmax over components ``(K, B)`` and the log normaliser ``(B,)``; rows whose every
    component underflows get zero responsibilities (their weight decides whether they count)."""
    norm = jax.nn.logsumexp(logits, axis=0)
    ok = jnp.isfinite(norm)
    resp = jnp.where(ok[None, :], jnp.exp(logits - jnp.where(ok, norm, 0.0)[None, :]), 0.0)
    return resp, norm


def _m_step_from_moments(moments: MomentStats, shift: jax.Array, reg_covar: jax.Array,
                         ctype: str) -> _State:
    raw = moments.nk
    safe = jnp.where(raw > 0, raw, 1.0)
    delta = jnp.where((raw > 0)[:, None], moments.sx / safe[:, None], 0.0)
    scatter = centred_moments(moments, shift).scatter
    nk = raw + 10.0 * jnp.finfo(raw.dtype).eps
    cov = gauss.regularise(scatter, nk, reg_covar, ctype)
    cov, prec_chol = gauss.precision_cholesky(cov, ctype)
    return _State(weights=nk / jnp.sum(nk), delta=delta, covariances=cov, prec_chol=prec_chol,
                  shift=shift, reg_covar=reg_covar)


@functools.cache
def em_model(ctype: str) -> em.EMModel:
    """The mixture's :class:`~espresso_jax.em.EMModel` for covariance type ``ctype`` (one per
    type, cached: no recompiles). Shared by :func:`fit` and the stepwise fitter of
    :mod:`espresso_jax.mixture.gmm_online`."""
    diagonal = ctype in ("diag", "spherical")

    def e_step(state: _State, X: jax.Array, w: jax.Array) -> _Stats:
        logits, _ = _log_joint(state, X, ctype)
        resp, norm = _responsibilities(logits)
        moments = moment_stats(X, w, resp.T, state.shift, diagonal=diagonal)
        loglik = jnp.sum(jnp.where(w > 0, w * norm, 0.0))
        return _Stats(moments=moments, loglik=loglik, wsum=jnp.sum(w))

    def m_step(state: _State, stats: _Stats) -> _State:
        return _m_step_from_moments(stats.moments, state.shift, state.reg_covar, ctype)

    def objective(old: _State, new: _State, stats: _Stats) -> jax.Array:
        return stats.loglik / stats.wsum

    return em.EMModel(e_step=e_step, m_step=m_step, objective=objective)


# --------------------------------------------------------------------------------------------
# Initialisation


class _Overrides(NamedTuple):
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


def _init_state(key, X, w, Xp, wp, reg_covar, over: _Overrides, *, n_components: int,
                ctype: str, init: str, chunk_size) -> _State:
    """Initial EM state for one restart (X, w unpadded for k-means; Xp, wp padded)."""
    dtype = X.dtype
    need_resp = over.weights is None or over.means is None or (
        over.covariances is None and over.precisions is None)
    weights = means = cov = prec_chol = None
    if need_resp:
        if init == "random":
            shift = jnp.broadcast_to(data_moments(X, w, diagonal=True).means,
                                     (n_components, X.shape[1]))

            def resp_fn(Xb, rows):
                u = jax.vmap(lambda r: jax.random.uniform(jax.random.fold_in(key, r),
                                                          (n_components,), dtype))(rows)
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
        s = _m_step_from_moments(moments, shift, reg_covar, ctype)
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
    return _State(weights=weights, delta=jnp.zeros_like(means), covariances=cov,
                  prec_chol=prec_chol, shift=means, reg_covar=reg_covar)


@functools.partial(jax.jit, static_argnames=("n_components", "ctype", "init"))
def initial_em_state(key: jax.Array, X: jax.Array, w: jax.Array, reg_covar: jax.Array, *,
                     n_components: int, ctype: str, init: str):
    """The EM state one restart of :func:`fit` starts from (no user overrides, no padding).

    Args:
        key: PRNG key of the initialisation.
        X: ``(n_samples, n_features)`` data; w: ``(n_samples,)`` sample weights.
        reg_covar: added to the covariance diagonals.
        n_components, ctype, init: as :func:`fit`'s ``n_components``, ``covariance_type``
            and ``init``.
    """
    none = _Overrides(None, None, None, None)
    return _init_state(key, X, w, X, w, reg_covar, none, n_components=n_components,
                       ctype=ctype, init=init, chunk_size=None)


@functools.partial(jax.jit, static_argnames=("n_components", "ctype", "init", "n_init",
                                             "max_iter", "chunk_size"))
def _fit_impl(key, X, w, tol, reg_covar, over: _Overrides, *, n_components: int, ctype: str,
              init: str, n_init: int, max_iter: int, chunk_size) -> GMMResult:
    Xp, wp = em.pad_rows(X, w, chunk_size)
    init_one = functools.partial(_init_state, X=X, w=w, Xp=Xp, wp=wp, reg_covar=reg_covar,
                                 over=over, n_components=n_components, ctype=ctype, init=init,
                                 chunk_size=chunk_size)
    model = em_model(ctype)

    def run(state):
        return em.fit_em(model, state, Xp, wp, tol=tol, max_iter=max_iter,
                         chunk_size=chunk_size)

    if n_init == 1:              # not vmapped: data-dependent branches stay branches
        best = run(init_one(key))
    else:
        states = jax.vmap(lambda k: init_one(k))(jax.random.split(key, n_init))
        best = em.select_best(jax.vmap(run)(states))
    s = best.params
    params = GMMParams(weights=s.weights, means=s.shift + s.delta, covariances=s.covariances,
                       precisions_cholesky=s.prec_chol)
    return GMMResult(params=params, history=best.history, n_iter=best.n_iter,
                     converged=best.converged)


# --------------------------------------------------------------------------------------------
# Host-side validation


def _check_pd(mats: np.ndarray, name: str) -> None:
    try:
        np.linalg.cholesky(np.asarray(mats, dtype=np.float64))
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be symmetric positive definite") from None
    if not np.allclose(mats, np.swapaxes(mats, -1, -2), rtol=1e-5, atol=1e-8):
        raise ValueError(f"{name} must be symmetric")


def _as_covariance_layout(x: Any, name: str, ctype: str, k: int, d: int) -> jax.Array:
    """Validate a covariance- or precision-shaped argument (tied also accepted as (D, D))."""
    want = gauss.covariance_shape(ctype, k, d)
    arr = as_float_array(x, name, ndim=len(want) if ctype != "tied" else (2, 3))
    if ctype == "tied" and arr.ndim == 2:
        arr = arr[None]
    if tuple(arr.shape) != want:
        raise ValueError(f"{name} must have shape {want} for covariance_type={ctype!r}, "
                         f"got {tuple(arr.shape)}")
    if not is_traced(arr):
        a = np.asarray(arr)
        if ctype in ("full", "tied"):
            _check_pd(a, name)
        elif (a <= 0).any():
            raise ValueError(f"{name} must be positive for covariance_type={ctype!r}")
    return arr


def _check_weights(x: Any, name: str, k: int) -> jax.Array:
    wts = as_float_array(x, name, ndim=1, shape_hint="(n_components,)")
    if wts.shape != (k,):
        raise ValueError(f"{name} must have shape ({k},), got {tuple(wts.shape)}")
    if not is_traced(wts):
        a = np.asarray(wts, dtype=np.float64)
        if (a < 0).any() or (a > 1).any():
            raise ValueError(f"{name} must lie in [0, 1], got range [{a.min()}, {a.max()}]")
        if abs(a.sum() - 1.0) > 1e-5:
            raise ValueError(f"{name} must sum to 1, got {a.sum()}")
    return wts / jnp.sum(wts)


def _check_means(x: Any, name: str, k: int, d: int) -> jax.Array:
    means = as_float_array(x, name, ndim=2, shape_hint="(n_components, n_features)")
    if means.shape != (k, d):
        raise ValueError(f"{name} must have shape ({k}, {d}), got {tuple(means.shape)}")
    return means


def _check_params(params: Any, name: str = "params") -> GMMParams:
    """Validate fitted/explicit parameters (shapes consistent, finite)."""
    if not all(hasattr(params, f) for f in GMMParams._fields):
        raise TypeError(f"{name} must be a GMMParams, got {type(params).__name__}")
    means = as_float_array(params.means, f"{name}.means", ndim=2,
                           shape_hint="(n_components, n_features)")
    k, d = means.shape
    weights = as_float_array(params.weights, f"{name}.weights", ndim=1)
    if weights.shape != (k,):
        raise ValueError(f"{name}.weights must have shape ({k},), got {tuple(weights.shape)}")
    cov = as_float_array(params.covariances, f"{name}.covariances", ndim=(1, 2, 3))
    ctype = gauss.covariance_type_of(cov, k)
    if tuple(cov.shape) != gauss.covariance_shape(ctype, k, d):
        raise ValueError(f"{name}.covariances has shape {tuple(cov.shape)}, inconsistent with "
                         f"means of shape {(k, d)}")
    prec = as_float_array(params.precisions_cholesky, f"{name}.precisions_cholesky",
                          ndim=cov.ndim)
    if prec.shape != cov.shape:
        raise ValueError(f"{name}.precisions_cholesky must have the shape of the covariances "
                         f"{tuple(cov.shape)}, got {tuple(prec.shape)}")
    return GMMParams(weights, means, cov, prec)


def check_X(X: Any, n_features: int | None = None) -> jax.Array:
    """``X`` as a ``(n_samples, n_features)`` float array, rejected on the host (``ValueError``
    naming ``X``) if it is not 2-D, not finite, or has other than ``n_features`` columns."""
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features but the mixture has {n_features}")
    return X


def _check_chunk(chunk_size: Any) -> int | None:
    return None if chunk_size is None else check_int(chunk_size, "chunk_size", min_value=1)


# --------------------------------------------------------------------------------------------
# Public API


def fit(key: jax.Array, X: ArrayLike, n_components: int, *, covariance_type: str = "full",
        n_init: int = 1, max_iter: int = 100, tol: float = 1e-3, reg_covar: float = 1e-6,
        init: str = "kmeans++", weights_init: ArrayLike | None = None,
        means_init: ArrayLike | None = None, precisions_init: ArrayLike | None = None,
        init_params: GMMParams | None = None, sample_weight: ArrayLike | None = None,
        chunk_size: int | str | None = "auto") -> GMMResult:
    """Fit a Gaussian mixture by EM (maximum likelihood), best of ``n_init`` vmapped restarts.

    Args:
        key: PRNG key (initialisation; split over restarts).
        X: ``(n_samples, n_features)`` data; may be sharded over rows (data-parallel EM).
        n_components: ``K`` (at most ``n_samples``).
        covariance_type: "full", "tied", "diag" or "spherical".
        n_init: number of restarts (vmapped; the highest final log-likelihood wins); restart
            ``i`` uses ``jax.random.split(key, n_init)[i]`` (``key`` itself when ``n_init=1``).
            With a fully explicit initialisation all restarts are the same, so one is run.
        max_iter: maximum EM iterations (also the length of ``history``).
        tol: stop when the mean log-likelihood changes by less than ``tol`` (0: run max_iter).
        reg_covar: ``> 0`` added to the diagonal of every covariance.
        init: "kmeans++" (default), "kmeans" or "random" (see the module docstring).
        weights_init: ``(K,)`` initial weights (override the ``init`` result).
        means_init: ``(K, D)`` initial means.
        precisions_init: initial precision matrices ``Σ⁻¹``: ``(K, D, D)`` full, ``(D, D)`` or
            ``(1, D, D)`` tied, ``(K, D)`` diag, ``(K,)`` spherical.
        init_params: a complete :class:`GMMParams` to start from (its covariances are used;
            excludes the three ``*_init`` arguments).
        sample_weight: ``(n_samples,)`` non-negative row weights (integer weights are the same
            as repeated rows).
        chunk_size: rows per E-step block (memory O(chunk_size · K · D)); ``None``: all rows;
            ``"auto"``: cache-sized blocks on CPU, one block on accelerators
            (:func:`espresso_jax.em.resolve_chunk_size`).

    Returns:
        :class:`GMMResult`.

    Raises:
        ValueError / TypeError: invalid input (checked on the host before any compilation).
    """
    check_key(key)
    X = check_X(X)
    n, d = X.shape
    k = check_int(n_components, "n_components", min_value=1)
    if k > n:
        raise ValueError(f"n_components={k} must be <= n_samples={n}")
    ctype = check_choice(covariance_type, "covariance_type", gauss.COVARIANCE_TYPES)
    init = check_choice(init, "init", INITS)
    n_init = check_int(n_init, "n_init", min_value=1)
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol", allow_zero=True)
    reg_covar = check_positive(reg_covar, "reg_covar")
    # The largest E-step temporary is the (K, B, D) block of rows in component frames, once
    # per vmapped restart.
    chunk_size = em.resolve_chunk_size(chunk_size, n, n_init * k * d * X.dtype.itemsize)
    w = as_sample_weight(sample_weight, n)

    if init_params is not None:
        if any(a is not None for a in (weights_init, means_init, precisions_init)):
            raise ValueError("give either init_params or weights_init/means_init/"
                             "precisions_init, not both")
        p = _check_params(init_params, "init_params")
        if p.means.shape != (k, d):
            raise ValueError(f"init_params.means must have shape ({k}, {d}), got "
                             f"{tuple(p.means.shape)}")
        given = gauss.covariance_type_of(p.covariances, k)
        if given != ctype and not (k == 1 and {given, ctype} <= {"full", "tied"}):
            raise ValueError(f"init_params has {given!r} covariances but "
                             f"covariance_type={ctype!r}")
        over = _Overrides(_check_weights(p.weights, "init_params.weights", k), p.means,
                          _as_covariance_layout(p.covariances, "init_params.covariances",
                                                ctype, k, d), None)
    else:
        over = _Overrides(
            None if weights_init is None else _check_weights(weights_init, "weights_init", k),
            None if means_init is None else _check_means(means_init, "means_init", k, d),
            None,
            None if precisions_init is None else _as_covariance_layout(
                precisions_init, "precisions_init", ctype, k, d))
    explicit = over.weights is not None and over.means is not None and (
        over.covariances is not None or over.precisions is not None)
    dtype = X.dtype
    over = jax.tree.map(lambda a: a.astype(dtype), over)
    return _fit_impl(key, X, w.astype(dtype), jnp.asarray(tol, dtype),
                     jnp.asarray(reg_covar, dtype), over, n_components=k, ctype=ctype,
                     init=init, n_init=1 if explicit else n_init, max_iter=max_iter,
                     chunk_size=chunk_size)


def _params_state(params: GMMParams) -> _State:
    """Evaluation state: reference points at the means (``delta = 0``)."""
    return _State(weights=params.weights, delta=jnp.zeros_like(params.means),
                  covariances=params.covariances, prec_chol=params.precisions_cholesky,
                  shift=params.means, reg_covar=jnp.zeros((), params.means.dtype))


@functools.partial(jax.jit, static_argnames=("chunk_size", "what"))
def _eval_impl(params: GMMParams, X: jax.Array, chunk_size, what: str) -> jax.Array:
    """Per-row quantities in blocks of ``chunk_size`` rows: "score" ``(N,)`` log p(x),
    "proba" ``(N, K)`` responsibilities."""
    ctype = covariance_type(params)
    state = _params_state(params)

    def block(Xb):
        logits, _ = _log_joint(state, Xb, ctype)
        resp, norm = _responsibilities(logits)
        return norm if what == "score" else resp.T

    n = X.shape[0]
    if chunk_size is None or chunk_size >= n:
        return block(X)
    Xp, _ = em.pad_rows(X, jnp.ones((n,), X.dtype), chunk_size)
    out = lax.map(block, Xp.reshape((-1, chunk_size, X.shape[1])))
    return out.reshape((-1,) + out.shape[2:])[:n]


def _prepare(params: Any, X: Any, chunk_size: Any) -> tuple[GMMParams, jax.Array, int | None]:
    params = _check_params(params)
    X = check_X(X, params.means.shape[1])
    return params, X, _check_chunk(chunk_size)


def score_samples(params: GMMParams, X: ArrayLike, *, chunk_size: int | None = None
                  ) -> jax.Array:
    """Log-density ``log p(x_n) = logsumexp_k (log π_k + log N(x_n | μ_k, Σ_k))``.

    Args:
        params: :class:`GMMParams`.
        X: ``(n_samples, n_features)``.
        chunk_size: rows per block (bounds memory at O(chunk_size · K · D)).

    Returns:
        ``(n_samples,)`` log-densities.
    """
    params, X, chunk_size = _prepare(params, X, chunk_size)
    return _eval_impl(params, X, chunk_size, "score")


def predict_proba(params: GMMParams, X: ArrayLike, *, chunk_size: int | None = None
                  ) -> jax.Array:
    """Responsibilities ``p(k | x_n)``: ``(n_samples, n_components)``, rows sum to 1."""
    params, X, chunk_size = _prepare(params, X, chunk_size)
    return _eval_impl(params, X, chunk_size, "proba")


def predict(params: GMMParams, X: ArrayLike, *, chunk_size: int | None = None) -> jax.Array:
    """Most probable component of each row: ``(n_samples,)`` int32."""
    return jnp.argmax(predict_proba(params, X, chunk_size=chunk_size), axis=1).astype(jnp.int32)


def score(params: GMMParams, X: ArrayLike, *, sample_weight: ArrayLike | None = None,
          chunk_size: int | None = None) -> jax.Array:
    """(Weighted) mean log-likelihood per row (scikit-learn's ``score``): ``()``."""
    logp = score_samples(params, X, chunk_size=chunk_size)
    w = as_sample_weight(sample_weight, logp.shape[0]).astype(logp.dtype)
    return jnp.sum(w * logp) / jnp.sum(w)


def n_parameters(params: GMMParams) -> int:
    """Number of free parameters: ``K − 1`` weights, ``K·D`` means, and the covariances."""
    k, d = params.means.shape
    return gauss.n_covariance_parameters(covariance_type(params), k, d) + k * d + k - 1


def bic(params: GMMParams, X: ArrayLike, *, chunk_size: int | None = None) -> jax.Array:
    """Bayesian information criterion ``−2 log L + p log N`` (lower is better)."""
    logp = score_samples(params, X, chunk_size=chunk_size)
    n = logp.shape[0]
    return -2.0 * jnp.sum(logp) + n_parameters(params) * float(np.log(n))


def aic(params: GMMParams, X: ArrayLike, *, chunk_size: int | None = None) -> jax.Array:
    """Akaike information criterion ``−2 log L + 2 p`` (lower is better)."""
    logp = score_samples(params, X, chunk_size=chunk_size)
    return -2.0 * jnp.sum(logp) + 2.0 * n_parameters(params)


@functools.partial(jax.jit, static_argnames=("n",))
def _sample_impl(key, params: GMMParams, n: int) -> tuple[jax.Array, jax.Array]:
    ctype = covariance_type(params)
    dtype = params.means.dtype
    k_lab, k_z = jax.random.split(key)
    labels = jax.random.categorical(k_lab, jnp.log(params.weights), shape=(n,))
    z = jax.random.normal(k_z, (n, params.means.shape[1]), dtype)
    cov = params.covariances
    if ctype == "full":
        x = jnp.einsum("nij,nj->ni", jnp.linalg.cholesky(cov)[labels], z,
                       precision=lax.Precision.HIGHEST)
    elif ctype == "tied":
        x = jnp.matmul(z, jnp.linalg.cholesky(cov[0]).T, precision=lax.Precision.HIGHEST)
    elif ctype == "diag":
        x = z * jnp.sqrt(cov)[labels]
    else:
        x = z * jnp.sqrt(cov)[labels][:, None]
    return params.means[labels] + x, labels.astype(jnp.int32)


def sample(key: jax.Array, params: GMMParams, n_samples: int) -> tuple[jax.Array, jax.Array]:
    """Draw ``n_samples`` points from the mixture.

    Args:
        key: PRNG key.
        params: :class:`GMMParams`.
        n_samples: number of draws.

    Returns:
        ``X (n_samples, n_features)`` and the component labels ``(n_samples,)`` int32 (in draw
        order, not
        sorted by component as scikit-learn's ``sample``).
    """
    check_key(key)
    params = _check_params(params)
    return _sample_impl(key, params, check_int(n_samples, "n_samples", min_value=1))
