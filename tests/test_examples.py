"""Every example script runs from a clean folder using only the public API (the ones with a
``--quick`` option in their short form: the full runs are the experiments themselves)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


# the deep-learning experiments take 30-110 s even with --quick; their functions are tested in
# tests/test_bnn_*.py, so the scripts themselves run with the slow tests
SLOW = {"bnn_mnist.py", "bnn_regression_gap.py", "uci_protocol.py"}


@pytest.mark.parametrize("script", [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW
                                    else p for p in EXAMPLES], ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    quick = ["--quick"] if "--quick" in script.read_text() else []
    proc = subprocess.run([sys.executable, str(script), *quick], cwd=tmp_path,
                          capture_output=True, text=True,
                          timeout=900 if script.name in SLOW else 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()


def test_there_are_examples():
    assert len(EXAMPLES) >= 2
