"""Host-side input validation, run by every public function before any jit.

Errors name the offending argument: ``TypeError`` for a wrong kind of object or dtype,
``ValueError`` for a wrong shape, a non-finite entry or an out-of-range value.

Inputs that are JAX tracers (the public function is itself being traced by a user's ``jit``,
``vmap`` or ``grad``) are checked for rank and dtype only: their values are unknown on the
host. That keeps every public function composable with JAX transformations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "float_dtype",
    "is_traced",
    "as_float_array",
    "as_int_array",
    "as_positive_array",
    "check_same_length",
    "check_positive",
    "check_int",
    "check_probability",
    "check_choice",
    "check_key",
    "check_distribution",
    "as_sample_weight",
    "check_targets",
    "check_forward",
]


def float_dtype() -> np.dtype:
    """The library's working float dtype: float64 when JAX x64 is enabled, else float32."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def is_traced(x: Any) -> bool:
    """True when ``x`` is a JAX tracer (we are inside a user's jit/vmap/grad)."""
    return isinstance(x, jax.core.Tracer)


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_rank(shape: tuple[int, ...], name: str, ndim: int | Sequence[int] | None,
                shape_hint: str | None) -> None:
    if ndim is None:
        return
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if len(shape) not in allowed:
        want = " or ".join(f"{d}-D" for d in allowed)
        hint = f" {shape_hint}" if shape_hint else ""
        raise ValueError(f"{name} must be {want}{hint}, got shape {_shape_text(shape)}")


def as_float_array(
    x: Any,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    shape_hint: str | None = None,
    allow_nan: bool = False,
    allow_empty: bool = False,
    n_columns: int | None = None,
) -> jax.Array:
    """Validate ``x`` as a finite real array and return it as a JAX array of the working dtype.

    Args:
        x: array-like input (NumPy/JAX array, list, scalar).
        name: argument name used in error messages.
        ndim: required rank, or a sequence of accepted ranks.
        shape_hint: e.g. ``"(n_samples, n_features)"``, appended to rank errors.
        allow_nan: accept NaN entries (for models that marginalise missing values); inf is
            still rejected.
        allow_empty: accept arrays with a zero-length axis.
        n_columns: required size of the last axis, e.g. the number of features a fitted
            model expects for new inputs.

    Returns:
        ``jax.Array`` of dtype :func:`float_dtype` (float64 input stays float64 under x64).

    Raises:
        TypeError: ``x`` is None, a string, or of a non-numeric / complex dtype.
        ValueError: wrong rank, empty, or containing NaN/inf.
    """
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}")
    if not isinstance(x, jax.Array):
        try:
            x = np.asarray(x)
        except Exception as err:  # ragged lists and the like
            raise TypeError(f"{name} must be an array of numbers: {err}") from None
    dtype, shape = np.dtype(x.dtype), tuple(x.shape)
    if dtype.kind not in "biuf":
        raise TypeError(f"{name} must have a real numeric dtype, got {dtype}")
    _check_rank(shape, name, ndim, shape_hint)
    if not allow_empty and 0 in shape:
        raise ValueError(f"{name} is empty (shape {_shape_text(shape)})")
    if n_columns is not None and (not shape or shape[-1] != n_columns):
        got = shape[-1] if shape else 0
        raise ValueError(f"{name} has {got} columns but the fitted model has {n_columns}")
    target = float_dtype()
    if is_traced(x):
        return x.astype(target) if dtype != target else x
    # Concrete inputs are checked eagerly even when this call sits inside a user's jit
    # (e.g. a closed-over constant array): compile-time evaluation keeps the result concrete.
    with jax.ensure_compile_time_eval():
        x = jnp.asarray(x, dtype=target)
        has_nan, has_inf = (bool(v) for v in _non_finite(x))
    if has_inf:
        raise ValueError(f"{name} contains inf; remove or impute non-finite values first")
    if has_nan and not allow_nan:
        raise ValueError(f"{name} contains NaN; remove or impute non-finite values first")
    return x


