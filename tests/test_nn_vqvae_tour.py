"""The tour's `vqvae` and `infogan` sections in quick mode (as `make demo` runs them), each
metric checked against what the section claims. Slow: ~35 s of CPU at XLA's default flags
(measured under load: the InfoGAN section 19-25 s).

Bounds come from the quick sections at seeds 0, 1 and 2 (measured 2026-12-06, numbers in the
comments), with margin.
"""

import json

import matplotlib.pyplot as plt
import pytest

from espresso_jax.apps.report import Report
from espresso_jax.apps.tour import run_tour


@pytest.fixture(scope="module")
def codes(tmp_path_factory):
    names = []

    def figure(self, fig, name, caption):
        names.append(name)
        plt.close(fig)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Report, "figure", figure)
        out = run_tour(0, tmp_path_factory.mktemp("codes"), quick=True,
                       sections=["vqvae", "infogan"])
    return json.loads((out / "metrics.json").read_text()), names


@pytest.mark.slow
def test_vqvae_section(codes):
    metrics, names = codes
    m = metrics["VQ-VAE on MNIST"]
    assert {"vqvae_reconstructions", "vqvae_usage"} <= set(names)
    assert m["n_epochs"] == 2 and m["codebook"] == "ema" and m["bits_per_image"] == 40.0
    # 2 epochs, 32 codes (seeds 0-2): reconstruction 40.3, 43.0, 40.8 per test image (the
    # training mean image alone leaves 55.9), perplexity 7.8, 9.8, 12.5, codes used 15, 23, 16
    assert m["test_reconstruction"] < 48.0
    assert 3.0 < m["test_perplexity"] <= 32.0 and m["test_codes_used"] >= 8


@pytest.mark.slow
def test_infogan_section(codes):
    metrics, names = codes
    m = metrics["InfoGAN on MNIST"]
    assert {"infogan_traversal_c1", "infogan_traversal_c2", "infogan_losses"} <= set(names)
    assert m["n_epochs"] == 3 and m["steps"] == 750 and m["paper_error"] == 0.05
    assert sorted(m["code_to_digit"]) == list(range(10))
    # 3 epochs at batch 32 (seeds 0-2): test error 0.601, 0.611, 0.585 (chance 0.90; the
    # settings before, 375 steps at batch 64: 0.741, 0.743, 0.813); Q's categorical bound
    # 1.95-2.03 nats of log 10 = 2.30; D(real) 0.67-0.69 against D(fake) 0.37-0.38
    assert m["test_error"] < 0.70
    assert m["last_mi_cat_nats"] > 1.8
    assert 0.0 < m["last_d_fake"] < m["last_d_real"] < 1.0
