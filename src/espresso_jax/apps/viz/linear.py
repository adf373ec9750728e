"""Plots for linear models: predictive bands, evidence curves, sequential weight posteriors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import cycle

import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import ArrayLike


def _band(ax, x_grid, mean, std, samples, x, t, truth):
    ax.fill_between(x_grid, mean - 2 * std, mean + 2 * std, color="tab:red", alpha=0.2,
                    label="mean ± 2 sd")
    ax.plot(x_grid, mean, color="tab:red", label="predictive mean")
    if samples is not None:
        ax.plot(x_grid, np.asarray(samples).T, color="tab:orange", lw=0.8, alpha=0.8)
    if truth is not None:
        ax.plot(x_grid, truth, color="tab:green", lw=1, label="truth")
    ax.scatter(x, t, s=18, facecolors="none", edgecolors="tab:blue", zorder=3)


def plot_predictive_band(panels: Sequence[dict], *, title: str) -> plt.Figure:
    """One panel per fit: predictive mean ± 2 sd, optional function samples, data, truth.

    Args:
        panels: dicts with keys ``x_grid (G,)``, ``mean (G,)``, ``std (G,)``, ``x (N,)``,
            ``t (N,)``, ``title``, and optional ``samples (S, G)``, ``truth (G,)``.
        title: figure title.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for ax, p in zip(axes[0], panels, strict=True):
        _band(ax, p["x_grid"], p["mean"], p["std"], p.get("samples"), p["x"], p["t"],
              p.get("truth"))
        ax.set(title=p["title"], xlabel="x")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_evidence_by_order(orders, log_evidence, rms_train, rms_test=None,
                           log_evidence_runs=None) -> plt.Figure:
    """Log evidence and training (and test) RMS error against polynomial order (PRML 3.14).

    Args:
        orders: ``(M,)`` polynomial orders.
        log_evidence: ``(M,)`` log evidence of one data set.
        rms_train, rms_test: ``(M,)`` RMS errors of that data set.
        log_evidence_runs: optional ``(R, M)`` log evidence of R repeated data sets, drawn as
            their mean ± 1 sd.
    """
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    orders = np.asarray(orders)
    ax1.plot(orders, log_evidence, "o-", color="tab:red", label="this data set")
    if log_evidence_runs is not None:
        runs = np.asarray(log_evidence_runs)
        mean, sd = runs.mean(0), runs.std(0)
        ax1.plot(orders, mean, "s--", color="tab:gray", label=f"mean of {len(runs)} data sets")
        ax1.fill_between(orders, mean - sd, mean + sd, color="tab:gray", alpha=0.2)
        ax1.legend(fontsize=8)
    best = int(orders[np.argmax(log_evidence)])
    ax1.axvline(best, color="k", ls=":", lw=1)
    ax1.set(xlabel="M", ylabel="ln p(t | α, β)", title=f"model evidence (peak at M = {best})")
    ax2.plot(orders, rms_train, "o-", color="tab:blue", label="training")
    if rms_test is not None:
        ax2.plot(orders, rms_test, "o-", color="tab:red", label="test")
    ax2.set(xlabel="M", ylabel="RMS error", title="least-squares error")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_sequential_weights(w_grid: np.ndarray, densities: Sequence[np.ndarray],
                            lines: Sequence[np.ndarray], data: Sequence[tuple],
                            true_w: Sequence[float], labels: Sequence[str]) -> plt.Figure:
    """Sequential Bayesian learning (PRML Fig. 3.7): posterior over (w0, w1), data space.

    Args:
        w_grid: ``(G,)`` grid for both weights.
        densities: ``(G, G)`` posterior density per stage (rows w1, columns w0).
        lines: ``(S, 2)`` weight samples per stage, drawn as lines in data space.
        data: ``(x, t)`` observed so far per stage.
        true_w: the generating weights.
        labels: stage titles.
    """
    n = len(densities)
    fig, axes = plt.subplots(2, n, figsize=(3.0 * n, 5.8))
    xs = np.linspace(-1, 1, 2)
    for j in range(n):
        ax = axes[0, j]
        ax.contourf(w_grid, w_grid, densities[j], levels=20, cmap="jet")
        ax.plot(*true_w, "w+", ms=12, mew=2)
        ax.set(title=labels[j], xlabel="w0", ylabel="w1" if j == 0 else None, aspect="equal")
        ax = axes[1, j]
        for w in lines[j]:
            ax.plot(xs, w[0] + w[1] * xs, color="tab:red", lw=0.8)
        x, t = data[j]
        ax.scatter(x, t, s=20, facecolors="none", edgecolors="tab:blue", zorder=3)
        ax.set(xlim=(-1, 1), ylim=(-1, 1), xlabel="x", ylabel="y" if j == 0 else None)
    fig.suptitle("Sequential Bayesian learning of y = w0 + w1 x")
    fig.tight_layout()
    return fig


def plot_logistic_predictive(x_grid, curves: Mapping[str, ArrayLike], x, t, *,
                             xlabel: str, title: str) -> plt.Figure:
    """Predictive probability curves of several approximations with the binary data."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (label, p), style in zip(curves.items(), cycle(["-", "--", ":", "-."])):
        ax.plot(x_grid, p, style, lw=1.6, label=label)
    jitter = 0.02 * (np.asarray(t) - 0.5)
    ax.scatter(x, np.asarray(t) + jitter, s=10, alpha=0.5, color="k", label="data")
    ax.set(xlabel=xlabel, ylabel="p(class 1 | x)", title=title, ylim=(-0.05, 1.05))
    ax.legend(fontsize=8)
    return fig
