"""Discrete and structured latent codes on MNIST: a VQ-VAE (reconstructions, codebook usage
and perplexity) and an InfoGAN (latent traversals, the categorical code as an unsupervised
classifier). The tour and the benchmarks call these; each returns a dict of numbers and a dict
of matplotlib figures (name -> Figure).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from espresso_jax.datasets.bundled import load_mnist
from espresso_jax.nn import GANOptimizers, infogan, vqvae
from espresso_jax.validation import check_choice, check_int, check_key

__all__ = ["vqvae_mnist", "infogan_mnist", "INFOGAN_ARCHITECTURES", "INFOGAN_PAPER_ERROR"]

Figures = dict[str, Any]

INFOGAN_PAPER_ERROR = 0.05
"""Chen et al. (2016), Table 1: InfoGAN's categorical code classifies MNIST with 5 % error
(± 0.01), against 95 % for a code a plain GAN ignores."""


def vqvae_mnist(key: jax.Array, *, n_epochs: int = 20, ema_decay: float | None = 0.99,
                codebook_size: int = 64, n_latents: int = 8, embedding_dim: int = 16,
                hidden: tuple[int, ...] = (512, 256), batch_size: int = 100,
                learning_rate: float = 1e-3, progress: bool = True
                ) -> tuple[dict[str, Any], Figures]:
    """An MLP VQ-VAE on the library's 8k MNIST training digits, evaluated on the 2k test digits.

    ``β = 0.25``; the codebook is learnt by EMA (decay ``ema_decay``, ε = 1e-5) or, with
    ``ema_decay=None``, by its loss term. Adam(``learning_rate``).

    Returns:
        ``(metrics, figures)``: test reconstruction error (per image and per pixel),
        perplexity and codes used on the test set, CPU seconds; figures ``reconstructions``
        and ``usage`` (code frequencies, sorted).
    """
    import matplotlib.pyplot as plt

    from espresso_jax.apps.viz import nn as viz

    key = check_key(key)
    n_epochs = check_int(n_epochs, "n_epochs", min_value=1)
    X, _ = load_mnist("train")
    X_test, _ = load_mnist("test")
    model = vqvae.VQVAE(hidden=tuple(hidden), n_latents=n_latents, embedding_dim=embedding_dim,
                        codebook_size=codebook_size)
    cpu = time.process_time()
    res = vqvae.fit(key, X, module=model, optimizer=optax.adam(learning_rate),
                    batch_size=batch_size, n_epochs=n_epochs, ema_decay=ema_decay,
                    progress=progress, desc="vqvae-mnist")
    cpu = time.process_time() - cpu
    ev = vqvae.evaluate(model, res.params, X_test)
    usage = np.asarray(ev.pop("usage"))
    metrics = {"n_epochs": n_epochs, "codebook": "ema" if ema_decay is not None else "loss",
               "codebook_size": codebook_size, "bits_per_image": n_latents *
               float(np.log2(codebook_size)), "train_cpu_seconds": cpu,
               **{f"test_{k}": v for k, v in ev.items()},
               "train_perplexity_last_epoch": float(res.history["perplexity"][-1])}
    figures = {"reconstructions": viz.plot_reconstructions(
        X_test[:12], vqvae.reconstruct(model, res.params, X_test[:12]),
        title=f"test digits (top), VQ-VAE reconstructions ({n_latents} codes of "
              f"{codebook_size})")}
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.bar(np.arange(codebook_size), np.sort(usage)[::-1])
    ax.set_xlabel("code (sorted by frequency)")
    ax.set_ylabel("fraction of assignments")
    ax.set_title(f"codebook usage on test digits, perplexity {ev['perplexity']:.1f}")
    fig.tight_layout()
    figures["usage"] = fig
    return metrics, figures


INFOGAN_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "mlp": dict(g_hidden=(256, 512), g_conv=(), d_hidden=(256, 128), d_conv=(),
                learning_rates=(2e-3, 1e-3)),
    "conv": dict(g_hidden=(256,), g_conv=(16, 8), d_hidden=(128,), d_conv=(16, 32),
                 learning_rates=(1e-3, 2e-4)),
}
"""The players of :func:`infogan_mnist` by name: ``"mlp"`` (generator 74-256-512-784,
discriminator body 256-128, Adam 2e-3 / 1e-3) and ``"conv"`` (the paper's layout, narrower:
generator 74-256 -> 7×7×16 -> 2× nearest + 3×3 conv -> 14×14×8 -> 2× + 3×3 conv -> 28×28×1,
discriminator 4×4 stride-2 convolutions 16-32 and a 128-unit body, the paper's rates 1e-3 (G)
/ 2e-4 (D, Q))."""


def _infogan_scores(state: Any, model: infogan.InfoGANModel, key: jax.Array, X: np.ndarray,
                    y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    """The categorical code as a classifier (Hungarian and majority mapping) and Q's accuracy
    on generated digits."""
    train_codes = infogan.predict_codes(state, model, X * 2.0 - 1.0)
    train_err, _ = infogan.matched_error(train_codes, y, 10)
    majority = infogan.majority_mapping(train_codes, y, 10)
    test_codes = np.asarray(infogan.predict_codes(state, model, X_test * 2.0 - 1.0))
    test_err, mapping = infogan.matched_error(test_codes, y_test, 10)
    return {"test_error": float(test_err), "train_error": float(train_err),
            "test_error_majority": float(np.mean(majority[test_codes] != y_test)),
            "q_accuracy_generated": infogan.code_recovery(key, state, model),
            "code_to_digit": mapping.tolist()}


def infogan_mnist(key: jax.Array, *, n_epochs: int = 40, architecture: str = "mlp",
                  batch_size: int = 32, lambda_cont: float = 0.1, n_steps: int = 9,
                  g_batch_norm: bool = True, g_hidden: tuple[int, ...] | None = None,
                  g_conv: tuple[int, ...] | None = None,
                  d_hidden: tuple[int, ...] | None = None, n_continuous: int = 2,
                  learning_rates: tuple[float, float] | None = None,
                  d_conv: tuple[int, ...] | None = None, eval_every: int | None = None,
                  progress: bool = True) -> tuple[dict[str, Any], Figures]:
    """An InfoGAN (62 noise variables, a 10-way code, ``n_continuous`` ``U(-1, 1)`` codes) on
    the 8k MNIST training digits scaled to [-1, 1], λ_cat = 1, λ_cont = ``lambda_cont``, Adam
    with b1 = 0.5 and ``learning_rates = (generator, discriminator/Q)``.

    ``architecture`` picks the players and rates of :data:`INFOGAN_ARCHITECTURES`:
    ``"mlp"`` (BatchNorm generator 256-512, discriminator body 256-128 with the Q head, 128
    units, on it) or ``"conv"`` (the paper's convolutional layout, narrower: the
    :class:`~espresso_jax.nn.gan_modules.UpsampleConvGenerator` 256 -> 7×7×16 -> 14×14×8 ->
    28×28, stride-2 convolutions 16-32 and a 128-unit body in the discriminator, the paper's
    rates 1e-3 / 2e-4); ``g_hidden``, ``g_conv``, ``d_hidden``, ``d_conv`` and
    ``learning_rates``, when given, override it (see :func:`~espresso_jax.nn.infogan.mlp_infogan`).
    ``g_batch_norm``: BatchNorm in the generator's hidden layers (the paper's generator).

    The MLP defaults (batch 32, body 256-128, rates 2e-3 / 1e-3) bring the 10-epoch test error
    from 0.63-0.68 (the paper's rates 1e-3 / 2e-4, batch 64, body 512-256) to ~0.47; the
    ``"conv"`` pair costs ~3× the CPU per step, is worse at 10 epochs and better from ~40 on
    (mean over three keys 0.335 at 40 epochs against the MLP's 0.389, 0.245 at 100;
    ``benchmarks/RESULTS.md``).

    The categorical code read by ``Q`` is used as a classifier: its error after the best
    matching of codes to digits (Hungarian algorithm) on the 2k test digits, beside the paper's
    5 % (their conv model, 60k digits); ``test_error_majority`` maps each code to its
    majority digit on the training digits instead (codes may share a digit);
    ``q_accuracy_generated`` is the fraction of 2,000 generated digits whose category Q
    recovers. With ``eval_every`` these are also computed (and printed, one line each) during
    training, in ``metrics["curve"]``, at the end of the first jitted chunk of epochs at or
    after each multiple of ``eval_every`` (chunks of ``ceil(n_epochs / 20)`` epochs, see
    :func:`~espresso_jax.train.fit_loop`); the training itself is the same with or without.

    Returns:
        ``(metrics, figures)``; figures ``traversal_c1``, ``traversal_c2`` (rows: the 10
        categories, columns: one continuous code swept over [-2, 2], the other at 0, one
        fixed noise vector) and ``losses``.
    """
    from espresso_jax.apps.viz import gan as gan_viz
    from espresso_jax.apps.viz import nn as viz

    key = check_key(key)
    n_epochs = check_int(n_epochs, "n_epochs", min_value=1)
    n_steps = check_int(n_steps, "n_steps", min_value=2)
    check_choice(architecture, "architecture", tuple(INFOGAN_ARCHITECTURES))
    given: dict[str, Any] = dict(g_hidden=g_hidden, g_conv=g_conv, d_hidden=d_hidden,
                                 d_conv=d_conv, learning_rates=learning_rates)
    arch: dict[str, Any] = {k: v if given[k] is None else given[k]
                            for k, v in INFOGAN_ARCHITECTURES[architecture].items()}
    if eval_every is not None:
        eval_every = check_int(eval_every, "eval_every", min_value=1)
    X, y = load_mnist("train")
    X_test, y_test = load_mnist("test")
    model = infogan.mlp_infogan(784, g_batch_norm=g_batch_norm, g_hidden=tuple(arch["g_hidden"]),
                                g_conv=tuple(arch["g_conv"]), d_hidden=tuple(arch["d_hidden"]),
                                d_conv=tuple(arch["d_conv"]), n_continuous=n_continuous)
    g_lr, d_lr = arch["learning_rates"]
    opt = GANOptimizers(generator=optax.adam(g_lr, b1=0.5),
                        discriminator=optax.adam(d_lr, b1=0.5))
    k_fit, k_noise = jax.random.split(key)
    k_eval = jax.random.fold_in(k_noise, 1)
    curve: list[dict[str, Any]] = []
    t0 = time.process_time()
    eval_cpu = [0.0]

    def record(epoch: int, state: Any, _: dict[str, float]) -> None:
        # the first chunk end at or after each multiple of eval_every
        done = curve[-1]["epoch"] if curve else 0
        if eval_every is None or epoch // eval_every == done // eval_every:
            return
        start = time.process_time()
        train_cpu = start - t0 - eval_cpu[0]
        scores = _infogan_scores(state, model, k_eval, X, y, X_test, y_test)
        eval_cpu[0] += time.process_time() - start
        del scores["code_to_digit"]
        curve.append({"epoch": epoch, "train_cpu_seconds": train_cpu, **scores})
        print(f"infogan-mnist epoch {epoch}: " + ", ".join(
            f"{k} {v:.4f}" for k, v in scores.items()) +
            f", train CPU {curve[-1]['train_cpu_seconds']:.0f} s", flush=True)

    res = infogan.fit(k_fit, X * 2.0 - 1.0, module=model, optimizer=opt, batch_size=batch_size,
                      n_epochs=n_epochs, lambda_cont=lambda_cont, progress=progress,
                      desc="infogan-mnist", callbacks=(record,))
    cpu = time.process_time() - t0 - eval_cpu[0]
    scores = _infogan_scores(res.state, model, k_eval, X, y, X_test, y_test)
    mapping = np.asarray(scores["code_to_digit"])
    h = res.history
    metrics = {"n_epochs": n_epochs, "architecture": architecture, "steps": int(res.state.step),
               "train_cpu_seconds": cpu, **scores, "paper_error": INFOGAN_PAPER_ERROR,
               "last_mi_cat_nats": float(h["g_mi_cat"][-1]), "max_mi_cat_nats": float(np.log(10)),
               **{f"last_{k}": float(h[k][-1]) for k in ("d_loss", "g_loss", "d_real",
                                                        "d_fake")}}
    if eval_every is not None:
        metrics["curve"] = curve
    # rows ordered by the digit each code was matched to
    order = np.argsort(mapping)
    noise = jnp.tile(jax.random.normal(k_noise, (1, model.noise_dim)), (10 * n_steps, 1))
    category = jnp.repeat(jnp.asarray(order, jnp.int32), n_steps)
    sweep = jnp.tile(jnp.linspace(-2.0, 2.0, n_steps), 10)
    figures: Figures = {}
    for j in range(model.n_continuous):
        cont = jnp.zeros((10 * n_steps, model.n_continuous)).at[:, j].set(sweep)
        images = infogan.generate(res.state, model, noise, category, cont)
        figures[f"traversal_c{j + 1}"] = viz.plot_image_grid(
            images, n_cols=n_steps, value_range=(-1.0, 1.0),
            title=f"rows: categorical code (digit order), columns: c{j + 1} from -2 to 2")
    figures["losses"] = gan_viz.plot_gan_losses(h, title="MNIST InfoGAN")
    return metrics, figures
