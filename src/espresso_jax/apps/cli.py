"""The ``espresso-jax`` command: a thin layer over importable functions.

``espresso-jax tour [--quick] [--out DIR] [--seed N]`` runs every model family that exists on
the bundled data and writes a report folder (``index.html`` with figures, ``metrics.json``).

``espresso-jax fit MODEL DATA [--out DIR] [options]`` fits ``gmm``, ``vbgmm``, ``kmeans``,
``ppca`` or ``blr`` to a CSV or NPY table and writes ``params.msgpack`` (+ ``params.json``),
``summary.json`` and ``plot.png`` (:mod:`espresso_jax.apps.fitting`); ``espresso-jax fit MODEL -h``
lists the model's options.

``espresso-jax bench [--only NAME ...] [--quick]`` runs the benchmark scripts of a source
checkout one at a time and prints their ratio table (:mod:`espresso_jax.apps.bench`).

``espresso-jax leaderboard [--sets ...] [--methods ...] [--splits N] [--quick]`` runs the UCI
uncertainty leaderboard, scored against the NUTS BNN predictive on the small sets, and writes
``leaderboard.{md,json,png}`` (:mod:`espresso_jax.apps.leaderboard`).

``espresso-jax leaderboard-merge RUN [RUN ...] [--out DIR]`` pools the per-split scores of
several leaderboard runs (their output folders or ``leaderboard.json`` files, earliest first)
into one board with the same three outputs (:mod:`espresso_jax.apps.leaderboard.merge`).

Errors are one line on stderr (``espresso-jax: error: ...``), exit status 2, no traceback, and
nothing written (the leaderboard writes its outputs after every finished method and set, so an
interrupted or failing board keeps those); an unexpected exception (a bug) is reported the
same way, and ``ESPRESSO_JAX_TRACEBACK=1`` shows its traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

_PROG = "espresso-jax"


SEED_MAX = 2**32 - 1
"""Largest ``--seed``: a 32-bit seed gives the same key with and without ``--x64`` (JAX keeps
only the low 32 bits of a larger seed in float32 mode)."""


def _seed(text: str) -> int:
    """argparse type of ``--seed``: an integer in ``0..SEED_MAX``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..{SEED_MAX}, got "
                                         f"{text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..{SEED_MAX} (32 bits), got "
                                         f"{value}")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit status 2 (argparse prints the usage too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{_PROG}: error: {message} (see {self.prog} --help)\n")


def _add_fit_parsers(fit: argparse.ArgumentParser) -> None:
    models = fit.add_subparsers(dest="model", required=True, metavar="MODEL",
                                parser_class=_Parser)

    def model(name: str, text: str) -> argparse.ArgumentParser:
        p = models.add_parser(name, help=text, description=text)
        p.add_argument("data", metavar="DATA",
                       help=".csv (header optional) or .npy file, one row per sample")
        p.add_argument("--out", default=None,
                       help=f"output folder (default: <DATA stem>_{name})")
        p.add_argument("--seed", type=_seed, default=0,
                       help=f"PRNG seed in 0..{SEED_MAX} (default: 0)")
        p.add_argument("--x64", action="store_true", help="fit in float64 (default float32)")
        return p

    def opt(p, flag, type_, default, text, **kw):
        shown = "" if default is None else f" (default: {default})"
        p.add_argument(flag, type=type_, default=default, help=text + shown, **kw)

    p = model("gmm", "Gaussian mixture by EM (maximum likelihood)")
    opt(p, "--n-components", int, 2, "number of components K")
    opt(p, "--covariance-type", str, "full", "covariance type",
        choices=("full", "tied", "diag", "spherical"))
    opt(p, "--n-init", int, 1, "restarts (vmapped), the best log-likelihood is kept")
    opt(p, "--max-iter", int, 100, "maximum EM iterations")
    opt(p, "--tol", float, 1e-3, "stop when the mean log-likelihood changes by less")
    opt(p, "--reg-covar", float, 1e-6, "added to the covariance diagonals")

    p = model("vbgmm", "variational Bayesian Gaussian mixture (unused components are pruned)")
    opt(p, "--n-components", int, 5, "number of components (upper bound)")
    opt(p, "--weight-prior", str, "dirichlet_process", "prior on the mixing weights",
        choices=("dirichlet", "dirichlet_process"))
    opt(p, "--weight-concentration", float, None, "concentration of the weight prior "
        "(default: 1/K)")
    opt(p, "--covariance-type", str, "full", "covariance type",
        choices=("full", "tied", "diag", "spherical"))
    opt(p, "--n-init", int, 1, "restarts (vmapped), the best lower bound is kept")
    opt(p, "--max-iter", int, 100, "maximum variational EM iterations")
    opt(p, "--tol", float, 1e-3, "stop when the lower bound changes by less")

    p = model("kmeans", "k-means clustering (Lloyd, k-means++ seeding)")
    opt(p, "--n-clusters", int, 2, "number of clusters")
    opt(p, "--n-init", int, 1, "seeded runs (vmapped), the smallest inertia is kept")
    opt(p, "--max-iter", int, 300, "maximum Lloyd iterations")

    p = model("ppca", "probabilistic PCA (closed form, or EM with --em)")
    opt(p, "--n-components", int, 1, "latent dimension M")
    p.add_argument("--em", action="store_true", help="fit by EM instead of the closed form")
    opt(p, "--max-iter", int, None, "maximum EM iterations (only with --em; default: 1000)")
    opt(p, "--tol", float, None, "EM tolerance on the mean log-likelihood (only with --em; "
        "default: 1e-6)")

    p = model("blr", "Bayesian linear regression, alpha and beta by evidence maximisation")
    opt(p, "--target", str, "-1", "target column: index (negative from the end) or name")
    opt(p, "--basis", str, "polynomial", "basis of the (standardised) inputs; none: linear",
        choices=("polynomial", "gaussian", "sigmoid", "none"))
    opt(p, "--degree", int, None, "polynomial degree (default: 3)")
    opt(p, "--n-basis", int, None, "number of gaussian/sigmoid functions (default: 9)")
    opt(p, "--width", float, None, "gaussian/sigmoid width in standard deviations "
        "(default: the spacing of the centres)")
    opt(p, "--max-iter", int, 300, "maximum evidence re-estimation steps")
    opt(p, "--tol", float, 1e-6, "relative tolerance on alpha and beta")


_FIT_COMMON = ("command", "model", "data", "out", "seed", "x64")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=_PROG,
        description="Bayesian machine learning as composable JAX functions.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    tour = sub.add_parser(
        "tour", help="run every model family on bundled data and write a report folder")
    tour.add_argument("--quick", action="store_true",
                      help="small settings, same code paths (under a minute on 2 CPU cores)")
    tour.add_argument("--out", default="report", help="report folder (default: report)")
    tour.add_argument("--seed", type=_seed, default=0,
                      help=f"PRNG seed in 0..{SEED_MAX} (default: 0)")
    fit = sub.add_parser(
        "fit", help="fit a model to your CSV/NPY table and save params, summary and plot",
        description="Fit a model to a CSV or NPY table; `espresso-jax fit MODEL -h` lists "
                    "the model's options.")
    _add_fit_parsers(fit)
    bench = sub.add_parser(
        "bench", help="run the benchmarks (one at a time) and print the ratio table")
    bench.add_argument("--only", nargs="+", action="extend", metavar="NAME", default=None,
                       help="run only these benchmarks (e.g. gmm evidence)")
    bench.add_argument("--quick", action="store_true",
                       help="pass --quick to the scripts (small sizes)")
    bench.add_argument("--bench-dir", default=None,
                       help="folder of bench_*.py scripts (default: benchmarks/ of the "
                            "source checkout)")
    bench.add_argument("--timeout", type=float, default=None,
                       help="seconds per benchmark before it is killed (default: none)")
    bench.add_argument("--verbose", action="store_true",
                       help="show the scripts' own output")
    bench.add_argument("--json", default=None, metavar="FILE",
                       help="also write the collected rows to FILE (JSON)")
    _add_leaderboard_parser(sub)
    return parser


