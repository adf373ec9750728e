"""The Normal-inverse-Wishart family, conjugate prior of a multivariate Gaussian's mean and
covariance: the update (and its unvalidated kernel :func:`niw_posterior` for jitted model
code), the marginals, posterior predictive, joint and inverse-Wishart log-densities, and
sampling.

References:
    Bishop, PRML (2006), §2.3.6 (Normal-Wishart).
    K. P. Murphy, "Conjugate Bayesian analysis of the Gaussian distribution" (2007), §9.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.scipy.linalg import solve_triangular
from jax.typing import ArrayLike

from espresso_jax.interop import standard_promotion
from espresso_jax.prob.conjugate.checks import check_stats
from espresso_jax.prob.estimate import GaussianStats, multivariate_gaussian_stats
from espresso_jax.validation import (
    as_float_array,
    as_positive_array,
    check_key,
    float_dtype,
    is_traced,
)

__all__ = [
    "NormalInverseWishart", "niw_update", "niw_posterior", "normal_inverse_wishart",
    "niw_precision", "niw_mean", "niw_predictive", "niw_log_prob", "niw_sample",
    "inverse_wishart_log_prob",
]


class NormalInverseWishart(NamedTuple):
    """Normal-inverse-Wishart over (mean m, covariance S): ``S ~ IW(nu, psi)``,
    ``m | S ~ N(mu, S / kappa)`` (Murphy 2007 eq. 200).

    Attributes:
        mu: ``(n_features,)`` location of the mean.
        kappa: ``()`` pseudo-observations on the mean, > 0.
        nu: ``()`` degrees of freedom, > n_features - 1.
        psi: ``(n_features, n_features)`` symmetric positive-definite scale matrix.
    """

    mu: jax.Array
    kappa: jax.Array
    nu: jax.Array
    psi: jax.Array


def _check_niw(p: Any, name: str = "prior") -> NormalInverseWishart:
    if not isinstance(p, NormalInverseWishart):
        raise TypeError(f"{name} must be a NormalInverseWishart, got {type(p).__name__}")
    mu = as_float_array(p.mu, f"{name}.mu", ndim=1, shape_hint="(n_features,)")
    d = mu.shape[0]
    kappa = as_positive_array(p.kappa, f"{name}.kappa", ndim=0)
    nu = as_float_array(p.nu, f"{name}.nu", ndim=0)
    psi = as_float_array(p.psi, f"{name}.psi", ndim=2, shape_hint="(n_features, n_features)")
    if psi.shape != (d, d):
        raise ValueError(f"{name}.psi must have shape ({d}, {d}) to match {name}.mu, "
                         f"got {psi.shape}")
    if not is_traced(nu) and float(nu) <= d - 1:
        raise ValueError(f"{name}.nu must be > n_features - 1 = {d - 1}, got {float(nu)}")
    if not is_traced(psi):
        m = np.asarray(psi, dtype=np.float64)
        if not np.allclose(m, m.T, rtol=1e-5, atol=1e-6 * np.abs(m).max()):
            raise ValueError(f"{name}.psi must be symmetric")
        if not np.all(np.linalg.eigvalsh(m) > 0):
            raise ValueError(f"{name}.psi must be positive definite")
    return NormalInverseWishart(mu, kappa, nu, 0.5 * (psi + psi.T))


# ---------------------------------------------------------------------------------- update


def niw_posterior(p: NormalInverseWishart, s: GaussianStats) -> NormalInverseWishart:
    """The Normal-inverse-Wishart update of :func:`niw_update` without validation: the kernel
    that jitted model code calls (``jax.vmap`` it over components, e.g. VB-GMM's M-step).

    Args:
        p: prior with ``mu (d,)``, ``kappa ()``, ``nu ()``, ``psi (d, d)``.
        s: statistics with ``n ()``, ``mean (d,)`` and full ``scatter (d, d)``.

    Returns:
        The posterior :class:`NormalInverseWishart` (``psi`` symmetrised).
    """
    kappa = p.kappa + s.n
    dm = s.mean - p.mu
    psi = p.psi + s.scatter + (p.kappa * s.n / kappa) * jnp.outer(dm, dm)
    return NormalInverseWishart(mu=p.mu + s.n * dm / kappa, kappa=kappa, nu=p.nu + s.n,
                                psi=0.5 * (psi + psi.T))


_niw_impl = jax.jit(niw_posterior)


def niw_update(prior: NormalInverseWishart, stats: GaussianStats) -> NormalInverseWishart:
    """Normal-inverse-Wishart posterior (Murphy 2007 eqs. 221-224):
    ``kappa_n = kappa + n``, ``nu_n = nu + n``, ``mu_n = (kappa mu + n xbar) / kappa_n``,
    ``psi_n = psi + S + kappa n / kappa_n (xbar - mu)(xbar - mu)^T``.

    Args:
        prior: :class:`NormalInverseWishart`.
        stats: :class:`GaussianStats` from ``multivariate_gaussian_stats`` (full scatter).
    """
    p = _check_niw(prior)
    s = check_stats(stats, GaussianStats)
    d = p.mu.shape[0]
    if s.mean.shape != (d,) or s.scatter.shape != (d, d) or s.n.ndim != 0:
        raise ValueError(f"stats must have n (), mean ({d},) and scatter ({d}, {d}); got "
                         f"{s.n.shape}, {s.mean.shape}, {s.scatter.shape}")
    return _niw_impl(p, s)


def normal_inverse_wishart(prior: NormalInverseWishart, X: ArrayLike,
                           sample_weight: ArrayLike | None = None) -> NormalInverseWishart:
    """Normal-inverse-Wishart posterior over an unknown Gaussian mean and covariance.

    Args:
        prior: :class:`NormalInverseWishart`.
        X: ``(n_samples, n_features)`` draws from ``N(mean, cov)``.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
    """
    p = _check_niw(prior)
    s = multivariate_gaussian_stats(X, sample_weight)
    if s.mean.shape != p.mu.shape:
        raise ValueError(f"X has {s.mean.shape[0]} features but prior.mu has {p.mu.shape[0]}")
    return niw_update(prior, s)


def niw_precision(p: NormalInverseWishart) -> dist.Wishart:
    """Marginal of the precision ``cov^-1``: ``Wishart(nu, scale = psi^-1)``."""
    p = _check_niw(p, "p")
    return dist.Wishart(p.nu, rate_matrix=p.psi, validate_args=False)


@partial(jax.jit, static_argnames="predictive")
def _niw_student_params(p: NormalInverseWishart, predictive: bool) -> tuple[jax.Array, ...]:
    df = p.nu - (p.mu.shape[0] - 1.0)
    factor = (p.kappa + 1.0) if predictive else jnp.ones_like(p.kappa)
    return df, p.mu, jnp.linalg.cholesky(p.psi) * jnp.sqrt(factor / (p.kappa * df))


def _student(p: NormalInverseWishart, predictive: bool) -> dist.MultivariateStudentT:
    return dist.MultivariateStudentT(*_niw_student_params(p, predictive), validate_args=False)


def niw_mean(p: NormalInverseWishart) -> dist.MultivariateStudentT:
    """Marginal of the mean: multivariate t with ``nu - d + 1`` degrees of freedom, location
    ``mu`` and scale matrix ``psi / (kappa (nu - d + 1))`` (Murphy eq. 235)."""
    return _student(_check_niw(p, "p"), predictive=False)


def niw_predictive(p: NormalInverseWishart) -> dist.MultivariateStudentT:
    """Posterior predictive of a new observation: multivariate t with ``nu - d + 1`` degrees of
    freedom and scale matrix ``psi (kappa + 1) / (kappa (nu - d + 1))`` (Murphy eq. 258)."""
    return _student(_check_niw(p, "p"), predictive=True)


def _chol_inverse(chol: jax.Array) -> jax.Array:
    """``L^-1`` for lower-triangular ``L`` ``(..., d, d)``."""
    eye = jnp.broadcast_to(jnp.eye(chol.shape[-1], dtype=chol.dtype), chol.shape)
    return solve_triangular(chol, eye, lower=True)


def _iw_log_prob(cov: jax.Array, nu: jax.Array, psi: jax.Array) -> jax.Array:
    # If cov ~ IW(nu, psi) then cov^-1 ~ Wishart(nu, rate=psi); the change of variables
    # cov -> cov^-1 has |Jacobian| = |cov|^-(d+1).
    d = cov.shape[-1]
    chol = jnp.linalg.cholesky(cov)
    linv = _chol_inverse(chol)
    prec = jnp.swapaxes(linv, -1, -2) @ linv
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    with standard_promotion():
        lw = dist.Wishart(nu, rate_matrix=psi).log_prob(0.5 * (prec + jnp.swapaxes(prec, -1, -2)))
    return lw - (d + 1.0) * log_det


def _check_cov(cov: ArrayLike, d: int, name: str = "cov") -> jax.Array:
    c = as_float_array(cov, name)
    if c.ndim < 2 or c.shape[-2:] != (d, d):
        raise ValueError(f"{name} must have shape (..., {d}, {d}), got {c.shape}")
    return c


@jax.jit
def _iw_log_prob_impl(cov: jax.Array, nu: jax.Array, psi: jax.Array) -> jax.Array:
    return _iw_log_prob(cov, nu, psi)


def inverse_wishart_log_prob(cov: ArrayLike, nu: ArrayLike, psi: ArrayLike) -> jax.Array:
    """Inverse-Wishart log-density ``log IW(cov | nu, psi)``, via numpyro's ``Wishart``.

    Args:
        cov: ``(..., d, d)`` symmetric positive-definite matrices.
        nu: degrees of freedom, > d - 1.
        psi: ``(d, d)`` symmetric positive-definite scale matrix.
    """
    p = _check_niw(NormalInverseWishart(jnp.zeros(np.shape(psi)[:1], dtype=float_dtype()),
                                        jnp.asarray(1.0), jnp.asarray(nu), jnp.asarray(psi)),
                   "inverse-Wishart")
    return _iw_log_prob_impl(_check_cov(cov, p.mu.shape[0]), p.nu, p.psi)


@jax.jit
def _niw_log_prob_impl(p: NormalInverseWishart, mean: jax.Array, cov: jax.Array) -> jax.Array:
    chol = jnp.linalg.cholesky(cov) * jax.lax.rsqrt(p.kappa)
    with standard_promotion():
        lm = dist.MultivariateNormal(p.mu, scale_tril=chol).log_prob(mean)
    return lm + _iw_log_prob(cov, p.nu, p.psi)


def niw_log_prob(p: NormalInverseWishart, mean: ArrayLike, cov: ArrayLike) -> jax.Array:
    """Joint log-density ``log N(mean | mu, cov / kappa) + log IW(cov | nu, psi)``.

    Args:
        p: :class:`NormalInverseWishart`.
        mean: ``(..., n_features)``; cov: ``(..., n_features, n_features)``.
    """
    p = _check_niw(p, "p")
    d = p.mu.shape[0]
    m = as_float_array(mean, "mean")
    if m.ndim < 1 or m.shape[-1] != d:
        raise ValueError(f"mean must have shape (..., {d}), got {m.shape}")
    return _niw_log_prob_impl(p, m, _check_cov(cov, d))


@partial(jax.jit, static_argnames="sample_shape")
def _niw_sample_impl(key: jax.Array, p: NormalInverseWishart,
                     sample_shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    k_prec, k_mean = jax.random.split(key)
    with standard_promotion():
        chol_prec = dist.WishartCholesky(p.nu, rate_matrix=p.psi).sample(k_prec, sample_shape)
    linv = _chol_inverse(chol_prec)  # cov = L^-T L^-1 where precision = L L^T
    lt = jnp.swapaxes(linv, -1, -2)
    cov = lt @ linv
    z = jax.random.normal(k_mean, sample_shape + p.mu.shape, dtype=p.mu.dtype)
    mu = jnp.broadcast_to(p.mu, z.shape)
    mean = mu + (lt @ z[..., None])[..., 0] * jax.lax.rsqrt(p.kappa)
    return mean, 0.5 * (cov + jnp.swapaxes(cov, -1, -2))


def niw_sample(key: jax.Array, p: NormalInverseWishart,
               sample_shape: tuple[int, ...] = ()) -> tuple[jax.Array, jax.Array]:
    """Draw ``(mean, cov)``: ``mean`` ``sample_shape + (d,)``, ``cov`` ``sample_shape + (d, d)``.

    The precision is drawn from numpyro's Wishart (Bartlett decomposition) and inverted
    through its Cholesky factor.
    """
    check_key(key)
    p = _check_niw(p, "p")
    return _niw_sample_impl(key, p, tuple(int(s) for s in sample_shape))

