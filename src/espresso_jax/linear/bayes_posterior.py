"""Bayesian linear regression at given precisions: weight posterior, predictive, function draws.

Model (PRML §3.3): ``t_n = w^T phi(x_n) + eps``, ``eps ~ N(0, 1/beta)``, prior
``w ~ N(m_0, S_0)`` (isotropic ``N(0, I / alpha)`` by default). The posterior is
``N(m_N, S_N)`` with ``S_N^{-1} = S_0^{-1} + beta X^T X`` and
``m_N = S_N (S_0^{-1} m_0 + beta X^T y)`` (eqs. 3.50-3.54); the predictive at new inputs is
``N(m_N^T phi, 1/beta + phi^T S_N phi)`` (eqs. 3.58-3.59).

Numerics: the posterior is computed in the prior's whitened coordinates ``w = m_0 + L_0 u``
(``S_0 = L_0 L_0^T``): the matrix factorised is ``I + beta L_0^T X^T X L_0``, whose
eigenvalues are >= 1, so its Cholesky factor is well conditioned and ``S_0`` is never inverted.

Choosing ``alpha, beta`` by the evidence is :mod:`espresso_jax.linear.bayes`, which also
re-exports the public API here (the entry point to Bayesian linear regression).

References:
    Bishop, *Pattern Recognition and Machine Learning* (2006), §3.3.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.linalg import cho_solve, solve_triangular
from jax.typing import ArrayLike

from espresso_jax.linear.regression import LeastSquaresParams
from espresso_jax.scaling import checked_exponent
from espresso_jax.validation import (
    as_float_array,
    as_positive_array,
    check_int,
    check_key,
    check_same_length,
    is_traced,
)

__all__ = [
    "Posterior", "Predictive", "BayesParams", "check_regression_data", "gram",
    "posterior", "posterior_general", "predict", "sample_functions",
]

_HI = lax.Precision.HIGHEST  # full-precision GEMMs also on accelerators (no TF32/bf16 passes)
_mm = partial(jnp.matmul, precision=_HI)


class Posterior(NamedTuple):
    """Gaussian posterior over the weights.

    Attributes:
        mean: ``(n_basis,)`` posterior mean ``m_N``.
        cov: ``(n_basis, n_basis)`` posterior covariance ``S_N``.
    """

    mean: jax.Array
    cov: jax.Array


class Predictive(NamedTuple):
    """Gaussian predictive distribution at new inputs (PRML eqs. 3.58-3.59).

    Attributes:
        mean: ``(n_new,)`` predictive mean ``m_N^T phi(x)``.
        var: ``(n_new,)`` total variance ``sigma_N^2(x) = noise_var + model_var``.
        noise_var: ``(n_new,)`` aleatoric part ``1 / beta`` (constant).
        model_var: ``(n_new,)`` epistemic part ``phi(x)^T S_N phi(x)``.
    """

    mean: jax.Array
    var: jax.Array
    noise_var: jax.Array
    model_var: jax.Array


class BayesParams(NamedTuple):
    """A fitted Bayesian linear regression (what :func:`predict` and :func:`sample_functions`
    take): the weight posterior ``N(mean, cov)`` and the precisions it was computed at.

    Attributes:
        mean: ``(n_basis,)`` posterior mean ``m_N``.
        cov: ``(n_basis, n_basis)`` posterior covariance ``S_N``.
        alpha: ``()`` prior precision of the weights.
        beta: ``()`` noise precision.
    """

    mean: jax.Array
    cov: jax.Array
    alpha: jax.Array
    beta: jax.Array


# --------------------------------------------------------------------------- validation

def check_regression_data(X: Any, y: Any) -> tuple[jax.Array, jax.Array]:
    """Validate a regression data set: the design matrix and its targets.

    Args:
        X: ``(n_samples, n_basis)`` design matrix, rows ``phi(x_n)``.
        y: ``(n_samples,)`` targets.

    Returns:
        ``X`` and ``y`` as arrays of the working float dtype.

    Raises:
        ValueError: wrong ranks, non-finite values or lengths that disagree.
    """
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_basis)")
    y = as_float_array(y, "y", ndim=1, shape_hint="(n_samples,)")
    check_same_length(X=X, y=y)
    return X, y


def _mean_cov(post: Any, name: str = "post") -> tuple[jax.Array, jax.Array]:
    if isinstance(post, (Posterior, BayesParams)):
        return post.mean, post.cov
    if isinstance(post, LeastSquaresParams):
        return post.w, jnp.zeros((post.w.shape[0],) * 2, dtype=post.w.dtype)
    raise TypeError(f"{name} must be a Posterior, BayesParams or LeastSquaresParams, got "
                    f"{type(post).__name__}")


def _new_design(X_new: Any, n_basis: int) -> jax.Array:
    return as_float_array(X_new, "X_new", ndim=2, shape_hint="(n_new, n_basis)",
                          n_columns=n_basis)


# --------------------------------------------------------------------------- posterior

def gram(X: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``X^T X`` (symmetrised) and ``X^T y``: the one pass over the rows.

    Args:
        X: ``(n_samples, n_basis)`` design matrix, rows ``phi(x_n)``.
        y: ``(n_samples,)`` targets.

    Returns:
        ``(n_basis, n_basis)`` Gram matrix and ``(n_basis,)`` projected targets.
    """
    G = _mm(X.T, X)
    return 0.5 * (G + G.T), _mm(X.T, y)


