"""Plots for the probability layer."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np


def plot_beta_sequence(grid: np.ndarray, densities: Sequence[np.ndarray],
                       labels: Sequence[str], *, true_p: float | None = None,
                       title: str = "Beta posterior after n observations") -> plt.Figure:
    """Densities of a sequence of Beta posteriors on one axis.

    Args:
        grid: ``(n_grid,)`` points in [0, 1].
        densities: one ``(n_grid,)`` density per posterior.
        labels: legend text per density.
        true_p: the data-generating probability, drawn as a vertical line.
    """
    fig, ax = plt.subplots(figsize=(6, 3.8))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(densities)))
    for dens, label, color in zip(densities, labels, colors, strict=True):
        ax.plot(grid, dens, color=color, label=label)
    if true_p is not None:
        ax.axvline(true_p, color="k", ls="--", lw=1, label=f"true p = {true_p:g}")
    ax.set(xlabel="μ", ylabel="density", title=title)
    ax.legend(fontsize=8)
    return fig
