"""Run chosen tests against one mutant of a frozen source tree (issue 12's held-out re-runs).

    python tools/try_mutant.py --tree DIR --results FILE MUTANT_ID tests/test_x.py ...

``DIR`` is a checkout at the commit where ``tools/mutation.py run`` enumerated the mutants
(its ``src/`` is copied to a temporary folder and the mutant applied there, by its recorded
position); ``FILE`` is that run's results JSON (it holds each mutant's position). The tests
are the current directory's, run with ``pytest -x -q`` and the temporary ``src`` first on
``PYTHONPATH``. Prints pytest's last line, then KILLED (tests failed) or SURVIVED.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    p.add_argument("--tree", required=True, help="checkout at the enumeration commit")
    p.add_argument("--results", required=True, help="results JSON of the mutation run")
    p.add_argument("mutant")
    p.add_argument("tests", nargs="+")
    args = p.parse_args()
    sys.path.insert(0, str(Path(args.tree) / "tools"))
    import mutation  # the enumeration commit's operators

    m = json.loads(Path(args.results).read_text())["mutants"][args.mutant]
    with tempfile.TemporaryDirectory(prefix="try_mut_") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(Path(args.tree) / "src", src,
                        ignore=shutil.ignore_patterns("__pycache__"))
        target = src / m["file"][len("src/"):]
        target.write_text(mutation.apply_mutant(target.read_text(), m))
        env = {**os.environ, "PYTHONPATH": str(src)}
        r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                            "-p", "no:xdist", *args.tests], env=env, capture_output=True,
                           text=True, check=False)
        lines = r.stdout.strip().splitlines()
        print(lines[-1] if lines else r.stderr[-500:])
        print("KILLED" if r.returncode != 0 else "SURVIVED")


if __name__ == "__main__":
    main()
