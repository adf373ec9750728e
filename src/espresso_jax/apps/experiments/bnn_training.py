"""Training and sampling the networks of the Bayesian-network experiments.

One trained network is a :class:`TrainedModel`: its flax module, its parameters and how to
sample it (deterministic, MC dropout kept on at test time, or Bayes by Backprop weight draws).
:func:`train_model` fits one with a model package's fit (:func:`espresso_jax.nn.supervised.fit`,
:func:`espresso_jax.bnn.dropout.fit`, :func:`espresso_jax.bnn.bbb_elbo.fit`) and Adam,
:func:`train_models` several from one key, and :func:`sample_outputs` draws their ``(T, n,
n_outputs)`` outputs. Shared by the MNIST experiments
(:mod:`espresso_jax.apps.experiments.bnn_mnist`) and the 1-D toys
(:mod:`espresso_jax.apps.experiments.bnn_toys`).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from espresso_jax import train
from espresso_jax.bnn import bbb_elbo
from espresso_jax.validation import as_float_array, check_choice, check_int, check_key

__all__ = [
    "TrainedModel",
    "ModelSpec",
    "LR_SCHEDULES",
    "loop_options",
    "train_model",
    "train_models",
    "sample_outputs",
]

LR_SCHEDULES = ("constant", "cosine")



class TrainedModel(NamedTuple):
    """A trained network and how to sample it (host-side record, not a pytree to jit).

    Attributes:
        kind: ``"deterministic"`` (flax :class:`MLP`), ``"dropout"`` (:class:`DropoutMLP`,
            dropout kept on at test time) or ``"bbb"`` (:class:`espresso_jax.bnn.bbb.BayesMLP`).
        module: the flax module. params: its variables (``BBBParams`` for BBB).
        rate: dropout rate (``"dropout"`` only, else 0).
        seconds: wall-clock training time, compilation included.
        final_loss: training loss of the last epoch.
    """

    kind: str
    module: Any
    params: Any
    rate: float = 0.0
    seconds: float = 0.0
    final_loss: float = math.nan


@functools.lru_cache(maxsize=16)
def _adam(learning_rate: float, decay_steps: int | None = None) -> optax.GradientTransformation:
    """One Adam object per setting, so repeated fits reuse the compiled step; with
    ``decay_steps`` the rate follows a cosine from ``learning_rate`` to 0 over that many steps."""
    if decay_steps is None:
        return optax.adam(learning_rate)
    return optax.adam(optax.cosine_decay_schedule(learning_rate, decay_steps))


def loop_options(n_epochs: int, progress: bool, desc: str) -> dict[str, Any]:
    """Options of :func:`espresso_jax.train.fit_loop` for the experiments: one jitted chunk
    without a progress bar (one compilation); about 10 equal chunks with one (a ragged last
    chunk would compile a second time)."""
    if not progress:
        return dict(epochs_per_chunk=n_epochs, progress=False, desc=desc)
    chunk = max(d for d in range(1, -(-n_epochs // 10) + 1) if n_epochs % d == 0)
    return dict(epochs_per_chunk=chunk, progress=True, desc=desc)


def train_model(kind: str, fit: Callable[..., train.FitResult], key: jax.Array, x: Any,
                y: Any, *, module: nn.Module, learning_rate: float, batch_size: int,
                n_epochs: int, progress: bool = False, rate: float = 0.0,
                lr_schedule: str = "constant", **fit_options: Any) -> TrainedModel:
    """Train ``module`` with a model package's fit and record it as a :class:`TrainedModel`.

    Calls ``fit(key, x, y, module=module, optimizer=Adam(learning_rate), batch_size=...,
    n_epochs=..., **fit_options)`` (e.g. :func:`espresso_jax.nn.supervised.fit`,
    :func:`espresso_jax.bnn.dropout.fit` with ``rate=rate``,
    :func:`espresso_jax.bnn.bbb_elbo.fit`) and times it (compilation included).

    Args:
        kind: the :class:`TrainedModel` kind (``"deterministic"``, ``"dropout"``, ``"bbb"``).
        fit: the model fit. key: PRNG key. x, y: training data.
        module: the flax module. learning_rate, batch_size, n_epochs: Adam and loop settings.
        progress: show a tqdm bar.
        rate: dropout rate (kind ``"dropout"``: passed to ``fit`` and recorded).
        lr_schedule: ``"constant"`` or ``"cosine"`` (Adam's rate decays from
            ``learning_rate`` to 0 along a half cosine over the ``n_epochs * (n // batch_size)``
            steps of the run).
        **fit_options: the fit's own keywords (``task``, ``likelihood``, ``tau``, ...).
    """
    check_choice(lr_schedule, "lr_schedule", LR_SCHEDULES)
    if kind == "dropout":
        fit_options["rate"] = rate
    decay_steps = None
    if lr_schedule == "cosine":
        decay_steps = n_epochs * (int(np.shape(x)[0]) // batch_size)
    start = time.perf_counter()
    res = fit(key, x, y, module=module, optimizer=_adam(learning_rate, decay_steps),
              batch_size=batch_size,
              n_epochs=n_epochs, **fit_options, **loop_options(n_epochs, progress, kind))
    return TrainedModel(kind, module, res.params, float(rate), time.perf_counter() - start,
                        float(res.history["loss"][-1]))


ModelSpec = tuple[str, Callable[..., train.FitResult], dict[str, Any]]
"""``(kind, fit, fit_options)`` of one model for :func:`train_models`."""


def train_models(key: jax.Array, models: Sequence[str], x: Any, y: Any,
                 specs: dict[str, ModelSpec], **options: Any) -> dict[str, TrainedModel]:
    """Train the ``models`` named in ``specs`` with :func:`train_model`.

    Each name in ``specs`` owns one key of ``jax.random.split(key, len(specs))`` (in the order
    of ``specs``), so a model's result does not depend on which others are trained.

    Args:
        key: PRNG key. models: names to train (a subset of ``specs``). x, y: training data.
        specs: name -> ``(kind, fit, fit_options)`` (``fit_options`` holds ``module`` and the
            fit's own keywords).
        **options: :func:`train_model`'s shared settings (learning rate, batch size, ...).
    """
    keys = dict(zip(specs, jax.random.split(key, len(specs)), strict=True))
    return {name: train_model(specs[name][0], specs[name][1], keys[name], x, y,
                              **specs[name][2], **options) for name in models}


@functools.partial(jax.jit, static_argnames="module")
def _det_forward(module, params, x):
    return module.apply(params, x)


@functools.partial(jax.jit, static_argnames=("module", "chunk_size"))
def _dropout_forward(module, params, x, rate, keys, chunk_size):
    def one(k):
        return module.apply(params, x, rate, deterministic=False, rngs={"dropout": k})
    return jax.lax.map(one, keys, batch_size=chunk_size)


def sample_outputs(key: jax.Array, model: TrainedModel, x: Any, *, n_samples: int,
                   chunk_size: int = 10) -> jax.Array:
    """Network outputs under ``n_samples`` draws of the (approximate) posterior.

    Args:
        key: PRNG key for dropout masks / weight samples.
        model: a :class:`TrainedModel`.
        x: ``(n, d)`` inputs.
        n_samples: ``T`` stochastic passes (a deterministic model returns one).
        chunk_size: passes evaluated at once (bounds memory at ``chunk_size * n * width``).

    Returns:
        ``(T, n, n_outputs)`` outputs, logits for a classifier (``T = 1`` when
        deterministic).
    """
    key = check_key(key)
    x = as_float_array(x, "x", ndim=2, shape_hint="(n, d)")
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
    if model.kind == "deterministic":
        return _det_forward(model.module, model.params, x)[None]
    if model.kind == "dropout":
        return _dropout_forward(model.module, model.params, x, model.rate,
                                jax.random.split(key, n_samples), min(chunk_size, n_samples))
    if model.kind != "bbb":
        raise ValueError(f"model.kind must be deterministic, dropout or bbb, got {model.kind!r}")
    chunks, done = [], 0
    for k in jax.random.split(key, -(-n_samples // chunk_size)):
        m = min(chunk_size, n_samples - done)
        chunks.append(bbb_elbo.sample_outputs(k, model.module, model.params, x, n_samples=m))
        done += m
    return jnp.concatenate(chunks, axis=0)
