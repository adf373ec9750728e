"""The SG-MCMC sampler loop: shuffled minibatches, one compiled ``lax.scan``, thinning, chains
vmapped over keys; and the predictives of the collected samples.

:func:`run_chain` is pure (jit and vmap it freely): each epoch draws a permutation of the rows
(:func:`espresso_jax.train.epoch_batches`, the engine's shuffling: the remainder that does
not fill a batch is left out of that epoch) and scans one kernel step
(:func:`~espresso_jax.bnn.sgmcmc.sgld_step` or :func:`~espresso_jax.bnn.sgmcmc.sghmc_step`)
over its minibatches, ``K = n_epochs * (N // batch_size)`` steps in all. Samples of the
parameter pytree are written into a preallocated buffer at their slot:

* constant step size (``n_cycles=None``): every ``thinning``-th step after ``burn_in``
  steps, ``(K - burn_in) // thinning`` samples;
* cyclical (``n_cycles=M``, Zhang et al. 2020): the cosine schedule of
  :func:`~espresso_jax.bnn.sgmcmc.cyclical_step_size`, no noise in the exploration stage
  (the first ``ceil(exploration * L)`` steps of each cycle), every ``thinning``-th step of the
  sampling stage collected: ``M * ((L - ceil(exploration L)) // thinning)`` samples.

:func:`sample` validates its input on the host, splits ``key`` into ``n_chains`` keys and runs
the vmapped chains in one jitted call: ``samples`` leaves are ``(n_chains, n_samples, ...)``.

References:
    R. Zhang, C. Li, J. Zhang, C. Chen and A. G. Wilson. Cyclical stochastic gradient MCMC for
    Bayesian deep learning. ICLR 2020.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax import metrics
from espresso_jax.bnn.sgmcmc import (
    GradFn,
    SGMCMCState,
    cycle_length,
    cyclical_step_size,
    exploration_steps,
    init_state,
    sghmc_step,
    sgld_step,
)
from espresso_jax.train import epoch_batches
from espresso_jax.validation import (
    check_choice,
    check_int,
    check_key,
    check_positive,
)

__all__ = ["SampleResult", "n_collected", "run_chain", "sample", "flatten_chains",
           "predict_regression", "predict_proba"]

PyTree = Any


class SampleResult(NamedTuple):
    """Outcome of :func:`sample`.

    Attributes:
        samples: the parameter pytree with ``(n_chains, n_samples, ...)`` leaves.
        state: the final :class:`~espresso_jax.bnn.sgmcmc.SGMCMCState` of every chain,
            ``(n_chains, ...)`` leaves.
        n_iter: kernel steps per chain ``K``.
    """

    samples: PyTree
    state: SGMCMCState
    n_iter: int


def n_collected(n_steps: int, *, n_cycles: int | None, exploration: float, burn_in: int,
                thinning: int) -> int:
    """Number of samples a chain of ``n_steps`` collects (see the module docstring)."""
    if n_cycles is None:
        return max(0, (n_steps - burn_in) // thinning)
    length = cycle_length(n_steps, n_cycles)
    return n_cycles * ((length - exploration_steps(length, exploration)) // thinning)


def _plan(k, step_size, n_steps, n_cycles, exploration, burn_in, thinning):
    """Step size, noise switch and buffer slot (-1: not collected) of step ``k``."""
    if n_cycles is None:
        after = k - burn_in + 1
        slot = jnp.where((after > 0) & (after % thinning == 0), after // thinning - 1, -1)
        return jnp.asarray(step_size), jnp.asarray(True), slot
    length = cycle_length(n_steps, n_cycles)
    start = exploration_steps(length, exploration)
    per_cycle = (length - start) // thinning
    pos = k % length
    after = pos - start + 1
    take = (after > 0) & (after % thinning == 0)
    slot = jnp.where(take, (k // length) * per_cycle + after // thinning - 1, -1)
    h = cyclical_step_size(k, n_steps, n_cycles, step_size)
    return h, pos >= start, slot


def run_chain(key: jax.Array, grad_fn: GradFn, params: PyTree, data: PyTree, *,
              kernel: str, step_size: Any, batch_size: int, n_epochs: int,
              n_cycles: int | None = None, exploration: float = 0.8, burn_in: int = 0,
              thinning: int = 1, friction: Any = 0.1, temperature: Any = 1.0
              ) -> tuple[PyTree, SGMCMCState]:
    """One chain over shuffled minibatches (pure, unvalidated; jit and vmap it).

    Args:
        key: split into the shuffling and the noise keys.
        grad_fn: ``(params, batch) -> grad`` (:func:`~espresso_jax.bnn.sgmcmc.grad_estimator`).
        params: the starting parameters (e.g. a MAP fit).
        data: pytree of arrays sharing the leading axis ``(N, ...)``.
        kernel: ``"sgld"`` or ``"sghmc"`` (static).
        step_size: ``h`` (SGLD) / ``eta`` (SGHMC); the peak ``h_0`` when cyclical. May be
            traced (e.g. a vmapped hyper-parameter).
        batch_size, n_epochs, n_cycles, exploration, burn_in, thinning: static settings (see
            the module docstring; ``n_cycles`` must divide the number of steps).
        friction: SGHMC's ``alpha`` (ignored by SGLD). temperature: ``T``.

    Returns:
        ``(samples, state)``: ``samples`` with ``(n_samples, ...)`` leaves and the final state.
    """
    n_rows = jax.tree.leaves(data)[0].shape[0]
    n_batches = n_rows // batch_size
    n_steps = n_epochs * n_batches
    n_samples = n_collected(n_steps, n_cycles=n_cycles, exploration=exploration,
                            burn_in=burn_in, thinning=thinning)
    shuffle_key, noise_key = jax.random.split(key)
    dtype = jnp.result_type(jax.tree.leaves(params)[0])  # step sizes follow the parameters
    step_size = jnp.asarray(step_size, dtype)
    buffer = jax.tree.map(lambda p: jnp.zeros((n_samples,) + jnp.shape(p), jnp.result_type(p)),
                          params)

    def one_step(carry, xs):
        state, buffer = carry
        k, rows, step_key = xs
        batch = jax.tree.map(lambda a: jnp.take(a, rows, axis=0), data)
        h, noisy, slot = _plan(k, step_size, n_steps, n_cycles, exploration, burn_in,
                               thinning)
        temp = jnp.where(noisy, jnp.asarray(temperature, dtype), jnp.zeros((), dtype))
        if kernel == "sgld":
            state = sgld_step(step_key, state, grad_fn, batch, h, temp)
        else:
            state = sghmc_step(step_key, state, grad_fn, batch, h, friction, temp)
        index = jnp.maximum(slot, 0)

        def store(buf, p):
            old = jax.lax.dynamic_index_in_dim(buf, index, keepdims=False)
            return jax.lax.dynamic_update_index_in_dim(buf, jnp.where(slot >= 0, p, old),
                                                       index, 0)

        return (state, jax.tree.map(store, buffer, state.position)), None

    def one_epoch(carry, xs):
        epoch, shuffle, noise = xs
        rows = epoch_batches(shuffle, n_rows, batch_size)
        steps = epoch * n_batches + jnp.arange(n_batches)
        carry, _ = jax.lax.scan(one_step, carry, (steps, rows,
                                                  jax.random.split(noise, n_batches)))
        return carry, None

    xs = (jnp.arange(n_epochs), jax.random.split(shuffle_key, n_epochs),
          jax.random.split(noise_key, n_epochs))
    (state, buffer), _ = jax.lax.scan(one_epoch, (init_state(params), buffer), xs)
    return buffer, state


def _check_data(data: PyTree) -> int:
    leaves = jax.tree.leaves(data)
    if not leaves or not all(hasattr(a, "shape") and np.ndim(a) >= 1 for a in leaves):
        raise TypeError("data must be a pytree of arrays sharing the leading (row) axis")
    sizes = {int(np.shape(a)[0]) for a in leaves}
    if len(sizes) != 1:
        raise ValueError(f"every array in data must share the leading axis, got sizes "
                         f"{sorted(sizes)}")
    return sizes.pop()


def _check_params(params: PyTree, n_chains: int, init_batched: bool) -> None:
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("params has no array leaves")
    for leaf in leaves:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise TypeError(f"params must have float leaves, got {jnp.result_type(leaf)}")
        if init_batched and (np.ndim(leaf) < 1 or np.shape(leaf)[0] != n_chains):
            raise ValueError(f"params with init_batched=True need a leading axis of n_chains "
                             f"({n_chains}), got a leaf of shape {np.shape(leaf)}")


@functools.partial(jax.jit, static_argnames=(
    "grad_fn", "kernel", "batch_size", "n_epochs", "n_cycles", "exploration", "burn_in",
    "thinning", "init_batched"))
def _sample_impl(keys, grad_fn, params, data, step_size, friction, temperature, *, kernel,
                 batch_size, n_epochs, n_cycles, exploration, burn_in, thinning, init_batched):
    def one(k, p):
        return run_chain(k, grad_fn, p, data, kernel=kernel, step_size=step_size,
                         batch_size=batch_size, n_epochs=n_epochs, n_cycles=n_cycles,
                         exploration=exploration, burn_in=burn_in, thinning=thinning,
                         friction=friction, temperature=temperature)

    return jax.vmap(one, in_axes=(0, 0 if init_batched else None))(keys, params)


def sample(key: jax.Array, grad_fn: GradFn, params: PyTree, data: PyTree, *, n_chains: int,
           kernel: str = "sgld", step_size: float, batch_size: int, n_epochs: int,
           n_cycles: int | None = None, exploration: float = 0.8, burn_in: int = 0,
           thinning: int = 1, friction: float = 0.1, temperature: float = 1.0,
           init_batched: bool = False) -> SampleResult:
    """Run ``n_chains`` SG-MCMC chains (vmapped over keys) in one compiled call.

    Args:
        key: split into one key per chain.
        grad_fn: ``(params, batch) -> grad`` (:func:`~espresso_jax.bnn.sgmcmc.grad_estimator`);
            a static argument: reuse the same function object to avoid recompiling.
        params: starting parameters; with ``init_batched=True`` one per chain (leading axis
            ``n_chains``), else shared by every chain.
        data: pytree of arrays with the shared leading axis ``(N, ...)``.
        n_chains: number of chains.
        kernel: ``"sgld"`` or ``"sghmc"``.
        step_size: ``h > 0`` (peak ``h_0`` of the cyclical schedule).
        batch_size: rows per minibatch, ``1 <= batch_size <= N`` (``N``: full batch).
        n_epochs: epochs per chain (``N // batch_size`` steps each).
        n_cycles: cycles of the cyclical schedule (must divide the steps); None: constant.
        exploration: exploration share ``beta`` in ``[0, 1)`` of each cycle (cyclical only).
        burn_in: steps before the first sample (constant schedule only).
        thinning: keep every ``thinning``-th step.
        friction: SGHMC's ``alpha`` in ``(0, 1]``. temperature: ``T >= 0``.

    Returns:
        :class:`SampleResult` with ``(n_chains, n_samples, ...)`` sample leaves.

    Raises:
        ValueError / TypeError: naming the bad argument, before anything is compiled.
    """
    key = check_key(key)
    if not callable(grad_fn):
        raise TypeError(f"grad_fn must be a function (params, batch) -> grad, got "
                        f"{type(grad_fn).__name__}")
    n_chains = check_int(n_chains, "n_chains", min_value=1)
    kernel = check_choice(kernel, "kernel", ("sgld", "sghmc"))
    step_size = check_positive(step_size, "step_size")
    n_rows = _check_data(data)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    if batch_size > n_rows:
        raise ValueError(f"batch_size ({batch_size}) is larger than the number of rows "
                         f"({n_rows})")
    n_epochs = check_int(n_epochs, "n_epochs", min_value=1)
    n_steps = n_epochs * (n_rows // batch_size)
    if n_cycles is not None:
        n_cycles = check_int(n_cycles, "n_cycles", min_value=1)
        if n_steps % n_cycles:
            raise ValueError(f"n_cycles ({n_cycles}) must divide the number of steps "
                             f"({n_steps} = n_epochs x {n_rows // batch_size} batches)")
    exploration = check_positive(exploration, "exploration", allow_zero=True)
    if exploration >= 1:
        raise ValueError(f"exploration must lie in [0, 1), got {exploration}")
    burn_in = check_int(burn_in, "burn_in", min_value=0)
    if n_cycles is not None and burn_in:
        raise ValueError("burn_in applies to the constant schedule only; with n_cycles the "
                         "exploration stage of each cycle plays its part")
    thinning = check_int(thinning, "thinning", min_value=1)
    friction = check_positive(friction, "friction")
    if friction > 1:
        raise ValueError(f"friction must lie in (0, 1], got {friction}")
    temperature = check_positive(temperature, "temperature", allow_zero=True)
    if not isinstance(init_batched, bool):
        raise TypeError(f"init_batched must be a bool, got {type(init_batched).__name__}")
    _check_params(params, n_chains, init_batched)
    n_samples = n_collected(n_steps, n_cycles=n_cycles, exploration=exploration,
                            burn_in=burn_in, thinning=thinning)
    if n_samples < 1:
        raise ValueError(f"no sample is collected: {n_steps} steps with burn_in={burn_in}, "
                         f"thinning={thinning}, n_cycles={n_cycles}, "
                         f"exploration={exploration}")
    samples, state = _sample_impl(
        jax.random.split(key, n_chains), grad_fn, params, data, step_size, friction,
        temperature, kernel=kernel, batch_size=batch_size, n_epochs=n_epochs,
        n_cycles=n_cycles, exploration=exploration, burn_in=burn_in, thinning=thinning,
        init_batched=init_batched)
    return SampleResult(samples, state, n_steps)


def flatten_chains(samples: PyTree) -> PyTree:
    """Merge the chain and sample axes: ``(C, S, ...)`` leaves -> ``(C * S, ...)``."""
    return jax.tree.map(lambda a: a.reshape((a.shape[0] * a.shape[1],) + a.shape[2:]),
                        samples)


def predict_regression(apply_fn: Callable[[PyTree, jax.Array], jax.Array], samples: PyTree,
                       X: jax.Array, noise_precision: Any
                       ) -> tuple[jax.Array, jax.Array]:
    """Per-sample predictive means and noise precisions of a Gaussian regression model.

    Args:
        apply_fn: ``(params, X) -> (n,)`` or ``(n, 1)`` means of one parameter sample.
        samples: parameter pytree with ``(T, ...)`` leaves (see :func:`flatten_chains`).
        X: ``(n, d)`` inputs.
        noise_precision: scalar ``tau``, or ``params -> scalar`` (a sampled noise level).

    Returns:
        ``(means (T, n), precisions (T, 1))``: the predictive is the equal-weight mixture of
        ``N(means[t], 1 / precisions[t])`` (score it with
        :func:`espresso_jax.metrics.mixture_log_likelihood` on ``1 / precisions``).
    """
    means = jax.vmap(apply_fn, in_axes=(0, None))(samples, X)
    means = means.reshape(means.shape[:2])
    if callable(noise_precision):
        tau = jax.vmap(noise_precision)(samples)
    else:
        tau = jnp.broadcast_to(jnp.asarray(noise_precision, means.dtype), means.shape[:1])
    return means, jnp.asarray(tau, means.dtype).reshape(-1, 1)


def predict_proba(apply_fn: Callable[[PyTree, jax.Array], jax.Array], samples: PyTree,
                  X: jax.Array) -> jax.Array:
    """Averaged class probabilities ``(1/T) sum_t softmax(apply_fn(w_t, X))``, ``(n, C)``.

    Args:
        apply_fn: ``(params, X) -> (n, C)`` logits. samples: ``(T, ...)`` leaves.
        X: ``(n, d)`` inputs.
    """
    logits = jax.vmap(apply_fn, in_axes=(0, None))(samples, X)
    return metrics.predictive_probs(logits, from_logits=True)
