"""Variational auto-encoder on MNIST (Kingma & Welling 2014), dynamically binarised.

Trains a 784-500-500-20 Bernoulli VAE (SGVB estimator B, one sample, Adam) on the library's
8k MNIST training split, reports the test ELBO and the IWAE-5000 bound (on a test subset:
5000 importance samples per image is expensive on a CPU), then trains a 2-D latent model for the
manifold figure. Saves ``samples.png``, ``reconstructions.png``, ``manifold.png`` and
``latent.png`` to ``--out``.

    python examples/vae_mnist.py                 # full run (13.5 min on 2 busy CPU cores)
    python examples/vae_mnist.py --quick         # smoke run, under a minute
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np
import optax

from espresso_jax.datasets.bundled import load_mnist
from espresso_jax.nn import vae
from espresso_jax.viz import nn as viz


def run_vae_mnist(key: jax.Array, *, n_epochs: int = 100, n_epochs_2d: int = 50,
                  latent_dim: int = 20, n_train: int | None = None, iwae_k: int = 5000,
                  iwae_subset: int = 500, learning_rate: float = 1e-3, batch_size: int = 100,
                  out_dir: str | Path = "vae_mnist", progress: bool = True) -> dict:
    """Train and evaluate; returns a dict of metrics (nats per image) and writes the figures."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X, _ = load_mnist("train")
    X = X[:n_train] if n_train else X
    X_test, y_test = load_mnist("test")
    k_bin, k_fit, k_elbo, k_iwae, k_gen, k_fit2 = jax.random.split(key, 6)
    # one stochastic binarisation of the test set, fixed for every evaluation
    test = np.asarray(jax.random.bernoulli(k_bin, X_test), dtype=np.float32)

    model = vae.VAE(latent_dim=latent_dim)                    # 784-500-500-k, Bernoulli
    start = time.perf_counter()
    fit = vae.fit(k_fit, X, model=model, optimizer=optax.adam(learning_rate),
                  batch_size=batch_size, n_epochs=n_epochs, estimator="B", n_samples=1,
                  binarize=True, progress=progress, desc=f"vae-{latent_dim}d")
    train_time = time.perf_counter() - start
    params = fit.best_params
    metrics = {
        "n_train": int(X.shape[0]),
        "n_epochs": int(n_epochs),
        "seconds_per_epoch": train_time / n_epochs,
        "train_elbo_last_epoch": float(fit.history["elbo"][-1]),
        "test_elbo": float(vae.elbo(k_elbo, model, params, test, n_samples=10)),
    }
    subset = test[:iwae_subset]
    start = time.perf_counter()
    metrics[f"test_iwae_{iwae_k}_subset"] = float(
        vae.iwae(k_iwae, model, params, subset, k=iwae_k, chunk_size=500, batch_size=10))
    metrics["iwae_seconds"] = time.perf_counter() - start
    metrics["test_elbo_subset"] = float(vae.elbo(k_elbo, model, params, subset, n_samples=10))
    metrics["iwae_subset_size"] = int(subset.shape[0])

    viz.plot_image_grid(vae.generate(k_gen, model, params, 100), n_cols=10,
                        title=f"samples (decoder means), {latent_dim}-D latent"
                        ).savefig(out / "samples.png", dpi=120)
    viz.plot_reconstructions(test[:12], vae.reconstruct(model, params, test[:12])
                             ).savefig(out / "reconstructions.png", dpi=120)

    model2 = vae.VAE(latent_dim=2)
    fit2 = vae.fit(k_fit2, X, model=model2, optimizer=optax.adam(learning_rate),
                   batch_size=batch_size, n_epochs=n_epochs_2d, binarize=True,
                   progress=progress, desc="vae-2d")
    metrics["test_elbo_2d"] = float(vae.elbo(k_elbo, model2, fit2.best_params, test,
                                             n_samples=10))
    viz.plot_manifold(vae.manifold(model2, fit2.best_params, 20)
                      ).savefig(out / "manifold.png", dpi=120)
    mu, _ = vae.encode(model2, fit2.best_params, test)
    viz.plot_latent_scatter(mu, y_test, title="test-set posterior means, 2-D latent"
                            ).savefig(out / "latent.png", dpi=120)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (< 1 min)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--epochs-2d", type=int, default=50)
    parser.add_argument("--out", default="vae_mnist", help="folder for the PNG figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    options = dict(n_epochs=args.epochs, n_epochs_2d=args.epochs_2d)
    if args.quick:
        options = dict(n_epochs=2, n_epochs_2d=1, n_train=1000, iwae_k=100, iwae_subset=100)
    metrics = run_vae_mnist(jax.random.key(args.seed), out_dir=args.out, progress=not args.quick,
                            **options)
    width = max(len(k) for k in metrics)
    for name, value in metrics.items():
        print(f"{name:<{width}}  {value:.4g}" if isinstance(value, float) else
              f"{name:<{width}}  {value}")
    print(f"figures written to {Path(args.out).resolve()}")


if __name__ == "__main__":
    main()
