"""Gaussian mixtures by stepwise (online) EM over minibatches.

The same EM model as :mod:`espresso_jax.mixture.gmm` (its E-step statistics, M-step and
covariance types), run by the engine's :func:`espresso_jax.em.fit_stepwise_em`: running
statistics ``s ← (1 − ρ_t) s + ρ_t (N/B) s_batch`` with ``ρ_t = (t + t0)^(−κ)``. Statistics
live in the frame of the initial means, fixed for the whole fit, so averaging statistics of
different steps is exact. One pass costs what one batch EM iteration costs, but the parameters
move after every minibatch: on large N a few epochs reach the batch optimum.

References:
    Cappé & Moulines (2009), "Online expectation-maximization algorithm for latent data
    models"; Liang & Klein (2009), "Online EM for unsupervised models".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from espresso_jax import em
from espresso_jax.mixture import gaussian as gauss
from espresso_jax.mixture import gmm
from espresso_jax.validation import (
    as_sample_weight,
    check_choice,
    check_int,
    check_key,
    check_positive,
)

__all__ = ["fit_stepwise"]


def fit_stepwise(key: jax.Array, X: ArrayLike, n_components: int, *, batch_size: int,
                 n_epochs: int, covariance_type: str = "full", reg_covar: float = 1e-6,
                 init: str = "kmeans++", kappa: float = 0.6, t0: float = 2.0,
                 sample_weight: ArrayLike | None = None) -> gmm.GMMResult:
    """Fit a Gaussian mixture by stepwise EM over shuffled minibatches.

    Args:
        key: PRNG key (initialisation and the minibatch order).
        X: ``(n_samples, n_features)`` data.
        n_components: ``K`` (at most ``n_samples``).
        batch_size: rows per minibatch (at most ``n_samples``; a final partial batch of each
            epoch is skipped).
        n_epochs: passes over the data.
        covariance_type: "full", "tied", "diag" or "spherical".
        reg_covar: ``> 0`` added to the diagonal of every covariance.
        init: "kmeans++", "kmeans" or "random", as in :func:`espresso_jax.mixture.gmm.fit`.
        kappa: step-size exponent in (0.5, 1].
        t0: step-size offset (> 0).
        sample_weight: ``(n_samples,)`` non-negative row weights.

    Returns:
        :class:`~espresso_jax.mixture.gmm.GMMResult`, the result type of the batch fit:
        ``history`` is ``(n_epochs · n_batches,)``, the mean log-likelihood of each minibatch
        under the parameters entering its step (a noisy estimate of the full-data value);
        ``n_iter`` the number of steps; ``converged`` False (a fixed budget, no test).
    """
    check_key(key)
    X = gmm.check_X(X)
    n = X.shape[0]
    k = check_int(n_components, "n_components", min_value=1)
    if k > n:
        raise ValueError(f"n_components={k} must be <= n_samples={n}")
    ctype = check_choice(covariance_type, "covariance_type", gauss.COVARIANCE_TYPES)
    init = check_choice(init, "init", gmm.INITS)
    reg_covar = check_positive(reg_covar, "reg_covar")
    w = as_sample_weight(sample_weight, n).astype(X.dtype)
    k_init, k_steps = jax.random.split(key)
    state0 = gmm.initial_em_state(k_init, X, w, jnp.asarray(reg_covar, X.dtype), n_components=k,
                            ctype=ctype, init=init)
    res = em.fit_stepwise_em(k_steps, gmm.em_model(ctype), state0, X, w, batch_size=batch_size,
                             n_epochs=n_epochs, kappa=kappa, t0=t0)
    s = res.params
    params = gmm.GMMParams(weights=s.weights, means=s.shift + s.delta,
                           covariances=s.covariances, precisions_cholesky=s.prec_chol)
    return gmm.GMMResult(params=params, history=res.history, n_iter=res.n_iter,
                         converged=res.converged)
