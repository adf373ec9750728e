"""Plots of Bayesian-network uncertainty: reliability diagrams, regression bands with
epistemic/aleatoric parts, the rotated-digit experiment, variance decompositions and UCI
benchmark results against published ones.

Each function takes arrays (as returned by :mod:`espresso_jax.metrics`) and returns a
``Figure``.

References:
    C. Guo et al., "On calibration of modern neural networks", ICML 2017 (reliability diagram).
    Y. Gal and Z. Ghahramani, "Dropout as a Bayesian approximation", ICML 2016, Fig. 4
    (rotated digit).
    A. Kendall and Y. Gal, "What uncertainties do we need in Bayesian deep learning for
    computer vision?", NeurIPS 2017.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "plot_reliability_diagram",
    "plot_regression_band",
    "plot_rotated_digits",
    "plot_uncertainty_decomposition",
    "plot_uci_comparison",
]


def _np(x, name: str, ndim: int | None = None) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return arr


def _shade_gap(ax, gap):
    if gap is not None:
        lo, hi = gap
        ax.axvspan(lo, hi, color="0.85", zorder=0, label="no training data")


def plot_reliability_diagram(bin_edges, confidence, accuracy, count, *, ece: float | None = None,
                             title: str = "reliability diagram") -> plt.Figure:
    """Accuracy against confidence per bin, with the gap to the diagonal and bin counts.

    Args:
        bin_edges: ``(B + 1,)`` bin edges on ``[0, 1]``.
        confidence, accuracy: ``(B,)`` per-bin mean confidence and accuracy.
        count: ``(B,)`` examples per bin (empty bins are not drawn).
        ece: expected calibration error to print in the title.
        title: figure title.
    """
    edges = _np(bin_edges, "bin_edges", 1)
    conf, acc, cnt = (_np(a, n, 1) for a, n in ((confidence, "confidence"),
                                                  (accuracy, "accuracy"), (count, "count")))
    if not (len(edges) - 1 == len(conf) == len(acc) == len(cnt)):
        raise ValueError("bin_edges must have one more entry than confidence, accuracy, count")
    left, width = edges[:-1], np.diff(edges)
    full = cnt > 0
    fig, (ax, ax_count) = plt.subplots(2, 1, figsize=(4.2, 5.2), sharex=True,
                                       gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(left[full], acc[full], width=width[full], align="edge", color="tab:blue",
           edgecolor="k", lw=0.5, label="accuracy")
    ax.bar(left[full], conf[full] - acc[full], bottom=acc[full], width=width[full],
           align="edge", color="tab:red", alpha=0.3, edgecolor="tab:red", lw=0.5,
           label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title + (f" (ECE = {ece:.3f})" if ece is not None else ""))
    ax_count.bar(left, cnt, width=width, align="edge", color="0.5", edgecolor="k", lw=0.5)
    ax_count.set(xlabel="confidence (max predictive probability)", ylabel="count")
    fig.tight_layout()
    return fig


def plot_regression_band(x, y, x_grid, mean=None, epistemic=None, aleatoric=None, *,
                         samples=None, gap: tuple[float, float] | None = None, truth=None,
                         title: str = "predictive uncertainty") -> plt.Figure:
    """1-D regression: data, predictive mean and uncertainty bands over a grid.

    Either give ``mean`` with variances ``epistemic`` and ``aleatoric`` (drawn as ±2 sd bands:
    the inner band from the epistemic variance, the outer from the total), or give ``samples``
    ``(T, G)`` of predictive draws (drawn as median and interquartile range, plus the 5-95 %
    range).

    Args:
        x, y: ``(N,)`` training data.
        x_grid: ``(G,)`` sorted grid.
        mean: ``(G,)`` predictive mean. epistemic, aleatoric: ``(G,)`` variances.
        samples: ``(T, G)`` predictive samples (alternative to the moments).
        gap: ``(low, high)`` input interval without training data, shaded.
        truth: ``(G,)`` true function.
        title: axes title.
    """
    xg = _np(x_grid, "x_grid", 1)
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    _shade_gap(ax, gap)
    if samples is not None:
        s = _np(samples, "samples", 2)
        if s.shape[1] != len(xg):
            raise ValueError(f"samples must be (T, {len(xg)}), got {s.shape}")
        q05, q25, q50, q75, q95 = np.percentile(s, [5, 25, 50, 75, 95], axis=0)
        ax.fill_between(xg, q05, q95, color="tab:red", alpha=0.15, label="5-95 %")
        ax.fill_between(xg, q25, q75, color="tab:red", alpha=0.35, label="interquartile")
        ax.plot(xg, q50, color="tab:red", label="median")
    else:
        if mean is None or epistemic is None or aleatoric is None:
            raise ValueError("give mean, epistemic and aleatoric, or samples")
        m, ep, al = (_np(a, n, 1) for a, n in ((mean, "mean"), (epistemic, "epistemic"),
                                                (aleatoric, "aleatoric")))
        if not (len(m) == len(ep) == len(al) == len(xg)):
            raise ValueError("mean, epistemic, aleatoric must have one entry per x_grid point")
        total_sd, ep_sd = np.sqrt(ep + al), np.sqrt(ep)
        ax.fill_between(xg, m - 2 * total_sd, m + 2 * total_sd, color="tab:orange", alpha=0.3,
                        label="±2 sd total (+ aleatoric)")
        ax.fill_between(xg, m - 2 * ep_sd, m + 2 * ep_sd, color="tab:purple", alpha=0.4,
                        label="±2 sd epistemic")
        ax.plot(xg, m, color="tab:red", label="predictive mean")
    if truth is not None:
        ax.plot(xg, _np(truth, "truth", 1), color="tab:green", lw=1, ls="--", label="truth")
    ax.scatter(_np(x, "x", 1), _np(y, "y", 1), s=6, color="k", alpha=0.5, zorder=3,
               label="data")
    ax.set(xlabel="x", ylabel="y", title=title)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_rotated_digits(angles, logits, probs, *, top_k: int = 3,
                        class_names: Sequence[str] | None = None, images=None,
                        title: str = "rotated digit") -> plt.Figure:
    """Stochastic softmax input and output of one image rotated through ``angles`` (Gal &
    Ghahramani Fig. 4): for the ``top_k`` classes of highest mean probability, a scatter of the
    ``T`` samples per angle.

    Args:
        angles: ``(A,)`` rotation angles in degrees.
        logits: ``(A, T, C)`` softmax inputs (per-sample logits).
        probs: ``(A, T, C)`` softmax outputs.
        top_k: number of classes shown.
        class_names: optional ``C`` labels (default: the class index).
        images: optional ``(A, H, W)`` rotated images, shown in a strip above.
        title: figure title.
    """
    ang = _np(angles, "angles", 1)
    lg, pr = _np(logits, "logits", 3), _np(probs, "probs", 3)
    if lg.shape != pr.shape or lg.shape[0] != len(ang):
        raise ValueError(f"logits and probs must both be (A={len(ang)}, T, C), got "
                         f"{lg.shape} and {pr.shape}")
    n_classes = lg.shape[2]
    top_k = int(min(max(top_k, 1), n_classes))
    top = np.argsort(-pr.mean(axis=(0, 1)))[:top_k]
    names = [str(c) for c in range(n_classes)] if class_names is None else list(class_names)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    n_img = 0 if images is None else len(np.asarray(images))
    fig = plt.figure(figsize=(9.0, 4.2 if n_img else 3.4))
    grid = fig.add_gridspec(2 if n_img else 1, 2, height_ratios=[1, 4] if n_img else [1])
    if n_img:
        imgs = np.asarray(images)
        strip = fig.add_subplot(grid[0, :])
        strip.imshow(np.concatenate(list(imgs), axis=1), cmap="gray")
        strip.set_axis_off()
    row = 1 if n_img else 0
    ax_in, ax_out = fig.add_subplot(grid[row, 0]), fig.add_subplot(grid[row, 1])
    n_samples = lg.shape[1]
    xs = np.repeat(ang, n_samples)
    for i, c in enumerate(top):
        color = colors[i % len(colors)]
        ax_in.scatter(xs, lg[:, :, c].ravel(), s=3, alpha=0.4, color=color,
                      label=f"class {names[c]}")
        ax_out.scatter(xs, pr[:, :, c].ravel(), s=3, alpha=0.4, color=color,
                       label=f"class {names[c]}")
    ax_in.set(xlabel="rotation (degrees)", ylabel="softmax input", title="softmax input")
    ax_out.set(xlabel="rotation (degrees)", ylabel="softmax output", title="softmax output",
               ylim=(-0.02, 1.02))
    ax_out.legend(fontsize=7, markerscale=3)
    fig.suptitle(f"{title}: {n_samples} stochastic passes per angle")
    fig.tight_layout()
    return fig


def plot_uncertainty_decomposition(x, epistemic, aleatoric, *,
                                   gap: tuple[float, float] | None = None,
                                   xlabel: str = "x", ylabel: str = "variance",
                                   title: str = "epistemic vs aleatoric") -> plt.Figure:
    """Stacked epistemic and aleatoric parts of the predictive uncertainty against ``x``.

    For regression pass variances; for classification pass the mutual information (epistemic)
    and the expected entropy (aleatoric), whose sum is the predictive entropy.

    Args:
        x: ``(n,)`` inputs (sorted here), e.g. a 1-D grid or rotation angles.
        epistemic, aleatoric: ``(n,)`` non-negative parts.
        gap: ``(low, high)`` interval without training data, shaded.
        xlabel, ylabel, title: labels.
    """
    xv = _np(x, "x", 1)
    ep, al = _np(epistemic, "epistemic", 1), _np(aleatoric, "aleatoric", 1)
    if not (len(xv) == len(ep) == len(al)):
        raise ValueError("x, epistemic and aleatoric must have the same length")
    order = np.argsort(xv)
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    _shade_gap(ax, gap)
    ax.stackplot(xv[order], al[order], ep[order], colors=["tab:orange", "tab:purple"],
                 alpha=0.6, labels=["aleatoric", "epistemic"])
    ax.plot(xv[order], (al + ep)[order], color="k", lw=1, label="total")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_uci_comparison(names: Sequence[str], rmse, rmse_se, ll, ll_se, ref_rmse, ref_rmse_se,
                        ref_ll, ref_ll_se, *, label: str = "ours",
                        ref_label: str = "published") -> plt.Figure:
    """UCI regression results against reference ones, one row per data set.

    Left: RMSE relative to the reference, ``rmse / ref_rmse - 1`` (data sets whose reference
    RMSE is 0, as published for naval, are left out); right: test log-likelihood difference
    ``ll - ref_ll`` in nats per point (higher is better). Bars are one standard error of the
    difference (both SEs combined; a missing reference SE, NaN, counts as 0).

    Args:
        names: ``n`` data-set names.
        rmse, rmse_se, ll, ll_se: ``(n,)`` our means and standard errors over the splits.
        ref_rmse, ref_rmse_se, ref_ll, ref_ll_se: ``(n,)`` the reference numbers.
        label, ref_label: legend names.
    """
    names = [str(n) for n in names]
    arrays = [_np(a, k, 1) for a, k in zip(
        (rmse, rmse_se, ll, ll_se, ref_rmse, ref_rmse_se, ref_ll, ref_ll_se),
        ("rmse", "rmse_se", "ll", "ll_se", "ref_rmse", "ref_rmse_se", "ref_ll", "ref_ll_se"),
        strict=True)]
    if any(len(a) != len(names) for a in arrays):
        raise ValueError(f"every array must have one entry per name ({len(names)})")
    rm, rs, lm, ls, prm, prs, plm, pls = arrays
    y = np.arange(len(names))[::-1]
    fig, (ax_r, ax_l) = plt.subplots(1, 2, figsize=(8.5, 0.45 * len(names) + 1.4), sharey=True)
    valid = prm > 0
    rel = np.where(valid, rm / np.where(valid, prm, 1.0) - 1.0, np.nan)
    rel_se = np.where(valid, np.hypot(rs, np.nan_to_num(prs) * rm / np.where(valid, prm, 1.0))
                      / np.where(valid, prm, 1.0), np.nan)
    panels = ((ax_r, rel, rel_se, f"RMSE / {ref_label} − 1  (lower is better)"),
              (ax_l, lm - plm, np.hypot(ls, np.nan_to_num(pls)),
               f"test LL − {ref_label} [nats]  (higher is better)"))
    for ax, diff, se, xlabel in panels:
        ax.axvline(0.0, color="k", lw=0.8)
        ax.errorbar(diff, y, xerr=se, fmt="o", color="tab:blue", capsize=3, label=label)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    ax_r.set_yticks(y, names)
    ax_r.legend(fontsize=7, loc="best")
    fig.suptitle(f"UCI regression: {label} vs {ref_label} (±1 SE)", fontsize=10)
    fig.tight_layout()
    return fig
