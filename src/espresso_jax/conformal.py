"""Split conformal prediction on top of any predictive: intervals for regression, label sets
for classification, each with a finite-sample marginal coverage guarantee ``>= 1 - alpha``
when calibration and test points are exchangeable.

Every function takes arrays of predictions, so any model of the library plugs in: fit on a
training part, predict on a held-out calibration part and on the test inputs, then pass
``(targets on cal, predictions on cal, predictions on test)``.

- Regression: :func:`split_conformal` (absolute residual ``|y - mu|``, or the normalised score
  ``|y - mu| / sigma`` for predictives with a standard deviation: Bayesian linear regression,
  MC dropout, Bayes by Backprop, heteroscedastic heads), :func:`cqr` (conformalized quantile
  regression, Romano, Patterson & Candès 2019), :func:`from_predictive` (an adapter for
  predictives with ``mean`` and ``var`` fields such as ``linear.bayes.predict``).
- Classification: :func:`lac` (score ``1 - p_true``, Sadinle, Lei & Wasserman 2019),
  :func:`aps` (adaptive prediction sets, cumulative sorted probabilities, Romano, Sesia &
  Candès 2020; deterministic, or randomised with explicit uniforms) and
  :func:`aps_randomized` (the randomised version drawing its uniforms from ``key``).

The conformal quantile. With ``n`` calibration scores, ``k = ceil((n + 1)(1 - alpha))`` (in
float64 on the host, as MAPIE 1.6 computes it) and the threshold is the ``k``-th smallest score:
numpy's ``quantile(scores, k / n, method="lower")`` (MAPIE 1.6's convention; ``"higher"`` at
level ``k / n`` would give the ``(k + 1)``-th smallest, one step more conservative). The level
depends only on ``n`` and ``alpha``, so it is resolved on the host and the scores are sorted
under ``jit``. When ``k > n`` (``n < 1 / alpha - 1``) no finite threshold has the guarantee:
the functions raise a ``ValueError`` naming the calibration argument, unless
``allow_infinite=True``, which returns the infinite interval ``(-inf, inf)`` (every label for
sets).

Coverage given the calibration set is ``Beta(k, n + 1 - k)`` distributed for continuous scores
(Vovk 2012), mean ``k / (n + 1) >= 1 - alpha``; :func:`coverage_distribution` returns those
parameters, from which tests and users derive the finite-sample slack of an empirical coverage.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.validation import (
    as_float_array,
    as_int_array,
    as_positive_array,
    check_key,
    check_probability,
    is_traced,
)

__all__ = [
    "Interval",
    "PredictionSets",
    "conformal_rank",
    "conformal_quantile",
    "coverage_distribution",
    "split_conformal",
    "from_predictive",
    "cqr",
    "lac",
    "aps",
    "aps_randomized",
    "interval_coverage",
    "set_coverage",
]


class Interval(NamedTuple):
    """Conformal prediction intervals.

    Attributes:
        lower, upper: ``(n_test,)`` bounds (``-inf``/``inf`` when ``allow_infinite`` applied).
        quantile: ``(2,)`` the corrections subtracted from the lower and added to the upper
            prediction (for the normalised score, in units of ``std_test``).
    """

    lower: jax.Array
    upper: jax.Array
    quantile: jax.Array


class PredictionSets(NamedTuple):
    """Conformal prediction sets.

    Attributes:
        sets: ``(n_test, n_classes)`` bool, ``True`` where the label is in the set.
        quantile: ``()`` the threshold on the conformity score.
    """

    sets: jax.Array
    quantile: jax.Array


# --------------------------------------------------------------------------- the quantile

def conformal_rank(n_cal: int, alpha: float) -> int:
    """``k = ceil((n_cal + 1)(1 - alpha))``: the rank of the conformal threshold among the
    sorted calibration scores (``k > n_cal`` means no finite threshold covers at level
    ``1 - alpha``). Host-side, plain Python numbers."""
    alpha = check_probability(alpha, "alpha", open_interval=True)
    if isinstance(n_cal, bool) or not isinstance(n_cal, (int, np.integer)) or n_cal < 1:
        raise ValueError(f"n_cal must be a positive int, got {n_cal!r}")
    return int(math.ceil((int(n_cal) + 1) * (1.0 - alpha)))


def coverage_distribution(n_cal: int, alpha: float) -> tuple[int, int]:
    """``(a, b)`` of the ``Beta(a, b)`` law of the coverage given the calibration set:
    ``a = k``, ``b = n_cal + 1 - k`` (continuous scores, no ties; Vovk 2012). ``n_test`` test
    points then cover a ``BetaBinomial(n_test, a, b)`` count."""
    k = conformal_rank(n_cal, alpha)
    if k > n_cal:
        raise ValueError(f"n_cal = {n_cal} is too few for alpha = {alpha}: need at least "
                         f"{_min_calibration(alpha)} calibration points")
    return k, int(n_cal) + 1 - k


def _min_calibration(alpha: float) -> int:
    """The smallest ``n`` with ``ceil((n + 1)(1 - alpha)) <= n``."""
    n = max(1, int(math.floor(1.0 / alpha)) - 2)
    while math.ceil((n + 1) * (1.0 - alpha)) > n:
        n += 1
    return n


def _rank_checked(n_cal: int, alpha: float, name: str, allow_infinite: bool) -> int:
    k = conformal_rank(n_cal, alpha)
    if k > n_cal and not allow_infinite:
        raise ValueError(
            f"{name} has {n_cal} calibration points, too few for alpha = {alpha}: the conformal "
            f"quantile needs at least {_min_calibration(alpha)} (ceil((n + 1)(1 - alpha)) <= n); "
            "pass more points, a larger alpha, or allow_infinite=True for infinite intervals")
    return k


@partial(jax.jit, static_argnames=("k",))
def _kth_smallest(scores: jax.Array, k: int) -> jax.Array:
    """The ``k``-th smallest (1-based) of ``scores`` ``(n,)``; ``inf`` when ``k > n``."""
    if k > scores.shape[0]:
        return jnp.asarray(jnp.inf, scores.dtype)
    return jnp.sort(scores)[k - 1]


def conformal_quantile(scores: Any, alpha: float, *, allow_infinite: bool = False) -> jax.Array:
    """The conformal threshold of ``scores`` ``(n,)``: their ``ceil((n + 1)(1 - alpha))``-th
    smallest value, ``()``; ``inf`` when that rank exceeds ``n`` and ``allow_infinite``."""
    scores = as_float_array(scores, "scores", ndim=1, shape_hint="(n_cal,)")
    k = _rank_checked(scores.shape[0], alpha, "scores", allow_infinite)
    return _kth_smallest(scores, k)


# --------------------------------------------------------------------------- regression

def _vectors(**arrays: Any) -> dict[str, jax.Array]:
    return {name: as_float_array(a, name, ndim=1, shape_hint="(n,)")
            for name, a in arrays.items()}


def _same_length(what: str, **arrays: jax.Array) -> int:
    lengths = {name: int(a.shape[0]) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        text = ", ".join(f"{k} has {v}" for k, v in lengths.items())
        raise ValueError(f"{' and '.join(lengths)} must have one entry per {what}: {text}")
    return next(iter(lengths.values()))


@partial(jax.jit, static_argnames=("k",))
def _split_impl(y_cal, mean_cal, mean_test, std_cal, std_test, k):
    q = _kth_smallest(jnp.abs(y_cal - mean_cal) / std_cal, k)
    return Interval(mean_test - q * std_test, mean_test + q * std_test, jnp.stack([q, q]))


def split_conformal(y_cal: Any, mean_cal: Any, mean_test: Any, alpha: float, *,
                    std_cal: Any = None, std_test: Any = None,
                    allow_infinite: bool = False) -> Interval:
    """Split conformal intervals ``mean_test ± q`` (absolute residual score) or
    ``mean_test ± q std_test`` (normalised score ``|y - mean| / std``, when both stds are
    given).

    Args:
        y_cal: ``(n_cal,)`` calibration targets.
        mean_cal: ``(n_cal,)`` point predictions on the calibration inputs.
        mean_test: ``(n_test,)`` point predictions on the test inputs.
        alpha: miscoverage level in ``(0, 1)``.
        std_cal, std_test: ``(n_cal,)`` and ``(n_test,)`` predictive standard deviations
            ``> 0``, both or neither.
        allow_infinite: return ``(-inf, inf)`` instead of raising when ``n_cal`` is too small.

    Returns:
        :class:`Interval`.
    """
    v = _vectors(y_cal=y_cal, mean_cal=mean_cal, mean_test=mean_test)
    n = _same_length("calibration point", y_cal=v["y_cal"], mean_cal=v["mean_cal"])
    if (std_cal is None) != (std_test is None):
        raise ValueError("std_cal and std_test must be given together (normalised score) or "
                         "both left out (absolute residual score)")
    if std_cal is None:
        s_cal = jnp.ones_like(v["y_cal"])
        s_test = jnp.ones_like(v["mean_test"])
    else:
        s_cal = as_positive_array(std_cal, "std_cal", ndim=1)
        s_test = as_positive_array(std_test, "std_test", ndim=1)
        _same_length("calibration point", y_cal=v["y_cal"], std_cal=s_cal)
        _same_length("test point", mean_test=v["mean_test"], std_test=s_test)
    k = _rank_checked(n, alpha, "y_cal", allow_infinite)
    return _split_impl(v["y_cal"], v["mean_cal"], v["mean_test"], s_cal, s_test, k)


def from_predictive(y_cal: Any, pred_cal: Any, pred_test: Any, alpha: float, *,
                    normalized: bool = True, allow_infinite: bool = False) -> Interval:
    """:func:`split_conformal` from two predictives with ``mean`` and ``var`` fields
    (``(n_cal,)`` and ``(n_test,)`` each), e.g. ``linear.bayes.predict`` results; a plain
    array is taken as the mean. ``normalized`` uses the score ``|y - mean| / sqrt(var)``."""
    means, stds = [], []
    for name, pred in (("pred_cal", pred_cal), ("pred_test", pred_test)):
        mean = getattr(pred, "mean", pred)
        if callable(mean):  # a raw array's .mean method: the array is the mean itself
            mean = pred
        var = getattr(pred, "var", None)
        if normalized and (var is None or callable(var)):
            raise TypeError(f"{name} has no var field: pass a predictive with mean and var, "
                            "or normalized=False")
        means.append(mean)
        if normalized:
            stds.append(jnp.sqrt(as_positive_array(var, f"{name}.var", ndim=1)))
    return split_conformal(y_cal, means[0], means[1], alpha,
                           std_cal=stds[0] if normalized else None,
                           std_test=stds[1] if normalized else None,
                           allow_infinite=allow_infinite)


@partial(jax.jit, static_argnames=("k", "symmetric"))
def _cqr_impl(y_cal, lo_cal, hi_cal, lo_test, hi_test, k, symmetric):
    s_lo, s_hi = lo_cal - y_cal, y_cal - hi_cal
    if symmetric:
        q = _kth_smallest(jnp.maximum(s_lo, s_hi), k)
        q_lo = q_hi = q
    else:
        q_lo, q_hi = _kth_smallest(s_lo, k), _kth_smallest(s_hi, k)
    return Interval(lo_test - q_lo, hi_test + q_hi, jnp.stack([q_lo, q_hi]))


def cqr(y_cal: Any, lower_cal: Any, upper_cal: Any, lower_test: Any, upper_test: Any,
        alpha: float, *, symmetric: bool = True, allow_infinite: bool = False) -> Interval:
    """Conformalized quantile regression (Romano et al. 2019).

    ``lower``/``upper`` are predicted quantiles, typically at ``alpha / 2`` and
    ``1 - alpha / 2``. Symmetric (the paper's score): ``E = max(lower - y, y - upper)``,
    interval ``[lower_test - q, upper_test + q]`` with ``q`` the conformal quantile of ``E`` at
    ``alpha``. ``symmetric=False`` (MAPIE 1.6's default): each side its own correction, the
    conformal quantile at ``alpha / 2`` of ``lower - y`` and of ``y - upper``.

    Args:
        y_cal, lower_cal, upper_cal: ``(n_cal,)``.
        lower_test, upper_test: ``(n_test,)``.
        alpha: miscoverage level in ``(0, 1)``.

    Returns:
        :class:`Interval` (``quantile``: the lower and upper corrections).
    """
    v = _vectors(y_cal=y_cal, lower_cal=lower_cal, upper_cal=upper_cal,
                 lower_test=lower_test, upper_test=upper_test)
    n = _same_length("calibration point", y_cal=v["y_cal"], lower_cal=v["lower_cal"],
                     upper_cal=v["upper_cal"])
    _same_length("test point", lower_test=v["lower_test"], upper_test=v["upper_test"])
    if not isinstance(symmetric, bool):
        raise TypeError(f"symmetric must be a bool, got {type(symmetric).__name__}")
    level = alpha if symmetric else check_probability(alpha, "alpha", open_interval=True) / 2
    k = _rank_checked(n, level, "y_cal", allow_infinite)
    return _cqr_impl(v["y_cal"], v["lower_cal"], v["upper_cal"], v["lower_test"],
                     v["upper_test"], k, symmetric)


# --------------------------------------------------------------------------- classification

def _probabilities(probs: Any, name: str, shape_hint: str) -> jax.Array:
    p = as_float_array(probs, name, ndim=2, shape_hint=shape_hint)
    if p.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 classes (columns), got {p.shape[1]}")
    if not is_traced(p):
        arr = np.asarray(p, dtype=np.float64)
        tol = max(1e-6, 1000 * float(np.finfo(p.dtype).eps))
        if arr.min() < 0:
            raise ValueError(f"{name} has negative probabilities (min {arr.min():.3g})")
        worst = float(np.abs(arr.sum(axis=1) - 1.0).max())
        if worst > tol:
            raise ValueError(f"{name} rows must sum to 1 (within {tol:.1e}); the worst row is "
                             f"off by {worst:.3g}: pass probabilities, not logits")
    return p


def _classification_inputs(probs_cal: Any, labels_cal: Any, probs_test: Any, alpha: float,
                           allow_infinite: bool) -> tuple[jax.Array, jax.Array, jax.Array, int]:
    p_cal = _probabilities(probs_cal, "probs_cal", "(n_cal, n_classes)")
    p_test = _probabilities(probs_test, "probs_test", "(n_test, n_classes)")
    if p_cal.shape[1] != p_test.shape[1]:
        raise ValueError(f"probs_cal has {p_cal.shape[1]} classes but probs_test has "
                         f"{p_test.shape[1]}")
    labels = as_int_array(labels_cal, "labels_cal", ndim=1, shape_hint="(n_cal,)",
                          min_value=0, max_value=p_cal.shape[1] - 1)
    n = _same_length("calibration point", labels_cal=labels, probs_cal=p_cal)
    return p_cal, labels, p_test, _rank_checked(n, alpha, "labels_cal", allow_infinite)


def _true_prob(probs: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.take_along_axis(probs, labels[:, None], axis=1)[:, 0]


@partial(jax.jit, static_argnames=("k",))
def _lac_impl(p_cal, labels, p_test, k):
    q = _kth_smallest(1.0 - _true_prob(p_cal, labels), k)
    return PredictionSets(1.0 - p_test <= q, q)


def lac(probs_cal: Any, labels_cal: Any, probs_test: Any, alpha: float, *,
        allow_infinite: bool = False) -> PredictionSets:
    """Least ambiguous set-valued classifier (Sadinle et al. 2019): score ``1 - p_true``, set
    ``{y : 1 - p_y <= q}``. May be empty.

    Args:
        probs_cal: ``(n_cal, n_classes)`` predictive probabilities on the calibration inputs.
        labels_cal: ``(n_cal,)`` integer labels in ``[0, n_classes)``.
        probs_test: ``(n_test, n_classes)``.
        alpha: miscoverage level in ``(0, 1)``.
    """
    p_cal, labels, p_test, k = _classification_inputs(probs_cal, labels_cal, probs_test,
                                                      alpha, allow_infinite)
    return _lac_impl(p_cal, labels, p_test, k)


def _cumulative(probs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per label: the probability mass ranked strictly above it, and through it (sorted by
    decreasing probability; ``(n, n_classes)`` each, in label order)."""
    order = jnp.argsort(-probs, axis=1, stable=True)
    through_sorted = jnp.cumsum(jnp.take_along_axis(probs, order, axis=1), axis=1)
    through = jnp.zeros_like(probs).at[jnp.arange(probs.shape[0])[:, None], order].set(
        through_sorted)
    return through - probs, through


@partial(jax.jit, static_argnames=("k", "randomized"))
def _aps_impl(p_cal, labels, p_test, u_cal, u_test, k, randomized):
    _, through_cal = _cumulative(p_cal)
    e_cal = _true_prob(through_cal, labels)
    if randomized:
        e_cal = e_cal - u_cal * _true_prob(p_cal, labels)
    q = _kth_smallest(e_cal, k)
    above, through = _cumulative(p_test)
    # deterministic: the labels ranked up to the first whose cumulative mass reaches q
    sets = through - u_test[:, None] * p_test <= q if randomized else above < q
    return PredictionSets(sets, q)


def aps(probs_cal: Any, labels_cal: Any, probs_test: Any, alpha: float, *,
        u_cal: Any = None, u_test: Any = None, allow_infinite: bool = False) -> PredictionSets:
    """Adaptive prediction sets (Romano et al. 2020).

    Labels are ranked by decreasing probability (ties: lower label first); ``E(x, y)`` is the
    mass ranked up to and including ``y``. Deterministic (no ``u``): calibration score
    ``E(x, y_true)``; the set holds the top labels up to and including the first whose
    cumulative mass reaches ``q`` (``{y : E(x, y) - p_y < q}``; MAPIE's
    ``include_last_label=True``), never empty. Randomised (``u_cal (n_cal,)`` and
    ``u_test (n_test,)`` uniforms on ``[0, 1)``, e.g. from :func:`aps_randomized`): score
    ``E(x, y_true) - u p_true``, set ``{y : E(x, y) - u_x p_y <= q}`` (MAPIE's
    ``include_last_label="randomized"``), exact coverage in expectation, may be empty.

    Args:
        probs_cal: ``(n_cal, n_classes)``; labels_cal: ``(n_cal,)``;
        probs_test: ``(n_test, n_classes)``; alpha: miscoverage level in ``(0, 1)``.
    """
    p_cal, labels, p_test, k = _classification_inputs(probs_cal, labels_cal, probs_test,
                                                      alpha, allow_infinite)
    if (u_cal is None) != (u_test is None):
        raise ValueError("u_cal and u_test must be given together (randomised APS) or both "
                         "left out (deterministic APS)")
    randomized = u_cal is not None
    if randomized:
        u_c = as_float_array(u_cal, "u_cal", ndim=1, shape_hint="(n_cal,)")
        u_t = as_float_array(u_test, "u_test", ndim=1, shape_hint="(n_test,)")
        _same_length("calibration point", labels_cal=labels, u_cal=u_c)
        _same_length("test point", probs_test=p_test, u_test=u_t)
        for name, u in (("u_cal", u_c), ("u_test", u_t)):
            if not is_traced(u) and not bool(((u >= 0) & (u <= 1)).all()):
                raise ValueError(f"{name} must lie in [0, 1]")
    else:
        u_c, u_t = jnp.zeros(p_cal.shape[0], p_cal.dtype), jnp.zeros(p_test.shape[0], p_cal.dtype)
    return _aps_impl(p_cal, labels, p_test, u_c.astype(p_cal.dtype), u_t.astype(p_cal.dtype),
                     k, randomized)


def aps_randomized(key: jax.Array, probs_cal: Any, labels_cal: Any, probs_test: Any,
                   alpha: float, *, allow_infinite: bool = False) -> PredictionSets:
    """Randomised :func:`aps`, the uniforms drawn from ``key`` (one per calibration point, one
    per test point). Shapes as :func:`aps`."""
    key = check_key(key)
    p_cal = as_float_array(probs_cal, "probs_cal", ndim=2, shape_hint="(n_cal, n_classes)")
    p_test = as_float_array(probs_test, "probs_test", ndim=2,
                            shape_hint="(n_test, n_classes)")
    k_cal, k_test = jax.random.split(key)
    return aps(p_cal, labels_cal, p_test, alpha,
               u_cal=jax.random.uniform(k_cal, (p_cal.shape[0],), p_cal.dtype),
               u_test=jax.random.uniform(k_test, (p_test.shape[0],), p_cal.dtype),
               allow_infinite=allow_infinite)


# --------------------------------------------------------------------------- coverage

def interval_coverage(y: Any, interval: Interval) -> jax.Array:
    """Fraction ``()`` of ``y`` ``(n_test,)`` inside ``[lower, upper]``."""
    y = as_float_array(y, "y", ndim=1, shape_hint="(n_test,)")
    _same_length("test point", y=y, lower=jnp.asarray(interval.lower))
    return jnp.mean((y >= interval.lower) & (y <= interval.upper))


def set_coverage(labels: Any, sets: PredictionSets) -> jax.Array:
    """Fraction ``()`` of ``labels`` ``(n_test,)`` inside their prediction set."""
    n_classes = int(sets.sets.shape[1])
    labels = as_int_array(labels, "labels", ndim=1, shape_hint="(n_test,)", min_value=0,
                          max_value=n_classes - 1)
    _same_length("test point", labels=labels, sets=jnp.asarray(sets.sets))
    return jnp.mean(_true_prob(sets.sets.astype(jnp.float32), labels))
