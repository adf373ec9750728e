"""Plots for neural generative models: image grids, reconstructions, latent manifolds and
latent scatters (Kingma & Welling 2014, Figs. 4–5). Each function returns a ``Figure``."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import ArrayLike

__all__ = ["image_grid", "plot_image_grid", "plot_reconstructions", "plot_manifold",
           "plot_latent_scatter"]


def _image_shape(images: np.ndarray, image_shape: Sequence[int] | None) -> tuple[int, int]:
    if image_shape is not None:
        return int(image_shape[0]), int(image_shape[1])
    if images.ndim >= 3:
        return int(images.shape[1]), int(images.shape[2])
    side = int(round(np.sqrt(images.shape[-1]))) if images.ndim == 2 else 0
    if images.ndim != 2 or side * side != images.shape[1]:
        raise ValueError(f"images of shape {images.shape} are not (n, H*W) square, (n, H, W) "
                         "or (n, H, W, 1): pass image_shape")
    return side, side


def image_grid(images: ArrayLike, n_cols: int, image_shape: Sequence[int] | None = None,
               pad: int = 1) -> np.ndarray:
    """Tile ``images`` — ``(n, H*W)``, ``(n, H, W)`` or ``(n, H, W, 1)`` — into one
    ``(rows*(H+pad), cols*(W+pad))`` array, row-major; empty cells and padding are filled with
    the minimum value (0 for intensities). ``image_shape`` ``(H, W)`` is inferred when the
    images are not flat or are flat squares."""
    images = np.asarray(images, dtype=np.float64)
    h, w = _image_shape(images, image_shape)
    images = images.reshape(-1, h, w)
    n = images.shape[0]
    n_cols = max(1, min(int(n_cols), n))
    n_rows = -(-n // n_cols)
    fill = min(0.0, float(images.min())) if n else 0.0
    canvas = np.full((n_rows * (h + pad) - pad, n_cols * (w + pad) - pad), fill)
    for i, img in enumerate(images):
        r, c = divmod(i, n_cols)
        canvas[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = img
    return canvas


def plot_image_grid(images: ArrayLike, *, n_cols: int = 10,
                    image_shape: Sequence[int] | None = None, title: str | None = None,
                    cmap: str = "gray", value_range: tuple[float, float] | None = None
                    ) -> plt.Figure:
    """Images as a grid: VAE samples or decoder means in [0, 1], GAN samples in [-1, 1].

    Args:
        images: ``(n, H*W)``, ``(n, H, W)`` or ``(n, H, W, 1)``.
        n_cols: images per row.
        image_shape: ``(H, W)`` for flat non-square images.
        title: figure title.
        cmap: matplotlib colour map.
        value_range: pixel values mapped to the ends of the colour map (default: data range).
    """
    canvas = image_grid(images, n_cols, image_shape)
    h, w = _image_shape(np.asarray(images), image_shape)
    vmin, vmax = (None, None) if value_range is None else value_range
    fig, ax = plt.subplots(figsize=(0.6 * canvas.shape[1] / w + 0.4,
                                    0.6 * canvas.shape[0] / h + 0.6))
    ax.imshow(canvas, cmap=cmap, interpolation="nearest", vmin=vmin, vmax=vmax)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_reconstructions(originals: ArrayLike, reconstructions: ArrayLike, *,
                         image_shape: Sequence[int] = (28, 28),
                         title: str | None = "data (top) and reconstructions (bottom)",
                         cmap: str = "gray") -> plt.Figure:
    """Originals ``(n, H*W)`` in the top row and their reconstructions below, side by side."""
    originals = np.asarray(originals)
    reconstructions = np.asarray(reconstructions)
    if originals.shape != reconstructions.shape:
        raise ValueError(f"originals {originals.shape} and reconstructions "
                         f"{reconstructions.shape} must have the same shape")
    n = originals.shape[0]
    both = np.concatenate([originals, reconstructions], axis=0)
    return plot_image_grid(both, n_cols=n, image_shape=image_shape, title=title, cmap=cmap)


def plot_manifold(grid: ArrayLike, *, image_shape: Sequence[int] = (28, 28),
                  title: str | None = "learned manifold (Gaussian quantiles of z)",
                  cmap: str = "gray") -> plt.Figure:
    """A decoded latent grid ``(n_rows, n_cols, H*W)`` (from
    :func:`espresso_jax.nn.vae.manifold`) tiled as one image, as Kingma & Welling Fig. 4."""
    grid = np.asarray(grid)
    if grid.ndim != 3:
        raise ValueError(f"grid must be (n_rows, n_cols, H*W), got shape {grid.shape}")
    n_rows, n_cols, _ = grid.shape
    canvas = image_grid(grid.reshape(n_rows * n_cols, -1), n_cols, image_shape, pad=0)
    fig, ax = plt.subplots(figsize=(6, 6 * n_rows / n_cols))
    ax.imshow(canvas, cmap=cmap, interpolation="nearest")
    ax.set(xticks=[], yticks=[], xlabel="z[0] →", ylabel="z[1] →")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_latent_scatter(Z: ArrayLike, labels: ArrayLike | None = None, *,
                        title: str | None = "posterior means", s: float = 4.0
                        ) -> plt.Figure:
    """Scatter of 2-D codes ``Z: (n, 2)`` (e.g. posterior means), coloured by ``labels``."""
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.shape[1] < 2:
        raise ValueError(f"Z must be (n, 2), got shape {Z.shape}")
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    if labels is None:
        ax.scatter(Z[:, 0], Z[:, 1], s=s)
    else:
        labels = np.asarray(labels)
        points = ax.scatter(Z[:, 0], Z[:, 1], c=labels, s=s, cmap="tab10")
        fig.colorbar(points, ax=ax, label="label")
    ax.set(xlabel="z[0]", ylabel="z[1]", title=title)
    fig.tight_layout()
    return fig
