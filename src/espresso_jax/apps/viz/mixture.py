"""Plots for latent-variable models: covariance ellipses, EM curves, PCA/PPCA."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse


def draw_covariance_ellipse(ax, mean, cov, color, alpha=1.0, n_std=2.0):
    """Draw the ``n_std``-standard-deviation ellipse of a 2-D Gaussian on ``ax``.

    Args:
        ax: matplotlib axes.
        mean: ``(2,)`` centre.
        cov: ``(2, 2)`` covariance (negative eigenvalues from round-off are clipped to 0).
        color, alpha: line colour and opacity.
        n_std: half-axes in standard deviations along the eigenvectors.
    """
    vals, vecs = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    w, h = 2 * n_std * np.sqrt(np.maximum(vals[::-1], 0.0))
    ax.add_patch(Ellipse(mean, w, h, angle=angle, fill=False, color=color, lw=1.8,
                         alpha=alpha))


def plot_mixture_snapshots(X: np.ndarray, snapshots: Sequence[tuple[str, np.ndarray,
                                                                     np.ndarray, np.ndarray,
                                                                     np.ndarray]],
                           history: np.ndarray, *, xlabel: str, ylabel: str) -> plt.Figure:
    """EM iterations of a 2-D mixture (PRML Fig. 9.8) and the log-likelihood curve.

    Args:
        X: ``(N, 2)`` data.
        snapshots: ``(title, weights (K,), means (K, 2), covariances (K, 2, 2),
            resp (N, K))`` per panel; points are coloured by responsibility of the first two
            components.
        history: ``(T,)`` mean log-likelihood per iteration.
    """
    n = len(snapshots)
    fig, axes = plt.subplots(1, n + 1, figsize=(3.2 * (n + 1), 3.2))
    colors = plt.cm.tab10(np.arange(10))
    for ax, (title, weights, means, covs, resp) in zip(axes[:n], snapshots, strict=True):
        r = np.asarray(resp)
        mix = r[:, :1] * colors[0][:3] + (1 - r[:, :1]) * colors[1][:3] if r.shape[1] == 2 \
            else colors[np.argmax(r, 1) % 10][:, :3]
        ax.scatter(X[:, 0], X[:, 1], s=6, c=np.clip(mix, 0, 1))
        for k in range(len(weights)):
            draw_covariance_ellipse(ax, means[k], covs[k], colors[k % 10],
                                    alpha=max(0.2, min(1, 3 * weights[k])))
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel if ax is axes[0] else None)
    ax = axes[-1]
    ax.plot(np.arange(1, len(history) + 1), history, "o-", ms=3)
    ax.set(title="log-likelihood per point", xlabel="iteration")
    fig.tight_layout()
    return fig


def plot_weight_pruning(X: np.ndarray, weights_by_prior: dict[str, np.ndarray],
                        means: np.ndarray, covs: np.ndarray, *, threshold: float,
                        xlabel: str, ylabel: str) -> plt.Figure:
    """Variational GMM: expected weights per prior (bars) and the surviving components."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    K = len(next(iter(weights_by_prior.values())))
    width = 0.8 / len(weights_by_prior)
    for i, (label, w) in enumerate(weights_by_prior.items()):
        ax1.bar(np.arange(K) + i * width, w, width=width, label=label)
    ax1.axhline(threshold, color="k", ls=":", lw=1)
    ax1.set(yscale="log", ylim=(1e-6, 1.5), xlabel="component", ylabel="E[π_k]",
            title="expected mixing weights")
    ax1.legend(fontsize=8)
    ax2.scatter(X[:, 0], X[:, 1], s=6, color="0.5")
    w = next(iter(weights_by_prior.values()))
    colors = plt.cm.tab10(np.arange(10))
    for k in np.flatnonzero(w > threshold):
        draw_covariance_ellipse(ax2, means[k], covs[k], colors[k % 10])
    ax2.set(title=f"components with E[π] > {threshold:g}", xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    return fig


def plot_kmeans(X: np.ndarray, labels: np.ndarray, centres: np.ndarray,
                inertia_history: np.ndarray, *, xlabel: str, ylabel: str) -> plt.Figure:
    """k-means clusters with centres, and inertia per Lloyd iteration (PRML Figs. 9.1–9.2)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.4))
    ax1.scatter(X[:, 0], X[:, 1], s=6, c=plt.cm.tab10(np.asarray(labels) % 10))
    ax1.scatter(centres[:, 0], centres[:, 1], marker="x", s=120, color="k")
    ax1.set(title="k-means clusters", xlabel=xlabel, ylabel=ylabel)
    ax2.plot(np.arange(1, len(inertia_history) + 1), inertia_history, "o-", ms=3)
    ax2.set(title="inertia (distortion J)", xlabel="iteration")
    fig.tight_layout()
    return fig


def plot_pca_ppca(explained_ratio: np.ndarray, em_history: np.ndarray, closed_form_ll: float,
                  images: dict[str, np.ndarray], image_shape: tuple[int, int]) -> plt.Figure:
    """PCA spectrum, PPCA EM converging to the closed form, and rows of images."""
    n_rows = len(images)
    n_cols = max(len(v) for v in images.values())
    fig = plt.figure(figsize=(max(8, 1.1 * n_cols), 3.2 + 1.1 * n_rows))
    grid = fig.add_gridspec(1 + n_rows, n_cols, height_ratios=[3] + [1] * n_rows)
    half = n_cols // 2
    ax = fig.add_subplot(grid[0, :half])
    ax.bar(np.arange(1, len(explained_ratio) + 1), explained_ratio)
    ax.plot(np.arange(1, len(explained_ratio) + 1), np.cumsum(explained_ratio), "o-", ms=3,
            color="tab:red", label="cumulative")
    ax.set(title="PCA explained variance ratio", xlabel="component")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[0, half:])
    ax.plot(np.arange(1, len(em_history) + 1), em_history, label="PPCA by EM")
    ax.axhline(closed_form_ll, color="k", ls="--", lw=1, label="closed-form ML")
    ax.set(title="PPCA log-likelihood per point", xlabel="EM iteration")
    ax.legend(fontsize=8)
    for r, (label, imgs) in enumerate(images.items()):
        for c, img in enumerate(imgs):
            a = fig.add_subplot(grid[1 + r, c])
            a.imshow(np.asarray(img).reshape(image_shape), cmap="gray")
            a.set_xticks([])
            a.set_yticks([])
            if c == 0:
                a.set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig
