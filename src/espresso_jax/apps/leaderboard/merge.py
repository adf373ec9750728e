"""Several leaderboard runs as one board.

A nine-set board is rarely one process: the small sets run with NUTS, the large ones without,
a method is re-run after a fix, a set is added on another day. Each run writes its
``leaderboard.json`` (:func:`espresso_jax.apps.leaderboard.report.write_outputs`), which keeps
every per-split score; :func:`merge_runs` pools those scores and summarises them again
(:func:`espresso_jax.apps.leaderboard.runner.summarize_rows`), so a merged board's means and
standard errors are exactly those of one run over the same splits. Command:
``espresso-jax leaderboard-merge RUN [RUN ...] --out DIR``.

Rules:

* The unit is a (data set, method) pair: a pair found in a later run replaces the whole pair
  of an earlier run (a re-run after a fix; the replaced run is recorded under
  ``settings["replaced"]``), never a mix of splits from two runs.
* A failure listed by a run (``settings["failed"]``) is kept unless a later run has the pair.
* Rows are ordered by data set (the order of
  :data:`~espresso_jax.datasets.uci.UCI_NAMES`) and method (``nuts`` first, then the order of
  :data:`~espresso_jax.apps.leaderboard.registry.METHODS`, then any other name).
* The merged result has the shape of a run (``rows``, ``per_split``, ``settings``), with
  ``settings["merged_from"]``: each input's path and settings; it can be merged again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from espresso_jax.apps.leaderboard.registry import METHODS
from espresso_jax.apps.leaderboard.runner import summarize_rows
from espresso_jax.datasets.uci import UCI_NAMES

__all__ = ["load_run", "merge_runs"]

_RUN_KEYS = ("per_split", "settings")


def load_run(path: str | Path) -> dict[str, Any]:
    """The result stored by a leaderboard run: ``path`` is its output folder (holding
    ``leaderboard.json``) or the JSON file itself. ValueError naming ``path`` when there is no
    such file or it is not a leaderboard result."""
    p = Path(path)
    file = p / "leaderboard.json" if p.is_dir() else p
    if not file.is_file():
        raise ValueError(f"run {str(path)!r}: no leaderboard.json there (give a leaderboard "
                         "output folder or its leaderboard.json)")
    try:
        run = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"run {str(path)!r}: {file} is not valid JSON ({err})") from None
    if not isinstance(run, dict) or any(k not in run for k in _RUN_KEYS):
        raise ValueError(f"run {str(path)!r}: {file} is not a leaderboard result (it needs "
                         f"the keys {list(_RUN_KEYS)})")
    return run


def _order(dataset: str, method: str) -> tuple[int, int, str]:
    names = ["nuts", *METHODS]
    set_rank = UCI_NAMES.index(dataset) if dataset in UCI_NAMES else len(UCI_NAMES)
    method_rank = names.index(method) if method in names else len(names)
    return set_rank, method_rank, dataset + "/" + method


def merge_runs(runs: Sequence[dict[str, Any]],
               sources: Sequence[str] | None = None) -> dict[str, Any]:
    """One board from several leaderboard results (see the module docstring for the rules).

    Args:
        runs: results as :func:`~espresso_jax.apps.leaderboard.runner.run_leaderboard`
            returns them (or :func:`load_run` reads them), earliest first.
        sources: a label per run (its path), stored in ``settings["merged_from"]``; default
            ``run 0``, ``run 1``, ...

    Returns:
        ``{"rows", "per_split", "settings"}`` like a run's result.
    """
    if not runs:
        raise ValueError("runs must not be empty")
    labels = [f"run {i}" for i in range(len(runs))] if sources is None else list(sources)
    if len(labels) != len(runs):
        raise ValueError(f"sources has {len(labels)} labels for {len(runs)} runs")
    pairs: dict[tuple[str, str], tuple[str, list[dict[str, Any]]]] = {}
    failed: dict[tuple[str, str], dict[str, Any]] = {}
    replaced = []
    for label, run in zip(labels, runs, strict=True):
        found: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in run["per_split"]:
            found.setdefault((r["dataset"], r["method"]), []).append(r)
        for pair, rows in found.items():
            if pair in pairs:
                replaced.append({"dataset": pair[0], "method": pair[1],
                                 "replaced": pairs[pair][0], "by": label})
            pairs[pair] = (label, rows)
            failed.pop(pair, None)
        for f in run["settings"].get("failed", []):
            failed[(f["dataset"], f["method"])] = {**f, "run": label}
    per_split = [r for pair in sorted(pairs, key=lambda p: _order(*p))
                 for r in sorted(pairs[pair][1], key=lambda r: r["split"])]
    settings = {"merged_from": [{"source": label, "settings": run["settings"]}
                                for label, run in zip(labels, runs, strict=True)],
                "replaced": replaced, "failed": list(failed.values())}
    return {"rows": summarize_rows(per_split), "per_split": per_split, "settings": settings}
