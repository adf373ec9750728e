"""Interoperation with third-party JAX libraries.

numpyro 0.22 (distribution sampling, ``Wishart.log_prob``, NUTS tree building, SVI's optimiser
wrapper) and optax mix int32 counters with float arrays and broadcast rank-0 against rank-1
arrays. Under ``jax_numpy_dtype_promotion="strict"`` / ``jax_numpy_rank_promotion="raise"``,
which our tests (and careful users) enable, that code fails to trace. Our own arithmetic is
written strict-clean; only calls into those libraries are wrapped in :func:`standard_promotion`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax

__all__ = ["standard_promotion"]


@contextlib.contextmanager
def standard_promotion() -> Iterator[None]:
    """Run the enclosed third-party calls under JAX's standard promotion rules."""
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield
