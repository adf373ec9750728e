"""Bayesian logistic regression with the Laplace approximation (PRML §4.3–4.5).

Model: ``p(t = 1 | φ, w) = σ(wᵀφ)`` with a Gaussian prior ``w ~ N(m₀, S₀)`` (by default
``N(0, α⁻¹I)``). The posterior mode ``w_MAP`` is found by Newton's method (iteratively
reweighted least squares, PRML §4.3.3) in one jitted ``lax.while_loop``; the Laplace
approximation is ``q(w) = N(w_MAP, S_N)`` with ``S_N⁻¹ = ΦᵀRΦ + S₀⁻¹`` (PRML 4.143).
Predictions use the probit approximation of the predictive distribution (PRML 4.153–4.155) or
Monte Carlo over ``q(w)``. :func:`fit_evidence` re-estimates ``α`` from the Laplace evidence
(PRML §4.4.1, 4.137; MacKay 1992). Both loops run on :func:`espresso_jax.em.iterate` and record
a ``history``; the prediction functions take ``result.params`` (a :class:`LaplaceParams`).

References:
    C. M. Bishop, *Pattern Recognition and Machine Learning* (PRML), §4.3.2–4.3.3, §4.4, §4.5.
    D. J. C. MacKay, "The evidence framework applied to classification networks", Neural
    Computation 4(5), 1992.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from espresso_jax import em
from espresso_jax import validation as V
from espresso_jax.prob.linalg import cholesky_with_jitter

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

_ARMIJO = 1e-4          # sufficient-decrease constant of the backtracking line search
_MAX_HALVINGS = 40      # step halvings before the line search gives up


class GaussianPrior(NamedTuple):
    """Gaussian prior ``N(mean, precision⁻¹)`` on the weights.

    Attributes:
        mean: ``(n_features,)`` prior mean ``m₀``.
        precision: ``(n_features, n_features)`` prior precision ``S₀⁻¹``.
    """

    mean: jax.Array
    precision: jax.Array


class LaplaceParams(NamedTuple):
    """Laplace approximation ``q(w) = N(mean, cov)`` of the logistic-regression posterior
    (what the prediction functions take).

    Attributes:
        mean: ``(n_features,)`` posterior mode ``w_MAP``.
        cov: ``(n_features, n_features)`` ``S_N = (ΦᵀRΦ + S₀⁻¹)⁻¹`` at ``w_MAP``.
    """

    mean: jax.Array
    cov: jax.Array


class LaplaceResult(NamedTuple):
    """Result of :func:`fit_laplace`.

    Attributes:
        params: :class:`LaplaceParams`.
        history: ``(max_iter,)`` log joint ``ln p(t | w) + ln N(w | m₀, S₀)`` (up to the
            prior's normalising constant) at the iterate entering each Newton step, NaN after
            ``n_iter``.
        n_iter: ``()`` Newton iterations run.
        converged: ``()`` whether the relative Newton step fell below ``tol``.
        prior: the :class:`GaussianPrior` used.
        log_evidence: ``()`` Laplace approximation of ``ln p(t | Φ)`` (PRML 4.137).
    """

    params: LaplaceParams
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    prior: GaussianPrior
    log_evidence: jax.Array


class EvidenceResult(NamedTuple):
    """Laplace fit with the prior precision ``α`` re-estimated by evidence maximisation (the
    fields of :class:`espresso_jax.linear.bayes.EvidenceResult`, plus ``alpha``).

    Attributes:
        params: :class:`LaplaceParams`, the Laplace posterior at the final ``α``.
        history: ``(max_iter,)`` Laplace log evidence at the ``α`` entering each
            re-estimation, NaN after ``n_iter``.
        n_iter: ``()`` re-estimation iterations run.
        converged: ``()`` whether ``|Δ ln α|`` fell below ``tol`` (and the last Newton fit
            converged).
        gamma: ``()`` effective number of well-determined parameters ``Σ λᵢ/(α + λᵢ)``.
        log_evidence: ``()`` Laplace log evidence at the final ``α``.
        alpha: ``()`` re-estimated prior precision.
    """

    params: LaplaceParams
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    gamma: jax.Array
    log_evidence: jax.Array
    alpha: jax.Array


# ---------------------------------------------------------------------------------------------
# Host-side validation (shared with espresso_jax.fully_bayes.logistic)
# ---------------------------------------------------------------------------------------------

def check_design(Phi: Any, name: str = "Phi") -> jax.Array:
    """Validate a design matrix ``(n_samples, n_features)`` and return it in the working dtype."""
    return V.as_float_array(Phi, name, ndim=2, shape_hint="(n_samples, n_features)")


def check_labels(t: Any, name: str = "t") -> jax.Array:
    """Validate binary labels ``(n_samples,)`` holding only 0 and 1 (bools accepted).

    Returns:
        ``(n_samples,)`` labels as floats of the working dtype.

    Raises:
        TypeError: non-numeric labels.
        ValueError: wrong rank, NaN/inf, or a value other than 0 and 1.
    """
    t = V.as_float_array(t, name, ndim=1, shape_hint="(n_samples,)")
    if not V.is_traced(t):
        values = np.asarray(t)
        bad = (values != 0) & (values != 1)
        if bad.any():
            raise ValueError(f"{name} must hold binary labels 0 and 1 only, got "
                             f"{np.unique(values[bad])[:5].tolist()}")
    return t


def gaussian_prior(
    n_features: int,
    *,
    alpha: float | None = None,
    prior_mean: ArrayLike | None = None,
    prior_precision: ArrayLike | None = None,
) -> GaussianPrior:
    """Build and validate the Gaussian weight prior.

    Args:
        n_features: number of weights ``D``.
        alpha: isotropic prior precision, prior ``N(0, α⁻¹I)``; 1.0 when neither ``alpha`` nor
            ``prior_precision`` is given.
        prior_mean: ``(D,)`` prior mean (zeros by default).
        prior_precision: scalar, ``(D,)`` diagonal or ``(D, D)`` symmetric positive-definite
            prior precision. Exclusive with ``alpha``.

    Returns:
        :class:`GaussianPrior` with a full ``(D, D)`` precision.
    """
    n_features = V.check_int(n_features, "n_features", min_value=1)
    dtype = V.float_dtype()
    if alpha is not None and prior_precision is not None:
        raise TypeError("give either alpha or prior_precision, not both")
    if prior_mean is None:
        mean = jnp.zeros(n_features, dtype)
    else:
        mean = V.as_float_array(prior_mean, "prior_mean", ndim=1, shape_hint="(n_features,)")
        if mean.shape[0] != n_features:
            raise ValueError(f"prior_mean must have length n_features={n_features}, "
                             f"got {mean.shape[0]}")
    if prior_precision is None:
        a = V.check_positive(1.0 if alpha is None else alpha, "alpha")
        return GaussianPrior(mean, a * jnp.eye(n_features, dtype=dtype))
    prec = V.as_float_array(prior_precision, "prior_precision", ndim=(0, 1, 2),
                            shape_hint="(), (n_features,) or (n_features, n_features)")
    if prec.ndim == 2 and prec.shape != (n_features, n_features):
        raise ValueError(f"prior_precision must be ({n_features}, {n_features}), "
                         f"got {prec.shape}")
    if prec.ndim == 1 and prec.shape[0] != n_features:
        raise ValueError(f"prior_precision must have length n_features={n_features}, "
                         f"got {prec.shape[0]}")
    if not V.is_traced(prec):
        p = np.asarray(prec)
        if p.ndim < 2 and (p <= 0).any():
            raise ValueError("prior_precision must be > 0")
        if p.ndim == 2:
            if not np.allclose(p, p.T, rtol=1e-5, atol=1e-8 * np.abs(p).max()):
                raise ValueError("prior_precision must be symmetric")
            if np.linalg.eigvalsh(0.5 * (p + p.T)).min() <= 0:
                raise ValueError("prior_precision must be positive definite")
    if prec.ndim == 0:
        prec = prec * jnp.eye(n_features, dtype=prec.dtype)
    elif prec.ndim == 1:
        prec = jnp.diag(prec)
    return GaussianPrior(mean, 0.5 * (prec + prec.T))


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


def _check_new(Phi_new: Any, n_features: int) -> jax.Array:
    return V.as_float_array(Phi_new, "Phi_new", ndim=2, shape_hint="(n_new, n_features)",
                            n_columns=n_features)


def _check_tol(tol: float, max_iter: int, prefix: str = "") -> tuple[float, int]:
    return (V.check_positive(tol, f"{prefix}tol"),
            V.check_int(max_iter, f"{prefix}max_iter", min_value=1))


# ---------------------------------------------------------------------------------------------
# Jitted numerics
# ---------------------------------------------------------------------------------------------

def _log_lik_one(a: jax.Array, t: jax.Array) -> jax.Array:
    """``ln p(t | a) = t ln σ(a) + (1 − t) ln σ(−a)`` for one example (stable for any ``a``)."""
    return t * jax.nn.log_sigmoid(a) + (1 - t) * jax.nn.log_sigmoid(-a)


def _neg_log_joint(w: jax.Array, Phi: jax.Array, t: jax.Array, prior: GaussianPrior):
    """``−ln p(t | w) − ln N(w | m₀, S₀)`` up to the prior's normalising constant."""
    a = Phi @ w
    d = w - prior.mean
    return -jnp.sum(jax.vmap(_log_lik_one)(a, t)) + 0.5 * (d @ (prior.precision @ d))


def _cholesky(H: jax.Array) -> jax.Array:
    """Cholesky factor of an SPD Hessian or precision (jittered only where it fails)."""
    return cholesky_with_jitter(H)[0]


def _grad_hessian(w, Phi, t, prior):
    """Gradient and Hessian of the negative log joint (PRML 4.96–4.97 plus the prior)."""
    a = Phi @ w
    y = jax.nn.sigmoid(a)
    r = y * jax.nn.sigmoid(-a)                  # σ(a)(1 − σ(a)) without cancellation
    g = Phi.T @ (y - t) + prior.precision @ (w - prior.mean)
    H = (Phi.T * r[None, :]) @ Phi + prior.precision
    return g, 0.5 * (H + H.T)


def _newton(Phi, t, prior, w0, tol, max_iter: int) -> em.EMResult:
    """Damped Newton (IRLS) for ``w_MAP`` on :func:`espresso_jax.em.iterate`, backtracking on
    the step. Returns the engine's result with ``params = (w, f, ok)``, ``f`` the negative log
    joint at ``w`` and ``ok`` False when no finite point was found along a step (then
    ``converged`` is False)."""
    dtype = Phi.dtype
    eps = jnp.finfo(dtype).eps
    tol = jnp.asarray(tol, dtype)

    def objective(w):
        return _neg_log_joint(w, Phi, t, prior)

    def step(state):
        w, f, ok_in = state
        g, H = _grad_hessian(w, Phi, t, prior)
        L = _cholesky(H)
        d = -jax.scipy.linalg.cho_solve((L, True), g)
        slope = g @ d                           # ≤ 0: d is a descent direction
        slack = 16 * eps * (jnp.abs(f) + 1)     # objective differences below rounding

        def ls_cond(c):
            s, f_new, k = c
            accept = f_new <= f + _ARMIJO * s * slope + slack   # False for NaN f_new
            return ~accept & (k < _MAX_HALVINGS)

        def ls_body(c):
            s, _, k = c
            s = 0.5 * s
            return s, objective(w + s * d), k + 1

        one = jnp.asarray(1.0, dtype)
        s, f_new, _ = lax.while_loop(ls_cond, ls_body, (one, objective(w + d), 0))
        delta = s * d
        w_new = w + delta
        ok = ok_in & jnp.isfinite(f_new)        # no finite point along d: stop, not converged
        w_new = jnp.where(ok, w_new, w)
        f_new = jnp.where(ok, f_new, f)
        done = jnp.max(jnp.abs(delta)) <= tol * (1 + jnp.max(jnp.abs(w_new)))
        return (w_new, f_new, ok), -f, (done & ok) | ~ok

    f0 = objective(w0)
    run = em.iterate(step, (w0, f0, jnp.isfinite(f0)), max_iter=max_iter, dtype=dtype)
    return run._replace(converged=run.converged & run.params[2])


def _laplace_at(w, f, Phi, t, prior):
    """Covariance and Laplace log evidence (PRML 4.137) at the mode ``w``."""
    _, H = _grad_hessian(w, Phi, t, prior)
    L = _cholesky(H)
    eye = jnp.eye(w.shape[0], dtype=w.dtype)
    cov = jax.scipy.linalg.cho_solve((L, True), eye)
    cov = 0.5 * (cov + cov.T)
    logdet_h = 2 * jnp.sum(jnp.log(jnp.diag(L)))
    logdet_p = 2 * jnp.sum(jnp.log(jnp.diag(_cholesky(prior.precision))))
    # ln p(t|w) + ln N(w|m0,S0) + (D/2) ln 2π − ½ ln|H|; the 2π terms cancel.
    log_ev = -f + 0.5 * logdet_p - 0.5 * logdet_h
    return cov, log_ev


@partial(jax.jit, static_argnames=("max_iter",))
def _fit_impl(Phi, t, prior, tol, *, max_iter: int):
    run = _newton(Phi, t, prior, prior.mean, tol, max_iter)
    w, f, _ = run.params
    cov, log_ev = _laplace_at(w, f, Phi, t, prior)
    return LaplaceResult(params=LaplaceParams(w, cov), history=run.history, n_iter=run.n_iter,
                         converged=run.converged, prior=prior, log_evidence=log_ev)


def _alpha_update(w, cov, alpha, Phi):
    """Fixed-point update of α at a stationary point of the Laplace evidence (PRML 4.137).

    With ``H = αI + ΦᵀRΦ``, ``S = H⁻¹`` and ``dw_MAP/dα = −S w`` (implicit function theorem),

        d ln p(t|α) / dα = ½ [γ/α − wᵀw + c],   γ = Σᵢ λᵢ/(α + λᵢ) = D − α tr S,
        c = Σ_n r'_n (φ_nᵀ S w)(φ_nᵀ S φ_n),     r' = dr/da = σ(a)σ(−a)(1 − 2σ(a)),

    so a stationary point satisfies ``α = γ / (wᵀw − c)``. MacKay's update (PRML 3.92 with
    the Laplace Hessian) drops ``c``, i.e. the change of ``R`` with ``w_MAP``; keeping it makes
    the fixed point an exact stationary point of the Laplace evidence.
    """
    dtype = Phi.dtype
    tiny = jnp.finfo(dtype).tiny
    a = Phi @ w
    y = jax.nn.sigmoid(a)
    r = y * jax.nn.sigmoid(-a)
    lam = jnp.clip(jnp.linalg.eigvalsh((Phi.T * r[None, :]) @ Phi), 0.0, None)
    gamma = jnp.sum(lam / (alpha + lam))
    r_prime = r * (1 - 2 * y)
    leverage = jnp.sum((Phi @ cov) * Phi, axis=1)          # φ_nᵀ S φ_n
    c = jnp.sum(r_prime * (Phi @ (cov @ w)) * leverage)
    denom = w @ w - c
    # denom ≤ 0 means the evidence still increases with α: step α up by a factor 10.
    alpha_new = jnp.where(denom > 0, gamma / jnp.maximum(denom, tiny), 10 * alpha)
    return jnp.clip(alpha_new, tiny, 1 / tiny), gamma


@partial(jax.jit, static_argnames=("max_iter", "newton_max_iter"))
def _evidence_impl(Phi, t, alpha0, tol, newton_tol, *, max_iter: int, newton_max_iter: int):
    dtype = Phi.dtype
    D = Phi.shape[1]
    eye = jnp.eye(D, dtype=dtype)
    zero = jnp.zeros(D, dtype)
    tol = jnp.asarray(tol, dtype)

    def laplace(alpha, w0):
        """Warm-started Newton fit at α and its Laplace covariance / evidence."""
        prior = GaussianPrior(zero, alpha * eye)
        run = _newton(Phi, t, prior, w0, newton_tol, newton_max_iter)
        w, f, _ = run.params
        cov, log_ev = _laplace_at(w, f, Phi, t, prior)
        return w, cov, log_ev, run.converged

    def step(state):
        alpha, w = state
        w, cov, log_ev, _ = laplace(alpha, w)
        alpha_new, _ = _alpha_update(w, cov, alpha, Phi)
        done = jnp.abs(jnp.log(alpha_new) - jnp.log(alpha)) <= tol
        return (alpha_new, w), log_ev, done

    run = em.iterate(step, (jnp.asarray(alpha0, dtype), zero), max_iter=max_iter, dtype=dtype)
    alpha, w = run.params
    # Final Laplace fit at the returned α, so mean, cov, γ and evidence are consistent.
    w, cov, log_ev, ok = laplace(alpha, w)
    _, gamma = _alpha_update(w, cov, alpha, Phi)
    return EvidenceResult(params=LaplaceParams(w, cov), history=run.history, n_iter=run.n_iter,
                          converged=run.converged & ok, gamma=gamma, log_evidence=log_ev,
                          alpha=alpha)


@jax.jit
def _activation_impl(mean, cov, Phi_new):
    mu = Phi_new @ mean
    var = jnp.sum((Phi_new @ cov) * Phi_new, axis=1)
    return mu, jnp.clip(var, 0.0, None)


@jax.jit
def _map_impl(mean, Phi_new):
    return jax.nn.sigmoid(Phi_new @ mean)


@jax.jit
def _probit_impl(mean, cov, Phi_new):
    mu, var = _activation_impl(mean, cov, Phi_new)
    kappa = lax.rsqrt(1 + (math.pi / 8) * var)          # PRML 4.154
    return jax.nn.sigmoid(kappa * mu)                     # PRML 4.155


@jax.jit(static_argnames=("n_samples",))
def _mc_impl(key, mean, cov, Phi_new, n_samples):
    # Square root by eigh, not Cholesky: a user-supplied cov may be singular (e.g. zero).
    lam, U = jnp.linalg.eigh(0.5 * (cov + cov.T))
    L = U * jnp.sqrt(jnp.clip(lam, 0.0, None))[None, :]

    def one(k):
        w = mean + L @ jax.random.normal(k, mean.shape, mean.dtype)
        return jax.nn.sigmoid(Phi_new @ w)

    return jnp.mean(jax.vmap(one)(jax.random.split(key, n_samples)), axis=0)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------

def fit_laplace(
    Phi: ArrayLike,
    t: ArrayLike,
    *,
    alpha: float | None = None,
    prior_mean: ArrayLike | None = None,
    prior_precision: ArrayLike | None = None,
    tol: float = 1e-6,
    max_iter: int = 100,
) -> LaplaceResult:
    """Laplace approximation of the Bayesian logistic-regression posterior.

    Newton/IRLS from the prior mean with a backtracking line search (the objective is strictly
    convex, so the damped iteration always converges), Hessian ``ΦᵀRΦ + S₀⁻¹`` solved by
    Cholesky. Stops when ``max|Δw| ≤ tol · (1 + max|w|)``; convergence is quadratic, so the
    returned mode is accurate to about ``tol²`` (float rounding permitting).

    Args:
        Phi: ``(n_samples, n_features)`` design matrix (include a bias column yourself).
        t: ``(n_samples,)`` labels in {0, 1}.
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
    Phi = check_design(Phi)
    t = check_labels(t)
    V.check_same_length(Phi=Phi, t=t)
    prior = gaussian_prior(Phi.shape[1], alpha=alpha, prior_mean=prior_mean,
                           prior_precision=prior_precision)
    tol, max_iter = _check_tol(tol, max_iter)
    return _fit_impl(Phi, t, prior, tol, max_iter=max_iter)


def fit_evidence(
    Phi: ArrayLike,
    t: ArrayLike,
    *,
    alpha0: float = 1.0,
    tol: float = 1e-5,
    max_iter: int = 200,
    newton_tol: float = 1e-6,
    newton_max_iter: int = 100,
) -> EvidenceResult:
    """Laplace fit with the isotropic prior precision ``α`` chosen by evidence maximisation.

    Alternates a (warm-started) Newton fit at ``α`` with the fixed-point update
    ``α ← γ / (w_MAPᵀw_MAP − c)``, ``γ = Σᵢ λᵢ / (α + λᵢ)`` where ``λᵢ`` are the eigenvalues
    of ``ΦᵀRΦ`` at the mode. With ``c = 0`` this is MacKay's update; the correction ``c``
    accounts for ``R`` changing with ``w_MAP(α)``, so the converged ``α`` is an exact
    stationary point of the Laplace log evidence (PRML 4.137), not just of its
    fixed-``R`` approximation (see ``_alpha_update``). The prior mean is zero and every
    weight, bias included, shares ``α``.

    Args:
        Phi: ``(n_samples, n_features)`` design matrix.
        t: ``(n_samples,)`` labels in {0, 1}.
        alpha0: initial ``α``.
        tol: stop when ``|Δ ln α| ≤ tol``.
        max_iter: maximum re-estimation steps (static: the length of ``history``).
        newton_tol, newton_max_iter: inner Newton settings (see :func:`fit_laplace`).

    Returns:
        :class:`EvidenceResult`.

    References:
        PRML §4.4.1 (4.137), §4.5 and §3.5.2 (3.91–3.92); MacKay (1992).
    """
    Phi = check_design(Phi)
    t = check_labels(t)
    V.check_same_length(Phi=Phi, t=t)
    alpha0 = V.check_positive(alpha0, "alpha0")
    tol, max_iter = _check_tol(tol, max_iter)
    newton_tol, newton_max_iter = _check_tol(newton_tol, newton_max_iter, "newton_")
    return _evidence_impl(Phi, t, alpha0, tol, newton_tol, max_iter=max_iter,
                          newton_max_iter=newton_max_iter)


def predictive_activation(params: LaplaceParams, Phi_new: ArrayLike
                          ) -> tuple[jax.Array, jax.Array]:
    """Mean and variance of the activation ``a = wᵀφ`` under ``q(w)`` (PRML 4.149–4.150).

    Args:
        params: :class:`LaplaceParams` (``fit_laplace(...).params`` or
            ``fit_evidence(...).params``).
        Phi_new: ``(n_new, n_features)``.

    Returns:
        ``mu_a (n_new,)``, ``var_a (n_new,)``.
    """
    mean, cov = _check_params(params)
    Phi_new = _check_new(Phi_new, mean.shape[0])
    return _activation_impl(mean, cov, Phi_new)


def predict_proba(params: LaplaceParams, Phi_new: ArrayLike, *,
                  method: str = "probit") -> jax.Array:
    """Predictive ``p(t = 1 | φ, data)`` under the Laplace posterior.

    Args:
        params: :class:`LaplaceParams` (``fit_laplace(...).params`` or
            ``fit_evidence(...).params``).
        Phi_new: ``(n_new, n_features)``.
        method: ``"probit"`` — ``σ(κ(σ²_a) μ_a)`` with ``κ = (1 + πσ²_a/8)^{-1/2}``
            (PRML 4.153–4.155); ``"map"`` — the plug-in ``σ(w_MAPᵀφ)`` (ignores uncertainty).

    Returns:
        ``(n_new,)`` probabilities.

    References:
        PRML §4.5.2; D. J. Spiegelhalter and S. L. Lauritzen (1990); MacKay (1992).
    """
    V.check_choice(method, "method", ("probit", "map"))
    mean, cov = _check_params(params)
    Phi_new = _check_new(Phi_new, mean.shape[0])
    if method == "map":
        return _map_impl(mean, Phi_new)
    return _probit_impl(mean, cov, Phi_new)


def predict_proba_mc(
    key: jax.Array, params: LaplaceParams, Phi_new: ArrayLike, *, n_samples: int = 1000
) -> jax.Array:
    """Monte Carlo predictive ``(1/S) Σ_s σ(w_sᵀφ)``, ``w_s ~ N(mean, cov)`` (vmapped draws).

    Args:
        key: PRNG key.
        params: :class:`LaplaceParams` (``fit_laplace(...).params`` or
            ``fit_evidence(...).params``).
        Phi_new: ``(n_new, n_features)``.
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
    Phi_new = _check_new(Phi_new, mean.shape[0])
    return _mc_impl(key, mean, cov, Phi_new, n_samples)
