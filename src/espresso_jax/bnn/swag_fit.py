"""SWAG and MultiSWAG fits on the SGD engine, and their predictives.

:func:`fit` trains ``n_models`` networks independently (a ``vmap`` over keys of one pure run,
one compiled call): each is initialised by ``init_fn(key)``, trained for ``n_epochs`` with
``optimizer`` (the MAP / pre-training phase), then continued with ``swag_optimizer`` (the
paper's constant-rate SGD, or a cyclical schedule) while SWAG moments are collected
(:func:`espresso_jax.bnn.swag.collect`). ``n_models = 1`` is SWAG; ``n_models > 1`` is
**MultiSWAG** (Wilson & Izmailov 2020), whose predictive is the equal mixture of the models'
SWAG predictives: :func:`sample_models` draws ``n_samples`` weight vectors from every model,
model-major, so averaging over all ``n_models * n_samples`` draws weighs the models equally.

Predictives over such a stack of weight draws (pure, jittable; the forward passes run in
chunks with ``lax.map``):

* :func:`predict_regression`: per-draw means and noise precisions ``(S, n)``, the equal-weight
  Gaussian mixture that :func:`espresso_jax.metrics.mixture_log_likelihood` scores;
* :func:`predict_proba`: class probabilities averaged over the draws, ``(n, C)``.

References:
    W. J. Maddox, T. Garipov, P. Izmailov, D. Vetrov, A. G. Wilson. A simple baseline for
    Bayesian uncertainty in deep learning. NeurIPS 2019.
    A. G. Wilson, P. Izmailov. Bayesian deep learning and a probabilistic perspective of
    generalization. NeurIPS 2020 (MultiSWAG).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from espresso_jax import train
from espresso_jax.bnn import swag
from espresso_jax.metrics.class_predictive import log_predictive
from espresso_jax.netcheck import check_optimizer
from espresso_jax.validation import check_int, check_key, check_positive

__all__ = ["SWAGFit", "fit", "run", "sample_models", "predict_regression", "predict_proba"]

PyTree = Any


class SWAGFit(NamedTuple):
    """Outcome of :func:`fit` (the library's result shape first).

    Attributes:
        params: :class:`espresso_jax.bnn.swag.SWAGState` with a leading ``(n_models,)`` axis on
            every leaf (what :func:`sample_models` takes).
        history: ``"loss"``: ``(n_models, n_epochs)`` per-epoch pre-training losses;
            ``"swag_loss"``: ``(n_models, n_collect)`` mean loss of each collection round.
        n_iter: epochs run per model, ``n_epochs + n_collect * epochs_per_collect``.
        converged: always False (SGD without a convergence test).
        state: the final :class:`espresso_jax.train.TrainState` of every model (leading axis).
    """

    params: swag.SWAGState
    history: dict[str, np.ndarray]
    n_iter: int
    converged: bool
    state: train.TrainState


def run(key: jax.Array, loss_fn: Callable[..., jax.Array], init_fn: Callable[[jax.Array], PyTree],
        data: PyTree, *, optimizer: optax.GradientTransformation,
        swag_optimizer: optax.GradientTransformation, batch_size: int, n_epochs: int,
        n_collect: int, rank: int, epochs_per_collect: int = 1
        ) -> tuple[train.TrainState, swag.SWAGState, jax.Array, jax.Array]:
    """One SWAG run (pure; :func:`fit` vmaps it over keys).

    Args: see :func:`fit`; ``data`` is used as given (no checks).

    Returns:
        ``(train_state, swag_state, pre_losses (n_epochs,), swag_losses (n_collect,))``.
    """
    init_key, step_key, shuffle_key, swag_key = jax.random.split(key, 4)
    params = init_fn(init_key)
    state = train.init_state(step_key, params, optimizer)
    state, metrics = train.run_epochs(shuffle_key, train.make_step(loss_fn, optimizer), state,
                                      data, batch_size=batch_size, n_epochs=n_epochs)
    # the SWAG phase continues the same weights with a fresh state of its own optimiser
    state = train.init_state(state.key, state.params, swag_optimizer)
    state, moments, swag_metrics, _ = swag.collect(
        swag_key, train.make_step(loss_fn, swag_optimizer), state, data,
        batch_size=batch_size, n_collect=n_collect, rank=rank,
        epochs_per_collect=epochs_per_collect)
    return state, moments, metrics["loss"], swag_metrics["loss"]


@functools.partial(jax.jit, static_argnames=("loss_fn", "init_fn", "optimizer", "swag_optimizer",
                                             "batch_size", "n_epochs", "n_collect", "rank",
                                             "epochs_per_collect"))
def _fit_impl(keys, data, loss_fn, init_fn, optimizer, swag_optimizer, batch_size, n_epochs,
              n_collect, rank, epochs_per_collect):
    def one(k):
        return run(k, loss_fn, init_fn, data, optimizer=optimizer, swag_optimizer=swag_optimizer,
                   batch_size=batch_size, n_epochs=n_epochs, n_collect=n_collect, rank=rank,
                   epochs_per_collect=epochs_per_collect)
    return jax.vmap(one)(keys)


def fit(key: jax.Array, loss_fn: Callable[..., jax.Array],
        init_fn: Callable[[jax.Array], PyTree], data: PyTree, *,
        optimizer: optax.GradientTransformation, swag_optimizer: optax.GradientTransformation,
        batch_size: int, n_epochs: int, n_collect: int, rank: int, epochs_per_collect: int = 1,
        n_models: int = 1) -> SWAGFit:
    """SWAG (``n_models = 1``) or MultiSWAG (``n_models > 1``) in one compiled call.

    Args:
        key: PRNG key, split into one key per model.
        loss_fn: minibatch loss ``(params, batch, key) -> scalar`` (as for
            :func:`espresso_jax.train.make_step`); a hashable function (it is a static argument).
        init_fn: ``key -> params`` initialisation (hashable, static).
        data: pytree of arrays sharing the leading axis ``(n_rows, ...)``.
        optimizer: pre-training optimiser (e.g. ``optax.adam(1e-3)``).
        swag_optimizer: optimiser of the collection phase (``optax.sgd(lr)``: constant rate).
        batch_size: rows per minibatch, ``1 <= batch_size <= n_rows``.
        n_epochs: pre-training epochs (>= 0).
        n_collect: iterates collected ``T`` (>= 1). rank: deviation columns ``K`` (>= 1).
        epochs_per_collect: epochs between collections (>= 1).
        n_models: independent SWAG runs (>= 1).

    Returns:
        :class:`SWAGFit`.

    Raises:
        ValueError / TypeError: naming the argument, on the host before anything compiles.
    """
    key = check_key(key)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function (params, batch, key) -> loss, got "
                        f"{type(loss_fn).__name__}")
    if not callable(init_fn):
        raise TypeError(f"init_fn must be a function key -> params, got {type(init_fn).__name__}")
    optimizer = check_optimizer(optimizer)
    swag_optimizer = check_optimizer(swag_optimizer, "swag_optimizer")
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    n_epochs = check_int(n_epochs, "n_epochs", min_value=0)
    n_collect = check_int(n_collect, "n_collect", min_value=1)
    rank = swag.check_rank(rank)
    epochs_per_collect = check_int(epochs_per_collect, "epochs_per_collect", min_value=1)
    n_models = check_int(n_models, "n_models", min_value=1)
    leaves = jax.tree.leaves(data)
    if not leaves or not all(hasattr(a, "shape") and np.ndim(a) >= 1 for a in leaves):
        raise TypeError("data must be a pytree of arrays sharing the leading (example) axis")
    sizes = {int(np.shape(a)[0]) for a in leaves}
    if len(sizes) != 1:
        raise ValueError(f"every array in data must share the leading axis, got {sorted(sizes)}")
    n_rows = sizes.pop()
    if batch_size > n_rows:
        raise ValueError(f"batch_size ({batch_size}) is larger than the number of rows "
                         f"({n_rows})")
    for a in leaves:
        arr = jnp.asarray(a)
        if jnp.issubdtype(arr.dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(arr))):
            raise ValueError("data contains NaN or inf")
    keys = jax.random.split(key, n_models)
    state, moments, pre, post = _fit_impl(keys, data, loss_fn, init_fn, optimizer,
                                          swag_optimizer, batch_size, n_epochs, n_collect,
                                          rank, epochs_per_collect)
    history = {"loss": np.asarray(pre), "swag_loss": np.asarray(post)}
    return SWAGFit(moments, history, n_epochs + n_collect * epochs_per_collect, False, state)


def sample_models(key: jax.Array, states: swag.SWAGState, n_samples: int, *,
                  scale: float = 1.0, diagonal_only: bool = False) -> PyTree:
    """``n_samples`` weight draws from each of a stack of SWAG states (pure; jittable).

    Args:
        key: PRNG key.
        states: :class:`~espresso_jax.bnn.swag.SWAGState` with a leading ``(M,)`` model axis
            (e.g. ``SWAGFit.params``).
        n_samples: draws per model ``T`` (static).
        scale, diagonal_only: see :func:`espresso_jax.bnn.swag.sample`.

    Returns:
        Parameters with leaves ``(M * T, ...)``, model-major (draws of model ``m`` are rows
        ``m T .. (m + 1) T - 1``): an equal-weight MultiSWAG mixture.
    """
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    scale = check_positive(scale, "scale")
    if not isinstance(states, swag.SWAGState) or jnp.ndim(states.n) != 1:
        raise ValueError("states must have a leading model axis (SWAGFit.params); for one "
                         "SWAGState use jax.tree.map(lambda a: a[None], state)")
    n_models = states.n.shape[0]

    def per_model(k, st):
        draw = functools.partial(swag.sample, state=st, scale=scale, diagonal_only=diagonal_only)
        return jax.vmap(lambda kk: draw(kk))(jax.random.split(k, n_samples))

    draws = jax.vmap(per_model)(jax.random.split(key, n_models), states)
    return jax.tree.map(lambda a: a.reshape((n_models * n_samples, *a.shape[2:])), draws)


def _map_draws(fn: Callable[[PyTree], Any], draws: PyTree, chunk_size: int) -> Any:
    n = jax.tree.leaves(draws)[0].shape[0]
    return jax.lax.map(fn, draws, batch_size=min(chunk_size, n))


def predict_regression(apply_fn: Callable[[PyTree, jax.Array], tuple[jax.Array, jax.Array]],
                       draws: PyTree, X: jax.Array, *, chunk_size: int = 256
                       ) -> tuple[jax.Array, jax.Array]:
    """Per-draw regression predictive (pure; jittable).

    Args:
        apply_fn: ``(params, X (n, d)) -> (mean (n,), precision)`` with the noise precision
            broadcastable to ``(n,)`` (a fixed ``tau`` or a heteroscedastic head).
        draws: weight draws with leaves ``(S, ...)`` (:func:`sample_models`).
        X: ``(n, d)`` inputs.
        chunk_size: draws evaluated together (memory bound).

    Returns:
        ``(means (S, n), precisions (S, n))``: the equal-weight mixture of ``S`` Gaussians.
    """
    def one(p):
        mean, precision = apply_fn(p, X)
        return mean, jnp.broadcast_to(jnp.asarray(precision, mean.dtype), mean.shape)
    return _map_draws(one, draws, chunk_size)


def predict_proba(apply_fn: Callable[[PyTree, jax.Array], jax.Array], draws: PyTree,
                  X: jax.Array, *, chunk_size: int = 256) -> jax.Array:
    """Bayesian-model-average class probabilities ``mean_s softmax(logits_s)``, ``(n, C)``.

    Args:
        apply_fn: ``(params, X (n, d)) -> logits (n, C)``.
        draws: weight draws with leaves ``(S, ...)`` (:func:`sample_models`).
        X: inputs. chunk_size: draws evaluated together.
    """
    logits = _map_draws(lambda p: apply_fn(p, X), draws, chunk_size)
    return jnp.exp(log_predictive(logits, True))
