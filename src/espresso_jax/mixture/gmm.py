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

Scale: the fit runs on ``X / 2**e`` with ``2**e`` the power of two nearest to the RMS spread
of ``X`` (:func:`espresso_jax.scaling.spread_exponent`; ``e = 0`` for data of unit order) and
maps the parameters back; dividing by a power of two is exact, so data scaled by ``c`` fit to
the same labels with means times ``c``, covariances times ``c²`` and the mean log-likelihood
shifted by ``−D log c`` (exactly when ``c`` is a power of two). ``reg_covar`` keeps
scikit-learn's meaning, a variance in the units of ``X`` (it is divided by ``4**e`` in the
fitted frame). Data whose squared spread leaves the range of their dtype (float32: spread
beyond about ``1e±17``), and a ``reg_covar`` larger than the data's variance, are rejected
with a ``ValueError`` that says what to do.

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

This module holds the fit, the evaluation (densities, responsibilities, information criteria)
and sampling. :class:`GMMParams` and the host-side input checks live in
:mod:`espresso_jax.mixture.gmm_params`, the EM model and the initial state of a restart in
:mod:`espresso_jax.mixture.gmm_em`; the names listed in ``__all__`` are re-exported here.

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
from espresso_jax.mixture.gmm_em import (
    GMMState,
    InitOverrides,
    em_model,
    init_state,
    initial_em_state,
    log_joint,
    responsibilities,
)
from espresso_jax.mixture.gmm_params import (
    GMMParams,
    as_covariance_layout,
    check_means,
    check_params,
    check_weights,
    check_X,
    covariance_type,
)
from espresso_jax.scaling import check_regulariser, checked_exponent, pow2
from espresso_jax.validation import (
    as_sample_weight,
    check_choice,
    check_int,
    check_key,
    check_positive,
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


# --------------------------------------------------------------------------------------------
# Fitting


@functools.partial(jax.jit, static_argnames=("n_components", "ctype", "init", "n_init",
                                             "max_iter", "chunk_size"))
def _fit_impl(key, X, w, tol, reg_covar, over: InitOverrides, e, *, n_components: int,
              ctype: str, init: str, n_init: int, max_iter: int, chunk_size) -> GMMResult:
    # EM runs on X / 2**e (exact): means, covariances and precisions are mapped back exactly,
    # the mean log-likelihood is shifted by -D·e·log 2; reg_covar arrives in that frame.
    dtype = X.dtype
    s, inv = pow2(e, dtype), pow2(-e, dtype)
    X = X * inv
    over = InitOverrides(
        over.weights, None if over.means is None else over.means * inv,
        None if over.covariances is None else over.covariances * (inv * inv),
        None if over.precisions is None else over.precisions * (s * s))
    Xp, wp = em.pad_rows(X, w, chunk_size)
    init_one = functools.partial(init_state, X=X, w=w, Xp=Xp, wp=wp, reg_covar=reg_covar,
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
    st = best.params
    params = GMMParams(weights=st.weights, means=(st.shift + st.delta) * s,
                       covariances=st.covariances * (s * s), precisions_cholesky=st.prec_chol * inv)
    shift = X.shape[1] * e.astype(dtype) * jnp.asarray(np.log(2.0), dtype)
    return GMMResult(params=params, history=best.history - shift, n_iter=best.n_iter,
                     converged=best.converged)


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
        reg_covar: ``> 0`` added to the diagonal of every covariance, in the units of ``X``
            (at most the variance of ``X``).
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
        ValueError / TypeError: invalid input (checked on the host before any compilation),
            including ``X`` whose squared spread its dtype cannot hold (rescale ``X`` or
            enable float64) and ``reg_covar`` above the variance of ``X``.
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
    e = checked_exponent(X, "X", w=w, what="the fitted covariances")
    check_regulariser(reg_covar, e, "reg_covar")
    if isinstance(e, int):
        reg_frame: Any = reg_covar * 4.0 ** -e
    else:
        reg_frame = reg_covar * pow2(-2 * e, X.dtype)

    if init_params is not None:
        if any(a is not None for a in (weights_init, means_init, precisions_init)):
            raise ValueError("give either init_params or weights_init/means_init/"
                             "precisions_init, not both")
        p = check_params(init_params, "init_params")
        if p.means.shape != (k, d):
            raise ValueError(f"init_params.means must have shape ({k}, {d}), got "
                             f"{tuple(p.means.shape)}")
        given = gauss.covariance_type_of(p.covariances, k)
        if given != ctype and not (k == 1 and {given, ctype} <= {"full", "tied"}):
            raise ValueError(f"init_params has {given!r} covariances but "
                             f"covariance_type={ctype!r}")
        over = InitOverrides(check_weights(p.weights, "init_params.weights", k), p.means,
                             as_covariance_layout(p.covariances, "init_params.covariances",
                                                  ctype, k, d), None)
    else:
        over = InitOverrides(
            None if weights_init is None else check_weights(weights_init, "weights_init", k),
            None if means_init is None else check_means(means_init, "means_init", k, d),
            None,
            None if precisions_init is None else as_covariance_layout(
                precisions_init, "precisions_init", ctype, k, d))
    explicit = over.weights is not None and over.means is not None and (
        over.covariances is not None or over.precisions is not None)
    dtype = X.dtype
    over = jax.tree.map(lambda a: a.astype(dtype), over)
    return _fit_impl(key, X, w.astype(dtype), jnp.asarray(tol, dtype),
                     jnp.asarray(reg_frame, dtype), over, jnp.asarray(e, jnp.int32),
                     n_components=k, ctype=ctype,
                     init=init, n_init=1 if explicit else n_init, max_iter=max_iter,
                     chunk_size=chunk_size)


# --------------------------------------------------------------------------------------------
# Evaluation and sampling


def _params_state(params: GMMParams) -> GMMState:
    """Evaluation state: reference points at the means (``delta = 0``)."""
    return GMMState(weights=params.weights, delta=jnp.zeros_like(params.means),
                    covariances=params.covariances, prec_chol=params.precisions_cholesky,
                    shift=params.means, reg_covar=jnp.zeros((), params.means.dtype))


@functools.partial(jax.jit, static_argnames=("chunk_size", "what"))
def _eval_impl(params: GMMParams, X: jax.Array, chunk_size, what: str) -> jax.Array:
    """Per-row quantities in blocks of ``chunk_size`` rows: "score" ``(N,)`` log p(x),
    "proba" ``(N, K)`` responsibilities."""
    ctype = covariance_type(params)
    state = _params_state(params)

    def block(Xb):
        logits, _ = log_joint(state, Xb, ctype)
        resp, norm = responsibilities(logits)
        return norm if what == "score" else resp.T

    n = X.shape[0]
    if chunk_size is None or chunk_size >= n:
        return block(X)
    Xp, _ = em.pad_rows(X, jnp.ones((n,), X.dtype), chunk_size)
    out = lax.map(block, Xp.reshape((-1, chunk_size, X.shape[1])))
    return out.reshape((-1,) + out.shape[2:])[:n]


def _check_chunk(chunk_size: Any) -> int | None:
    return None if chunk_size is None else check_int(chunk_size, "chunk_size", min_value=1)


def _prepare(params: Any, X: Any, chunk_size: Any) -> tuple[GMMParams, jax.Array, int | None]:
    params = check_params(params)
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
    params = check_params(params)
    return _sample_impl(key, params, check_int(n_samples, "n_samples", min_value=1))
