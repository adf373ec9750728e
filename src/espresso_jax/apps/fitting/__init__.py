"""Fit a model to a user's table (CSV or NPY) and write the result folder: the functions behind
``espresso-jax fit``, in three modules: :mod:`~espresso_jax.apps.fitting.models` (fit a model
to the rows), :mod:`~espresso_jax.apps.fitting.plots` (the figure) and
:mod:`~espresso_jax.apps.fitting.folder` (write and load the folder).

A fit folder holds

* ``params.msgpack``: the fitted parameters NamedTuple (:func:`espresso_jax.io.save_params`),
  with its SHA-256 in ``params.msgpack.sha256`` (checked by :func:`load_fitted`);
* ``params.json``: a sidecar with the model name, the parameter structure, shapes and dtypes,
  the options and the column names, so :func:`load_fitted` needs no template;
* ``summary.json``: data description, options, metrics and how to load the parameters;
* ``plot.png``: clusters with 2-sd ellipses (2-D data; the first two principal axes otherwise),
  the PPCA latent space, or the BLR predictive band (one input column; residuals otherwise).

The folder is assembled in a temporary folder beside the destination (made with the user's
umask) and renamed into place only when complete, so an error never leaves a half-written
result.

Example:
    >>> table = load_table("data.csv")
    >>> out = fit_model(jax.random.key(0), "gmm", table.data, columns=table.columns,
    ...                 n_components=3)
    >>> write_fit("gmm_fit", out, table.data)
    >>> params = load_fitted("gmm_fit")          # a GMMParams
    >>> labels = espresso_jax.mixture.gmm.predict(params, X_new)
"""

from espresso_jax.apps.fitting import folder, models, plots
from espresso_jax.apps.fitting.folder import (
    check_out_dir,
    load_fitted,
    load_info,
    predict,
    run_fit,
    write_fit,
)
from espresso_jax.apps.fitting.models import (
    BLR_BASES,
    FORMAT_VERSION,
    MODELS,
    BLRParams,
    FitOutput,
    fit_model,
)
from espresso_jax.datasets.table import Table, load_table
from espresso_jax.mixture.kmeans import KMeansParams

__all__ = ["folder", "models", "plots", "MODELS", "BLR_BASES", "FORMAT_VERSION", "Table",
           "KMeansParams", "BLRParams", "FitOutput", "load_table", "fit_model", "write_fit",
           "run_fit", "check_out_dir", "load_fitted", "load_info", "predict"]
