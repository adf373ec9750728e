"""The report writer, the tour and the command line (thin layers over the library)."""

import json
import subprocess
import sys
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import numpy as np
import pytest

from espresso_jax.apps.cli import main
from espresso_jax.apps.report import Report
from espresso_jax.apps.tour import SECTIONS, run_tour


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def _images(index):
    parser = _Images()
    parser.feed(index.read_text())
    return parser.sources


def test_report_writes_figures_and_metrics(tmp_path):
    report = Report(tmp_path / "out", title="t")
    report.section("A", "text")
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    report.figure(fig, "line", "a line")
    report.metrics({"x": np.float32(1.5), "v": np.arange(3), "bad": float("nan")})
    out = report.write()
    assert _images(out / "index.html") == ["line.png"]
    assert (out / "line.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "metrics.json").read_text()) == {
        "A": {"x": 1.5, "v": [0, 1, 2], "bad": None}}
    assert not list(tmp_path.glob(".report-*"))  # staging folder moved into place


def test_report_discard_leaves_destination_untouched(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("old")
    report = Report(tmp_path / "out", title="t")
    report.discard()
    assert (tmp_path / "out" / "keep.txt").read_text() == "old"
    assert not list(tmp_path.glob(".report-*"))


def test_tour_sections_write_a_complete_report(tmp_path):
    # Two cheap sections: the report's shape (one figure each, metrics.json keyed by section
    # title). Every section's metrics are checked against references in test_tour_sections.py.
    out = run_tour(0, tmp_path / "r", quick=True, sections=["beta-binomial", "kmeans"])
    images = _images(out / "index.html")
    assert len(images) == 2 and all((out / src).stat().st_size > 1000 for src in images)
    metrics = json.loads((out / "metrics.json").read_text())
    beta = metrics["Beta–Bernoulli sequential update"]
    # Conjugacy: Beta(2 + heads, 2 + tails) has mean (2 + heads) / 104.
    assert beta["posterior_mean"] == pytest.approx((2 + beta["heads_in_100"]) / 104, rel=1e-5)


def test_tour_rejects_unknown_section(tmp_path):
    with pytest.raises(ValueError, match="sections: unknown section 'nope'"):
        run_tour(0, tmp_path / "r", sections=["nope"])
    assert not (tmp_path / "r").exists()


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "espresso_jax.apps.cli", "tour", "--seed", "-1",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "espresso-jax: error: argument --seed: must be an integer in 0..4294967295 (32 bits), "
        "got -1 (see espresso-jax tour --help)"]
    assert not (tmp_path / "r").exists()


def test_cli_usage_error_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_every_section_is_registered_once():
    # The tour's table is a dict literal merged with the section tables of the tour_* modules
    # (deep models, codes, HMM, ...): a section named like another would silently replace it,
    # and a section function left out of the table would never run. Read the modules' source
    # to see what was written.
    import ast
    import importlib
    import inspect
    import pkgutil

    from espresso_jax import apps
    from espresso_jax.apps import tour

    classic = []
    for node in ast.walk(ast.parse(inspect.getsource(tour))):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id == "SECTIONS"):
            classic = [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
    assert len(classic) >= 11 and len(set(classic)) == len(classic)
    extra = [importlib.import_module(f"espresso_jax.apps.{m.name}")
             for m in pkgutil.iter_modules(apps.__path__) if m.name.startswith("tour_")]
    assert len(extra) >= 2
    names = classic + [name for module in extra for name in module.SECTIONS]
    assert len(set(names)) == len(names), names      # no section shadows another
    assert list(SECTIONS)[:len(classic)] == classic  # classic sections keep their keys
    assert sorted(SECTIONS) == sorted(names)
    defined = {f for module in (tour, *extra) for f in vars(module)
               if f.startswith("_section_") and callable(getattr(module, f))}
    registered = {f.__name__ for f in SECTIONS.values()}
    assert defined == registered, defined ^ registered


def test_cli_summary_prints_scalar_metrics(tmp_path, capsys):
    from espresso_jax.apps.cli import _print_summary

    report = Report(tmp_path / "r", title="t")
    report.section("Linear")
    report.metrics({"alpha": 2.123456, "n_iter": 5, "curve": [1.0, 2.0]})
    _print_summary(report.write())
    out = capsys.readouterr().out
    assert "Linear" in out and "2.123" in out and "n_iter" in out and "curve" not in out
