"""The uncertainty leaderboard (apps/leaderboard): distances between mixture predictives
against closed forms, PIT calibration and coverage against scipy, the refit predictive against
the protocol's own test scores, the NUTS cache, and (slow) the command end to end."""

from __future__ import annotations

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from espresso_jax.apps.leaderboard.agreement import mixture_distances
from espresso_jax.apps.leaderboard.nuts_cache import NUTSSettings, nuts_predictive
from espresso_jax.apps.leaderboard.registry import METHODS, get_method
from espresso_jax.apps.leaderboard.report import markdown_table
from espresso_jax.apps.leaderboard.runner import run_leaderboard
from espresso_jax.apps.leaderboard.scores import calibration_error, split_scores
from espresso_jax.datasets.uci import load_uci

# Quadrature: 2048 trapezoid points over +-8 sd (step < 0.01 sd) have an error far below
# 1e-4 on these smooth integrands; float32 CDFs add ~1e-6. Tolerance 1e-3 (absolute).
ATOL = 1e-3


def _one_gaussian(mean, sd, n=1):
    return jnp.full((1, n), mean, jnp.float32), jnp.full((1, n), sd ** 2, jnp.float32)


@pytest.mark.parametrize("shift", [0.3, 1.0, 2.5])
def test_shifted_gaussians_w1_and_tv_closed_form(shift):
    w1, tv = mixture_distances(*_one_gaussian(0.0, 1.0), *_one_gaussian(shift, 1.0))
    # W1 of a location shift is the shift; TV of N(0,1) vs N(d,1) is 2 Phi(d/2) - 1.
    assert float(w1[0]) == pytest.approx(shift, abs=ATOL)
    assert float(tv[0]) == pytest.approx(2 * stats.norm.cdf(shift / 2) - 1, abs=ATOL)


def test_scaled_gaussians_w1_closed_form():
    # Quantile coupling of N(0, s1^2) and N(0, s2^2): W1 = |s1 - s2| E|Z| = |s1 - s2| sqrt(2/pi).
    w1, tv = mixture_distances(*_one_gaussian(0.0, 0.5), *_one_gaussian(0.0, 2.0))
    assert float(w1[0]) == pytest.approx(1.5 * math.sqrt(2 / math.pi), abs=ATOL)
    # TV: the densities cross at +-c with c^2 = 2 log(s2/s1) / (1/s1^2 - 1/s2^2).
    s1, s2 = 0.5, 2.0
    c = math.sqrt(2 * math.log(s2 / s1) / (1 / s1 ** 2 - 1 / s2 ** 2))
    expected = (2 * stats.norm.cdf(c / s1) - 1) - (2 * stats.norm.cdf(c / s2) - 1)
    assert float(tv[0]) == pytest.approx(expected, abs=ATOL)


def test_identical_mixtures_are_at_distance_zero():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(7, 5)).astype(np.float32)
    variances = rng.uniform(0.1, 2.0, size=(7, 5)).astype(np.float32)
    order = rng.permutation(7)                       # the same mixture, components reordered
    w1, tv = mixture_distances(means, variances, means[order], variances[order])
    np.testing.assert_allclose(np.asarray(w1), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(tv), 0.0, atol=1e-5)
    # and a different mixture is not: W1 of a shift by 0.7 of every component is 0.7
    w1, _ = mixture_distances(means, variances, means + 0.7, variances)
    np.testing.assert_allclose(np.asarray(w1), 0.7, atol=ATOL)


def test_distance_input_errors():
    with pytest.raises(ValueError, match="means_b"):
        mixture_distances(np.zeros((2, 3)), 1.0, np.zeros((2, 4)), 1.0)
    with pytest.raises(ValueError, match="variances_a"):
        mixture_distances(np.zeros((2, 3)), -np.ones((2, 3)), np.zeros((2, 3)), 1.0)
    with pytest.raises(ValueError, match="method"):
        get_method("no_such_method")
    with pytest.raises(ValueError, match="sets"):
        run_leaderboard(sets=["no_such_set"], nuts=None)


