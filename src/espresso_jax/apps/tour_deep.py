"""The tour's deep-model sections: VAE, GANs, Bayesian neural networks and uncertainty.

Each ``_section_*`` takes ``(key, report, quick)`` like the sections of
:mod:`espresso_jax.apps.tour` and calls the experiment functions of
:mod:`espresso_jax.apps.experiments.generative` and :mod:`espresso_jax.apps.experiments.bnn_mnist`;
``quick`` shortens training, never the code path.
"""

from __future__ import annotations

import jax

from espresso_jax.apps.experiments import bnn_mnist as bnn_experiments
from espresso_jax.apps.experiments import bnn_toys as bnn_regression
from espresso_jax.apps.experiments import generative as nn_experiments
from espresso_jax.apps.report import Report


def _add(report: Report, prefix: str, figures: dict, captions: dict[str, str]) -> None:
    for name, caption in captions.items():
        report.figure(figures[name], f"{prefix}_{name}", caption)


def _section_vae(key: jax.Array, report: Report, quick: bool) -> None:
    options = (dict(n_epochs=3, n_epochs_2d=3, iwae_k=100, iwae_subset=100) if quick else
               dict(n_epochs=100, n_epochs_2d=50, iwae_k=5000, iwae_subset=500))
    metrics, figures = nn_experiments.vae_mnist(key, progress=False, **options)
    report.section(
        "Variational auto-encoder on MNIST",
        f"784-500-500-20 Bernoulli VAE (Kingma & Welling 2014), SGVB estimator B, Adam, "
        f"{options['n_epochs']} epochs on the 8k training digits, dynamically binarised. The "
        f"test ELBO uses all 2,000 test digits; IWAE-{options['iwae_k']} the first "
        f"{options['iwae_subset']}. The manifold decodes a 2-D latent model on a grid through "
        "the Gaussian inverse CDF (their Fig. 4).")
    _add(report, "vae", figures, {
        "manifold": "Learned 2-D MNIST manifold",
        "samples": "Samples (decoder means) from the 20-D model",
        "reconstructions": "Test digits (top) and reconstructions (bottom)",
        "latent": "Test-set posterior means of the 2-D model, by digit"})
    report.metrics(metrics)


def _section_gan(key: jax.Array, report: Report, quick: bool) -> None:
    ring_metrics, ring_figures = nn_experiments.gan_ring(
        jax.random.fold_in(key, 0), n_epochs=30 if quick else 200, progress=False)
    mnist_metrics, mnist_figures = nn_experiments.gan_mnist(
        jax.random.fold_in(key, 1), n_epochs=4 if quick else 30, progress=False)
    report.section(
        "Generative adversarial networks",
        "Non-saturating MLP GAN on the ring of 8 Gaussians (std 0.02): a mode is hit when it "
        "holds at least 20 of 2,500 samples within 3 std; high-quality samples lie within 3 std "
        "of a centre. Then an MLP GAN on the 8k MNIST training digits: BatchNorm generator "
        "64-128-256-784, LeakyReLU discriminator 784-256-128-1, batch 32, Adam(2e-3, b1=0.5), "
        "real label 0.9, "
        f"{mnist_metrics['steps']} steps. A 784-256-10 classifier trained on the same digits "
        f"reads 1,000 samples with mean top probability "
        f"{mnist_metrics['classifier_confidence']:.2f} (real test digits: "
        f"{mnist_metrics['test_digits_confidence']:.2f}) and assigns at least 2 % of them to "
        f"{mnist_metrics['classes_covered']} of the 10 digits.")
    _add(report, "gan_ring", ring_figures, {"samples": "GAN samples over the 8-Gaussian data",
                                            "losses": "Discriminator and generator losses"})
    _add(report, "gan_mnist", mnist_figures, {"samples": "MNIST GAN samples",
                                              "losses": "MNIST GAN losses"})
    report.metrics({**{f"ring_{k}": v for k, v in ring_metrics.items()},
                    **{f"mnist_{k}": v for k, v in mnist_metrics.items()}})


