"""Every example script runs from a clean folder using only the public API (the ones with a
``--quick`` option in their short form: the full runs are the experiments themselves).

The fast scripts run in one child process, one after another, each in its own empty folder and
as ``__main__`` (``runpy``), so the ~4 s of CPU importing jax, flax and numpyro is paid once
instead of once per script (two groups in two children cost one import more: ~4 s of CPU, for a
wall-time overlap the suite's other tests give anyway). A script cannot leave state behind for
the next one unnoticed: the child compares every ``jax.config`` value before and after each
script and reports a change as a failure, closes all matplotlib figures, and restores
``sys.argv``, ``sys.path`` and the working folder. None of the examples sets global JAX config
(no x64).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


# The deep-learning experiments take 16-110 s of CPU even with --quick (gan.py 22 s, vae_mnist.py
# 24 s on the 2-core Xeon); their functions are tested in tests/test_bnn_*.py, test_nn_*.py and
# test_published_*.py, so the scripts themselves run with the slow tests (CI runs both suites).
SLOW = {"bnn_mnist.py", "bnn_regression_gap.py", "uci_protocol.py", "gan.py", "vae_mnist.py",
        "ood_mnist.py"}

# One group: one child process (see the module docstring).
GROUPS = [("pca_ppca.py", "conjugate_updates.py", "mixtures.py",
           "bayesian_linear_regression.py", "conformal_uci.py")]


def _check_conformal_uci(stdout: str) -> None:
    """examples/conformal_uci.py (UCI yacht, or its synthetic fallback) prints the four
    intervals' coverage and width (its numbers are checked by the coverage tests of
    tests/test_conformal.py and tests/test_conformal_uci.py, not here)."""
    lines = [line for line in stdout.splitlines() if " mean width " in line]
    assert len(lines) == 4, stdout
    assert sum("split conformal" in line or "CQR" in line for line in lines) == 3


# What a script must print, beyond something (checked for every script).
OUTPUT_CHECKS = {"conformal_uci.py": _check_conformal_uci}

_RUNNER = r"""
import contextlib, io, json, os, runpy, sys, traceback

import jax
import matplotlib.pyplot as plt


def config():
    return {name: repr(value) for name, value in jax.config.values.items()}


results, root, argv, path = {}, os.getcwd(), list(sys.argv), list(sys.path)
for script in argv[1:]:
    name = os.path.basename(script)
    folder = os.path.join(root, name[:-3])
    os.mkdir(folder)
    os.chdir(folder)
    with open(script) as f:
        quick = ["--quick"] if "--quick" in f.read() else []
    sys.argv = [script, *quick]
    sys.path[:] = [os.path.dirname(script), *path[1:]]    # as `python script.py` sets it
    before, out, error = config(), io.StringIO(), None
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            error = f"SystemExit({exc.code!r})"
    except BaseException:
        error = traceback.format_exc()
    finally:
        plt.close("all")
        sys.argv, sys.path[:] = argv, path
        os.chdir(root)
    after = config()
    changed = {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v}
    if changed and error is None:
        error = f"changed global JAX config {changed}: run it in a process of its own"
    results[name] = {"stdout": out.getvalue(), "error": error}
sys.stdout.write("\nRESULTS " + json.dumps(results) + "\n")
"""


def test_groups_cover_the_fast_examples():
    names = [name for group in GROUPS for name in group]
    assert len(names) == len(set(names))
    assert set(names) == {p.name for p in EXAMPLES} - SLOW


@pytest.mark.parametrize("group", GROUPS, ids="+".join)
def test_examples_run(group, tmp_path):
    scripts = [str(Path(__file__).parent.parent / "examples" / name) for name in group]
    proc = subprocess.run([sys.executable, "-c", _RUNNER, *scripts], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.rsplit("\nRESULTS ", 1)[1])
    assert list(results) == list(group)
    for name, result in results.items():
        assert result["error"] is None, (name, result["error"][-3000:], proc.stderr[-3000:])
        assert result["stdout"].strip(), name
        OUTPUT_CHECKS.get(name, lambda stdout: None)(result["stdout"])


@pytest.mark.slow
@pytest.mark.parametrize("script", [p for p in EXAMPLES if p.name in SLOW],
                         ids=lambda p: p.name)
def test_slow_example_runs(script, tmp_path):
    quick = ["--quick"] if "--quick" in script.read_text() else []
    proc = subprocess.run([sys.executable, str(script), *quick], cwd=tmp_path,
                          capture_output=True, text=True,
                          timeout=900 if script.name in SLOW else 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()


def test_there_are_examples():
    assert len(EXAMPLES) >= 2
