"""The tour's deep-model sections: VAE, GANs, Bayesian neural networks and uncertainty.

Each ``_section_*`` takes ``(key, report, quick)`` like the sections of :mod:`espresso_jax.tour`
and calls the experiment functions of :mod:`espresso_jax.nn.experiments` and
:mod:`espresso_jax.bnn.experiments`; ``quick`` shortens training, never the code path.
"""

from __future__ import annotations

import jax

from espresso_jax.nn import experiments as nn_experiments
from espresso_jax.report import Report


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
        jax.random.fold_in(key, 1), n_epochs=2 if quick else 10, progress=False)
    report.section(
        "Generative adversarial networks",
        "Non-saturating MLP GAN on the ring of 8 Gaussians (std 0.02): a mode is hit when it "
        "holds at least 20 of 2,500 samples within 3 std; high-quality samples lie within 3 std "
        "of a centre. Then an MLP GAN on the 8k MNIST training digits.")
    _add(report, "gan_ring", ring_figures, {"samples": "GAN samples over the 8-Gaussian data",
                                            "losses": "Discriminator and generator losses"})
    _add(report, "gan_mnist", mnist_figures, {"samples": "MNIST GAN samples",
                                              "losses": "MNIST GAN losses"})
    report.metrics({**{f"ring_{k}": v for k, v in ring_metrics.items()},
                    **{f"mnist_{k}": v for k, v in mnist_metrics.items()}})


SECTIONS = {
    "vae": _section_vae,
    "gan": _section_gan,
}
