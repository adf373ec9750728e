"""Plots (matplotlib, Agg backend). Each function takes arrays and returns a ``Figure``."""

from espresso_jax.viz.linear import (
    plot_evidence_by_order,
    plot_logistic_predictive,
    plot_predictive_band,
    plot_sequential_weights,
)
from espresso_jax.viz.mixture import (
    plot_kmeans,
    plot_mixture_snapshots,
    plot_pca_ppca,
    plot_weight_pruning,
)
from espresso_jax.viz.prob import plot_beta_sequence

__all__ = [
    "plot_kmeans",
    "plot_mixture_snapshots",
    "plot_pca_ppca",
    "plot_weight_pruning",
    "plot_beta_sequence",
    "plot_evidence_by_order",
    "plot_logistic_predictive",
    "plot_predictive_band",
    "plot_sequential_weights",
]