def test_pit_calibration_and_coverage_against_scipy():
    n = 2000
    u = (np.arange(n) + 0.5) / n
    y = stats.norm.ppf(u)                            # targets at the N(0,1) quantiles u
    calibrated = split_scores(y, np.zeros((1, n)), 1.0, y_std=2.0)
    assert calibrated["calibration"] < 1e-3
    assert calibrated["coverage_90"] == pytest.approx(0.9, abs=2 / n)
    assert calibrated["coverage_95"] == pytest.approx(0.95, abs=2 / n)
    # NLL in original units: the mean of -log N(y; 0, 1) plus log y_std.
    assert calibrated["nll"] == pytest.approx(-stats.norm.logpdf(y).mean() + math.log(2.0),
                                              abs=1e-4)
    assert calibrated["rmse"] == pytest.approx(2.0 * np.sqrt(np.mean(y ** 2)), rel=1e-5)
    # Too wide (sd 2): PIT u' = Phi(Phi^-1(u) / 2); the 90 % interval holds
    # P(|Z| <= 2 z_0.95) of the targets.
    wide = split_scores(y, np.zeros((1, n)), 4.0, y_std=1.0)
    assert wide["coverage_90"] == pytest.approx(2 * stats.norm.cdf(2 * 1.6449) - 1, abs=2 / n)
    u_wide = stats.norm.cdf(y / 2)
    levels = np.arange(1, 20) * 0.05
    expected = np.mean(np.abs((u_wide[:, None] <= levels).mean(0) - levels))
    assert wide["calibration"] == pytest.approx(expected, abs=1e-9)
    assert calibration_error(u_wide) > 0.05


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    cache = tmp_path_factory.mktemp("nuts")
    nuts = NUTSSettings(num_warmup=10, num_samples=10, max_tree_depth=3, n_hidden=10)
    snapshots: list[dict] = []
    result = run_leaderboard(0, sets=["yacht"], methods=["deterministic", "bbb"],
                             n_splits=2, n_epochs=2, n_samples=20, nuts=nuts, cache_dir=cache,
                             checkpoint=snapshots.append)
    return result, cache, nuts, snapshots


def test_refit_predictive_reproduces_the_protocol(board):
    result, *_ = board
    rows = [r for r in result["per_split"] if r["method"] != "nuts"]
    assert len(rows) == 4
    for r in rows:
        # the leaderboard's scores come from the re-trained refit networks; the protocol
        # scored its own: the same networks and keys give the same numbers (float32).
        assert r["scores"]["rmse"] == pytest.approx(r["protocol_rmse"], rel=1e-4)
        assert -r["scores"]["nll"] == pytest.approx(r["protocol_ll"], rel=1e-4, abs=1e-4)
        assert {"w1_vs_nuts", "tv_vs_nuts", "mean_rmse_vs_nuts"} <= set(r["scores"])
        assert 0.0 <= r["scores"]["tv_vs_nuts"] <= 1.0


def test_summary_rows_and_table(board):
    result, *_ = board
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows) == {"nuts", "deterministic", "bbb"}
    per = [r["scores"]["w1_vs_nuts"] for r in result["per_split"]
           if r["method"] == "bbb"]
    assert rows["bbb"]["w1_vs_nuts"] == pytest.approx(np.mean(per), rel=1e-9)
    table = markdown_table(result["rows"])
    assert table.count("\n") == 2 + 3 and "| yacht | nuts | 2 |" in table
    json.dumps(result)  # everything is JSON-serialisable


def test_the_board_is_checkpointed_after_every_method(board):
    result, _, _, snapshots = board
    # one snapshot per finished method, each the board so far: a run stopped after the first
    # method keeps NUTS's and the deterministic net's rows
    assert [[r["method"] for r in snap["rows"]] for snap in snapshots] == [
        ["nuts", "deterministic"], ["nuts", "deterministic", "bbb"]]
    assert len(snapshots[0]["per_split"]) == 4
    assert not snapshots[-1]["settings"]["complete"] and result["settings"]["complete"]
    for key in ("rows", "per_split"):
        assert snapshots[-1][key] == result[key]
    assert snapshots[0]["settings"]["methods"] == ["deterministic", "bbb"]


def test_a_resumed_board_runs_only_the_missing_methods(board, monkeypatch):
    from espresso_jax.apps.leaderboard import runner

    result, cache, nuts, snapshots = board
    ran = []
    real = runner.run_protocol

    def recording(key, ds, method, **kwargs):
        ran.append(method.name)
        return real(key, ds, method, **kwargs)

    monkeypatch.setattr(runner, "run_protocol", recording)
    args = dict(sets=["yacht"], methods=["deterministic", "bbb"], n_splits=2, n_epochs=2,
                n_samples=20, nuts=nuts, cache_dir=cache)
    lines: list[str] = []
    resumed = run_leaderboard(0, resume=snapshots[0], log=lines.append, **args)
    assert ran == ["bbb_learned_noise"]   # the registry's "bbb": BBB with a learned noise
    assert "yacht: deterministic kept from the resumed run" in lines
    # the kept rows and the re-run ones: the board of one uninterrupted run (but its clock)
    def scores(rows):
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]

    assert scores(resumed["rows"]) == scores(result["rows"])
    assert resumed["rows"][1]["wall_time_s"] == result["rows"][1]["wall_time_s"]   # kept
    for name, value in [("n_epochs", 3), ("seed", 1)]:
        with pytest.raises(ValueError, match=f"resume: the earlier board was run with {name}="):
            run_leaderboard(**{"seed": 0, **args, name: value}, resume=snapshots[0])


