"""Variational Bayesian Gaussian mixture (PRML §10.2) with Dirichlet or Dirichlet-process
weights.

Model: ``π ~ Dir(α₀/…)`` (``weight_prior="dirichlet_distribution"``, symmetric, each
concentration α₀) or truncated stick-breaking ``v_k ~ Beta(1, α₀)``,
``π_k = v_k Π_{j<k}(1 − v_j)`` (``"dirichlet_process"``, Blei & Jordan 2006); component
``(μ_k, Λ_k) ~ N(μ | m₀, (β₀Λ)⁻¹) W(Λ | W₀, ν₀)``; ``x_n | z_n = k ~ N(μ_k, Λ_k⁻¹)``.
The mean-field posterior ``q(Z) q(π) Π_k q(μ_k, Λ_k)`` is fitted by variational EM through the
shared engine (:func:`espresso_jax.em.fit_em`): the E-step turns the expected log-densities into
responsibilities and additive shifted moment statistics
(:func:`espresso_jax.prob.moments.moment_stats`, plus ``Σ w r ln r``), the M-step updates the
posterior hyper-parameters, and the objective is the lower bound after the update.

It is the same model, with the same defaults, as scikit-learn's ``BayesianGaussianMixture``:
α₀ = 1/K, β₀ = 1, ν₀ = D, m₀ = the (weighted) data mean, W₀⁻¹ = the (weighted, ddof = 1) data
covariance (its diagonal for ``"diag"``, the mean variance for ``"spherical"``). The history is
scikit-learn's ``lower_bounds_`` (constants dropped, a total over the data, not a mean — so
``tol`` has the same meaning as there); :func:`elbo_offset` gives the constant that turns it into
the full ELBO. All four covariance types are implemented as scikit-learn does them; the
parameters always hold ``(K, D, D)`` matrices.

Example::

    res = vbgmm.fit(jax.random.key(0), X, 10, weight_prior="dirichlet_process",
                    weight_concentration=1e-3)
    expected_weights(res.params), predict(res.params, X), score_samples(res.params, X)

References:
    Bishop, *Pattern Recognition and Machine Learning* (2006), §10.2; Attias (2000), "A
    variational Bayesian framework for graphical models"; Blei & Jordan (2006), "Variational
    inference for Dirichlet process mixtures", Bayesian Analysis 1(1).
"""

from __future__ import annotations

import functools
from functools import partial
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from espresso_jax import em
from espresso_jax.mixture import vb_terms
from espresso_jax.mixture.vb_terms import VBGMMParams, VBGMMPrior
from espresso_jax.prob.moments import MomentStats, centred_moments, data_moments, moment_stats
from espresso_jax.scaling import check_regulariser, checked_exponent
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
    "VBGMMParams",
    "VBGMMPrior",
    "VBGMMResult",
    "active_components",
    "elbo_offset",
    "expected_weights",
    "fit",
    "predict",
    "predict_proba",
    "score_samples",
]

WEIGHT_PRIORS = ("dirichlet_process", "dirichlet_distribution")
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INITS = ("kmeans", "random")


class VBGMMResult(NamedTuple):
    """Result of :func:`fit` (the best of ``n_init`` restarts by final lower bound).

    Attributes:
        params: :class:`VBGMMParams`, the variational posterior hyper-parameters.
        history: ``(max_iter,)`` lower bound after every iteration (scikit-learn's
            ``lower_bounds_``), NaN after ``n_iter``.
        n_iter: ``()`` iterations run.
        converged: ``()`` the bound changed by less than ``tol``.
        prior: :class:`VBGMMPrior` actually used (defaults filled in).
    """

    params: VBGMMParams
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    prior: VBGMMPrior


class _State(NamedTuple):
    """Internal EM state: posterior, prior, the fixed statistics frame, reg_covar."""

    post: VBGMMParams
    prior: VBGMMPrior
    shift: jax.Array
    reg_covar: jax.Array


class _Stats(NamedTuple):
    moments: MomentStats
    sum_r_log_r: jax.Array


