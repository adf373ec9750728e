"""Small convolutional encoder and decoder for 28×28 images (MNIST-sized), as flax.linen modules.

Both are used functionally (``params = module.init(key, x)``, ``module.apply(params, x)``) and
accept any number of leading batch axes.

* :class:`ConvEncoder`: ``(..., H, W, C)`` images → ``(..., out_features)`` features through
  stride-2 convolutions (each halves the spatial size) and a Dense layer.
* :class:`ConvDecoder`: ``(..., in_features)`` codes → ``(..., H, W, C)`` outputs (logits or
  means, no final non-linearity) through a Dense layer, a reshape to a
  ``(H / 2^L, W / 2^L, features[0])`` map and stride-2 transposed convolutions.

References:
    A. Radford, L. Metz and S. Chintala, "Unsupervised representation learning with deep
    convolutional generative adversarial networks", ICLR 2016 (strided convolutions instead of
    pooling; the same layout serves VAEs and auto-encoders).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from espresso_jax.nn.modules import KERNEL_INIT

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "check_image_shape",
    "flatten_images",
    "unflatten_images",
]


def check_image_shape(image_shape: Sequence[int], n_layers: int,
                      name: str = "image_shape") -> tuple[int, int, int]:
    """Validate ``(H, W, C)`` for ``n_layers`` stride-2 layers (H and W divisible by 2^L)."""
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name} must be (height, width, channels), got {image_shape!r}")
    factor = 2 ** n_layers
    if shape[0] % factor or shape[1] % factor:
        raise ValueError(f"{name} {shape}: height and width must be divisible by "
                         f"2**{n_layers} = {factor} for {n_layers} stride-2 layers")
    return shape


class ConvEncoder(nn.Module):
    """Stride-2 convolutional encoder.

    Attributes:
        features: channels of each 4×4 stride-2 convolution, e.g. ``(32, 64)`` maps
            ``28×28×1 → 14×14×32 → 7×7×64``.
        out_features: width of the final Dense layer (the feature vector).
        activation: non-linearity after every layer, the last included (the output is a
            hidden representation; heads such as a VAE's mean and log-variance go on top).

    Shapes: ``x: (..., H, W, C) -> (..., out_features)``.
    """

    features: Sequence[int] = (32, 64)
    out_features: int = 256
    activation: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch = x.shape[:-3]
        h = x.reshape((-1,) + x.shape[-3:])
        for i, width in enumerate(self.features):
            h = nn.Conv(width, (4, 4), strides=(2, 2), padding="SAME",
                        kernel_init=KERNEL_INIT, name=f"conv_{i}")(h)
            h = self.activation(h)
        h = h.reshape(h.shape[0], -1)
        h = self.activation(nn.Dense(self.out_features, name="dense")(h))
        return h.reshape(batch + (self.out_features,))


class ConvDecoder(nn.Module):
    """Transposed-convolution decoder (mirror of :class:`ConvEncoder`).

    Attributes:
        image_shape: output ``(H, W, C)``; H and W divisible by ``2 ** len(features)``.
        features: channels of the first feature map and of each transposed convolution but the
            last, e.g. ``(64, 32)``: ``Dense → 7×7×64 → 14×14×32 → 28×28×C``.
        activation: non-linearity after every layer but the last (outputs are logits/means).

    Shapes: ``z: (..., in_features) -> (..., H, W, C)``.
    """

    image_shape: Sequence[int] = (28, 28, 1)
    features: Sequence[int] = (64, 32)
    activation: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        height, width, channels = check_image_shape(self.image_shape, len(self.features))
        factor = 2 ** len(self.features)
        h0, w0 = height // factor, width // factor
        batch = z.shape[:-1]
        h = z.reshape(-1, z.shape[-1])
        h = self.activation(nn.Dense(h0 * w0 * self.features[0], name="dense")(h))
        h = h.reshape(h.shape[0], h0, w0, self.features[0])
        widths = tuple(self.features[1:]) + (channels,)
        for i, out in enumerate(widths):
            h = nn.ConvTranspose(out, (4, 4), strides=(2, 2), padding="SAME",
                                 kernel_init=KERNEL_INIT, name=f"deconv_{i}")(h)
            if i < len(widths) - 1:
                h = self.activation(h)
        return h.reshape(batch + (height, width, channels))


def flatten_images(x: jax.Array) -> jax.Array:
    """``(..., H, W, C) -> (..., H*W*C)``."""
    return x.reshape(x.shape[:-3] + (-1,))


def unflatten_images(x: jax.Array, image_shape: Sequence[int]) -> jax.Array:
    """``(..., H*W*C) -> (..., H, W, C)``."""
    return jnp.reshape(x, x.shape[:-1] + tuple(image_shape))
