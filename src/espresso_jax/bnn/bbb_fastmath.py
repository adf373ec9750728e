"""``softplus``, ``sigmoid`` and ``log`` of the posterior scale in multiply-adds, for the
Bayes-by-Backprop sample on CPU (issue 14).

XLA:CPU evaluates ``exp``, ``log`` and ``log1p`` at ~1-2.5 ns per float32 here (a profile of
``benchmarks/profile_bbb.py``: ``softplus(rho)`` alone, one pass over the 313k weights of a
784x400 kernel, ~0.8 ms, more than the layer's forward matmul at batch 128). Written with
bit manipulation and short polynomials (the Cephes library's ``expf``/``logf``, Moshier
1989; the logarithm is :func:`espresso_jax.prob.threefry_normal.fast_log`), they vectorise
and fuse with the sample. Float32 only: any other dtype uses ``jax.nn``/``jnp`` itself. The
results are within a few float32 ulp of the exact functions
(``tests/test_bbb_fastmath.py``: relative error below 5e-7 over the whole float32 range of
``rho`` that BBB meets, ``-1e4`` to ``1e2``).

References:
    Moshier (1989). Methods and Programs for Mathematical Functions (the Cephes library).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.prob.threefry_normal import fast_log, fast_log1p_reduced

__all__ = ["exp_nonpositive", "softplus", "sigmoid", "log_positive"]

_LOG2E = np.float32(1.0 / math.log(2.0))
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)   # Cephes split of ln 2
_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
             1.6666665459e-1, 5.0000001201e-1)
_SQRT2_M1 = np.float32(math.sqrt(2.0) - 1.0)
_EXP_MIN = np.float32(-87.33654)   # log of the smallest normal float32, rounded up: 0 below


def _fast(x: jax.Array) -> bool:
    return jnp.asarray(x).dtype == jnp.float32


def exp_nonpositive(x: jax.Array) -> jax.Array:
    """``exp(x)`` for float32 ``x <= 0`` (0 below -87.33654, where it leaves the normal
    floats): ``2^n exp(f)``, ``n = round(x / ln 2)``, ``exp(f) = 1 + f + f^2 P(f)`` (Cephes
    ``expf``). Shape and dtype of ``x``."""
    if not _fast(x):
        return jnp.exp(x)
    n = jnp.round(jnp.maximum(x, _EXP_MIN) * _LOG2E)
    f = (x - n * _LN2_HI) - n * _LN2_LO
    p: Any = np.float32(_EXP_POLY[0])
    for c in _EXP_POLY[1:]:
        p = p * f + np.float32(c)
    e = p * (f * f) + f + 1.0
    scale = jax.lax.bitcast_convert_type((n.astype(jnp.int32) + 127) << 23, jnp.float32)
    return jnp.where(x < _EXP_MIN, np.float32(0.0), e * scale)


def softplus(x: jax.Array) -> jax.Array:
    """``log(1 + e^x) = max(x, 0) + log1p(e^-|x|)``; ``log1p(t)`` by the logarithm's
    polynomial in ``t`` itself below ``t = sqrt(2) - 1`` (no rounding of ``1 + t``, so tiny
    ``t`` keep their relative accuracy), as ``log(1 + t)`` above. Shape and dtype of ``x``."""
    if not _fast(x):
        return jax.nn.softplus(x)
    t = exp_nonpositive(-jnp.abs(x))
    log1p = jnp.where(t < _SQRT2_M1, fast_log1p_reduced(jnp.minimum(t, _SQRT2_M1)),
                      fast_log(1.0 + t))
    return jnp.maximum(x, 0.0) + log1p


def sigmoid(x: jax.Array) -> jax.Array:
    """``1 / (1 + e^-x)`` as ``t / (1 + t)`` or ``1 / (1 + t)``, ``t = e^-|x|``. Shape and dtype
    of ``x``."""
    if not _fast(x):
        return jax.nn.sigmoid(x)
    t = exp_nonpositive(-jnp.abs(x))
    return jnp.where(x >= 0.0, np.float32(1.0), t) / (1.0 + t)


def log_positive(x: jax.Array) -> jax.Array:
    """``log(x)`` for positive normal float32 ``x`` (:func:`fast_log`); ``jnp.log``
    otherwise. Shape and dtype of ``x``."""
    return fast_log(x) if _fast(x) else jnp.log(x)
