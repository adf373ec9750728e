"""Stochastic-gradient MCMC kernels: SGLD, SGHMC and the cyclical step-size schedule.

Target: a posterior ``p(w | D) ∝ p(w) prod_{i=1}^N p(y_i | x_i, w)`` over a pytree ``w``. Its
log-density gradient is estimated from a minibatch ``B`` of ``n`` rows by

    g(w) = grad log p(w) + (N / n) sum_{i in B} grad log p(y_i | x_i, w),

unbiased over the batches of a shuffled epoch (:func:`grad_estimator`, blackjax's
``sgmcmc.gradients.grad_estimator``: the prior plus ``N`` times the batch mean).

Kernels (``h`` the step size, ``T`` the temperature, ``xi ~ N(0, I)`` fresh every step):

* SGLD (Welling & Teh 2011, in the parameterisation of Zhang et al. 2020), blackjax's
  ``sgld`` kernel: ``w <- w + h g(w) + sqrt(2 h T) xi``. For a Gaussian target of precision
  ``A`` its stationary law has the exact mean and covariance ``(A (I - h A / 2))^-1``: the
  step-size bias is a variance inflation of relative size ``h lambda_max(A) / 2``.
* SGHMC (Chen, Fox & Guestrin 2014, eq. 15 with ``beta_hat = 0``: learning rate ``eta = h``,
  friction ``alpha`` per step, momentum ``v`` carried across minibatches):
  ``v <- (1 - alpha) v + eta g(w) + sqrt(2 alpha eta T) xi``, then ``w <- w + v``
  (:func:`sghmc_step`). blackjax's ``sghmc`` kernel is not used: it redraws the momentum at
  every call and runs its leapfrog steps on one minibatch, whereas a minibatch engine takes
  one step per minibatch and keeps the momentum (as Chen et al.'s practical algorithm and
  Zhang et al.'s cyclical SGHMC do).
* Cyclical schedule (Zhang, Li, Zhang, Chen & Wilson 2020, eq. 1): ``K`` steps in ``M``
  cycles of ``L = K / M`` steps, ``h_k = h_0 / 2 (cos(pi (k mod L) / L) + 1)`` for
  ``k = 0 .. K-1`` (:func:`cyclical_step_size`). The first fraction ``beta`` of each cycle is
  the exploration stage (``r_k = (k mod L) / L < beta``: the kernel runs without noise, i.e.
  SGD / SGD with momentum); the rest is the sampling stage, where samples are collected
  (:func:`sampling_stage`).

The sampler loop over shuffled minibatches, chains vmapped over keys, and the predictives are
in :mod:`espresso_jax.bnn.sgmcmc_sampler`.

References:
    M. Welling and Y. W. Teh. Bayesian learning via stochastic gradient Langevin dynamics.
    ICML 2011.
    T. Chen, E. Fox and C. Guestrin. Stochastic gradient Hamiltonian Monte Carlo. ICML 2014.
    R. Zhang, C. Li, J. Zhang, C. Chen and A. G. Wilson. Cyclical stochastic gradient MCMC for
    Bayesian deep learning. ICLR 2020.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
from blackjax.sgmcmc import gradients as bj_gradients
from jax.typing import ArrayLike

from espresso_jax.interop import standard_promotion
from espresso_jax.validation import check_int

__all__ = [
    "SGMCMCState",
    "grad_estimator",
    "init_state",
    "sgld_step",
    "sghmc_step",
    "cycle_length",
    "cyclical_step_size",
    "exploration_steps",
    "sampling_stage",
]

PyTree = Any
GradFn = Callable[[PyTree, PyTree], PyTree]


class SGMCMCState(NamedTuple):
    """State of one chain.

    Attributes:
        position: the parameters ``w`` (any pytree of float arrays).
        momentum: SGHMC's ``v``, same structure as ``position`` (zeros and unused for SGLD).
    """

    position: PyTree
    momentum: PyTree


def grad_estimator(log_prior: Callable[[PyTree], jax.Array],
                   log_likelihood: Callable[[PyTree, PyTree], jax.Array],
                   n_data: int) -> GradFn:
    """Minibatch estimator of the log-posterior gradient (blackjax's ``grad_estimator``).

    Args:
        log_prior: ``params -> scalar`` log prior density.
        log_likelihood: ``(params, example) -> scalar`` log-likelihood of ONE example (one
            row of every leaf of the batch; it is vmapped over the batch).
        n_data: ``N``, the number of training rows (the likelihood is scaled by ``N / n``).

    Returns:
        ``(params, batch) -> grad`` with ``grad`` shaped like ``params`` and ``batch`` a
        pytree whose leaves share the leading axis ``(n, ...)``: the gradient of
        ``log_prior(params) + N * mean_i log_likelihood(params, batch_i)``.

    Raises:
        TypeError: ``log_prior`` or ``log_likelihood`` is not callable, ``n_data`` not an int.
        ValueError: ``n_data < 1``.
    """
    for name, fn in (("log_prior", log_prior), ("log_likelihood", log_likelihood)):
        if not callable(fn):
            raise TypeError(f"{name} must be a function, got {type(fn).__name__}")
    n_data = check_int(n_data, "n_data", min_value=1)
    grad = bj_gradients.grad_estimator(log_prior, log_likelihood, n_data)

    def estimate(params: PyTree, batch: PyTree) -> PyTree:
        with standard_promotion():
            return grad(params, batch)

    return estimate


def init_state(params: PyTree) -> SGMCMCState:
    """A chain at ``params`` with zero momentum."""
    return SGMCMCState(params, jax.tree.map(jnp.zeros_like, params))


_SGLD_KERNEL = blackjax.sgld.build_kernel()


def sgld_step(key: jax.Array, state: SGMCMCState, grad_fn: GradFn, batch: PyTree,
              step_size: ArrayLike, temperature: ArrayLike = 1.0) -> SGMCMCState:
    """One SGLD step, ``w <- w + h g(w) + sqrt(2 h T) xi`` (blackjax's ``sgld`` kernel).

    Args:
        key: noise key. state: the chain. grad_fn: from :func:`grad_estimator`.
        batch: the minibatch. step_size: ``h`` (scalar, may be traced).
        temperature: ``T`` (scalar; 0 gives a plain gradient-ascent step).
    """
    with standard_promotion():
        position = _SGLD_KERNEL(key, state.position, grad_fn, batch, step_size, temperature)
    # blackjax draws its noise through a strongly typed float (float64 under x64): keep the
    # parameters' dtypes
    position = jax.tree.map(lambda new, old: new.astype(jnp.result_type(old)), position,
                            state.position)
    return state._replace(position=position)


def sghmc_step(key: jax.Array, state: SGMCMCState, grad_fn: GradFn, batch: PyTree,
               step_size: ArrayLike, friction: ArrayLike, temperature: ArrayLike = 1.0
               ) -> SGMCMCState:
    """One SGHMC step in Chen et al.'s parameterisation (their eq. 15, ``beta_hat = 0``).

    ``v <- (1 - alpha) v + eta g(w) + sqrt(2 alpha eta T) xi``; ``w <- w + v``.

    Args:
        key: noise key. state: the chain (its momentum is carried to the next step).
        grad_fn: from :func:`grad_estimator`. batch: the minibatch.
        step_size: learning rate ``eta``. friction: ``alpha`` in ``(0, 1]`` (per step).
        temperature: ``T`` (0: SGD with momentum ``1 - alpha``).
    """
    grad = grad_fn(state.position, batch)
    leaves, treedef = jax.tree.flatten(state.position)
    keys = jax.random.split(key, len(leaves))
    noise = jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype)
                                         for k, x in zip(keys, leaves, strict=True)])

    def update(v, g, n):
        eta, alpha, temp = (jnp.asarray(a, v.dtype) for a in (step_size, friction, temperature))
        return (1 - alpha) * v + eta * g + jnp.sqrt(2 * alpha * eta * temp) * n

    momentum = jax.tree.map(update, state.momentum, grad, noise)
    position = jax.tree.map(jnp.add, state.position, momentum)
    return SGMCMCState(position, momentum)


def cycle_length(n_steps: int, n_cycles: int) -> int:
    """Steps per cycle ``L = K / M`` (``n_cycles`` must divide ``n_steps``)."""
    n_steps = check_int(n_steps, "n_steps", min_value=1)
    n_cycles = check_int(n_cycles, "n_cycles", min_value=1)
    if n_steps % n_cycles:
        raise ValueError(f"n_cycles ({n_cycles}) must divide the number of steps ({n_steps})")
    return n_steps // n_cycles


def cyclical_step_size(step: ArrayLike, n_steps: int, n_cycles: int,
                       step_size: ArrayLike) -> jax.Array:
    """Zhang et al.'s cosine schedule ``h_0 / 2 (cos(pi (k mod L) / L) + 1)``, ``L = K / M``.

    Args:
        step: ``k`` (0-based; any shape, may be traced).
        n_steps: ``K``; n_cycles: ``M`` (must divide ``K``). step_size: ``h_0``.

    Returns:
        Step sizes shaped like ``step`` in ``step_size``'s dtype (or the float default).
    """
    length = cycle_length(n_steps, n_cycles)
    h0 = jnp.asarray(step_size)
    if not jnp.issubdtype(h0.dtype, jnp.floating):
        h0 = h0.astype(jnp.result_type(float))
    phase = jnp.mod(jnp.asarray(step), length).astype(h0.dtype) / length
    return h0 / 2 * (jnp.cos(jnp.asarray(math.pi, h0.dtype) * phase) + 1)


def sampling_stage(step: ArrayLike, n_steps: int, n_cycles: int,
                   exploration: float) -> jax.Array:
    """True in the sampling stage: ``(k mod L) >= ceil(beta L)``, i.e. ``r_k >= beta``.

    Args:
        step: ``k`` (0-based; any shape). n_steps, n_cycles: ``K``, ``M``.
        exploration: ``beta`` in ``[0, 1)``, the exploration share of each cycle.
    """
    length = cycle_length(n_steps, n_cycles)
    start = exploration_steps(length, exploration)
    return jnp.mod(jnp.asarray(step), length) >= start


def exploration_steps(length: int, exploration: float) -> int:
    """Steps of the exploration stage in a cycle of ``length``: ``ceil(beta L)``."""
    if not 0.0 <= exploration < 1.0:
        raise ValueError(f"exploration must lie in [0, 1), got {exploration}")
    return math.ceil(round(exploration * length, 9))
