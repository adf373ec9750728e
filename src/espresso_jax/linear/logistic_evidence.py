"""Bayesian logistic regression: the prior precision ``α`` chosen by the Laplace evidence.

:func:`fit_evidence` alternates a warm-started Laplace fit
(:mod:`espresso_jax.linear.logistic_laplace`) at ``α`` with a fixed-point re-estimation of
``α`` (PRML §4.4.1, 4.137; MacKay 1992) whose fixed point is an exact stationary point of the
Laplace log evidence; the loop runs on :func:`espresso_jax.em.iterate` and records a
``history``. The result's ``params`` is the :class:`LaplaceParams` the prediction functions of
:mod:`espresso_jax.linear.logistic` take.

References:
    C. M. Bishop, *Pattern Recognition and Machine Learning* (PRML), §4.3.2–4.3.3, §4.4, §4.5.
    MacKay, D. J. C., "The evidence framework applied to classification networks", Neural
    Computation 4(5), 1992.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from espresso_jax import em
from espresso_jax import validation as V
from espresso_jax.linear.logistic_inputs import (
    GaussianPrior,
    check_design,
    check_labels,
    check_tolerance,
)
from espresso_jax.linear.logistic_laplace import LaplaceParams, laplace_at, newton_irls

__all__ = ["EvidenceResult", "fit_evidence"]


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


def _alpha_update(w, cov, alpha, X):
    """Fixed-point update of α at a stationary point of the Laplace evidence (PRML 4.137).

    With ``H = αI + XᵀRX``, ``S = H⁻¹`` and ``dw_MAP/dα = −S w`` (implicit function theorem),

        d ln p(y|α) / dα = ½ [γ/α − wᵀw + c],   γ = Σᵢ λᵢ/(α + λᵢ) = D − α tr S,
        c = Σ_n r'_n (φ_nᵀ S w)(φ_nᵀ S φ_n),     r' = dr/da = σ(a)σ(−a)(1 − 2σ(a)),

    so a stationary point satisfies ``α = γ / (wᵀw − c)``. MacKay's update (PRML 3.92 with
    the Laplace Hessian) drops ``c``, i.e. the change of ``R`` with ``w_MAP``; keeping it makes
    the fixed point an exact stationary point of the Laplace evidence.
    """
    dtype = X.dtype
    tiny = jnp.finfo(dtype).tiny
    a = X @ w
    p = jax.nn.sigmoid(a)
    r = p * jax.nn.sigmoid(-a)
    lam = jnp.clip(jnp.linalg.eigvalsh((X.T * r[None, :]) @ X), 0.0, None)
    gamma = jnp.sum(lam / (alpha + lam))
    r_prime = r * (1 - 2 * p)
    leverage = jnp.sum((X @ cov) * X, axis=1)          # φ_nᵀ S φ_n
    c = jnp.sum(r_prime * (X @ (cov @ w)) * leverage)
    denom = w @ w - c
    # denom ≤ 0 means the evidence still increases with α: step α up by a factor 10.
    alpha_new = jnp.where(denom > 0, gamma / jnp.maximum(denom, tiny), 10 * alpha)
    return jnp.clip(alpha_new, tiny, 1 / tiny), gamma


@partial(jax.jit, static_argnames=("max_iter", "newton_max_iter"))
def _evidence_impl(X, y, alpha0, tol, newton_tol, *, max_iter: int, newton_max_iter: int):
    dtype = X.dtype
    D = X.shape[1]
    eye = jnp.eye(D, dtype=dtype)
    zero = jnp.zeros(D, dtype)
    tol = jnp.asarray(tol, dtype)

    def laplace(alpha, w0):
        """Warm-started Newton fit at α and its Laplace covariance / evidence."""
        prior = GaussianPrior(zero, alpha * eye)
        run = newton_irls(X, y, prior, w0, newton_tol, newton_max_iter)
        w, f, _ = run.params
        cov, log_ev = laplace_at(w, f, X, y, prior)
        return w, cov, log_ev, run.converged

    def step(state):
        alpha, w = state
        w, cov, log_ev, _ = laplace(alpha, w)
        alpha_new, _ = _alpha_update(w, cov, alpha, X)
        done = jnp.abs(jnp.log(alpha_new) - jnp.log(alpha)) <= tol
        return (alpha_new, w), log_ev, done

    run = em.iterate(step, (jnp.asarray(alpha0, dtype), zero), max_iter=max_iter, dtype=dtype)
    alpha, w = run.params
    # Final Laplace fit at the returned α, so mean, cov, γ and evidence are consistent.
    w, cov, log_ev, ok = laplace(alpha, w)
    _, gamma = _alpha_update(w, cov, alpha, X)
    return EvidenceResult(params=LaplaceParams(w, cov), history=run.history, n_iter=run.n_iter,
                          converged=run.converged & ok, gamma=gamma, log_evidence=log_ev,
                          alpha=alpha)


def fit_evidence(
    X: ArrayLike,
    y: ArrayLike,
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
    of ``XᵀRX`` at the mode. With ``c = 0`` this is MacKay's update; the correction ``c``
    accounts for ``R`` changing with ``w_MAP(α)``, so the converged ``α`` is an exact
    stationary point of the Laplace log evidence (PRML 4.137), not just of its
    fixed-``R`` approximation (see ``_alpha_update``). The prior mean is zero and every
    weight, bias included, shares ``α``.

    Args:
        X: ``(n_samples, n_features)`` design matrix, rows ``phi(x_n)``.
        y: ``(n_samples,)`` labels in {0, 1}.
        alpha0: initial ``α``.
        tol: stop when ``|Δ ln α| ≤ tol``.
        max_iter: maximum re-estimation steps (static: the length of ``history``).
        newton_tol, newton_max_iter: inner Newton settings (see
            :func:`espresso_jax.linear.logistic.fit_laplace`).

    Returns:
        :class:`EvidenceResult`.

    References:
        PRML §4.4.1 (4.137), §4.5 and §3.5.2 (3.91–3.92); MacKay (1992).
    """
    X = check_design(X)
    y = check_labels(y)
    V.check_same_length(X=X, y=y)
    alpha0 = V.check_positive(alpha0, "alpha0")
    tol, max_iter = check_tolerance(tol, max_iter)
    newton_tol, newton_max_iter = check_tolerance(newton_tol, newton_max_iter, "newton_")
    return _evidence_impl(X, y, alpha0, tol, newton_tol, max_iter=max_iter,
                          newton_max_iter=newton_max_iter)


