"""The VAE model (Kingma & Welling 2014): :class:`VAE`, a flax module with a Gaussian
recognition model ``q_φ(z | x) = N(μ_φ(x), diag σ²_φ(x))`` (the encoder outputs ``μ`` and
``log σ²``) and a Bernoulli decoder (logits) or a Gaussian decoder (mean, with a fixed, shared or
per-feature learned log-variance); its configuration checks, the data checks of the functions
that take a VAE, and :func:`init`. Trained and used by :mod:`espresso_jax.nn.vae`.

Numerics: log-variances are clipped to ``[-30, 30]`` before exponentiation; the Bernoulli
log-likelihood is ``x·l − softplus(l)`` for logits ``l`` (no ``log(0)``; equal to
``x log σ(l) + (1 − x) log σ(−l)`` with half the transcendentals). For intensities in
``[0, 1]`` that are not binary the Bernoulli "log-likelihood" is the negative cross-entropy (not
a normalised density).

References:
    D. P. Kingma and M. Welling, "Auto-encoding variational Bayes", ICLR 2014.
    J. Lucas, G. Tucker, R. Grosse and M. Norouzi, "Don't blame the ELBO! A linear VAE
    perspective on posterior collapse", NeurIPS 2019 (a linear VAE reaches the PPCA maximum).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from espresso_jax.nn.autoencoder import (
    check_data,
    check_module,
    decoder_net,
    encoder_body,
    to_flat,
    to_images,
)
from espresso_jax.nn.modules import init_on_rows
from espresso_jax.prob.gaussian import gaussian_log_density
from espresso_jax.validation import check_choice, check_key, float_dtype, is_traced

__all__ = ["LIKELIHOODS", "VARIANCES", "VAE", "check_vae", "check_vae_data", "init"]

LIKELIHOODS = ("bernoulli", "gaussian")
VARIANCES = ("shared", "per_feature", "fixed")
_LOGVAR_MIN, _LOGVAR_MAX = -30.0, 30.0


def _clip_logvar(logvar: jax.Array) -> jax.Array:
    return jnp.clip(logvar, _LOGVAR_MIN, _LOGVAR_MAX)


class VAE(nn.Module):
    """Gaussian-encoder VAE on flat inputs (a configuration; use it with the functions below).

    Attributes:
        data_dim: input size ``D`` (784 for MNIST).
        latent_dim: ``k``.
        hidden: encoder hidden widths (default ``(500, 500)``: the 784-500-500-20 encoder and
            its mirror decoder); ``()`` makes encoder heads and decoder affine (linear VAE).
        architecture: ``"mlp"`` or ``"conv"`` (see :mod:`espresso_jax.nn.conv`).
        likelihood: ``"bernoulli"`` (decoder outputs logits) or ``"gaussian"`` (means).
        variance: Gaussian decoder variance: ``"shared"`` (one learned ``log s²``),
            ``"per_feature"`` (``D`` learned values) or ``"fixed"`` (``init_logvar``).
        init_logvar: initial (or fixed) Gaussian decoder log-variance.
        activation: hidden non-linearity.
        image_shape: ``(H, W, C)`` for ``"conv"`` (``H*W*C == data_dim``).
        conv_features: encoder convolution channels for ``"conv"``.

    Methods (via ``module.apply(params, ..., method=VAE.encode)``):
        ``encode: (..., D) -> (μ, log σ²)`` each ``(..., k)``; ``decode: (..., k) -> (..., D)``
        logits or means; ``log_likelihood(x (D,), z (..., k)) -> (...)`` ``log p(x | z)``.
    """

    data_dim: int = 784
    latent_dim: int = 20
    hidden: Sequence[int] = (500, 500)
    architecture: str = "mlp"
    likelihood: str = "bernoulli"
    variance: str = "shared"
    init_logvar: float = 0.0
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    image_shape: Sequence[int] = (28, 28, 1)
    conv_features: Sequence[int] = (32, 64)

    def setup(self) -> None:
        self.body = encoder_body(self.architecture, self.hidden, self.activation,
                                 self.conv_features)
        self.enc_mean = nn.Dense(self.latent_dim)
        self.enc_logvar = nn.Dense(self.latent_dim)
        self.decoder = decoder_net(self.architecture, self.hidden, self.data_dim,
                                   self.activation, self.image_shape, self.conv_features)
        if self.likelihood == "gaussian" and self.variance != "fixed":
            shape = () if self.variance == "shared" else (self.data_dim,)
            self.dec_logvar = self.param("dec_logvar",
                                         nn.initializers.constant(self.init_logvar, jnp.float32),
                                         shape)

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = to_images(x, self.architecture, self.image_shape)
        h = h if self.body is None else self.body(h)
        return self.enc_mean(h), _clip_logvar(self.enc_logvar(h))

    def decode(self, z: jax.Array) -> jax.Array:
        return to_flat(self.decoder(z), self.architecture)

    def decoder_logvar(self, dtype: Any) -> jax.Array:
        """Gaussian decoder log-variance, ``()`` or ``(D,)``."""
        if self.variance == "fixed":
            return jnp.asarray(self.init_logvar, dtype=dtype)
        return _clip_logvar(self.dec_logvar)

    def log_likelihood(self, x: jax.Array, z: jax.Array) -> jax.Array:
        loc = self.decode(z)
        x = jnp.broadcast_to(x, loc.shape)
        if self.likelihood == "bernoulli":
            # x log σ(l) + (1 − x) log σ(−l) = x l − softplus(l): one exp and one log1p
            # per pixel instead of two of each (equal up to float rounding, ~ulp(|l|))
            ll = x * loc - jax.nn.softplus(loc)
        else:
            logvar = jnp.broadcast_to(self.decoder_logvar(loc.dtype), loc.shape)
            ll = gaussian_log_density((x - loc) ** 2 * jnp.exp(-logvar), logvar)
        return jnp.sum(ll, axis=-1)

    def __call__(self, x: jax.Array) -> jax.Array:
        mu, _ = self.encode(x)
        return self.log_likelihood(x, mu)


def check_vae(module: Any) -> VAE:
    """The checked :class:`VAE` (its likelihood, variance and ``init_logvar``); raises on a bad
    configuration."""
    module = check_module(module, VAE)
    check_choice(module.likelihood, "module.likelihood", LIKELIHOODS)
    check_choice(module.variance, "module.variance", VARIANCES)
    if not math.isfinite(float(module.init_logvar)):
        raise ValueError(f"module.init_logvar must be finite, got {module.init_logvar}")
    return module


def init(key: jax.Array, module: VAE) -> Any:
    """Initial parameters of ``module`` in the working float dtype (float64 under x64)."""
    key = check_key(key)
    module = check_vae(module)
    # flax creates float32 parameters; trace in float32, then cast to the working dtype
    params = init_on_rows(key, module)
    return jax.tree.map(lambda a: a.astype(float_dtype()), params)


def check_vae_data(module: Any, X: ArrayLike, binary_range: bool) -> tuple[VAE, jax.Array]:
    """The checked VAE and data ``X (n, data_dim)``; with ``binary_range`` (a Bernoulli decoder
    or binarisation) the values of a concrete ``X`` must lie in ``[0, 1]``."""
    module = check_vae(module)
    X = check_data(module, X)
    if binary_range and not is_traced(X):
        low, high = float(jnp.min(X)), float(jnp.max(X))
        if low < 0.0 or high > 1.0:
            raise ValueError(f"X must lie in [0, 1] for a Bernoulli decoder or binarisation, "
                             f"got values in [{low:g}, {high:g}]")
    return module, X
