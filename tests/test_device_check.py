"""The accelerator check (``benchmarks/device_check.py``, issue 15) runs end to end on the CPU
at its quick sizes, so it cannot rot; the roofline helpers it builds on count work as stated.

Cost: ~8 s of CPU for the quick check (compiles of a GEMM, a GMM fit of three lengths, a
small VAE epoch) plus a pytest child on tests/test_validation.py (~5 s, mostly imports).
"""

import importlib.util
import json
import math
import sys
from pathlib import Path

import jax.numpy as jnp
import pytest

from espresso_jax.apps import roofline

ROOT = Path(__file__).resolve().parents[1]


def _device_check():
    spec = importlib.util.spec_from_file_location(
        "device_check", ROOT / "benchmarks" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("device_check", module)
    spec.loader.exec_module(module)
    return module


def test_quick_device_check_writes_a_complete_report(tmp_path):
    report = _device_check().main(["--quick", "--out", str(tmp_path),
                                   "--tests", "tests/test_validation.py", "--benchmarks"])
    saved = json.loads((tmp_path / "device_check.json").read_text())
    assert saved["mode"] == "quick" and saved["device"]["backend"] == "cpu"
    assert saved["floors"]["gemm_n"] == 256 and saved["gmm"]["k"] == 4
    rates = [saved["floors"]["gemm_f32_flops"], saved["floors"]["bandwidth_bytes_per_s"],
             saved["gmm"]["achieved_flops"], saved["gmm"]["achieved_bytes_per_s"],
             saved["vae"]["achieved_flops"], saved["vae"]["examples_per_s"]]
    assert all(math.isfinite(r) and r > 0 for r in rates)
    # fractions are the achieved rates over the floors measured in the same run
    g, v, fl = saved["gmm"], saved["vae"], saved["floors"]
    assert g["fraction_of_gemm"] == pytest.approx(g["achieved_flops"] / fl["gemm_f32_flops"])
    assert v["fraction_of_gemm"] == pytest.approx(v["achieved_flops"] / fl["gemm_f32_flops"])
    assert v["examples_per_s"] == pytest.approx(100 / v["seconds_per_step"])
    # 4 vmapped restarts cost more than one fit but do not run 4 fits one after another
    assert g["restarts_over_one_fit"] > 0.5
    assert saved["peak_memory"][0] > 2 ** 20
    assert saved["benchmarks"] == []
    tests = saved["tests"]
    assert tests["returncode"] == 0 and tests["counts"]["passed"] >= 30, tests
    assert "failed" not in tests["counts"]
    text = (tmp_path / "device_check.md").read_text()
    assert "| f32 GEMM (n = 256) |" in text and "GMM EM iteration (N=4096, D=4, K=4)" in text
    assert report["vae"]["hidden"] == [64, 64]


def test_work_models_count_what_their_docstrings_say():
    # 2-3-1 network, batch 5: 6 * 5 * (2*3 + 3*1) = 270
    assert roofline.mlp_step_flops([2, 3, 1], 5) == 270.0
    # GMM, n=10, d=2, k=3: 10*3*(12 + 10 + 4) FLOPs; 4*(2*10*2 + 2*10*3) bytes
    assert roofline.gmm_em_iteration_work(10, 2, 3) == (780.0, 400.0)
    assert roofline.gmm_em_iteration_work(10, 2, 3, itemsize=8)[1] == 800.0


def test_rates_are_work_over_time():
    g = roofline.gemm_rate(64, dtype=jnp.float32, repeats=2)
    assert g.work == 2 * 64 ** 3 and g.per_second == pytest.approx(g.work / g.seconds)
    b = roofline.bandwidth(2 ** 20, repeats=2)
    assert b.size == 2 ** 18 and b.work == 2 * 2 ** 20
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        roofline.median_seconds(lambda: None, 0)
