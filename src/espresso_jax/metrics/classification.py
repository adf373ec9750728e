"""Classification metrics of the categorical predictive: the decomposition of its uncertainty
into predictive entropy, expected entropy and mutual information (BALD; Houlsby et al. 2011,
Kendall & Gal 2017), and the scores NLL, Brier score (Brier 1950) and accuracy.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike

from espresso_jax.metrics.class_predictive import (
    as_class_scores,
    as_labels,
    log_predictive,
    log_probs,
)
from espresso_jax.metrics.reductions import apply_reduction, check_reduction

__all__ = [
    "ClassificationUncertainty",
    "decompose_classification",
    "entropy",
    "negative_log_likelihood",
    "brier_score",
    "accuracy",
]


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
    log_p_t = log_probs(x, from_logits)
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
    return _decompose_classification(as_class_scores(probs, from_logits), bool(from_logits))



def entropy(probs: ArrayLike, *, from_logits: bool = False) -> jax.Array:
    """Entropy (nats) of the predictive distribution, ``(n,)``, in ``[0, log C]``."""
    return decompose_classification(probs, from_logits=from_logits).entropy


@functools.partial(jax.jit, static_argnames=("from_logits", "reduction"))
def _nll(labels, x, from_logits, reduction):
    log_p = log_predictive(x, from_logits)
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
    x = as_class_scores(probs, from_logits)
    labels = as_labels(labels, x.shape[1], x.shape[2])
    return _nll(labels, x, bool(from_logits), reduction)


@functools.partial(jax.jit, static_argnames=("from_logits", "reduction"))
def _brier(labels, x, from_logits, reduction):
    p = jnp.exp(log_predictive(x, from_logits))

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
    x = as_class_scores(probs, from_logits)
    labels = as_labels(labels, x.shape[1], x.shape[2])
    return _brier(labels, x, bool(from_logits), reduction)


@functools.partial(jax.jit, static_argnames="from_logits")
def _accuracy(labels, x, from_logits):
    pred = jnp.argmax(log_predictive(x, from_logits), axis=-1).astype(jnp.int32)
    return jnp.mean((pred == labels).astype(x.dtype))


def accuracy(labels: ArrayLike, probs: ArrayLike, *, from_logits: bool = False) -> jax.Array:
    """Top-1 accuracy of the predictive (ties go to the lowest class index)."""
    x = as_class_scores(probs, from_logits)
    labels = as_labels(labels, x.shape[1], x.shape[2])
    return _accuracy(labels, x, bool(from_logits))
