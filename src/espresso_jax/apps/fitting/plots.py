"""The fit folder's ``plot.png``: clusters with 2-sd ellipses (2-D data; the first two principal
axes otherwise), the PPCA latent space, or the BLR predictive band (one input column;
residuals otherwise)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from espresso_jax.apps.fitting.models import FitOutput, blr_design
from espresso_jax.apps.viz.linear import plot_predictive_band
from espresso_jax.apps.viz.mixture import draw_covariance_ellipse
from espresso_jax.linear import bayes
from espresso_jax.mixture import gmm, kmeans, ppca, vbgmm

__all__ = ["plot_fit"]


def _full_covariances(cov: np.ndarray, k: int, d: int) -> np.ndarray:
    cov = np.asarray(cov, np.float64)
    if cov.ndim == 1:                                  # spherical (K,)
        return cov[:, None, None] * np.eye(d)[None]
    if cov.ndim == 2:                                  # diag (K, D)
        return np.einsum("kd,de->kde", cov, np.eye(d))
    return np.broadcast_to(cov, (k, d, d))             # full (K, D, D) or tied (1, D, D)


def _plot_clusters(X, labels, means, covs, weights, columns, title) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    colors = plt.cm.tab10(np.arange(10))
    labels = np.asarray(labels)
    k, d = means.shape
    if d == 1:
        bins = np.histogram_bin_edges(X[:, 0], bins=30).tolist()
        for c in np.unique(labels):
            ax.hist(X[labels == c, 0], bins=bins, color=colors[c % 10], alpha=0.6)
        for c in range(k):
            ax.axvline(means[c, 0], color=colors[c % 10], lw=2)
        ax.set(xlabel=columns[0], ylabel="count", title=title.replace(" (2-sd ellipses)", ""))
        return fig
    if d == 2:
        Z, M, C, xl, yl = X, means, covs, columns[0], columns[1]
    else:                                              # first two principal axes of the data
        mu = X.mean(0)
        V = np.linalg.svd(X - mu, full_matrices=False)[2][:2].T          # (D, 2)
        Z, M, xl, yl = (X - mu) @ V, (means - mu) @ V, "principal axis 1", "principal axis 2"
        C = None if covs is None else np.einsum("di,kde,ej->kij", V, covs, V)
    ax.scatter(Z[:, 0], Z[:, 1], s=8, c=colors[labels % 10])
    for c in range(k):
        if weights is not None and weights[c] <= 1e-2:
            continue
        if C is not None:
            draw_covariance_ellipse(ax, M[c], C[c], colors[c % 10])
        ax.scatter(M[c, 0], M[c, 1], marker="x", s=80, color="k")
    ax.set(xlabel=xl, ylabel=yl, title=title)
    return fig


def _plot_ppca(X, params, columns) -> plt.Figure:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8))
    z = np.asarray(ppca.posterior(params, X)[0])
    if z.shape[1] >= 2:
        ax1.scatter(z[:, 0], z[:, 1], s=8)
        ax1.set(xlabel="E[z₁ | x]", ylabel="E[z₂ | x]")
    else:
        ax1.hist(z[:, 0], bins=30)
        ax1.set(xlabel="E[z | x]", ylabel="count")
    ax1.set_title("latent posterior means")
    var = np.sum(np.asarray(params.W, np.float64) ** 2, axis=0) + float(params.sigma2)
    ax2.bar(np.arange(1, len(var) + 1), var, label="‖w_m‖² + σ²")
    ax2.set_xticks(np.arange(1, len(var) + 1))
    ax2.axhline(float(params.sigma2), color="k", ls=":", label="σ²")
    ax2.set(xlabel="latent dimension", ylabel="variance", title="variance per latent axis")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _plot_blr(X, params, info) -> plt.Figure:
    opts = info["options"]
    j = opts["target_index"]
    x, t = np.delete(X, j, axis=1), X[:, j]
    names = [c for i, c in enumerate(info["columns"]) if i != j]

    def design(a):
        return blr_design(a, opts["basis"], opts["degree"], *params[1:])

    if x.shape[1] == 1:
        lo, hi = x.min(), x.max()
        grid = np.linspace(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo), 200)
        pred = bayes.predict(params.posterior, design(grid[:, None]))
        fig = plot_predictive_band(
            [{"x_grid": grid, "mean": np.asarray(pred.mean), "std": np.sqrt(np.asarray(pred.var)),
              "x": x[:, 0], "t": t, "title": f"{opts['basis']} basis, evidence-maximised"}],
            title=f"{opts['target']} against {names[0]}")
        fig.axes[0].set(xlabel=names[0], ylabel=opts["target"])
        return fig
    pred = bayes.predict(params.posterior, design(x))
    mean, sd = np.asarray(pred.mean), np.sqrt(np.asarray(pred.var))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    order = np.argsort(mean)
    ax.fill_between(mean[order], -2 * sd[order], 2 * sd[order], color="tab:red", alpha=0.2,
                    label="± 2 predictive sd")
    ax.scatter(mean, t - mean, s=8, label="residual")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set(xlabel=f"predicted {opts['target']}", ylabel="residual",
           title=f"residuals ({len(names)} inputs, {opts['basis']} basis)")
    ax.legend(fontsize=8)
    return fig


def plot_fit(fitted: FitOutput, X: np.ndarray) -> plt.Figure:
    """The fit folder's ``plot.png``: clusters with 2-sd ellipses, the PPCA latent space or the
    BLR predictive band (see :mod:`espresso_jax.apps.fitting`).

    Args:
        fitted: from :func:`~espresso_jax.apps.fitting.models.fit_model`.
        X: ``(n_samples, n_columns)`` the fitted data.
    """
    p, cols, model = fitted.params, fitted.info["columns"], fitted.model
    if model in ("gmm", "vbgmm"):
        mod = gmm if model == "gmm" else vbgmm
        means = np.asarray(p.means, np.float64)
        k, d = means.shape
        covs = _full_covariances(p.covariances, k, d)
        w = np.asarray(p.weights if model == "gmm" else vbgmm.expected_weights(p))
        title = (f"gmm: {k} components" if model == "gmm" else
                 f"vbgmm: {int(np.sum(w > 1e-2))} of {k} components with E[π] > 0.01")
        return _plot_clusters(X, mod.predict(p, X), means, covs, w, cols,
                              title + " (2-sd ellipses)")
    if model == "kmeans":
        c = np.asarray(p.centres, np.float64)
        return _plot_clusters(X, kmeans.predict(p, X), c, None, None, cols,
                              f"k-means: {len(c)} clusters")
    if model == "ppca":
        return _plot_ppca(X, p, cols)
    return _plot_blr(X, p, fitted.info)
