"""The leaderboard run: every (method, data set) through the UCI protocol
(:func:`espresso_jax.apps.uci.protocol.run_protocol`: splits x grid vmapped, one compiled
training call per method and set), the refit networks' test predictive
(:func:`espresso_jax.apps.uci.predictive.refit_predictive`) scored per split
(:mod:`espresso_jax.apps.leaderboard.scores`) and, on the small sets, compared with the NUTS
BNN predictive of the same split (:mod:`espresso_jax.apps.leaderboard.nuts_cache`), which also
gets its own row (method ``nuts``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import optax

from espresso_jax.apps.leaderboard.nuts_cache import NUTSSettings, nuts_predictive
from espresso_jax.apps.leaderboard.registry import SMALL_SETS, get_method
from espresso_jax.apps.leaderboard.scores import agreement_scores, split_scores
from espresso_jax.apps.uci.predictive import refit_predictive
from espresso_jax.apps.uci.protocol import run_protocol
from espresso_jax.apps.uci.splits import mean_se
from espresso_jax.datasets.uci import UCI_NAMES, load_uci, standardized_split
from espresso_jax.validation import check_int

__all__ = ["run_leaderboard", "summarize_rows", "MAX_COMPONENTS", "DEFAULT_NUTS"]

MAX_COMPONENTS = 256
"""Mixture components (MC samples / NUTS draws, the first ones: they are i.i.d. or a chain's
order) used in the W1/TV quadrature, which costs ``n_test x components x grid`` per split."""


DEFAULT_NUTS = NUTSSettings()


def summarize_rows(per_split: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (set, method): mean and standard error over splits of every score."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in per_split:
        groups.setdefault((r["dataset"], r["method"]), []).append(r)
    rows = []
    for (ds_name, method), rs in groups.items():
        row: dict[str, Any] = {"dataset": ds_name, "method": method, "n_splits": len(rs)}
        for k in rs[0]["scores"]:
            vals = [r["scores"][k] for r in rs if k in r["scores"]]
            row[k], row[k + "_se"] = mean_se(vals)
        row["wall_time_s"] = float(rs[0]["wall_time_s"])
        rows.append(row)
    return rows


def _resumable(resume: dict[str, Any] | None, settings: dict[str, Any]
               ) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The per-split rows of an earlier result by (set, method), NUTS's left out, after
    checking that it was run with ``settings`` (ValueError naming the first difference)."""
    if resume is None:
        return {}
    earlier = resume.get("settings", {})
    for name, value in settings.items():
        if earlier.get(name) != value:
            raise ValueError(f"resume: the earlier board was run with {name}="
                             f"{earlier.get(name)!r}, this one has {name}={value!r}; run it "
                             "with the same settings or into another folder")
    kept: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in resume["per_split"]:
        if r["method"] != "nuts":
            kept.setdefault((r["dataset"], r["method"]), []).append(r)
    return kept


