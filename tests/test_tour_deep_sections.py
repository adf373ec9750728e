"""The tour's four deep sections (VAE, GANs, BNN regression with a gap and the aleatoric /
epistemic split, BNNs on MNIST) in quick mode, as ``make demo`` runs them, each metric checked
against what the section claims.

One run of the four cost ~75 s wall and ~106 s of CPU on an idle 2-core Xeon with the
compiler settings of `make test` (~195 s wall at XLA's defaults, mostly compiling). The GAN
section's MNIST part now trains 1,000 steps and a small classifier that reads its samples
(~10 s more CPU: 40.1 s against 30.6 s for the whole section at XLA's defaults, under load).
The MNIST section now trains its four nets on all 8k digits for 5 epochs (below 5 % test
error): under `make test`'s compiler settings (LLVM level 0) that costs 126 s of CPU instead
of 39 s, at XLA's defaults 67-73 s instead of 48 s (2026-12-07, loaded machine), so it runs in
the slow suite (XLA's default flags), from its own module fixture; the other three stay in the
default suite. Bounds
come from the quick tour at seeds 0, 1 and 2 (measured 2026-12-06; the numbers are in each
comment), with margin; they also hold with `make test`'s compiler settings (level 0, legacy
fusion emitters), whose rounding changes the trajectories slightly.
"""

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from espresso_jax.apps.report import Report
from espresso_jax.apps.tour import run_tour


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Report, "figure", lambda self, fig, name, caption: plt.close(fig))
        out = run_tour(0, tmp_path_factory.mktemp("deep"), quick=True,
                       sections=["vae", "gan", "bnn regression"])
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def mnist_section(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Report, "figure", lambda self, fig, name, caption: plt.close(fig))
        out = run_tour(0, tmp_path_factory.mktemp("mnist"), quick=True, sections=["bnn mnist"])
    return json.loads((out / "metrics.json").read_text())


def test_vae_section(deep):
    m = deep["Variational auto-encoder on MNIST"]
    assert m["n_train"] == 8000 and m["n_epochs"] == 3 and m["iwae_subset_size"] == 100
    # Test ELBO after 3 epochs: -146.3, -147.4, -149.2 (seeds 0-2); train within 1.3-2.6 nats.
    assert -160.0 < m["test_elbo"] < -135.0
    assert abs(m["train_elbo_last_epoch"] - m["test_elbo"]) < 6.0
    # IWAE_100 is a tighter bound than the ELBO on the same 100 images: 5.9-6.7 nats tighter.
    assert m["test_iwae_100_subset"] - m["test_elbo_subset"] > 2.0
    # A 2-D latent space fits MNIST far worse: 35-40 nats below the ELBO of the main model.
    assert m["test_elbo_2d"] < m["test_elbo"] - 20.0


def test_gan_section(deep):
    m = deep["Generative adversarial networks"]
    # Quick ring run (1,920 steps): 8, 8 and 5 of the 8 modes hit; the default-suite ring test
    # trains longer and bounds coverage tighter.
    assert m["ring_steps"] == 1920 and 4 <= m["ring_modes_hit"] <= 8
    assert 0.0 < m["ring_high_quality_fraction"] <= 1.0
    # MNIST after 4 epochs (1,000 steps): the discriminator still tells real from generated
    # images on average, D(real) - D(fake) = 0.13-0.15; neither player has collapsed.
    assert m["mnist_steps"] == 1000
    assert m["mnist_last_d_real"] - m["mnist_last_d_fake"] > 0.02
    assert 0.5 < m["mnist_last_d_loss"] < 2.0 and 0.3 < m["mnist_last_g_loss"] < 3.0
    # The samples are digits: a 784-256-10 classifier trained in the section (test error
    # 0.070-0.076) reads 1,000 of them with mean top probability 0.697, 0.711, 0.728 (seeds
    # 0-2; 0.91 on real test digits), 21-28 % of them above 0.9 (76 % of real digits), and
    # every digit class gets >= 2 % of them. The settings before this section's retuning
    # (MLP GAN without BatchNorm, Adam 2e-4, 250 steps), whose samples were noise, gave
    # mean top probability 0.45, 0.31, 0.35, none above 0.9 and 1, 4, 2 classes covered.
    # Seed 0 with this file's compiler settings: 0.718, 25 %, 10 classes.
    assert m["mnist_classifier_test_error"] < 0.15
    assert m["mnist_classifier_confidence"] > 0.6
    assert m["mnist_confident_fraction"] > 0.12
    assert m["mnist_classes_covered"] >= 8


