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
    Giles (2010). Approximating the erfinv function. GPU Computing Gems, vol. 2.
    Moshier (1989). Methods and Programs for Mathematical Functions (the Cephes library).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.prob.fast_draws import partitionable_threefry_words, threefry2x32
from espresso_jax.validation import float_dtype

__all__ = ["standard_normal", "is_fused", "fast_log", "fast_log1p_reduced", "fast_erf_inv"]

_SQRT_HALF_BITS = np.int32(0x3F3504F3)   # float32 bits of sqrt(1/2)
_LN2 = np.float32(math.log(2.0))
_LOG_POLY = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,  # Cephes
             1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
             3.3333331174e-1)
# Giles (2010), single precision: the coefficients XLA's erf_inv uses for w < 5 and w >= 5
_ERFINV_SMALL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                 0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_LARGE = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                 0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def is_fused(key: jax.Array, shape: Sequence[int], dtype: Any = None) -> bool:
    """Whether :func:`standard_normal` takes the fused path for these arguments (a threefry
    key, partitionable threefry, float32 or float64, fewer than ``2**32`` numbers); it gives
    ``jax.random.normal``'s numbers either way."""
    dtype = jnp.dtype(float_dtype() if dtype is None else dtype)
    return (partitionable_threefry_words(key) is not None
            and dtype in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))
            and math.prod(shape) < 2 ** 32)


def fast_log(x: jax.Array) -> jax.Array:
    """Natural logarithm of positive, normal (not subnormal) float32 numbers in plain
    multiply-adds, so that XLA:CPU vectorises it and fuses it with its neighbours (its own
    ``log`` costs ~2.4 ns per float32 here, ~3x this; a division would be split into a loop
    of its own). ``x = 2^e (1 + t)`` with ``1 + t`` in ``[sqrt(1/2), sqrt(2))`` from the bits,
    ``log(1 + t) = t - t^2/2 + t^3 P(t)`` with the degree-8 polynomial of the Cephes library's
    ``logf`` (Moshier 1989). Within 1e-7 relative of the exact value (XLA's ``log``: 1.2e-7;
    ``tests/test_bbb_fast_normal.py``). Shape and dtype of ``x`` (float32 only)."""
    bits = jax.lax.bitcast_convert_type(x, jnp.int32) - _SQRT_HALF_BITS
    e = (bits >> 23).astype(jnp.float32)
    t = jax.lax.bitcast_convert_type((bits & np.int32(0x007FFFFF)) + _SQRT_HALF_BITS,
                                     jnp.float32) - 1.0
    return e * _LN2 + fast_log1p_reduced(t)


def fast_log1p_reduced(t: jax.Array) -> jax.Array:
    """``log(1 + t)`` for float32 ``t`` in ``[sqrt(1/2) - 1, sqrt(2) - 1]``: the polynomial
    of :func:`fast_log` (``t - t^2/2 + t^3 P(t)``), accurate relative to ``log(1 + t)`` even
    for tiny ``t`` (no rounding of ``1 + t``). Shape and dtype of ``t``."""
    z = t * t
    p: Any = np.float32(_LOG_POLY[0])
    for c in _LOG_POLY[1:]:
        p = p * t + np.float32(c)
    return t + (t * z * p - 0.5 * z)


def fast_erf_inv(x: jax.Array) -> jax.Array:
    """``erf^-1(x)`` for float32 ``x`` in ``(-1, 1)``: XLA's single-precision algorithm
    (Giles 2010: ``w = -log(1 - x^2)``, a degree-8 polynomial in ``w - 2.5`` below ``w = 5``,
    in ``sqrt(w) - 3`` above) with :func:`fast_log`, ~2x cheaper on CPU. Over all 2^23
    uniforms that :func:`standard_normal` transforms it differs from ``jax.lax.erf_inv`` by at
    most 65 ulp (85 % bit-equal) and is closer to the exact function (2.7e-7 against 5.8e-6
    relative, from ``1 - x^2`` taken as ``(1 - x)(1 + x)``). Shape and dtype of ``x``."""
    w = -fast_log((1.0 - x) * (1.0 + x))
    small = w < 5.0
    w = jnp.where(small, w - 2.5, jnp.sqrt(w) - 3.0)
    p = jnp.where(small, np.float32(_ERFINV_SMALL[0]), np.float32(_ERFINV_LARGE[0]))
    for a, b in zip(_ERFINV_SMALL[1:], _ERFINV_LARGE[1:], strict=True):
        p = jnp.where(small, np.float32(a), np.float32(b)) + p * w
    return p * x


def standard_normal(key: jax.Array, shape: Sequence[int], dtype: Any = None, *,
                    materialize: bool = False, exact: bool = True) -> jax.Array:
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
        exact: ``False`` transforms float32 uniforms with :func:`fast_erf_inv` instead of
            ``jax.lax.erf_inv`` (about 40 % less time per draw on CPU): the same uniforms, normals
            within float32 rounding of the exact ones (at most 65 ulp in the far tails, 85 %
            bit-equal), so the same distribution; float64 is always exact.

    Returns:
        ``(*shape)`` array of independent N(0, 1) draws, equal to ``jax.random.normal``'s.
    """
    shape = tuple(int(s) for s in shape)
    dtype = jnp.dtype(float_dtype() if dtype is None else dtype)
    if not is_fused(key, shape, dtype):
        return jax.random.normal(key, shape, dtype)
    k0, k1 = partitionable_threefry_words(key)  # type: ignore[misc]
    if materialize:
        # k0 + 1 != k0 for every uint32 (wrap-around arithmetic): the predicate is always
        # true, so the second branch never runs, but XLA does not fold it, and the first
        # branch stays a separate computation whose result is stored. (A dead branch of
        # zeros rather than a second copy of the hash: half the code to compile.)
        return jax.lax.cond(k0 + np.uint32(1) != k0,
                            lambda: _fused_normal(k0, k1, shape, dtype, exact),
                            lambda: jnp.zeros(shape, dtype))
    return _fused_normal(k0, k1, shape, dtype, exact)


def _fused_normal(k0: jax.Array, k1: jax.Array, shape: tuple[int, ...], dtype: Any,
                  exact: bool = True) -> jax.Array:
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
    inverse = jax.lax.erf_inv if exact or dtype != jnp.float32 else fast_erf_inv
    return (dtype.type(np.sqrt(2.0)) * inverse(u)).reshape(shape)
