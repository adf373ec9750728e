"""Write a fit folder atomically and load it back without a template (see
:mod:`espresso_jax.apps.fitting`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from espresso_jax.apps.fitting import plots
from espresso_jax.apps.fitting.models import (
    FORMAT_VERSION,
    MODELS,
    BLRParams,
    FitOutput,
    blr_design,
    fit_model,
)
from espresso_jax.apps.report import make_staging_dir, to_jsonable
from espresso_jax.datasets.table import load_table
from espresso_jax.io import load_params, save_params
from espresso_jax.linear import bayes
from espresso_jax.mixture import gmm, kmeans, ppca, vbgmm
from espresso_jax.mixture.kmeans import KMeansParams
from espresso_jax.mixture.vb_terms import VBGMMParams

__all__ = ["check_out_dir", "write_fit", "run_fit", "load_info", "load_fitted", "predict"]

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
    """Write ``params.msgpack`` (+ ``params.msgpack.sha256``), ``params.json``, ``summary.json``
    and ``plot.png``.

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
    staging = make_staging_dir(parent, f".{out_dir.name}-")
    try:
        save_params(staging / "params.msgpack", fitted.params)
        (staging / "params.json").write_text(json.dumps(fitted.info, indent=2))
        fig = plots.plot_fit(fitted, X)
        fig.savefig(staging / "plot.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        load = (f"from espresso_jax.apps.fitting import load_fitted; "
                f"params = load_fitted({str(out_dir)!r})  # {fitted.info['params_type']}")
        summary = {"model": fitted.model, "data": data_name, "n_samples": X.shape[0],
                   "columns": fitted.info["columns"], "options": fitted.info["options"],
                   "metrics": fitted.metrics,
                   "files": {"params": "params.msgpack",
                             "params_checksum": "params.msgpack.sha256",
                             "params_info": "params.json", "plot": "plot.png"},
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

    A ``ValueError`` of the fit (bad options, a result that is not finite) is raised again
    with ``"<model> fit of <data>: "`` in front, so the message names the file.

    Returns:
        The summary written to ``summary.json``.
    """
    check_out_dir(out_dir)
    table = load_table(data)
    try:
        fitted = fit_model(key, model, table.data, columns=table.columns, **options)
    except ValueError as err:   # name the model and the file the user gave
        raise ValueError(f"{model} fit of {data}: {err}") from err
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

    Raises:
        ValueError: ``params.msgpack`` does not match ``params.msgpack.sha256`` (a folder from
            before checksums loads with a ``UserWarning``; see :mod:`espresso_jax.io`).
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
                         blr_design(X, opts["basis"], opts["degree"], *params[1:]))
    return {"mean": pred.mean, "var": pred.var}