def _whitened_posterior(G: jax.Array, b: jax.Array, m0: jax.Array, L0: jax.Array,
                        beta: jax.Array) -> Posterior:
    """Posterior from ``G = X^T X``, ``b = X^T y`` and the prior ``N(m0, L0 L0^T)``.

    With ``w = m0 + L0 u``, ``u ~ N(0, I)``: ``B = I + beta L0^T G L0`` (eigenvalues >= 1),
    ``E[u] = B^{-1} beta L0^T (b - G m0)``, ``S_N = L0 B^{-1} L0^T = C C^T`` with
    ``C^T = L_B^{-1} L0^T``."""
    d = G.shape[0]
    B = jnp.eye(d, dtype=G.dtype) + beta * _mm(_mm(L0.T, G), L0)
    LB = jnp.linalg.cholesky(0.5 * (B + B.T))
    u = cho_solve((LB, True), beta * _mm(L0.T, b - _mm(G, m0)))
    Ct = solve_triangular(LB, L0.T, lower=True)
    cov = _mm(Ct.T, Ct)
    return Posterior(mean=m0 + _mm(L0, u), cov=0.5 * (cov + cov.T))


@jax.jit
def _posterior_impl(X, y, alpha, beta):
    G, b = gram(X, y)
    d = X.shape[1]
    L0 = jnp.eye(d, dtype=X.dtype) / jnp.sqrt(alpha)
    return _whitened_posterior(G, b, jnp.zeros(d, dtype=X.dtype), L0, beta)


@jax.jit
def _posterior_general_impl(X, y, prior_mean, prior_cov, beta):
    G, b = gram(X, y)
    L0 = jnp.linalg.cholesky(0.5 * (prior_cov + prior_cov.T))
    return _whitened_posterior(G, b, prior_mean, L0, beta)


def posterior(X: ArrayLike, y: ArrayLike, *, alpha: float, beta: float) -> Posterior:
    """Weight posterior under the isotropic prior ``N(0, I / alpha)`` (PRML eqs. 3.53-3.54).

    ``S_N^{-1} = alpha I + beta X^T X``, ``m_N = beta S_N X^T y``.

    Args:
        X: ``(n_samples, n_basis)`` design matrix, rows ``phi(x_n)``.
        y: ``(n_samples,)`` targets.
        alpha: prior precision ``> 0``.
        beta: noise precision ``> 0``.

    Returns:
        :class:`Posterior` ``(mean (n_basis,), cov (n_basis, n_basis))``.

    References:
        Bishop, PRML (2006), §3.3.1.
    """
    X, y = check_regression_data(X, y)
    return _posterior_impl(X, y, as_positive_array(alpha, "alpha", ndim=0),
                           as_positive_array(beta, "beta", ndim=0))


