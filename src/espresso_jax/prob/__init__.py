"""Probability layer: maximum-likelihood estimates, conjugate updates and information measures
on ``numpyro.distributions`` objects, and the one home of the math the models share: Gaussian
log-density kernels (:mod:`~espresso_jax.prob.gaussian`), weighted moments
(:mod:`~espresso_jax.prob.moments`) and the Cholesky-with-jitter policy
(:mod:`~espresso_jax.prob.linalg`).

Importing this package registers the closed-form KL divergences that numpyro lacks
(:data:`espresso_jax.prob.info.REGISTERED_PAIRS`).
"""

from espresso_jax.prob import (
    conjugate,
    draws,
    estimate,
    gaussian,
    info,
    kl_directions,
    linalg,
    moments,
)

__all__ = ["conjugate", "draws", "estimate", "gaussian", "info", "kl_directions", "linalg",
           "moments"]
