"""Bayesian logistic regression sampled exactly (up to MC error) with NUTS.

Same model and prior as :mod:`espresso_jax.linear.logistic`::

    w ~ N(m₀, S₀)   (default N(0, α⁻¹I)),   t_n | φ_n, w ~ Bernoulli(σ(wᵀφ_n))

It is the reference the Laplace approximation is checked against: the posterior predictive
``p(y = 1 | φ, data) = E[σ(wᵀφ)]`` is estimated by averaging over posterior draws.

References:
    C. M. Bishop, *Pattern Recognition and Machine Learning*, §4.3.2, §4.5.
    Hoffman and Gelman, "The No-U-Turn Sampler", JMLR 15, 2014.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax.typing import ArrayLike

from espresso_jax import validation as V
from espresso_jax.fully_bayes.mcmc import run_nuts_samples
from espresso_jax.linear.logistic import check_design, check_labels, gaussian_prior

__all__ = ["LogisticPosterior", "model", "fit_nuts", "predict_proba"]


class LogisticPosterior(NamedTuple):
    """Posterior draws of Bayesian logistic regression.

    Attributes:
        w: ``(n_draws, n_features)`` weights (chains concatenated chain by chain).
        num_chains: chains the draws came from.
        num_divergent: ``()`` divergent NUTS transitions after warm-up.
    """

    w: jax.Array
    num_chains: int
    num_divergent: jax.Array


def model(
    X: jax.Array, y: jax.Array | None = None, *, prior_mean: jax.Array,
    prior_precision: jax.Array,
) -> None:
    """NumPyro model: site ``w`` with a Gaussian prior, observed Bernoulli labels ``y``.

    Args:
        X: ``(n_samples, n_features)`` design matrix, rows ``phi(x_n)``.
        y: ``(n_samples,)`` labels in {0, 1} (floats), or ``None`` for the prior predictive.
        prior_mean: ``(n_features,)``.
        prior_precision: ``(n_features, n_features)`` symmetric positive definite.
    """
    w = numpyro.sample("w", dist.MultivariateNormal(prior_mean, precision_matrix=prior_precision))
    numpyro.sample("y", dist.Bernoulli(logits=X @ w).to_event(1), obs=y)


def fit_nuts(
    key: jax.Array,
    X: ArrayLike,
    y: ArrayLike,
    *,
    alpha: float | None = None,
    prior_mean: ArrayLike | None = None,
    prior_precision: ArrayLike | None = None,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 1,
    target_accept_prob: float = 0.8,
    dense_mass: bool = True,
    progress_bar: bool = False,
) -> LogisticPosterior:
    """Sample the Bayesian logistic-regression posterior with NUTS.

    Args:
        key: PRNG key.
        X: ``(n_samples, n_features)`` design matrix, rows ``phi(x_n)``
            (include a bias column yourself).
        y: ``(n_samples,)`` labels in {0, 1}.
        alpha, prior_mean, prior_precision: the Gaussian prior, as in
            :func:`espresso_jax.linear.logistic.fit_laplace` (default ``N(0, I)``).
        num_warmup, num_samples, num_chains: NUTS schedule (per chain).
        target_accept_prob: NUTS target acceptance probability.
        dense_mass: adapt a dense mass matrix (the weights are usually correlated).
        progress_bar: show NumPyro's progress bar.

    Returns:
        :class:`LogisticPosterior`.

    References:
        PRML §4.3.2, §4.5; Hoffman and Gelman (2014).
    """
    X = check_design(X)
    y = check_labels(y)
    V.check_same_length(X=X, y=y)
    prior = gaussian_prior(X.shape[1], alpha=alpha, prior_mean=prior_mean,
                           prior_precision=prior_precision)
    samples, n_div = run_nuts_samples(
        key, model, (X, y), {"prior_mean": prior.mean, "prior_precision": prior.precision},
        num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
        progress_bar=progress_bar, target_accept_prob=target_accept_prob,
        dense_mass=dense_mass, max_tree_depth=10, chain_method=None)
    w = samples["w"]
    return LogisticPosterior(w.reshape((-1,) + w.shape[2:]), num_chains, n_div)


@jax.jit
def _predict_impl(w, X_new):
    return jnp.mean(jax.vmap(lambda ws: jax.nn.sigmoid(X_new @ ws))(w), axis=0)


def predict_proba(posterior: LogisticPosterior, X_new: ArrayLike) -> jax.Array:
    """Posterior predictive ``p(y = 1 | φ, data) ≈ (1/S) Σ_s σ(w_sᵀφ)`` over the draws.

    Args:
        posterior: :class:`LogisticPosterior` from :func:`fit_nuts`.
        X_new: ``(n_new, n_features)`` design matrix of the new inputs.

    Returns:
        ``(n_new,)`` probabilities.

    References:
        PRML §4.5.2 (4.145).
    """
    w = _check_posterior(posterior)
    X_new = V.as_float_array(X_new, "X_new", ndim=2, shape_hint="(n_new, n_features)",
                               n_columns=w.shape[1])
    return _predict_impl(w, X_new)


def _check_posterior(posterior: Any) -> jax.Array:
    if not isinstance(posterior, LogisticPosterior):
        raise TypeError(f"posterior must be a LogisticPosterior, got "
                        f"{type(posterior).__name__}")
    return V.as_float_array(posterior.w, "posterior.w", ndim=2,
                            shape_hint="(n_draws, n_features)")
