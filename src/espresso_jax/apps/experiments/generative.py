"""The course's generative-model experiments as functions: the VAE on MNIST and GANs on the ring
of 8 Gaussians and on MNIST. The examples and the tour call these; each returns a dict of
numbers and a dict of matplotlib figures (name -> Figure).
"""

from __future__ import annotations

import time
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from espresso_jax.datasets.bundled import load_mnist
from espresso_jax.nn import gan, supervised, vae
from espresso_jax.nn.modules import MLP
from espresso_jax.validation import check_int, check_key

__all__ = ["vae_mnist", "gan_ring", "gan_mnist", "judge_digits"]

Figures = dict[str, Any]


def vae_mnist(key: jax.Array, *, n_epochs: int = 100, n_epochs_2d: int = 50,
              latent_dim: int = 20, n_train: int | None = None, iwae_k: int = 5000,
              iwae_subset: int = 500, learning_rate: float = 1e-3, batch_size: int = 100,
              progress: bool = True) -> tuple[dict[str, float], Figures]:
    """Kingma & Welling's MNIST VAE on the library's 8k/2k split, dynamically binarised.

    Trains a 784-500-500-``latent_dim`` Bernoulli VAE (estimator B, one sample, Adam), reports
    the test ELBO (10 samples per image) and the IWAE-``iwae_k`` bound on the first
    ``iwae_subset`` test images, then trains a 2-D latent model for the manifold figure.

    Returns:
        ``(metrics, figures)``: metrics in nats per image; figures ``samples``,
        ``reconstructions``, ``manifold``, ``latent``.
    """
    from espresso_jax.apps.viz import nn as viz

    key = check_key(key)
    n_epochs = check_int(n_epochs, "n_epochs", min_value=1)
    n_epochs_2d = check_int(n_epochs_2d, "n_epochs_2d", min_value=1)
    X, _ = load_mnist("train")
    X = X[:n_train] if n_train else X
    X_test, y_test = load_mnist("test")
    k_bin, k_fit, k_elbo, k_iwae, k_gen, k_fit2 = jax.random.split(key, 6)
    # one stochastic binarisation of the test set, fixed for every evaluation
    test = np.asarray(jax.random.bernoulli(k_bin, X_test), dtype=np.float32)

    model = vae.VAE(latent_dim=latent_dim)                    # 784-500-500-k, Bernoulli
    start = time.perf_counter()
    fit = vae.fit(k_fit, X, module=model, optimizer=optax.adam(learning_rate),
                  batch_size=batch_size, n_epochs=n_epochs, estimator="B", n_samples=1,
                  binarize=True, progress=progress, desc=f"vae-{latent_dim}d")
    train_time = time.perf_counter() - start
    params = fit.best_params
    subset = test[:iwae_subset]
    start = time.perf_counter()
    iwae = float(vae.iwae(k_iwae, model, params, subset, k=iwae_k, chunk_size=500,
                          batch_size=10))
    metrics = {
        "n_train": int(X.shape[0]),
        "n_epochs": n_epochs,
        "seconds_per_epoch": train_time / n_epochs,
        "train_elbo_last_epoch": float(fit.history["elbo"][-1]),
        "test_elbo": float(vae.elbo(k_elbo, model, params, test, n_samples=10)),
        f"test_iwae_{iwae_k}_subset": iwae,
        "iwae_seconds": time.perf_counter() - start,
        "test_elbo_subset": float(vae.elbo(k_elbo, model, params, subset, n_samples=10)),
        "iwae_subset_size": int(subset.shape[0]),
    }
    figures = {
        "samples": viz.plot_image_grid(vae.generate(k_gen, model, params, 100), n_cols=10,
                                       title=f"samples (decoder means), {latent_dim}-D latent"),
        "reconstructions": viz.plot_reconstructions(test[:12],
                                                    vae.reconstruct(model, params, test[:12])),
    }
    model2 = vae.VAE(latent_dim=2)
    fit2 = vae.fit(k_fit2, X, module=model2, optimizer=optax.adam(learning_rate),
                   batch_size=batch_size, n_epochs=n_epochs_2d, binarize=True,
                   progress=progress, desc="vae-2d")
    metrics["test_elbo_2d"] = float(vae.elbo(k_elbo, model2, fit2.best_params, test,
                                             n_samples=10))
    figures["manifold"] = viz.plot_manifold(vae.manifold(model2, fit2.best_params, 20))
    mu, _ = vae.encode(model2, fit2.best_params, test)
    figures["latent"] = viz.plot_latent_scatter(mu, y_test,
                                                title="test-set posterior means, 2-D latent")
    return metrics, figures


