"""`espresso-jax bench`: runs benchmark scripts one at a time and tabulates their RESULT lines.

The scripts here are tiny fakes (plain Python, no JAX) in a temporary bench folder; the real
benchmarks are never run by the test suite.
"""

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest

from espresso_jax.apps import bench
from espresso_jax.apps.cli import main

_REPO_BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(folder, name, body):
    path = folder / f"bench_{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


_FAKE = """\
    import json, sys, time
    with open("log.txt", "a") as f:
        f.write(f"start {name} {{time.time()}}\\n")
    time.sleep(0.2)
    print("machine: fake banner")
    quick = "--quick" in sys.argv
    for case, ours, peer in {rows}:
        print("RESULT " + json.dumps({{"case": case + (" quick" if quick else ""), "ours": ours,
                                       "peer": peer, "ratio": peer / ours,
                                       "peer_name": "fake", "unit": "s", "goal": ">= 2",
                                       "met": peer / ours >= 2}}))
    with open("log.txt", "a") as f:
        f.write(f"end {name} {{time.time()}}\\n")
"""


@pytest.fixture
def fake_dir(tmp_path):
    d = tmp_path / "benchmarks"
    d.mkdir()
    _script(d, "alpha", _FAKE.format(name="alpha", rows=[("small", 0.5, 2.0), ("big", 2.0, 3.0)]))
    _script(d, "beta", _FAKE.format(name="beta", rows=[("only", 1.0, 10.0)]))
    return d


def test_bench_runs_scripts_in_turn_and_prints_the_table(fake_dir, capsys):
    assert main(["bench", "--bench-dir", str(fake_dir), "--quick",
                 "--json", str(fake_dir / "rows.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["benchmark", "case", "peer", "ours", "peer", "ratio", "unit",
                              "goal", "met"]
    assert out[2].split() == ["alpha", "small", "quick", "fake", "0.5", "2", "4x", "s", ">=",
                              "2", "yes"]
    assert out[3].split() == ["alpha", "big", "quick", "fake", "2", "3", "1.5x", "s", ">=", "2",
                              "NO"]
    assert out[4].split()[:2] == ["beta", "only"] and len(out) == 5
    rows = json.loads((fake_dir / "rows.json").read_text())
    assert [(r["benchmark"], r["ratio"]) for r in rows] == [("alpha", 4.0), ("alpha", 1.5),
                                                          ("beta", 10.0)]
    # One at a time: each script ended before the next one started (alphabetical order).
    log = [line.split() for line in (fake_dir / "log.txt").read_text().splitlines()]
    assert [(e, n) for e, n, _ in log] == [("start", "alpha"), ("end", "alpha"),
                                          ("start", "beta"), ("end", "beta")]
    times = [float(t) for *_, t in log]
    assert times == sorted(times)


def test_bench_only_selects_scripts_and_rejects_unknown_names(fake_dir, capsys):
    runs = bench.run_benchmarks(fake_dir, only=["bench_beta.py"])
    assert [r.name for r in runs] == ["beta"] and runs[0].rows[0]["case"] == "only"
    assert runs[0].error is None and runs[0].returncode == 0
    assert main(["bench", "--bench-dir", str(fake_dir), "--only", "gamma"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("espresso-jax: error: --only: unknown "
                                               "benchmark 'gamma'; choose from alpha, beta")


@pytest.mark.parametrize("args, message", [
    (["--bench-dir", "MISSING"], "--bench-dir {tmp}/MISSING: no such folder"),
    (["--bench-dir", "empty"], "no bench_*.py scripts in {tmp}/empty"),
])
def test_bench_missing_folder_is_a_one_line_error(tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / a) if a in ("MISSING", "empty") else a for a in args]
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["espresso-jax: error: " + message.format(tmp=tmp_path)]


def test_bench_failures_are_reported_and_the_rest_still_tabulated(fake_dir, capsys):
    _script(fake_dir, "crash", "import sys\nprint('working')\nsys.exit('boom: no data')\n")
    _script(fake_dir, "silent", "print('no result here')\n")
    _script(fake_dir, "garbled", "print('RESULT {not json')\n")
    _script(fake_dir, "slow", "import time\ntime.sleep(30)\n")
    assert main(["bench", "--bench-dir", str(fake_dir), "--timeout", "3"]) == 1
    captured = capsys.readouterr()
    assert [line.split()[0] for line in captured.out.splitlines()[2:]] == [
        "alpha", "alpha", "beta"]
    errors = [e for e in captured.err.splitlines() if e.startswith("espresso-jax: error:")]
    assert errors[0] == "espresso-jax: error: bench_crash.py failed (exit 1): boom: no data"
    assert errors[1].startswith("espresso-jax: error: bench_garbled.py printed a malformed "
                                "RESULT line")
    assert errors[2] == "espresso-jax: error: bench_silent.py printed no RESULT line"
    assert errors[3] == "espresso-jax: error: bench_slow.py timed out after 3 s"
    assert "Traceback" not in captured.err


def test_parse_results_validates_lines():
    rows = bench.parse_results('noise\nRESULT {"case": "c", "ours": 1, "peer": 2, "ratio": 2}\n',
                               "x")
    assert rows == [{"benchmark": "x", "case": "c", "ours": 1, "peer": 2, "ratio": 2}]
    with pytest.raises(ValueError, match="bench_x.py printed a RESULT line without case"):
        bench.parse_results('RESULT {"case": "c"}', "x")


def test_common_print_result_is_what_bench_parses(capsys):
    spec = importlib.util.spec_from_file_location("bench_common", _REPO_BENCH / "_common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    common.print_result("N=10 float64", 0.5, 6.0, peer_name="sklearn", goal=">= 3", met=True)
    common.print_result("restarts", 8.0, 1.0, peer_name="one fit", ratio=8.0, goal="<= 6",
                        met=False)
    rows = bench.parse_results(capsys.readouterr().out, "gmm")
    assert rows[0]["ratio"] == pytest.approx(12.0) and rows[0]["met"] is True
    assert rows[1]["ratio"] == 8.0 and rows[1]["goal"] == "<= 6"
    table = bench.format_table(rows).splitlines()
    assert table[2].split()[-5:] == ["12x", "s", ">=", "3", "yes"]


def test_default_bench_dir_is_the_checkout_benchmarks_folder():
    found = bench.find_bench_dir()
    assert found == _REPO_BENCH
    names = bench.list_benchmarks(found)
    assert {"evidence", "gmm", "vbgmm"} <= set(names)
    for path in names.values():   # every real script reports machine-readable results
        text = path.read_text()
        assert "print_result(" in text and "--quick" in text


def test_bench_script_runs_with_this_interpreter(fake_dir):
    run = bench.run_benchmark(fake_dir / "bench_beta.py", quick=True, python=sys.executable)
    assert run.rows[0]["case"] == "only quick" and run.seconds > 0.2
