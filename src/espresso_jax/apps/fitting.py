"""Fit a model to a user's table (CSV or NPY) and write the result folder: the functions behind
``espresso-jax fit``.

A fit folder holds

* ``params.msgpack``: the fitted parameters NamedTuple (:func:`espresso_jax.io.save_params`);
* ``params.json``: a sidecar with the model name, the parameter structure, shapes and dtypes,
  the options and the column names, so :func:`load_fitted` needs no template;
* ``summary.json``: data description, options, metrics and how to load the parameters;
* ``plot.png``: clusters with 2-sd ellipses (2-D data; the first two principal axes otherwise),
  the PPCA latent space, or the BLR predictive band (one input column; residuals otherwise).

The folder is assembled in a temporary folder beside the destination and renamed into place
only when complete, so an error never leaves a half-written result.

Example:
    >>> table = load_table("data.csv")
    >>> out = fit_model(jax.random.key(0), "gmm", table.data, columns=table.columns,
    ...                 n_components=3)
    >>> write_fit("gmm_fit", out, table.data)
    >>> params = load_fitted("gmm_fit")          # a GMMParams
    >>> labels = espresso_jax.mixture.gmm.predict(params, X_new)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from espresso_jax.apps.report import to_jsonable
from espresso_jax.apps.viz.linear import plot_predictive_band
from espresso_jax.apps.viz.mixture import draw_covariance_ellipse
from espresso_jax.datasets.table import Table, load_table
from espresso_jax.io import load_params, save_params
from espresso_jax.linear import basis as basis_fns
from espresso_jax.linear import bayes
from espresso_jax.mixture import gmm, kmeans, ppca, vbgmm
from espresso_jax.mixture.kmeans import KMeansParams
from espresso_jax.mixture.vb_terms import VBGMMParams
from espresso_jax.validation import check_choice, check_int, check_key

__all__ = ["MODELS", "BLR_BASES", "Table", "KMeansParams", "BLRParams", "FitOutput",
           "load_table", "fit_model", "write_fit", "run_fit", "check_out_dir", "load_fitted",
           "load_info", "predict"]

MODELS = ("gmm", "vbgmm", "kmeans", "ppca", "blr")
BLR_BASES = ("polynomial", "gaussian", "sigmoid", "none")
FORMAT_VERSION = 2
"""2: ``blr`` params hold ``bayes.BayesParams`` (was the whole evidence fit) and ``kmeans``
params are ``kmeans.KMeansParams``."""


class BLRParams(NamedTuple):
    """Fitted Bayesian linear regression on a basis of standardised inputs.

    Attributes:
        posterior: the :class:`espresso_jax.linear.bayes.BayesParams` at the evidence
            optimum (weights ``N(mean, cov)``, ``alpha`` and ``beta``).
        x_mean: ``(n_inputs,)`` input means subtracted before the basis.
        x_scale: ``(n_inputs,)`` input standard deviations (1 for constant columns).
        centres: ``(n_centres, n_inputs)`` basis centres in standardised units (``(0, d)`` for
            the polynomial and ``none`` bases).
        width: ``()`` basis width in standardised units (unused by polynomial and ``none``).
    """

    posterior: bayes.BayesParams
    x_mean: jax.Array
    x_scale: jax.Array
    centres: jax.Array
    width: jax.Array


class FitOutput(NamedTuple):
    """What :func:`fit_model` returns.

    Attributes:
        model: one of :data:`MODELS`.
        params: the fitted parameters NamedTuple (what :func:`load_fitted` gives back).
        info: JSON-able options, column names and model settings (the sidecar's content).
        metrics: JSON-able numbers for ``summary.json``.
    """

    model: str
    params: Any
    info: dict
    metrics: dict


def _leaves(n: int) -> list[jax.Array]:
    return [jnp.zeros(())] * n


# The structure of each model's params (leaves are placeholders), to rebuild a template.
_SKELETONS = {
    "gmm": lambda: gmm.GMMParams(*_leaves(4)),
    "vbgmm": lambda: VBGMMParams(*_leaves(6)),
    "kmeans": lambda: KMeansParams(*_leaves(1)),
    "ppca": lambda: ppca.PPCAParams(*_leaves(3)),
    "blr": lambda: BLRParams(bayes.BayesParams(*_leaves(4)), *_leaves(4)),
}


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------

def _need_columns(X: np.ndarray, n: int, what: str) -> None:
    if X.shape[1] < n:
        raise ValueError(f"{what} needs at least {n} column(s); DATA has {X.shape[1]}")


def _fit_gmm(key, X, *, n_components=2, covariance_type="full", n_init=1, max_iter=100,
             tol=1e-3, reg_covar=1e-6):
    res = gmm.fit(key, X, n_components, covariance_type=covariance_type, n_init=n_init,
                  max_iter=max_iter, tol=tol, reg_covar=reg_covar)
    p = res.params
    metrics = {"mean_log_likelihood": gmm.score(p, X), "bic": gmm.bic(p, X),
               "aic": gmm.aic(p, X), "n_iter": res.n_iter, "converged": bool(res.converged),
               "weights": p.weights, "means": p.means}
    opts = dict(n_components=n_components, covariance_type=covariance_type, n_init=n_init,
                max_iter=max_iter, tol=tol, reg_covar=reg_covar)
    return p, opts, metrics


_WEIGHT_PRIOR_NAMES = {"dirichlet": "dirichlet_distribution",
                       "dirichlet_distribution": "dirichlet_distribution",
                       "dirichlet_process": "dirichlet_process"}


def _fit_vbgmm(key, X, *, n_components=5, weight_prior="dirichlet_process",
               weight_concentration=None, covariance_type="full", n_init=1, max_iter=100,
               tol=1e-3):
    prior = _WEIGHT_PRIOR_NAMES.get(weight_prior) if isinstance(weight_prior, str) else None
    if prior is None:
        raise ValueError(f"weight_prior must be one of ['dirichlet', 'dirichlet_process'], "
                         f"got {weight_prior!r}")
    res = vbgmm.fit(key, X, n_components, weight_prior=prior,
                    weight_concentration=weight_concentration, covariance_type=covariance_type,
                    n_init=n_init, max_iter=max_iter, tol=tol)
    p = res.params
    w = vbgmm.expected_weights(p)
    metrics = {"elbo": res.history[int(res.n_iter) - 1], "n_iter": res.n_iter,
               "converged": bool(res.converged),
               "active_components": int(jnp.sum(vbgmm.active_components(p))),
               "mean_log_predictive": jnp.mean(vbgmm.score_samples(p, X)),
               "expected_weights": w, "means": p.means}
    opts = dict(n_components=n_components, weight_prior=prior,
                weight_concentration=weight_concentration, covariance_type=covariance_type,
                n_init=n_init, max_iter=max_iter, tol=tol)
    return p, opts, metrics


def _fit_kmeans(key, X, *, n_clusters=2, n_init=1, max_iter=300, tol=1e-4):
    res = kmeans.fit(key, X, n_clusters, n_init=n_init, max_iter=max_iter, tol=tol)
    labels = np.asarray(kmeans.predict(res.params, X))
    metrics = {"inertia": res.inertia, "n_iter": res.n_iter, "converged": bool(res.converged),
               "cluster_sizes": np.bincount(labels, minlength=n_clusters),
               "centres": res.params.centres}
    opts = dict(n_clusters=n_clusters, n_init=n_init, max_iter=max_iter, tol=tol)
    return res.params, opts, metrics


def _fit_ppca(key, X, *, n_components=1, em=False, max_iter=1000, tol=1e-6):
    n_components = check_int(n_components, "n_components", min_value=1)
    _need_columns(X, n_components, f"ppca with n_components={n_components}")
    metrics: dict[str, Any] = {}
    if em:
        res = ppca.fit_em(key, X, n_components, max_iter=max_iter, tol=tol)
        metrics.update(n_iter=res.n_iter, converged=bool(res.converged))
    else:
        res = ppca.fit(X, n_components)
    p = res.params
    var = np.sum(np.asarray(p.W, np.float64) ** 2, axis=0) + float(p.sigma2)
    metrics.update(mean_log_likelihood=ppca.log_likelihood(p, X), sigma2=p.sigma2,
                   latent_variances=var)
    opts = dict(n_components=n_components, em=bool(em), max_iter=max_iter, tol=tol)
    return p, opts, metrics


def _column_index(target: int | str, columns: tuple[str, ...]) -> int:
    d = len(columns)
    if isinstance(target, str) and not target.lstrip("-").isdigit():
        if target not in columns:
            raise ValueError(f"target {target!r} is not a column name; columns: "
                             f"{', '.join(columns)}")
        return columns.index(target)
    j = check_int(int(target), "target")
    if not -d <= j < d:
        raise ValueError(f"target={j} is out of range for {d} column(s) (use 0..{d - 1}, "
                         f"-{d}..-1 or a column name)")
    return j % d


def _blr_design(X: Any, basis: str, degree: int | None, x_mean: jax.Array, x_scale: jax.Array,
                centres: jax.Array, width: jax.Array) -> jax.Array:
    """Design matrix ``(n, n_basis)`` of raw inputs ``X (n, n_inputs)``; the last four
    arguments are the basis fields of :class:`BLRParams` (``*params[1:]``)."""
    xs = (jnp.asarray(X, x_mean.dtype) - x_mean[None, :]) / x_scale[None, :]
    if basis == "none":
        return basis_fns.polynomial(xs, 1)
    if basis == "polynomial":
        if degree is None:
            raise ValueError("the polynomial basis needs a degree")
        return basis_fns.polynomial(xs, degree)
    return basis_fns.design_matrix(xs, basis, centres=centres, width=float(width), bias=True)


def _fit_blr(key, X, columns, *, target=-1, basis="polynomial", degree=None, n_basis=None,
             width=None, max_iter=300, tol=1e-6):
    _need_columns(X, 2, "blr (inputs and a target)")
    j = _column_index(target, columns)
    basis = check_choice(basis, "basis", BLR_BASES)
    if basis != "polynomial" and degree is not None:
        raise ValueError(f"degree is only used by the polynomial basis, not {basis!r}")
    if basis in ("polynomial", "none") and (n_basis is not None or width is not None):
        raise ValueError(f"n_basis and width are only used by the gaussian and sigmoid bases, "
                         f"not {basis!r}")
    x, t = np.delete(X, j, axis=1), X[:, j]
    d = x.shape[1]
    if basis == "sigmoid" and d != 1:
        raise ValueError(f"the sigmoid basis needs exactly one input column; DATA has {d} "
                         f"besides the target (use gaussian, polynomial or none)")
    dtype = jnp.asarray(0.0).dtype
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    xs = (x - mu) / sd
    if basis == "polynomial":
        degree = 3 if degree is None else check_int(degree, "degree", min_value=0)
    if basis in ("gaussian", "sigmoid"):
        n_basis = 9 if n_basis is None else check_int(n_basis, "n_basis", min_value=1)
        if d == 1:                                   # evenly spaced over the data range
            centres = np.linspace(xs.min(), xs.max(), n_basis)[:, None]
            default_width = (xs.max() - xs.min()) / max(n_basis - 1, 1)
        else:                                        # k-means++ seeds in standardised space
            n_basis = check_int(n_basis, "n_basis", max_value=len(xs))
            centres = np.asarray(kmeans.kmeans_plusplus(key, xs, n_basis), np.float64)
            default_width = 1.0
        width = float(default_width if width is None else width)
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width}")
    else:
        centres, width = np.zeros((0, d)), 1.0
    scaling = tuple(jnp.asarray(a, dtype) for a in (mu, sd, centres, width))
    Phi = _blr_design(x, basis, degree, *scaling)
    fit = bayes.fit_evidence(Phi, t, max_iter=max_iter, tol=tol, alpha_shape=0.0,
                             alpha_rate=0.0, beta_shape=0.0, beta_rate=0.0)
    params = BLRParams(fit.params, *scaling)
    pred = bayes.predict(fit.params, Phi)
    beta = fit.params.beta
    metrics = {"alpha": fit.params.alpha, "beta": beta, "noise_sd": 1.0 / jnp.sqrt(beta),
               "gamma": fit.gamma, "log_evidence": fit.log_evidence, "n_iter": fit.n_iter,
               "converged": bool(fit.converged), "n_basis": Phi.shape[1],
               "rmse": float(np.sqrt(np.mean((np.asarray(pred.mean) - t) ** 2))),
               "weights_mean": fit.params.mean}
    opts = dict(target=columns[j], target_index=j, basis=basis, degree=degree, n_basis=n_basis,
                width=None if basis in ("polynomial", "none") else width, max_iter=max_iter,
                tol=tol)
    return params, opts, metrics


def fit_model(key: jax.Array, model: str, X: Any, *, columns: tuple[str, ...] | None = None,
              **options: Any) -> FitOutput:
    """Fit one of :data:`MODELS` to a table.

    Args:
        key: PRNG key (initialisation; unused by closed-form PPCA and non-k-means bases).
        model: ``"gmm"``, ``"vbgmm"``, ``"kmeans"``, ``"ppca"`` or ``"blr"``.
        X: ``(n_samples, n_columns)`` data (for ``blr`` the target column included).
        columns: column names (default ``col0, col1, ...``).
        **options: the model's options (defaults in brackets):
            gmm: n_components [2], covariance_type ["full"], n_init [1], max_iter [100],
            tol [1e-3], reg_covar [1e-6];
            vbgmm: n_components [5], weight_prior ["dirichlet_process" | "dirichlet"],
            weight_concentration [1/K], covariance_type, n_init, max_iter [100], tol [1e-3];
            kmeans: n_clusters [2], n_init [1], max_iter [300], tol [1e-4];
            ppca: n_components [1], em [False: closed form], max_iter, tol (EM only);
            blr: target [-1: last column; index or name], basis ["polynomial" | "gaussian" |
            "sigmoid" | "none" (linear)], degree [3], n_basis [9], width [spacing of the
            centres, in standard deviations], max_iter [300], tol [1e-6]. Inputs are
            standardised; alpha and beta maximise the evidence (no hyperpriors).

    Returns:
        :class:`FitOutput`.

    Raises:
        ValueError / TypeError: bad data or options (named), before anything is written.
    """
    key = check_key(key)
    model = check_choice(model, "model", MODELS)
    X = np.asarray(X, np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.size == 0:
        raise ValueError(f"X must be a non-empty 2-D table (n_samples, n_columns), got shape "
                         f"{X.shape}")
    columns = tuple(columns) if columns is not None else tuple(
        f"col{j}" for j in range(X.shape[1]))
    if len(columns) != X.shape[1]:
        raise ValueError(f"columns has {len(columns)} names for {X.shape[1]} columns")
    if model == "blr":
        params, opts, metrics = _fit_blr(key, X, columns, **options)
    else:
        fitters: dict[str, Callable[..., tuple[Any, dict, dict]]] = {
            "gmm": _fit_gmm, "vbgmm": _fit_vbgmm, "kmeans": _fit_kmeans, "ppca": _fit_ppca}
        fitter = fitters[model]
        params, opts, metrics = fitter(key, X, **options)
    leaves = jax.tree.leaves(params)
    info = {"format": FORMAT_VERSION, "model": model, "params_type": type(params).__name__,
            "leaves": [{"shape": list(np.shape(a)), "dtype": str(np.asarray(a).dtype)}
                       for a in leaves],
            "options": to_jsonable(opts), "columns": list(columns),
            "n_samples": int(X.shape[0])}
    return FitOutput(model, params, info, to_jsonable(metrics))


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------

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
        return _blr_design(a, opts["basis"], opts["degree"], *params[1:])

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


def _plot(fitted: FitOutput, X: np.ndarray) -> plt.Figure:
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


# --------------------------------------------------------------------------------------------
# Writing and loading
# --------------------------------------------------------------------------------------------

def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """Refuse an existing ``out_dir`` unless it is an empty folder or an earlier fit folder."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not (out_dir / "params.json").is_file() and (
            not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"--out {out_dir} exists and is not an espresso-jax fit folder; "
                         "choose another folder")
    return out_dir


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename ``staging`` to ``out_dir``, replacing an earlier fit folder there."""
    old = None
    check_out_dir(out_dir)
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    try:
        os.replace(staging, out_dir)
    except OSError:
        if old is not None:
            os.replace(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_fit(out_dir: str | os.PathLike, fitted: FitOutput, X: Any, *,
              data_name: str | None = None) -> dict:
    """Write ``params.msgpack``, ``params.json``, ``summary.json`` and ``plot.png``.

    Args:
        out_dir: destination folder; an earlier fit folder there is replaced, any other
            existing non-empty folder is refused.
        fitted: from :func:`fit_model`.
        X: ``(n_samples, n_columns)`` the data that was fitted (for the plot).
        data_name: the data file's name for the summary.

    Returns:
        The summary (as written to ``summary.json``).
    """
    out_dir = Path(out_dir)
    X = np.asarray(X, np.float64).reshape(len(X), -1)
    parent = out_dir.resolve().parent
    check_out_dir(out_dir)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=parent))
    try:
        save_params(staging / "params.msgpack", fitted.params)
        (staging / "params.json").write_text(json.dumps(fitted.info, indent=2))
        fig = _plot(fitted, X)
        fig.savefig(staging / "plot.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        load = (f"from espresso_jax.apps.fitting import load_fitted; "
                f"params = load_fitted({str(out_dir)!r})  # {fitted.info['params_type']}")
        summary = {"model": fitted.model, "data": data_name, "n_samples": X.shape[0],
                   "columns": fitted.info["columns"], "options": fitted.info["options"],
                   "metrics": fitted.metrics,
                   "files": {"params": "params.msgpack", "params_info": "params.json",
                             "plot": "plot.png"},
                   "load": load}
        (staging / "summary.json").write_text(json.dumps(to_jsonable(summary), indent=2,
                                                         allow_nan=False))
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def run_fit(key: jax.Array, model: str, data: str | os.PathLike, out_dir: str | os.PathLike,
            **options: Any) -> dict:
    """Read ``data``, fit ``model`` and write the fit folder (see the module docstring).

    Returns:
        The summary written to ``summary.json``.
    """
    check_out_dir(out_dir)
    table = load_table(data)
    fitted = fit_model(key, model, table.data, columns=table.columns, **options)
    return write_fit(out_dir, fitted, table.data, data_name=str(data))


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    path = Path(path)
    if path.is_dir():
        path = path / "params.msgpack"
    return path, path.with_suffix(".json")


def load_info(path: str | os.PathLike) -> dict:
    """The sidecar ``params.json`` of a fit folder (or of its ``params.msgpack``)."""
    _, meta = _paths(path)
    if not meta.is_file():
        raise FileNotFoundError(f"no params.json beside {path}; is it an espresso-jax fit "
                                "folder?")
    info = json.loads(meta.read_text())
    if info.get("format") != FORMAT_VERSION or info.get("model") not in MODELS:
        raise ValueError(f"{meta} is not an espresso-jax fit sidecar (format "
                         f"{FORMAT_VERSION})")
    return info


def load_fitted(path: str | os.PathLike) -> Any:
    """Load the fitted parameters NamedTuple of a fit folder (no template needed).

    Args:
        path: the folder written by :func:`write_fit` (or its ``params.msgpack``).

    Returns:
        ``GMMParams`` (gmm), ``VBGMMParams`` (vbgmm), :class:`KMeansParams`, ``PPCAParams`` or
        :class:`BLRParams`, as the fit produced them.
    """
    file, _ = _paths(path)
    info = load_info(path)
    treedef = jax.tree.structure(_SKELETONS[info["model"]]())
    like = jax.tree.unflatten(treedef, [np.zeros(leaf["shape"], leaf["dtype"])
                                        for leaf in info["leaves"]])
    return load_params(file, like)


def predict(path: str | os.PathLike, X: Any) -> dict[str, jax.Array]:
    """Predictions of a saved fit for new rows.

    Args:
        path: a fit folder.
        X: ``(n, n_features)`` new rows (for ``blr``: the input columns only, in their order).

    Returns:
        gmm / vbgmm: ``labels (n,)`` and ``proba (n, K)``; kmeans: ``labels``; ppca:
        ``latent_mean (n, M)`` and ``log_likelihood (n,)``; blr: ``mean (n,)`` and ``var (n,)``
        of the predictive distribution.
    """
    info, params = load_info(path), load_fitted(path)
    model = info["model"]
    X = np.asarray(X, np.float64)
    if model in ("gmm", "vbgmm"):
        mod = gmm if model == "gmm" else vbgmm
        return {"labels": mod.predict(params, X), "proba": mod.predict_proba(params, X)}
    if model == "kmeans":
        return {"labels": kmeans.predict(params, X)}
    if model == "ppca":
        return {"latent_mean": ppca.posterior(params, X)[0],
                "log_likelihood": ppca.score_samples(params, X)}
    X = X[:, None] if X.ndim == 1 else X
    n_in = params.x_mean.shape[0]
    if X.ndim != 2 or X.shape[1] != n_in:
        raise ValueError(f"X must have shape (n, {n_in}) (the input columns), got {X.shape}")
    opts = info["options"]
    pred = bayes.predict(params.posterior,
                         _blr_design(X, opts["basis"], opts["degree"], *params[1:]))
    return {"mean": pred.mean, "var": pred.var}
