"""Scoring an unsupervised categorical code (e.g. InfoGAN's, read by its ``Q`` head) as a
classifier of labelled examples: the best one-to-one matching of codes to labels (the
Hungarian algorithm, :func:`matched_error`) or each code's majority label
(:func:`majority_mapping`, several codes may share a label). Both are re-exported by
:mod:`espresso_jax.nn.infogan`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from espresso_jax.validation import as_int_array, check_int

__all__ = ["matched_error", "majority_mapping"]


def _counts(codes: Any, labels: Any, n_categories: int) -> np.ndarray:
    codes = np.asarray(as_int_array(codes, "codes", ndim=1, min_value=0,
                                    max_value=n_categories - 1))
    labels = np.asarray(as_int_array(labels, "labels", ndim=1, min_value=0,
                                     max_value=n_categories - 1))
    if codes.shape != labels.shape:
        raise ValueError(f"codes {codes.shape} and labels {labels.shape} must have the same "
                         "length")
    counts = np.zeros((n_categories, n_categories), np.int64)
    np.add.at(counts, (codes, labels), 1)
    return counts


def matched_error(codes: Any, labels: Any, n_categories: int) -> tuple[float, np.ndarray]:
    """Classification error of unsupervised codes after the best one-to-one matching of codes
    to labels (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``), as in the
    paper's Table 1.

    Args:
        codes: ``(n,)`` predicted codes in ``[0, n_categories)``.
        labels: ``(n,)`` true labels in ``[0, n_categories)``.
        n_categories: number of codes and classes.

    Returns:
        ``(error, mapping)``: the error rate and ``(n_categories,)`` label assigned to each code.
    """
    n_categories = check_int(n_categories, "n_categories", min_value=1)
    counts = _counts(codes, labels, n_categories)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    mapping = np.empty(n_categories, np.int64)
    mapping[rows] = cols
    return 1.0 - counts[rows, cols].sum() / max(int(counts.sum()), 1), mapping


def majority_mapping(codes: Any, labels: Any, n_categories: int) -> np.ndarray:
    """Each code's most frequent label among the examples it was given to (ties: the smaller
    label; a code no example got: -1). Fit it on training examples and score test examples
    with ``mapping[test_codes] != test_labels``; unlike :func:`matched_error` two codes may
    map to the same label (e.g. two styles of 1).

    Args:
        codes: ``(n,)`` codes in ``[0, n_categories)``.
        labels: ``(n,)`` labels in ``[0, n_categories)``.
        n_categories: number of codes and classes.

    Returns:
        ``(n_categories,)`` int64 label of each code.
    """
    n_categories = check_int(n_categories, "n_categories", min_value=1)
    counts = _counts(codes, labels, n_categories)
    return np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), -1).astype(np.int64)
