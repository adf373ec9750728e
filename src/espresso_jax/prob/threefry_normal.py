"""Standard-normal draws equal bit for bit to ``jax.random.normal``, in one fusable loop on CPU.

``jax.random.normal`` with the default threefry key draws its bits with the ``threefry2x32``
primitive, which XLA:CPU lowers as a rolled loop of 5 iterations (``jax._src.random``'s CPU
lowering rule): every iteration writes both 32-bit words of the whole array to memory, and the
uniform-to-normal transform runs as another pass. For 478k numbers (the weights of a
784-400-400-10 MLP) that is ~6.5 ms of CPU here, more than the network's matmuls.

:func:`standard_normal` uses the one unrolled Threefry-2x32 hash of the library
(:func:`espresso_jax.prob.fast_draws.threefry2x32`; Salmon et al. 2011, 20 rounds, the
rotation constants and key schedule of the Random123 reference that JAX implements) with its
rounds unrolled in ``jax.numpy`` integer operations, on the counters and with the word mixing
of JAX's partitionable threefry (the default since JAX 0.5: element ``i`` of the row-major
flattened array hashes the 64-bit counter ``(i >> 32, i & 0xffffffff)`` and keeps the xor of
the two output words, or both words as one 64-bit integer for float64), then applies JAX's own
uniform and inverse-error-function transform. XLA fuses all of it, and whatever consumes the
draws, into one elementwise loop: about half the CPU time, and the *same numbers*:
``tests/test_bnn_bbb_speed.py`` checks bit equality with ``jax.random.normal`` for both
precisions, odd and empty sizes, raw and typed keys, and under ``vmap``.

Any other case (another key implementation such as ``"rbg"``, ``jax_threefry_partitionable``
switched off, a half-precision dtype, more than ``2**32`` numbers) falls back to
``jax.random.normal`` itself, so the function is always a drop-in replacement.

References:
    Salmon, Moraes, Dror, Shaw (2011). Parallel Random Numbers: As Easy as 1, 2, 3. SC'11.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.prob.fast_draws import threefry2x32
from espresso_jax.validation import float_dtype

__all__ = ["standard_normal", "is_fused"]

# the configuration flags the fused path depends on (read with getattr: not in jax's stubs)
_IMPL_FLAG, _PARTITIONABLE_FLAG = "jax_default_prng_impl", "jax_threefry_partitionable"


def _key_words(key: jax.Array) -> tuple[jax.Array, jax.Array] | None:
    """The two uint32 words of a threefry key (typed or raw), or None for another kind."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != () or str(jax.random.key_impl(key)) != "threefry2x32":
            return None
        data = jax.random.key_data(key)
    else:
        if key.shape != (2,) or key.dtype != jnp.uint32 \
                or getattr(jax.config, _IMPL_FLAG) != "threefry2x32":
            return None
        data = key
    return data[0], data[1]


def is_fused(key: jax.Array, shape: Sequence[int], dtype: Any = None) -> bool:
    """Whether :func:`standard_normal` takes the fused path for these arguments (a threefry
    key, partitionable threefry, float32 or float64, fewer than ``2**32`` numbers); it gives
    ``jax.random.normal``'s numbers either way."""
    dtype = jnp.dtype(float_dtype() if dtype is None else dtype)
    return (_key_words(key) is not None and bool(getattr(jax.config, _PARTITIONABLE_FLAG))
            and dtype in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))
            and math.prod(shape) < 2 ** 32)


def standard_normal(key: jax.Array, shape: Sequence[int], dtype: Any = None, *,
                    materialize: bool = False) -> jax.Array:
    """``jax.random.normal(key, shape, dtype)``, bit for bit, as one fusable elementwise loop.

    Args:
        key: a PRNG key (typed ``jax.random.key`` or raw ``jax.random.PRNGKey``), scalar.
        shape: output shape.
        dtype: float dtype (default: float64 under x64, else float32).
        materialize: compute the draws once into memory. XLA fuses cheap integer operations
            into *every* consumer, so draws read by several consumers (a weight sample, its
            gradient, the optimiser's moment updates downstream) would be hashed once per
            consumer; with ``materialize=True`` the draw runs inside a ``lax.cond`` on an
            always-true predicate, which XLA does not fuse through. Same values either way.

    Returns:
        ``(*shape)`` array of independent N(0, 1) draws, equal to ``jax.random.normal``'s.
    """
    shape = tuple(int(s) for s in shape)
    dtype = jnp.dtype(float_dtype() if dtype is None else dtype)
    if not is_fused(key, shape, dtype):
        return jax.random.normal(key, shape, dtype)
    k0, k1 = _key_words(key)  # type: ignore[misc]
    if materialize:
        # k0 + 1 != k0 for every uint32 (wrap-around arithmetic): the predicate is always
        # true, so the second branch never runs, but XLA does not fold it, and the first
        # branch stays a separate computation whose result is stored. (A dead branch of
        # zeros rather than a second copy of the hash: half the code to compile.)
        return jax.lax.cond(k0 + np.uint32(1) != k0,
                            lambda: _fused_normal(k0, k1, shape, dtype),
                            lambda: jnp.zeros(shape, dtype))
    return _fused_normal(k0, k1, shape, dtype)


def _fused_normal(k0: jax.Array, k1: jax.Array, shape: tuple[int, ...], dtype: Any
                  ) -> jax.Array:
    size = math.prod(shape)
    counter = jax.lax.iota(jnp.uint32, size)
    hi, lo = threefry2x32(k0, k1, jnp.zeros_like(counter), counter)
    # JAX's uniform on [nextafter(-1, 0), 1): random mantissa with exponent 0, minus 1, scaled.
    if dtype == jnp.float32:
        mantissa = ((hi ^ lo) >> np.uint32(32 - 23)) | np.float32(1.0).view(np.uint32)
    else:
        bits = (hi.astype(jnp.uint64) << np.uint64(32)) | lo.astype(jnp.uint64)
        mantissa = (bits >> np.uint64(64 - 52)) | np.float64(1.0).view(np.uint64)
    floats = jax.lax.bitcast_convert_type(mantissa, dtype) - dtype.type(1.0)
    lo_val = np.nextafter(dtype.type(-1.0), dtype.type(0.0))
    u = jnp.maximum(lo_val, floats * (dtype.type(1.0) - lo_val) + lo_val)
    return (dtype.type(np.sqrt(2.0)) * jax.lax.erf_inv(u)).reshape(shape)
