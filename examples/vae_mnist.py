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
from pathlib import Path

import jax

from espresso_jax.apps.experiments import generative as experiments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (< 1 min)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--epochs-2d", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("vae_mnist"),
                        help="folder for the PNG figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    options = dict(n_epochs=args.epochs, n_epochs_2d=args.epochs_2d)
    if args.quick:
        options = dict(n_epochs=2, n_epochs_2d=1, n_train=1000, iwae_k=100, iwae_subset=100)
    metrics, figures = experiments.vae_mnist(jax.random.key(args.seed),
                                             progress=not args.quick, **options)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        fig.savefig(args.out / f"{name}.png", dpi=120)
    width = max(len(k) for k in metrics)
    for name, value in metrics.items():
        print(f"{name:<{width}}  {value:.4g}" if isinstance(value, float) else
              f"{name:<{width}}  {value}")
    print(f"figures written to {args.out.resolve()}")


if __name__ == "__main__":
    main()