def gan_ring(key: jax.Array, *, n_epochs: int = 200, progress: bool = True
             ) -> tuple[dict[str, float], Figures]:
    """Non-saturating MLP GAN on the ring of 8 Gaussians (radius 2, std 0.02; Metz et al.
    2017): modes hit and the fraction of high-quality samples (within 3 std of a centre).

    Returns:
        ``(metrics, figures)``; figures ``samples`` (over the data) and ``losses``.
    """
    from espresso_jax.apps.viz import gan as viz

    key = check_key(key)
    x, centres = gan.ring_of_gaussians(jax.random.fold_in(key, 1), 8192)
    model = gan.mlp_gan(2, latent_dim=2, g_hidden=(128, 128), d_hidden=(128, 128))
    opt = optax.adam(1e-3, b1=0.5)
    start = time.perf_counter()
    res = gan.fit(key, x, module=model, loss="non_saturating", k_disc=1, optimizer=opt,
                  batch_size=128, n_epochs=n_epochs, progress=progress,
                  desc="gan-ring")
    samples = gan.sample(jax.random.fold_in(key, 2), res.state, 2500, module=model)
    cov = gan.mode_coverage(samples, centres, 0.02)
    metrics = {"steps": int(res.state.step), "seconds": time.perf_counter() - start,
               "modes_hit": int(cov.modes_hit), "high_quality_fraction": float(cov.high_quality),
               "mean_distance_to_mode": float(cov.mean_distance)}
    figures = {
        "samples": viz.plot_samples_2d(samples, x[:2500], centres, std=0.02,
                                       title=f"{cov.modes_hit}/8 modes, "
                                             f"{100 * cov.high_quality:.0f} % high quality"),
        "losses": viz.plot_gan_losses(res.history, title="8 Gaussians"),
    }
    return metrics, figures


def judge_digits(key: jax.Array, samples: Any, *, n_epochs: int = 3,
                 confident: float = 0.9, min_share: float = 0.02) -> dict[str, Any]:
    """Score generated digits with a classifier trained here on the 8k MNIST training digits.

    A 784-256-10 MLP (:func:`espresso_jax.nn.supervised.fit`, Adam(1e-3), batch 128,
    ``n_epochs`` epochs; ~95 % test accuracy after 3) reads each sample; noise and blobs get
    low confidence, and a collapsed generator covers few classes.

    Args:
        key: PRNG key of the classifier's training.
        samples: ``(n, 784)`` or ``(n, 28, 28, 1)`` generated digits in [-1, 1].
        n_epochs: classifier epochs.
        confident: the probability above which a sample counts as confidently classified.
        min_share: the share of the samples a class needs to count as covered.

    Returns:
        ``classifier_confidence`` (mean max class probability), ``confident_fraction``,
        ``classes_covered`` (of 10), ``class_shares`` (10 floats) and the classifier's
        ``classifier_test_error`` on the 2k test digits, with the first two measures on them
        (``test_digits_confidence``, ``test_digits_confident_fraction``) for reference.
    """
    key = check_key(key)
    samples = jnp.asarray(samples).reshape(-1, 784)
    X, y = load_mnist("train")
    X_test, y_test = load_mnist("test")
    net = MLP((256, 10))
    params = supervised.fit(key, X * 2.0 - 1.0, y, module=net, optimizer=optax.adam(1e-3),
                            batch_size=128, n_epochs=n_epochs, task="classification",
                            progress=False).params
    def logits(x: Any) -> jax.Array:
        return cast(jax.Array, net.apply(params, jnp.asarray(x, jnp.float32)))

    test_logits = logits(X_test * 2.0 - 1.0)
    test_error = float(np.mean(np.argmax(test_logits, -1) != y_test))
    test_top = np.asarray(jnp.max(jax.nn.softmax(test_logits, axis=-1), axis=-1))
    prob = np.asarray(jax.nn.softmax(logits(samples), axis=-1))
    top = prob.max(axis=1)
    shares = np.bincount(prob.argmax(axis=1), minlength=10) / prob.shape[0]
    return {"classifier_confidence": float(top.mean()),
            "confident_fraction": float(np.mean(top > confident)),
            "classes_covered": int(np.sum(shares >= min_share)),
            "class_shares": shares.round(4).tolist(), "classifier_test_error": test_error,
            "test_digits_confidence": float(test_top.mean()),
            "test_digits_confident_fraction": float(np.mean(test_top > confident))}


