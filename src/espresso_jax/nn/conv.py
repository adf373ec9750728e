"""Small convolutional encoder and decoder for 28×28 images (MNIST-sized), as flax.linen modules.

Both are used functionally (``params = module.init(key, x)``, ``module.apply(params, x)``) and
accept any number of leading batch axes.

* :class:`ConvEncoder`: ``(..., H, W, C)`` images → ``(..., out_features)`` features through
  stride-2 convolutions (each halves the spatial size) and a Dense layer.
* :class:`PatchConv`: the same stride-``s`` "SAME" convolution as ``nn.Conv`` (same
  parameters), computed as a matrix product of image patches (im2col). XLA's CPU backend runs
  the gradients of ``nn.Conv`` several times slower inside a loop (``lax.scan``, as in
  :func:`espresso_jax.train.fit_loop`) than in a single jitted call; slices, pads and matrix
  products have no such penalty.
* :func:`upsample_nearest`: nearest-neighbour upsampling by an integer factor (default 2),
  repeating rows and columns; a stride-1 :class:`PatchConv` after it is the "resize-convolution" of
  :class:`~espresso_jax.nn.gan_modules.UpsampleConvGenerator` (no transposed convolution).
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
    "PatchConv",
    "check_image_shape",
    "image_patches",
    "upsample_nearest",
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
    patches: bool = False
    """compute each convolution as :class:`PatchConv` (same parameters and outputs; faster
    gradients inside ``lax.scan`` on CPU)"""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch = x.shape[:-3]
        h = x.reshape((-1,) + x.shape[-3:])
        for i, width in enumerate(self.features):
            if self.patches:
                h = PatchConv(width, 4, 2, name=f"conv_{i}")(h)
            else:
                h = nn.Conv(width, (4, 4), strides=(2, 2), padding="SAME",
                            kernel_init=KERNEL_INIT, name=f"conv_{i}")(h)
            h = self.activation(h)
        h = h.reshape(h.shape[0], -1)
        h = self.activation(nn.Dense(self.out_features, name="dense")(h))
        return h.reshape(batch + (self.out_features,))


def image_patches(x: jax.Array, kernel_size: int, stride: int) -> jax.Array:
    """The ``kernel_size × kernel_size`` patches of a stride-``stride`` "SAME" convolution.

    Padding as ``lax.conv`` with ``padding="SAME"``: output size ``ceil(H / stride)``, the
    total padding ``max((out - 1) * stride + kernel_size - H, 0)`` split with the smaller half
    before.

    Args:
        x: ``(n, H, W, C)`` images.

    Returns:
        ``(n, ceil(H / stride), ceil(W / stride), kernel_size² · C)`` patches, flattened in
        ``(row, column, channel)`` order (that of a ``(k, k, C, F)`` kernel reshaped to
        ``(k² C, F)``).
    """
    k, s = int(kernel_size), int(stride)
    _, height, width, _ = x.shape
    out_h, out_w = -(-height // s), -(-width // s)
    pad_h = max((out_h - 1) * s + k - height, 0)
    pad_w = max((out_w - 1) * s + k - width, 0)
    x = jnp.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2),
                    (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    span_h, span_w = s * (out_h - 1) + 1, s * (out_w - 1) + 1
    return jnp.concatenate([x[:, i:i + span_h:s, j:j + span_w:s, :]
                            for i in range(k) for j in range(k)], axis=-1)


class PatchConv(nn.Module):
    """``nn.Conv(features, (k, k), strides=(s, s), padding="SAME")`` as a product of
    :func:`image_patches` with the kernel (the same ``kernel (k, k, C, features)`` and
    ``bias`` parameters and initialisers, so the two are interchangeable).

    Attributes:
        features: output channels.
        kernel_size: ``k``.
        stride: ``s``.

    Shapes: ``x: (n, H, W, C) -> (n, ceil(H / s), ceil(W / s), features)``.
    """

    features: int
    kernel_size: int = 4
    stride: int = 2
    use_bias: bool = True
    """add a learnt ``bias (features,)`` (``False`` before a BatchNorm, as ``nn.Conv``'s
    ``use_bias``)"""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, c = self.kernel_size, x.shape[-1]
        kernel = self.param("kernel", KERNEL_INIT, (k, k, c, self.features), jnp.float32)
        patches = image_patches(x, k, self.stride)
        out = patches @ kernel.reshape(k * k * c, self.features)
        if not self.use_bias:
            return out
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        return out + bias[None, None, None, :]


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
    """Nearest-neighbour upsampling: each pixel repeated ``factor`` times along the rows and
    the columns (for an integer factor, ``jax.image.resize(x, (n, fH, fW, C), "nearest")``);
    its gradient sums each ``factor × factor`` block, cheap inside ``lax.scan``.

    Shapes: ``x: (n, H, W, C) -> (n, factor·H, factor·W, C)``.
    """
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


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
