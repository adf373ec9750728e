"""The tour's two baselines sections (apps/tour_baselines.py) in quick mode (slow; compile-bound:
one training compile per method)."""

import json

import pytest

from espresso_jax.apps.leaderboard.registry import METHODS
from espresso_jax.apps.tour import run_tour
from espresso_jax.apps.tour_baselines import ROTATED_MODELS


@pytest.mark.slow
def test_baselines_section_quick(tmp_path):
    out = run_tour(0, tmp_path / "r", quick=True,
                   sections=["baselines gap", "baselines rotated digit"])
    gap, rot = json.loads((out / "metrics.json").read_text()).values()
    m = {**gap, **rot}
    # One Gaussian per input: the deterministic net has no epistemic spread at all.
    assert m["deterministic_gap_epistemic_std"] == 0.0
    for name in METHODS:
        assert (out / f"baselines_gap_{name}.png").exists()
    for name in ("mc_dropout", "bbb", "deep_ensemble"):
        # weight noise / dropout masks / independent members spread the sampled means (quick
        # run, seed 0: MC dropout 0.08 in the gap and 0.20 on the data, BBB 0.16 and 0.23,
        # the deep ensemble 0.028 and 0.023).
        # Not asserted, an open defect of the section (measured with the same run): Laplace's
        # GLM predictive puts its epistemic variance into each point's precision, so its band
        # of sampled means is 0; SWAG (0.002 / 0.003) and SG-MCMC (0.0008 / 0.0014) barely
        # move from the MAP weights with the quick settings.
        assert m[f"{name}_gap_epistemic_std"] > 0.01
        assert m[f"{name}_data_epistemic_std"] > 0.01
    for name in ROTATED_MODELS[:2]:       # quick mode's models
        assert 0.0 <= m[f"{name}_auroc_rot90"] <= 1.0
        assert len(m[f"{name}_entropy_by_angle"]) == len(m["rotation_angles"]) == 13
    assert f"{ROTATED_MODELS[2]}_auroc_rot90" not in m
    assert (out / "baselines_rotated_entropy.png").exists()
