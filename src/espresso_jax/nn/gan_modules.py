"""GAN players: MLP and DCGAN generators and discriminators, an upsampling convolutional
generator (:class:`UpsampleConvGenerator`), :class:`GANModel`, the static
description of a GAN that :mod:`espresso_jax.nn.gan` trains and samples, and
:class:`GANOptimizers`, one optax optimiser per player.

Every player is called as ``module.apply(variables, inputs, train)``; ``train`` switches
BatchNorm between batch statistics and running averages (the MLP players ignore it).

References:
    Goodfellow et al. (2014), Generative adversarial nets, NeurIPS.
    Odena, Dumoulin and Olah (2016), Deconvolution and checkerboard artifacts, Distill
    (nearest-neighbour upsampling followed by a convolution).
    Radford, Metz and Chintala (2016), Unsupervised representation learning with deep
    convolutional generative adversarial networks, ICLR (DCGAN).
    Gulrajani et al. (2017), Improved training of Wasserstein GANs, NeurIPS (per-example
    critic normalisation).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from espresso_jax.netcheck import check_optimizer
from espresso_jax.nn.conv import PatchConv, check_image_shape, upsample_nearest
from espresso_jax.nn.modules import KERNEL_INIT, MLP
from espresso_jax.validation import check_choice, check_int

__all__ = [
    "MLPGenerator",
    "UpsampleConvGenerator",
    "MLPDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "GANModel",
    "GANOptimizers",
    "gan_optimizers",
    "mlp_gan",
    "dcgan",
]


class MLPGenerator(nn.Module):
    """MLP generator ``z (n, latent_dim) -> x (n, *sample_shape)``.

    Attributes:
        sample_shape: shape of one generated example, e.g. ``(2,)`` or ``(784,)``.
        hidden: widths of the hidden layers (``()``: an affine map of ``z``).
        activation: hidden non-linearity.
        final_activation: output non-linearity (``jnp.tanh`` for data in [-1, 1]).
        batch_norm: BatchNorm after each hidden Dense layer, before the activation (as in
            DCGAN's generator); ``train`` then picks batch statistics or running averages.
    """

    sample_shape: Sequence[int] = (2,)
    hidden: Sequence[int] = (128, 128)
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    final_activation: Callable[[jax.Array], jax.Array] | None = None
    batch_norm: bool = False

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        width = math.prod(self.sample_shape)
        if not self.batch_norm:
            x = MLP(tuple(self.hidden) + (width,), activation=self.activation,
                    final_activation=self.final_activation, name="mlp")(z)
            return x.reshape(z.shape[:-1] + tuple(self.sample_shape))
        x = z
        for i, w in enumerate(self.hidden):
            x = nn.Dense(w, use_bias=False, name=f"dense_{i}")(x)
            x = self.activation(_batch_norm(train, f"bn_{i}")(x))
        x = nn.Dense(width, name=f"dense_{len(self.hidden)}")(x)
        if self.final_activation is not None:
            x = self.final_activation(x)
        return x.reshape(z.shape[:-1] + tuple(self.sample_shape))


class UpsampleConvGenerator(nn.Module):
    """Convolutional generator by nearest-neighbour upsampling and stride-1 convolutions.

    ``z -> [Dense(w) -> BN -> ReLU for w in hidden] -> Dense(h0·w0·f0) -> BN -> ReLU ->
    (h0, w0, f0) -> [2× nearest -> conv k×k (f) -> BN -> ReLU for f in features[1:]] -> 2×
    nearest -> conv k×k (C) -> final_activation -> sample_shape``, with ``(H, W, C) =
    image_shape`` and ``h0 = H / 2^L``, ``w0 = W / 2^L`` for ``L = len(features)``
    upsamplings. The default maps ``(n, 74) -> 256 -> 7×7×16 -> 14×14×8 -> 28×28×1`` flattened
    to ``(n, 784)``. The convolutions are :class:`~espresso_jax.nn.conv.PatchConv` (the same
    parameters as ``nn.Conv``; XLA's CPU gradients of ``nn.Conv`` are several times slower
    inside ``lax.scan``). Without ``batch_norm`` every layer has a bias and no BatchNorm.

    Attributes:
        sample_shape: shape of one generated example, e.g. ``(784,)`` or ``(28, 28, 1)``
            (as many values as ``image_shape``).
        image_shape: ``(H, W, C)`` of the image before the final reshape; H and W divisible
            by ``2 ** len(features)``.
        hidden: widths of the Dense layers before the first feature map (``()``: none).
        features: channels of the first feature map and of each convolution but the last
            (which has C channels), at least one.
        kernel_size: side of the square convolution kernels.
        activation: hidden non-linearity.
        final_activation: output non-linearity (``jnp.tanh`` for data in [-1, 1], ``None``
            for none).
        batch_norm: BatchNorm after every layer but the last (before the activation; the
            layer then has no bias); ``train`` picks batch statistics (and updates the
            running averages in ``batch_stats``) or the running averages.

    Shapes: ``z: (n, latent_dim) -> (n, *sample_shape)``.

    Raises:
        ValueError / TypeError: on construction, naming the attribute, for shapes that do not
        fit (checked on the host).
    """

    sample_shape: Sequence[int] = (784,)
    image_shape: Sequence[int] = (28, 28, 1)
    hidden: Sequence[int] = (256,)
    features: Sequence[int] = (16, 8)
    kernel_size: int = 3
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    final_activation: Callable[[jax.Array], jax.Array] | None = jnp.tanh
    batch_norm: bool = True

    def __post_init__(self) -> None:
        shape = tuple(check_int(s, "sample_shape", min_value=1) for s in self.sample_shape)
        for w in self.hidden:
            check_int(w, "hidden", min_value=1)
        if len(self.features) < 1:
            raise ValueError("features must hold at least one channel count (the first "
                             "feature map)")
        for f in self.features:
            check_int(f, "features", min_value=1)
        check_int(self.kernel_size, "kernel_size", min_value=1)
        for s in self.image_shape:
            check_int(s, "image_shape", min_value=1)
        image = check_image_shape(self.image_shape, len(self.features))
        if math.prod(image) != math.prod(shape):
            raise ValueError(f"image_shape {image} must hold the {math.prod(shape)} values of "
                             f"sample_shape {shape}")
        super().__post_init__()

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        height, width, channels = self.image_shape
        factor = 2 ** len(self.features)
        bn = self.batch_norm

        def norm_act(h: jax.Array, i: int) -> jax.Array:
            return self.activation(_batch_norm(train, f"bn_{i}")(h) if bn else h)

        h = z
        for i, w in enumerate(tuple(self.hidden) + (height // factor * (width // factor)
                                                    * self.features[0],)):
            h = norm_act(nn.Dense(w, use_bias=not bn, name=f"dense_{i}")(h), i)
        h = h.reshape((z.shape[0], height // factor, width // factor, self.features[0]))
        n_dense = len(self.hidden) + 1
        widths = tuple(self.features[1:]) + (channels,)
        for j, f in enumerate(widths):
            last = j == len(widths) - 1
            h = PatchConv(f, self.kernel_size, 1, use_bias=last or not bn,
                          name=f"conv_{j}")(upsample_nearest(h, 2))
            if not last:
                h = norm_act(h, n_dense + j)
        if self.final_activation is not None:
            h = self.final_activation(h)
        return h.reshape((z.shape[0],) + tuple(self.sample_shape))


class MLPDiscriminator(nn.Module):
    """MLP discriminator ``x (n, *sample_shape) -> logit (n,)`` (examples are flattened).

    Attributes:
        hidden: widths of the hidden layers.
        activation: hidden non-linearity (default LeakyReLU(0.2)).
    """

    hidden: Sequence[int] = (128, 128)
    activation: Callable[[jax.Array], jax.Array] = functools.partial(nn.leaky_relu,
                                                                     negative_slope=0.2)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        del train
        x = x.reshape((x.shape[0], -1))
        return MLP(tuple(self.hidden) + (1,), activation=self.activation, name="mlp")(x)[:, 0]


def _batch_norm(train: bool, name: str) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


class DCGANGenerator(nn.Module):
    """DCGAN generator for 28x28x1 images (Radford et al. 2016, scaled to MNIST).

    ``z -> Dense(7*7*2f) -> BN -> ReLU -> (7, 7, 2f) -> ConvT(f, 4x4, stride 2) -> BN -> ReLU
    -> ConvT(1, 4x4, stride 2) -> tanh``, i.e. ``(n, latent_dim) -> (n, 28, 28, 1)`` in [-1, 1].

    Attributes:
        features: width ``f`` of the last hidden layer.
    """

    features: int = 64

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        f = self.features
        x = nn.Dense(7 * 7 * 2 * f, use_bias=False, name="dense")(z)
        x = nn.relu(_batch_norm(train, "bn_0")(x))
        x = x.reshape((z.shape[0], 7, 7, 2 * f))
        x = nn.ConvTranspose(f, (4, 4), strides=(2, 2), padding="SAME", use_bias=False,
                             kernel_init=KERNEL_INIT, name="deconv_0")(x)
        x = nn.relu(_batch_norm(train, "bn_1")(x))
        x = nn.ConvTranspose(1, (4, 4), strides=(2, 2), padding="SAME",
                             kernel_init=KERNEL_INIT, name="deconv_1")(x)
        return jnp.tanh(x)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator for 28x28x1 images: ``(n, 28, 28, 1) -> logit (n,)``.

    ``Conv(f, 4x4, stride 2) -> LeakyReLU(0.2) -> Conv(2f, 4x4, stride 2) -> norm ->
    LeakyReLU(0.2) -> Dense(1)`` (no normalisation after the first layer, as in DCGAN).

    Attributes:
        features: width ``f`` of the first convolution.
        norm: ``"batch"`` (DCGAN), ``"layer"`` or ``"none"``; WGAN-GP needs a per-example
            critic, so use ``"layer"`` or ``"none"`` there (Gulrajani et al. 2017, Sec. 4).
    """

    features: int = 64
    norm: str = "batch"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        f = self.features
        x = nn.leaky_relu(nn.Conv(f, (4, 4), strides=(2, 2), padding="SAME",
                                  kernel_init=KERNEL_INIT, name="conv_0")(x),
                          0.2)
        x = nn.Conv(2 * f, (4, 4), strides=(2, 2), padding="SAME", use_bias=self.norm == "none",
                    kernel_init=KERNEL_INIT, name="conv_1")(x)
        if self.norm == "batch":
            x = _batch_norm(train, "bn_1")(x)
        elif self.norm == "layer":
            x = nn.LayerNorm(name="ln_1")(x)
        x = nn.leaky_relu(x, 0.2)
        return nn.Dense(1, name="logit")(x.reshape((x.shape[0], -1)))[:, 0]


class GANModel(NamedTuple):
    """A GAN architecture (static configuration, hashable).

    Attributes:
        generator: flax module ``(z (n, latent_dim), train) -> (n, *sample_shape)``.
        discriminator: flax module ``(x (n, *sample_shape), train) -> logits (n,)``.
        latent_dim: width of the standard-normal noise ``z``.
        sample_shape: shape of one example, e.g. ``(2,)`` or ``(28, 28, 1)``.
    """

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    sample_shape: tuple[int, ...]


class GANOptimizers(NamedTuple):
    """One optax optimiser per player, the two-optimiser form of the ``optimizer`` argument of
    :func:`espresso_jax.nn.gan.fit` (a single optax optimiser is used by both players).

    Attributes:
        generator: the generator's optax ``GradientTransformation``.
        discriminator: the discriminator's optax ``GradientTransformation``.
    """

    generator: optax.GradientTransformation
    discriminator: optax.GradientTransformation


def gan_optimizers(optimizer: Any) -> GANOptimizers:
    """Validate the ``optimizer`` argument of the GAN functions (on the host, nothing traced).

    Args:
        optimizer: one optax ``GradientTransformation`` (both players use it, each with its own
            optimiser state) or a :class:`GANOptimizers`.

    Returns:
        :class:`GANOptimizers` ``(generator, discriminator)``.

    Raises:
        TypeError: anything else (a plain tuple included), naming ``optimizer``.
    """
    if isinstance(optimizer, GANOptimizers):
        for name, opt in optimizer._asdict().items():
            check_optimizer(opt, f"optimizer.{name}")
        return optimizer
    if isinstance(optimizer, optax.GradientTransformation):
        return GANOptimizers(optimizer, optimizer)
    raise TypeError("optimizer must be an optax GradientTransformation or a "
                    "GANOptimizers(generator=..., discriminator=...), got "
                    f"{type(optimizer).__name__}")


def mlp_gan(sample_shape: int | Sequence[int], *, latent_dim: int,
            g_hidden: Sequence[int] = (128, 128), d_hidden: Sequence[int] = (128, 128),
            g_final_activation: Callable[[jax.Array], jax.Array] | None = None,
            g_batch_norm: bool = False) -> GANModel:
    """An MLP generator and discriminator.

    Args:
        sample_shape: shape of one example (an int for vectors), e.g. ``2`` or ``784``.
        latent_dim: noise width.
        g_hidden: generator hidden widths (``()`` makes the generator affine).
        d_hidden: discriminator hidden widths.
        g_final_activation: generator output non-linearity (e.g. ``jnp.tanh``).
        g_batch_norm: BatchNorm in the generator's hidden layers (see :class:`MLPGenerator`).
    """
    shape = (sample_shape,) if isinstance(sample_shape, (int, np.integer)) else sample_shape
    shape = tuple(check_int(s, "sample_shape", min_value=1) for s in shape)
    latent_dim = check_int(latent_dim, "latent_dim", min_value=1)
    g_hidden = tuple(check_int(w, "g_hidden", min_value=1) for w in g_hidden)
    d_hidden = tuple(check_int(w, "d_hidden", min_value=1) for w in d_hidden)
    return GANModel(MLPGenerator(shape, g_hidden, final_activation=g_final_activation,
                                 batch_norm=bool(g_batch_norm)),
                    MLPDiscriminator(d_hidden), latent_dim, shape)


def dcgan(*, latent_dim: int = 100, features: int = 64, d_norm: str = "batch") -> GANModel:
    """DCGAN players for 28x28x1 images in [-1, 1] (see :class:`DCGANGenerator`)."""
    latent_dim = check_int(latent_dim, "latent_dim", min_value=1)
    features = check_int(features, "features", min_value=1)
    check_choice(d_norm, "d_norm", ("batch", "layer", "none"))
    return GANModel(DCGANGenerator(features), DCGANDiscriminator(features, d_norm), latent_dim,
                    (28, 28, 1))
