"""Random draws of any shape that compile as fast as a vector draw.

XLA on CPU takes seconds to compile a ``jax.random`` draw of rank 3 or 4 (a ``(4, 4, 32, 64)``
convolution kernel: ~2 s of CPU; a rank-2 draw inside ``vmap``: ~1.1 s) and a fraction of that
for the same number of values drawn as a vector (~0.4-0.6 s). ``jax.random``'s samplers fill
an array in row-major element order, so drawing flat and reshaping gives bit-identical values
(``tests/test_prob_draws.py`` checks it); :func:`draw_flat` does that, and the library's
layers, initialisers and Monte-Carlo draws call it instead of drawing a shaped array.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax

__all__ = ["KERNEL_INIT", "draw_flat"]


def draw_flat(sampler: Callable[..., jax.Array], key: jax.Array, shape: Sequence[int],
              *args: Any, matrix: bool = False, **kwargs: Any) -> jax.Array:
    """``sampler(key, shape, *args, **kwargs)``, drawn flat and reshaped to ``shape``.

    Args:
        sampler: a function ``(key, shape, *args, **kwargs) -> array of that shape`` whose
            values depend on the key and the element count only, e.g. ``jax.random.normal``,
            ``jax.random.uniform`` or (with ``matrix=True``) a flax/JAX initialiser.
        key: PRNG key.
        shape: the output shape.
        args, kwargs: positional and keyword arguments passed on to ``sampler`` (dtype, bounds).
        matrix: draw a ``(prod(shape[:-1]), shape[-1])`` matrix instead of a vector, for
            initialisers that read fans from the shape: variance scaling in ``fan_in`` mode
            (``lecun_normal``, ``he_normal``, ...) keeps its scale, since ``fan_in`` is
            ``prod(shape[:-1])`` either way. Not for ``fan_out``/``fan_avg`` modes (Glorot),
            whose scale would change.

    Returns:
        ``(*shape)`` array, equal bit for bit to ``sampler(key, shape, *args, **kwargs)``.
    """
    shape = tuple(int(s) for s in shape)
    if matrix:
        if len(shape) < 2:
            raise ValueError(f"matrix=True needs a shape of rank >= 2, got shape {shape}")
        flat: tuple[int, ...] = (math.prod(shape[:-1]), shape[-1])
    else:
        flat = (math.prod(shape),)
    return sampler(key, flat, *args, **kwargs).reshape(shape)


#: The default kernel initialiser of flax's ``Dense``/``Conv`` (LeCun normal, fan-in scaled)
#: drawn as a matrix and reshaped: the same values as ``jax.nn.initializers.lecun_normal()``,
#: and a convolution kernel's init compiles in ~0.5 s instead of ~2 s on CPU. Used by the
#: conv, DCGAN and Bayes-by-Backprop layers.
KERNEL_INIT = functools.partial(draw_flat, jax.nn.initializers.lecun_normal(), matrix=True)
