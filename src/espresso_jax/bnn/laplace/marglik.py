"""Laplace log marginal likelihood of a network and the prior precision chosen by it.

``ln p(D | δ) ≈ ln p(D | θ_MAP) − ½ (ln |P| − ln |P₀| + θ_MAPᵀ P₀ θ_MAP)`` with
``P = GGN + P₀`` and ``P₀ = diag(δ)`` (MacKay 1992; Immer et al. 2021, eq. 4). ``θ_MAP`` and
the GGN are held fixed while ``δ`` varies (as laplace-torch's ``log_marginal_likelihood``), so
a grid over ``δ`` is one vmapped call and gradient ascent on ``ln δ`` is exact for this
objective.

For a last layer with a Gaussian likelihood the Laplace evidence is exact (the model is linear
in the last layer's weights) and both precisions have MacKay's closed-form fixed point:
:func:`last_layer_evidence` hands the frozen features to
:func:`espresso_jax.linear.bayes.fit_evidence` (one home for that math).

References:
    MacKay, "A practical Bayesian framework for backpropagation networks", Neural
    Computation 4(3), 1992. Immer et al., "Scalable marginal likelihood estimation for model
    selection in deep learning", ICML 2021.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from espresso_jax.bnn.laplace.network import check_mlp, split_last_layer
from espresso_jax.bnn.laplace.posterior import (
    LaplaceFit,
    check_prior_precision,
    log_det_precision,
)
from espresso_jax.interop import standard_promotion
from espresso_jax.linear import bayes
from espresso_jax.validation import as_positive_array, check_int, check_positive, is_traced

__all__ = ["GridResult", "GradientResult", "log_marginal_likelihood", "tune_prior_grid",
           "tune_prior_gradient", "last_layer_features", "last_layer_evidence"]


class GridResult(NamedTuple):
    """Attributes: ``prior_precision ()`` the grid's best ``δ``; ``log_marglik (n_grid,)``."""

    prior_precision: jax.Array
    log_marglik: jax.Array


class GradientResult(NamedTuple):
    """Attributes: ``prior_precision`` ``()`` or ``(P,)`` after the last step;
    ``history (n_steps,)`` the log marginal likelihood before each step."""

    prior_precision: jax.Array
    history: jax.Array


def _lml(fit: LaplaceFit, delta: jax.Array) -> jax.Array:
    P = fit.mean.shape[0]
    log_det_prior = jnp.sum(jnp.broadcast_to(jnp.log(delta), (P,)))
    scatter = jnp.sum(delta * fit.mean * fit.mean)
    log_det_post = log_det_precision(fit.curvature, delta)
    return fit.log_lik - 0.5 * (log_det_post - log_det_prior + scatter)


def log_marginal_likelihood(fit: LaplaceFit, prior_precision) -> jax.Array:
    """Laplace ``ln p(D | δ)`` (see the module docstring).

    Args:
        fit: :class:`~espresso_jax.bnn.laplace.posterior.LaplaceFit`.
        prior_precision: ``δ > 0``, ``()`` or ``(P,)`` (``()`` only for KFAC).

    Returns:
        ``()``.
    """
    return _lml(fit, check_prior_precision(prior_precision, fit))


def tune_prior_grid(fit: LaplaceFit, grid) -> GridResult:
    """The ``δ`` of a grid with the largest Laplace log marginal likelihood (one vmapped
    evaluation; traceable).

    Args:
        fit: :class:`~espresso_jax.bnn.laplace.posterior.LaplaceFit`.
        grid: ``(n_grid,)`` scalar prior precisions ``> 0``.

    Returns:
        :class:`GridResult`.
    """
    grid = as_positive_array(grid, "grid", ndim=1, shape_hint="(n_grid,)").astype(
        fit.mean.dtype)
    values = jax.vmap(lambda d: _lml(fit, d))(grid)
    best = jnp.argmax(jnp.where(jnp.isnan(values), -jnp.inf, values))
    return GridResult(prior_precision=grid[best], log_marglik=values)


def tune_prior_gradient(fit: LaplaceFit, prior_precision=1.0, *, n_steps: int = 300,
                        learning_rate: float = 0.1) -> GradientResult:
    """Gradient ascent (Adam) on ``ln δ`` of the Laplace log marginal likelihood, in one
    ``lax.scan`` (traceable).

    Args:
        fit: :class:`~espresso_jax.bnn.laplace.posterior.LaplaceFit`.
        prior_precision: initial ``δ > 0``: ``()`` (one shared precision) or ``(P,)``.
        n_steps: Adam steps.
        learning_rate: Adam step size on ``ln δ``.

    Returns:
        :class:`GradientResult`.
    """
    delta0 = check_prior_precision(prior_precision, fit)
    n_steps = check_int(n_steps, "n_steps", min_value=1)
    if not is_traced(learning_rate):
        learning_rate = check_positive(learning_rate, "learning_rate")
    opt = optax.adam(learning_rate)
    objective = jax.value_and_grad(lambda log_d: -_lml(fit, jnp.exp(log_d)))

    def step(carry, _):
        log_d, state = carry
        loss, g = objective(log_d)
        with standard_promotion():   # optax mixes its int32 step count with floats
            updates, state = opt.update(g, state)
        return (optax.apply_updates(log_d, updates), state), -loss

    log_d0 = jnp.log(delta0)
    with standard_promotion():
        state0 = opt.init(log_d0)
    (log_d, _), history = jax.lax.scan(step, (log_d0, state0), length=n_steps)
    return GradientResult(prior_precision=jnp.exp(log_d), history=history)


def last_layer_features(params, X, activation: str = "tanh") -> jax.Array:
    """Frozen last-layer features with a column of ones for the bias: ``(n, d_hidden + 1)``,
    the design matrix of the last layer ``[W; b]``."""
    phi, _ = split_last_layer(params, X, activation)
    return jnp.concatenate([phi, jnp.ones((phi.shape[0], 1), phi.dtype)], axis=1)


def last_layer_evidence(params, X, y, *, activation: str = "tanh",
                        **evidence_kwargs) -> bayes.EvidenceResult:
    """Last-layer Laplace for a one-output regression network with the prior precision
    ``α`` and the noise precision ``β`` tuned by the (exact) evidence.

    Args:
        params: trained MLP layers ``(W, b)`` with one output.
        X: ``(n, d_in)`` training inputs.
        y: ``(n,)`` targets.
        activation: hidden-layer activation.
        **evidence_kwargs: passed to :func:`espresso_jax.linear.bayes.fit_evidence`
            (``alpha0``, ``tol``, ``max_iter``, Gamma hyperpriors ``alpha_shape``, ...).

    Returns:
        :class:`espresso_jax.linear.bayes.EvidenceResult` over the last layer's ``[W; b]``
        (the order of the flattened last layer); predict with
        :func:`espresso_jax.linear.bayes.predict` on :func:`last_layer_features`.
    """
    params = check_mlp(params, activation)
    if params[-1][0].shape[1] != 1:
        raise ValueError("params must have one output for last_layer_evidence, got "
                         f"{params[-1][0].shape[1]}")
    return bayes.fit_evidence(last_layer_features(params, X, activation), y,
                              **evidence_kwargs)
