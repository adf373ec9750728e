"""Fit one of the ``espresso-jax fit`` models to a table's rows: the options each model takes,
the fitted parameters and the numbers for the summary (no files, no plots)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.apps.report import to_jsonable
from espresso_jax.linear import basis as basis_fns
from espresso_jax.linear import bayes
from espresso_jax.mixture import gmm, kmeans, ppca, vbgmm
from espresso_jax.scaling import exponent_limit
from espresso_jax.validation import check_choice, check_int, check_key

__all__ = ["MODELS", "BLR_BASES", "FORMAT_VERSION", "BLRParams", "FitOutput", "blr_design",
           "fit_model"]

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
        params: the fitted parameters NamedTuple (what
            :func:`~espresso_jax.apps.fitting.folder.load_fitted` gives back).
        info: JSON-able options, column names and model settings (the sidecar's content).
        metrics: JSON-able numbers for ``summary.json``.
    """

    model: str
    params: Any
    info: dict
    metrics: dict


def _need_columns(X: np.ndarray, n: int, what: str) -> None:
    if X.shape[1] < n:
        raise ValueError(f"{what} needs at least {n} column(s); DATA has {X.shape[1]}")


def _check_finite_fit(model: str, X: np.ndarray, params: Any, metrics: dict | None = None
                      ) -> None:
    """Refuse a fit whose parameters or summary numbers are not finite (data beyond what the
    precision resolves): the message names the data and says what to do, not the field."""
    leaves = jax.tree.leaves(params) + [
        v for v in jax.tree.leaves(metrics or {})
        if np.asarray(v).dtype.kind == "f"]
    if all(np.all(np.isfinite(np.asarray(v))) for v in leaves):
        return
    dtype = jnp.asarray(0.0).dtype
    big = float(np.max(np.abs(X)))
    tiny = float(np.min(np.abs(X[X != 0]))) if np.any(X != 0) else 0.0
    hint = ("rescale the columns" if dtype == jnp.float64 else
            "rescale the columns or fit in float64 (--x64)")
    raise ValueError(f"the {model} result is not finite in {dtype} (the data's |values| range "
                     f"from {tiny:.3g} to {big:.3g}): {hint}")


def _fit_gmm(key, X, *, n_components=2, covariance_type="full", n_init=1, max_iter=100,
             tol=1e-3, reg_covar=1e-6):
    res = gmm.fit(key, X, n_components, covariance_type=covariance_type, n_init=n_init,
                  max_iter=max_iter, tol=tol, reg_covar=reg_covar)
    p = res.params
    _check_finite_fit("gmm", X, p)
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
    _check_finite_fit("vbgmm", X, p)
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
    _check_finite_fit("kmeans", X, res.params, {"inertia": res.inertia})
    labels = np.asarray(kmeans.predict(res.params, X))
    metrics = {"inertia": res.inertia, "n_iter": res.n_iter, "converged": bool(res.converged),
               "cluster_sizes": np.bincount(labels, minlength=n_clusters),
               "centres": res.params.centres}
    opts = dict(n_clusters=n_clusters, n_init=n_init, max_iter=max_iter, tol=tol)
    return res.params, opts, metrics


def _fit_ppca(key, X, *, n_components=1, em=False, max_iter=None, tol=None):
    n_components = check_int(n_components, "n_components", min_value=1)
    _need_columns(X, n_components, f"ppca with n_components={n_components}")
    if not em and (max_iter is not None or tol is not None):
        given = [n for n, v in (("max_iter", max_iter), ("tol", tol)) if v is not None]
        verb = "is" if len(given) == 1 else "are"
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise ValueError(f"{' and '.join(given)} ({flags}) {verb} only used by the EM fit "
                         "(em=True, --em), not by the closed form")
    max_iter = 1000 if max_iter is None else max_iter
    tol = 1e-6 if tol is None else tol
    metrics: dict[str, Any] = {}
    if em:
        res = ppca.fit_em(key, X, n_components, max_iter=max_iter, tol=tol)
        metrics.update(n_iter=res.n_iter, converged=bool(res.converged))
    else:
        res = ppca.fit(X, n_components)
    p = res.params
    _check_finite_fit("ppca", X, p)
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