def test_bnn_regression_section(deep):
    m = deep["Bayesian neural networks: regression with a gap"]
    # A point estimate has no epistemic spread at all.
    assert m["deterministic_gap_epistemic_std"] == 0.0
    assert m["deterministic_data_epistemic_std"] == 0.0
    # MC dropout's epistemic std is larger in the gap than on the data: ratio 1.38-1.76.
    assert m["mc_dropout_gap_epistemic_std"] > 1.15 * m["mc_dropout_data_epistemic_std"]
    # BBB's ratio in quick mode is 0.89-1.29 (not a claim at this size); both spreads are
    # non-zero. RMSEs on the training inputs: 0.029-0.110 over seeds 0-2.
    assert m["bbb_gap_epistemic_std"] > 0.02 and m["bbb_data_epistemic_std"] > 0.02
    for name in ("deterministic", "bbb", "mc_dropout"):
        assert 0.0 < m[f"{name}_rmse"] < 0.2, name
    split = deep["Epistemic and aleatoric uncertainty"]
    # The heteroscedastic head recovers the generating noise sd: correlation 0.962-0.991,
    # mean absolute error 0.028-0.042; epistemic std in the gap 1.26-1.50 x that on the data.
    assert split["aleatoric_std_corr_with_truth"] > 0.93
    assert split["aleatoric_std_mae"] < 0.07
    assert split["gap_epistemic_std"] > 1.1 * split["data_epistemic_std"]


@pytest.mark.slow   # ~70 s of CPU at XLA's default flags (see the module docstring)
def test_bnn_mnist_section(mnist_section):
    m = mnist_section["Bayesian neural networks on MNIST"]
    # Quick mode trains on all 8k digits (5 epochs, batch 200, Adam 6e-3 with a cosine decay)
    # and scores all 2,000 test digits. Test errors (%), seeds 0, 1, 2 at XLA's default flags:
    # deterministic 3.50, 3.90, 3.10; MC dropout 3.65, 3.50, 3.60; BBB Gaussian prior
    # 2.90, 3.35, 3.35; scale mixture 4.05, 4.25, 4.10; seed 0 under make test's flags
    # 3.35, 3.65, 3.00, 3.95 (same order). The binomial s.e. of an error near 4 % on 2,000
    # digits is 0.44 points, so 5 % is two s.e. above the largest value. Before (1,000 digits,
    # 2 epochs) every net was at 18.6-26.6 %; a cosine decaying over one epoch instead of the
    # run (lr 0 after epoch 1) gives the deterministic net 5.95-7.2 % (three keys,
    # tests/test_bnn_experiments.py).
    # NLL 0.103-0.139, ECE 0.008-0.026 (bounds about twice the largest).
    for name in ("deterministic", "mc_dropout", "bbb_gaussian", "bbb_mixture"):
        assert m[f"{name}_error"] < 5.0, name
        assert 0.0 < m[f"{name}_nll"] < 0.25 and 0.0 <= m[f"{name}_ece"] < 0.05, name
    angles = np.asarray(m["rotation_angles"])
    np.testing.assert_array_equal(angles, np.arange(0.0, 181.0, 15.0))
    for name in ("mc_dropout", "bbb_mixture"):
        entropy = np.asarray(m[f"{name}_entropy_by_angle"])
        bald = np.asarray(m[f"{name}_bald_by_angle"])
        # Turning the digit on its side raises the predictive entropy: at 90 degrees +0.52,
        # +1.08, +1.16 (dropout) and +0.39, +0.67, +0.17 (BBB) nats above the upright digit,
        # the largest value over 30-150 degrees +0.52, +1.08, +1.16 and +0.43, +0.67, +0.61
        # (seeds 0-2). The first test '1' has a stray stroke, so the trained nets are unsure
        # of it upright (0.29-0.60 nats), and the mean over 30-150 degrees, which includes
        # angles they confidently call another digit, is -0.03 to +0.48 above it: no longer
        # asserted (it was with the 20 %-error nets of the old quick settings).
        assert entropy[6] > entropy[0] + 0.15, name
        assert entropy[2:11].max() > entropy[0] + 0.3, name
        assert np.all(entropy >= 0.0) and np.all(entropy <= np.log(10.0) + 1e-5), name
        # Mutual information is non-negative and at most the entropy; the passes disagree on
        # the rotated digit: mean BALD over 30-150 degrees 0.198, 0.228, 0.187 (dropout) and
        # 0.0132, 0.0146, 0.0140 (BBB, whose posterior std is still near sigma_init), seeds
        # 0-2; the minimum over the angles (BBB at 180 degrees: 0.0003-0.0005) is below the
        # 1e-3 asserted for the old 20 %-error nets.
        assert np.all(bald >= 0.0) and np.all(bald <= entropy + 1e-5), name
        assert bald[2:11].mean() > {"mc_dropout": 0.08, "bbb_mixture": 0.005}[name], name
