"""The categorical predictive of a classifier: validating per-sample class probabilities (or
logits) and labels, and averaging the samples into the predictive ``E_t[p_t]`` in log space.

Scores arrive as ``(T, n, C)`` per-sample arrays or a predictive ``(n, C)`` (read as
``T = 1``); the classification and calibration metrics build on these helpers.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike

from espresso_jax import validation as V

__all__ = ["as_class_scores", "as_labels", "log_probs", "log_predictive", "predictive_probs"]


def as_class_scores(probs: Any, from_logits: bool, *, name: str = "probs") -> jax.Array:
    """Validate probabilities or logits, ``(n, C)`` or ``(T, n, C)``; returned as ``(T, n, C)``.

    ``from_logits`` must be a bool. Probabilities (not traced) must lie in ``[0, 1]`` and sum
    to 1 over the class axis; there must be at least 2 classes. ``name`` is used in errors.
    """
    if not isinstance(from_logits, (bool, np.bool_)):
        raise TypeError(f"from_logits must be a bool, got {type(from_logits).__name__}")
    x = V.as_float_array(probs, name, ndim=(2, 3), shape_hint="(n, C) or (n_samples_mc, n, C)")
    if x.shape[-1] < 2:
        raise ValueError(f"{name} needs at least 2 classes on its last axis, got {x.shape[-1]}")
    if not from_logits and not V.is_traced(x):
        low, high, err = (float(v) for v in _prob_stats(x))
        if low < 0.0 or high > 1.0 + 1e-6:
            raise ValueError(f"{name} must lie in [0, 1] (pass from_logits=True for logits), "
                             f"got values in [{low:g}, {high:g}]")
        if err > 1e-3:
            raise ValueError(f"{name} must sum to 1 over the class axis, off by up to {err:g}")
    return x if x.ndim == 3 else x[None]


@jax.jit
def _prob_stats(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    return jnp.min(x), jnp.max(x), jnp.max(jnp.abs(jnp.sum(x, axis=-1) - 1.0))


def as_labels(labels: Any, n: int, n_classes: int) -> jax.Array:
    """Validate ``labels``: ``(n,)`` integer classes in ``[0, n_classes)``, one per input."""
    labels = V.as_int_array(labels, "labels", ndim=1, shape_hint="(n,)", min_value=0,
                            max_value=n_classes - 1)
    if labels.shape[0] != n:
        raise ValueError(f"labels has {labels.shape[0]} entries but probs covers {n} inputs")
    return labels


def log_probs(x: jax.Array, from_logits: bool) -> jax.Array:
    """Per-sample log-probabilities ``(T, n, C)``, finite (zero probabilities -> log tiny)."""
    if from_logits:
        return jax.nn.log_softmax(x, axis=-1)
    return jnp.log(jnp.maximum(x, jnp.finfo(x.dtype).tiny))


def log_predictive(x: jax.Array, from_logits: bool) -> jax.Array:
    """``log E_t p_t``, ``(n, C)``, by log-sum-exp over the samples."""
    return logsumexp(log_probs(x, from_logits), axis=0) - math.log(x.shape[0])


def predictive_probs(probs: ArrayLike, *, from_logits: bool = False) -> jax.Array:
    """Predictive class probabilities ``E_t[p_t]``, ``(n, C)``, from ``(T, n, C)`` samples
    (or ``(n, C)``) of probabilities or, with ``from_logits``, logits."""
    x = as_class_scores(probs, from_logits)
    return _predictive_impl(x, bool(from_logits))


@functools.partial(jax.jit, static_argnames="from_logits")
def _predictive_impl(x, from_logits):
    return jnp.exp(log_predictive(x, from_logits))
