"""Dynamic binarisation of a minibatch, ``x ~ Bernoulli(intensity)``, bit for bit the draws of
``jax.random.bernoulli(key, p)`` at a lower cost on CPU.

``jax.random.bernoulli(key, p)`` (float32 ``p``, the default partitionable Threefry) hashes the
flat index ``j`` of every entry with Threefry-2x32 under the key's two words (counter words
``(0, j)``), XORs the two output words into ``u``, maps ``u`` to the float32 uniform
``(u >> 9) · 2⁻²³`` and keeps the entry where that uniform is below ``p``. JAX lowers the hash on
CPU as a 5-iteration loop that copies its state every iteration; :func:`binarize` computes the
same words with the hash written out round by round
(:func:`espresso_jax.prob.fast_draws.threefry2x32`), which XLA fuses into one loop with the
comparison, computed once into memory (the batch has several consumers). Same key, same bits,
same result (``tests/test_nn_vae_binarize.py`` checks the equality with
``jax.random.bernoulli`` entry by entry); other dtypes, key implementations or the
non-partitionable Threefry fall back to ``jax.random.bernoulli`` itself.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from espresso_jax.prob.fast_draws import partitionable_threefry_words, threefry2x32

__all__ = ["binarize"]

_ONE_BITS = 0x3F800000  # float32 1.0: exponent 0, mantissa from the random bits


def binarize(key: jax.Array, x: jax.Array) -> jax.Array:
    """``Bernoulli(x)`` draws as ``x.dtype`` (0 or 1), equal to
    ``jax.random.bernoulli(key, x).astype(x.dtype)`` bit for bit.

    Args:
        key: one PRNG key (scalar typed key or raw ``(2,)`` ``uint32``).
        x: intensities in ``[0, 1]``, any shape (e.g. ``(batch, data_dim)``).

    Returns:
        array shaped and typed like ``x``.
    """
    words = partitionable_threefry_words(key)
    if words is None or x.dtype != jnp.float32 or x.size >= 2 ** 32:
        return jax.random.bernoulli(key, x).astype(x.dtype)
    k0, k1 = words
    # Computed once into memory: XLA fuses cheap integer work into *every* consumer, and the
    # binarised batch has several (the encoder's first product, the log-likelihood and its
    # gradient), which would each hash it again. A ``lax.cond`` whose predicate is always true
    # (``k0 + 1 != k0`` in wrap-around arithmetic) but not folded keeps the draw a separate,
    # stored computation; the other branch never runs.
    return jax.lax.cond(k0 + jnp.uint32(1) != k0, lambda: _draw(k0, k1, x),
                        lambda: jnp.zeros_like(x))


def _draw(k0: jax.Array, k1: jax.Array, x: jax.Array) -> jax.Array:
    index = jnp.arange(math.prod(x.shape), dtype=jnp.uint32).reshape(x.shape)
    hi, lo = threefry2x32(k0, k1, jnp.zeros_like(index), index)
    bits = ((hi ^ lo) >> jnp.uint32(9)) | jnp.uint32(_ONE_BITS)
    uniform = jax.lax.bitcast_convert_type(bits, jnp.float32) - jnp.float32(1.0)
    return (uniform < x).astype(x.dtype)
