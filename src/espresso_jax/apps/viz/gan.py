"""Plots for GANs: image sample grids, 2-D samples over the data, training curves."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import ArrayLike

from espresso_jax.apps.viz.nn import plot_image_grid

__all__ = ["plot_image_grid", "plot_samples_2d", "plot_gan_losses"]


def plot_samples_2d(samples: ArrayLike, data: ArrayLike | None = None,
                    centres: ArrayLike | None = None, *, std: float | None = None,
                    n_std: float = 3.0, title: str | None = None) -> plt.Figure:
    """Generated 2-D points over the data, with mode centres and their ``n_std`` circles.

    Args:
        samples: ``(n, 2)`` generated points.
        data: ``(m, 2)`` training points (grey).
        centres: ``(k, 2)`` mode centres (crosses).
        std: mode standard deviation; draws circles of radius ``n_std * std``.
        title: axes title.
    """
    s = np.asarray(samples, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    if data is not None:
        d = np.asarray(data, dtype=np.float64)
        ax.scatter(d[:, 0], d[:, 1], s=4, color="0.6", alpha=0.5, label="data")
    ax.scatter(s[:, 0], s[:, 1], s=4, color="C0", alpha=0.5, label="samples")
    if centres is not None:
        c = np.asarray(centres, dtype=np.float64)
        ax.scatter(c[:, 0], c[:, 1], marker="x", color="C3", s=40, label="modes")
        if std is not None:
            for cx, cy in c:
                ax.add_patch(plt.Circle((cx, cy), n_std * std, fill=False, color="C3", lw=0.8))
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper right", markerscale=2)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_gan_losses(history: Mapping[str, ArrayLike], *, title: str | None = None
                    ) -> plt.Figure:
    """Per-epoch ``d_loss`` and ``g_loss`` (left) and ``d_real`` / ``d_fake`` (right).

    Args:
        history: ``FitResult.history`` of :func:`espresso_jax.nn.gan.fit`.
        title: figure title.
    """
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
    for name in ("d_loss", "g_loss", "gp"):
        if name in history:
            v = np.asarray(history[name])
            ax1.plot(np.arange(1, len(v) + 1), v, label=name)
    ax1.set(xlabel="epoch", ylabel="loss", title="losses")
    ax1.legend(fontsize=8)
    for name, label in (("d_real", "D(x)"), ("d_fake", "D(G(z))")):
        if name in history:
            v = np.asarray(history[name])
            ax2.plot(np.arange(1, len(v) + 1), v, label=label)
    ax2.set(xlabel="epoch", title="discriminator outputs")
    ax2.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
