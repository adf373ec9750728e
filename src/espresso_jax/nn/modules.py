"""Building blocks shared by the neural models: flax.linen modules used functionally
(``params = module.init(key, x)``, ``module.apply(params, x, rngs=...)``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax

__all__ = ["MLP"]


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
