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

The families live in :mod:`~espresso_jax.prob.conjugate.beta_dirichlet` (Beta, Dirichlet),
:mod:`~espresso_jax.prob.conjugate.univariate_gaussian` (Gaussian mean, Gamma precision,
Normal-Gamma) and :mod:`~espresso_jax.prob.conjugate.multivariate_gaussian`
(Normal-inverse-Wishart); :mod:`~espresso_jax.prob.conjugate.checks` holds their input checks.
"""

from espresso_jax.prob.conjugate.beta_dirichlet import (
    beta_bernoulli,
    beta_binomial,
    beta_update,
    dirichlet_categorical,
    dirichlet_multinomial,
    dirichlet_update,
)
from espresso_jax.prob.conjugate.multivariate_gaussian import (
    NormalInverseWishart,
    inverse_wishart_log_prob,
    niw_log_prob,
    niw_mean,
    niw_posterior,
    niw_precision,
    niw_predictive,
    niw_sample,
    niw_update,
    normal_inverse_wishart,
)
from espresso_jax.prob.conjugate.univariate_gaussian import (
    NormalGamma,
    gamma_known_mean,
    gamma_precision_update,
    normal_gamma,
    normal_gamma_log_prob,
    normal_gamma_mean,
    normal_gamma_precision,
    normal_gamma_predictive,
    normal_gamma_sample,
    normal_gamma_update,
    normal_known_variance,
    normal_mean_update,
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