def test_nuts_cache_reloads_the_same_predictive(board):
    _, cache, nuts, _ = board
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 2 and len(list(cache.glob("*.json"))) == 2
    again = nuts_predictive(load_uci("yacht"), 1, nuts, cache)   # no sampling: from disk
    assert again.cached
    stored = np.load(next(p for p in files if "_split1_" in p.name))
    np.testing.assert_array_equal(again.means, stored["means"])
    assert again.means.shape[0] == 10 and again.settings["num_samples"] == 10


def test_a_diverged_method_is_listed_and_the_board_goes_on(monkeypatch, tmp_path):
    from espresso_jax.apps.leaderboard import runner

    calls = []

    def diverging(key, ds, method, **kwargs):
        calls.append(method.name)
        raise FloatingPointError(f"{ds.name}: non-finite test metrics (training diverged?)")

    monkeypatch.setattr(runner, "run_protocol", diverging)
    lines: list[str] = []
    snapshots: list[dict] = []
    out = run_leaderboard(sets=["yacht"], methods=["swag", "deterministic"], n_splits=1,
                          nuts=None, log=lines.append, checkpoint=snapshots.append)
    assert [len(snap["settings"]["failed"]) for snap in snapshots] == [1, 2]
    assert calls == ["swag", "deterministic"]     # the second method still ran
    assert out["rows"] == [] and [f["method"] for f in out["settings"]["failed"]] == [
        "swag", "deterministic"]
    # a board where every method failed still writes its three outputs
    from espresso_jax.apps.leaderboard.report import write_outputs

    written = write_outputs(out, tmp_path / "empty")
    assert (written / "leaderboard.png").stat().st_size > 0
    assert json.loads((written / "leaderboard.json").read_text())["settings"]["failed"]
    assert "yacht: swag failed" in lines[0] and "diverged" in lines[0]


def test_registry_factories_return_methods():
    for name, factory in METHODS.items():
        method = factory()
        assert callable(method.predict) and method.name, name


@pytest.mark.slow
def test_leaderboard_command_quick(tmp_path):
    from espresso_jax.apps.cli import main

    out = tmp_path / "lb"
    # one method keeps the CPU cost down (compiles dominate); the default test runs two
    assert main(["leaderboard", "--quick", "--methods", "deterministic", "--out", str(out),
                 "--cache", str(tmp_path / "cache")]) == 0
    data = json.loads((out / "leaderboard.json").read_text())
    assert {r["method"] for r in data["rows"]} == {"nuts", "deterministic"}
    assert data["settings"]["n_splits"] == 2 and data["settings"]["sets"] == ["yacht"]
    assert (out / "leaderboard.png").stat().st_size > 0
    table = (out / "leaderboard.md").read_text()
    assert "| yacht | deterministic | 2 |" in table and "| yacht | nuts | 2 |" in table
    assert main(["leaderboard", "--quick", "--methods", "nope", "--out", str(out)]) == 2


def test_an_interrupted_command_keeps_the_finished_methods(tmp_path, monkeypatch, capsys):
    from espresso_jax.apps.cli import main
    from espresso_jax.apps.leaderboard import runner

    def interrupted_after_one_method(seed, *, checkpoint, **kwargs):
        scores = {"rmse": 1.0, "nll": 2.0}
        done = [{"dataset": "yacht", "method": "deterministic", "split": 0,
                 "wall_time_s": 3.0, "scores": scores}]
        checkpoint({"rows": runner.summarize_rows(done), "per_split": done,
                    "settings": {"failed": []}})
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_leaderboard", interrupted_after_one_method)
    out = tmp_path / "lb"
    assert main(["leaderboard", "--no-nuts", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"interrupted; the finished methods are in {out}/leaderboard." in err
    kept = json.loads((out / "leaderboard.json").read_text())
    assert [r["method"] for r in kept["rows"]] == ["deterministic"]
    # --resume hands the checkpointed board to the run (and only with --resume)
    seen = []

    def finishing(seed, *, resume, checkpoint, **kwargs):
        seen.append(resume)
        return resume or {"rows": [], "per_split": [], "settings": {}}

    monkeypatch.setattr(runner, "run_leaderboard", finishing)
    assert main(["leaderboard", "--no-nuts", "--resume", "--out", str(out)]) == 0
    assert main(["leaderboard", "--no-nuts", "--out", str(out)]) == 0
    assert main(["leaderboard", "--no-nuts", "--resume", "--out", str(tmp_path / "new")]) == 0
    assert seen[0]["per_split"] == kept["per_split"] and seen[1:] == [None, None]
    capsys.readouterr()
    # interrupted before any method finished: nothing was written, and it says so
    monkeypatch.setattr(runner, "run_leaderboard",
                        lambda seed, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["leaderboard", "--no-nuts", "--out", str(tmp_path / "none")]) == 130
    assert "interrupted; nothing written" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
