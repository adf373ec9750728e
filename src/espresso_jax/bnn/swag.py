"""SWA and SWAG moments (Maddox et al. 2019): a Gaussian over a network's weights from the
iterates of constant-rate (or cyclical) SGD.

The moments are a pure state over a parameter pytree (:class:`SWAGState`, every field in the
structure of the parameters; the math runs on ``jax.flatten_util.ravel_pytree`` vectors of
length ``P``):

* ``mean``: the running mean ``theta_bar`` of the collected iterates (this is **SWA**);
* ``var``: the running (centred) second moment, ``Sigma_diag = mean of (theta - theta_bar)^2``
  (population variance). The paper keeps the mean of squares and subtracts ``theta_bar^2``;
  in float32 that cancels (a weight whose mean is 1e4 times its spread keeps no digit of its
  variance), so the centred moment is updated instead, by Welford's recursion: the same value
  in exact arithmetic (:func:`second_moment` gives the mean of squares);
* ``deviations``: a ring buffer of the last ``K`` (``rank``) deviation columns
  ``D_i = theta_i - theta_bar_i`` (``theta_bar_i`` the mean *after* adding ``theta_i``, as the
  paper's Algorithm 1), leaves ``(K, ...)``;
* ``n``: the number of iterates collected.

:func:`update` adds one iterate; :func:`collect` runs epochs of the SGD engine
(:func:`espresso_jax.train.run_epochs` with any step from :func:`espresso_jax.train.make_step`)
and adds the iterate after every ``epochs_per_collect`` epochs, all inside one ``lax.scan``
(jit and vmap it freely). The learning rate is the optimiser's: pass ``optax.sgd(lr)`` for the
paper's constant rate, or an optax schedule for a cyclical one (collect at the cycle's ends by
choosing ``epochs_per_collect`` as the cycle length).

Sampling (:func:`sample`), with ``K' = min(n, K)`` filled columns:
``theta = theta_bar + sqrt(scale) * [Sigma_diag^{1/2} z_1 / sqrt(2) + D z_2 / sqrt(2 (K' - 1))]``,
``z_1 ~ N(0, I_P)``, ``z_2 ~ N(0, I_K)``: with ``scale = 1`` the paper's eq. (1) sample, whose
covariance is ``(Sigma_diag + Sigma_lr) / 2`` with ``Sigma_lr = D D^T / (K' - 1)``
(:func:`covariance`), the average of the diagonal and the low-rank estimate of the iterates'
covariance. (The reference implementation writes the same as ``scale=0.5`` applied to
``Sigma_diag^{1/2} z_1 + D z_2 / sqrt(K - 1)``.) ``diagonal_only=True`` samples SWAG-Diagonal,
``N(theta_bar, scale * Sigma_diag)``. With a single column (``K' = 1``) the low-rank divisor is
1 instead of 0.

Batch normalisation: the paper recomputes batch-norm statistics for every sampled weight
vector; the networks of this library have no batch-norm layers, so no refresh is needed.
MultiSWAG and the predictives are in :mod:`espresso_jax.bnn.swag_fit`.

References:
    W. J. Maddox, T. Garipov, P. Izmailov, D. Vetrov, A. G. Wilson. A simple baseline for
    Bayesian uncertainty in deep learning. NeurIPS 2019.
    P. Izmailov, D. Podoprikhin, T. Garipov, D. Vetrov, A. G. Wilson. Averaging weights leads
    to wider optima and better generalization. UAI 2018.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from espresso_jax import train
from espresso_jax.validation import check_int, check_positive

__all__ = ["SWAGState", "init", "update", "collect", "swa_params", "diagonal_variance",
           "second_moment", "deviation_matrix", "covariance", "sample", "sample_many",
           "check_rank"]

PyTree = Any


class SWAGState(NamedTuple):
    """SWAG moments over a parameter pytree (see the module docstring).

    Attributes:
        mean: running mean of the iterates (SWA), same structure as the parameters.
        var: running centred second moment (``Sigma_diag``), same structure.
        deviations: ring buffer of the last ``K`` deviation columns, leaves ``(K, ...)``.
        n: int32 scalar, iterates collected so far.
    """

    mean: PyTree
    var: PyTree
    deviations: PyTree
    n: jax.Array


def check_rank(rank: Any, name: str = "rank") -> int:
    """``rank`` (the number ``K`` of deviation columns) as an int >= 1, else a ValueError or
    TypeError naming ``name``."""
    return check_int(rank, name, min_value=1)


def init(params: PyTree, rank: int) -> SWAGState:
    """Empty moments (``n = 0``) for parameters shaped like ``params``.

    Args:
        params: a parameter pytree (only shapes and dtypes are used).
        rank: number ``K >= 1`` of deviation columns kept (static).

    Raises:
        ValueError: ``rank < 1``. TypeError: ``rank`` is not an int.
    """
    rank = check_rank(rank)
    zeros = jax.tree.map(jnp.zeros_like, params)
    deviations = jax.tree.map(lambda a: jnp.zeros((rank, *jnp.shape(a)), jnp.result_type(a)),
                              params)
    return SWAGState(zeros, zeros, deviations, jnp.zeros((), jnp.int32))


def update(state: SWAGState, params: PyTree) -> SWAGState:
    """Add one iterate ``theta`` (pure; jit/vmap freely).

    ``mean_new = mean + (theta - mean) / (n + 1)``,
    ``var <- var + ((theta - mean) (theta - mean_new) - var) / (n + 1)`` (Welford), and the
    deviation ``theta - mean_new`` overwrites column ``n mod K`` of the ring buffer.
    """
    n_new = state.n + 1

    def running(avg, x):
        return avg + (x - avg) / n_new.astype(jnp.result_type(avg))

    mean = jax.tree.map(running, state.mean, params)
    var = jax.tree.map(lambda v, x, m0, m1: running(v, (x - m0) * (x - m1)),
                       state.var, params, state.mean, mean)
    rank = jax.tree.leaves(state.deviations)[0].shape[0]
    slot = jnp.mod(state.n, rank)
    deviations = jax.tree.map(lambda buf, x, m: buf.at[slot].set(x - m),
                              state.deviations, params, mean)
    return SWAGState(mean, var, deviations, n_new)


def collect(key: jax.Array, step_fn: train.StepFn, state: Any, data: PyTree, *,
            batch_size: int, n_collect: int, rank: int, epochs_per_collect: int = 1,
            params_of: Callable[[Any], PyTree] = lambda s: s.params,
            return_iterates: bool = False
            ) -> tuple[Any, SWAGState, dict[str, jax.Array], PyTree | None]:
    """Run ``n_collect * epochs_per_collect`` epochs of ``step_fn`` and collect SWAG moments
    after every ``epochs_per_collect`` epochs, in one ``lax.scan`` (pure; jit/vmap freely).

    Args:
        key: shuffling key, one split per collection round.
        step_fn: ``(state, batch) -> (state, metrics)``, e.g. :func:`espresso_jax.train.make_step`
            of the loss with a constant-rate ``optax.sgd``.
        state: training state to continue from (e.g. the trained
            :class:`espresso_jax.train.TrainState`).
        data: pytree of arrays sharing the leading axis ``(n_rows, ...)``.
        batch_size: rows per minibatch (static).
        n_collect: iterates collected ``T`` (static).
        rank: deviation columns ``K`` (static).
        epochs_per_collect: epochs between collections (static; the cycle length of a
            cyclical schedule).
        params_of: how to read the parameters out of ``state``.
        return_iterates: also return the collected iterates, leaves ``(T, ...)``.

    Returns:
        ``(state, swag, metrics, iterates)``: the final training state, the
        :class:`SWAGState`, each step metric averaged per round ``(T,)``, and the iterates
        (None unless ``return_iterates``).

    Raises:
        ValueError, TypeError: naming ``batch_size`` (not a positive int, or more than the
            rows), ``n_collect``, ``rank`` or ``epochs_per_collect`` (not a positive int).
    """
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    n_collect = check_int(n_collect, "n_collect", min_value=1)
    epochs_per_collect = check_int(epochs_per_collect, "epochs_per_collect", min_value=1)
    n_rows = jax.tree.leaves(data)[0].shape[0]
    if batch_size > n_rows:
        raise ValueError(f"batch_size ({batch_size}) is larger than the number of rows "
                         f"({n_rows})")
    swag = init(params_of(state), rank)

    def one_round(carry, round_key):
        st, sw = carry
        st, metrics = train.run_epochs(round_key, step_fn, st, data, batch_size=batch_size,
                                       n_epochs=epochs_per_collect)
        params = params_of(st)
        out = params if return_iterates else None
        return (st, update(sw, params)), (jax.tree.map(jnp.mean, metrics), out)

    keys = jax.random.split(key, n_collect)
    (state, swag), (metrics, iterates) = jax.lax.scan(one_round, (state, swag), keys)
    return state, swag, metrics, iterates


def swa_params(state: SWAGState) -> PyTree:
    """The SWA solution: the mean of the collected iterates (structure of the parameters)."""
    return state.mean


def _flat(state: SWAGState) -> tuple[jax.Array, jax.Array, jax.Array, Callable[..., PyTree]]:
    mean, unravel = ravel_pytree(state.mean)
    var = jnp.maximum(ravel_pytree(state.var)[0], 0.0)
    cols = jax.vmap(lambda t: ravel_pytree(t)[0])(state.deviations)  # (K, P)
    return mean, var, cols, unravel


def _n_columns(state: SWAGState, rank: int) -> jax.Array:
    return jnp.clip(jnp.minimum(state.n, rank), 1, None)


def diagonal_variance(state: SWAGState) -> jax.Array:
    """``Sigma_diag`` as a flat ``(P,)`` vector (ravel_pytree order)."""
    return _flat(state)[1]


def second_moment(state: SWAGState) -> PyTree:
    """The running mean of the squared iterates, ``var + mean^2`` (structure of the
    parameters): the paper's ``theta_bar^2`` moment."""
    return jax.tree.map(lambda v, m: v + jnp.square(m), state.var, state.mean)


