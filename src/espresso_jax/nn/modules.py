"""Building blocks shared by the neural models: flax.linen modules used functionally
(``params = module.init(key, x)``, ``module.apply(params, x, rngs=...)``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from espresso_jax.netcheck import check_params
from espresso_jax.prob.draws import KERNEL_INIT

__all__ = ["KERNEL_INIT", "MLP", "init_on_rows", "check_params_on_rows"]


@functools.partial(jax.jit, static_argnames=("module",))
def init_on_rows(key: jax.Array, module: Any) -> Any:
    """``module.init(key, x)`` on a zero ``x: (1, module.data_dim)`` float32 row, compiled once
    per module configuration (``module`` is static: flax modules hash by their fields), so a
    second call with another key or an equal module reuses the compiled program.

    Returns the flax variables dict (float32, as flax creates them).
    """
    return module.init(key, jnp.zeros((1, module.data_dim), dtype=jnp.float32))


def check_params_on_rows(module: Any, params: Any, name: str = "params") -> Any:
    """Check ``params`` against the shapes :func:`init_on_rows` gives ``module`` (traced
    abstractly with ``jax.eval_shape``: nothing compiles), on the host.

    Raises:
        TypeError: ``params`` is not a dict of arrays.
        ValueError: naming ``name``: parameters of another configuration (the first differing
            array and both shapes).
    """
    needed = jax.eval_shape(lambda: init_on_rows(jax.random.key(0), module))
    return check_params(params, needed, name)


class MLP(nn.Module):
    """Multi-layer perceptron: Dense layers with ``activation`` between them.

    Attributes:
        features: output width of each Dense layer, e.g. ``(500, 500, 20)``.
        activation: non-linearity after every layer but the last.
        final_activation: optional non-linearity after the last layer.

    Shapes: ``x: (..., in_features) -> (..., features[-1])``.
    """

    features: Sequence[int]
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    final_activation: Callable[[jax.Array], jax.Array] | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, width in enumerate(self.features):
            x = nn.Dense(width, name=f"dense_{i}")(x)
            if i < len(self.features) - 1:
                x = self.activation(x)
        if self.final_activation is not None:
            x = self.final_activation(x)
        return x
