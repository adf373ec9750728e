"""The ``espresso-jax`` command: a thin layer over importable functions.

``espresso-jax tour [--quick] [--out DIR] [--seed N]`` runs every model family that exists on
the bundled data and writes a report folder (``index.html`` with figures, ``metrics.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="espresso-jax",
        description="Bayesian machine learning as composable JAX functions.")
    sub = parser.add_subparsers(dest="command", required=True)
    tour = sub.add_parser(
        "tour", help="run every model family on bundled data and write a report folder")
    tour.add_argument("--quick", action="store_true",
                      help="small settings, same code paths (under a minute on 2 CPU cores)")
    tour.add_argument("--out", default="report", help="report folder (default: report)")
    tour.add_argument("--seed", type=int, default=0, help="PRNG seed (default: 0)")
    return parser


def _print_summary(report_dir: Path) -> None:
    """Print the scalar numbers of every report section (lists stay in metrics.json)."""
    metrics = json.loads((report_dir / "metrics.json").read_text())
    for section, values in metrics.items():
        scalars = {k: v for k, v in values.items() if isinstance(v, (int, float))}
        if not scalars:
            continue
        print(f"\n{section}")
        for name, value in scalars.items():
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            print(f"  {name:<34} {text}")


def main(argv: list[str] | None = None) -> int:
    """Entry point. Returns the exit status; errors are one line on stderr, no traceback."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "tour":
            from espresso_jax.tour import run_tour

            start = time.perf_counter()
            out = run_tour(args.seed, args.out, quick=args.quick)
            _print_summary(out)
            print(f"\nreport written to {out}/index.html "
                  f"({time.perf_counter() - start:.1f} s)")
    except (ValueError, TypeError, FileNotFoundError, OSError) as err:
        print(f"espresso-jax: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("espresso-jax: interrupted; nothing written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