def deviation_matrix(state: SWAGState) -> jax.Array:
    """The deviation columns as ``D: (P, K)`` (unfilled columns are zero)."""
    return _flat(state)[2].T


def covariance(state: SWAGState, *, scale: float = 1.0, diagonal_only: bool = False
               ) -> jax.Array:
    """The dense covariance :func:`sample` draws from, ``(P, P)`` (small ``P`` only).

    ``scale * (diag(Sigma_diag) + D D^T / (K' - 1)) / 2``, or ``scale * diag(Sigma_diag)`` with
    ``diagonal_only``; ``K' = min(n, K)`` (divisor at least 1).
    """
    scale = check_positive(scale, "scale")
    var = diagonal_variance(state)
    if diagonal_only:
        return scale * jnp.diag(var)
    d = deviation_matrix(state)
    k = _n_columns(state, d.shape[1]) - 1
    low_rank = d @ d.T / jnp.maximum(k, 1).astype(d.dtype)
    return 0.5 * scale * (jnp.diag(var) + low_rank)


def _combine(state: SWAGState, z1: jax.Array, z2: jax.Array, scale: float,
             diagonal_only: bool) -> tuple[jax.Array, Callable[..., PyTree]]:
    """Flat weight draws from standard normals ``z1 (..., P)`` and ``z2 (..., K)``."""
    mean, var, cols, unravel = _flat(state)
    lead = (1,) * (z1.ndim - 1)                     # explicit broadcast over the draws
    mean, std = mean.reshape(lead + mean.shape), jnp.sqrt(var).reshape(lead + var.shape)
    if diagonal_only:
        return mean + jnp.sqrt(jnp.asarray(scale, mean.dtype)) * std * z1, unravel
    k = jnp.maximum(_n_columns(state, cols.shape[0]) - 1, 1).astype(mean.dtype)
    half = jnp.asarray(0.5 * scale, mean.dtype)
    return mean + jnp.sqrt(half) * (std * z1 + (z2 @ cols) / jnp.sqrt(k)), unravel


