"""Every example script runs from a clean folder using only the public API (the ones with a
``--quick`` option in their short form: the full runs are the experiments themselves)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    quick = ["--quick"] if "--quick" in script.read_text() else []
    proc = subprocess.run([sys.executable, str(script), *quick], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()


def test_there_are_examples():
    assert len(EXAMPLES) >= 2
