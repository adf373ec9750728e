"""Probability layer: maximum-likelihood estimates, conjugate updates and information measures
on ``numpyro.distributions`` objects.

Importing this package registers the closed-form KL divergences that numpyro lacks
(:data:`espresso_jax.prob.info.REGISTERED_PAIRS`).
"""

from espresso_jax.prob import conjugate, estimate, info

__all__ = ["conjugate", "estimate", "info"]
