"""The UCI MC-dropout method's array-code pass (apps.uci.dropout.dropout_pass) against the flax
DropoutMLP and a float64 NumPy reference with the same masks; its loss against Gal's objective
written out; its predictive against the passes one by one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espresso_jax.apps.uci.dropout import (
    DropoutHParams,
    dropout_method,
    dropout_pass,
    dropout_step_noise,
)
from espresso_jax.bnn.dropout import DropoutMLP
from espresso_jax.prob import fast_draws

D, H, M = 5, 7, 11


def _setup():
    method = dropout_method()
    params = method.init(jax.random.key(0), D, H)
    X = jax.random.normal(jax.random.key(1), (M, D))
    y = jax.random.normal(jax.random.key(2), (M,))
    return method, params, X, y


def _numpy_pass(params, X, masks):
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)["params"]
    m = np.asarray(masks, np.float64)
    h = np.asarray(X, np.float64) * m[:, :D]
    h = np.maximum(h @ p["dense_0"]["kernel"] + p["dense_0"]["bias"], 0.0) * m[:, D:]
    return h @ p["dense_1"]["kernel"] + p["dense_1"]["bias"]


def test_dropout_pass_matches_flax_without_dropout_and_numpy_with_masks():
    method, params, X, y = _setup()
    key = jax.random.key(4)
    run = jax.jit(dropout_pass)
    # rate 0: every mask is 1, so the pass is the deterministic DropoutMLP
    ref = DropoutMLP(hidden=(H,)).apply(params, X, 0.0, deterministic=True)
    np.testing.assert_allclose(run(key, params, X, jnp.float32(0.0)), ref, rtol=1e-5,
                               atol=1e-6)
    # rate 0.3: the masks of keep_masks(key, (M, D + H)) applied layer by layer (float64)
    rate = jnp.float32(0.3)
    masks = fast_draws.keep_masks(key, (M, D + H), rate)
    assert 0 < int(jnp.sum(masks == 0)) < masks.size
    np.testing.assert_allclose(run(key, params, X, rate), _numpy_pass(params, X, masks),
                               rtol=1e-5, atol=1e-6)


def test_loss_is_gals_objective_and_predict_stacks_the_passes():
    method, params, X, y = _setup()
    key, rate, tau, n_train = jax.random.key(5), 0.1, 3.0, 40
    hp = DropoutHParams(rate=jnp.float32(rate), tau=jnp.float32(tau))
    loss = jax.jit(lambda p, k: method.loss(p, (X, y), k, hp, n_train))(params, key)
    pred = _numpy_pass(params, X, fast_draws.keep_masks(key, (M, D + H), hp.rate))[:, 0]
    kernels = sum(np.sum(np.asarray(params["params"][n]["kernel"], np.float64) ** 2)
                  for n in ("dense_0", "dense_1"))
    decay = 1e-2 ** 2 * (1 - rate) / (2 * n_train * tau)     # l^2 (1 - p) / (2 N tau)
    expected = np.mean((np.asarray(y, np.float64) - pred) ** 2) + decay * kernels
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # T = 5 passes in chunks of 2 (dropout_method(chunk_size=2)): pass t uses split(key)[t]
    chunked = dropout_method(chunk_size=2)
    means, prec = jax.jit(lambda k: chunked.predict(k, params, X, hp, 5))(key)
    assert means.shape == (5, M) and float(prec) == tau
    for t, k in enumerate(jax.random.split(key, 5)):
        np.testing.assert_allclose(means[t], dropout_pass(k, params, X, hp.rate)[:, 0],
                                   rtol=1e-5, atol=1e-6)


def test_pre_drawn_words_give_the_same_pass_and_loss():
    """The method's step_noise (the words drawn in advance) in place of the key: the same
    pass and loss bit for bit; words of the wrong shape are refused."""
    method, params, X, y = _setup()
    key = jax.random.key(6)
    hp = DropoutHParams(rate=jnp.float32(0.2), tau=jnp.float32(2.0))
    words = method.step_noise(key, M, D, H)
    assert method.step_noise is dropout_step_noise
    assert words.shape == (M, D + H) and words.dtype == jnp.uint32
    np.testing.assert_array_equal(dropout_pass(words, params, X, hp.rate),
                                  dropout_pass(key, params, X, hp.rate))
    loss = jax.jit(lambda p, k: method.loss(p, (X, y), k, hp, 40))
    np.testing.assert_array_equal(loss(params, words), loss(params, key))
    with pytest.raises(ValueError, match="mask words"):
        dropout_pass(words[:, 1:], params, X, hp.rate)
