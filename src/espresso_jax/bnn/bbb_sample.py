"""One weight sample and its closed-form KL with a hand-written gradient (Bayes by Backprop).

For a Gaussian prior ``N(0, s^2)`` a Bayesian layer computes, per posterior tensor,
``w = mu + sigma * eps`` with ``sigma = softplus(rho)`` and the summed closed-form
``KL(N(mu, sigma^2) || N(0, s^2))``. Differentiated automatically, XLA:CPU turns these few
lines into about a dozen elementwise passes over the tensor (softplus, its logarithm, the
sigmoid, ``1 / sigma``, each materialised because a transcendental with several consumers is
never recomputed), which cost more than the layer's matmuls at batch 128.
:func:`sample_gaussian_closed` computes the same values with a ``jax.custom_vjp`` whose backward
pass is one closed-form expression per parameter:

    d/d mu  = g_w + g_kl mu / s^2
    d/d rho = sigmoid(rho) (g_w eps + g_kl sigma / s^2) - g_kl d(log sigma)/d rho

with ``d(log sigma)/d rho = sigmoid(rho) / sigma``, or 1 below ``rho = -20`` where
:func:`espresso_jax.bnn.bbb.posterior_std` takes ``log sigma = rho`` (pruned weights stay
finite). The values and gradients equal the automatic ones to float rounding
(``tests/test_bnn_bbb_speed.py``).

``softplus``, ``sigmoid`` and ``log sigma`` are :mod:`espresso_jax.bnn.bbb_fastmath`'s
multiply-add versions in float32 (within a few ulp of ``jax.nn``'s, ~3x cheaper on CPU).
The backward pass reuses the forward's ``sigma`` (XLA stores it anyway: the sample and the
KL both read it), and its two gradients are *materialised*: computed once inside a
``lax.cond`` that XLA cannot fold. Left to itself XLA:CPU fuses the gradient, transcendentals
and all, into each of Adam's three updates of the parameter (first and second moment,
parameter), reading the gradient's inputs three times (``benchmarks/profile_bbb.py``: 43 to
34 reads of the 784x400 arrays per step; Adam on mu and rho 2.3 to 1.3-1.8 ms, under load).

References:
    Blundell, Cornebise, Kavukcuoglu, Wierstra (2015). Weight Uncertainty in Neural Networks.
    ICML.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from espresso_jax.bnn import bbb_fastmath

__all__ = ["sample_gaussian_closed"]

# posterior_std's switch to log sigma = rho
_SMALL_RHO = -20.0


def _forward(mu, rho, eps, scale):
    sigma = bbb_fastmath.softplus(rho)
    small = rho < _SMALL_RHO
    log_sigma = jnp.where(small, rho, bbb_fastmath.log_positive(jnp.where(small, 1.0, sigma)))
    inv_var = 1.0 / (scale * scale)
    # normal_kl's 0.5 ((var + mu^2) / s^2 - 1 + log s^2 - log var), summed
    kl = 0.5 * jnp.sum((jnp.square(sigma) + jnp.square(mu)) * inv_var - 2.0 * log_sigma) \
        + mu.size * (math.log(scale) - 0.5)
    return mu + sigma * eps, kl.astype(mu.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def sample_gaussian_closed(mu: jax.Array, rho: jax.Array, eps: jax.Array, scale: float
                           ) -> tuple[jax.Array, jax.Array]:
    """``(w, kl)``: the sample ``mu + softplus(rho) * eps`` and the summed closed-form KL
    against ``N(0, scale^2)``, with a fused backward pass.

    Args:
        mu, rho: posterior parameters, any shape (same shape and float dtype).
        eps: standard-normal noise of that shape (no gradient flows to it).
        scale: the prior std, a Python float.

    Returns:
        ``w`` of ``mu``'s shape and the scalar KL, equal to :func:`espresso_jax.bnn.bbb.
        weight_kl` with ``method="closed"``.
    """
    return _forward(mu, rho, eps, scale)


def _fwd(mu, rho, eps, scale):
    w, kl = _forward(mu, rho, eps, scale)
    # sigma = (w - mu) / eps is not exact; softplus(rho) is stored by XLA anyway (the sample
    # and the KL both read it), so keeping it as a residual costs no extra pass
    return (w, kl), (mu, rho, eps, bbb_fastmath.softplus(rho))


def _bwd(scale, residuals, cotangents):
    mu, rho, eps, sigma = residuals
    g_w, g_kl = cotangents
    # materialised (see _materialize): XLA would otherwise recompute the gradient, its
    # exponential included, inside each of the optimiser's moment and parameter updates
    if rho.size == 0:
        g_mu, g_rho = _grads(mu, rho, eps, sigma, g_w, g_kl, scale=scale)
    else:
        g_mu, g_rho = _materialize(_grads, rho.reshape(-1)[0], mu, rho, eps, sigma, g_w, g_kl,
                                   scale=scale)
    return g_mu, g_rho, jnp.zeros_like(eps)


def _grads(mu, rho, eps, sigma, g_w, g_kl, *, scale):
    inv_var = 1.0 / (scale * scale)
    sig = bbb_fastmath.sigmoid(rho)
    small = rho < _SMALL_RHO
    dlog_sigma = jnp.where(small, 1.0, sig / jnp.where(small, 1.0, sigma))
    g_mu = g_w + g_kl * inv_var * mu
    g_rho = sig * (g_w * eps + (g_kl * inv_var) * sigma) - g_kl * dlog_sigma
    return g_mu, g_rho.astype(rho.dtype)


def _materialize(fn, token, *args, **kwargs):
    """``fn(*args, **kwargs)`` computed once into memory: inside a ``lax.cond`` on a predicate
    that is always true (``x + 1 != x`` for the bits of the float scalar ``token``, in
    wrap-around integer arithmetic) but that XLA cannot fold (``token`` is data, e.g. a
    parameter's first entry, not a constant), so its outputs are stored
    rather than fused, and recomputed, into every consumer."""
    bits = jax.lax.bitcast_convert_type(token.astype(jnp.float32), jnp.uint32)
    return jax.lax.cond(bits + jnp.uint32(1) != bits,
                        lambda *a: fn(*a, **kwargs),
                        lambda *a: jax.tree.map(jnp.zeros_like, (a[0], a[1])), *args)


sample_gaussian_closed.defvjp(_fwd, _bwd)
