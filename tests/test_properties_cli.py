"""Property-based inputs (issue 13 section 6): ``espresso-jax fit MODEL DATA`` in-process.

Generated CSV and NPY tables (12 rows of 2 columns, so each model compiles once) with scale
extremes, NaN/inf cells, rows or columns, degenerate rows, bad shapes and bad text, and bad
option values, run through ``cli.main``. The rule: exit 0 with a ``summary.json`` whose
metrics are all finite numbers (no ``null``), or exit 2 with exactly one stderr line
``espresso-jax: error: ...`` that names the file or the option the case changed, and no
output folder left behind. An exception out of ``main`` or another exit status is a failure.
Outcomes are recorded in ``property_harness.COUNTS`` (``exit 0`` / ``exit 2`` / ``failure``).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from matplotlib.figure import Figure
from property_harness import COUNTS, FAILURES, counting, matrix_variant, profile

from espresso_jax.apps.cli import main
from espresso_jax.apps.fitting import folder

_rng = np.random.default_rng(0)
DATA = np.concatenate([_rng.normal(0.0, 0.5, (6, 2)), _rng.normal(3.0, 0.5, (6, 2))]
                      ).astype(np.float32)
MODELS = ("gmm", "kmeans", "ppca", "blr")
_SERIAL = itertools.count()


def _write(folder: Path, table: Any, suffix: str) -> Path:
    path = folder / f"table{next(_SERIAL)}{suffix}"
    if suffix == ".npy":
        np.save(path, np.asarray(table))
    else:
        rows = np.atleast_2d(np.asarray(table))
        path.write_text("a,b\n" + "".join(",".join(str(v) for v in row) + "\n"
                                          for row in rows) if rows.size else "a,b\n")
    return path


@st.composite
def text_variant(draw: Any, folder: Path) -> Path:
    """A CSV file whose text is bad: ragged, a word in a number's place, an empty cell, no
    rows, an empty file, a missing file, an unknown extension."""
    which = draw(st.sampled_from(("ragged", "word", "empty cell", "header only", "empty file",
                                  "missing", "extension")))
    note(f"text: {which}")
    path = folder / f"text{next(_SERIAL)}{'.txt' if which == 'extension' else '.csv'}"
    good = "".join(f"{a},{b}\n" for a, b in DATA)
    text = {"ragged": "a,b\n" + good + "1.0\n", "word": "a,b\n" + good + "1.0,abc\n",
            "empty cell": "a,b\n" + good + "1.0,\n", "header only": "a,b\n",
            "empty file": "", "extension": "a,b\n" + good}.get(which)
    if text is not None:
        path.write_text(text)
    return path


OPTIONS = {"gmm": ("--n-components", "--max-iter", "--tol", "--seed", "--n-init"),
           "kmeans": ("--n-clusters", "--max-iter", "--seed", "--n-init"),
           "ppca": ("--n-components", "--max-iter", "--tol", "--seed"),
           "blr": ("--degree", "--max-iter", "--tol", "--target", "--seed")}
VALUES = ("0", "-1", "100", "2.5", "nan", "18446744073709551616", "abc")


def _finite_json(value: Any, where: str = "metrics") -> None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        raise AssertionError(f"{where} is {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            _finite_json(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite_json(v, f"{where}[{i}]")


def run_cli(case: str, argv: list[str], out: Path, names: tuple[str, ...]) -> str:
    """Run ``main(argv)`` and apply the rule; ``names``: what an error must name (any one)."""
    err, printed = io.StringIO(), io.StringIO()
    problem = None
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(printed):
            rc = main(argv)
    except SystemExit as exc:   # argparse's own exit
        rc = exc.code
    except Exception as exc:   # an escaped exception is the failure this suite looks for
        rc, problem = None, f"{type(exc).__name__} escaped main: {str(exc)[:200]}"
    lines = err.getvalue().splitlines()
    if problem is None and rc == 0:
        try:
            _finite_json(json.loads((out / "summary.json").read_text())["metrics"])
        except Exception as exc:
            problem = f"exit 0 but {type(exc).__name__}: {exc}"
    elif problem is None and rc == 2:
        if len(lines) != 1 or not lines[0].startswith("espresso-jax: error: "):
            problem = f"exit 2 with {len(lines)} stderr lines: {lines[:3]}"
        elif not any(n in lines[0] for n in names):
            problem = f"the error names none of {names}: {lines[0]}"
        elif out.exists():
            problem = f"exit 2 left {out} behind"
    elif problem is None:
        problem = f"exit status {rc}; stderr: {lines[-3:]}"
    outcome = "failure" if problem else f"exit {rc}"
    if problem:
        FAILURES.setdefault(case, problem)
    COUNTS[case, outcome] += 1
    if problem and not counting():
        raise AssertionError(f"{case}: {problem}")
    return outcome


CASES = [(m, k) for m in MODELS
         for k in ("scale", "nonfinite", "degenerate", "shape", "text", "options")]
EXAMPLES = {"scale": 2, "nonfinite": 2, "degenerate": 2, "shape": 2, "text": 3, "options": 5}



@pytest.mark.parametrize("model,kind", CASES, ids=["-".join(c) for c in CASES])
def test_cli_property(model, kind, tmp_path, monkeypatch):
    # the plot is not under test here (tests/test_cli*.py draw it): an empty figure saves
    # rendering it for every exit-0 case
    monkeypatch.setattr(folder.plots, "plot_fit", lambda fitted, X: Figure(figsize=(1, 1)))

    @profile(EXAMPLES[kind])
    @given(data=st.data())
    def run(data: Any) -> None:
        out = tmp_path / f"out{next(_SERIAL)}"
        options: list[str] = []
        suffix = data.draw(st.sampled_from((".csv", ".npy")))
        if kind == "text":
            path = data.draw(text_variant(tmp_path))
        elif kind == "options":
            flag, value = data.draw(st.sampled_from(OPTIONS[model])), data.draw(
                st.sampled_from(VALUES))
            note(f"options: {flag} {value}")
            options = [flag, value]
            path = _write(tmp_path, DATA, suffix)
        elif kind == "shape":
            table = data.draw(matrix_variant("shape", DATA))
            path = _write(tmp_path, table, ".npy")   # a CSV cannot hold 3-D or 0-column data
        else:
            path = _write(tmp_path, data.draw(matrix_variant(kind, DATA)), suffix)
        # an option's error names the flag (or its Python name), any other the file
        names = ((options[0], options[0][2:].replace("-", "_")) if options else (path.name,))
        run_cli(f"cli.{model}-{kind}", ["fit", model, str(path), "--out", str(out), *options],
                out, names)

    run()