@jax.jit
def _non_finite(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(any NaN, any inf), reduced on the device: one host sync, no host copy of ``x``."""
    return jnp.isnan(x).any(), jnp.isinf(x).any()


def as_positive_array(
    x: Any,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    shape_hint: str | None = None,
    allow_zero: bool = False,
) -> jax.Array:
    """:func:`as_float_array` plus a check that every entry is > 0 (>= 0 with ``allow_zero``).

    Use it for precisions, variances, widths, concentrations: scalars (``ndim=0``) or arrays.
    Traced inputs (inside a user's jit/vmap/grad) are checked for rank and dtype only.
    """
    arr = as_float_array(x, name, ndim=ndim, shape_hint=shape_hint)
    if is_traced(arr):
        return arr
    with jax.ensure_compile_time_eval():  # on the device: arr may span several processes
        low = float(jnp.min(arr))
    if low < 0 or (low == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {low:g}")
    return arr


def as_int_array(
    x: Any,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    shape_hint: str | None = None,
    min_value: int | None = None,
    max_value: int | None = None,
) -> jax.Array:
    """Validate ``x`` as an integer array (counts, labels); floats with integral values pass.

    Raises:
        TypeError: non-numeric dtype, or non-integral float values.
        ValueError: wrong rank, empty, or values outside ``[min_value, max_value]``.
    """
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of integers, got {type(x).__name__}")
    if is_traced(x):
        _check_rank(tuple(x.shape), name, ndim, shape_hint)
        if np.dtype(x.dtype).kind not in "biu":
            raise TypeError(f"{name} must have an integer dtype, got {x.dtype}")
        return x.astype(jnp.int32)
    if isinstance(x, jax.Array):  # checked on the device: x may be sharded over processes
        with jax.ensure_compile_time_eval():
            return _check_int_device(x, name, ndim, shape_hint, min_value, max_value)
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must have an integer dtype, got {x.dtype}")
    _check_rank(x.shape, name, ndim, shape_hint)
    if 0 in x.shape:
        raise ValueError(f"{name} is empty (shape {_shape_text(x.shape)})")
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf")
        if not np.all(x == np.round(x)):
            raise TypeError(f"{name} must hold integers, got non-integral floats")
    if min_value is not None and x.min() < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got minimum {x.min()}")
    if max_value is not None and x.max() > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got maximum {x.max()}")
    return jnp.asarray(x.astype(np.int32))


def _check_int_device(x: jax.Array, name: str, ndim: int | Sequence[int] | None,
                      shape_hint: str | None, min_value: int | None,
                      max_value: int | None) -> jax.Array:
    """:func:`as_int_array` for a concrete ``jax.Array``: the same checks as reductions on the
    device (no host copy, so a global array of several processes passes), sharding kept."""
    dtype = np.dtype(x.dtype)
    if dtype.kind not in "biuf":
        raise TypeError(f"{name} must have an integer dtype, got {dtype}")
    _check_rank(tuple(x.shape), name, ndim, shape_hint)
    if 0 in x.shape:
        raise ValueError(f"{name} is empty (shape {_shape_text(x.shape)})")
    if dtype.kind == "f":
        if not bool(jnp.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or inf")
        if not bool((x == jnp.round(x)).all()):
            raise TypeError(f"{name} must hold integers, got non-integral floats")
    if min_value is not None and int(jnp.min(x)) < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got minimum {int(jnp.min(x))}")
    if max_value is not None and int(jnp.max(x)) > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got maximum {int(jnp.max(x))}")
    return x.astype(jnp.int32)


def check_same_length(**arrays: Any) -> int:
    """Check that all arrays have the same leading length and return it.

    Example: ``n = check_same_length(X=X, y=y)``.
    """
    lengths = {name: int(np.shape(a)[0]) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        text = ", ".join(f"{k} has {v}" for k, v in lengths.items())
        raise ValueError(f"{' and '.join(lengths)} must have the same number of rows: {text}")
    return next(iter(lengths.values()))


def _as_scalar(value: Any, name: str) -> float:
    if is_traced(value):
        raise TypeError(f"{name} must be a concrete Python number here, not a traced value")
    arr = np.asarray(value)
    if arr.ndim != 0 or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real scalar, got {value!r}")
    out = float(arr)
    if not np.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """Check a real scalar is > 0 (or >= 0 with ``allow_zero``) and return it as float."""
    out = _as_scalar(value, name)
    if out < 0 or (out == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {out}")
    return out


def check_int(value: Any, name: str, *, min_value: int | None = None,
              max_value: int | None = None) -> int:
    """Check an integer scalar (bools rejected) within bounds and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}")
    return value


def check_probability(value: Any, name: str, *, open_interval: bool = False) -> float:
    """Check a scalar lies in [0, 1] (or (0, 1) with ``open_interval``)."""
    out = _as_scalar(value, name)
    bad = (out <= 0 or out >= 1) if open_interval else (out < 0 or out > 1)
    if bad:
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise ValueError(f"{name} must lie in {interval}, got {out}")
    return out


def check_choice(value: Any, name: str, options: Sequence[str]) -> str:
    """Check ``value`` is one of the strings ``options``."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def check_key(key: Any, name: str = "key") -> jax.Array:
    """Check ``key`` is a JAX PRNG key: a typed key (``jax.random.key``) or a raw uint32 ``(2,)``
    key (``jax.random.PRNGKey``). Batched keys are rejected here; vmap over them instead."""
    if key is None:
        raise TypeError(f"{name} must be a JAX PRNG key (jax.random.key(seed)), got None")
    if isinstance(key, (int, np.integer)):
        raise TypeError(f"{name} must be a JAX PRNG key, got the int {key}; "
                        f"use jax.random.key({key})")
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if key.ndim != 0:
            raise ValueError(f"{name} must be a single key, got a batch of shape {key.shape}")
        return key
    if dtype == np.uint32 and tuple(np.shape(key)) == (2,):
        return key
    raise TypeError(f"{name} must be a JAX PRNG key (jax.random.key(seed)), got {key!r}")


def check_distribution(d: Any, name: str,
                       cls: type[Any] | tuple[type[Any], ...] | None = None) -> None:
    """Check ``d`` is a numpyro distribution (of type ``cls``) with valid, finite parameters.

    Raises:
        TypeError: not a numpyro distribution of the requested type.
        ValueError: a parameter violates its constraint or is NaN/inf.
    """
    import numpyro.distributions as dist

    from espresso_jax.interop import standard_promotion

    classes = (dist.Distribution,) if cls is None else (cls if isinstance(cls, tuple) else (cls,))
    if not isinstance(d, classes):
        want = " or ".join(f"numpyro.distributions.{c.__name__}" for c in classes)
        raise TypeError(f"{name} must be a {want}, got {type(d).__name__}")
    with standard_promotion():
        try:
            d.validate_args(strict=False)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        for param, value in d.get_args().items():
            if not is_traced(value) and not np.all(np.isfinite(np.asarray(value))):
                raise ValueError(f"{name}: parameter {param} contains NaN or inf")


def as_sample_weight(sample_weight: Any, n_samples: int) -> jax.Array:
    """Validate ``sample_weight`` ``(n_samples,)``: finite, non-negative, with a positive sum.

    Returns ones of the working dtype when ``sample_weight`` is None.
    """
    if sample_weight is None:
        return jnp.ones((n_samples,), dtype=float_dtype())
    w = as_float_array(sample_weight, "sample_weight", ndim=1, shape_hint="(n_samples,)")
    if w.shape[0] != n_samples:
        raise ValueError(f"sample_weight must have one entry per sample: got {w.shape[0]} "
                         f"weights for {n_samples} samples")
    if not is_traced(w):  # reduced on the device: w may span several processes
        with jax.ensure_compile_time_eval():
            low, total = float(jnp.min(w)), float(jnp.sum(w))
        if low < 0:
            raise ValueError(f"sample_weight must be non-negative, got minimum {low:g}")
        if total <= 0:
            raise ValueError("sample_weight must have a positive sum")
    return w


def check_targets(y: Any, n_rows: int, *, n_classes: int | None = None,
                  ndim: int | Sequence[int] = 1) -> jax.Array:
    """Validate supervised targets ``y`` for ``n_rows`` inputs.

    Args:
        y: ``(n_rows,)`` integer labels in ``[0, n_classes)`` when ``n_classes`` is given,
            else finite real targets of rank ``ndim`` (``(n_rows,)`` or ``(n_rows, k)``).
        n_rows: number of input rows ``y`` must match.
        n_classes: number of classes (the network's output width), or None for regression.
        ndim: allowed ranks of real targets.

    Returns:
        int32 labels or float targets.

    Raises:
        ValueError: naming ``y`` (wrong rank, NaN, a label out of range, a length other than
            ``n_rows``). TypeError: non-integral labels.
    """
    if n_classes is None:
        y = as_float_array(y, "y", ndim=ndim, shape_hint="(n_samples,)")
    else:
        y = as_int_array(y, "y", ndim=1, shape_hint="(n_samples,)", min_value=0)
        with jax.ensure_compile_time_eval():
            top = None if is_traced(y) else int(jnp.max(y))
        if top is not None and top >= n_classes:
            raise ValueError(f"y has largest label {top} but the network has {n_classes} "
                             f"outputs: labels must lie in [0, {n_classes - 1}]")
    if y.shape[0] != n_rows:
        raise ValueError(f"y must have one entry per row of X ({n_rows}), got {y.shape[0]}")
    return y


def check_forward(forward: Callable[..., Any], *args: Any, name: str = "X") -> Any:
    """Trace ``forward(*args)`` abstractly (``jax.eval_shape``: no compilation, no arithmetic)
    and return its output's ``ShapeDtypeStruct`` pytree.

    A network that cannot take the input (a wrong input width for the parameters, a wrong
    rank) fails here, before any jit, with a ``ValueError`` naming ``name``. ``args`` may be
    arrays or ``ShapeDtypeStruct`` pytrees (e.g. ``jax.eval_shape(module.init, key, x)``).
    """
    try:
        return jax.eval_shape(forward, *args)
    except Exception as err:  # flax and lax raise several types for a shape mismatch
        shapes = ", ".join(str(getattr(a, "shape", "")) for a in args if hasattr(a, "shape"))
        raise ValueError(f"{name} does not fit the network (input shapes {shapes}): "
                         f"{type(err).__name__}: {err}") from err
