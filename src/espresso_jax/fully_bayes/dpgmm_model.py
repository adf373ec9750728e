"""The NumPyro model of the truncated stick-breaking Dirichlet-process Gaussian mixture.

:func:`model` is the joint density on feature-standardised data with the assignments summed out
(the equations, priors and the reasons behind them are in :mod:`espresso_jax.fully_bayes.dpgmm`,
which fits it); :func:`stick_log_weights` turns the stick variables ``e_k = −log(1 − v_k)``
into log mixing weights without rounding to ``−inf``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from espresso_jax import validation as V

__all__ = ["model", "stick_log_weights"]


def stick_log_weights(e: jax.Array) -> jax.Array:
    """Log mixing weights from stick-breaking variables ``e_k = −log(1 − v_k)``.

    Args:
        e: ``(..., K − 1)`` positive stick variables.

    Returns:
        ``(..., K)`` log weights: ``log π_k = log v_k + Σ_{j<k} log(1 − v_j)`` for ``k < K`` and
        ``log π_K = Σ_{j<K} log(1 − v_j)``, computed as ``log(−expm1(−e_k)) − Σ_{j<k} e_j``.
    """
    zero = jnp.zeros(e.shape[:-1] + (1,), e.dtype)
    log_v = jnp.concatenate([jnp.log(-jnp.expm1(-e)), zero], axis=-1)
    log_rest = jnp.concatenate([zero, -jnp.cumsum(e, axis=-1)], axis=-1)
    return log_v + log_rest


def model(
    X: jax.Array | None,
    *,
    n_components: int,
    concentration: float,
    n_samples: int | None = None,
    n_features: int | None = None,
    mean_scale: float = 2.0,
    scale_median: float = 0.5,
    scale_log_sd: float = 1.0,
    lkj_concentration: float = 2.0,
) -> None:
    """NumPyro model of the truncated DP-GMM on standardised data (the equations are in the
    docstring of :mod:`espresso_jax.fully_bayes.dpgmm`).

    Sites: ``stick`` ``(K−1,)`` (``e_k = −log(1 − v_k) ~ Exponential(α)``), deterministic
    ``weights`` ``(K,)``, ``mu`` ``(K, D)``, ``sigma`` ``(K, D)``, ``corr_chol`` ``(K, D, D)``
    (only when ``D > 1``), observed ``x`` in the plate ``data``.

    Args:
        X: ``(n_samples, n_features)`` standardised data, or ``None`` to sample the prior
            predictive (then give ``n_samples`` and ``n_features``).
        n_components: truncation level ``K``.
        concentration: DP concentration ``α`` (small α: few components).
        n_samples, n_features: data shape when ``X`` is None.
        mean_scale: prior sd ``s_μ`` of the component means.
        scale_median: prior median ``s_σ`` of the component sds.
        scale_log_sd: prior sd ``τ_σ`` of the log component sds.
        lkj_concentration: LKJ shape ``η`` of the component correlations (1: uniform).
    """
    if X is not None:
        n_samples, n_features = X.shape
        dtype = X.dtype
    elif n_samples is None or n_features is None:
        raise ValueError("n_samples and n_features are required when X is None")
    else:
        dtype = V.float_dtype()
    K, D = n_components, n_features
    e = numpyro.sample("stick", dist.Exponential(jnp.asarray(concentration, dtype))
                       .expand([K - 1]).to_event(1))
    log_w = stick_log_weights(e)
    numpyro.deterministic("weights", jnp.exp(log_w))
    mu = numpyro.sample("mu", dist.Normal(jnp.zeros((K, D), dtype),
                                          jnp.asarray(mean_scale, dtype)).to_event(2))
    sigma = numpyro.sample("sigma", dist.LogNormal(
        jnp.full((K, D), math.log(scale_median), dtype),
        jnp.asarray(scale_log_sd, dtype)).to_event(2))
    if D > 1:
        corr = numpyro.sample("corr_chol", dist.LKJCholesky(
            D, jnp.asarray(lkj_concentration, dtype)).expand([K]).to_event(1))
        scale_tril = sigma[..., None] * corr
    else:
        scale_tril = sigma[..., None]
    mixture = dist.MixtureSameFamily(dist.Categorical(logits=log_w),
                                     dist.MultivariateNormal(mu, scale_tril=scale_tril))
    with numpyro.plate("data", n_samples):
        numpyro.sample("x", mixture, obs=X)
