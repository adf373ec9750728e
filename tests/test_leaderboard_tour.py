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
        assert m[f"{name}_gap_epistemic_std"] > 0.01
        assert m[f"{name}_data_epistemic_std"] > 0.01
    for name in ("laplace", "swag", "sgmcmc"):
        # Laplace: the GLM variance J Σ Jᵀ; SWAG and SG-MCMC with the defaults that leave the
        # MAP (apps/uci/swag.py, sgmcmc.py). Measured with gap_bands' quick settings over
        # keys 0, 1, 2 (gap / data): Laplace 0.023-0.033 / 0.027-0.029, SWAG 0.015-0.024 /
        # 0.028-0.039, SG-MCMC 0.022-0.028 / 0.024-0.028; the old defaults gave ~0.001 and
        # Laplace's band of sampled means was 0. The upper bound catches a diverging chain or
        # SGD (SGLD step 0.5 instead of 0.1 gave 0.7 / 1.3).
        for where in ("gap", "data"):
            assert 0.007 < m[f"{name}_{where}_epistemic_std"] < 0.2, (name, where)
    for name in ROTATED_MODELS[:2]:       # quick mode's models
        assert 0.0 <= m[f"{name}_auroc_rot90"] <= 1.0
        assert len(m[f"{name}_entropy_by_angle"]) == len(m["rotation_angles"]) == 13
    assert f"{ROTATED_MODELS[2]}_auroc_rot90" not in m
    assert (out / "baselines_rotated_entropy.png").exists()
