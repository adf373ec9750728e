"""Count the generated cases of the property-based suites and their outcome classes.

    .venv/bin/python tools/property_counts.py [--json FILE]

Runs ``tests/test_properties.py``, ``tests/test_properties_nn.py`` and
``tests/test_properties_cli.py`` in one pytest process with ``ESPRESSO_PROPERTY_COUNTS`` set:
every generated example of every case runs (a failure is recorded, not raised, so the xfail
cases report XPASS here; that is expected) and ``property_harness`` writes the outcome of each
example. Prints one Markdown table row per module (finite result / ValueError / TypeError /
CLI exit 0 / CLI exit 2 / failure) and the first failure of each failing case.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("tests/test_properties.py", "tests/test_properties_nn.py",
         "tests/test_properties_cli.py")
CLASSES = ("finite", "ValueError", "TypeError", "exit 0", "exit 2", "failure")


def _group(case: str) -> str:
    head = case.split("-")[0]
    return "cli" if head.startswith("cli.") else head.split(".")[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="also write the raw counts here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "counts.json"
        env = dict(os.environ, ESPRESSO_PROPERTY_COUNTS=str(out),
                   PYTHONPATH=str(ROOT / "src"))
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p",
                              "no:cacheprovider", "-q", *FILES], cwd=ROOT, env=env,
                             capture_output=True, text=True)
        wall = time.perf_counter() - t0
        cpu = os.times().children_user + os.times().children_system
        data = json.loads(out.read_text())
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))
    by_group: dict[str, Counter[str]] = {}
    cases: dict[str, set[str]] = {}
    for case, outcome, n in data["counts"]:
        by_group.setdefault(_group(case), Counter())[outcome] += n
        cases.setdefault(_group(case), set()).add(case)
    print("| module | cases | examples | " + " | ".join(CLASSES) + " |")
    print("|---|" + "---:|" * (len(CLASSES) + 2))
    total: Counter[str] = Counter()
    for group, counts in by_group.items():
        total.update(counts)
        print(f"| {group} | {len(cases[group])} | {sum(counts.values())} | "
              + " | ".join(str(counts[c]) for c in CLASSES) + " |")
    print(f"| all | {sum(len(c) for c in cases.values())} | {sum(total.values())} | "
          + " | ".join(str(total[c]) for c in CLASSES) + " |")
    print(f"\n{len(data['failures'])} failing cases; pytest {wall:.0f} s wall, {cpu:.0f} s CPU "
          f"(exit {run.returncode}: XPASS of the xfail cases expected in this mode)")
    for case, text in sorted(data["failures"].items()):
        print(f"- {case}: {text[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
