"""The engine's compiled chunk (``train._run_chunk``) and its XLA options
(``train.COMPILER_OPTIONS``): the same trained parameters, bit for bit, as the chunk compiled
with XLA's defaults, and fewer copies of the loop-carried parameters on CPU."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from espresso_jax import train
from espresso_jax.nn import vae

_BATCH, _ROWS = 8, 32


@pytest.fixture(scope="module")
def chunk():
    """A small binarised VAE (16-12-12-3), Adam, one epoch of 4 steps: the engine's chunk and
    the same chunk compiled with XLA's defaults (both compiled once), and their arguments."""
    module = vae.VAE(data_dim=16, latent_dim=3, hidden=(12, 12))
    params = vae.init(jax.random.key(0), module)
    X = jax.random.uniform(jax.random.key(1), (_ROWS, 16))
    loss = vae.make_loss(module, _ROWS, estimator="B", n_samples=1, binarize=True)
    optimizer = optax.adam(1e-2)
    step = train.make_step(loss, optimizer, has_aux=True)
    state = train.init_state(jax.random.key(2), params, optimizer)
    key = jax.random.key(3)
    ours = train._run_chunk.lower(step, state, X, key, _BATCH, 1, None).compile()
    return ours, _default_chunk(step, state, X, key), (state, X, key)


def _default_chunk(step, state, X, key):
    """The same chunk compiled with XLA's default options."""
    fn = jax.jit(lambda s, d, k: train.run_epochs(k, step, s, d, batch_size=_BATCH,
                                                  n_epochs=1))
    return fn.lower(state, X, key).compile()


def _param_copies(hlo: str) -> int:
    """Copies of f32 arrays inside the loop bodies of an optimised HLO module (the entry
    computation's copies of the arguments are left out)."""
    body = hlo[: hlo.index("\nENTRY")]
    return len(re.findall(r"= f32\[[^\]]*\]\{[^}]*\} copy\(", body))


def test_compiler_options_name_the_copy_insertion_analysis():
    """The one option, as a read-only mapping of XLA debug-option names."""
    assert dict(train.COMPILER_OPTIONS) == {"xla_cpu_copy_insertion_use_region_analysis": True}


def test_engine_chunk_equals_default_compilation_bit_for_bit(chunk):
    """The options change buffer assignment only: parameters, optimiser state and metrics of
    one epoch equal those of the chunk compiled with XLA's defaults exactly."""
    ours, ref, args = chunk
    for a, b in zip(jax.tree.leaves(ours(*args)), jax.tree.leaves(ref(*args)), strict=True):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an XLA CPU option")
def test_engine_chunk_copies_fewer_parameters_on_cpu(chunk):
    """With region analysis XLA CPU's copy insertion drops the per-step copies of the
    parameters that the backward pass reads (measured here: 14 f32 copies in the loop bodies
    with the defaults, 3 with the option, under both the test suite's and XLA's default
    flags)."""
    ours, ref, _ = chunk
    assert _param_copies(ref.as_text()) > 0
    assert _param_copies(ours.as_text()) < _param_copies(ref.as_text())
