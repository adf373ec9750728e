"""Out-of-distribution (OOD) detection: threshold-free ranking metrics of a score and the usual
scores of a categorical predictive.

Ranking metrics take binary ``labels`` (1 = positive) and real ``scores`` (higher = more
positive), in scikit-learn's ``(y_true, y_score)`` order, and equal ``sklearn.metrics``,
ties included (a tie group of scores is one threshold):

* :func:`auroc` = ``roc_auc_score``: the probability that a positive outscores a negative,
  ties counting one half (the trapezoidal area under the ROC curve).
* :func:`aupr` = ``average_precision_score``: the step-wise area
  ``sum_k (R_k - R_k-1) P_k`` over the distinct thresholds (no interpolation), i.e. the mean
  over positives of the precision at their own score.
* :func:`fpr_at_tpr`: the false-positive rate at the highest threshold whose true-positive
  rate reaches ``tpr`` (no interpolation): ``fpr[np.argmax(tpr_curve >= tpr)]`` of
  ``roc_curve(..., drop_intermediate=False)`` (the default ``drop_intermediate=True`` curve can
  skip that point when tied groups give collinear points).

:func:`ood_metrics` scores in- vs out-of-distribution inputs from an OOD score (higher = more
likely OOD) with the conventions of Hendrycks & Gimpel (2017) and Liang et al. (2018): AUROC,
AUPR-In (in-distribution positive, score negated), AUPR-Out (OOD positive) and the FPR at 95%
TPR with in-distribution positive: the fraction of OOD inputs accepted when 95% of
in-distribution inputs are.

:func:`ood_score` gives the scores of a predictive (``(n, C)`` or ``(T, n, C)`` samples):
``"max_prob"`` the negated maximum predictive probability (negated, not ``1 - p``, which
rounds distinct confidences together), ``"entropy"`` the predictive entropy and
``"mutual_information"`` BALD (needs ``T >= 2`` samples).

Scores are compared in the working dtype (float32 unless x64): float64 scores that differ
only beyond float32 precision tie in float32. Sums over examples are pairwise, so float32
results are within about ``log2(n) * 6e-8`` of the exact ones.

References:
    D. Hendrycks, K. Gimpel, "A baseline for detecting misclassified and out-of-distribution
    examples in neural networks", ICLR 2017.
    S. Liang, Y. Li, R. Srikant, "Enhancing the reliability of out-of-distribution image
    detection in neural networks", ICLR 2018 (FPR at 95% TPR).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from espresso_jax import validation as V
from espresso_jax.metrics.classification import decompose_classification

__all__ = ["OOD_SCORES", "OODMetrics", "auroc", "aupr", "fpr_at_tpr", "ood_metrics",
           "ood_score"]

OOD_SCORES = ("max_prob", "entropy", "mutual_information")
"""Scores of :func:`ood_score` (each higher = more likely out of distribution)."""


class OODMetrics(NamedTuple):
    """Output of :func:`ood_metrics` (scalars in ``[0, 1]``).

    Attributes:
        auroc: area under the ROC curve (the same with either class positive).
        aupr_in: average precision with in-distribution inputs positive.
        aupr_out: average precision with OOD inputs positive.
        fpr_at_tpr: fraction of OOD inputs accepted at the threshold that accepts a fraction
            ``tpr`` (default 95%) of in-distribution inputs.
    """

    auroc: jax.Array
    aupr_in: jax.Array
    aupr_out: jax.Array
    fpr_at_tpr: jax.Array


# ----------------------------------------------------------------------------- checks


def _check_ranking(labels: Any, scores: Any) -> tuple[jax.Array, jax.Array]:
    """Validate ``labels (n,)`` in {0, 1} with both classes and finite ``scores (n,)``."""
    s = V.as_float_array(scores, "scores", ndim=1, shape_hint="(n,)")
    y = V.as_int_array(labels, "labels", ndim=1, shape_hint="(n,)", min_value=0, max_value=1)
    if y.shape[0] != s.shape[0]:
        raise ValueError(f"labels and scores must have the same length: labels has "
                         f"{y.shape[0]}, scores has {s.shape[0]}")
    if not V.is_traced(y):
        n_pos = int(np.asarray(y).sum())
        if n_pos in (0, y.shape[0]):
            raise ValueError(f"labels must hold both classes (0 and 1), got only "
                             f"{int(n_pos > 0)}: the metric is undefined for one class")
    return y, s


def _check_tpr(tpr: Any) -> float:
    out = V.check_probability(tpr, "tpr")
    if out == 0.0:
        raise ValueError("tpr must lie in (0, 1], got 0")
    return out


# ----------------------------------------------------------------------------- kernels


def _pairwise_sum(x: jax.Array) -> jax.Array:
    """Sum of ``x (n,)`` by halving (error ~ ``log2(n)`` ulps instead of ``n``)."""
    size = 1 << max(int(x.shape[0]) - 1, 0).bit_length()
    x = jnp.pad(x, (0, size - x.shape[0]))
    while x.shape[0] > 1:
        half = x.shape[0] // 2
        x = x[:half] + x[half:]
    return x[0]


def _counts(y: jax.Array, s: jax.Array) -> tuple[jax.Array, ...]:
    """Per example ``i`` with threshold ``t = s_i`` (predict positive iff ``score >= t``):
    (positives >= t, negatives >= t, negatives == t), int32 ``(n,)`` each."""
    pos = y == 1
    n = s.shape[0]
    # Inputs are finite, so -inf / +inf pads sort every other class out of the way.
    pos_sorted = jnp.sort(jnp.where(pos, s, -jnp.inf))
    neg_sorted = jnp.sort(jnp.where(pos, jnp.inf, s))
    tp = n - jnp.searchsorted(pos_sorted, s, side="left").astype(jnp.int32)
    neg_below = jnp.searchsorted(neg_sorted, s, side="left").astype(jnp.int32)
    neg_upto = jnp.searchsorted(neg_sorted, s, side="right").astype(jnp.int32)
    n_neg = n - jnp.sum(pos, dtype=jnp.int32)
    return tp, n_neg - neg_below, neg_upto - neg_below


@jax.jit
def _auroc(y, s):
    pos = y == 1
    n_pos = jnp.sum(pos, dtype=jnp.int32)
    n_neg = s.shape[0] - n_pos
    _, fp, fp_tied = _counts(y, s)
    # negatives strictly below a positive, plus half of the tied ones, as a fraction.
    wins = (n_neg - fp).astype(s.dtype) + 0.5 * fp_tied.astype(s.dtype)
    frac = jnp.where(pos, wins / n_neg.astype(s.dtype), 0.0)
    return _pairwise_sum(frac) / n_pos.astype(s.dtype)


@jax.jit
def _aupr(y, s):
    pos = y == 1
    tp, fp, _ = _counts(y, s)
    precision = jnp.where(pos, tp.astype(s.dtype) / (tp + fp).astype(s.dtype), 0.0)
    return _pairwise_sum(precision) / jnp.sum(pos, dtype=jnp.int32).astype(s.dtype)


@jax.jit
def _fpr_at_tpr(y, s, tpr):
    pos = y == 1
    n_pos = jnp.sum(pos, dtype=jnp.int32).astype(s.dtype)
    n_neg = s.shape[0] - n_pos
    tp, fp, _ = _counts(y, s)
    ok = tp.astype(s.dtype) / n_pos >= tpr
    # fp falls as the threshold rises: the least fp among thresholds reaching tpr.
    return jnp.min(jnp.where(ok, fp.astype(s.dtype), jnp.inf)) / n_neg


# ----------------------------------------------------------------------------- public


def auroc(labels: ArrayLike, scores: ArrayLike) -> jax.Array:
    """Area under the ROC curve (= ``sklearn.metrics.roc_auc_score``), ties counting 1/2.

    Args:
        labels: ``(n,)`` 0/1 (or bool), 1 = positive; both classes present.
        scores: ``(n,)`` finite, higher = more positive.
    """
    return _auroc(*_check_ranking(labels, scores))


def aupr(labels: ArrayLike, scores: ArrayLike) -> jax.Array:
    """Area under the precision-recall curve of the positive class (label 1) as step-wise
    average precision (= ``sklearn.metrics.average_precision_score``, not the trapezoid).

    Args:
        labels: ``(n,)`` 0/1 (or bool), 1 = positive; both classes present.
        scores: ``(n,)`` finite, higher = more positive.
    """
    return _aupr(*_check_ranking(labels, scores))


def fpr_at_tpr(labels: ArrayLike, scores: ArrayLike, *, tpr: float = 0.95) -> jax.Array:
    """False-positive rate at the highest threshold (predict positive iff ``score >= t``)
    whose true-positive rate is at least ``tpr``; no interpolation between thresholds.

    Args:
        labels: ``(n,)`` 0/1 (or bool), 1 = positive; both classes present.
        scores: ``(n,)`` finite, higher = more positive.
        tpr: target true-positive rate in ``(0, 1]`` (compared in the working dtype).
    """
    tpr = _check_tpr(tpr)
    y, s = _check_ranking(labels, scores)
    return _fpr_at_tpr(y, s, jnp.asarray(tpr, s.dtype))


def ood_metrics(scores_in: ArrayLike, scores_out: ArrayLike, *,
                tpr: float = 0.95) -> OODMetrics:
    """AUROC, AUPR-In, AUPR-Out and FPR at ``tpr`` TPR of an OOD score.

    Args:
        scores_in: ``(n_in,)`` scores of in-distribution inputs.
        scores_out: ``(n_out,)`` scores of out-of-distribution inputs (higher = more likely
            OOD for both, e.g. :func:`ood_score`).
        tpr: fraction of in-distribution inputs to accept for the FPR (default 0.95).

    Returns:
        :class:`OODMetrics`.
    """
    tpr = _check_tpr(tpr)
    s_in = V.as_float_array(scores_in, "scores_in", ndim=1, shape_hint="(n_in,)")
    s_out = V.as_float_array(scores_out, "scores_out", ndim=1, shape_hint="(n_out,)")
    s = jnp.concatenate([s_in, s_out])
    is_out = jnp.concatenate([jnp.zeros(s_in.shape, jnp.int32), jnp.ones(s_out.shape, jnp.int32)])
    is_in = 1 - is_out
    return OODMetrics(_auroc(is_out, s), _aupr(is_in, -s), _aupr(is_out, s),
                      _fpr_at_tpr(is_in, -s, jnp.asarray(tpr, s.dtype)))


def ood_score(probs: ArrayLike, *, score: str = "max_prob",
              from_logits: bool = False) -> jax.Array:
    """An OOD score per input from a categorical predictive, ``(n,)``, higher = more OOD.

    Args:
        probs: ``(n, C)`` predictive or ``(T, n, C)`` per-sample probabilities (logits with
            ``from_logits``).
        score: ``"max_prob"`` (``-max_c p_c`` of the predictive; Hendrycks & Gimpel 2017),
            ``"entropy"`` (predictive entropy, nats) or ``"mutual_information"`` (BALD,
            needs ``T >= 2`` samples).
        from_logits: treat ``probs`` as logits.
    """
    score = V.check_choice(score, "score", OOD_SCORES)
    if score == "mutual_information" and (np.ndim(probs) != 3 or np.shape(probs)[0] < 2):
        raise ValueError(f"score='mutual_information' needs (T, n, C) samples with T >= 2 in "
                         f"probs, got shape {np.shape(probs)} (one predictive has zero BALD)")
    dec = decompose_classification(probs, from_logits=from_logits)
    if score == "max_prob":
        return -jnp.max(dec.probs, axis=-1)
    if score == "entropy":
        return dec.entropy
    return dec.mutual_information
