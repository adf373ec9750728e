"""Metrics of predictive uncertainty: decompositions and scoring rules for every model family.

This module sits below the model packages (it imports only :mod:`espresso_jax.validation`), so
linear, mixture, neural and Bayesian-network models score their predictives with the same code.

A stochastic network (MC dropout, Bayes by Backprop, an ensemble, posterior draws from NUTS)
gives ``T`` predictions per input. This module turns them into the quantities of Kendall & Gal
(2017):

Regression, from per-sample means ``mean_t (T, n)`` and aleatoric variances ``var_t (T, n)``
(the model's predictive is the mixture ``1/T sum_t N(y; mean_t, var_t)``)::

    total     = E_t[yhat_t^2] - E_t[yhat_t]^2 + E_t[sigma_t^2]
              = Var_t[yhat_t]   (epistemic)   + E_t[sigma_t^2]   (aleatoric)

and the scores RMSE of the predictive mean, the Gaussian NLL of the moment-matched predictive,
and the MC mixture log-likelihood ``log 1/T sum_t N(y; mean_t, var_t)`` (the "test LL" of the
UCI benchmark).

Classification, from per-sample probabilities ``(T, n, C)`` (or logits with
``from_logits=True``)::

    predictive probabilities  p = E_t[p_t]
    predictive entropy        H[p]                    (total uncertainty)
    expected entropy          E_t[H[p_t]]             (aleatoric)
    mutual information        H[p] - E_t[H[p_t]]      (epistemic, BALD)

and the scores NLL, Brier score, accuracy, expected calibration error and the data of a
reliability diagram. The scoring functions take either the per-sample ``(T, n, C)`` array
(averaged over ``T`` first; in log space when given logits) or predictive ``(n, C)``.

Every quantity is written for one example and vmapped over examples.

References:
    A. Kendall and Y. Gal, "What uncertainties do we need in Bayesian deep learning for
    computer vision?", NeurIPS 2017.
    N. Houlsby, F. Huszár, Z. Ghahramani, M. Lengyel, "Bayesian active learning for
    classification and preference learning", 2011 (BALD).
    G. W. Brier, "Verification of forecasts expressed in terms of probability", Monthly Weather
    Review 78, 1950.
    M. P. Naeini, G. Cooper, M. Hauskrecht, "Obtaining well calibrated probabilities using
    Bayesian binning", AAAI 2015 (ECE); C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On
    calibration of modern neural networks", ICML 2017 (reliability diagrams).
    Y. Gal and Z. Ghahramani, "Dropout as a Bayesian approximation", ICML 2016 (MC test LL).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike

from espresso_jax import validation as V
from espresso_jax.prob.gaussian import gaussian_log_density

__all__ = [
    "RegressionUncertainty",
    "ClassificationUncertainty",
    "ReliabilityDiagram",
    "DEFAULT_N_BINS",
    "decompose_regression",
    "gaussian_nll",
    "mc_log_likelihood",
    "mixture_log_likelihood",
    "rmse",
    "decompose_classification",
    "predictive_probs",
    "entropy",
    "negative_log_likelihood",
    "brier_score",
    "accuracy",
    "expected_calibration_error",
    "reliability_diagram",
    "REDUCTIONS",
    "check_reduction",
    "apply_reduction",
]

DEFAULT_N_BINS = 15
"""Equal-width confidence bins of the ECE and the reliability diagram (Guo et al. use 15)."""

REDUCTIONS = ("mean", "sum", "none")
"""Reductions of per-example scores accepted by the ``reduction`` arguments."""


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


class ClassificationUncertainty(NamedTuple):
    """Uncertainty of a categorical predictive per input (entropies in nats).

    Attributes:
        probs: ``(n, C)`` predictive probabilities ``E_t[p_t]``.
        entropy: ``(n,)`` predictive entropy ``H[E_t p_t]`` in ``[0, log C]`` (total).
        expected_entropy: ``(n,)`` ``E_t H[p_t]`` (aleatoric).
        mutual_information: ``(n,)`` ``entropy - expected_entropy`` >= 0 (epistemic, BALD).
    """

    probs: jax.Array
    entropy: jax.Array
    expected_entropy: jax.Array
    mutual_information: jax.Array


class ReliabilityDiagram(NamedTuple):
    """Per-bin calibration data over equal-width confidence bins ``(edges[b], edges[b+1]]``
    (the first bin also holds confidence 0).

    Attributes:
        bin_edges: ``(n_bins + 1,)`` from 0 to 1.
        confidence: ``(n_bins,)`` mean confidence (max predictive probability) in each bin;
            0 for an empty bin.
        accuracy: ``(n_bins,)`` fraction of correct top-1 predictions in each bin; 0 if empty.
        counts: ``(n_bins,)`` int32 number of examples in each bin (not ``count``, which
            would shadow ``tuple.count``).
    """

    bin_edges: jax.Array
    confidence: jax.Array
    accuracy: jax.Array
    counts: jax.Array


# ------------------------------------------------------------------------------ validation
def apply_reduction(values: jax.Array, reduction: str) -> jax.Array:
    """Reduce per-example scores ``values: (n,)`` by ``"mean"``, ``"sum"`` or ``"none"``
    (returned as is). Jittable with ``reduction`` static; validate it with
    :func:`check_reduction` on the host."""
    if reduction == "mean":
        return jnp.mean(values)
    if reduction == "sum":
        return jnp.sum(values)
    return values


def check_reduction(reduction: Any) -> str:
    """``reduction`` if it is one of :data:`REDUCTIONS`, else ``ValueError`` naming it."""
    return V.check_choice(reduction, "reduction", REDUCTIONS)


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


def _class_scores(probs: Any, from_logits: bool, *, name: str = "probs") -> jax.Array:
    """Validate probabilities or logits, ``(n, C)`` or ``(T, n, C)``; returned as ``(T, n, C)``."""
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


def _labels(labels: Any, n: int, n_classes: int) -> jax.Array:
    labels = V.as_int_array(labels, "labels", ndim=1, shape_hint="(n,)", min_value=0,
                            max_value=n_classes - 1)
    if labels.shape[0] != n:
        raise ValueError(f"labels has {labels.shape[0]} entries but probs covers {n} inputs")
    return labels


def _n_bins(n_bins: Any) -> int:
    return V.check_int(n_bins, "n_bins", min_value=1)


# ------------------------------------------------------------------------------ regression
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


# --------------------------------------------------------------------------- classification
def _log_probs(x: jax.Array, from_logits: bool) -> jax.Array:
    """Per-sample log-probabilities ``(T, n, C)``, finite (zero probabilities -> log tiny)."""
    if from_logits:
        return jax.nn.log_softmax(x, axis=-1)
    return jnp.log(jnp.maximum(x, jnp.finfo(x.dtype).tiny))


def _log_predictive(x: jax.Array, from_logits: bool) -> jax.Array:
    """``log E_t p_t``, ``(n, C)``, by log-sum-exp over the samples."""
    return logsumexp(_log_probs(x, from_logits), axis=0) - math.log(x.shape[0])


def _entropy_one(p: jax.Array, log_p: jax.Array) -> jax.Array:
    """Entropy of one categorical ``(C,)``; ``0 log 0 = 0``."""
    return -jnp.sum(jnp.where(p > 0, p * log_p, 0.0))


def _decompose_class_one(log_p_t: jax.Array) -> tuple[jax.Array, ...]:
    """One input, ``log_p_t (T, C)`` -> (probs, entropy, expected entropy, mutual info)."""
    p_t = jnp.exp(log_p_t)
    log_p = logsumexp(log_p_t, axis=0) - math.log(log_p_t.shape[0])
    p = jnp.exp(log_p)
    total = _entropy_one(p, log_p)
    expected = jnp.mean(jax.vmap(_entropy_one)(p_t, log_p_t))
    # Jensen (entropy is concave) gives total >= expected; clip rounding below zero.
    return p, total, expected, jnp.maximum(total - expected, 0.0)


@functools.partial(jax.jit, static_argnames="from_logits")
def _decompose_classification(x, from_logits):
    log_p_t = _log_probs(x, from_logits)
    return ClassificationUncertainty(*jax.vmap(_decompose_class_one, in_axes=1)(log_p_t))


def decompose_classification(probs: ArrayLike, *,
                             from_logits: bool = False) -> ClassificationUncertainty:
    """Predictive entropy, expected entropy and mutual information (BALD) per input.

    Args:
        probs: ``(T, n, C)`` per-sample class probabilities (or logits with
            ``from_logits=True``); ``(n, C)`` is read as a single sample (mutual information 0).
        from_logits: treat ``probs`` as unnormalised log-probabilities.

    Returns:
        :class:`ClassificationUncertainty`.

    References:
        Houlsby et al. (2011); Kendall & Gal (2017); Gal, Islam, Ghahramani, "Deep Bayesian
        active learning with image data", ICML 2017.
    """
    return _decompose_classification(_class_scores(probs, from_logits), bool(from_logits))


def predictive_probs(probs: ArrayLike, *, from_logits: bool = False) -> jax.Array:
    """Predictive class probabilities ``E_t[p_t]``, ``(n, C)``, from ``(T, n, C)`` samples
    (or ``(n, C)``) of probabilities or, with ``from_logits``, logits."""
    x = _class_scores(probs, from_logits)
    return _predictive_impl(x, bool(from_logits))


@functools.partial(jax.jit, static_argnames="from_logits")
def _predictive_impl(x, from_logits):
    return jnp.exp(_log_predictive(x, from_logits))


def entropy(probs: ArrayLike, *, from_logits: bool = False) -> jax.Array:
    """Entropy (nats) of the predictive distribution, ``(n,)``, in ``[0, log C]``."""
    return decompose_classification(probs, from_logits=from_logits).entropy


@functools.partial(jax.jit, static_argnames=("from_logits", "reduction"))
def _nll(labels, x, from_logits, reduction):
    log_p = _log_predictive(x, from_logits)
    values = -jax.vmap(lambda lp, y: lp[y])(log_p, labels)
    return apply_reduction(values, reduction)


def negative_log_likelihood(labels: ArrayLike, probs: ArrayLike, *, from_logits: bool = False,
                            reduction: str = "mean") -> jax.Array:
    """Categorical NLL ``-log p(y | x)`` of the predictive (sklearn's ``log_loss``).

    Args:
        labels: ``(n,)`` integer classes in ``[0, C)``.
        probs: ``(n, C)`` predictive or ``(T, n, C)`` per-sample probabilities (logits with
            ``from_logits``; the average over ``T`` is then taken in log space). A zero
            probability for the true class gives ``-log(tiny)`` (about 87 nats in float32)
            instead of inf.
        from_logits: treat ``probs`` as logits.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    """
    reduction = check_reduction(reduction)
    x = _class_scores(probs, from_logits)
    labels = _labels(labels, x.shape[1], x.shape[2])
    return _nll(labels, x, bool(from_logits), reduction)


@functools.partial(jax.jit, static_argnames=("from_logits", "reduction"))
def _brier(labels, x, from_logits, reduction):
    p = jnp.exp(_log_predictive(x, from_logits))

    def one(p, y):
        onehot = jax.nn.one_hot(y, p.shape[0], dtype=p.dtype)
        return jnp.sum(jnp.square(p - onehot))

    return apply_reduction(jax.vmap(one)(p, labels), reduction)


def brier_score(labels: ArrayLike, probs: ArrayLike, *, from_logits: bool = False,
                reduction: str = "mean") -> jax.Array:
    """Multi-class Brier score ``sum_c (p_c - [y = c])^2`` (Brier 1950), in ``[0, 2]``.

    This equals sklearn's multi-class ``brier_score_loss``; for two classes it is twice the
    binary ``brier_score_loss`` (which scores the positive class only).

    Args:
        labels: ``(n,)`` integer classes. probs: ``(n, C)`` or ``(T, n, C)``.
        from_logits: treat ``probs`` as logits. reduction: ``"mean"``, ``"sum"``, ``"none"``.
    """
    reduction = check_reduction(reduction)
    x = _class_scores(probs, from_logits)
    labels = _labels(labels, x.shape[1], x.shape[2])
    return _brier(labels, x, bool(from_logits), reduction)


@functools.partial(jax.jit, static_argnames="from_logits")
def _accuracy(labels, x, from_logits):
    pred = jnp.argmax(_log_predictive(x, from_logits), axis=-1).astype(jnp.int32)
    return jnp.mean((pred == labels).astype(x.dtype))


def accuracy(labels: ArrayLike, probs: ArrayLike, *, from_logits: bool = False) -> jax.Array:
    """Top-1 accuracy of the predictive (ties go to the lowest class index)."""
    x = _class_scores(probs, from_logits)
    labels = _labels(labels, x.shape[1], x.shape[2])
    return _accuracy(labels, x, bool(from_logits))


@functools.partial(jax.jit, static_argnames=("from_logits", "n_bins"))
def _reliability(labels, x, from_logits, n_bins):
    log_p = _log_predictive(x, from_logits)
    conf = jnp.exp(jnp.max(log_p, axis=-1))
    correct = (jnp.argmax(log_p, axis=-1).astype(jnp.int32) == labels).astype(x.dtype)
    edges = jnp.linspace(0.0, 1.0, n_bins + 1, dtype=x.dtype)
    # bin b holds (edges[b], edges[b+1]]: the number of inner edges strictly below conf.
    bins = jnp.searchsorted(edges[1:-1], conf, side="left").astype(jnp.int32)
    count = jax.ops.segment_sum(jnp.ones_like(bins), bins, num_segments=n_bins)
    sum_conf = jax.ops.segment_sum(conf, bins, num_segments=n_bins)
    sum_acc = jax.ops.segment_sum(correct, bins, num_segments=n_bins)
    ece = jnp.sum(jnp.abs(sum_acc - sum_conf)) / conf.shape[0]
    denom = jnp.maximum(count, 1).astype(x.dtype)
    return ece, ReliabilityDiagram(edges, sum_conf / denom, sum_acc / denom, count)


def expected_calibration_error(labels: ArrayLike, probs: ArrayLike, *,
                               n_bins: int = DEFAULT_N_BINS,
                               from_logits: bool = False) -> jax.Array:
    """Expected calibration error ``sum_b (n_b / n) |acc_b - conf_b|`` over ``n_bins``
    equal-width bins of the top-1 confidence (default 15 bins).

    Args:
        labels: ``(n,)`` integer classes. probs: ``(n, C)`` or ``(T, n, C)``.
        n_bins: number of equal-width bins on ``[0, 1]``.
        from_logits: treat ``probs`` as logits.

    References:
        Naeini et al. (2015); Guo et al. (2017).
    """
    n_bins = _n_bins(n_bins)
    x = _class_scores(probs, from_logits)
    labels = _labels(labels, x.shape[1], x.shape[2])
    return _reliability(labels, x, bool(from_logits), n_bins)[0]


def reliability_diagram(labels: ArrayLike, probs: ArrayLike, *, n_bins: int = DEFAULT_N_BINS,
                        from_logits: bool = False) -> ReliabilityDiagram:
    """Per-bin mean confidence, accuracy and count of the top-1 prediction (the data of a
    reliability diagram; see :func:`espresso_jax.apps.viz.bnn.plot_reliability_diagram`).

    Args:
        labels: ``(n,)`` integer classes. probs: ``(n, C)`` or ``(T, n, C)``.
        n_bins: number of equal-width bins on ``[0, 1]`` (default 15).
        from_logits: treat ``probs`` as logits.

    Returns:
        :class:`ReliabilityDiagram`; ``sum(count * |accuracy - confidence|) / n`` is the ECE.
    """
    n_bins = _n_bins(n_bins)
    x = _class_scores(probs, from_logits)
    labels = _labels(labels, x.shape[1], x.shape[2])
    return _reliability(labels, x, bool(from_logits), n_bins)[1]