def _add_leaderboard_parser(sub) -> None:
    lb = sub.add_parser("leaderboard", help="UCI uncertainty leaderboard scored against NUTS "
                        "(Markdown + JSON + figure)")
    lb.add_argument("--sets", nargs="+", default=None, metavar="SET",
                    help="UCI data sets (default: the five small ones)")
    lb.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                    help="methods (default: every one in apps/leaderboard/registry.py)")
    lb.add_argument("--splits", type=int, default=None, help="first N splits (default all)")
    lb.add_argument("--epochs", type=int, default=None,
                    help="training epochs (default: the protocol's 10x the folder's)")
    lb.add_argument("--samples", type=int, default=1000, help="MC samples of the predictive")
    lb.add_argument("--no-nuts", action="store_true", help="skip the NUTS comparison")
    lb.add_argument("--nuts-warmup", type=int, default=500)
    lb.add_argument("--nuts-samples", type=int, default=300)
    lb.add_argument("--nuts-chains", type=int, default=1)
    lb.add_argument("--nuts-depth", type=int, default=8, help="NUTS max tree depth")
    lb.add_argument("--cache", default="nuts_cache", help="NUTS predictive cache folder")
    lb.add_argument("--quick", action="store_true", help="yacht, 2 splits, 5 epochs, 50 "
                    "samples, a tiny NUTS run: same code paths, under a minute")
    lb.add_argument("--out", default="leaderboard", help="output folder")
    lb.add_argument("--seed", type=_seed, default=0, help="PRNG seed")
    lb.add_argument("--resume", action="store_true",
                    help="keep the (set, method) pairs already in OUT/leaderboard.json (an "
                         "interrupted run's checkpoint, same settings) and run only the rest")
    merge = sub.add_parser("leaderboard-merge", help="pool several leaderboard runs into one "
                           "board (Markdown + JSON + figure)")
    merge.add_argument("runs", nargs="+", metavar="RUN",
                       help="leaderboard output folders or their leaderboard.json, earliest "
                            "first (a later run's (data set, method) replaces an earlier one's)")
    merge.add_argument("--out", default="leaderboard", help="output folder")


