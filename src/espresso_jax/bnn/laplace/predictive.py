"""Predictives of a Laplace posterior: the linearised (GLM) predictive, its probit and Monte
Carlo link approximations, and Monte Carlo over sampled weights.

The GLM predictive linearises the network at the MAP, ``f(x; θ) ≈ f(x; θ_MAP) + J(x)(θ −
θ_MAP)``, so ``f(x) ~ N(f_MAP(x), J Σ Jᵀ)`` (Immer, Korzepa & Bauer 2021). Regression adds the
noise ``1/β``; classification pushes the Gaussian logits through the link by the probit
approximation ``softmax(f / sqrt(1 + π/8 · diag(J Σ Jᵀ)))`` (MacKay 1992; the multi-class
form of laplace-torch) or by sampling the logits.

References:
    Immer, Korzepa & Bauer, "Improving predictions of Bayesian neural nets via local
    linearization", AISTATS 2021. MacKay, "The evidence framework applied to classification
    networks", Neural Computation 4(5), 1992.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from espresso_jax.bnn.laplace.curvature import jacobians
from espresso_jax.bnn.laplace.network import mlp_apply
from espresso_jax.bnn.laplace.posterior import (
    LaplaceFit,
    check_prior_precision,
    network_of,
    quadratic_form,
    sample_weights,
)
from espresso_jax.validation import as_float_array, check_choice, check_int, check_key

__all__ = ["glm_predictive", "regression_predictive", "probit_predictive",
           "glm_mc_predictive", "sample_predictive"]


def _check_X(fit: LaplaceFit, X) -> jax.Array:
    d_in = fit.params[0][0].shape[0]
    return as_float_array(X, "X", ndim=2, shape_hint="(n, d_in)",
                          n_columns=d_in).astype(fit.mean.dtype)


def glm_predictive(fit: LaplaceFit, prior_precision, X, activation: str = "tanh"
                   ) -> tuple[jax.Array, jax.Array]:
    """Linearised predictive of the outputs (traceable).

    Args:
        fit: :class:`~espresso_jax.bnn.laplace.posterior.LaplaceFit`.
        prior_precision: ``δ``, ``()`` or ``(P,)``.
        X: ``(n, d_in)`` inputs.
        activation: the network's hidden activation.

    Returns:
        ``f_mu (n, C)`` and ``f_var (n, C, C)`` (``J Σ Jᵀ``, no observation noise).
    """
    delta = check_prior_precision(prior_precision, fit)
    net, Xs, act = network_of(fit, _check_X(fit, X), activation)
    f, J = jacobians(net, Xs, act)
    return f, quadratic_form(fit.curvature, delta, J)


def regression_predictive(fit: LaplaceFit, prior_precision, X, activation: str = "tanh"
                          ) -> tuple[jax.Array, jax.Array]:
    """GLM predictive of a regression target: ``mean (n, C)`` and ``var (n, C)`` =
    ``diag(J Σ Jᵀ) + 1/β``."""
    f, f_var = glm_predictive(fit, prior_precision, X, activation)
    return f, jnp.diagonal(f_var, axis1=1, axis2=2) + 1.0 / fit.noise_precision


def probit_predictive(f_mu: jax.Array, f_var: jax.Array, likelihood: str = "classification"
                      ) -> jax.Array:
    """Probit approximation of ``E[link(f)]``, ``f ~ N(f_mu, f_var)``.

    Args:
        f_mu: ``(n, C)`` logits' mean.
        f_var: ``(n, C, C)`` their covariance.
        likelihood: ``"classification"`` (softmax) or ``"binary"`` (sigmoid, ``C = 1``).

    Returns:
        ``(n, C)`` probabilities.
    """
    check_choice(likelihood, "likelihood", ("classification", "binary"))
    var = jnp.diagonal(f_var, axis1=1, axis2=2)
    z = f_mu / jnp.sqrt(1.0 + (math.pi / 8) * var)
    return jax.nn.sigmoid(z) if likelihood == "binary" else jax.nn.softmax(z, axis=-1)


def glm_mc_predictive(key: jax.Array, f_mu: jax.Array, f_var: jax.Array,
                      likelihood: str = "classification", n_samples: int = 100) -> jax.Array:
    """Monte Carlo ``E[link(f)]`` over ``f ~ N(f_mu, f_var)`` (vmapped draws).

    Returns:
        ``(n, C)`` probabilities.
    """
    key = check_key(key)
    check_choice(likelihood, "likelihood", ("classification", "binary"))
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    lam, U = jnp.linalg.eigh(0.5 * (f_var + jnp.swapaxes(f_var, 1, 2)))
    root = U * jnp.sqrt(jnp.clip(lam, 0.0))[:, None, :]              # (n, C, C)
    z = jax.random.normal(key, (n_samples,) + f_mu.shape, f_mu.dtype)
    f = f_mu[None] + jnp.einsum("ncd,snd->snc", root, z)
    link = jax.nn.sigmoid(f) if likelihood == "binary" else jax.nn.softmax(f, axis=-1)
    return jnp.mean(link, axis=0)


def sample_predictive(key: jax.Array, fit: LaplaceFit, prior_precision, X,
                      activation: str = "tanh", n_samples: int = 100) -> jax.Array:
    """Network outputs under sampled weights ``θ_s ~ q(θ)`` (no linearisation).

    Returns:
        ``(n_samples, n, C)`` outputs (logits for classification).
    """
    key = check_key(key)
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    delta = check_prior_precision(prior_precision, fit)
    net, Xs, act = network_of(fit, _check_X(fit, X), activation)
    _, unravel = ravel_pytree(net)
    thetas = sample_weights(key, fit, delta, n_samples)
    return jax.vmap(lambda t: mlp_apply(unravel(t), Xs, act))(thetas)
