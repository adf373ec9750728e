"""Laplace approximations for dense networks (issue 16): last-layer or full-network posterior
with full, diagonal or Kronecker-factored (KFAC) generalised Gauss-Newton curvature, the prior
precision by the Laplace marginal likelihood (vmapped grid or gradient ascent), and the
linearised (GLM) probit / MC and sampled-weight predictives.

- :mod:`~espresso_jax.bnn.laplace.network`: MLPs as pure functions of ``((W, b), ...)``.
- :mod:`~espresso_jax.bnn.laplace.curvature`: GGN full / diagonal / KFAC, likelihoods.
- :mod:`~espresso_jax.bnn.laplace.posterior`: :func:`fit_laplace`, log determinants,
  ``J Σ Jᵀ``, weight sampling per structure.
- :mod:`~espresso_jax.bnn.laplace.marglik`: log marginal likelihood, prior tuning, the
  last-layer evidence (via :mod:`espresso_jax.linear.bayes`).
- :mod:`~espresso_jax.bnn.laplace.predictive`: GLM / probit / MC / sampled predictives.
"""

from espresso_jax.bnn.laplace import curvature, marglik, network, posterior, predictive
from espresso_jax.bnn.laplace.marglik import (
    last_layer_evidence,
    last_layer_features,
    log_marginal_likelihood,
    tune_prior_gradient,
    tune_prior_grid,
)
from espresso_jax.bnn.laplace.network import init_mlp, mlp_apply
from espresso_jax.bnn.laplace.posterior import LaplaceFit, fit_laplace, laplace_fit
from espresso_jax.bnn.laplace.predictive import (
    glm_mc_predictive,
    glm_predictive,
    probit_predictive,
    regression_predictive,
    sample_predictive,
)

__all__ = [
    "curvature", "marglik", "network", "posterior", "predictive", "LaplaceFit", "fit_laplace",
    "laplace_fit", "init_mlp", "mlp_apply", "log_marginal_likelihood", "tune_prior_grid",
    "tune_prior_gradient", "last_layer_features", "last_layer_evidence", "glm_predictive",
    "regression_predictive", "probit_predictive", "glm_mc_predictive", "sample_predictive",
]
