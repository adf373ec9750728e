"""Bayesian logistic regression: the Laplace approximation at the posterior mode.

Model: ``p(y = 1 | φ, w) = σ(wᵀφ)`` with a Gaussian prior ``w ~ N(m₀, S₀)``
(:class:`~espresso_jax.linear.logistic_inputs.GaussianPrior`). The posterior mode ``w_MAP`` is
found by damped Newton's method (iteratively reweighted least squares, PRML §4.3.3) on
:func:`espresso_jax.em.iterate`; the Laplace approximation is ``q(w) = N(w_MAP, S_N)`` with
``S_N⁻¹ = XᵀRX + S₀⁻¹`` (PRML 4.143), and the Laplace evidence is PRML 4.137. These traceable
pieces are what :func:`espresso_jax.linear.logistic.fit_laplace` and
:func:`espresso_jax.linear.logistic_evidence.fit_evidence` run inside their jitted loops.

References:
    C. M. Bishop, *Pattern Recognition and Machine Learning* (PRML), §4.3.2–4.3.3, §4.4, §4.5.
    MacKay, D. J. C., "The evidence framework applied to classification networks", Neural
    Computation 4(5), 1992.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from espresso_jax import em
from espresso_jax.linear.logistic_inputs import GaussianPrior
from espresso_jax.prob.linalg import cholesky_with_jitter

__all__ = ["LaplaceParams", "newton_irls", "laplace_at"]

_ARMIJO = 1e-4          # sufficient-decrease constant of the backtracking line search
_MAX_HALVINGS = 40      # step halvings before the line search gives up


class LaplaceParams(NamedTuple):
    """Laplace approximation ``q(w) = N(mean, cov)`` of the logistic-regression posterior
    (what the prediction functions take).

    Attributes:
        mean: ``(n_features,)`` posterior mode ``w_MAP``.
        cov: ``(n_features, n_features)`` ``S_N = (XᵀRX + S₀⁻¹)⁻¹`` at ``w_MAP``.
    """

    mean: jax.Array
    cov: jax.Array


def _log_lik_one(a: jax.Array, y: jax.Array) -> jax.Array:
    """``ln p(y | a) = y ln σ(a) + (1 − y) ln σ(−a)`` for one example (stable for any ``a``)."""
    return y * jax.nn.log_sigmoid(a) + (1 - y) * jax.nn.log_sigmoid(-a)


def _neg_log_joint(w: jax.Array, X: jax.Array, y: jax.Array, prior: GaussianPrior):
    """``−ln p(y | w) − ln N(w | m₀, S₀)`` up to the prior's normalising constant."""
    a = X @ w
    d = w - prior.mean
    return -jnp.sum(jax.vmap(_log_lik_one)(a, y)) + 0.5 * (d @ (prior.precision @ d))


def _cholesky(H: jax.Array) -> jax.Array:
    """Cholesky factor of an SPD Hessian or precision (jittered only where it fails)."""
    return cholesky_with_jitter(H)[0]


def _grad_hessian(w, X, y, prior):
    """Gradient and Hessian of the negative log joint (PRML 4.96–4.97 plus the prior)."""
    a = X @ w
    p = jax.nn.sigmoid(a)
    r = p * jax.nn.sigmoid(-a)                  # σ(a)(1 − σ(a)) without cancellation
    g = X.T @ (p - y) + prior.precision @ (w - prior.mean)
    H = (X.T * r[None, :]) @ X + prior.precision
    return g, 0.5 * (H + H.T)


def newton_irls(X, y, prior, w0, tol, max_iter: int) -> em.EMResult:
    """Damped Newton (IRLS) for ``w_MAP`` on :func:`espresso_jax.em.iterate`, backtracking on
    the step. Traceable (call it inside ``jit``).

    Args:
        X: ``(n_samples, n_features)`` design matrix, rows ``phi(x_n)``.
        y: ``(n_samples,)`` labels in {0, 1}.
        prior: :class:`~espresso_jax.linear.logistic_inputs.GaussianPrior`.
        w0: ``(n_features,)`` starting point.
        tol: stop when ``max|Δw| ≤ tol · (1 + max|w|)``.
        max_iter: maximum Newton steps (static: the length of ``history``).

    Returns:
        The engine's :class:`espresso_jax.em.EMResult` with ``params = (w, f, ok)``: ``w``
        ``(n_features,)`` the mode, ``f`` ``()`` the negative log joint at ``w`` and ``ok``
        ``()`` False when no finite point was found along a step (then ``converged`` is False).
    """
    dtype = X.dtype
    eps = jnp.finfo(dtype).eps
    tol = jnp.asarray(tol, dtype)

    def objective(w):
        return _neg_log_joint(w, X, y, prior)

    def step(state):
        w, f, ok_in = state
        g, H = _grad_hessian(w, X, y, prior)
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


def laplace_at(w, f, X, y, prior):
    """Covariance and Laplace log evidence (PRML 4.137) at the mode ``w``.

    Args:
        w: ``(n_features,)`` posterior mode (``newton_irls(...).params[0]``).
        f: ``()`` negative log joint at ``w`` (``newton_irls(...).params[1]``).
        X: ``(n_samples, n_features)`` design matrix, rows ``phi(x_n)``.
        y: ``(n_samples,)`` labels in {0, 1}.
        prior: :class:`~espresso_jax.linear.logistic_inputs.GaussianPrior`.

    Returns:
        ``cov (n_features, n_features)`` ``S_N = H⁻¹`` and ``log_evidence ()``.
    """
    _, H = _grad_hessian(w, X, y, prior)
    L = _cholesky(H)
    eye = jnp.eye(w.shape[0], dtype=w.dtype)
    cov = jax.scipy.linalg.cho_solve((L, True), eye)
    cov = 0.5 * (cov + cov.T)
    logdet_h = 2 * jnp.sum(jnp.log(jnp.diag(L)))
    logdet_p = 2 * jnp.sum(jnp.log(jnp.diag(_cholesky(prior.precision))))
    # ln p(y|w) + ln N(w|m0,S0) + (D/2) ln 2π − ½ ln|H|; the 2π terms cancel.
    log_ev = -f + 0.5 * logdet_p - 0.5 * logdet_h
    return cov, log_ev