def _shapes(state: SWAGState) -> tuple[int, int, Any]:
    mean = ravel_pytree(state.mean)[0]
    return mean.shape[0], jax.tree.leaves(state.deviations)[0].shape[0], mean.dtype


def sample(key: jax.Array, state: SWAGState, *, scale: float = 1.0,
           diagonal_only: bool = False) -> PyTree:
    """One weight sample in the structure of the parameters (pure; vmap over keys for many,
    or use :func:`sample_many`).

    ``theta_bar + sqrt(scale) (Sigma_diag^{1/2} z_1 / sqrt(2) + D z_2 / sqrt(2 (K' - 1)))``, or
    ``theta_bar + sqrt(scale) Sigma_diag^{1/2} z_1`` with ``diagonal_only`` (see the module
    docstring); ``scale = 1`` is the paper's sample.

    Args:
        key: PRNG key. state: the :class:`SWAGState`.
        scale: multiplies the covariance (> 0).
        diagonal_only: SWAG-Diagonal.
    """
    scale = check_positive(scale, "scale")
    P, K, dtype = _shapes(state)
    k1, k2 = jax.random.split(key)
    z1 = jax.random.normal(k1, (P,), dtype)
    z2 = jnp.zeros((K,), dtype) if diagonal_only else jax.random.normal(k2, (K,), dtype)
    flat, unravel = _combine(state, z1, z2, scale, diagonal_only)
    return unravel(flat)


def sample_many(key: jax.Array, state: SWAGState, n_samples: int, *, scale: float = 1.0,
                diagonal_only: bool = False) -> PyTree:
    """``n_samples`` independent draws of :func:`sample`'s distribution, leaves
    ``(n_samples, ...)`` (pure; ``n_samples`` static).

    All standard normals come from two ``jax.random.normal`` calls, ``(n_samples, P)`` and
    ``(n_samples, K)``, instead of a key split and two draws per sample: the same distribution
    (not the same numbers as vmapping :func:`sample` over split keys), and a program that
    compiles several times faster on CPU (the random-bit generator is compiled once instead
    of once per vmapped split; e.g. 1,000 draws of a 751-weight net inside a jitted
    predictive: ~1 s of compile instead of ~5 s).

    Args:
        key: PRNG key. state: the :class:`SWAGState`. n_samples: draws (>= 1).
        scale, diagonal_only: as :func:`sample`.
    """
    scale = check_positive(scale, "scale")
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    P, K, dtype = _shapes(state)
    k1, k2 = jax.random.split(key)
    z1 = jax.random.normal(k1, (n_samples, P), dtype)
    z2 = (jnp.zeros((n_samples, K), dtype) if diagonal_only
          else jax.random.normal(k2, (n_samples, K), dtype))
    flat, unravel = _combine(state, z1, z2, scale, diagonal_only)
    return jax.vmap(unravel)(flat)
