"""A one-hidden-layer Bayesian neural network for regression, sampled by NUTS.

Model (Neal 1996; sampled exactly, up to MC error, it is the reference for approximate BNNs)::

    lambda_l ~ Gamma(a_w, b_w)   per layer l = 1, 2     (weight_prior="gamma"; else fixed:
                                                         lambda_l = 1 / prior_scale^2)
    W1 (d, H), b1 (H,)  ~ N(0, 1 / lambda_1)
    W2 (H,)             ~ N(0, 1 / (H lambda_2)),   b2 ~ N(0, 1 / lambda_2)
    tau                 ~ Gamma(a_tau, b_tau)        (noise precision)
    y | x               ~ N(W2 . act(x W1 + b1) + b2, 1 / tau)

The output weights' variance is divided by the width ``H`` so the prior over functions does not
grow with the width (Neal's scaling). Weights are sampled non-centred (``W = z / sqrt(lambda)``
with standard-normal ``z``): that removes the funnel between a precision and its weights that
slows NUTS down; the weights are recorded as deterministic sites.

The posterior predictive of a test input is the mixture ``1/S sum_s N(f_s(x), 1/tau_s)`` over
the ``S`` draws: :func:`predict` returns the per-draw means and variances, :func:`evaluate` the
RMSE of the predictive mean and the mixture log-likelihood
(:func:`espresso_jax.metrics.mc_log_likelihood`), in the target's original units.
:func:`uci_reference` runs it on a standard UCI split as the reference predictive LL for the
approximate methods (MC dropout, Bayes by Backprop).

References:
    R. M. Neal, *Bayesian Learning for Neural Networks*, Springer 1996.
    M. D. Hoffman and A. Gelman, "The No-U-Turn Sampler", JMLR 15, 2014.
    J. M. Hernández-Lobato and R. P. Adams, "Probabilistic backpropagation", ICML 2015 (the UCI
    protocol).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.typing import ArrayLike

from espresso_jax import metrics
from espresso_jax import validation as V
from espresso_jax.fully_bayes.mcmc import run_nuts_samples, summarize

__all__ = ["BNNPosterior", "UCIReference", "ACTIVATIONS", "WEIGHT_PRIORS", "model", "fit_nuts",
           "predict", "evaluate", "uci_reference"]

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}
WEIGHT_PRIORS = ("gamma", "fixed")


class BNNPosterior(NamedTuple):
    """Posterior draws of the one-hidden-layer BNN (``S`` draws, chains concatenated).

    Attributes:
        W1: ``(S, d, H)``. b1: ``(S, H)``. W2: ``(S, H)``. b2: ``(S,)``.
        noise_precision: ``(S,)`` tau.
        activation: ``"tanh"`` or ``"relu"``.
        num_chains: chains the draws came from (``S / num_chains`` draws each, in order).
        num_divergent: ``()`` divergent NUTS transitions after warm-up.
    """

    W1: jax.Array
    b1: jax.Array
    W2: jax.Array
    b2: jax.Array
    noise_precision: jax.Array
    activation: str
    num_chains: int
    num_divergent: jax.Array


class UCIReference(NamedTuple):
    """Result of :func:`uci_reference` (RMSE and LL in the target's original units).

    Attributes:
        name, split: data set and split index.
        rmse: test RMSE of the posterior predictive mean.
        log_likelihood: mean test log-likelihood of the predictive mixture (nats per point).
        r_hat_max: largest split R-hat over the test predictive means and the noise precision
            (function-space quantities: weights themselves are not identified, because of the
            network's permutation and sign symmetries); NaN with fewer than 4 draws per chain.
        r_hat_median: median of the same R-hats.
        ess_min: smallest effective sample size of the same quantities.
        num_divergent: divergent transitions.
        wall_time_s: seconds for sampling and prediction (compilation included).
        settings: the NUTS and model settings used.
    """

    name: str
    split: int
    rmse: float
    log_likelihood: float
    r_hat_max: float
    r_hat_median: float
    ess_min: float
    num_divergent: int
    wall_time_s: float
    settings: dict[str, Any]


def _forward(X: jax.Array, W1, b1, W2, b2, act) -> jax.Array:
    """Network output for one draw, ``X (n, d) -> (n,)``."""
    return act(X @ W1 + b1[None, :]) @ W2 + b2


def model(
    X: jax.Array,
    y: jax.Array | None = None,
    *,
    n_hidden: int = 50,
    activation: str = "tanh",
    weight_prior: str = "gamma",
    prior_scale: float = 1.0,
    a_weight: float = 1.0,
    b_weight: float = 1.0,
    a_noise: float = 1.0,
    b_noise: float = 0.01,
) -> None:
    """NumPyro model of the BNN (sites ``prec_1``, ``prec_2`` with the Gamma hyperprior,
    ``W1_z``, ``b1_z``, ``W2_z``, ``b2_z``, ``noise_precision``; deterministic ``W1, b1, W2,
    b2``; observed ``y``).

    Args:
        X: ``(n, d)`` inputs (standardise them).
        y: ``(n,)`` targets (standardised), or ``None`` for the prior predictive.
        n_hidden: ``H`` hidden units.
        activation: ``"tanh"`` or ``"relu"``.
        weight_prior: ``"gamma"`` (per-layer precision with a ``Gamma(a_weight, b_weight)``
            hyperprior) or ``"fixed"`` (precision ``1 / prior_scale^2``).
        prior_scale: weight prior standard deviation of the ``"fixed"`` prior.
        a_weight, b_weight: shape and rate of the weight-precision hyperprior.
        a_noise, b_noise: shape and rate of the noise-precision prior (the default
            ``Gamma(1, 0.01)`` has mean 100, i.e. noise sd 0.1 of a standardised target, and
            sd 100: weak).
    """
    dtype = X.dtype
    d = X.shape[1]
    act = ACTIVATIONS[activation]

    def const(v):
        return jnp.asarray(v, dtype)

    if weight_prior == "gamma":
        prec = [numpyro.sample(f"prec_{layer}", dist.Gamma(const(a_weight), const(b_weight)))
                for layer in (1, 2)]
        scales = [jax.lax.rsqrt(p) for p in prec]
    else:
        scales = [const(prior_scale), const(prior_scale)]
    std = dist.Normal(const(0.0), const(1.0))
    W1 = numpyro.deterministic("W1", scales[0] * numpyro.sample(
        "W1_z", std.expand((d, n_hidden)).to_event(2)))
    b1 = numpyro.deterministic("b1", scales[0] * numpyro.sample(
        "b1_z", std.expand((n_hidden,)).to_event(1)))
    W2 = numpyro.deterministic("W2", scales[1] / math.sqrt(n_hidden) * numpyro.sample(
        "W2_z", std.expand((n_hidden,)).to_event(1)))
    b2 = numpyro.deterministic("b2", scales[1] * numpyro.sample("b2_z", std))
    tau = numpyro.sample("noise_precision", dist.Gamma(const(a_noise), const(b_noise)))
    f = _forward(X, W1, b1, W2, b2, act)
    numpyro.sample("y", dist.Normal(f, jax.lax.rsqrt(tau)).to_event(1), obs=y)


def _model_options(n_hidden, activation, weight_prior, prior_scale, a_weight, b_weight,
                   a_noise, b_noise) -> dict[str, Any]:
    return {
        "n_hidden": V.check_int(n_hidden, "n_hidden", min_value=1),
        "activation": V.check_choice(activation, "activation", tuple(ACTIVATIONS)),
        "weight_prior": V.check_choice(weight_prior, "weight_prior", WEIGHT_PRIORS),
        "prior_scale": V.check_positive(prior_scale, "prior_scale"),
        "a_weight": V.check_positive(a_weight, "a_weight"),
        "b_weight": V.check_positive(b_weight, "b_weight"),
        "a_noise": V.check_positive(a_noise, "a_noise"),
        "b_noise": V.check_positive(b_noise, "b_noise"),
    }


def fit_nuts(
    key: jax.Array,
    X: ArrayLike,
    y: ArrayLike,
    *,
    n_hidden: int = 50,
    activation: str = "tanh",
    weight_prior: str = "gamma",
    prior_scale: float = 1.0,
    a_weight: float = 1.0,
    b_weight: float = 1.0,
    a_noise: float = 1.0,
    b_noise: float = 0.01,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 1,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    progress_bar: bool = False,
) -> BNNPosterior:
    """Sample the BNN posterior with NUTS (diagonal mass matrix).

    Args:
        key: PRNG key.
        X: ``(n, d)`` standardised inputs. y: ``(n,)`` standardised targets.
        n_hidden, activation, weight_prior, prior_scale, a_weight, b_weight, a_noise, b_noise:
            see :func:`model`.
        num_warmup, num_samples, num_chains: NUTS schedule (per chain).
        target_accept_prob: NUTS target acceptance probability.
        max_tree_depth: maximum NUTS tree depth (``2^depth - 1`` leapfrog steps at most).
        progress_bar: show NumPyro's progress bar.

    Returns:
        :class:`BNNPosterior`.

    References:
        Neal (1996); Hoffman and Gelman (2014).
    """
    X = V.as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    y = V.as_float_array(y, "y", ndim=1, shape_hint="(n_samples,)")
    V.check_same_length(X=X, y=y)
    options = _model_options(n_hidden, activation, weight_prior, prior_scale, a_weight,
                             b_weight, a_noise, b_noise)
    samples, n_div = run_nuts_samples(key, model, (X, y), options, num_warmup=num_warmup,
                               num_samples=num_samples, num_chains=num_chains,
                               progress_bar=progress_bar,
                               target_accept_prob=target_accept_prob, dense_mass=False,
                               max_tree_depth=max_tree_depth, chain_method=None)
    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in samples.items()}
    return BNNPosterior(flat["W1"], flat["b1"], flat["W2"], flat["b2"],
                        flat["noise_precision"], options["activation"], num_chains, n_div)


def _check_posterior(posterior: Any) -> BNNPosterior:
    if not isinstance(posterior, BNNPosterior):
        raise TypeError(f"posterior must be a BNNPosterior, got {type(posterior).__name__}")
    V.check_choice(posterior.activation, "posterior.activation", tuple(ACTIVATIONS))
    if posterior.W1.ndim != 3:
        raise ValueError(f"posterior.W1 must be (S, d, H), got shape {posterior.W1.shape}")
    return posterior


def _predict_impl(W1, b1, W2, b2, tau, X, activation):
    act = ACTIVATIONS[activation]
    means = jax.vmap(lambda w1, c1, w2, c2: _forward(X, w1, c1, w2, c2, act))(
        W1, b1, W2, b2)                                                   # (S, n)
    return means, jnp.broadcast_to((1.0 / tau)[:, None], means.shape)


_predict_jit = jax.jit(_predict_impl, static_argnames="activation")


def predict(posterior: BNNPosterior, X_new: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Per-draw predictive means and noise variances at new inputs.

    Args:
        posterior: :class:`BNNPosterior` from :func:`fit_nuts`.
        X_new: ``(n, d)`` inputs, standardised like the training inputs.

    Returns:
        ``mean_t (S, n)`` and ``var_t (S, n)`` (``1 / tau_s`` broadcast over inputs); feed them
        to :mod:`espresso_jax.metrics` (decompose_regression, mc_log_likelihood).
    """
    p = _check_posterior(posterior)
    X_new = V.as_float_array(X_new, "X_new", ndim=2, shape_hint="(n, n_features)",
                             n_columns=p.W1.shape[1])
    return _predict_jit(p.W1, p.b1, p.W2, p.b2, p.noise_precision, X_new, p.activation)


def evaluate(posterior: BNNPosterior, X: ArrayLike, y: ArrayLike, *,
             y_scale: float = 1.0) -> tuple[float, float]:
    """Test RMSE of the predictive mean and mean mixture log-likelihood.

    Args:
        posterior: :class:`BNNPosterior`.
        X: ``(n, d)`` test inputs. y: ``(n,)`` test targets (standardised like training).
        y_scale: the target's training standard deviation: RMSE is multiplied by it and
            ``log y_scale`` is subtracted from the LL, giving both in the original units.

    Returns:
        ``(rmse, log_likelihood)`` as floats.
    """
    y_scale = V.check_positive(y_scale, "y_scale")
    mean_t, var_t = predict(posterior, X)
    y = V.as_float_array(y, "y", ndim=1, shape_hint="(n,)")
    rmse = float(metrics.rmse(y, jnp.mean(mean_t, axis=0))) * y_scale
    ll = float(metrics.mc_log_likelihood(y, mean_t, var_t)) - math.log(y_scale)
    return rmse, ll


def uci_reference(
    key: jax.Array,
    name: str = "yacht",
    split: int = 0,
    *,
    data_dir: str | os.PathLike | None = None,
    n_hidden: int = 50,
    activation: str = "tanh",
    weight_prior: str = "gamma",
    num_warmup: int = 1500,
    num_samples: int = 500,
    num_chains: int = 2,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    progress_bar: bool = False,
    **prior_options: float,
) -> UCIReference:
    """NUTS BNN on one standard UCI split: the reference predictive LL for approximate BNNs.

    Inputs and target are standardised with the training split's statistics
    (:func:`espresso_jax.datasets.uci.standardized_split`); RMSE and LL are reported in the
    target's original units, as in the UCI benchmark tables.

    Args:
        key: PRNG key.
        name: UCI data set (small ones are practical: ``"yacht"``, ``"bostonHousing"``).
        split: split index.
        data_dir: folder holding ``uci/`` (default: see :mod:`espresso_jax.datasets.uci`).
        n_hidden, activation, weight_prior: see :func:`model`; so do the keyword arguments
            ``prior_options``.
        num_warmup, num_samples, num_chains, target_accept_prob, max_tree_depth, progress_bar:
            NUTS settings (per chain). The long warm-up matters: on yacht
            split 0 with 500 warm-up steps the two chains had not reached the same noise level
            (R-hat 1.3, effective sample size 2-4 for the test LL of a draw); with 1500 the
            split R-hats were at most 1.09 (median 1.005).

    Returns:
        :class:`UCIReference`.
    """
    from espresso_jax.datasets.uci import load_uci, standardized_split

    sp = standardized_split(load_uci(name, data_dir), split)
    num_chains = V.check_int(num_chains, "num_chains", min_value=1)
    num_samples = V.check_int(num_samples, "num_samples", min_value=1)
    start = time.perf_counter()
    post = fit_nuts(key, sp.X_train, sp.y_train, n_hidden=n_hidden, activation=activation,
                    weight_prior=weight_prior, num_warmup=num_warmup, num_samples=num_samples,
                    num_chains=num_chains, target_accept_prob=target_accept_prob,
                    max_tree_depth=max_tree_depth, progress_bar=progress_bar,
                    **prior_options)
    rmse, ll = evaluate(post, sp.X_test, sp.y_test, y_scale=sp.y_std)
    mean_t, _ = predict(post, sp.X_test)
    jax.block_until_ready(mean_t)
    wall = time.perf_counter() - start
    by_chain = {
        "f_test": np.asarray(mean_t).reshape(num_chains, num_samples, -1),
        "noise_precision": np.asarray(post.noise_precision).reshape(num_chains, num_samples),
    }
    if num_samples >= 4:
        summary = summarize(by_chain, group_by_chain=True).values()
        r_hats = np.concatenate([np.ravel(s.r_hat) for s in summary])
        ess = np.concatenate([np.ravel(s.ess) for s in summary])
        r_hat_max, r_hat_median, ess_min = (float(np.max(r_hats)), float(np.median(r_hats)),
                                            float(np.min(ess)))
    else:
        r_hat_max = r_hat_median = ess_min = math.nan
    settings = {"n_hidden": n_hidden, "activation": activation, "weight_prior": weight_prior,
                "num_warmup": num_warmup, "num_samples": num_samples, "num_chains": num_chains,
                "target_accept_prob": target_accept_prob, "max_tree_depth": max_tree_depth,
                **prior_options}
    return UCIReference(name, int(split), rmse, ll, r_hat_max, r_hat_median, ess_min,
                        int(post.num_divergent), wall, settings)
