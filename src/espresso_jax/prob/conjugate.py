"""Conjugate Bayesian updates: prior + data (or sufficient statistics) -> posterior.

Each conjugate pair comes in two forms:

* ``<pair>_update(prior, stats, ...)`` takes the sufficient statistics of
  :mod:`espresso_jax.prob.estimate` (:class:`~espresso_jax.prob.estimate.BinaryStats`,
  :class:`~espresso_jax.prob.estimate.CategoryStats`,
  :class:`~espresso_jax.prob.estimate.GaussianStats`). Updates are exact, so folding the
  update over the data one point at a time gives the batch posterior (sequential learning,
  PRML §2.3.5).
* ``<pair>(prior, data, sample_weight=None)`` computes the statistics and updates.

Posteriors are ``numpyro.distributions`` objects where numpyro has the family (Beta, Dirichlet,
Normal, Gamma). The Normal-Gamma and Normal-inverse-Wishart families are small NamedTuples of
parameters with helpers for their marginals (numpyro ``Gamma``, ``StudentT``, ``Wishart``,
``MultivariateStudentT``), posterior predictive, joint log-density and sampling.

References:
    Bishop, PRML (2006), §2.1.1 (Beta), §2.2.1 (Dirichlet), §2.3.6 (Gaussian mean, Gamma
    precision, Normal-Gamma, Normal-Wishart).
    K. P. Murphy, "Conjugate Bayesian analysis of the Gaussian distribution" (2007), §3-§4
    (Normal-Gamma), §9 (Normal-inverse-Wishart).
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
from espresso_jax.prob.estimate import (
    BinaryStats,
    CategoryStats,
    GaussianStats,
    bernoulli_stats,
    binomial_stats,
    categorical_stats,
    gaussian_stats,
    multinomial_stats,
    multivariate_gaussian_stats,
)
from espresso_jax.validation import (
    as_float_array,
    as_positive_array,
    check_distribution,
    check_key,
    float_dtype,
    is_traced,
)

__all__ = [
    "beta_update", "beta_bernoulli", "beta_binomial",
    "dirichlet_update", "dirichlet_categorical", "dirichlet_multinomial",
    "normal_mean_update", "normal_known_variance",
    "gamma_precision_update", "gamma_known_mean",
    "NormalGamma", "normal_gamma_update", "normal_gamma", "normal_gamma_precision",
    "normal_gamma_mean", "normal_gamma_predictive", "normal_gamma_log_prob",
    "normal_gamma_sample",
    "NormalInverseWishart", "niw_update", "niw_posterior", "normal_inverse_wishart",
    "niw_precision", "niw_mean", "niw_predictive", "niw_log_prob", "niw_sample",
    "inverse_wishart_log_prob",
]


class NormalGamma(NamedTuple):
    """Normal-Gamma over (mean m, precision tau): ``tau ~ Gamma(a, rate=b)``,
    ``m | tau ~ Normal(mu, 1 / (kappa tau))`` (Murphy 2007 eq. 52; PRML eq. 2.154).

    Attributes (all ``()`` or a common batch shape):
        mu: location of the mean.
        kappa: pseudo-observations on the mean (Murphy's kappa, PRML's lambda), > 0.
        a: Gamma shape of the precision, > 0.
        b: Gamma rate of the precision, > 0.
    """

    mu: jax.Array
    kappa: jax.Array
    a: jax.Array
    b: jax.Array


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


# ---------------------------------------------------------------------------------- helpers


def _param(value: Any) -> jax.Array:
    """A (validated) numpyro parameter cast to the working dtype."""
    return jnp.asarray(value, dtype=float_dtype())


def _check_stats(stats: Any, cls: type[Any], name: str = "stats") -> Any:
    if not isinstance(stats, cls):
        raise TypeError(f"{name} must be a {cls.__name__}, got {type(stats).__name__}")
    fields = {f: as_float_array(getattr(stats, f), f"{name}.{f}", allow_empty=False)
              for f in cls._fields}
    for f, v in fields.items():
        if f == "mean" or is_traced(v):
            continue
        if f == "scatter" and v.ndim >= 2:  # a scatter matrix: only its diagonal is >= 0
            v = jnp.diagonal(v, axis1=-2, axis2=-1)
        if bool(jnp.any(v < 0)):
            raise ValueError(f"{name}.{f} must be non-negative")
    return cls(**fields)


def _check_normal_gamma(p: Any, name: str = "prior") -> NormalGamma:
    if not isinstance(p, NormalGamma):
        raise TypeError(f"{name} must be a NormalGamma, got {type(p).__name__}")
    return NormalGamma(as_float_array(p.mu, f"{name}.mu"),
                       as_positive_array(p.kappa, f"{name}.kappa"),
                       as_positive_array(p.a, f"{name}.a"), as_positive_array(p.b, f"{name}.b"))


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


# -------------------------------------------------------------------- Beta / Dirichlet pairs


@jax.jit
def _beta_impl(c1: jax.Array, c0: jax.Array, s: BinaryStats) -> tuple[jax.Array, jax.Array]:
    return c1 + s.successes, c0 + s.failures


def beta_update(prior: dist.Beta, stats: BinaryStats) -> dist.Beta:
    """Beta posterior ``Beta(a + successes, b + failures)`` (PRML eq. 2.18).

    Args:
        prior: ``numpyro.distributions.Beta`` (batch shape ``()`` or ``(n_features,)``).
        stats: :class:`BinaryStats` from ``bernoulli_stats`` / ``binomial_stats``.

    Returns:
        ``numpyro.distributions.Beta`` posterior.
    """
    check_distribution(prior, "prior", dist.Beta)
    s = _check_stats(stats, BinaryStats)
    c1, c0 = _beta_impl(_param(prior.concentration1), _param(prior.concentration0), s)
    return dist.Beta(c1, c0, validate_args=False)


def beta_bernoulli(prior: dist.Beta, x: ArrayLike,
                   sample_weight: ArrayLike | None = None) -> dist.Beta:
    """Beta posterior of a Bernoulli probability.

    Args:
        prior: ``numpyro.distributions.Beta``.
        x: ``(n_samples,)`` or ``(n_samples, n_features)`` binary data.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.

    Returns:
        ``numpyro.distributions.Beta`` posterior (batch shape ``()`` or ``(n_features,)``).
    """
    check_distribution(prior, "prior", dist.Beta)
    return beta_update(prior, bernoulli_stats(x, sample_weight))


def beta_binomial(prior: dist.Beta, k: ArrayLike, n: ArrayLike,
                  sample_weight: ArrayLike | None = None) -> dist.Beta:
    """Beta posterior of a binomial probability.

    Args:
        prior: ``numpyro.distributions.Beta``.
        k: ``(n_samples,)`` successes.
        n: trials per observation, a scalar or ``(n_samples,)``.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
    """
    check_distribution(prior, "prior", dist.Beta)
    return beta_update(prior, binomial_stats(k, n, sample_weight))


@jax.jit
def _dirichlet_impl(alpha: jax.Array, s: CategoryStats) -> jax.Array:
    return alpha + s.counts


def dirichlet_update(prior: dist.Dirichlet, stats: CategoryStats) -> dist.Dirichlet:
    """Dirichlet posterior ``Dir(alpha + counts)`` (PRML eq. 2.41).

    Args:
        prior: ``numpyro.distributions.Dirichlet`` with concentration ``(n_categories,)``.
        stats: :class:`CategoryStats` with ``counts`` ``(n_categories,)``.
    """
    check_distribution(prior, "prior", dist.Dirichlet)
    s = _check_stats(stats, CategoryStats)
    if s.counts.shape[-1:] != prior.event_shape:
        raise ValueError(f"stats.counts has {s.counts.shape[-1]} categories but prior has "
                         f"{prior.event_shape[0]}")
    alpha = _dirichlet_impl(_param(prior.concentration), s)
    return dist.Dirichlet(alpha, validate_args=False)


def dirichlet_categorical(prior: dist.Dirichlet, labels: ArrayLike,
                          sample_weight: ArrayLike | None = None) -> dist.Dirichlet:
    """Dirichlet posterior of categorical probabilities.

    Args:
        prior: ``numpyro.distributions.Dirichlet`` with concentration ``(n_categories,)``.
        labels: ``(n_samples,)`` integers in ``[0, n_categories)``.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
    """
    check_distribution(prior, "prior", dist.Dirichlet)
    return dirichlet_update(prior, categorical_stats(labels, prior.event_shape[0], sample_weight))


def dirichlet_multinomial(prior: dist.Dirichlet, counts: ArrayLike,
                          sample_weight: ArrayLike | None = None) -> dist.Dirichlet:
    """Dirichlet posterior of multinomial probabilities.

    Args:
        prior: ``numpyro.distributions.Dirichlet`` with concentration ``(n_categories,)``.
        counts: ``(n_samples, n_categories)`` non-negative integer counts.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
    """
    check_distribution(prior, "prior", dist.Dirichlet)
    s = multinomial_stats(counts, sample_weight)
    if s.counts.shape != prior.event_shape:
        raise ValueError(f"counts has {s.counts.shape[0]} categories but prior has "
                         f"{prior.event_shape[0]}")
    return dirichlet_update(prior, s)


# -------------------------------------------------------------- Gaussian mean / precision


@jax.jit
def _normal_mean_impl(loc: jax.Array, scale: jax.Array, s: GaussianStats,
                      variance: jax.Array) -> tuple[jax.Array, jax.Array]:
    prec0 = 1.0 / (scale * scale)
    prec_data = s.n / variance
    prec = prec0 + prec_data
    return loc + prec_data * (s.mean - loc) / prec, jax.lax.rsqrt(prec)


def normal_mean_update(prior: dist.Normal, stats: GaussianStats,
                       variance: ArrayLike) -> dist.Normal:
    """Posterior of a Gaussian mean with known ``variance`` (PRML eqs. 2.141-2.142).

    Args:
        prior: ``numpyro.distributions.Normal`` prior on the mean.
        stats: :class:`GaussianStats` (only ``n`` and ``mean`` are used).
        variance: known observation variance, > 0 (scalar or per feature).

    Returns:
        ``numpyro.distributions.Normal`` posterior on the mean.
    """
    check_distribution(prior, "prior", dist.Normal)
    s = _check_stats(stats, GaussianStats)
    var = as_positive_array(variance, "variance")
    loc, scale = _normal_mean_impl(_param(prior.loc), _param(prior.scale), s, var)
    return dist.Normal(loc, scale, validate_args=False)


def normal_known_variance(prior: dist.Normal, x: ArrayLike, variance: ArrayLike,
                          sample_weight: ArrayLike | None = None) -> dist.Normal:
    """Normal posterior on a Gaussian mean with known ``variance``.

    Args:
        prior: ``numpyro.distributions.Normal`` prior on the mean.
        x: ``(n_samples,)`` or ``(n_samples, n_features)`` draws from ``N(mean, variance)``.
        variance: known observation variance, > 0.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
    """
    check_distribution(prior, "prior", dist.Normal)
    return normal_mean_update(prior, gaussian_stats(x, sample_weight), variance)


@jax.jit
def _gamma_precision_impl(a: jax.Array, b: jax.Array, s: GaussianStats,
                          mean: jax.Array) -> tuple[jax.Array, jax.Array]:
    dm = s.mean - mean
    return a + 0.5 * s.n, b + 0.5 * (s.scatter + s.n * dm * dm)


def gamma_precision_update(prior: dist.Gamma, stats: GaussianStats,
                           mean: ArrayLike) -> dist.Gamma:
    """Posterior of a Gaussian precision with known ``mean`` (PRML eqs. 2.150-2.151):
    ``a + n/2``, ``b + sum w (x - mean)^2 / 2`` (computed from the centred statistics).

    Args:
        prior: ``numpyro.distributions.Gamma(concentration=a, rate=b)`` on the precision.
        stats: per-feature :class:`GaussianStats`.
        mean: the known mean (scalar or per feature).
    """
    check_distribution(prior, "prior", dist.Gamma)
    s = _check_stats(stats, GaussianStats)
    m = as_float_array(mean, "mean")
    a, b = _gamma_precision_impl(_param(prior.concentration), _param(prior.rate), s, m)
    return dist.Gamma(a, b, validate_args=False)


def gamma_known_mean(prior: dist.Gamma, x: ArrayLike, mean: ArrayLike,
                     sample_weight: ArrayLike | None = None) -> dist.Gamma:
    """Gamma posterior on a Gaussian precision with known ``mean``.

    Args:
        prior: ``numpyro.distributions.Gamma(concentration, rate)`` on the precision.
        x: ``(n_samples,)`` or ``(n_samples, n_features)`` draws from ``N(mean, 1/precision)``.
        mean: the known mean.
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
    """
    check_distribution(prior, "prior", dist.Gamma)
    return gamma_precision_update(prior, gaussian_stats(x, sample_weight), mean)


# -------------------------------------------------------------------------- Normal-Gamma


@jax.jit
def _normal_gamma_impl(p: NormalGamma, s: GaussianStats) -> NormalGamma:
    kappa = p.kappa + s.n
    dm = s.mean - p.mu
    return NormalGamma(mu=p.mu + s.n * dm / kappa, kappa=kappa, a=p.a + 0.5 * s.n,
                       b=p.b + 0.5 * s.scatter + 0.5 * p.kappa * s.n * dm * dm / kappa)


def normal_gamma_update(prior: NormalGamma, stats: GaussianStats) -> NormalGamma:
    """Normal-Gamma posterior (Murphy 2007 eqs. 86-89):
    ``kappa_n = kappa + n``, ``mu_n = (kappa mu + n xbar) / kappa_n``, ``a_n = a + n/2``,
    ``b_n = b + S/2 + kappa n (xbar - mu)^2 / (2 kappa_n)`` with ``S`` the scatter."""
    return _normal_gamma_impl(_check_normal_gamma(prior), _check_stats(stats, GaussianStats))


def normal_gamma(prior: NormalGamma, x: ArrayLike,
                 sample_weight: ArrayLike | None = None) -> NormalGamma:
    """Normal-Gamma posterior over an unknown Gaussian mean and precision.

    Args:
        prior: :class:`NormalGamma`.
        x: ``(n_samples,)`` (or ``(n_samples, n_features)``, independent per feature).
        sample_weight: ``(n_samples,)`` non-negative frequency weights.
    """
    _check_normal_gamma(prior)
    return normal_gamma_update(prior, gaussian_stats(x, sample_weight))


def normal_gamma_precision(p: NormalGamma) -> dist.Gamma:
    """Marginal of the precision: ``Gamma(a, rate=b)``."""
    p = _check_normal_gamma(p, "p")
    return dist.Gamma(p.a, p.b, validate_args=False)


@partial(jax.jit, static_argnames="predictive")
def _ng_student_params(p: NormalGamma, predictive: bool) -> tuple[jax.Array, ...]:
    factor = (p.kappa + 1.0) if predictive else jnp.ones_like(p.kappa)
    return 2.0 * p.a, p.mu, jnp.sqrt(p.b * factor / (p.a * p.kappa))


def normal_gamma_mean(p: NormalGamma) -> dist.StudentT:
    """Marginal of the mean: ``StudentT(2a, mu, sqrt(b / (a kappa)))`` (Murphy eq. 93)."""
    return dist.StudentT(*_ng_student_params(_check_normal_gamma(p, "p"), False),
                         validate_args=False)


def normal_gamma_predictive(p: NormalGamma) -> dist.StudentT:
    """Posterior predictive of a new observation:
    ``StudentT(2a, mu, sqrt(b (kappa + 1) / (a kappa)))`` (Murphy eq. 100; PRML eq. 2.159)."""
    return dist.StudentT(*_ng_student_params(_check_normal_gamma(p, "p"), True),
                         validate_args=False)


@jax.jit
def _normal_gamma_log_prob_impl(p: NormalGamma, mean: jax.Array,
                                precision: jax.Array) -> jax.Array:
    return (dist.Normal(p.mu, jax.lax.rsqrt(p.kappa * precision)).log_prob(mean)
            + dist.Gamma(p.a, p.b).log_prob(precision))


def normal_gamma_log_prob(p: NormalGamma, mean: ArrayLike, precision: ArrayLike) -> jax.Array:
    """Joint log-density ``log N(mean | mu, 1/(kappa precision)) + log Gamma(precision | a, b)``.

    Args:
        p: :class:`NormalGamma`.
        mean, precision: broadcastable arrays of points (precision > 0).
    """
    p = _check_normal_gamma(p, "p")
    return _normal_gamma_log_prob_impl(p, as_float_array(mean, "mean"),
                                       as_positive_array(precision, "precision"))


@partial(jax.jit, static_argnames="sample_shape")
def _normal_gamma_sample_impl(key: jax.Array, p: NormalGamma,
                              sample_shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    k_tau, k_mean = jax.random.split(key)
    shape = sample_shape + jnp.broadcast_shapes(*(jnp.shape(v) for v in p))
    mu, kappa, a, b = (jnp.broadcast_to(v, shape) for v in p)
    tau = jax.random.gamma(k_tau, a, shape, dtype=a.dtype) / b
    z = jax.random.normal(k_mean, shape, dtype=mu.dtype)
    return mu + z * jax.lax.rsqrt(kappa * tau), tau


def normal_gamma_sample(key: jax.Array, p: NormalGamma,
                        sample_shape: tuple[int, ...] = ()) -> tuple[jax.Array, jax.Array]:
    """Draw ``(mean, precision)`` pairs of shape ``sample_shape + batch_shape``."""
    check_key(key)
    p = _check_normal_gamma(p, "p")
    return _normal_gamma_sample_impl(key, p, tuple(int(s) for s in sample_shape))


# ------------------------------------------------------------------ Normal-inverse-Wishart


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
    s = _check_stats(stats, GaussianStats)
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

