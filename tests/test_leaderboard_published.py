"""The published UCI rows (apps.leaderboard.published) and their place in the leaderboard's
Markdown (apps.leaderboard.report). No training: the report is fed hand-made rows."""

from __future__ import annotations

import json
import math

import pytest

from espresso_jax.apps.leaderboard.published import (
    PUBLISHED,
    SOURCES,
    n_splits_of,
    published_rows,
)
from espresso_jax.apps.leaderboard.registry import METHODS
from espresso_jax.apps.leaderboard.report import COLUMNS, markdown_table, write_outputs
from espresso_jax.datasets.uci import UCI_NAMES


def test_published_table_is_well_formed():
    keys = [(p.source, p.label, p.dataset) for p in PUBLISHED]
    assert len(set(keys)) == len(keys)
    for p in PUBLISHED:
        assert p.method in METHODS and p.dataset in UCI_NAMES and p.source in SOURCES
        assert p.spread in ("se", "sd")
        for v in (p.rmse, p.rmse_pm, p.ll, p.ll_pm):
            assert math.isfinite(v)
        assert p.rmse >= 0 and p.rmse_pm >= 0 and p.ll_pm >= 0
        assert p.nll == -p.ll
    # every source table covers the nine sets
    for label in {(p.source, p.label) for p in PUBLISHED}:
        assert sorted(p.dataset for p in PUBLISHED
                      if (p.source, p.label) == label) == sorted(UCI_NAMES)


def test_published_log_likelihood_sign():
    # The sources print LL (Gal, PBP, VI) or NLL (deep ensembles); every row stores LL. A
    # Gaussian predictive whose sd equals the RMSE has NLL = log(RMSE) + log(2 pi e) / 2. Over
    # the 40 rows with RMSE >= 0.05 (the 0.00 / 0.01 ones are too rounded), the published NLL
    # differs from it by at most 0.78 nats (deep ensembles, energy); a row entered with the
    # wrong sign would differ by at least 1.8 (the smallest |NLL| among them is wine's 0.92).
    rows = [p for p in PUBLISHED if p.rmse >= 0.05]
    assert len(rows) == 40
    for p in rows:
        gaussian = math.log(p.rmse) + 0.5 * math.log(2 * math.pi * math.e)
        assert abs(p.nll - gaussian) < 1.0, (p.source, p.dataset, p.nll, gaussian)


def test_published_rows_filter_and_errors():
    rows = published_rows("yacht", ["deep_ensemble", "bbb"])
    assert {(p.method, p.label) for p in rows} == {
        ("deep_ensemble", "Deep ensembles"), ("bbb", "VI (Graves 2011)"), ("bbb", "PBP")}
    assert published_rows("yacht", ["deterministic"]) == []
    assert len(published_rows()) == len(PUBLISHED)
    assert n_splits_of("protein-tertiary-structure") == 5 and n_splits_of("yacht") == 20
    with pytest.raises(ValueError, match="dataset"):
        published_rows("boston")


def _row(dataset, method, rmse, nll):
    row = {"dataset": dataset, "method": method, "n_splits": 3, "wall_time_s": 1.0}
    for key, _ in COLUMNS[:2]:
        row[key], row[key + "_se"] = (rmse, 0.1) if key == "rmse" else (nll, 0.05)
    return row


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_report_prints_published_rows_beside_ours(tmp_path):
    rows = [_row("yacht", "deep_ensemble", 1.9, 1.7), _row("yacht", "mc_dropout", 2.2, 2.1),
            _row("concrete", "deterministic", 5.5, 3.2)]
    plain = markdown_table(rows)
    assert "published" not in plain and plain.count("\n") == 2 + 3
    table = markdown_table(rows, published=True)
    lines = table.splitlines()
    pub = [_cells(x) for x in lines if "published:" in x]
    # yacht: deep ensembles + Gal 2016 + Gal's grid rerun; concrete (deterministic): none
    assert len(pub) == 3 and all(c[0] == "yacht" for c in pub)
    # the published rows follow the yacht rows and precede concrete's
    first_pub = next(i for i, x in enumerate(lines) if "published:" in x)
    assert "| yacht | mc_dropout |" in lines[first_pub - 1]
    assert lines[-1].startswith("| concrete | deterministic |")
    de = next(c for c in pub if "Deep ensembles" in c[1])
    assert "Lakshminarayanan et al. 2017" in de[1] and de[2] == "20"
    assert de[3] == "1.58 ± 0.48 (sd)" and de[4] == "1.18 ± 0.21 (sd)"
    gal = next(c for c in pub if "Gal & Ghahramani 2016" in c[1])
    # printed as test LL -1.55: the NLL column shows +1.55
    assert gal[3] == "1.11 ± 0.09" and gal[4] == "1.55 ± 0.03"
    assert all(c[5] == "–" for c in pub)
    out = write_outputs({"rows": rows, "per_split": [], "settings": {}}, tmp_path)
    assert (out / "leaderboard.md").read_text() == table
    data = json.loads((out / "leaderboard.json").read_text())
    assert {(p["source"], p["dataset"]) for p in data["published"]} == {
        ("lakshminarayanan2017", "yacht"), ("gal2016", "yacht"), ("gal_grid2018", "yacht")}
    assert all(p["nll"] == -p["ll"] for p in data["published"])
