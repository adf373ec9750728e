"""GANs: an MLP GAN on the ring of 8 Gaussians (modes hit, high-quality fraction) and a GAN on
8,000 MNIST digits (sample grid, and a classifier's reading of 1,000 samples); PNGs of samples
and loss curves go to --out.

    python examples/gan.py [--quick] [--out DIR] [--mnist-model mlp|dcgan]
        [--ring-epochs N] [--mnist-epochs N]
"""

import argparse
from pathlib import Path

import jax

from espresso_jax.apps.experiments import generative as experiments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (under a minute)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the PNGs")
    parser.add_argument("--mnist-model", choices=("mlp", "dcgan"), default="mlp")
    parser.add_argument("--ring-epochs", type=int, default=None)
    parser.add_argument("--mnist-epochs", type=int, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    key = jax.random.key(0)
    runs = {
        "gan_ring": experiments.gan_ring(jax.random.fold_in(key, 0),
                                         n_epochs=args.ring_epochs or (30 if args.quick else 200),
                                         progress=not args.quick),
        "gan_mnist": experiments.gan_mnist(jax.random.fold_in(key, 1),
                                           n_epochs=args.mnist_epochs or (4 if args.quick else 30),
                                           architecture=args.mnist_model,
                                           progress=not args.quick),
    }
    for run, (metrics, figures) in runs.items():
        print(run + ": " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in metrics.items()))
        for name, fig in figures.items():
            fig.savefig(args.out / f"{run}_{name}.png", dpi=120)
    print(f"figures written to {args.out.resolve()}")


if __name__ == "__main__":
    main()
