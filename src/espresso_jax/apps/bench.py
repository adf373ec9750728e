"""Run the benchmark scripts one at a time and collect their results: the functions behind
``espresso-jax bench``.

The scripts live in ``benchmarks/`` at the top of a source checkout (beside ``src/``), not in
the installed package. Each script prints, besides its human-readable report, one line per
measured ratio::

    RESULT {"case": "...", "ours": 0.83, "peer": 10.4, "ratio": 12.5, "peer_name": "...",
            "unit": "s", "goal": ">= 5", "met": true}

(written by ``benchmarks/_common.py``'s ``print_result``). :func:`run_benchmarks` runs the
scripts sequentially in fresh processes, never concurrently (each one measures wall time
and may use every core), and :func:`format_table` prints the rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["RESULT_PREFIX", "BenchRun", "find_bench_dir", "list_benchmarks", "parse_results",
           "run_benchmark", "run_benchmarks", "format_table"]

RESULT_PREFIX = "RESULT "
_REQUIRED = ("case", "ours", "peer", "ratio")


class BenchRun(NamedTuple):
    """One script's run.

    Attributes:
        name: benchmark name (``bench_<name>.py``).
        rows: the parsed ``RESULT`` dicts, each with ``benchmark`` set to ``name``.
        returncode: the script's exit status.
        seconds: wall time of the script.
        error: ``None`` on success, else a one-line reason.
    """

    name: str
    rows: list[dict[str, Any]]
    returncode: int
    seconds: float
    error: str | None


def find_bench_dir(bench_dir: str | os.PathLike | None = None) -> Path:
    """The folder of ``bench_*.py`` scripts: ``bench_dir`` if given, else ``benchmarks/`` of
    the source checkout this package is imported from (an editable install).

    Raises:
        FileNotFoundError: no such folder, or it holds no ``bench_*.py`` script.
    """
    if bench_dir is None:
        root = Path(__file__).resolve().parents[3]          # src/espresso_jax/apps/bench.py
        path = root / "benchmarks"
        if not path.is_dir():
            raise FileNotFoundError(
                f"no benchmarks folder at {path} (the benchmarks ship with a source checkout, "
                "not the installed package); pass --bench-dir DIR")
    else:
        path = Path(bench_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"--bench-dir {path}: no such folder")
    if not any(path.glob("bench_*.py")):
        raise FileNotFoundError(f"no bench_*.py scripts in {path}")
    return path


def list_benchmarks(bench_dir: str | os.PathLike) -> dict[str, Path]:
    """``{name: script}`` for every ``bench_<name>.py`` in ``bench_dir``, sorted by name."""
    scripts = sorted(Path(bench_dir).glob("bench_*.py"))
    return {p.stem[len("bench_"):]: p for p in scripts}


def parse_results(text: str, benchmark: str) -> list[dict[str, Any]]:
    """The ``RESULT {json}`` lines of a script's output, as dicts with ``benchmark`` added.

    Raises:
        ValueError: a ``RESULT`` line that is not a JSON object with case, ours, peer, ratio.
    """
    rows = []
    for line in text.splitlines():
        if not line.startswith(RESULT_PREFIX):
            continue
        try:
            row = json.loads(line[len(RESULT_PREFIX):])
        except json.JSONDecodeError as err:
            raise ValueError(f"bench_{benchmark}.py printed a malformed RESULT line "
                             f"({err}): {line[:80]!r}") from None
        if not isinstance(row, dict) or any(k not in row for k in _REQUIRED):
            raise ValueError(f"bench_{benchmark}.py printed a RESULT line without "
                             f"{', '.join(_REQUIRED)}: {line[:80]!r}")
        rows.append({"benchmark": benchmark, **row})
    return rows


def run_benchmark(script: str | os.PathLike, *, quick: bool = False,
                  timeout: float | None = None, python: str = sys.executable,
                  echo: Callable[[str], None] | None = None) -> BenchRun:
    """Run one script in a fresh process (its folder as working directory) and parse it.

    Args:
        script: path of ``bench_<name>.py``.
        quick: pass ``--quick`` (small sizes) to the script.
        timeout: seconds before the script is killed (``None``: no limit).
        python: the interpreter.
        echo: called with every non-``RESULT`` output line as it arrives (``None``: quiet).

    Returns:
        :class:`BenchRun`; failures (non-zero exit, timeout, no or malformed ``RESULT``
        line) are reported in ``error``, not raised.
    """
    script = Path(script)
    name = script.stem[len("bench_"):]
    cmd = [python, "-u", script.name] + (["--quick"] if quick else [])
    lines: list[str] = []
    tail: deque[str] = deque(maxlen=3)
    timed_out = threading.Event()
    start = time.perf_counter()
    with subprocess.Popen(cmd, cwd=script.parent, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:

        def kill() -> None:
            timed_out.set()
            proc.kill()

        watchdog = threading.Timer(timeout, kill) if timeout is not None else None
        try:
            if watchdog is not None:
                watchdog.start()
            for line in proc.stdout:              # type: ignore[union-attr]
                line = line.rstrip("\n")
                lines.append(line)
                if not line.startswith(RESULT_PREFIX):
                    if line.strip():
                        tail.append(line.strip())
                    if echo is not None:
                        echo(line)
            proc.wait()
        except BaseException:
            proc.kill()
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
    seconds = time.perf_counter() - start
    if timed_out.is_set():
        return BenchRun(name, [], proc.returncode, seconds,
                        f"{script.name} timed out after {timeout:g} s")
    if proc.returncode != 0:
        last = tail[-1] if tail else "no output"
        return BenchRun(name, [], proc.returncode, seconds,
                        f"{script.name} failed (exit {proc.returncode}): {last}")
    try:
        rows = parse_results("\n".join(lines), name)
    except ValueError as err:
        return BenchRun(name, [], proc.returncode, seconds, str(err))
    if not rows:
        return BenchRun(name, [], proc.returncode, seconds,
                        f"{script.name} printed no RESULT line")
    return BenchRun(name, rows, proc.returncode, seconds, None)


def run_benchmarks(bench_dir: str | os.PathLike, *, only: Sequence[str] | None = None,
                   quick: bool = False, timeout: float | None = None,
                   progress: Callable[[str], None] | None = None,
                   echo: Callable[[str], None] | None = None) -> list[BenchRun]:
    """Run the benchmarks of ``bench_dir`` (or the ``only`` ones) one after the other.

    Args:
        bench_dir: folder from :func:`find_bench_dir`.
        only: benchmark names (``gmm`` or ``bench_gmm.py`` both name ``bench_gmm.py``).
        quick: pass ``--quick`` to every script.
        timeout: per-script limit in seconds.
        progress: called with a one-line status before and after each script.
        echo: called with each output line of the scripts (see :func:`run_benchmark`).

    Returns:
        One :class:`BenchRun` per script, in name order.

    Raises:
        ValueError: an unknown name in ``only``.
    """
    available = list_benchmarks(bench_dir)
    if only:
        names = []
        for raw in only:
            name = Path(raw).stem
            name = name[len("bench_"):] if name.startswith("bench_") else name
            if name not in available:
                raise ValueError(f"--only: unknown benchmark {raw!r}; choose from "
                                 f"{', '.join(available)}")
            if name not in names:
                names.append(name)
    else:
        names = list(available)
    runs = []
    for i, name in enumerate(names):
        if progress is not None:
            progress(f"[{i + 1}/{len(names)}] {available[name].name}"
                     f"{' --quick' if quick else ''} ...")
        run = run_benchmark(available[name], quick=quick, timeout=timeout, echo=echo)
        if progress is not None:
            status = "ok" if run.error is None else "FAILED"
            progress(f"[{i + 1}/{len(names)}] {available[name].name}: {status} "
                     f"({run.seconds:.1f} s)")
        runs.append(run)
    return runs


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    return f"{value:.4g}"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table: benchmark, case, peer name, ours, peer, ratio, unit, goal, met."""
    head = ["benchmark", "case", "peer", "ours", "peer", "ratio", "unit", "goal", "met"]
    body = []
    for r in rows:
        met = r.get("met")
        body.append([str(r["benchmark"]), str(r["case"]), str(r.get("peer_name") or "-"),
                     _num(r["ours"]), _num(r["peer"]),
                     _num(r["ratio"]) + ("x" if isinstance(r["ratio"], (int, float)) else ""),
                     str(r.get("unit", "-")), str(r.get("goal") or "-"),
                     "-" if met is None else ("yes" if met else "NO")])
    widths = [max(len(head[j]), *(len(b[j]) for b in body)) if body else len(head[j])
              for j in range(len(head))]
    right = {3, 4, 5}

    def fmt(cells):
        return "  ".join(c.rjust(w) if j in right else c.ljust(w)
                         for j, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(b) for b in body])
