"""Supervised fitting of a plain (deterministic) network: cross-entropy or squared error.

The network is any flax module called as ``module.apply(params, X)`` (e.g.
:class:`espresso_jax.nn.modules.MLP`): logits ``(m, n_classes)`` for ``task="classification"``
(the loss is the mean softmax cross-entropy of integer labels) or ``(m, 1)`` predictions for
``task="regression"`` (the mean squared error). Training runs on :func:`espresso_jax.train.fit`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from espresso_jax import train
from espresso_jax.netcheck import check_optimizer, check_outputs
from espresso_jax.validation import as_float_array, check_choice, check_key, check_targets

__all__ = ["TASKS", "make_loss", "fit"]

TASKS = ("classification", "regression")


@functools.lru_cache(maxsize=32)
def make_loss(module: nn.Module, task: str) -> Callable[[Any, Any, jax.Array], jax.Array]:
    """The minibatch loss ``(params, (X, y), key) -> scalar`` of ``module`` for ``task``.

    ``"classification"``: mean softmax cross-entropy of logits ``(m, C)`` and labels ``(m,)``;
    ``"regression"``: mean squared error of outputs ``(m, 1)`` against ``y: (m,)``. The key is
    unused (the network is deterministic). Cached, so the same ``(module, task)`` gives the same
    function and a second fit does not recompile.
    """
    check_choice(task, "task", TASKS)

    def loss(params: Any, batch: tuple[jax.Array, jax.Array], key: jax.Array) -> jax.Array:
        del key
        X, y = batch
        out = cast(jax.Array, module.apply(params, X))       # not mutable: one output
        if task == "classification":
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, y))
        return jnp.mean(jnp.square(out[:, 0] - y))

    return loss


def fit(key: jax.Array, X: ArrayLike, y: ArrayLike, *, module: nn.Module,
        optimizer: optax.GradientTransformation, batch_size: int, n_epochs: int, task: str,
        params: Any = None, **loop_options: Any) -> train.FitResult:
    """Fit a deterministic network by cross-entropy or squared error.

    Args:
        key: PRNG key. Without ``params`` it splits into the initialisation key and the
            training key; with ``params`` all of it goes to training.
        X: ``(n_samples, n_features)`` inputs.
        y: ``(n_samples,)`` integer labels in ``[0, n_classes)`` (classification) or targets
            (regression).
        module: flax module called as ``module.apply(params, X)``.
        optimizer: optax optimiser (no default: it is part of the experiment).
        batch_size: rows per minibatch. n_epochs: epochs to run.
        task: ``"classification"`` or ``"regression"``.
        params: initial parameters (default ``module.init(init_key, X[:1])``).
        **loop_options: passed to :func:`espresso_jax.train.fit_loop` (``progress``,
            ``eval_fn``, ``patience``, ``epochs_per_chunk``, ...).

    Returns:
        :class:`espresso_jax.train.FitResult`; ``history["loss"]`` is the per-epoch mean loss.

    Raises:
        ValueError: naming ``X`` (NaN, rank, a width the network does not take), ``y``
            (NaN, a label outside the network's classes, a length other than ``X``'s, a
            regression network with more than one output) or ``params`` (another network's).
        TypeError: ``optimizer`` is not an optax ``GradientTransformation``.
    """
    key = check_key(key)
    check_choice(task, "task", TASKS)
    optimizer = check_optimizer(optimizer)
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    key, init_key, out = train.check_init(key, module.init, module.apply, params, X[:1])
    y = check_targets(y, X.shape[0],
                      n_classes=out.shape[-1] if task == "classification" else None)
    if task == "regression":
        check_outputs(y, out)
    if init_key is not None:
        params = module.init(init_key, X[:1])
    loop_options.setdefault("desc", task)
    return train.fit(key, make_loss(module, task), params, (X, y), optimizer=optimizer,
                     batch_size=batch_size, n_epochs=n_epochs, **loop_options)