def run_leaderboard(seed: int = 0, *, sets: Sequence[str] = SMALL_SETS,
                    methods: Sequence[str] = ("deterministic", "mc_dropout", "bbb"),
                    n_splits: int | None = None, n_epochs: int | None = None,
                    n_samples: int = 1000, nuts: NUTSSettings | None = DEFAULT_NUTS,
                    nuts_sets: Sequence[str] = SMALL_SETS, cache_dir: str | Path = "nuts_cache",
                    data_dir: str | Path | None = None,
                    log: Callable[[str], None] | None = None,
                    checkpoint: Callable[[dict[str, Any]], None] | None = None,
                    resume: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the leaderboard (see the module docstring).

    Args:
        seed: PRNG seed (the protocol's key for every method and set).
        sets: UCI data sets. methods: names in
            :data:`~espresso_jax.apps.leaderboard.registry.METHODS`.
        n_splits: first splits of each set (default all). n_epochs: training epochs (default
            the protocol's ``10 x`` the folder's epochs).
        n_samples: MC samples of each method's test predictive.
        nuts: NUTS settings, or None to skip the NUTS comparison.
        nuts_sets: the sets where NUTS runs (the small ones).
        cache_dir: NUTS predictive cache folder. data_dir: folder holding ``uci/``.
        log: called with one line per finished (method, set).
        checkpoint: called after every finished (or failed) (method, set) with the result so
            far (the return value's shape, ``settings["complete"]`` False), so that a long
            board interrupted later keeps what it finished (the command writes its outputs
            there; the pairs still missing can be run alone and merged,
            :mod:`~espresso_jax.apps.leaderboard.merge`).
        resume: an earlier (possibly checkpointed) result of this board: its (set, method)
            pairs that this call would run are kept as they are and not run again (NUTS
            rows are recomputed, from the cache). Its seed, splits, epochs, samples and NUTS
            settings must be this call's (ValueError naming the first that differs), so the
            kept rows are the ones this call would compute.

    Returns:
        ``{"rows": summary rows, "per_split": per-split scores, "settings": ...}``
        (``settings["complete"]`` True); a
        method whose protocol run diverges (``FloatingPointError``) is logged, listed in
        ``settings["failed"]`` with its data set and message, and left out of the rows, and
        the board goes on with the next method.
    """
    sets = list(sets)
    methods = list(methods)
    for name in sets:
        if name not in UCI_NAMES:
            raise ValueError(f"sets: {name!r} is not one of {UCI_NAMES}")
    if not sets or not methods:
        raise ValueError("sets and methods must not be empty")
    uci_methods = [get_method(m) for m in methods]
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    optimizer = optax.adam(1e-3)   # one object: the refit reuses the protocol's compiled call
    key = jax.random.key(check_int(seed, "seed", min_value=0))
    per_split: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    kept = _resumable(resume, {"seed": seed, "n_splits": n_splits, "n_epochs": n_epochs,
                               "n_samples": n_samples,
                               "nuts": None if nuts is None else nuts._asdict()})

    def result(complete: bool = False) -> dict[str, Any]:
        settings = {"complete": complete, "seed": seed, "sets": sets, "methods": methods,
                    "n_splits": n_splits, "n_epochs": n_epochs, "n_samples": n_samples,
                    "nuts": None if nuts is None else nuts._asdict(),
                    "nuts_sets": list(nuts_sets), "max_components": MAX_COMPONENTS,
                    "jax": jax.__version__, "failed": list(failed)}
        return {"rows": summarize_rows(per_split), "per_split": list(per_split),
                "settings": settings}

    for name in sets:
        ds = load_uci(name, data_dir)
        S = ds.n_splits if n_splits is None else min(check_int(n_splits, "n_splits",
                                                              min_value=1), ds.n_splits)
        ref = None
        if nuts is not None and name in nuts_sets:
            ref = [nuts_predictive(ds, i, nuts, cache_dir) for i in range(S)]
            for i, r in enumerate(ref):
                sp = standardized_split(ds, i)
                per_split.append({"dataset": name, "method": "nuts", "split": i,
                                  "wall_time_s": sum(q.settings["wall_time_s"] for q in ref),
                                  "scores": split_scores(sp.y_test, r.means, r.variances,
                                                         float(sp.y_std))})
            if log:
                log(f"{name}: nuts x {S} splits "
                    f"({sum(q.settings['wall_time_s'] for q in ref):.0f} s when sampled)")
        for label, method in zip(methods, uci_methods, strict=True):
            if (name, label) in kept:
                per_split.extend(kept[(name, label)])
                if log:
                    log(f"{name}: {label} kept from the resumed run")
                continue
            start = time.perf_counter()
            try:
                res = run_protocol(key, ds, method, optimizer=optimizer, n_splits=S,
                                   n_epochs=n_epochs, n_samples=n_samples, progress=False)
            except FloatingPointError as err:   # one diverged method does not stop the board
                failed.append({"dataset": name, "method": label, "error": str(err)})
                if log:
                    log(f"{name}: {label} failed, left out of the table: {err}")
                if checkpoint:
                    checkpoint(result())
                continue
            pred = refit_predictive(key, ds, method, res, optimizer=optimizer)
            wall = time.perf_counter() - start
            for i in range(S):
                scores = split_scores(pred.y_test[i], pred.means[i], pred.variances[i],
                                      float(pred.y_std[i]))
                if ref is not None:
                    scores.update(agreement_scores(
                        pred.means[i, :MAX_COMPONENTS], pred.variances[i, :MAX_COMPONENTS],
                        ref[i].means[:MAX_COMPONENTS], ref[i].variances[:MAX_COMPONENTS],
                        float(pred.y_std[i])))
                per_split.append({"dataset": name, "method": label, "split": i,
                                  "wall_time_s": wall, "scores": scores,
                                  "protocol_rmse": float(res.rmse[i]),
                                  "protocol_ll": float(res.log_likelihood[i])})
            if log:
                log(f"{name}: {label} x {S} splits in {wall:.0f} s "
                    f"(RMSE {res.rmse_mean:.3f}, LL {res.ll_mean:.3f})")
            if checkpoint:
                checkpoint(result())
    return result(complete=True)