def posterior_general(X: ArrayLike, y: ArrayLike, *, prior_mean: ArrayLike,
                      prior_cov: ArrayLike, beta: float) -> Posterior:
    """Weight posterior under a general Gaussian prior ``N(m_0, S_0)`` (PRML eqs. 3.48-3.51).

    Args:
        X: ``(n_samples, n_basis)`` design matrix, rows ``phi(x_n)``.
        y: ``(n_samples,)`` targets.
        prior_mean: ``(n_basis,)`` prior mean ``m_0``.
        prior_cov: ``(n_basis, n_basis)`` symmetric positive-definite prior covariance ``S_0``.
        beta: noise precision ``> 0``.

    Returns:
        :class:`Posterior`.

    Raises:
        ValueError: ``prior_cov`` not symmetric positive definite, or shapes that disagree.

    References:
        Bishop, PRML (2006), §3.3.1.
    """
    X, y = check_regression_data(X, y)
    d = X.shape[1]
    prior_mean = as_float_array(prior_mean, "prior_mean", ndim=1, shape_hint="(n_basis,)")
    prior_cov = as_float_array(prior_cov, "prior_cov", ndim=2,
                               shape_hint="(n_basis, n_basis)")
    if prior_mean.shape != (d,):
        raise ValueError(f"prior_mean must have shape ({d},) to match X, got "
                         f"{tuple(prior_mean.shape)}")
    if prior_cov.shape != (d, d):
        raise ValueError(f"prior_cov must have shape ({d}, {d}) to match X, got "
                         f"{tuple(prior_cov.shape)}")
    if not is_traced(prior_cov):
        c = np.asarray(prior_cov, dtype=np.float64)
        if not np.allclose(c, c.T, rtol=1e-5, atol=1e-8 * np.abs(c).max()):
            raise ValueError("prior_cov must be symmetric")
        try:
            np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            raise ValueError("prior_cov must be positive definite") from None
    return _posterior_general_impl(X, y, prior_mean, prior_cov,
                                   as_positive_array(beta, "beta", ndim=0))


# --------------------------------------------------------------------------- predictive

@jax.jit
def _predict_impl(mean, cov, X, beta):
    mu = _mm(X, mean)
    model = jnp.maximum(jnp.einsum("nd,de,ne->n", X, cov, X, precision=_HI), 0.0)
    noise = jnp.full_like(mu, 1.0) / beta
    return Predictive(mean=mu, var=noise + model, noise_var=noise, model_var=model)


def predict(params: BayesParams | Posterior | LeastSquaresParams, X_new: ArrayLike,
            beta: float | None = None) -> Predictive:
    """Predictive distribution ``N(y | m_N^T phi, 1/beta + phi^T S_N phi)`` (PRML 3.58-3.59).

    Args:
        params: :class:`BayesParams` (``fit_evidence(...).params``; uses its ``beta`` unless
            one is given), a :class:`Posterior` (needs ``beta``) or least-squares params
            (no model variance; uses their ML ``beta`` unless one is given).
        X_new: ``(n_new, n_basis)`` design matrix of the new inputs.
        beta: noise precision ``> 0``.

    Returns:
        :class:`Predictive` with the split ``var = noise_var + model_var``.

    References:
        Bishop, PRML (2006), §3.3.2.
    """
    mean, cov = _mean_cov(params, "params")
    if beta is None:
        if isinstance(params, Posterior):
            raise ValueError("beta is required to predict from a Posterior (it has no noise "
                             "precision); pass beta=...")
        beta_arr = as_positive_array(params.beta, "beta", ndim=0)
    else:
        beta_arr = as_positive_array(beta, "beta", ndim=0)
    X_new = _new_design(X_new, mean.shape[0])
    # the model variance phi^T S_N phi scales with the square of X_new (as XᵀX in the fit)
    checked_exponent(X_new, "X_new", kind="magnitude", what="the predictive variance")
    dtype = X_new.dtype
    return _predict_impl(mean.astype(dtype), cov.astype(dtype), X_new, beta_arr.astype(dtype))


@partial(jax.jit, static_argnames=("n_samples",))
def _sample_impl(key, mean, cov, X, n_samples):
    evals, evecs = jnp.linalg.eigh(0.5 * (cov + cov.T))
    root = evecs * jnp.sqrt(jnp.maximum(evals, 0.0))[None, :]        # cov = root root^T (PSD-safe)
    eps = jax.random.normal(key, (n_samples, mean.shape[0]), dtype=mean.dtype)
    w = mean[None, :] + _mm(eps, root.T)                     # (n_samples, n_basis)
    return _mm(w, X.T)


def sample_functions(key: jax.Array, post: Posterior | BayesParams, X_new: ArrayLike,
                     n_samples: int) -> jax.Array:
    """Draw functions ``y(x) = w^T phi(x)``, ``w ~ N(m_N, S_N)`` (PRML Fig. 3.9).

    Args:
        key: PRNG key.
        post: :class:`Posterior` or :class:`BayesParams`.
        X_new: ``(n_new, n_basis)`` design matrix where the functions are evaluated.
        n_samples: number of functions.

    Returns:
        ``(n_samples, n_new)`` noise-free function values.

    References:
        Bishop, PRML (2006), §3.3.2, Fig. 3.9.
    """
    key = check_key(key)
    mean, cov = _mean_cov(post)
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    X_new = _new_design(X_new, mean.shape[0])
    dtype = X_new.dtype
    return _sample_impl(key, mean.astype(dtype), cov.astype(dtype), X_new, n_samples)