def _write_partial(partial: dict, args: argparse.Namespace) -> None:
    """Write the board so far (after every finished method and set) and remember where, so an
    interrupted command can say what it kept."""
    from espresso_jax.apps.leaderboard.report import write_outputs

    args.partial_out = write_outputs(partial, args.out)


def _run_leaderboard(args: argparse.Namespace) -> None:
    from espresso_jax.apps.leaderboard.nuts_cache import NUTSSettings
    from espresso_jax.apps.leaderboard.registry import METHODS, SMALL_SETS
    from espresso_jax.apps.leaderboard.report import markdown_table, write_outputs
    from espresso_jax.apps.leaderboard.runner import run_leaderboard

    if args.quick:
        args.sets, args.splits, args.epochs, args.samples = ["yacht"], 2, 5, 50
        args.nuts_warmup, args.nuts_samples, args.nuts_depth = 20, 20, 4
    sets = list(SMALL_SETS) if args.sets is None else args.sets
    methods = list(METHODS) if args.methods is None else args.methods
    nuts = None if args.no_nuts else NUTSSettings(
        num_warmup=args.nuts_warmup, num_samples=args.nuts_samples,
        num_chains=args.nuts_chains, max_tree_depth=args.nuts_depth, seed=args.seed)
    resume = None
    if args.resume and (Path(args.out) / "leaderboard.json").is_file():
        from espresso_jax.apps.leaderboard.merge import load_run

        resume = load_run(args.out)
    result = run_leaderboard(args.seed, sets=sets, methods=methods,
                             n_splits=args.splits, n_epochs=args.epochs,
                             n_samples=args.samples, nuts=nuts, cache_dir=args.cache,
                             log=lambda s: print(s, file=sys.stderr, flush=True),
                             checkpoint=lambda partial: _write_partial(partial, args),
                             resume=resume)
    out = write_outputs(result, args.out)
    print(markdown_table(result["rows"], published=True))
    print(f"written to {out}/leaderboard.{{md,json,png}}")


def _run_leaderboard_merge(args: argparse.Namespace) -> None:
    from espresso_jax.apps.leaderboard.merge import load_run, merge_runs
    from espresso_jax.apps.leaderboard.report import markdown_table, write_outputs

    runs = [load_run(path) for path in args.runs]   # every input read before anything is written
    result = merge_runs(runs, sources=[str(path) for path in args.runs])
    out = write_outputs(result, args.out)
    print(markdown_table(result["rows"], published=True))
    for r in result["settings"]["replaced"]:
        print(f"{r['dataset']} / {r['method']}: {r['by']} replaces {r['replaced']}")
    print(f"written to {out}/leaderboard.{{md,json,png}}")


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


