"""Data scales as powers of two: host-side range checks and exact rescaling for float32 fits.

Models whose fitted quantities grow with the square of the data's scale (covariances, noise
variances, inertias, Hessians ``XᵀX``) cannot be represented in float32 once that square leaves
float32's range (about ``1.2e-38 .. 3.4e38``): data of spread ``1e30`` or ``1e-20`` then fits to
inf, NaN or 0. The functions here measure the scale of the data as a power of two ``2**e``
(so dividing by it is exact in binary floating point) and reject, on the host and before any
compilation, data whose squared scale is out of the dtype's range, with a message that says
what to do (rescale, or enable float64).

- :func:`spread_exponent` (traceable): ``e`` with ``2**e`` the power of two nearest to the
  RMS spread of the columns about their weighted means (``0`` for constant data).
- :func:`magnitude_exponent` (traceable): ``e`` with ``2**(e−1) ≤ max |x| < 2**e``.
- :func:`row_exponents` (traceable): the same exponent for each row, to evaluate per-row
  quadratic forms (predictive variances) without overflow.
- :func:`checked_exponent`: either of them evaluated on the host for a concrete array and
  checked against :func:`exponent_limit` (a traced array is returned as a traced exponent,
  unchecked).
- :func:`check_regulariser`: reject a variance regulariser (``reg_covar``) larger than the
  data's variance ``≈ 4**e`` (it would swamp the data).
- :func:`pow2`: ``2**e`` as an exact float of a given dtype (traceable).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.validation import is_traced

__all__ = ["check_regulariser", "checked_exponent", "exponent_limit", "magnitude_exponent",
           "pow2", "row_exponents", "spread_exponent"]

_MARGIN_BITS = 8
"""Head-room (in powers of two) left on each side of the squared scale for the spread of the
fitted quantities around it (a tight component, a long principal axis)."""


def pow2(e: Any, dtype: Any) -> jax.Array:
    """``2**e`` as an exact ``()`` float of ``dtype`` (``e``: int or int32 array, traceable)."""
    return jnp.ldexp(jnp.ones((), dtype), jnp.asarray(e, jnp.int32))


def exponent_limit(dtype: Any) -> int:
    """The largest ``|e|`` for which ``4**e`` and ``4**-e`` stay ``_MARGIN_BITS`` powers of two
    inside the normal range of ``dtype`` (float32: 56, float64: 504)."""
    return int(jnp.finfo(dtype).maxexp) // 2 - _MARGIN_BITS


def _observed(X: jax.Array, w: jax.Array | None) -> jax.Array:
    """``(N, D)`` row weights times the observed (non-NaN) mask."""
    obs = (~jnp.isnan(X)).astype(X.dtype)
    return obs if w is None else obs * w.astype(X.dtype)[:, None]


def _magnitude(X: jax.Array) -> jax.Array:
    a = jnp.max(jnp.where(jnp.isnan(X), 0.0, jnp.abs(X)))
    _, e = jnp.frexp(a)
    return jnp.where(a > 0, e, 0).astype(jnp.int32)


def _spread(X: jax.Array, w: jax.Array | None) -> jax.Array:
    ea = _magnitude(X)
    Y = jnp.where(jnp.isnan(X), 0.0, X) * pow2(-ea, X.dtype)             # |Y| < 1, exact
    ww = _observed(X, w)
    count = jnp.sum(ww, axis=0)
    safe = jnp.where(count > 0, count, 1.0)
    mean = jnp.sum(ww * Y, axis=0) / safe
    var = jnp.sum(ww * jnp.square(Y - mean[None, :]), axis=0) / safe
    v = jnp.mean(var)
    half_log2 = 0.5 * jnp.log2(jnp.where(v > 0, v, 1.0))
    return jnp.where(v > 0, ea + jnp.round(half_log2).astype(jnp.int32), 0).astype(jnp.int32)


@jax.jit
def magnitude_exponent(X: jax.Array) -> jax.Array:
    """``()`` int32 ``e`` with ``2**(e−1) ≤ max |X| < 2**e`` over the non-NaN entries (0 when
    every entry is 0)."""
    return _magnitude(X)


def row_exponents(X: jax.Array) -> jax.Array:
    """``(n_rows,)`` int32 ``e_i`` with ``2**(e_i−1) ≤ max_j |X_ij| < 2**e_i`` (0 for a row of
    zeros); ``jnp.ldexp(X, -e[:, None])`` then has rows of max-abs in ``[0.5, 1)``, exactly.

    Args:
        X: ``(n_rows, n_features)`` finite data.
    """
    a = jnp.max(jnp.abs(X), axis=1)
    _, e = jnp.frexp(a)
    return jnp.where(a > 0, e, 0).astype(jnp.int32)


@jax.jit
def spread_exponent(X: jax.Array, w: jax.Array | None = None) -> jax.Array:
    """``()`` int32 ``e``: ``2**e`` is the power of two nearest to the RMS spread of ``X``.

    The spread is ``sqrt(mean_d var_d)``, ``var_d`` the (``w``-weighted) variance of column
    ``d`` over its non-NaN entries. It is computed after an exact rescaling by a power of two
    so that nothing overflows or underflows; constant data give ``0``.

    Args:
        X: ``(n_samples, n_features)`` data (NaN entries are ignored).
        w: ``(n_samples,)`` non-negative row weights (``None``: ones).
    """
    return _spread(X, w)


def _decimal(e: int) -> str:
    """``2**e`` written as a power of ten, e.g. ``1e+30`` (no overflow for any ``e``)."""
    return f"1e{round(e * float(np.log10(2.0))):+d}"


def checked_exponent(X: jax.Array, name: str, *, w: jax.Array | None = None,
                     kind: str = "spread", what: str = "the fitted variances"
                     ) -> int | jax.Array:
    """The scale exponent of ``X``, checked on the host against the range of its dtype.

    Args:
        X: ``(n_samples, n_features)`` validated data.
        name: the user's argument name, for the message (e.g. ``"X"``).
        w: ``(n_samples,)`` row weights (for ``kind="spread"``).
        kind: ``"spread"`` (:func:`spread_exponent`, for models that centre the data) or
            ``"magnitude"`` (:func:`magnitude_exponent`, for models that do not).
        what: the quantities that scale with the square, for the message.

    Returns:
        ``e`` as a Python int; a traced int32 when ``X`` or ``w`` is traced (no check).

    Raises:
        ValueError: ``|e| > exponent_limit(X.dtype)``: the message names ``name``, the scale,
            and the two remedies (rescale ``name``, or enable float64).
    """
    if is_traced(X) or (w is not None and is_traced(w)):
        return spread_exponent(X, w) if kind == "spread" else magnitude_exponent(X)
    # concrete: evaluated op by op (a few reductions; nothing of a fit is traced before the
    # remaining arguments are checked)
    with jax.ensure_compile_time_eval():
        e = int(_spread(X, w) if kind == "spread" else _magnitude(X))
    limit = exponent_limit(X.dtype)
    if abs(e) > limit:
        dtype = jnp.dtype(X.dtype).name
        scale = "spread" if kind == "spread" else "magnitude"
        side = "overflows" if e > 0 else "underflows"
        hint = ("" if dtype == "float64" else " or enable float64 "
                "(jax.config.update('jax_enable_x64', True)) and pass float64 data")
        raise ValueError(
            f"{name} has a {scale} of about {_decimal(e)} (2**{e}): its square {side} "
            f"{dtype}, so {what} cannot be represented; "
            f"{'divide' if e > 0 else 'multiply'} {name} by about {_decimal(abs(e))} before "
            f"fitting{hint}")
    return e


def check_regulariser(value: float, e: int | jax.Array, name: str, data: str = "X") -> None:
    """Reject a variance regulariser (e.g. ``reg_covar``, in the units of the data squared)
    larger than the data's variance ``≈ 4**e``: it would swamp the data. A traced ``e`` is
    not checked.

    Raises:
        ValueError: naming ``name``, the variance of ``data`` and a suitable value.
    """
    if isinstance(e, int) and value > 4.0 ** e:
        raise ValueError(
            f"{name}={value:g} exceeds the variance of {data} (about {4.0 ** e:.1e}): it would "
            f"swamp the data; pass {name} a small fraction of that variance (e.g. "
            f"{name}={1e-6 * 4.0 ** e:.1e}) or rescale {data}")