def _e_step(state: _State, X: jax.Array, w: jax.Array, *, diagonal: bool) -> _Stats:
    log_prob = vb_terms.weighted_log_prob(state.post, X, state.shift)
    log_resp = log_prob - jax.nn.logsumexp(log_prob, axis=1, keepdims=True)
    r = jnp.exp(log_resp)
    r_log_r = jnp.where(r > 0, r * log_resp, 0.0)
    return _Stats(moment_stats(X, w, r, state.shift, diagonal=diagonal),
                  jnp.sum(w * jnp.sum(r_log_r, axis=1)))


def _m_step(state: _State, stats: _Stats, *, weight_prior: str, covariance_type: str) -> _State:
    cm = centred_moments(stats.moments, state.shift)
    post = vb_terms.update(state.prior, cm, state.reg_covar, weight_prior=weight_prior,
                           covariance_type=covariance_type)
    return state._replace(post=post)


def _objective(old: _State, new: _State, stats: _Stats) -> jax.Array:
    return vb_terms.lower_bound(new.post, stats.sum_r_log_r)


@functools.cache
def _model(weight_prior: str, covariance_type: str) -> em.EMModel:
    """One EMModel per static configuration (so a second fit reuses the compiled loop)."""
    diagonal = covariance_type in ("diag", "spherical")
    return em.EMModel(
        e_step=partial(_e_step, diagonal=diagonal),
        m_step=partial(_m_step, weight_prior=weight_prior, covariance_type=covariance_type),
        objective=_objective)


