"""Regression metrics from per-sample Gaussian predictions ``mean_t, var_t (T, n)``.

The model's predictive is the mixture ``1/T sum_t N(y; mean_t, var_t)``; this module splits
its variance into epistemic and aleatoric parts (Kendall & Gal 2017) and scores it: RMSE of the
predictive mean, the Gaussian NLL of the moment-matched predictive, and the MC mixture
log-likelihood (the "test LL" of the UCI benchmark; Gal & Ghahramani 2016).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike

from espresso_jax import validation as V
from espresso_jax.metrics.reductions import apply_reduction, check_reduction
from espresso_jax.prob.gaussian import gaussian_log_density

__all__ = [
    "RegressionUncertainty",
    "decompose_regression",
    "gaussian_nll",
    "mc_log_likelihood",
    "mixture_log_likelihood",
    "rmse",
]


class RegressionUncertainty(NamedTuple):
    """Moments of the predictive mixture ``1/T sum_t N(mean_t, var_t)`` per input.

    Attributes:
        mean: ``(n,)`` predictive mean ``E_t[mean_t]``.
        epistemic: ``(n,)`` variance of the per-sample means ``Var_t[mean_t]`` (divisor T).
        aleatoric: ``(n,)`` mean of the per-sample variances ``E_t[var_t]``.
        total: ``(n,)`` predictive variance, ``epistemic + aleatoric``.
    """

    mean: jax.Array
    epistemic: jax.Array
    aleatoric: jax.Array
    total: jax.Array


# ------------------------------------------------------------------------------ validation
def _samples_2d(x: Any, name: str) -> jax.Array:
    return V.as_float_array(x, name, ndim=2, shape_hint="(n_samples_mc, n)")


def _variances(var: Any, name: str, shape: tuple[int, ...], *, allow_zero: bool) -> jax.Array:
    """A variance array of ``shape`` (or a scalar, broadcast explicitly) with entries >= / > 0."""
    v = V.as_positive_array(var, name, ndim=(0, len(shape)), allow_zero=allow_zero)
    if v.ndim and tuple(v.shape) != shape:
        raise ValueError(f"{name} must have shape {shape} (or be a scalar), got {v.shape}")
    return jnp.broadcast_to(v, shape)


def _targets(y: Any, n: int) -> jax.Array:
    y = V.as_float_array(y, "y", ndim=1, shape_hint="(n,)")
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} entries but the predictions cover {n} inputs")
    return y


# ------------------------------------------------------------------ decomposition, scores
def _decompose_one(mean_t: jax.Array, var_t: jax.Array) -> tuple[jax.Array, ...]:
    """One input: ``mean_t, var_t (T,)`` -> (mean, epistemic, aleatoric)."""
    mean = jnp.mean(mean_t)
    epistemic = jnp.mean(jnp.square(mean_t - mean))   # = E[yhat^2] - E[yhat]^2, no cancellation
    aleatoric = jnp.mean(var_t)
    return mean, epistemic, aleatoric


@jax.jit
def _decompose_regression(mean_t, var_t):
    return jax.vmap(_decompose_one, in_axes=(1, 1))(mean_t, var_t)[:3]


def decompose_regression(mean_t: ArrayLike, var_t: ArrayLike) -> RegressionUncertainty:
    """Split the predictive variance into epistemic and aleatoric parts (Kendall & Gal eq. 9).

    Args:
        mean_t: ``(T, n)`` per-sample predictive means (e.g. T dropout masks).
        var_t: ``(T, n)`` per-sample aleatoric variances ``sigma_t^2(x)`` (>= 0), or a scalar
            (homoscedastic noise, e.g. ``1 / tau`` of MC dropout).

    Returns:
        :class:`RegressionUncertainty`; ``total == epistemic + aleatoric`` is the variance of
        the mixture ``1/T sum_t N(mean_t, var_t)``.
    """
    mean_t = _samples_2d(mean_t, "mean_t")
    var_t = _variances(var_t, "var_t", tuple(mean_t.shape), allow_zero=True)
    mean, epistemic, aleatoric = _decompose_regression(mean_t, var_t)
    # The sum is taken outside the compiled kernel, where XLA may fuse and reorder it: this
    # way total == epistemic + aleatoric holds bit for bit.
    return RegressionUncertainty(mean, epistemic, aleatoric, epistemic + aleatoric)


def _gaussian_nll_one(y, mean, var):
    return -gaussian_log_density(jnp.square(y - mean) / var, jnp.log(var))


@functools.partial(jax.jit, static_argnames="reduction")
def _gaussian_nll(y, mean, var, reduction):
    return apply_reduction(jax.vmap(_gaussian_nll_one)(y, mean, var), reduction)


def gaussian_nll(y: ArrayLike, mean: ArrayLike, var: ArrayLike, *,
                 reduction: str = "mean") -> jax.Array:
    """Gaussian negative log-likelihood ``-log N(y; mean, var)`` (nats).

    With ``mean, var`` the predictive moments of :func:`decompose_regression` this scores the
    moment-matched Gaussian; :func:`mc_log_likelihood` scores the mixture itself.

    Args:
        y: ``(n,)`` targets.
        mean: ``(n,)`` predictive means.
        var: ``(n,)`` predictive variances (> 0), or a scalar.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (per example, ``(n,)``).
    """
    reduction = check_reduction(reduction)
    mean = V.as_float_array(mean, "mean", ndim=1, shape_hint="(n,)")
    y = _targets(y, mean.shape[0])
    var = _variances(var, "var", tuple(mean.shape), allow_zero=False)
    return _gaussian_nll(y, mean, var, reduction)


def _mixture_ll_one(y, mean_t, var_t):
    log_p = -_gaussian_nll_one(y, mean_t, var_t)                     # (T,)
    return logsumexp(log_p) - math.log(mean_t.shape[0])


def mixture_log_likelihood(y: jax.Array, mean_t: jax.Array, var_t: ArrayLike) -> jax.Array:
    """Unvalidated, jittable core of :func:`mc_log_likelihood`, per example.

    For callers already inside ``jit``/``vmap`` (e.g. the UCI protocol's evaluation of a
    stack of networks). A model parametrised by a precision ``tau`` passes ``1 / tau``.

    Args:
        y: ``(n,)`` targets.
        mean_t: ``(T, n)`` per-sample means.
        var_t: per-sample variances (> 0, unchecked), broadcastable to ``(T, n)``.

    Returns:
        ``(n,)`` log-densities ``log 1/T sum_t N(y; mean_t, var_t)`` (log-sum-exp over ``T``).
    """
    var_t = jnp.broadcast_to(var_t, jnp.shape(mean_t))
    return jax.vmap(_mixture_ll_one, in_axes=(0, 1, 1))(y, mean_t, var_t)


@functools.partial(jax.jit, static_argnames="reduction")
def _mc_log_likelihood(y, mean_t, var_t, reduction):
    return apply_reduction(mixture_log_likelihood(y, mean_t, var_t), reduction)


def mc_log_likelihood(y: ArrayLike, mean_t: ArrayLike, var_t: ArrayLike, *,
                      reduction: str = "mean") -> jax.Array:
    """MC estimate of the predictive log-likelihood ``log 1/T sum_t N(y; mean_t, var_t)``.

    Computed with log-sum-exp over the samples. This is the test log-likelihood of the UCI
    benchmark (for targets standardised by ``y_std``, subtract ``log y_std`` to report it in
    the original units). A model with noise precision ``tau`` passes ``var_t = 1 / tau``.
    :func:`mixture_log_likelihood` is the unvalidated core, for use inside ``jit``.

    Args:
        y: ``(n,)`` targets.
        mean_t: ``(T, n)`` per-sample means.
        var_t: ``(T, n)`` per-sample variances (> 0), or a scalar.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    """
    reduction = check_reduction(reduction)
    mean_t = _samples_2d(mean_t, "mean_t")
    y = _targets(y, mean_t.shape[1])
    var_t = _variances(var_t, "var_t", tuple(mean_t.shape), allow_zero=False)
    return _mc_log_likelihood(y, mean_t, var_t, reduction)


@jax.jit
def _rmse(y, mean):
    return jnp.sqrt(jnp.mean(jnp.square(y - mean)))


def rmse(y: ArrayLike, mean: ArrayLike) -> jax.Array:
    """Root mean squared error of point predictions ``mean (n,)`` for targets ``y (n,)``.

    For per-sample predictions ``(T, n)`` pass their mean over ``T`` (the predictive mean).
    """
    mean = V.as_float_array(mean, "mean", ndim=1, shape_hint="(n,)")
    return _rmse(_targets(y, mean.shape[0]), mean)