def gan_mnist(key: jax.Array, *, n_epochs: int = 30, architecture: str = "mlp",
              progress: bool = True) -> tuple[dict[str, float], Figures]:
    """A GAN on the 8,000 MNIST training images scaled to [-1, 1], non-saturating loss,
    one-sided label smoothing (real label 0.9, Salimans et al. 2016), Adam with b1 = 0.5
    (Radford et al. 2016).

    ``architecture="mlp"`` (default): generator 64-128-256-784 with BatchNorm before its ReLUs
    and a tanh output, LeakyReLU(0.2) discriminator 784-256-128-1, batch 32, Adam(2e-3): small
    enough for ~250 steps per epoch at a few ms each on a CPU; recognisable digits after ~4
    epochs (1,000 steps). ``"dcgan"``: the DCGAN players (``features=32``), batch 64,
    Adam(2e-4), slow on a CPU.

    Returns:
        ``(metrics, figures)``: last-epoch losses and D outputs, and the samples' scores by a
        classifier (:func:`judge_digits`, 1,000 samples); figures ``samples``, ``losses``.
    """
    from espresso_jax.apps.viz import gan as viz

    key = check_key(key)
    images = load_mnist("train")[0] * 2.0 - 1.0  # (8000, 784) in [-1, 1]
    n_epochs = check_int(n_epochs, "n_epochs", min_value=1)
    if architecture == "dcgan":
        model = gan.dcgan(latent_dim=64, features=32)
        data = images.reshape(-1, 28, 28, 1)
        batch_size, learning_rate = 64, 2e-4
    elif architecture == "mlp":
        model = gan.mlp_gan(784, latent_dim=64, g_hidden=(128, 256), d_hidden=(256, 128),
                            g_final_activation=jnp.tanh, g_batch_norm=True)
        data = images
        batch_size, learning_rate = 32, 2e-3
    else:
        raise ValueError(f"architecture must be 'mlp' or 'dcgan', got {architecture!r}")
    opt = optax.adam(learning_rate, b1=0.5)
    start, cpu = time.perf_counter(), time.process_time()
    res = gan.fit(key, data, module=model, loss="non_saturating", k_disc=1, optimizer=opt,
                  batch_size=batch_size, n_epochs=n_epochs, real_label=0.9,
                  progress=progress, desc=f"gan-mnist-{architecture}")
    h = res.history
    metrics = {"epochs": int(n_epochs), "steps": int(res.state.step),
               "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
               **{f"last_{name}": float(h[name][-1])
                  for name in ("d_loss", "g_loss", "d_real", "d_fake")}}
    samples = gan.sample(jax.random.fold_in(key, 3), res.state, 1000, module=model)
    metrics.update(judge_digits(jax.random.fold_in(key, 4), samples))
    figures = {
        "samples": viz.plot_image_grid(samples[:64], n_cols=8, value_range=(-1.0, 1.0),
                                       title=f"{architecture} GAN samples, {n_epochs} epochs"),
        "losses": viz.plot_gan_losses(h, title=f"MNIST {architecture} GAN"),
    }
    return metrics, figures
