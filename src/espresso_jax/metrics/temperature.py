"""Temperature scaling (Guo et al. 2017): one positive scalar ``T`` that divides a classifier's
logits, fitted by minimising the negative log-likelihood of ``softmax(logits / T)`` on
held-out data. The argmax (hence accuracy) is unchanged; the confidence is recalibrated.

The fit is that of scikit-learn 1.9's ``CalibratedClassifierCV(method="temperature")``: the
(weighted) mean NLL over the inverse temperature ``beta = 1 / T`` with
``log beta in [-10, 10]`` (``T in [e^-10, e^10]``), no regularisation. The NLL is convex in
``beta`` (a log-sum-exp of functions linear in ``beta`` minus a linear term), so its slope

    g(beta) = sum_i w_i sum_c softmax(beta d_i)_c d_ic / sum_i w_i,   d_ic = z_ic - z_i,y_i

is increasing and the minimiser is its root. We bisect the sign of ``g`` in ``log beta``
(a fixed number of halvings, jit-compatible, key-free); scikit-learn runs bounded Brent on
the NLL itself. Both find the same interior minimiser.

Binary classifiers: pass two-class logits. A decision value ``d`` with ``p = sigmoid(d)`` is
the logit pair ``(0, d)``; scikit-learn turns a 1-D decision function into ``(-d, d)``
(``p = sigmoid(2 d)`` before scaling), for which the fitted ``T`` is twice as large.

References:
    C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On calibration of modern neural networks",
    ICML 2017.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike

from espresso_jax import validation as V
from espresso_jax.metrics.class_predictive import as_labels

__all__ = ["DEFAULT_T_BOUNDS", "TemperatureFit", "fit_temperature", "apply_temperature"]

DEFAULT_T_BOUNDS = (math.exp(-10.0), math.exp(10.0))
"""Search interval of the temperature, scikit-learn's ``log beta in [-10, 10]``."""

_N_HALVINGS = 64
"""Bisection steps in ``log beta``: an interval of width 20 shrinks to ``20 / 2^64 ~ 1e-18``,
below the float64 resolution of ``log T`` (the float32 fit is limited by the rounding of the
slope, about 1e-6 relative in ``T``)."""


class TemperatureFit(NamedTuple):
    """Result of :func:`fit_temperature` (scalars).

    Attributes:
        temperature: fitted ``T > 0``; calibrated probabilities are ``softmax(logits / T)``
            (:func:`apply_temperature`). ``T > 1`` softens over-confident logits.
        nll_before: weighted mean NLL of ``softmax(logits)`` (``T = 1``).
        nll_after: weighted mean NLL of ``softmax(logits / T)`` (at most ``nll_before``).
    """

    temperature: jax.Array
    nll_before: jax.Array
    nll_after: jax.Array


