"""Dynamic binarisation (``espresso_jax.nn.vae_binarize.binarize``): the draws of
``jax.random.bernoulli`` bit for bit, and the VAE loss that uses it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espresso_jax.nn import vae
from espresso_jax.nn.vae_binarize import binarize


@jax.jit
def _reference(key, x):
    return jax.random.bernoulli(key, x).astype(x.dtype)


_binarize = jax.jit(binarize)


@pytest.mark.parametrize("shape", [(100, 784), (5,), (2, 3, 4)])
def test_binarize_equals_jax_bernoulli_entry_by_entry(shape):
    """Same key, same result, for typed keys over several seeds and shapes (a swapped counter
    word, a shift of 8 instead of 9 or ``<=`` for ``<`` changes entries here). Intensities
    include the edges 0 and 1 and values on the 2⁻²³ grid of the uniforms."""
    x = jax.random.uniform(jax.random.key(10), shape)
    flat = x.reshape(-1)
    x = flat.at[:3].set(jnp.array([0.0, 1.0, 2.0 ** -23])[: flat.size]).reshape(shape)
    for seed in range(4):
        key = jax.random.key(seed)
        np.testing.assert_array_equal(_binarize(key, x), _reference(key, x))


def test_binarize_raw_keys_jit_and_vmap():
    """Raw ``uint32`` keys, outside ``jit`` and under ``vmap`` over keys: still the reference
    draws."""
    x = jnp.full((6, 33), 0.3)
    raw = jax.random.PRNGKey(5)
    np.testing.assert_array_equal(binarize(raw, x), _reference(raw, x))
    keys = jax.random.split(jax.random.key(6), 3)
    np.testing.assert_array_equal(jax.jit(jax.vmap(binarize, (0, None)))(keys, x),
                                  jax.vmap(_reference, (0, None))(keys, x))


def test_binarize_falls_back_for_other_key_implementations():
    """An ``rbg`` key is not hashed by Threefry: the function calls ``jax.random.bernoulli``."""
    key = jax.random.key(7, impl="rbg")
    x = jnp.full((4, 9), 0.6)
    np.testing.assert_array_equal(_binarize(key, x), _reference(key, x))


def test_vae_loss_binarises_with_the_reference_draws():
    """``make_loss(binarize=True)`` equals the loss on the batch binarised by
    ``jax.random.bernoulli`` with the step key's first half (the key split is unchanged)."""
    module = vae.VAE(data_dim=12, latent_dim=2, hidden=(6,))
    params = vae.init(jax.random.key(0), module)
    X = jax.random.uniform(jax.random.key(1), (5, 12))
    key = jax.random.key(2)
    loss_bin = jax.jit(vae.make_loss(module, 5, binarize=True))
    loss_raw = jax.jit(vae.make_loss(module, 5, binarize=False))
    bin_key, _ = jax.random.split(key)
    value, aux = loss_bin(params, X, key)
    ref_value, ref_aux = loss_raw(params, _reference(bin_key, X), key)
    assert float(value) == float(ref_value)
    assert float(aux["elbo"]) == float(ref_aux["elbo"])


def test_binarize_hashes_once_for_several_consumers():
    """The draw is stored once, not fused into each consumer: a batch read by a product, a
    multiply and a ``tanh`` compiles to as many ``xor`` operations as the draw alone (23
    here; the hash fused into its consumers doubled them: 46, measured under the suite's and
    XLA's default flags)."""
    x = jax.random.uniform(jax.random.key(1), (16, 12))
    w = jnp.ones((12, 5))
    key = jax.random.key(0)

    def consumers(k, a):
        b = binarize(k, a)
        return (b @ w).sum() + (b * a).sum() + jnp.tanh(b - a).sum()

    def n_xor(fn):
        return jax.jit(fn).lower(key, x).compile().as_text().count(" xor(")

    alone = n_xor(binarize)
    assert alone > 0
    assert n_xor(consumers) == alone
