"""A small, time-boxed mutation-testing runner for espresso_jax (issue 12 §4).

The whole default suite per mutant is impossible on a 2-core machine (~12 min a run), so each
mutant runs only the default-suite tests that execute its statement, mapped once under
``coverage`` with one context per test. Steps (repository root, the project's Python)::

    # 1. map statements -> tests: the test files once under coverage, one context per pytest
    #    node id (set-up included, so a module fixture counts for its first test); records
    #    each passing test's duration too.
    PYTHONPATH=src python tools/mutation.py map --out .mutation/map.json
    # 2. enumerate the mutants of the target modules, sample ``--per-module`` of each with a
    #    seed, run each one's tests; results go to a JSON file (resumable: mutants already in
    #    it are skipped; a seeded random order, round robin over the modules, so a run cut by
    #    the time box is still a balanced random sample).
    python tools/mutation.py run --map .mutation/map.json --per-module 25 --seed 12 \\
        --time-box 3600 --out benchmarks/mutation_results.json
    # 3. after adding tests: map the new files, re-run the survivors with the new tests only
    #    (adding tests cannot revive a killed mutant; the old tests passed on every survivor).
    PYTHONPATH=src python tools/mutation.py map --tests tests/test_bnn_terms.py \\
        --out .mutation/map_new.json
    python tools/mutation.py rerun --map .mutation/map_new.json
    # 4. per-module table, before and after (equivalent mutants, {id: one-line reason}, are
    #    read from benchmarks/mutation_equivalent.json and left out of the score).
    python tools/mutation.py summary --survivors

``make mutation`` runs steps 1, 2 and 4 (not in CI). Only the target modules' own test files
(``DEFAULT_TESTS``) are mapped; the mixture, linear and GP tests that also run ``train.py`` and
``em.py`` are not, so a mutant only they would kill counts as a survivor (a lower bound).

Operators (AST; id ``file:line:col:op``): ``+``/``-`` and ``*``/``/`` swaps, ``**`` -> ``*``
(also augmented assignments); ``<``/``<=``, ``>``/``>=``, ``==``/``!=``, ``is``/``is not``,
``in``/``not in``; numbers ``0`` <-> ``1``, other ints ``c + 1``, floats ``2c``; ``True`` <->
``False``; ``and`` <-> ``or``; unary minus removed; ``return <expr>`` -> ``return None`` (not
in ``__init__``, not where it is ``None``). Never mutated: docstrings and all strings, type
annotations, ``raise`` statements, ``assert`` messages, f-strings, ``__all__``.

A mutant is *killed* when its tests fail, error or time out (3 x their baseline duration +
60 s), *survived* when they pass, *uncovered* (a survivor) when no mapped test runs its
statement (import-time code, e.g. defaults, decorators, class attributes, maps to the tests
of its function, class or module). At most ``--max-tests`` (10) covering tests run, fastest
first: a cap that can only lower the score. The mutated module is written into a temporary
copy of ``src/`` first on ``sys.path``; tests run in one worker, ``pytest -x -q -p
no:cacheprovider -p no:xdist`` (project configuration: ``slow`` tests excluded), in a child
forked from a runner that imported jax, flax, optax, numpyro, scipy and pytest once.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PKG = "src/espresso_jax"
TARGETS = [f"{PKG}/bnn/{m}.py" for m in ("bbb", "bbb_elbo", "bbb_prune", "bbb_recurrent",
                                          "dropout", "heteroscedastic")]
TARGETS += [f"{PKG}/nn/{m}.py" for m in ("vae", "vae_model", "vae_objectives")]
TARGETS += [f"{PKG}/train.py", f"{PKG}/em.py"]
DEFAULT_TESTS = ["tests/test_bnn_bbb.py", "tests/test_bnn_dropout.py",
                 "tests/test_bnn_heteroscedastic.py", "tests/test_bnn_experiments.py",
                 "tests/test_bnn_uci.py", "tests/test_nn_vae.py", "tests/test_train.py",
                 "tests/test_em.py", "tests/test_fit_contract_neural.py",
                 "tests/test_bnn_terms.py", "tests/test_vae_terms.py",
                 "tests/test_engine_terms.py", "tests/test_nn_input_errors.py",
                 "tests/test_published_deep.py", "tests/test_published_uci.py",
                 "tests/test_published_vae.py", "tests/test_tour_deep_sections.py"]
EQUIVALENT = ROOT / "benchmarks" / "mutation_equivalent.json"

# ----------------------------------------------------------------------------- operators

BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
              ast.Pow: ast.Mult}
CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
            ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
            ast.In: ast.NotIn, ast.NotIn: ast.In}
SYM = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.Lt: "<",
       ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
       ast.Is: "is", ast.IsNot: "isnot", ast.In: "in", ast.NotIn: "notin", ast.And: "and",
       ast.Or: "or"}


def _is_all_or_type_checking(node: ast.AST) -> bool:
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside a docstring, annotation, raise, assert message, f-string."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            roots += [a.annotation for a in (node.args.args + node.args.kwonlyargs
                                             + node.args.posonlyargs) if a.annotation]
            roots += [a.annotation for a in (node.args.vararg, node.args.kwarg)
                      if a is not None and a.annotation]
            if node.returns is not None:
                roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
        elif isinstance(node, (ast.Raise, ast.JoinedStr)):
            roots.append(node)
        elif isinstance(node, ast.Assert) and node.msg is not None:
            roots.append(node.msg)
        elif _is_all_or_type_checking(node):
            roots.append(node)
    return {id(n) for r in roots for n in ast.walk(r)}


def _tweak_number(v: int | float | complex) -> int | float | None:
    if isinstance(v, (bool, complex)):
        return None
    if v == 0:
        return 1 if isinstance(v, int) else 1.0
    if v == 1:
        return 0 if isinstance(v, int) else 0.0
    return v + 1 if isinstance(v, int) else v * 2


def _mutations(node: ast.AST, parents: dict[int, ast.AST]):
    """Yield (op name, replacement node) for one AST node."""
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BINOP_SWAP:
        old_op = type(node.op)
        rep = ast.BinOp if isinstance(node, ast.BinOp) else ast.AugAssign
        swapped = ast.copy_location(rep(**{**{f: getattr(node, f) for f in node._fields},
                                           "op": BINOP_SWAP[old_op]()}), node)
        yield f"{SYM[old_op]}->{SYM[BINOP_SWAP[old_op]]}", swapped
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in CMP_SWAP:
                ops = list(node.ops)
                ops[i] = CMP_SWAP[type(op)]()
                cmp = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
                yield f"{SYM[type(op)]}->{SYM[type(ops[i])]}#{i}", cmp
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool):
            yield f"{node.value}->{not node.value}", ast.Constant(not node.value)
        elif isinstance(node.value, (int, float)):
            tweaked = _tweak_number(node.value)
            if tweaked is not None:
                yield f"{node.value!r}->{tweaked!r}", ast.Constant(tweaked)
    elif isinstance(node, ast.BoolOp):
        other = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield f"{SYM[type(node.op)]}->{SYM[other]}", ast.BoolOp(op=other(), values=node.values)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        yield "-x->x", node.operand
    elif isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None):
        fn = parents.get(id(node))
        while fn is not None and not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            fn = parents.get(id(fn))
        if fn is not None and fn.name != "__init__":
            yield "return->None", ast.Return(value=ast.Constant(None))


def _coverage_lines(node: ast.AST, parents: dict[int, ast.AST]) -> tuple[int, list[int] | None]:
    """The line coverage reports for ``node`` (the first line of its statement) and, for code
    run at import time (module and class level, function defaults and decorators: coverage
    sees it before any test starts), the line range whose tests use it: the function's body,
    the class, or the whole module."""
    stmt = node
    while not isinstance(stmt, ast.stmt):
        stmt = parents[id(stmt)]
    parent = parents.get(id(stmt))
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and (
            node is not stmt):
        return stmt.lineno, [stmt.body[0].lineno, stmt.end_lineno or stmt.lineno]
    if isinstance(parent, ast.ClassDef):
        return stmt.lineno, [parent.lineno, parent.end_lineno or parent.lineno]
    if isinstance(parent, ast.Module):
        return stmt.lineno, [1, 10**9]
    return stmt.lineno, None


def enumerate_mutants(rel: str) -> list[dict]:
    """Every mutant of one file: id, line, col, end position, op and replacement text."""
    text = (ROOT / rel).read_text()
    tree = ast.parse(text)
    skip = _skipped_nodes(tree)
    parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, (ast.expr, ast.stmt)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # docstrings
        for op, new in _mutations(node, parents):
            src = ast.unparse(new)
            if isinstance(node, ast.expr):
                src = f"({src})"
            stmt_line, scope = _coverage_lines(node, parents)
            out.append({"id": f"{rel}:{node.lineno}:{node.col_offset}:{op}", "file": rel,
                        "line": node.lineno, "col": node.col_offset,
                        "end_line": node.end_lineno, "end_col": node.end_col_offset,
                        "op": op, "replacement": src, "stmt_line": stmt_line,
                        "scope": scope})
    out.sort(key=lambda m: (m["line"], m["col"], m["op"]))
    return out


def apply_mutant(text: str, m: dict) -> str:
    """The source with the node at (line, col)-(end_line, end_col) replaced."""
    lines = text.splitlines(keepends=True)
    offs = [0]
    for ln in lines:
        offs.append(offs[-1] + len(ln.encode()))
    raw = text.encode()
    a = offs[m["line"] - 1] + m["col"]  # AST offsets are UTF-8 byte offsets
    b = offs[m["end_line"] - 1] + m["end_col"]
    return (raw[:a] + m["replacement"].encode() + raw[b:]).decode()


# ----------------------------------------------------------------------------- mapping

class _ContextPlugin:
    """pytest plugin: one coverage context per test node id (set-up, call and tear-down)."""

    def __init__(self, cov):
        self.cov = cov
        self.durations: dict[str, float] = {}
        self.failed: set[str] = set()

    def pytest_runtest_setup(self, item):
        self.cov.switch_context(item.nodeid)

    def pytest_runtest_logreport(self, report):
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
        if report.failed:
            self.failed.add(report.nodeid)


def cmd_map(args) -> None:
    import coverage
    import pytest

    sys.path.insert(0, str(SRC))
    data_file = str(Path(args.out).with_suffix(".coverage"))
    cov = coverage.Coverage(data_file=data_file, include=[str(ROOT / t) for t in TARGETS])
    plugin = _ContextPlugin(cov)
    t0 = time.process_time()
    cov.start()
    try:
        rc = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:xdist", *args.tests],
                         plugins=[plugin])
    finally:
        cov.stop()
        cov.save()
    data = cov.get_data()
    lines: dict[str, dict[str, list[str]]] = {}
    for rel in TARGETS:
        by_line = data.contexts_by_lineno(str(ROOT / rel)) or {}
        lines[rel] = {str(k): sorted(c for c in v if c and c not in plugin.failed)
                      for k, v in by_line.items()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "tests": args.tests, "pytest_rc": int(rc), "cpu_s": time.process_time() - t0,
        "durations": plugin.durations, "failed": sorted(plugin.failed), "lines": lines}))
    print(f"map: pytest rc={int(rc)}, {len(plugin.durations)} tests, wrote {args.out}")


def _load_maps(paths: list[str]) -> tuple[dict[str, dict[str, list[str]]], dict[str, float]]:
    lines: dict[str, dict[str, list[str]]] = {}
    durations: dict[str, float] = {}
    for p in paths:
        d = json.loads(Path(p).read_text())
        durations.update(d["durations"])
        for rel, by_line in d["lines"].items():
            for ln, tests in by_line.items():
                lines.setdefault(rel, {}).setdefault(ln, [])
                lines[rel][ln] = sorted(set(lines[rel][ln]) | set(tests))
    return lines, durations


# ----------------------------------------------------------------------------- running

def run_mutant(m: dict, lines, durations, tmp_src: Path, max_tests: int) -> dict:
    """Run one mutant's mapped tests (the ``max_tests`` fastest, fastest first); returns the
    outcome, the number of tests covering the line and run, wall and CPU seconds."""
    by_line = lines.get(m["file"], {})
    covering = by_line.get(str(m["stmt_line"]), [])
    if not covering and m["scope"] is not None:    # import-time code: the tests of its scope
        lo, hi = m["scope"]
        covering = sorted({t for ln, ts in by_line.items() if lo <= int(ln) <= hi for t in ts})
    covering = sorted(covering, key=lambda t: (durations.get(t, 0.0), t))
    if not covering:
        return {"outcome": "uncovered", "n_tests": 0, "wall_s": 0.0}
    tests = covering[:max_tests]
    rel = Path(m["file"]).relative_to("src")
    orig = (SRC / rel).read_text()
    mutated = apply_mutant(orig, m)
    try:
        compile(mutated, str(rel), "exec")
    except SyntaxError as e:  # an operator bug, never a kill
        return {"outcome": "invalid", "n_tests": 0, "wall_s": 0.0, "detail": str(e)}
    (tmp_src / rel).write_text(mutated)
    timeout = 3 * sum(durations.get(t, 0.0) for t in tests) + 60
    args = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *tests]
    t0 = time.time()
    r0 = os.times()
    try:
        rc, last = _pytest_forked(args, tmp_src, timeout)
    finally:
        (tmp_src / rel).write_text(orig)
    r1 = os.times()
    cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    detail = last if rc in (0, 1, None) else f"{last} | pytest rc={rc}"
    return {"outcome": "survived" if rc == 0 else "killed", "n_covering": len(covering),
            "n_tests": len(tests),
            "wall_s": round(time.time() - t0, 1), "cpu_s": round(cpu, 1),
            "detail": (detail if rc is not None else f"timeout after {timeout:.0f} s")[-300:]}


def _preimport() -> None:
    """Import the heavy third-party packages once in the parent (never espresso_jax), so each
    forked child only imports the (mutated) library and the tests: saves seconds per mutant."""
    import importlib
    for name in ("numpy", "scipy.stats", "scipy.special", "jax.numpy", "flax.linen", "optax",
                 "numpyro.distributions", "sklearn.metrics", "pytest", "threadpoolctl", "tqdm"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    assert not any(m.startswith("espresso_jax") for m in sys.modules)


def _pytest_forked(args: list[str], tmp_src: Path, timeout: float) -> tuple[int | None, str]:
    """pytest in a forked child of this (pre-imported) process; output to a temp file."""
    log = tmp_src.parent / "pytest.log"
    pid = os.fork()
    if pid == 0:  # child: never returns
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.path.insert(0, str(tmp_src))
            import pytest
            rc = int(pytest.main(args))
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
        except BaseException:
            os._exit(99)
    deadline = time.time() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, ""
        time.sleep(0.1)
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return os.waitstatus_to_exitcode(status), (lines or [""])[-1]


def _sample(per_module: int, seed: int) -> list[dict]:
    chosen = []
    for rel in TARGETS:
        ms = enumerate_mutants(rel)
        rng = random.Random(f"{seed}:{rel}")
        pick = ms if len(ms) <= per_module else rng.sample(ms, per_module)
        for m in sorted(pick, key=lambda m: (m["line"], m["col"], m["op"])):
            chosen.append({**m, "population": len(ms)})
    return chosen


def _loop(todo: list[dict], key: str, results: dict, args, lines, durations) -> None:
    deadline = time.time() + args.time_box
    os.chdir(ROOT)
    _preimport()
    with tempfile.TemporaryDirectory(prefix="mut_src_") as tmp:
        tmp_src = Path(tmp) / "src"
        shutil.copytree(SRC, tmp_src, ignore=shutil.ignore_patterns("__pycache__"))
        for i, m in enumerate(todo):
            if time.time() > deadline:
                print(f"time box reached after {i} of {len(todo)} mutants")
                break
            res = run_mutant(m, lines, durations, tmp_src, args.max_tests)
            results["mutants"][m["id"]][key] = res
            part = Path(args.out).with_suffix(".tmp")      # atomic: a cut run leaves valid JSON
            part.write_text(json.dumps(results, indent=1))
            part.replace(args.out)
            print(f"[{i + 1}/{len(todo)}] {res['outcome']:9s} {res['wall_s']:6.1f}s {m['id']}",
                  flush=True)


def cmd_run(args) -> None:
    lines, durations = _load_maps(args.map)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"mutants": {}}
    results.update({"per_module": args.per_module, "seed": args.seed, "maps": args.map})
    for m in _sample(args.per_module, args.seed):
        results["mutants"].setdefault(m["id"], m)
    todo = [m for m in results["mutants"].values() if "before" not in m]
    # round robin over the modules, each in a seeded random order, so that a run cut by the
    # time box is still a random sample of every module, balanced across them
    groups = {rel: [m for m in todo if m["file"] == rel] for rel in TARGETS}
    for rel, group in groups.items():
        random.Random(f"{args.seed}:order:{rel}").shuffle(group)
    todo = [g[i] for i in range(max(map(len, groups.values()), default=0))
            for g in groups.values() if i < len(g)]
    _loop(todo, "before", results, args, lines, durations)


def cmd_rerun(args) -> None:
    lines, durations = _load_maps(args.map)
    results = json.loads(Path(args.out).read_text())
    todo = [m for m in results["mutants"].values() if "before" in m and "after" not in m
            and m["before"]["outcome"] in ("survived", "uncovered")]
    _loop(todo, "after", results, args, lines, durations)


def _score(ms: list[dict], key: str, equiv: dict[str, str]) -> tuple[int, int, float, float]:
    """(killed, non-equivalent mutants, score, binomial SE); killed stays killed after."""
    def outcome(m):
        if key == "after" and m["before"]["outcome"] == "killed":
            return "killed"
        return m.get(key, m["before"])["outcome"]
    ms = [m for m in ms if m["id"] not in equiv and m["before"]["outcome"] != "invalid"]
    k = sum(outcome(m) == "killed" for m in ms)
    n = len(ms)
    p = k / n if n else float("nan")
    return k, n, p, math.sqrt(p * (1 - p) / n) if n else float("nan")


def _wilson_low(k: int, n: int, z: float = 1.645) -> float:
    """One-sided 95 % Wilson lower bound of a proportion (useful where p = 1 and SE = 0)."""
    p = k / n
    return (p + z * z / (2 * n) - z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (
        1 + z * z / n)


def cmd_summary(args) -> None:
    results = json.loads(Path(args.out).read_text())
    equiv = json.loads(EQUIVALENT.read_text()) if EQUIVALENT.exists() else {}
    ms = [m for m in results["mutants"].values() if "before" in m]
    rows = ["| module | mutants (sampled / all) | equivalent | before: killed, score ± SE "
            "(95 % low) | after: killed, score ± SE (95 % low) |", "|---|---|---|---|---|"]
    strata: dict[str, list[tuple[int, float, float]]] = {"before": [], "after": []}
    for rel in TARGETS:
        sel = [m for m in ms if m["file"] == rel]
        if not sel:
            continue
        pop = sel[0]["population"]
        cells = []
        for key in ("before", "after"):
            k, n, p, se = _score(sel, key, equiv)
            strata[key].append((pop, p, se))
            cells.append(f"{k}/{n}, {p:.0%} ± {se:.0%} ({_wilson_low(k, n):.0%})")
        rows.append(f"| {rel.replace(f'{PKG}/', '')} | {len(sel)} / {pop} | "
                    f"{sum(m['id'] in equiv for m in sel)} | {cells[0]} | {cells[1]} |")
    # all modules: the stratified estimate, each module weighted by its number of mutants
    total = sum(pop for pop, _, _ in strata["before"])
    cells = []
    for key in ("before", "after"):
        p = sum(pop * q for pop, q, _ in strata[key]) / total
        se = math.sqrt(sum((pop / total) ** 2 * s * s for pop, _, s in strata[key]))
        k, n, _, _ = _score(ms, key, equiv)
        cells.append(f"{k}/{n}, {p:.0%} ± {se:.0%} (weighted by module size)")
    rows.append(f"| all | {len(ms)} / {total} | {sum(m['id'] in equiv for m in ms)} | "
                f"{cells[0]} | {cells[1]} |")
    print("\n".join(rows))
    if args.survivors:
        for m in ms:
            last = m.get("after", m["before"])["outcome"]
            if last != "killed" and m["before"]["outcome"] != "killed":
                tag = f"EQUIV: {equiv[m['id']]}" if m["id"] in equiv else last
                print(f"{m['id']}  ->  {m['replacement']}  [{tag}]")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("map", help="map target lines to the tests that execute them")
    p.add_argument("--tests", nargs="+", default=DEFAULT_TESTS)
    p.add_argument("--out", default=".mutation/map.json")
    for name in ("run", "rerun"):
        p = sub.add_parser(name)
        p.add_argument("--map", nargs="+", default=[".mutation/map.json"])
        p.add_argument("--out", default="benchmarks/mutation_results.json")
        p.add_argument("--per-module", type=int, default=25)
        p.add_argument("--seed", type=int, default=12)
        p.add_argument("--time-box", type=float, default=3600.0, help="seconds")
        p.add_argument("--max-tests", type=int, default=10,
                       help="run at most the N fastest covering tests (a conservative cap)")
    p = sub.add_parser("summary")
    p.add_argument("--out", default="benchmarks/mutation_results.json")
    p.add_argument("--survivors", action="store_true")
    args = ap.parse_args(argv)
    {"map": cmd_map, "run": cmd_run, "rerun": cmd_rerun, "summary": cmd_summary}[args.cmd](args)


if __name__ == "__main__":
    main()
