"""Cheap random draws for training loops on CPU: dropout keep-masks compared in integers from
an unrolled (fusible) Threefry hash, and shuffling permutations from single-array integer
sorts.

Why (profile of the UCI protocol's MC-dropout grid on a 2-core Intel Xeon, kin8nm, 240
networks, one epoch = 47 steps; ``benchmarks/RESULTS.md``): ``jax.random.uniform`` with the
default partitionable threefry spent 0.83 s of CPU per epoch drawing one float32 uniform per
mask entry, and ``jax.random.permutation`` 0.66 s sorting ``(key, row)`` pairs, against 0.16 s
for the networks' dense algebra.

* :func:`threefry2x32`: the Threefry-2x32 hash (20 rounds) that ``jax.random`` uses, written
  out round by round. JAX lowers it on CPU as a 5-iteration loop that copies its state every
  iteration (to keep compile times short); unrolled, XLA fuses the whole hash into the loop
  that consumes its bits. The same words as ``jax.extend.random.threefry_2x32``.
* :func:`keep_masks`: inverted-dropout masks compared in integers: entry ``j`` hashes its
  counter ``j`` under a key derived from ``key`` and is kept when the 32-bit word ``u >= t``,
  ``t = round(rate * 2**32)``; independent Bernoulli entries with the rate resolved to
  float32 precision (``jax.random.uniform``'s float32 draws resolve it to ``2**-23``). No
  float conversion, and hashing per entry lets XLA fuse the mask into the layer's multiply
  (1.7 ns per entry here against 7-10 ns for ``jax.random`` draws and a compare).
* :func:`permutation`: a uniformly random permutation by the algorithm of
  ``jax.random.permutation`` (stable sorts by fresh random keys, repeated until the keys'
  bits reach ``3 log2(n)``, JAX's own stopping rule), with the row index packed into the low
  bits of each ``uint32`` sort key. XLA then sorts one integer array (its fast path, ~4x
  cheaper than sorting key-value pairs on CPU) and the packed index makes every sort stable.

Both are pure functions of the key; their random streams differ from ``jax.random``'s, their
distributions do not (``tests/test_prob_fast_draws.py`` checks marginals and independence).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = ["threefry2x32", "partitionable_threefry_words", "mask_words", "masks_from_words",
           "keep_masks", "keep_probability", "permutation"]

_LEVELS = 2.0 ** 32
_MAX_THRESHOLD = float(np.nextafter(np.float32(_LEVELS), np.float32(0)))
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotl(v: jax.Array, r: int) -> jax.Array:
    return (v << jnp.uint32(r)) | (v >> jnp.uint32(32 - r))


def threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array
                 ) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 block cipher, 20 rounds (Salmon et al. 2011), elementwise.

    Args:
        k1, k2: ``uint32`` key words (scalars or broadcastable to the counters).
        x1, x2: ``uint32`` counter words, any (equal) shape.

    Returns:
        the two ``uint32`` output words, shaped like ``x1``.

    References:
        J. K. Salmon, M. A. Moraes, R. O. Dror and D. E. Shaw. Parallel random numbers: as
        easy as 1, 2, 3. SC 2011.
    """
    ks = (k1, k2, k1 ^ k2 ^ jnp.uint32(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = _rotl(x2, r) ^ x1
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
    return x1, x2


# the configuration flags jax.random's bit layout depends on (read with getattr: not in the stubs)
_IMPL_FLAG, _PARTITIONABLE_FLAG = "jax_default_prng_impl", "jax_threefry_partitionable"


def partitionable_threefry_words(key: jax.Array) -> tuple[jax.Array, jax.Array] | None:
    """The two ``uint32`` words of a Threefry key (scalar typed key or raw ``(2,)`` ``uint32``)
    when ``jax.random`` lays out its bits as :func:`threefry2x32` of the element counters
    (partitionable Threefry); None for another key kind or layout. Callers that reproduce
    ``jax.random``'s numbers bit for bit take their fast path only when this is not None."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != () or str(jax.random.key_impl(key)) != "threefry2x32":
            return None
        data = jax.random.key_data(key)
    elif (key.shape == (2,) and key.dtype == jnp.uint32
          and str(getattr(jax.config, _IMPL_FLAG)) == "threefry2x32"):
        data = key
    else:
        return None
    if not getattr(jax.config, _PARTITIONABLE_FLAG):
        return None
    return data[0], data[1]


def _key_words(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    words = jax.random.bits(key, (2,), jnp.uint32)
    return words[0], words[1]


def _threshold(rate: ArrayLike) -> jax.Array:
    rate = jnp.asarray(rate, jnp.float32)
    return jnp.clip(jnp.round(rate * _LEVELS), 0.0, _MAX_THRESHOLD).astype(jnp.uint32)


def keep_probability(rate: ArrayLike) -> jax.Array:
    """The keep probability of :func:`keep_masks` for ``rate``: ``1 - t / 2**32`` with
    ``t = round(rate * 2**32)`` computed in float32 (``1 - rate`` to float32 precision)."""
    return 1.0 - _threshold(rate).astype(jnp.float32) / _LEVELS


def mask_words(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The ``uint32`` words of :func:`keep_masks`: entry ``j`` (row-major) is the first
    :func:`threefry2x32` word of counter ``(j, 0)`` under a key hashed from ``key``.

    Drawing them apart from the compare lets a caller keep them as data (e.g. one array per
    epoch, shared by networks that differ only in their rate) instead of hashing inside the
    masked multiply; :func:`masks_from_words` turns them into the same masks.

    Args:
        key: PRNG key (any implementation). shape: output shape (static).

    Returns:
        ``shape`` ``uint32`` array.
    """
    shape = tuple(int(s) for s in shape)
    counter = jnp.arange(math.prod(shape), dtype=jnp.uint32).reshape(shape)
    word, _ = threefry2x32(*_key_words(key), counter, jnp.zeros_like(counter))
    return word


def masks_from_words(words: jax.Array, rate: ArrayLike, dtype: jnp.dtype = jnp.float32
                     ) -> jax.Array:
    """Inverted-dropout multipliers from :func:`mask_words` words: ``0`` where ``words < t``,
    ``t = round(rate * 2**32)``, else ``1 / keep`` (:func:`keep_probability`); shaped like
    ``words``. ``keep_masks(key, shape, rate) == masks_from_words(mask_words(key, shape),
    rate)`` bit for bit."""
    t = _threshold(rate)
    scale = (1.0 / (1.0 - t.astype(jnp.float32) / _LEVELS)).astype(dtype)
    return jnp.where(words >= t, scale, jnp.zeros((), dtype))


def keep_masks(key: jax.Array, shape: tuple[int, ...], rate: ArrayLike,
               dtype: jnp.dtype = jnp.float32) -> jax.Array:
    """Inverted-dropout multipliers: ``0`` with probability ``rate``, else ``1 / (1 - rate)``.

    Args:
        key: PRNG key (any implementation: it is hashed into the Threefry key).
        shape: output shape (static), e.g. ``(batch, width)``.
        rate: dropout rate in ``[0, 1)``, a float or a traced scalar (e.g. vmapped over a grid).
        dtype: float dtype of the multipliers.

    Returns:
        ``shape`` array of independent entries, ``0`` when the entry's 32-bit word ``u``
        (:func:`mask_words`) is below ``t = round(rate * 2**32)`` (probability ``t / 2**32``)
        and ``1 / keep`` otherwise, ``keep = 1 - t / 2**32`` (:func:`keep_probability`):
        :func:`masks_from_words` of :func:`mask_words`.
    """
    return masks_from_words(mask_words(key, shape), rate, dtype)


def permutation(key: jax.Array, n: int) -> jax.Array:
    """A uniformly random permutation of ``range(n)``, ``(n,)`` int32 (see the module
    docstring for the algorithm; ``n`` static, ``1 <= n < 2**24``)."""
    n = int(n)
    if not 1 <= n < 1 << 24:
        raise ValueError(f"n must lie in [1, 2**24), got {n}")
    index_bits = max(1, (n - 1).bit_length())
    key_bits = 32 - index_bits
    rounds = max(1, math.ceil(3 * math.log2(max(n, 2)) / key_bits))
    k1, k2 = _key_words(key)
    position = jnp.arange(n, dtype=jnp.uint32)
    perm = jnp.arange(n, dtype=jnp.int32)
    for r in range(rounds):
        bits, _ = threefry2x32(k1, k2, position, jnp.full((n,), r, jnp.uint32))
        packed = ((bits >> jnp.uint32(index_bits)) << jnp.uint32(index_bits)) | position
        order = jnp.sort(packed) & jnp.uint32((1 << index_bits) - 1)  # ties keep positions
        perm = perm[order.astype(jnp.int32)]
    return perm
