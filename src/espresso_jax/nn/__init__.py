"""Neural models (flax.linen modules used functionally): shared modules, auto-encoders,
variational auto-encoders and GANs, all trained with :mod:`espresso_jax.train`."""

from espresso_jax.nn import (
           autoencoder,
           conv,
           gan,
           gan_losses,
           gan_metrics,
           infogan,
           infogan_eval,
           modules,
           supervised,
           vae,
           vqvae,
           vqvae_quantize,
)
from espresso_jax.nn.gan_modules import GANOptimizers

__all__ = ["GANOptimizers", "autoencoder", "conv", "gan", "gan_losses", "gan_metrics",
           "infogan", "infogan_eval", "modules", "supervised", "vae", "vqvae", "vqvae_quantize"]
