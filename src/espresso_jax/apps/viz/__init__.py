"""Plots (matplotlib; the backend is the caller's choice). Each function takes arrays and returns
a ``Figure``."""

from espresso_jax.apps.viz.bnn import (
    plot_regression_band,
    plot_reliability_diagram,
    plot_rotated_digits,
    plot_uci_comparison,
    plot_uncertainty_decomposition,
)
from espresso_jax.apps.viz.gan import plot_gan_losses, plot_samples_2d
from espresso_jax.apps.viz.linear import (
    plot_evidence_by_order,
    plot_logistic_predictive,
    plot_predictive_band,
    plot_sequential_weights,
)
from espresso_jax.apps.viz.mixture import (
    plot_kmeans,
    plot_mixture_snapshots,
    plot_pca_ppca,
    plot_weight_pruning,
)
from espresso_jax.apps.viz.nn import (
    image_grid,
    plot_image_grid,
    plot_latent_scatter,
    plot_manifold,
    plot_reconstructions,
)
from espresso_jax.apps.viz.prob import plot_beta_sequence

__all__ = [
    "plot_regression_band",
    "plot_reliability_diagram",
    "plot_rotated_digits",
    "plot_uncertainty_decomposition",
    "plot_uci_comparison",
    "plot_gan_losses",
    "plot_samples_2d",
    "image_grid",
    "plot_image_grid",
    "plot_latent_scatter",
    "plot_manifold",
    "plot_reconstructions",
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
