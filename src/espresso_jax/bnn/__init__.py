"""Bayesian neural networks: Bayes by Backprop, MC dropout, aleatoric heads, uncertainty metrics.

- :mod:`~espresso_jax.bnn.bbb`: Bayesian dense/conv layers (w = μ + softplus(ρ)·ε), Gaussian
  and scale-mixture priors, closed-form or MC KL collected by the layers, local
  reparameterisation; :mod:`~espresso_jax.bnn.bbb_recurrent` a Bayesian GRU.
- :mod:`~espresso_jax.bnn.bbb_elbo`: the minibatch ELBO with N/M scaling and KL schedules,
  fitting on the :mod:`espresso_jax.train` engine, predictives;
  :mod:`~espresso_jax.bnn.bbb_prune` signal-to-noise pruning.
- :mod:`~espresso_jax.bnn.dropout`: MC dropout (Gal & Ghahramani 2016) with the weight decay of
  the length-scale prior, vmapped stochastic passes.
- :mod:`~espresso_jax.bnn.active`: deep Bayesian active learning (BALD, max-entropy,
  variation ratios, random) in one compiled loop vmapped over seeds and acquisition functions.
- :mod:`~espresso_jax.bnn.heteroscedastic`: aleatoric heads and losses. The uncertainty
  metrics they are scored with (decompositions, entropy, BALD, NLL, Brier, ECE) live below the
  model packages, in :mod:`espresso_jax.metrics`.
- :mod:`~espresso_jax.bnn.swag`: SWA/SWAG moments from SGD iterates and sampling;
  :mod:`~espresso_jax.bnn.swag_fit` SWAG/MultiSWAG fits and predictives.
- :mod:`~espresso_jax.bnn.sgmcmc`: SGLD, SGHMC and the cyclical schedule (Zhang et al. 2020);
  :mod:`~espresso_jax.bnn.sgmcmc_sampler` the minibatch sampler loop and predictives.
- :mod:`~espresso_jax.bnn.laplace`: Laplace approximations for networks (last layer or all
  weights; full, diagonal or KFAC Gauss-Newton), prior precision by marginal likelihood, GLM,
  probit and sampled predictives.
"""

from espresso_jax.bnn import (
    active,
    bbb,
    bbb_elbo,
    bbb_prune,
    bbb_recurrent,
    dropout,
    ensemble,
    heteroscedastic,
    laplace,
    sgmcmc,
    sgmcmc_sampler,
    swag,
    swag_fit,
)

__all__ = ["active", "bbb", "bbb_elbo", "bbb_prune", "bbb_recurrent", "dropout", "ensemble",
           "heteroscedastic", "laplace", "sgmcmc", "sgmcmc_sampler", "swag", "swag_fit"]
