"""The NUTS BNN posterior predictive on one UCI split, cached on disk.

:func:`nuts_predictive` samples the one-hidden-layer BNN of
:mod:`espresso_jax.fully_bayes.bnn` (:func:`~espresso_jax.fully_bayes.bnn.fit_nuts` on the
standardised training split, :func:`~espresso_jax.fully_bayes.bnn.predict` on its test inputs)
and stores the per-draw test means and noise variances (standardised units) as
``<set>_split<i>_<hash>.npz`` next to a JSON file of the settings, ``hash`` being a digest of
the settings. A rerun with the same set, split and settings loads the file instead of
sampling again; any other setting gets a new file.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from espresso_jax.datasets.uci import UCIDataset, standardized_split
from espresso_jax.fully_bayes import bnn
from espresso_jax.validation import check_int

__all__ = ["NUTSSettings", "NUTSPredictive", "nuts_predictive"]


class NUTSSettings(NamedTuple):
    """NUTS and model settings of the reference (see :func:`espresso_jax.fully_bayes.bnn.fit_nuts`;
    ``n_hidden=None``: the data set's protocol width)."""

    num_warmup: int = 500
    num_samples: int = 300
    num_chains: int = 1
    max_tree_depth: int = 8
    n_hidden: int | None = None
    activation: str = "tanh"
    weight_prior: str = "gamma"
    seed: int = 0


class NUTSPredictive(NamedTuple):
    """``means (S, n)`` per-draw test means, ``variances (S, n)`` noise variances (standardised
    units), ``settings`` (with ``wall_time_s`` of the sampling and ``num_divergent``) and
    ``cached`` (loaded from disk)."""

    means: np.ndarray
    variances: np.ndarray
    settings: dict[str, Any]
    cached: bool


def nuts_predictive(ds: UCIDataset, split: int, settings: NUTSSettings, cache_dir: str | Path
                    ) -> NUTSPredictive:
    """The NUTS posterior predictive on ``ds``'s split ``split`` (cached, see the module).

    Args:
        ds: a UCI data set. split: split index. settings: :class:`NUTSSettings`.
        cache_dir: folder of the cache files (created when missing).
    """
    if not isinstance(settings, NUTSSettings):
        raise TypeError(f"settings must be NUTSSettings, got {type(settings).__name__}")
    split = check_int(split, "split", min_value=0, max_value=ds.n_splits - 1)
    n_hidden = ds.n_hidden if settings.n_hidden is None else settings.n_hidden
    spec = {"dataset": ds.name, "split": split, **settings._asdict(), "n_hidden": n_hidden,
            "dtype": str(jax.numpy.zeros(()).dtype)}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    cache_dir = Path(cache_dir)
    stem = cache_dir / f"{ds.name}_split{split}_{digest}"
    npz, meta = stem.with_suffix(".npz"), stem.with_suffix(".json")
    if npz.exists() and meta.exists():
        saved = json.loads(meta.read_text())
        if {k: saved.get(k) for k in spec} == spec:
            with np.load(npz) as f:
                return NUTSPredictive(f["means"], f["variances"], saved, True)
    sp = standardized_split(ds, split)
    start = time.perf_counter()
    key = jax.random.fold_in(jax.random.key(settings.seed), split)
    post = bnn.fit_nuts(key, sp.X_train, sp.y_train,
                        n_hidden=n_hidden, activation=settings.activation,
                        weight_prior=settings.weight_prior, num_warmup=settings.num_warmup,
                        num_samples=settings.num_samples, num_chains=settings.num_chains,
                        max_tree_depth=settings.max_tree_depth)
    means, variances = (np.asarray(a) for a in bnn.predict(post, sp.X_test))
    saved = {**spec, "wall_time_s": time.perf_counter() - start,
             "num_divergent": int(post.num_divergent)}
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(npz, means=means, variances=variances)
    meta.write_text(json.dumps(saved, indent=2))
    return NUTSPredictive(means, variances, saved, False)
