"""The tour's discrete and structured latent-code sections: the VQ-VAE and the InfoGAN on
MNIST (:mod:`espresso_jax.apps.experiments.vq_infogan`); ``quick`` shortens training, never
the code path.
"""

from __future__ import annotations

import jax

from espresso_jax.apps.experiments import vq_infogan
from espresso_jax.apps.report import Report


def _section_vqvae(key: jax.Array, report: Report, quick: bool) -> None:
    options = (dict(n_epochs=2, hidden=(256,), codebook_size=32) if quick else
               dict(n_epochs=20))
    metrics, figures = vq_infogan.vqvae_mnist(key, progress=False, **options)
    report.section(
        "VQ-VAE on MNIST",
        f"MLP VQ-VAE (van den Oord et al. 2017): each digit is coded by 8 vectors of 16 "
        f"numbers, each replaced by its nearest of {metrics['codebook_size']} codes "
        f"({metrics['bits_per_image']:.0f} bits per image); straight-through gradients, "
        f"commitment weight 0.25, EMA codebook (decay 0.99), {options['n_epochs']} epochs on "
        "the 8k training digits. Perplexity: exp of the entropy of the code frequencies on the "
        "2k test digits (the number of equally used codes it amounts to).")
    report.figure(figures["reconstructions"], "vqvae_reconstructions",
                  "Test digits (top) and their VQ-VAE reconstructions (bottom)")
    report.figure(figures["usage"], "vqvae_usage", "Codebook usage on the test digits")
    report.metrics(metrics)


def _section_infogan(key: jax.Array, report: Report, quick: bool) -> None:
    n_epochs = 3 if quick else 40
    metrics, figures = vq_infogan.infogan_mnist(key, n_epochs=n_epochs, progress=False)
    report.section(
        "InfoGAN on MNIST",
        f"MLP InfoGAN (Chen et al. 2016): 62 noise variables, a 10-way categorical code and "
        f"two U(-1, 1) codes; BatchNorm generator 74-256-512-784, discriminator 784-256-128 "
        f"with the Q head on its body, batch 32, Adam 2e-3 (G) / 1e-3 (D, Q). {n_epochs} "
        f"epochs ({metrics['steps']} steps) on the 8k training digits. The categorical code "
        "read by Q, matched one-to-one to the "
        f"digits, misclassifies {100 * metrics['test_error']:.1f} % of the test digits "
        f"({100 * metrics['test_error_majority']:.1f} % with each code read as its majority "
        "digit; the paper: 5 % with a conv model on 60k digits; 90 % is chance). Q reads the "
        "code of generated digits almost perfectly: what is missing is a generator whose 10 "
        "categories are the 10 digits. Traversals: rows are the "
        "categorical codes (ordered by their matched digit), columns sweep one continuous code "
        "from -2 to 2 with the noise fixed.")
    for j in (1, 2):
        report.figure(figures[f"traversal_c{j}"], f"infogan_traversal_c{j}",
                      f"Latent traversal of continuous code c{j}")
    report.figure(figures["losses"], "infogan_losses", "InfoGAN losses")
    report.metrics(metrics)


SECTIONS = {
    "vqvae": _section_vqvae,
    "infogan": _section_infogan,
}
