"""Input checks shared by the conjugate families: sufficient statistics and prior parameters.

The sufficient statistics are the NamedTuples of :mod:`espresso_jax.prob.estimate`; the prior
parameters are those of ``numpyro.distributions`` objects.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from espresso_jax.validation import as_float_array, float_dtype, is_traced

__all__ = ["as_param", "check_stats"]


def as_param(value: Any) -> jax.Array:
    """A (validated) numpyro parameter cast to the working dtype."""
    return jnp.asarray(value, dtype=float_dtype())


def check_stats(stats: Any, cls: type[Any], name: str = "stats") -> Any:
    """``stats`` as an instance of the statistics NamedTuple ``cls`` with float array fields.

    Raises ``TypeError`` if ``stats`` is not a ``cls`` and ``ValueError`` if a field is empty
    or negative (``mean`` may be negative; of a ``(..., d, d)`` scatter matrix only the
    diagonal is checked). Traced fields skip the value checks.
    """
    if not isinstance(stats, cls):
        raise TypeError(f"{name} must be a {cls.__name__}, got {type(stats).__name__}")
    fields = {f: as_float_array(getattr(stats, f), f"{name}.{f}", allow_empty=False)
              for f in cls._fields}
    for f, v in fields.items():
        if f == "mean" or is_traced(v):
            continue
        if f == "scatter" and v.ndim >= 2:  # a scatter matrix: only its diagonal is >= 0
            v = jnp.diagonal(v, axis1=-2, axis2=-1)
        if bool(jnp.any(v < 0)):
            raise ValueError(f"{name}.{f} must be non-negative")
    return cls(**fields)

