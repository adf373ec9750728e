"""GANs: an MLP GAN on the ring of 8 Gaussians (modes hit, high-quality fraction) and a GAN on
8,000 MNIST digits (sample grid); PNGs of samples and loss curves go to --out.

    python examples/gan.py [--quick] [--out DIR] [--mnist-model mlp|dcgan]
        [--ring-epochs N] [--mnist-epochs N]
"""

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from espresso_jax.datasets.bundled import load_mnist
from espresso_jax.nn import gan
from espresso_jax.viz import gan as viz


def ring(key, out: Path, n_epochs: int) -> None:
    x, centres = gan.ring_of_gaussians(jax.random.fold_in(key, 1), 8192)
    model = gan.mlp_gan(2, latent_dim=2, g_hidden=(128, 128), d_hidden=(128, 128))
    opt = optax.adam(1e-3, b1=0.5)
    start = time.perf_counter()
    res = gan.fit(key, x, model=model, loss="non_saturating", k_disc=1, optimizer_g=opt,
                  optimizer_d=opt, batch_size=128, n_epochs=n_epochs, progress=False)
    samples = gan.sample(jax.random.fold_in(key, 2), res.state, 2500, model=model)
    cov = gan.mode_coverage(samples, centres, 0.02)
    print(f"8 Gaussians, non-saturating MLP GAN, {int(res.state.step)} steps "
          f"({time.perf_counter() - start:.1f} s): {cov.modes_hit}/8 modes hit, "
          f"{100 * cov.high_quality:.1f} % high-quality samples (within 3 std), "
          f"mean distance to nearest mode {cov.mean_distance:.3f}")
    viz.plot_samples_2d(samples, x[:2500], centres, std=0.02,
                        title=f"{cov.modes_hit}/8 modes, {100 * cov.high_quality:.0f} % HQ"
                        ).savefig(out / "gan_ring_samples.png", dpi=120)
    viz.plot_gan_losses(res.history, title="8 Gaussians").savefig(out / "gan_ring_losses.png",
                                                                   dpi=120)


def mnist(key, out: Path, n_epochs: int, model_name: str) -> None:
    images = load_mnist("train")[0] * 2.0 - 1.0  # (8000, 784) in [-1, 1]
    if model_name == "dcgan":
        model = gan.dcgan(latent_dim=64, features=32)
        data = images.reshape(-1, 28, 28, 1)
    else:
        model = gan.mlp_gan(784, latent_dim=64, g_hidden=(256, 512), d_hidden=(512, 256),
                            g_final_activation=jnp.tanh)
        data = images
    opt = optax.adam(2e-4, b1=0.5)  # DCGAN settings (Radford et al. 2016)
    start = time.perf_counter()
    res = gan.fit(key, data, model=model, loss="non_saturating", k_disc=1, optimizer_g=opt,
                  optimizer_d=opt, batch_size=64, n_epochs=n_epochs, progress=False)
    h = res.history
    print(f"MNIST {model_name} GAN, {n_epochs} epochs ({time.perf_counter() - start:.1f} s): "
          f"last epoch d_loss {h['d_loss'][-1]:.3f}, g_loss {h['g_loss'][-1]:.3f}, "
          f"D(x) {h['d_real'][-1]:.3f}, D(G(z)) {h['d_fake'][-1]:.3f}")
    samples = gan.sample(jax.random.fold_in(key, 3), res.state, 64, model=model)
    viz.plot_image_grid(samples, n_cols=8, value_range=(-1.0, 1.0),
                        title=f"{model_name} GAN samples, {n_epochs} epochs"
                        ).savefig(out / "gan_mnist_samples.png", dpi=120)
    viz.plot_gan_losses(h, title=f"MNIST {model_name} GAN").savefig(
        out / "gan_mnist_losses.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (under a minute)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the PNGs")
    parser.add_argument("--mnist-model", choices=("mlp", "dcgan"), default="mlp")
    parser.add_argument("--ring-epochs", type=int, default=None)
    parser.add_argument("--mnist-epochs", type=int, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ring_epochs = args.ring_epochs or (30 if args.quick else 200)
    mnist_epochs = args.mnist_epochs or (2 if args.quick else 10)
    key = jax.random.key(0)
    ring(jax.random.fold_in(key, 0), args.out, ring_epochs)
    mnist(jax.random.fold_in(key, 1), args.out, mnist_epochs, args.mnist_model)
    print(f"figures written to {args.out.resolve()}")


if __name__ == "__main__":
    main()
