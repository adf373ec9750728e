"""GAN objectives, written for one example and vmapped / averaged by the trainer.

Discriminator outputs are *logits* ``a = logit D(x)`` (standard GAN) or raw critic scores
(WGAN-GP). Every log-probability goes through ``softplus`` / ``log_sigmoid`` so that saturated
logits (``|a|`` of hundreds) give finite losses and gradients:

* ``-log D(x) = softplus(-a)`` and ``-log(1 - D(x)) = softplus(a)``.

References:
    Goodfellow et al. (2014), Generative adversarial nets, NeurIPS (minimax and
    non-saturating losses).
    Gulrajani et al. (2017), Improved training of Wasserstein GANs, NeurIPS (WGAN-GP).
    Salimans et al. (2016), Improved techniques for training GANs, NeurIPS (one-sided label
    smoothing).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "discriminator_loss",
    "generator_loss_minimax",
    "generator_loss_non_saturating",
    "critic_loss_wgan",
    "generator_loss_wgan",
    "interpolate",
    "gradient_penalty",
]

_NORM_EPS = 1e-12
"""Added under the square root of the gradient norm so its own gradient is finite at 0."""


def discriminator_loss(real_logit: jax.Array, fake_logit: jax.Array,
                       real_label: float = 1.0) -> jax.Array:
    """Binary cross-entropy of the discriminator for one real and one generated example.

    ``-log D(x) - log(1 - D(G(z))) = softplus(-real_logit) + softplus(fake_logit)``; with
    one-sided label smoothing (``real_label`` = s < 1, Salimans et al. 2016, Sec. 3.4) the
    real example's target is s: ``s·softplus(-real_logit) + (1 - s)·softplus(real_logit)``.

    Args:
        real_logit: ``()`` logit of D on a data example.
        fake_logit: ``()`` logit of D on a generated example.
        real_label: target probability of the real example (1: no smoothing).

    Returns:
        ``()`` loss (minimised by the discriminator).
    """
    real = jax.nn.softplus(-real_logit)
    if real_label != 1.0:
        real = real_label * real + (1.0 - real_label) * jax.nn.softplus(real_logit)
    return real + jax.nn.softplus(fake_logit)


def generator_loss_minimax(fake_logit: jax.Array) -> jax.Array:
    """The minimax generator loss ``log(1 - D(G(z))) = -softplus(fake_logit)`` (minimised).

    Its gradient vanishes when D confidently rejects the sample (Goodfellow et al. 2014, Sec. 3).
    """
    return -jax.nn.softplus(fake_logit)


def generator_loss_non_saturating(fake_logit: jax.Array) -> jax.Array:
    """The non-saturating generator loss ``-log D(G(z)) = softplus(-fake_logit)`` (minimised)."""
    return jax.nn.softplus(-fake_logit)


def critic_loss_wgan(real_score: jax.Array, fake_score: jax.Array) -> jax.Array:
    """Wasserstein critic loss for one pair, ``D(G(z)) - D(x)`` (penalty added separately)."""
    return fake_score - real_score


def generator_loss_wgan(fake_score: jax.Array) -> jax.Array:
    """Wasserstein generator loss ``-D(G(z))``."""
    return -fake_score


def interpolate(key: jax.Array, real: jax.Array, fake: jax.Array) -> jax.Array:
    """Random points on the segments between paired real and generated examples.

    ``x_hat_i = eps_i * real_i + (1 - eps_i) * fake_i`` with ``eps_i ~ U(0, 1)``.

    Args:
        key: PRNG key.
        real: ``(n, ...)`` data batch.
        fake: ``(n, ...)`` generated batch of the same shape.

    Returns:
        ``(n, ...)`` interpolates.
    """
    eps_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    eps = jax.random.uniform(key, eps_shape, dtype=real.dtype)
    return eps * real + (1.0 - eps) * fake


def gradient_penalty(critic: Callable[[jax.Array], jax.Array], x_hat: jax.Array) -> jax.Array:
    """Per-example WGAN-GP penalty ``(||grad_x critic(x_hat_i)|| - 1)^2``.

    Args:
        critic: maps ONE example ``(...)`` to a scalar score.
        x_hat: ``(n, ...)`` points at which to penalise the gradient norm.

    Returns:
        ``(n,)`` penalties (multiply the mean by the penalty weight, 10 in the paper).
    """
    def one(x):
        g = jax.grad(critic)(x)
        norm = jnp.sqrt(jnp.sum(g * g) + _NORM_EPS)
        return (norm - 1.0) ** 2

    return jax.vmap(one)(x_hat)