@jax.jit
def _data_moments(X: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Weighted mean and (ddof = 1 in the total weight) covariance of the rows."""
    cm = data_moments(X, w)
    total = cm.nk[0]
    denom = jnp.where(total > 1.0, total - 1.0, total)
    return cm.means[0], cm.scatter[0] / denom


@partial(jax.jit, static_argnames=("model",))
def _initial_states(model: em.EMModel, X, w, resp, prior: VBGMMPrior, reg_covar) -> _State:
    """``(R, N, K)`` initial responsibilities → ``R`` initial states (one M-step each, as
    scikit-learn's ``_initialize``); the statistics frame is then fixed at the initial means."""
    K = resp.shape[-1]
    mean0 = jnp.broadcast_to(prior.mean, (K, X.shape[1]))

    def one(r):
        # the M-step reads only prior, shift and reg_covar: no posterior exists yet
        s0 = _State(post=cast(VBGMMParams, None), prior=prior, shift=mean0, reg_covar=reg_covar)
        r = r / jnp.sum(r, axis=1, keepdims=True)
        stats = _Stats(moment_stats(X, w, r, mean0, diagonal=False), jnp.zeros((), X.dtype))
        post = model.m_step(s0, stats).post
        return _State(post=post, prior=prior, shift=post.means, reg_covar=reg_covar)

    return jax.vmap(one)(resp)


@partial(jax.jit, static_argnames=("n_samples", "n_components", "dtype"))
def _random_resp(keys, n_samples: int, n_components: int, dtype):
    """``(R, N, K)`` uniform responsibilities normalised per row, one draw per key."""
    # drawn in float32 whatever the dtype: float32 and float64 data start alike
    r = jax.vmap(lambda k: jax.random.uniform(k, (n_samples, n_components), jnp.float32))(keys)
    return (r / jnp.sum(r, axis=2, keepdims=True)).astype(dtype)


@partial(jax.jit, static_argnames=("n_components",))
def _kmeans_resp(keys, X, w, n_components: int) -> jax.Array:
    """``(R, N, K)`` one-hot k-means labels, one vmapped k-means fit per key (scikit-learn's
    ``init_params="kmeans"``)."""
    from espresso_jax.mixture import kmeans  # imported lazily: a sibling module

    def one(k):
        res = kmeans.fit(k, X, n_components, sample_weight=w)
        return jax.nn.one_hot(kmeans.predict(res.params, X), n_components, dtype=X.dtype)

    return jax.vmap(one)(keys)


def _check_resp(resp: Any, n: int, K: int) -> jax.Array:
    r = as_float_array(resp, "init", ndim=2, shape_hint="(n_samples, n_components)")
    if tuple(r.shape) != (n, K):
        raise ValueError(f"init responsibilities must have shape ({n}, {K}) "
                         f"(n_samples, n_components), got {tuple(r.shape)}")
    if not is_traced(r):
        rn = np.asarray(r)
        if (rn < 0).any() or (rn.sum(1) <= 0).any():
            raise ValueError("init responsibilities must be non-negative with positive row sums")
    return r[None]


def _make_prior(X, w, K, covariance_type, weight_concentration, mean_precision, mean_prior,
                degrees_of_freedom, covariance_prior) -> VBGMMPrior:
    """Validate the prior hyper-parameters and fill in scikit-learn's defaults."""
    D = X.shape[1]
    dtype = X.dtype
    a0 = 1.0 / K if weight_concentration is None else check_positive(
        weight_concentration, "weight_concentration")
    b0 = 1.0 if mean_precision is None else check_positive(mean_precision, "mean_precision")
    nu0 = float(D) if degrees_of_freedom is None else check_positive(
        degrees_of_freedom, "degrees_of_freedom")
    if nu0 <= D - 1:
        raise ValueError(f"degrees_of_freedom must be > n_features - 1 = {D - 1}, got {nu0}")
    data_mean, data_cov = _data_moments(X, w)
    if mean_prior is None:
        m0 = data_mean
    else:
        m0 = as_float_array(mean_prior, "mean_prior", ndim=1, shape_hint="(n_features,)")
        if m0.shape[0] != D:
            raise ValueError(f"mean_prior must have shape ({D},), got {tuple(m0.shape)}")
    if covariance_prior is None:
        var = jnp.diagonal(data_cov)
        psi = {"full": data_cov, "tied": data_cov, "diag": jnp.diag(var),
               "spherical": jnp.mean(var) * jnp.eye(D, dtype=dtype)}[covariance_type]
    elif covariance_type in ("full", "tied"):
        psi = as_float_array(covariance_prior, "covariance_prior", ndim=2,
                             shape_hint="(n_features, n_features)")
        if tuple(psi.shape) != (D, D):
            raise ValueError(f"covariance_prior must have shape ({D}, {D}) for "
                             f"covariance_type={covariance_type!r}, got {tuple(psi.shape)}")
        pn = np.asarray(psi, np.float64)
        if not np.allclose(pn, pn.T, rtol=1e-5, atol=1e-8 * np.abs(pn).max()) or \
                np.linalg.eigvalsh(0.5 * (pn + pn.T)).min() <= 0:
            raise ValueError("covariance_prior must be symmetric positive definite")
        psi = 0.5 * (psi + psi.T)
    elif covariance_type == "diag":
        psi = as_float_array(covariance_prior, "covariance_prior", ndim=1,
                             shape_hint="(n_features,)")
        if psi.shape[0] != D or float(jnp.min(psi)) <= 0:
            raise ValueError(f"covariance_prior must be {D} positive variances for "
                             f"covariance_type='diag', got {np.asarray(psi)}")
        psi = jnp.diag(psi)
    else:
        psi = check_positive(covariance_prior, "covariance_prior") * jnp.eye(D, dtype=dtype)
    return VBGMMPrior(weight_concentration=jnp.asarray(a0, dtype),
                      mean_precision=jnp.asarray(b0, dtype), mean=m0.astype(dtype),
                      degrees_of_freedom=jnp.asarray(nu0, dtype), covariance=psi.astype(dtype))


def fit(key: jax.Array, X: ArrayLike, n_components: int, *,
        weight_prior: str = "dirichlet_process", weight_concentration: float | None = None,
        mean_precision: float | None = None, mean_prior: ArrayLike | None = None,
        degrees_of_freedom: float | None = None, covariance_prior: ArrayLike | None = None,
        covariance_type: str = "full", init: str | ArrayLike = "kmeans", n_init: int = 1,
        max_iter: int = 100, tol: float = 1e-3, reg_covar: float = 1e-6,
        sample_weight: ArrayLike | None = None,
        chunk_size: int | str | None = "auto") -> VBGMMResult:
    """Fit a variational Bayesian Gaussian mixture by variational EM.

    Args:
        key: PRNG key (random / k-means initialisations): restart ``i`` uses
            ``jax.random.split(key, n_init)[i]`` (``key`` itself when ``n_init=1``), as
            :func:`espresso_jax.mixture.gmm.fit`.
        X: ``(n_samples, n_features)`` data.
        n_components: ``K``, the number of components (truncation level for the DP).
        weight_prior: ``"dirichlet_process"`` (stick-breaking) or ``"dirichlet_distribution"``.
        weight_concentration: α₀ (default ``1/K``).
        mean_precision: β₀ (default 1).
        mean_prior: ``(n_features,)`` m₀ (default: the weighted data mean).
        degrees_of_freedom: ν₀ > D − 1 (default D).
        covariance_prior: W₀⁻¹: ``(D, D)`` for full/tied, ``(D,)`` for diag, a scalar for
            spherical (default: the weighted data covariance / variances / mean variance).
        covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
        init: ``"kmeans"`` (one-hot k-means labels), ``"random"`` (uniform responsibilities,
            normalised per row, as scikit-learn's ``"random"``), or an
            ``(n_samples, n_components)`` array of initial responsibilities (``n_init`` is then
            ignored).
        n_init: restarts, run as a ``vmap``; the best final lower bound is kept.
        max_iter: maximum number of variational EM iterations.
        tol: stop when the lower bound (a total, as scikit-learn's) changes by less than this.
        reg_covar: > 0, added to the diagonal of every component covariance estimate, in the
            units of ``X`` (at most the variance of ``X``).
        sample_weight: ``(n_samples,)`` non-negative row weights (integer weights equal
            repeated rows).
        chunk_size: rows per E-step block (memory O(chunk_size · K · D)); ``None``: all rows;
            ``"auto"``: cache-sized blocks on CPU, one block on accelerators
            (:func:`espresso_jax.em.resolve_chunk_size`).

    Returns:
        :class:`VBGMMResult`.

    Raises:
        ValueError / TypeError: invalid input, before anything is compiled, including ``X``
            whose squared spread its dtype cannot hold (float32: beyond about ``1e±17``;
            rescale ``X`` or enable float64) and ``reg_covar`` above the variance of ``X``.

    References:
        Bishop, PRML (2006), §10.2; Blei & Jordan (2006).
    """
    check_key(key)
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    n = X.shape[0]
    K = check_int(n_components, "n_components", min_value=1)
    if n < K:
        raise ValueError(f"n_components={K} must be <= n_samples={n}")
    weight_prior = check_choice(weight_prior, "weight_prior", WEIGHT_PRIORS)
    covariance_type = check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    n_init = check_int(n_init, "n_init", min_value=1)
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol", allow_zero=True)
    reg = check_positive(reg_covar, "reg_covar")
    # The largest E-step temporary is the (K, B, D) block of rows in component frames, once
    # per vmapped restart.
    chunk_size = em.resolve_chunk_size(chunk_size, n,
                                       n_init * K * X.shape[1] * X.dtype.itemsize)
    w = as_sample_weight(sample_weight, n).astype(X.dtype)
    check_regulariser(reg, checked_exponent(X, "X", w=w, what="the fitted covariances"),
                      "reg_covar")
    if isinstance(init, str):
        check_choice(init, "init", INITS)
    else:
        resp0 = _check_resp(init, n, K)
    prior = _make_prior(X, w, K, covariance_type, weight_concentration, mean_precision,
                        mean_prior, degrees_of_freedom, covariance_prior)
    if isinstance(init, str):
        keys = key[None] if n_init == 1 else jax.random.split(key, n_init)
        resp0 = (_random_resp(keys, n, K, np.dtype(X.dtype)) if init == "random"
                 else _kmeans_resp(keys, X, w, K))
    model = _model(weight_prior, covariance_type)
    reg_covar_arr = jnp.asarray(reg, X.dtype)
    states = _initial_states(model, X, w, resp0, prior, reg_covar_arr)
    run = partial(em.fit_em, model, X=X, w=w, tol=tol, max_iter=max_iter,
                  chunk_size=chunk_size)
    if resp0.shape[0] == 1:   # no restarts: skip the batched program (cheaper to compile)
        best = run(jax.tree.map(lambda a: a[0], states))
    else:
        best = _select_best(jax.vmap(run)(states))
    return VBGMMResult(params=best.params.post, prior=prior, history=best.history,
                       n_iter=best.n_iter, converged=best.converged)


_select_best = jax.jit(em.select_best)


def _check_params(params: Any) -> VBGMMParams:
    if not isinstance(params, VBGMMParams):
        raise TypeError(f"params must be a VBGMMParams (fit(...).params), got "
                        f"{type(params).__name__}")
    return params


def _check_X(params: VBGMMParams, X: ArrayLike) -> jax.Array:
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    D = params.means.shape[1]
    if X.shape[1] != D:
        raise ValueError(f"X must have {D} features (as the fitted params), got {X.shape[1]}")
    return X.astype(params.means.dtype)


@jax.jit
def _log_resp(params: VBGMMParams, X: jax.Array) -> jax.Array:
    log_prob = vb_terms.weighted_log_prob(params, X, params.means)
    return log_prob - jax.nn.logsumexp(log_prob, axis=1, keepdims=True)


def predict_proba(params: VBGMMParams, X: ArrayLike) -> jax.Array:
    """``(n_samples, K)`` responsibilities ``q(z_n = k)`` of new rows under the fitted
    posterior (the E-step; scikit-learn's ``predict_proba``)."""
    params = _check_params(params)
    return jnp.exp(_log_resp(params, _check_X(params, X)))


def predict(params: VBGMMParams, X: ArrayLike) -> jax.Array:
    """``(n_samples,)`` int32 most responsible component."""
    params = _check_params(params)
    return jnp.argmax(_log_resp(params, _check_X(params, X)), axis=1).astype(jnp.int32)


_predictive = jax.jit(vb_terms.predictive_log_density)


def score_samples(params: VBGMMParams, X: ArrayLike) -> jax.Array:
    """``(n_samples,)`` log posterior-predictive density ``ln p(x | data)``, the Student-t
    mixture of PRML 10.81 with weights :func:`expected_weights` (a normalised density; unlike
    scikit-learn's ``score_samples``, which is the log-sum-exp of the E-step's expected
    log-joint, a lower bound that is not a density).

    References:
        Bishop, PRML (2006), eqs. 10.81–10.82.
    """
    params = _check_params(params)
    return _predictive(params, _check_X(params, X))


def expected_weights(params: VBGMMParams) -> jax.Array:
    """``(K,)`` posterior mean mixing weights ``E_q[π_k]`` (stick-breaking for the DP,
    renormalised over the truncation as scikit-learn's ``weights_``)."""
    return vb_terms.expected_weights(_check_params(params).weight_concentration)


def active_components(params: VBGMMParams, threshold: float = 1e-2) -> jax.Array:
    """``(K,)`` bool, components whose expected weight exceeds ``threshold`` (``.sum()`` is
    the effective number of components)."""
    threshold = check_positive(threshold, "threshold")
    return expected_weights(params) > threshold


def elbo_offset(result: VBGMMResult, total_weight: float) -> jax.Array:
    """The constant with ``full ELBO = result.history[i] + elbo_offset(result, N)`` for the
    ``"full"`` covariance type (``N`` = the sum of the sample weights, ``n_samples`` without
    weights). See :func:`espresso_jax.mixture.vb_terms.elbo_offset`."""
    total_weight = check_positive(total_weight, "total_weight")
    wc = result.params.weight_concentration
    weight_prior = "dirichlet_process" if wc.ndim == 2 else "dirichlet_distribution"
    return _elbo_offset(result.prior, wc.shape[-1], weight_prior,
                        jnp.asarray(total_weight, wc.dtype))


_elbo_offset = jax.jit(vb_terms.elbo_offset, static_argnums=(1, 2))
