"""Training and scoring of the protocol's networks (pure, jittable): every (split, grid point)
network trained in one compiled call (:func:`train_grid`, a nested ``vmap`` of
:func:`train_config`), stacks of networks scored by test RMSE and MC-mixture log-likelihood in
the target's original units (:func:`evaluate`, a ``lax.map``), the best grid point per split
(:func:`select_best`) and the balanced minibatch size (:func:`balanced_batch_size`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from espresso_jax import metrics, train
from espresso_jax.apps.uci.method import PyTree, UCIMethod
from espresso_jax.prob import fast_draws
from espresso_jax.validation import check_int

__all__ = ["balanced_batch_size", "train_config", "train_grid", "evaluate", "select_best"]


def balanced_batch_size(n_rows: int, batch_size: int) -> int:
    """Rows per batch when ``n_rows`` is cut into ``ceil(n_rows / batch_size)`` equal batches
    (the engine drops the ``n_rows mod`` remainder of each shuffled epoch)."""
    n_rows = check_int(n_rows, "n_rows", min_value=1)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    return n_rows // math.ceil(n_rows / batch_size) if batch_size < n_rows else n_rows


def train_config(key: jax.Array, method: UCIMethod, X: jax.Array, y: jax.Array,
                 hparams: PyTree, *, optimizer: optax.GradientTransformation, n_hidden: int,
                 batch_size: int, n_epochs: int,
                 on_epoch: Callable[[jax.Array], None] | None = None
                 ) -> tuple[PyTree, jax.Array]:
    """Initialise and train one network (pure; vmapped by :func:`train_grid`).

    A method with ``step_noise`` gets each epoch's draws made before the epoch's steps
    (:mod:`~espresso_jax.apps.uci.method`); the trained network is the same.

    Args:
        key: split into the init, step and shuffling keys.
        method: the :class:`UCIMethod`.
        X: ``(N, d)`` standardised inputs. y: ``(N,)`` standardised target.
        hparams: one grid point in standardised units.
        optimizer: optax optimiser.
        n_hidden, batch_size, n_epochs: static settings (``batch_size`` is used as given).
        on_epoch: host function called after each epoch (see
            :func:`espresso_jax.train.run_epochs`), e.g. advancing the progress bar that
            :func:`~espresso_jax.apps.uci.protocol.run_protocol` opens; None for no callback.

    Returns:
        ``(params, history)`` with ``history: (n_epochs,)`` per-epoch mean training loss;
        ``params`` are the trained weights passed through ``method.finalize`` when the method
        has one.
    """
    init_key, step_key, shuffle_key = jax.random.split(key, 3)
    n_train = X.shape[0]
    params = method.init(init_key, X.shape[1], n_hidden)

    draw = method.step_noise
    step_noise = None if draw is None else (
        lambda k: draw(k, batch_size, X.shape[1], n_hidden))

    def loss_fn(p, batch, k):
        if step_noise is not None:  # (rows, pre-drawn noise): the noise replaces the key
            batch, k = batch
        return method.loss(p, batch, k, hparams, n_train)

    step = train.make_step(loss_fn, optimizer)
    state = train.init_state(step_key, params, optimizer)
    state, metrics = train.run_epochs(shuffle_key, step, state, (X, y), batch_size=batch_size,
                                      n_epochs=n_epochs, on_epoch=on_epoch,
                                      permutation=fast_draws.permutation,
                                      step_noise=step_noise)
    params = state.params
    if method.finalize is not None:
        params = method.finalize(jax.random.fold_in(key, 3), params, X, y, hparams, n_train)
    return params, metrics["loss"]


@functools.partial(jax.jit, static_argnames=("method", "optimizer", "n_hidden", "batch_size",
                                             "n_epochs", "on_epoch", "common_random_numbers"))
def train_grid(keys: jax.Array, method: UCIMethod, X: jax.Array, y: jax.Array,
               hparams: PyTree, *, optimizer: optax.GradientTransformation, n_hidden: int,
               batch_size: int, n_epochs: int,
               on_epoch: Callable[[jax.Array], None] | None = None,
               common_random_numbers: bool = False
               ) -> tuple[PyTree, jax.Array]:
    """Train every (split, grid point) network in one compiled call.

    The static settings are those of :func:`train_config`; ``on_epoch`` is static too, so a new
    callback object compiles anew: pass None, or reuse one callback, to hit the cache.

    Args:
        keys: ``(S, G)`` keys, one per network; ``(S,)`` keys, one per split, with
            ``common_random_numbers``.
        X: ``(S, N, d)`` and y: ``(S, N)``: one training set per split.
        hparams: pytree with ``(S, G)`` leaves (standardised units).
        common_random_numbers: the grid points of a split share its key (static, default
            False): the same initial weights, epoch orders and step keys (for MC dropout the
            same mask words, each point comparing them with its own rate), so the grid
            compares hyper-parameters on common random numbers, and every draw is made once
            per split instead of once per network. With a method's ``step_noise`` (MC
            dropout's masks) the draws are made per epoch as data and shared by the split's
            networks: kin8nm's grid epoch takes 0.4x the CPU-seconds
            (``benchmarks/RESULTS.md``). Without it the method's ``step_noise`` is not used
            (draws inside the step: the same networks, no per-network arrays of draws).

    Returns:
        ``(params, history)`` with ``(S, G, ...)`` parameter leaves and ``(S, G, n_epochs)``
        per-epoch losses. Network ``(s, g)`` equals ``train_config(keys[s, g], method, X[s], y[s],
        hparams[s, g], ...)``, or ``train_config(keys[s], ...)`` with
        ``common_random_numbers``.

    Raises:
        ValueError: ``keys`` is not ``(S, G)`` (``(S,)`` with ``common_random_numbers``) for
            the ``S`` splits of ``X`` and the ``G`` grid points of ``hparams``.
    """
    S = X.shape[0]
    G = jax.tree.leaves(hparams)[0].shape[1]
    want = (S,) if common_random_numbers else (S, G)
    typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
    got = tuple(keys.shape if typed else keys.shape[:-1])  # raw keys: a trailing data axis
    if got != want:
        per = "split (common_random_numbers=True)" if common_random_numbers else "network"
        raise ValueError(f"keys must hold {want} keys, one per {per}, for {S} splits x {G} "
                         f"grid points; got {got}")

    if not common_random_numbers:
        # one network per key: the pre-drawn words would be one array per network (memory
        # for nothing: measured as fast as hashing inside the step, benchmarks/RESULTS.md)
        method = method._replace(step_noise=None)

    def one(k, x, t, hp):
        return train_config(k, method, x, t, hp, optimizer=optimizer, n_hidden=n_hidden,
                            batch_size=batch_size, n_epochs=n_epochs, on_epoch=on_epoch)

    over_grid = jax.vmap(one, in_axes=(None if common_random_numbers else 0, None, None, 0))
    return jax.vmap(over_grid, in_axes=(0, 0, 0, 0))(keys, X, y, hparams)


@functools.partial(jax.jit, static_argnames=("method", "n_samples"))
def evaluate(keys: jax.Array, method: UCIMethod, params: PyTree, X: jax.Array, y: jax.Array,
             hparams: PyTree, y_std: jax.Array, *, n_samples: int
             ) -> tuple[jax.Array, jax.Array]:
    """Test RMSE and mean log-likelihood, in original units, of a stack of networks.

    Args:
        keys: ``(K,)`` keys. params: ``(K, ...)`` leaves. X: ``(K, n, d)``.
        y: ``(K, n)`` standardised targets. hparams: ``(K,)`` leaves (standardised units).
        y_std: ``(K,)`` target scales of each network's split.
        n_samples: MC samples ``T`` (static).

    Returns:
        ``(rmse (K,), log_likelihood (K,))``: RMSE of the MC mean and the mean over points of
        the MC-mixture log-density, converted with ``y_std`` (see the units note of
        :mod:`espresso_jax.apps.uci.protocol`).
        Networks are evaluated one after the other (``lax.map``) on CPU, where one
        network's MC passes already fill the cores and a smaller working set stays in cache;
        on an accelerator all ``K`` at once (``lax.map`` with ``batch_size=K``, a vmap), whose
        parallelism wants the whole stack (memory ``K · T · n`` floats, e.g. 240 · 100 · 500
        ≈ 48 MB). The per-network results do not depend on it.
    """
    def one(args):
        key, p, x, t, hp, scale = args
        means, precisions = method.predict(key, p, x, hp, n_samples)
        ll = metrics.mixture_log_likelihood(t, means, 1.0 / precisions)
        rmse = jnp.sqrt(jnp.mean((t - jnp.mean(means, axis=0)) ** 2))
        return rmse * scale, jnp.mean(ll) - jnp.log(scale)

    batch = None if jax.default_backend() == "cpu" else int(keys.shape[0])
    return jax.lax.map(one, (keys, params, X, y, hparams, y_std), batch_size=batch)


def select_best(val_log_likelihood: ArrayLike) -> np.ndarray:
    """Index of the best grid point per split: ``argmax`` over the last axis, NaN as -inf.

    Args:
        val_log_likelihood: ``(S, G)`` validation log-likelihoods.

    Returns:
        ``(S,)`` integer indices.
    """
    ll = np.asarray(val_log_likelihood, dtype=np.float64)
    if ll.ndim != 2:
        raise ValueError(f"val_log_likelihood must be 2-D (n_splits, n_grid), got shape "
                         f"{ll.shape}")
    return np.argmax(np.where(np.isnan(ll), -np.inf, ll), axis=1)
