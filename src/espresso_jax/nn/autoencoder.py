"""Deterministic auto-encoders (MLP or convolutional) trained with the SGD engine.

An :class:`AutoEncoder` maps flat inputs ``x: (..., data_dim)`` to a code ``(..., code_dim)``
and back. The squared reconstruction error ``‖x − x̂‖²`` (summed over features, averaged over
the minibatch) is a loss ``(params, batch, key)`` for :func:`espresso_jax.train.fit`;
:func:`encode` turns a trained encoder into a feature extractor.

With ``hidden=()`` the encoder and the decoder are single affine maps: the *linear*
auto-encoder, whose global minimum spans the same subspace as PCA with ``code_dim``
components (Baldi & Hornik 1989), so its reconstruction error reaches PCA's.

The encoder/decoder builders here (:func:`encoder_body`, :func:`decoder_net`) are shared with
:mod:`espresso_jax.nn.vae`.

References:
    P. Baldi and K. Hornik, "Neural networks and principal component analysis: learning from
    examples without local minima", Neural Networks 2(1), 1989.
    G. E. Hinton and R. R. Salakhutdinov, "Reducing the dimensionality of data with neural
    networks", Science 313, 2006.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from espresso_jax import train
from espresso_jax.netcheck import check_optimizer
from espresso_jax.nn.conv import (
    ConvDecoder,
    ConvEncoder,
    check_image_shape,
    flatten_images,
    unflatten_images,
)
from espresso_jax.nn.modules import MLP, check_params_on_rows, init_on_rows
from espresso_jax.scaling import checked_exponent
from espresso_jax.validation import (
    as_float_array,
    check_choice,
    check_int,
    check_key,
    float_dtype,
)

__all__ = [
    "AutoEncoder",
    "check_module",
    "decoder_net",
    "encode",
    "encoder_body",
    "fit",
    "init",
    "make_loss",
    "reconstruct",
    "reconstruction_error",
]

ARCHITECTURES = ("mlp", "conv")


# --------------------------------------------------------------------------------------------
# Shared encoder/decoder builders (used by the VAE too)
# --------------------------------------------------------------------------------------------

def encoder_body(architecture: str, hidden: Sequence[int],
                 activation: Callable[[jax.Array], jax.Array],
                 conv_features: Sequence[int]) -> nn.Module | None:
    """The encoder up to (not including) its output head; ``None`` means the identity.

    ``"mlp"``: Dense layers of widths ``hidden``, each followed by ``activation``.
    ``"conv"``: :class:`~espresso_jax.nn.conv.ConvEncoder` with ``conv_features`` channels and
    a final Dense of width ``hidden[-1]`` (256 when ``hidden`` is empty); it takes images
    ``(..., H, W, C)``, see :func:`to_images`.
    """
    if architecture == "conv":
        return ConvEncoder(features=tuple(conv_features),
                           out_features=int(hidden[-1]) if len(hidden) else 256,
                           activation=activation)
    if not len(hidden):
        return None
    return MLP(features=tuple(hidden), activation=activation, final_activation=activation)


def decoder_net(architecture: str, hidden: Sequence[int], data_dim: int,
                activation: Callable[[jax.Array], jax.Array], image_shape: Sequence[int],
                conv_features: Sequence[int]) -> nn.Module:
    """The decoder: code ``(..., k)`` → ``(..., data_dim)`` for ``"mlp"`` (mirror of the
    encoder, ``hidden`` reversed, no final non-linearity) or ``(..., H, W, C)`` for
    ``"conv"`` (:class:`~espresso_jax.nn.conv.ConvDecoder` with ``conv_features`` reversed)."""
    if architecture == "conv":
        return ConvDecoder(image_shape=tuple(image_shape),
                           features=tuple(reversed(tuple(conv_features))),
                           activation=activation)
    return MLP(features=tuple(reversed(tuple(hidden))) + (data_dim,), activation=activation)


def check_module(module: Any, cls: type[Any]) -> Any:
    """Validate an auto-encoder/VAE configuration on the host (errors name the field)."""
    if not isinstance(module, cls):
        raise TypeError(f"module must be a {cls.__name__}, got {type(module).__name__}")
    check_int(module.data_dim, "module.data_dim", min_value=1)
    check_int(module.latent_dim, "module.latent_dim", min_value=1)
    for width in module.hidden:
        check_int(width, "module.hidden", min_value=1)
    check_choice(module.architecture, "module.architecture", ARCHITECTURES)
    if module.architecture == "conv":
        for width in module.conv_features:
            check_int(width, "module.conv_features", min_value=1)
        if not len(module.conv_features):
            raise ValueError("module.conv_features must name at least one layer")
        shape = check_image_shape(module.image_shape, len(module.conv_features),
                                  "module.image_shape")
        if math.prod(shape) != module.data_dim:
            raise ValueError(f"module.image_shape {shape} holds {math.prod(shape)} values but "
                             f"module.data_dim is {module.data_dim}")
    return module


def to_images(x: jax.Array, architecture: str, image_shape: Sequence[int]) -> jax.Array:
    """Flat ``(..., D)`` inputs as the encoder body wants them (images for ``"conv"``)."""
    return unflatten_images(x, image_shape) if architecture == "conv" else x


def to_flat(y: jax.Array, architecture: str) -> jax.Array:
    """Decoder output back to flat ``(..., D)``."""
    return flatten_images(y) if architecture == "conv" else y


def check_data(module: Any, X: ArrayLike, name: str = "X") -> jax.Array:
    """``X: (n_samples, module.data_dim)`` finite floats."""
    return as_float_array(X, name, ndim=2, shape_hint="(n_samples, data_dim)",
                          n_columns=module.data_dim)


# --------------------------------------------------------------------------------------------
# The auto-encoder
# --------------------------------------------------------------------------------------------

class AutoEncoder(nn.Module):
    """Deterministic auto-encoder on flat inputs.

    Attributes:
        data_dim: input size ``D`` (784 for MNIST).
        latent_dim: code size ``k``.
        hidden: encoder hidden widths, e.g. ``(500, 500)``; the decoder mirrors them. ``()``
            gives the linear auto-encoder (affine encoder and decoder).
        architecture: ``"mlp"`` or ``"conv"`` (inputs reshaped to ``image_shape``).
        activation: hidden non-linearity.
        image_shape: ``(H, W, C)`` for ``"conv"``, with ``H*W*C == data_dim``.
        conv_features: encoder convolution channels for ``"conv"``.

    Shapes: ``encode: (..., D) -> (..., k)``, ``decode: (..., k) -> (..., D)``,
    ``__call__: (..., D) -> (..., D)``.
    """

    data_dim: int = 784
    latent_dim: int = 20
    hidden: Sequence[int] = (500, 500)
    architecture: str = "mlp"
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    image_shape: Sequence[int] = (28, 28, 1)
    conv_features: Sequence[int] = (32, 64)

    def setup(self) -> None:
        self.body = encoder_body(self.architecture, self.hidden, self.activation,
                                 self.conv_features)
        self.code = nn.Dense(self.latent_dim)
        self.decoder = decoder_net(self.architecture, self.hidden, self.data_dim,
                                   self.activation, self.image_shape, self.conv_features)

    def encode(self, x: jax.Array) -> jax.Array:
        h = to_images(x, self.architecture, self.image_shape)
        return self.code(h if self.body is None else self.body(h))

    def decode(self, c: jax.Array) -> jax.Array:
        return to_flat(self.decoder(c), self.architecture)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))


def init(key: jax.Array, module: AutoEncoder) -> Any:
    """Initial parameters of ``module`` (flax variables dict) in the working float dtype."""
    key = check_key(key)
    module = check_module(module, AutoEncoder)
    # flax creates float32 parameters; trace in float32, then cast to the working dtype
    params = init_on_rows(key, module)
    return jax.tree.map(lambda a: a.astype(float_dtype()), params)


@functools.lru_cache(maxsize=64)
def make_loss(module: AutoEncoder) -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
    """The L2 reconstruction loss ``(params, batch, key) -> mean_n ‖x_n − x̂_n‖²``.

    ``batch: (M, D)``; the key is unused (the module is deterministic). The same ``module``
    returns the same function object, so :func:`espresso_jax.train.fit` does not recompile.
    """

    def loss(params: Any, batch: jax.Array, key: jax.Array) -> jax.Array:
        del key
        err = batch - cast(jax.Array, module.apply(params, batch))
        return jnp.mean(jnp.sum(err * err, axis=-1))

    return loss


def fit(key: jax.Array, X: ArrayLike, *, module: AutoEncoder,
        optimizer: optax.GradientTransformation, batch_size: int, n_epochs: int,
        params: Any = None, **loop_options: Any) -> train.FitResult:
    """Train an auto-encoder on ``X: (n_samples, data_dim)`` with :func:`espresso_jax.train.fit`.

    Args:
        key: PRNG key (initialisation when ``params`` is None, shuffling).
        X: ``(n_samples, data_dim)`` training data.
        module: the :class:`AutoEncoder` (a flax module and the module's configuration).
        optimizer: optax optimiser.
        batch_size: minibatch size.
        n_epochs: epochs.
        params: initial parameters (default: :func:`init`).
        **loop_options: forwarded to :func:`espresso_jax.train.fit_loop` (``progress``,
            ``eval_fn``, ``patience``, ...).

    Returns:
        :class:`espresso_jax.train.FitResult`; the trained parameters are ``best_params``
        (the final ones without an ``eval_fn``); ``history["loss"]`` is the per-epoch mean
        squared reconstruction error per example.
    """
    key = check_key(key)
    module = check_module(module, AutoEncoder)
    X = check_data(module, X)
    # the loss squares reconstructions of X: a magnitude whose square leaves the dtype would
    # end in "training diverged"; say instead how to rescale X
    checked_exponent(X, "X", kind="magnitude", what="the squared reconstruction error")
    optimizer = check_optimizer(optimizer)
    if params is not None:
        params = check_params_on_rows(module, params)
    init_key, fit_key = jax.random.split(key)
    if params is None:
        params = init(init_key, module)
    return train.fit(fit_key, make_loss(module), params, X, optimizer=optimizer,
                     batch_size=batch_size, n_epochs=n_epochs, **loop_options)


@functools.partial(jax.jit, static_argnames=("module", "what"))
def _apply(module, params, X, what):
    if what == "encode":
        return module.apply(params, X, method=AutoEncoder.encode)
    Xhat = module.apply(params, X)
    if what == "reconstruct":
        return Xhat
    return jnp.sum((X - Xhat) ** 2, axis=-1)


def encode(module: AutoEncoder, params: Any, X: ArrayLike) -> jax.Array:
    """Codes (features) of ``X: (n, data_dim)`` → ``(n, latent_dim)``."""
    module = check_module(module, AutoEncoder)
    params = check_params_on_rows(module, params)
    return _apply(module, params, check_data(module, X), "encode")


def reconstruct(module: AutoEncoder, params: Any, X: ArrayLike) -> jax.Array:
    """Reconstructions ``decode(encode(X))``, ``(n, data_dim)``."""
    module = check_module(module, AutoEncoder)
    params = check_params_on_rows(module, params)
    return _apply(module, params, check_data(module, X), "reconstruct")


def reconstruction_error(module: AutoEncoder, params: Any, X: ArrayLike) -> jax.Array:
    """Per-example squared error ``‖x_n − x̂_n‖²``, ``(n,)``."""
    module = check_module(module, AutoEncoder)
    params = check_params_on_rows(module, params)
    return _apply(module, params, check_data(module, X), "error")