def blr_design(X: Any, basis: str, degree: int | None, x_mean: jax.Array, x_scale: jax.Array,
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


def _check_target(y: np.ndarray, name: str) -> None:
    """A constant target has no noise to estimate; a target whose variance or its inverse does
    not fit the precision cannot give a finite noise precision ``beta``."""
    if np.ptp(y) == 0:
        raise ValueError(f"the target column {name!r} is constant (every row is {y[0]:.6g}): "
                         "there is nothing to regress; choose another target (--target)")
    dtype = jnp.asarray(0.0).dtype
    info = np.finfo(dtype)
    var = float(np.var(y))
    if not (len(y) / float(info.max) < var < float(info.max) / len(y)):
        hint = "rescale it" if dtype == jnp.float64 else "rescale it or fit in float64 (--x64)"
        raise ValueError(f"the target column {name!r} has variance {var:.3g}, beyond what "
                         f"{dtype} resolves: {hint}")


def _max_degree(xs: np.ndarray, dtype: Any) -> int:
    """The highest polynomial degree whose features of the standardised inputs ``xs`` (and of
    the plot's grid, 5% beyond their range) stay ``scaling.exponent_limit`` powers of two
    below the dtype's overflow (bayes.fit_evidence and bayes.predict check that range)."""
    span = xs.max(0) - xs.min(0)
    m = float(np.max(np.abs(np.concatenate([xs.min(0) - 0.05 * span, xs.max(0) + 0.05 * span]))))
    return int(exponent_limit(dtype) / np.log2(m)) if m > 1.0 else 10_000


def _basis_error(basis: str, degree: int | None, n_basis: int | None, width: float
                 ) -> ValueError:
    dtype = jnp.asarray(0.0).dtype
    x64 = "" if dtype == jnp.float64 else " or fit in float64 (--x64)"
    if basis == "polynomial":
        return ValueError(f"degree={degree} (--degree) is too high for {dtype}: the fit is not "
                          f"finite; use a lower degree{x64}")
    if basis == "none":
        return ValueError(f"the linear fit is not finite in {dtype}: rescale the columns{x64}")
    return ValueError(f"the {basis} basis with n_basis={n_basis} and width={width:.3g} "
                      f"(--n-basis, --width) gives a fit that is not finite in {dtype}: use "
                      f"fewer functions or a larger width{x64}")


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
    x, y = np.delete(X, j, axis=1), X[:, j]
    _check_target(y, columns[j])
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
        if degree > _max_degree(xs, dtype):   # before building the (n, degree + 1) design
            raise _basis_error(basis, degree, n_basis, 1.0)
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
    design = blr_design(x, basis, degree, *scaling)
    if not bool(jnp.all(jnp.isfinite(design))):
        raise _basis_error(basis, degree, n_basis, width)
    fit = bayes.fit_evidence(design, y, max_iter=max_iter, tol=tol, alpha_shape=0.0,
                             alpha_rate=0.0, beta_shape=0.0, beta_rate=0.0)
    if not all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(fit.params)):
        raise _basis_error(basis, degree, n_basis, width)
    params = BLRParams(fit.params, *scaling)
    pred = bayes.predict(fit.params, design)
    beta = fit.params.beta
    metrics = {"alpha": fit.params.alpha, "beta": beta, "noise_sd": 1.0 / jnp.sqrt(beta),
               "gamma": fit.gamma, "log_evidence": fit.log_evidence, "n_iter": fit.n_iter,
               "converged": bool(fit.converged), "n_basis": design.shape[1],
               "rmse": float(np.sqrt(np.mean((np.asarray(pred.mean) - y) ** 2))),
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
            ppca: n_components [1], em [False: closed form], max_iter [1000], tol [1e-6]
            (EM only: given without em they are a ValueError);
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
    _check_finite_fit(model, X, params, metrics)
    leaves = jax.tree.leaves(params)
    info = {"format": FORMAT_VERSION, "model": model, "params_type": type(params).__name__,
            "leaves": [{"shape": list(np.shape(a)), "dtype": str(np.asarray(a).dtype)}
                       for a in leaves],
            "options": to_jsonable(opts), "columns": list(columns),
            "n_samples": int(X.shape[0])}
    return FitOutput(model, params, info, to_jsonable(metrics))
