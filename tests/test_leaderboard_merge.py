"""Merging leaderboard runs (apps/leaderboard/merge.py, `espresso-jax leaderboard-merge`).

Synthetic per-split scores, no training: the merged board's means and standard errors are
checked against numpy over the pooled splits, a later run's (data set, method) replaces the
earlier one's as a whole, failures are kept or cleared, the order is fixed, bad inputs are a
ValueError naming the path, and the command writes the three outputs (exit 0) or one error
line (exit 2, nothing written).
"""

import json

import numpy as np
import pytest

from espresso_jax.apps.cli import main
from espresso_jax.apps.leaderboard.merge import load_run, merge_runs
from espresso_jax.apps.leaderboard.report import write_outputs
from espresso_jax.apps.leaderboard.runner import summarize_rows


def _split(dataset, method, split, rmse, nll, wall=10.0):
    return {"dataset": dataset, "method": method, "split": split, "wall_time_s": wall,
            "scores": {"rmse": rmse, "nll": nll, "calibration": 0.01 * split}}


def _run(per_split, failed=(), seed=0):
    return {"rows": summarize_rows(per_split), "per_split": per_split,
            "settings": {"seed": seed, "failed": list(failed)}}


RNG = np.random.default_rng(0)
KIN_DET = [_split("kin8nm", "deterministic", i, *RNG.uniform(0.05, 0.1, 2)) for i in range(4)]
KIN_SWAG = [_split("kin8nm", "swag", i, *RNG.uniform(0.05, 0.1, 2)) for i in range(4)]
YACHT_NUTS = [_split("yacht", "nuts", i, *RNG.uniform(0.3, 1.0, 2)) for i in range(3)]
YACHT_BBB = [_split("yacht", "bbb", i, *RNG.uniform(1.0, 2.0, 2)) for i in range(3)]
SWAG_RERUN = [_split("kin8nm", "swag", i, *RNG.uniform(0.05, 0.1, 2), wall=99.0)
              for i in range(4)]


def _row(result, dataset, method):
    (row,) = [r for r in result["rows"] if (r["dataset"], r["method"]) == (dataset, method)]
    return row


def test_merged_rows_are_the_pooled_splits_summarised():
    first = _run(KIN_SWAG + YACHT_BBB)
    second = _run(YACHT_NUTS[::-1] + KIN_DET)
    merged = merge_runs([first, second], sources=["a", "b"])
    for pairs in (KIN_DET, KIN_SWAG, YACHT_NUTS, YACHT_BBB):
        row = _row(merged, pairs[0]["dataset"], pairs[0]["method"])
        nll = np.array([r["scores"]["nll"] for r in pairs])
        assert row["n_splits"] == len(pairs)
        np.testing.assert_allclose(row["nll"], nll.mean(), rtol=1e-12)
        # the UCI reference code's convention: population std / sqrt(S)
        np.testing.assert_allclose(row["nll_se"], nll.std() / np.sqrt(len(nll)), rtol=1e-12)
    # order: data sets as in UCI_NAMES (kin8nm before yacht), nuts first, then the registry
    assert [(r["dataset"], r["method"]) for r in merged["rows"]] == [
        ("kin8nm", "deterministic"), ("kin8nm", "swag"), ("yacht", "nuts"), ("yacht", "bbb")]
    assert [r["split"] for r in merged["per_split"] if r["method"] == "nuts"] == [0, 1, 2]
    assert [s["source"] for s in merged["settings"]["merged_from"]] == ["a", "b"]
    assert merged["settings"]["replaced"] == []


def test_a_later_run_replaces_the_whole_pair_and_clears_its_failure():
    failure = {"dataset": "kin8nm", "method": "swag", "error": "non-finite weights"}
    other = {"dataset": "yacht", "method": "sgmcmc", "error": "non-finite"}
    first = _run(KIN_DET + KIN_SWAG, failed=[other])
    second = _run(KIN_DET[:2], failed=[failure])            # fewer splits of deterministic
    third = _run(SWAG_RERUN)
    merged = merge_runs([first, second, third], sources=["a", "b", "c"])
    det = _row(merged, "kin8nm", "deterministic")
    assert det["n_splits"] == 2                             # b's two splits, not a mix with a's
    np.testing.assert_allclose(det["rmse"], np.mean([r["scores"]["rmse"] for r in KIN_DET[:2]]))
    swag = _row(merged, "kin8nm", "swag")
    assert swag["wall_time_s"] == 99.0
    np.testing.assert_allclose(swag["rmse"], np.mean([r["scores"]["rmse"] for r in SWAG_RERUN]))
    assert merged["settings"]["replaced"] == [
        {"dataset": "kin8nm", "method": "deterministic", "replaced": "a", "by": "b"},
        {"dataset": "kin8nm", "method": "swag", "replaced": "a", "by": "c"}]
    # b's swag failure is cleared by c's rerun; a's sgmcmc failure stays, with its source
    assert merged["settings"]["failed"] == [{**other, "run": "a"}]


def test_a_merged_board_merges_again_and_matches_one_run(tmp_path):
    one_run = _run(KIN_DET + YACHT_NUTS + YACHT_BBB)
    write_outputs(_run(KIN_DET), tmp_path / "a")
    write_outputs(_run(YACHT_NUTS + YACHT_BBB), tmp_path / "b")
    merged = merge_runs([load_run(tmp_path / "a"), load_run(tmp_path / "b" / "leaderboard.json")])
    again = merge_runs([merged])
    for board in (merged, again):
        assert sorted(board["rows"], key=lambda r: (r["dataset"], r["method"])) == sorted(
            one_run["rows"], key=lambda r: (r["dataset"], r["method"]))


def test_bad_inputs_name_the_path(tmp_path):
    with pytest.raises(ValueError, match="runs must not be empty"):
        merge_runs([])
    with pytest.raises(ValueError, match="sources has 1 labels for 2 runs"):
        merge_runs([_run(KIN_DET), _run(KIN_SWAG)], sources=["a"])
    with pytest.raises(ValueError, match=r"run '.*nowhere': no leaderboard.json"):
        load_run(tmp_path / "nowhere")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"run '.*broken.json': .* is not valid JSON"):
        load_run(broken)
    other = tmp_path / "metrics.json"
    other.write_text(json.dumps({"gmm": {"ll": 1.0}}))
    with pytest.raises(ValueError, match=r"run '.*metrics.json': .* not a leaderboard result"):
        load_run(other)


def test_merge_command_writes_the_board_or_one_error_line(tmp_path, capsys):
    write_outputs(_run(KIN_DET + KIN_SWAG), tmp_path / "a")
    write_outputs(_run(SWAG_RERUN + YACHT_BBB), tmp_path / "b")
    out = tmp_path / "board"
    assert main(["leaderboard-merge", str(tmp_path / "a"), str(tmp_path / "b"),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"kin8nm / swag: {tmp_path / 'b'} replaces {tmp_path / 'a'}" in printed
    assert {p.name for p in out.iterdir()} == {"leaderboard.md", "leaderboard.json",
                                               "leaderboard.png"}
    board = json.loads((out / "leaderboard.json").read_text())
    assert len(board["rows"]) == 3 and len(board["per_split"]) == 4 + 4 + 3
    assert "| yacht | bbb | 3 |" in (out / "leaderboard.md").read_text()
    assert any("published:" in line for line in printed.splitlines())   # yacht's BBB rows
    missing = tmp_path / "missing"
    assert main(["leaderboard-merge", str(tmp_path / "a"), str(missing),
                 "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("espresso-jax: error: run ")
    assert "missing" in err[0] and not (tmp_path / "none").exists()