def _run_fit(args: argparse.Namespace) -> None:
    import jax

    from espresso_jax.apps.fitting import run_fit

    out = Path(args.out) if args.out else Path(f"{Path(args.data).stem}_{args.model}")
    options = {k: v for k, v in vars(args).items() if k not in _FIT_COMMON}
    if args.model == "blr":
        options["target"] = int(args.target) if args.target.lstrip("-").isdigit() \
            else args.target
    # Options left at None mean "the library's default" (which may depend on other options).
    options = {k: v for k, v in options.items() if v is not None}
    start = time.perf_counter()
    # Only switch precision when asked (a user's JAX_ENABLE_X64=1 is kept otherwise).
    with jax.enable_x64(True) if args.x64 else contextlib.nullcontext():
        summary = run_fit(jax.random.key(args.seed), args.model, args.data, out, **options)
    print(f"{args.model} fitted to {args.data} ({summary['n_samples']} rows, columns: "
          f"{', '.join(summary['columns'])})")
    for name, value in summary["metrics"].items():
        if isinstance(value, (bool, int, float)):
            text = f"{value:.6g}" if isinstance(value, float) else str(value)
            print(f"  {name:<24} {text}")
    print(f"\nwritten to {out}/ (params.msgpack + .sha256, params.json, summary.json, "
          f"plot.png) in {time.perf_counter() - start:.1f} s")
    print(f"load in Python: {summary['load']}")


def _run_bench(args: argparse.Namespace) -> int:
    from espresso_jax.apps.bench import find_bench_dir, format_table, run_benchmarks

    bench_dir = find_bench_dir(args.bench_dir)
    if args.timeout is not None and not args.timeout > 0:
        raise ValueError(f"--timeout must be > 0, got {args.timeout}")
    runs = run_benchmarks(bench_dir, only=args.only, quick=args.quick, timeout=args.timeout,
                          progress=lambda s: print(s, file=sys.stderr, flush=True),
                          echo=(lambda s: print("    " + s, flush=True)) if args.verbose
                          else None)
    rows = [row for run in runs for row in run.rows]
    if rows:
        print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    failed = [run for run in runs if run.error is not None]
    for run in failed:
        print(f"{_PROG}: error: {run.error}", file=sys.stderr)
    return 1 if failed else 0


def _one_line(err: BaseException) -> str:
    text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    return text or type(err).__name__


def _use_headless_backend() -> None:
    """The CLI writes figures to files and never shows a window: select Agg unless the user
    chose a backend through ``MPLBACKEND``. Only the CLI does this; the library never does."""
    if "MPLBACKEND" not in os.environ:
        import matplotlib

        matplotlib.use("Agg")


def main(argv: list[str] | None = None) -> int:
    """Entry point. Returns the exit status; errors are one line on stderr, no traceback."""
    args = _parser().parse_args(argv)
    _use_headless_backend()
    try:
        if args.command == "tour":
            from espresso_jax.apps.tour import run_tour

            start = time.perf_counter()
            out = run_tour(args.seed, args.out, quick=args.quick)
            _print_summary(out)
            print(f"\nreport written to {out}/index.html "
                  f"({time.perf_counter() - start:.1f} s)")
        elif args.command == "fit":
            _run_fit(args)
        elif args.command == "bench":
            return _run_bench(args)
        elif args.command == "leaderboard":
            _run_leaderboard(args)
        elif args.command == "leaderboard-merge":
            _run_leaderboard_merge(args)
    except (ValueError, TypeError, OSError, ArithmeticError) as err:
        print(f"{_PROG}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = getattr(args, "partial_out", None)
        print(f"{_PROG}: interrupted; " + (
            f"the finished methods are in {kept}/leaderboard.{{md,json,png}}" if kept
            else "nothing written"), file=sys.stderr)
        return 130
    except Exception as err:   # a bug: still one line, exit 2, and how to see the traceback
        if os.environ.get("ESPRESSO_JAX_TRACEBACK"):
            raise
        print(f"{_PROG}: error: internal error ({type(err).__name__}: {_one_line(err)}); "
              "rerun with ESPRESSO_JAX_TRACEBACK=1 for the traceback and please report it",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
