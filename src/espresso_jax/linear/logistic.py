"""Bayesian logistic regression with the Laplace approximation (PRML §4.3–4.5): fit and predict.

Model: ``p(y = 1 | φ, w) = σ(wᵀφ)`` with a Gaussian prior ``w ~ N(m₀, S₀)`` (by default
``N(0, α⁻¹I)``). :func:`fit_laplace` finds the posterior mode ``w_MAP`` by Newton's method
(iteratively reweighted least squares, PRML §4.3.3) in one jitted loop on
:func:`espresso_jax.em.iterate` and returns the Laplace approximation ``q(w) = N(w_MAP, S_N)``
with ``S_N⁻¹ = XᵀRX + S₀⁻¹`` (PRML 4.143). Predictions use the probit approximation of the
predictive distribution (PRML 4.153–4.155) or Monte Carlo over ``q(w)``; they take
``result.params`` (a :class:`LaplaceParams`).

This is the entry point to the family; it re-exports the parts that live next to it:
:mod:`~espresso_jax.linear.logistic_inputs` (input checks, :func:`gaussian_prior`),
:mod:`~espresso_jax.linear.logistic_laplace` (Newton/IRLS and the Laplace approximation at the
mode, :class:`LaplaceParams`) and :mod:`~espresso_jax.linear.logistic_evidence`
(:func:`fit_evidence`, which re-estimates ``α`` from the Laplace evidence, PRML §4.4.1, 4.137;
MacKay 1992).

References:
    C. M. Bishop, *Pattern Recognition and Machine Learning* (PRML), §4.3.2–4.3.3, §4.4, §4.5.
    MacKay, D. J. C., "The evidence framework applied to classification networks", Neural
    Computation 4(5), 1992.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from espresso_jax import validation as V
from espresso_jax.linear.logistic_evidence import EvidenceResult, fit_evidence
from espresso_jax.linear.logistic_inputs import (
    GaussianPrior,
    check_design,
    check_labels,
    check_tolerance,
    gaussian_prior,
)
from espresso_jax.linear.logistic_laplace import LaplaceParams, laplace_at, newton_irls
from espresso_jax.scaling import row_exponents

__all__ = [
    "GaussianPrior",
    "LaplaceParams",
    "LaplaceResult",
    "EvidenceResult",
    "check_design",
    "check_labels",
    "gaussian_prior",
    "fit_laplace",
    "fit_evidence",
    "predictive_activation",
    "predict_proba",
    "predict_proba_mc",
]


class LaplaceResult(NamedTuple):
    """Result of :func:`fit_laplace`.

    Attributes:
        params: :class:`LaplaceParams`.
        history: ``(max_iter,)`` log joint ``ln p(y | w) + ln N(w | m₀, S₀)`` (up to the
            prior's normalising constant) at the iterate entering each Newton step, NaN after
            ``n_iter``.
        n_iter: ``()`` Newton iterations run.
        converged: ``()`` whether the relative Newton step fell below ``tol``.
        prior: the :class:`GaussianPrior` used.
        log_evidence: ``()`` Laplace approximation of ``ln p(y | X)`` (PRML 4.137).
    """

    params: LaplaceParams
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    prior: GaussianPrior
    log_evidence: jax.Array


# ---------------------------------------------------------------------------------------------
# Fit
# ---------------------------------------------------------------------------------------------

@partial(jax.jit, static_argnames=("max_iter",))
def _fit_impl(X, y, prior, tol, *, max_iter: int):
    run = newton_irls(X, y, prior, prior.mean, tol, max_iter)
    w, f, _ = run.params
    cov, log_ev = laplace_at(w, f, X, y, prior)
    return LaplaceResult(params=LaplaceParams(w, cov), history=run.history, n_iter=run.n_iter,
                         converged=run.converged & jnp.isfinite(log_ev), prior=prior,
                         log_evidence=log_ev)


def fit_laplace(
    X: ArrayLike,
    y: ArrayLike,
    *,
    alpha: float | None = None,
    prior_mean: ArrayLike | None = None,
    prior_precision: ArrayLike | None = None,
    tol: float = 1e-6,
    max_iter: int = 100,
) -> LaplaceResult:
    """Laplace approximation of the Bayesian logistic-regression posterior.

    Newton/IRLS from the prior mean with a backtracking line search (the objective is strictly
    convex, so the damped iteration always converges), Hessian ``XᵀRX + S₀⁻¹`` solved by
    Cholesky. Stops when ``max|Δw| ≤ tol · (1 + max|w|)``; convergence is quadratic, so the
    returned mode is accurate to about ``tol²`` (float rounding permitting).

    Args:
        X: ``(n_samples, n_features)`` design matrix, rows ``phi(x_n)``
            (include a bias column yourself).
        y: ``(n_samples,)`` labels in {0, 1}.
        alpha: isotropic prior precision (prior ``N(0, α⁻¹I)``); 1.0 by default.
        prior_mean: ``(n_features,)`` prior mean, zeros by default.
        prior_precision: scalar, ``(n_features,)`` or ``(n_features, n_features)`` prior
            precision, instead of ``alpha``.
        tol: relative step tolerance of the Newton iteration.
        max_iter: maximum Newton iterations (static: the length of ``history``).

    Returns:
        :class:`LaplaceResult` (``params.mean`` = ``w_MAP``, ``params.cov`` = ``S_N``,
        ``log_evidence``).

    References:
        PRML §4.3.3 (IRLS), §4.4 (Laplace approximation, 4.137), §4.5.1 (4.142–4.143).
    """
    X = check_design(X)
    y = check_labels(y)
    V.check_same_length(X=X, y=y)
    prior = gaussian_prior(X.shape[1], alpha=alpha, prior_mean=prior_mean,
                           prior_precision=prior_precision)
    tol, max_iter = check_tolerance(tol, max_iter)
    return _fit_impl(X, y, prior, tol, max_iter=max_iter)


# ---------------------------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------------------------

def _check_params(params: Any) -> tuple[jax.Array, jax.Array]:
    if not isinstance(params, LaplaceParams):
        raise TypeError(f"params must be a LaplaceParams (fit_laplace(...).params), got "
                        f"{type(params).__name__}")
    mean = V.as_float_array(params.mean, "params.mean", ndim=1, shape_hint="(n_features,)")
    cov = V.as_float_array(params.cov, "params.cov", ndim=2,
                           shape_hint="(n_features, n_features)")
    if cov.shape != (mean.shape[0], mean.shape[0]):
        raise ValueError(f"params.cov must be ({mean.shape[0]}, {mean.shape[0]}), got "
                         f"{cov.shape}")
    return mean, cov


def _check_new(X_new: Any, n_features: int) -> jax.Array:
    return V.as_float_array(X_new, "X_new", ndim=2, shape_hint="(n_new, n_features)",
                            n_columns=n_features)


@jax.jit
def _activation_impl(mean, cov, X_new):
    mu = X_new @ mean
    var = jnp.sum((X_new @ cov) * X_new, axis=1)
    return mu, jnp.clip(var, 0.0, None)


# The predictives evaluate each row x as 2**e · x' with max |x'| in [0.5, 1) (exact): the
# activation's mean and variance grow like |x| and |x|² and leave float32's range (x ~ 1e20)
# long before the probability stops being defined, and inf·0 would give NaN.
@jax.jit
def _map_impl(mean, X_new):
    e = row_exponents(X_new)
    return jax.nn.sigmoid(jnp.ldexp(jnp.ldexp(X_new, -e[:, None]) @ mean, e))


@jax.jit
def _probit_impl(mean, cov, X_new):
    # κμ = μ / sqrt(1 + πσ²/8) (PRML 4.154–4.155) = μ' / hypot(2**-e, sqrt(πσ'²/8)) with
    # μ = 2**e μ', σ² = 4**e σ'²: no intermediate overflows or underflows.
    e = row_exponents(X_new)
    mu, var = _activation_impl(mean, cov, jnp.ldexp(X_new, -e[:, None]))
    one = jnp.ones((), X_new.dtype)
    z = mu / jnp.hypot(jnp.ldexp(one, -e), jnp.sqrt((math.pi / 8) * var))
    return jax.nn.sigmoid(z)


@jax.jit(static_argnames=("n_samples",))
def _mc_impl(key, mean, cov, X_new, n_samples):
    # Square root by eigh, not Cholesky: a user-supplied cov may be singular (e.g. zero).
    lam, U = jnp.linalg.eigh(0.5 * (cov + cov.T))
    L = U * jnp.sqrt(jnp.clip(lam, 0.0, None))[None, :]

    def one(k):
        w = mean + L @ jax.random.normal(k, mean.shape, mean.dtype)
        return jax.nn.sigmoid(X_new @ w)

    return jnp.mean(jax.vmap(one)(jax.random.split(key, n_samples)), axis=0)


def predictive_activation(params: LaplaceParams, X_new: ArrayLike
                          ) -> tuple[jax.Array, jax.Array]:
    """Mean and variance of the activation ``a = wᵀφ`` under ``q(w)`` (PRML 4.149–4.150).

    Args:
        params: :class:`LaplaceParams` (``fit_laplace(...).params`` or
            ``fit_evidence(...).params``).
        X_new: ``(n_new, n_features)`` design matrix of the new inputs.

    Returns:
        ``mu_a (n_new,)``, ``var_a (n_new,)``.
    """
    mean, cov = _check_params(params)
    X_new = _check_new(X_new, mean.shape[0])
    return _activation_impl(mean, cov, X_new)


def predict_proba(params: LaplaceParams, X_new: ArrayLike, *,
                  method: str = "probit") -> jax.Array:
    """Predictive ``p(y = 1 | φ, data)`` under the Laplace posterior.

    Args:
        params: :class:`LaplaceParams` (``fit_laplace(...).params`` or
            ``fit_evidence(...).params``).
        X_new: ``(n_new, n_features)`` design matrix of the new inputs.
        method: ``"probit"`` — ``σ(κ(σ²_a) μ_a)`` with ``κ = (1 + πσ²_a/8)^{-1/2}``
            (PRML 4.153–4.155); ``"map"`` — the plug-in ``σ(w_MAPᵀφ)`` (ignores uncertainty).

    Returns:
        ``(n_new,)`` probabilities.

    References:
        PRML §4.5.2; D. J. Spiegelhalter and S. L. Lauritzen (1990); MacKay (1992).
    """
    V.check_choice(method, "method", ("probit", "map"))
    mean, cov = _check_params(params)
    X_new = _check_new(X_new, mean.shape[0])
    if method == "map":
        return _map_impl(mean, X_new)
    return _probit_impl(mean, cov, X_new)


def predict_proba_mc(
    key: jax.Array, params: LaplaceParams, X_new: ArrayLike, *, n_samples: int = 1000
) -> jax.Array:
    """Monte Carlo predictive ``(1/S) Σ_s σ(w_sᵀφ)``, ``w_s ~ N(mean, cov)`` (vmapped draws).

    Args:
        key: PRNG key.
        params: :class:`LaplaceParams` (``fit_laplace(...).params`` or
            ``fit_evidence(...).params``).
        X_new: ``(n_new, n_features)`` design matrix of the new inputs.
        n_samples: number of weight draws ``S``; the standard error per point is at most
            ``0.5 / sqrt(S)``.

    Returns:
        ``(n_new,)`` probabilities.

    References:
        PRML §4.5.2 (4.145), §11.1.
    """
    key = V.check_key(key)
    n_samples = V.check_int(n_samples, "n_samples", min_value=1)
    mean, cov = _check_params(params)
    X_new = _check_new(X_new, mean.shape[0])
    return _mc_impl(key, mean, cov, X_new, n_samples)
