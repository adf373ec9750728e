"""draw_flat: a flat draw reshaped equals the shaped jax.random draw bit for bit."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espresso_jax.nn.modules import KERNEL_INIT
from espresso_jax.prob.draws import draw_flat


def test_flat_draws_equal_the_shaped_draws_bit_for_bit():
    # One jitted program for every pair (~3 s CPU, most of it the shaped draws themselves).
    lecun = nn.initializers.lecun_normal()

    @jax.jit
    def pairs(key, keys):
        return [
            (jax.random.normal(key, (4, 4, 3, 8)),
             draw_flat(jax.random.normal, key, (4, 4, 3, 8))),
            (jax.random.uniform(key, (5, 2, 6), jnp.float32, -2.0, 3.0),
             draw_flat(jax.random.uniform, key, (5, 2, 6), jnp.float32, -2.0, 3.0)),
            # a rank-2 draw per key under vmap (the Monte-Carlo pattern: rank 3 once batched)
            (jax.vmap(lambda k: jax.random.normal(k, (6, 3)))(keys),
             jax.vmap(lambda k: draw_flat(jax.random.normal, k, (6, 3)))(keys)),
            # a conv kernel init: fan_in = 4 * 4 * 3 either way
            (lecun(key, (4, 4, 3, 8), jnp.float32),
             draw_flat(lecun, key, (4, 4, 3, 8), jnp.float32, matrix=True)),
            (lecun(key, (4, 4, 3, 8), jnp.float32), KERNEL_INIT(key, (4, 4, 3, 8), jnp.float32)),
        ]

    key = jax.random.key(7)
    for direct, flat in pairs(key, jax.random.split(key, 5)):
        assert flat.shape == direct.shape and flat.dtype == direct.dtype
        np.testing.assert_array_equal(np.asarray(flat), np.asarray(direct))
        assert float(jnp.std(direct)) > 0.1   # real draws, not a constant


def test_matrix_draw_needs_rank_two():
    with pytest.raises(ValueError, match="shape"):
        draw_flat(nn.initializers.lecun_normal(), jax.random.key(0), (8,), matrix=True)
