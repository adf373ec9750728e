"""Fully Bayesian models in NumPyro, sampled with NUTS (or fitted with SVI).

- :mod:`~espresso_jax.fully_bayes.mcmc`: ``run_nuts`` / ``run_svi`` helpers and ``summarize``.
- :mod:`~espresso_jax.fully_bayes.linear`: linear regression with Gamma hyperpriors on the
  weight and noise precisions.
- :mod:`~espresso_jax.fully_bayes.logistic`: Bayesian logistic regression (the reference for
  the Laplace approximation in :mod:`espresso_jax.linear.logistic`).
- :mod:`~espresso_jax.fully_bayes.dpgmm`: truncated stick-breaking Dirichlet-process GMM with
  the assignments marginalised (NUTS or SVI), the reference for the variational DP-GMM.
- :mod:`~espresso_jax.fully_bayes.bnn`: a one-hidden-layer Bayesian neural net sampled by NUTS,
  the gold-standard predictive reference for Bayes by Backprop and MC dropout.
"""

from espresso_jax.fully_bayes import bnn, dpgmm, linear, logistic, mcmc
from espresso_jax.fully_bayes.mcmc import (
    SiteSummary,
    SVIResult,
    run_nuts,
    run_nuts_samples,
    run_svi,
    summarize,
)

__all__ = ["bnn", "dpgmm", "linear", "logistic", "mcmc", "SiteSummary", "SVIResult", "run_nuts",
           "run_nuts_samples",
           "run_svi", "summarize"]
