"""Calibration of the top-1 prediction over equal-width confidence bins: the expected
calibration error (Naeini et al. 2015) and the data of a reliability diagram (Guo et al. 2017).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from espresso_jax import validation as V
from espresso_jax.metrics.class_predictive import as_class_scores, as_labels, log_predictive

__all__ = ["DEFAULT_N_BINS", "ReliabilityDiagram", "expected_calibration_error",
           "reliability_diagram"]

DEFAULT_N_BINS = 15
"""Equal-width confidence bins of the ECE and the reliability diagram (Guo et al. use 15)."""


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


def _n_bins(n_bins: Any) -> int:
    return V.check_int(n_bins, "n_bins", min_value=1)


@functools.partial(jax.jit, static_argnames=("from_logits", "n_bins"))
def _reliability(labels, x, from_logits, n_bins):
    log_p = log_predictive(x, from_logits)
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
    x = as_class_scores(probs, from_logits)
    labels = as_labels(labels, x.shape[1], x.shape[2])
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
    x = as_class_scores(probs, from_logits)
    labels = as_labels(labels, x.shape[1], x.shape[2])
    return _reliability(labels, x, bool(from_logits), n_bins)[1]
