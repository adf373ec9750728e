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
from espresso_jax.nn.conv import (
    ConvDecoder,
    ConvEncoder,
    check_image_shape,
    flatten_images,
    unflatten_images,
)
from espresso_jax.nn.modules import MLP
from espresso_jax.validation import (
    as_float_array,
    check_choice,
    check_int,
    check_key,
    float_dtype,
)

__all__ = [
    "AutoEncoder",
    "check_model",
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


def check_model(model: Any, cls: type[Any]) -> Any:
    """Validate an auto-encoder/VAE configuration on the host (errors name the field)."""
    if not isinstance(model, cls):
        raise TypeError(f"model must be a {cls.__name__}, got {type(model).__name__}")
    check_int(model.data_dim, "model.data_dim", min_value=1)
    check_int(model.latent_dim, "model.latent_dim", min_value=1)
    for width in model.hidden:
        check_int(width, "model.hidden", min_value=1)
    check_choice(model.architecture, "model.architecture", ARCHITECTURES)
    if model.architecture == "conv":
        for width in model.conv_features:
            check_int(width, "model.conv_features", min_value=1)
        if not len(model.conv_features):
            raise ValueError("model.conv_features must name at least one layer")
        shape = check_image_shape(model.image_shape, len(model.conv_features),
                                  "model.image_shape")
        if math.prod(shape) != model.data_dim:
            raise ValueError(f"model.image_shape {shape} holds {math.prod(shape)} values but "
                             f"model.data_dim is {model.data_dim}")
    return model


def to_images(x: jax.Array, architecture: str, image_shape: Sequence[int]) -> jax.Array:
    """Flat ``(..., D)`` inputs as the encoder body wants them (images for ``"conv"``)."""
    return unflatten_images(x, image_shape) if architecture == "conv" else x


def to_flat(y: jax.Array, architecture: str) -> jax.Array:
    """Decoder output back to flat ``(..., D)``."""
    return flatten_images(y) if architecture == "conv" else y


def check_data(model: Any, X: ArrayLike, name: str = "X") -> jax.Array:
    """``X: (n_samples, model.data_dim)`` finite floats."""
    return as_float_array(X, name, ndim=2, shape_hint="(n_samples, data_dim)",
                          n_columns=model.data_dim)


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


def init(key: jax.Array, model: AutoEncoder) -> Any:
    """Initial parameters of ``model`` (flax variables dict) in the working float dtype."""
    key = check_key(key)
    model = check_model(model, AutoEncoder)
    # flax creates float32 parameters; trace in float32, then cast to the working dtype
    params = jax.jit(model.init)(key, jnp.zeros((1, model.data_dim), dtype=jnp.float32))
    return jax.tree.map(lambda a: a.astype(float_dtype()), params)


@functools.lru_cache(maxsize=64)
def make_loss(model: AutoEncoder) -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
    """The L2 reconstruction loss ``(params, batch, key) -> mean_n ‖x_n − x̂_n‖²``.

    ``batch: (M, D)``; the key is unused (the model is deterministic). The same ``model``
    returns the same function object, so :func:`espresso_jax.train.fit` does not recompile.
    """

    def loss(params: Any, batch: jax.Array, key: jax.Array) -> jax.Array:
        del key
        err = batch - cast(jax.Array, model.apply(params, batch))
        return jnp.mean(jnp.sum(err * err, axis=-1))

    return loss


def fit(key: jax.Array, X: ArrayLike, *, module: AutoEncoder,
        optimizer: optax.GradientTransformation, batch_size: int, n_epochs: int,
        params: Any = None, **loop_options: Any) -> train.FitResult:
    """Train an auto-encoder on ``X: (n_samples, data_dim)`` with :func:`espresso_jax.train.fit`.

    Args:
        key: PRNG key (initialisation when ``params`` is None, shuffling).
        X: ``(n_samples, data_dim)`` training data.
        module: the :class:`AutoEncoder` (a flax module and the model's configuration).
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
    model = check_model(module, AutoEncoder)
    X = check_data(model, X)
    init_key, fit_key = jax.random.split(key)
    if params is None:
        params = init(init_key, model)
    return train.fit(fit_key, make_loss(model), params, X, optimizer=optimizer,
                     batch_size=batch_size, n_epochs=n_epochs, **loop_options)


@functools.partial(jax.jit, static_argnames=("model", "what"))
def _apply(model, params, X, what):
    if what == "encode":
        return model.apply(params, X, method=AutoEncoder.encode)
    Xhat = model.apply(params, X)
    if what == "reconstruct":
        return Xhat
    return jnp.sum((X - Xhat) ** 2, axis=-1)


def encode(model: AutoEncoder, params: Any, X: ArrayLike) -> jax.Array:
    """Codes (features) of ``X: (n, data_dim)`` → ``(n, latent_dim)``."""
    model = check_model(model, AutoEncoder)
    return _apply(model, params, check_data(model, X), "encode")


def reconstruct(model: AutoEncoder, params: Any, X: ArrayLike) -> jax.Array:
    """Reconstructions ``decode(encode(X))``, ``(n, data_dim)``."""
    model = check_model(model, AutoEncoder)
    return _apply(model, params, check_data(model, X), "reconstruct")


def reconstruction_error(model: AutoEncoder, params: Any, X: ArrayLike) -> jax.Array:
    """Per-example squared error ``‖x_n − x̂_n‖²``, ``(n,)``."""
    model = check_model(model, AutoEncoder)
    return _apply(model, params, check_data(model, X), "error")