def _section_bnn_regression(key: jax.Array, report: Report, quick: bool) -> None:
    from espresso_jax.apps.viz import bnn as viz

    k_gap, k_het = jax.random.split(key)
    gap = bnn_regression.gap_regression(k_gap, quick=quick)
    report.section(
        "Bayesian neural networks: regression with a gap",
        f"1-50-50-1 ReLU nets on sin(3x) + N(0, 0.1²) observed outside {bnn_regression.GAP}. "
        "Median and interquartile range of the predictive samples: the deterministic net has "
        "no epistemic spread; the metrics give, for Bayes by Backprop and MC dropout, the "
        "epistemic std of f(x) in the gap against on the data (MC dropout's band widens "
        "reliably; BBB's between-cluster spread depends on the prior scale and the seed).")
    for name in gap.samples:
        report.figure(viz.plot_regression_band(gap.x, gap.y, gap.x_grid,
                                               samples=gap.samples[name], gap=bnn_regression.GAP,
                                               truth=gap.truth,
                                               title=f"{name}: predictive median and quartiles"),
                      f"gap_{name}", f"{name}: predictive band")
    report.metrics({f"{name}_{what}": value[name] for name in gap.samples
                    for what, value in (("gap_epistemic_std", gap.gap_std),
                                        ("data_epistemic_std", gap.data_std),
                                        ("rmse", gap.rmse))})
    het = bnn_regression.heteroscedastic_regression(k_het, quick=quick)
    report.section(
        "Epistemic and aleatoric uncertainty",
        "A heteroscedastic head (mean and log σ²(x), loss (y − f)²/2σ² + ½ log σ²) trained with "
        "MC dropout on data whose noise grows with x (Kendall & Gal 2017): total predictive "
        "variance = variance of the sampled means (epistemic) + mean of σ² (aleatoric).")
    report.figure(viz.plot_regression_band(het.x, het.y, het.x_grid, het.mean, het.epistemic,
                                           het.aleatoric, gap=bnn_regression.GAP,
                                           title="heteroscedastic MC dropout"),
                  "heteroscedastic_band", "Predictive mean with epistemic and aleatoric bands")
    report.figure(viz.plot_uncertainty_decomposition(het.x_grid, het.epistemic, het.aleatoric,
                                                     gap=bnn_regression.GAP,
                                                     title="epistemic vs aleatoric variance"),
                  "uncertainty_decomposition", "Epistemic against aleatoric variance")
    report.metrics({"aleatoric_std_corr_with_truth": het.aleatoric_corr,
                    "aleatoric_std_mae": het.aleatoric_mae,
                    "gap_epistemic_std": het.gap_epistemic_std,
                    "data_epistemic_std": het.data_epistemic_std})


def _section_bnn_mnist(key: jax.Array, report: Report, quick: bool) -> None:
    from espresso_jax.apps.viz import bnn as viz

    k_cmp, k_rot = jax.random.split(key)
    cmp = bnn_experiments.mnist_comparison(k_cmp, quick=quick)
    trained = cmp.trained
    report.section(
        "Bayesian neural networks on MNIST",
        f"784-400-400-10 ReLU nets, {trained.n_epochs} epochs on {trained.n_train} digits "
        f"(Adam {trained.learning_rate:g}, {trained.lr_schedule} rate, batches of "
        f"{trained.batch_size}): deterministic, MC dropout, Bayes by Backprop with a Gaussian "
        f"and with a scale-mixture prior; {cmp.n_samples} stochastic passes on {cmp.n_test} "
        "test digits. Then a test "
        "'1' rotated from 0° to 180° (Gal & Ghahramani 2016, Fig. 4): 100 stochastic softmax "
        "inputs and outputs per angle.")
    rel = cmp.reliability["mc_dropout"]
    report.figure(viz.plot_reliability_diagram(rel.bin_edges, rel.confidence, rel.accuracy,
                                               rel.counts, ece=cmp.metrics["mc_dropout"].ece,
                                               title="MC dropout"),
                  "reliability_mc_dropout", "Reliability diagram of MC dropout")
    stochastic = {k: trained.models[k] for k in ("mc_dropout", "bbb_mixture")}
    rot = bnn_experiments.rotated_digit(k_rot, stochastic, n_samples=100)
    for name in stochastic:
        report.figure(viz.plot_rotated_digits(rot.angles, rot.logits[name], rot.probs[name],
                                              images=rot.images, title=name),
                      f"rotated_{name}", f"Rotated '1': {name} softmax inputs and outputs")
    report.metrics({**{f"{name}_{k}": v for name, m in cmp.metrics.items()
                       for k, v in m._asdict().items()},
                    "rotation_angles": rot.angles,
                    **{f"{name}_entropy_by_angle": rot.entropy[name] for name in stochastic},
                    **{f"{name}_bald_by_angle": rot.bald[name] for name in stochastic}})


SECTIONS = {
    "vae": _section_vae,
    "gan": _section_gan,
    "bnn regression": _section_bnn_regression,
    "bnn mnist": _section_bnn_mnist,
}
