"""Reductions of per-example scores (``"mean"``, ``"sum"``, ``"none"``) shared by the scoring
rules of regression and classification."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from espresso_jax import validation as V

__all__ = ["REDUCTIONS", "check_reduction", "apply_reduction"]

REDUCTIONS = ("mean", "sum", "none")
"""Reductions of per-example scores accepted by the ``reduction`` arguments."""


def apply_reduction(values: jax.Array, reduction: str) -> jax.Array:
    """Reduce per-example scores ``values: (n,)`` by ``"mean"``, ``"sum"`` or ``"none"``
    (returned as is). Jittable with ``reduction`` static; validate it with
    :func:`check_reduction` on the host."""
    if reduction == "mean":
        return jnp.mean(values)
    if reduction == "sum":
        return jnp.sum(values)
    return values


def check_reduction(reduction: Any) -> str:
    """``reduction`` if it is one of :data:`REDUCTIONS`, else ``ValueError`` naming it."""
    return V.check_choice(reduction, "reduction", REDUCTIONS)