def _margins(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``d_ic = z_ic - z_i,y_i``, ``(n, C)`` (zero at the label): the NLL of example ``i``
    at inverse temperature ``beta`` is ``logsumexp(beta d_i)``."""
    true = jnp.take_along_axis(logits, labels[:, None], axis=1)
    return logits - true


def _mean_nll(d: jax.Array, w: jax.Array, beta: jax.Array) -> jax.Array:
    return jnp.sum(w * logsumexp(beta * d, axis=1)) / jnp.sum(w)


def _slope(d: jax.Array, w: jax.Array, beta: jax.Array) -> jax.Array:
    """``d/d beta`` of the mean NLL, increasing in ``beta``."""
    p = jax.nn.softmax(beta * d, axis=1)
    return jnp.sum(w * jnp.sum(p * d, axis=1)) / jnp.sum(w)


@jax.jit
def _slopes_at_bounds(logits, labels, w, log_beta_lo, log_beta_hi):
    d = _margins(logits, labels)
    return (_slope(d, w, jnp.exp(log_beta_lo)), _slope(d, w, jnp.exp(log_beta_hi)),
            jnp.max(jnp.abs(d)))


@jax.jit
def _fit(logits, labels, w, log_beta_lo, log_beta_hi):
    d = _margins(logits, labels)

    def halve(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        rising = _slope(d, w, jnp.exp(mid)) > 0
        return jnp.where(rising, lo, mid), jnp.where(rising, mid, hi)

    lo, hi = jax.lax.fori_loop(0, _N_HALVINGS, halve, (log_beta_lo, log_beta_hi))
    log_beta = 0.5 * (lo + hi)
    one = jnp.ones((), d.dtype)
    return TemperatureFit(jnp.exp(-log_beta), _mean_nll(d, w, one),
                          _mean_nll(d, w, jnp.exp(log_beta)))


def _bounds(bounds: Any) -> tuple[float, float]:
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f"bounds must be a pair (t_min, t_max), got {bounds!r}")
    t_min = V.check_positive(bounds[0], "bounds[0]")
    t_max = V.check_positive(bounds[1], "bounds[1]")
    if not t_min < t_max:
        raise ValueError(f"bounds must satisfy t_min < t_max, got ({t_min:g}, {t_max:g})")
    return t_min, t_max


def fit_temperature(logits: ArrayLike, labels: ArrayLike, *,
                    sample_weight: ArrayLike | None = None,
                    bounds: tuple[float, float] = DEFAULT_T_BOUNDS) -> TemperatureFit:
    """Fit the temperature ``T`` minimising the mean NLL of ``softmax(logits / T)``.

    Args:
        logits: ``(n, C)`` held-out logits, ``C >= 2`` (for an MC / ensemble predictive pass
            its log-probabilities, :func:`~espresso_jax.metrics.class_predictive.log_predictive`
            of the ``(T, n, C)`` samples, which stay finite where ``log`` of the
            probabilities would give ``-inf``).
        labels: ``(n,)`` integer classes in ``[0, C)``.
        sample_weight: optional ``(n,)`` non-negative weights with a positive sum.
        bounds: ``(t_min, t_max)`` search interval (default scikit-learn's
            ``(e^-10, e^10)``).

    Returns:
        :class:`TemperatureFit`.

    Raises:
        ValueError: bad shapes or values (naming the argument); or, for concrete inputs, no
            minimiser inside ``bounds`` (naming ``logits``): the NLL still falls at ``t_min``
            (the logits separate the labels: ``T -> 0``), still falls at ``t_max`` (the
            logits carry no or the wrong information about the labels: ``T -> inf``), or
            does not depend on ``T`` (every row of ``logits`` constant). Inside a user's
            ``jit`` these checks are skipped and ``T`` lands on the violated bound.

    Example::

        fit = fit_temperature(val_logits, val_labels)
        calibrated = jax.nn.softmax(apply_temperature(test_logits, fit.temperature), -1)
    """
    x = V.as_float_array(logits, "logits", ndim=2, shape_hint="(n, C)")
    if x.shape[1] < 2:
        raise ValueError(f"logits needs at least 2 classes on its last axis, got {x.shape[1]}")
    if np.ndim(labels) == 1:
        V.check_same_length(logits=x, labels=labels)
    y = as_labels(labels, x.shape[0], x.shape[1])
    w = V.as_sample_weight(sample_weight, x.shape[0]).astype(x.dtype)
    t_min, t_max = _bounds(bounds)
    lo = jnp.asarray(-math.log(t_max), x.dtype)
    hi = jnp.asarray(-math.log(t_min), x.dtype)
    if not any(V.is_traced(a) for a in (x, y, w)):
        slope_hot, slope_cold, max_margin = _slopes_at_bounds(x, y, w, lo, hi)
        _check_bracket(float(slope_hot), float(slope_cold), float(max_margin), t_min, t_max)
    return _fit(x, y, w, lo, hi)


def _check_bracket(slope_hot: float, slope_cold: float, max_margin: float, t_min: float,
                   t_max: float) -> None:
    """Raise unless the NLL falls at ``t_max`` and rises at ``t_min`` (its slope in ``beta``
    is <= 0 at ``beta = 1 / t_max`` and >= 0 at ``beta = 1 / t_min``)."""
    if max_margin == 0.0:
        raise ValueError("logits are constant across classes in every row: the NLL does not "
                         "depend on the temperature")
    if not np.isfinite(slope_hot) or not np.isfinite(slope_cold):
        raise ValueError("logits give a non-finite NLL slope; rescale them")
    if slope_cold <= 0.0:
        raise ValueError(f"logits separate labels (nearly) perfectly: the NLL still falls at "
                         f"T = t_min = {t_min:g}, so no temperature in bounds minimises it")
    if slope_hot >= 0.0:
        raise ValueError(f"logits carry no or the wrong information about labels: the NLL "
                         f"still falls at T = t_max = {t_max:g} (uniform predictions win)")


def apply_temperature(logits: ArrayLike, temperature: ArrayLike) -> jax.Array:
    """``logits / temperature``: ``(n, C)`` or ``(T_mc, n, C)`` logits, scalar ``T > 0``.

    Feed the result to the metrics with ``from_logits=True`` or to ``jax.nn.softmax``.
    """
    x = V.as_float_array(logits, "logits", ndim=(2, 3), shape_hint="(n, C) or (T_mc, n, C)")
    t = V.as_positive_array(temperature, "temperature", ndim=0)
    return x / t.astype(x.dtype)
