"""Common random numbers in the UCI grid (train_grid / run_protocol ``common_random_numbers``)
and MC dropout's masks drawn per epoch as data (the method's ``step_noise``)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from espresso_jax.apps.uci import protocol as uci
from espresso_jax.datasets.uci import default_data_dir, load_uci
from espresso_jax.prob import fast_draws

pytestmark = pytest.mark.skipif(default_data_dir() is None, reason="no UCI data directory")

OPT = optax.adam(1e-3)
S, N_FIT, BATCH, EPOCHS = 2, 120, 60, 3  # 2 steps of 60 rows per epoch
SETTINGS = dict(optimizer=OPT, n_hidden=50, batch_size=BATCH, n_epochs=EPOCHS)


@pytest.fixture(scope="module")
def yacht():
    return load_uci("yacht")


def _grid_data(method, ds):
    data = uci.stack_splits(ds, S)
    grid = method.grid(ds)
    hp = jax.vmap(lambda s: jax.vmap(lambda h: method.standardize(h, s))(grid))(data.y_std)
    return data.X_train[:, :N_FIT], data.y_train[:, :N_FIT], hp


def _assert_trees_equal(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_pre_drawn_masks_train_the_same_networks(yacht):
    """With common random numbers dropout_method() draws each epoch's mask words before the
    steps: bit for bit the grid of the masks hashed inside the step (the code path without
    step_noise, which the default per-network grid keeps), and train_config alone (which
    pre-draws) gives the default grid's network."""
    method = uci.dropout_method()
    X, y, hp = _grid_data(method, yacht)
    keys = jax.random.split(jax.random.key(3), S)
    pre = uci.train_grid(keys, method, X, y, hp, common_random_numbers=True, **SETTINGS)
    fused = uci.train_grid(keys, method._replace(step_noise=None), X, y, hp,
                           common_random_numbers=True, **SETTINGS)
    _assert_trees_equal(pre, fused)
    net_keys = jax.random.split(jax.random.key(3), (S, 12))
    params, history = uci.train_grid(net_keys, method, X, y, hp, **SETTINGS)
    point = jax.tree.map(lambda a: a[1, 4], hp)
    single, single_history = jax.jit(lambda k: uci.train_config(
        k, method, X[1], y[1], point, **SETTINGS))(net_keys[1, 4])
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(single), strict=True):
        np.testing.assert_allclose(np.asarray(a[1, 4]), np.asarray(b), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(history[1, 4], single_history, rtol=1e-4)


def test_common_random_numbers_network_equals_train_config_with_the_split_key(yacht):
    method = uci.dropout_method()
    X, y, hp = _grid_data(method, yacht)
    keys = jax.random.split(jax.random.key(4), S)
    params, history = uci.train_grid(keys, method, X, y, hp, common_random_numbers=True,
                                     **SETTINGS)
    one = jax.jit(lambda k, x, t, h: uci.train_config(k, method, x, t, h, **SETTINGS))
    for s, g in ((0, 0), (1, 7)):
        point = jax.tree.map(lambda a, s=s, g=g: a[s, g], hp)
        single, single_history = one(keys[s], X[s], y[s], point)
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(np.asarray(a[s, g]), np.asarray(b), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(history[s, g], single_history, rtol=1e-4)
    # the grid points differ (own rate and tau), the splits too
    assert not np.allclose(history[0, 0], history[0, 7])
    assert not np.allclose(history[0, 0], history[1, 0])


def test_common_random_numbers_share_the_mask_words_within_a_split(yacht):
    """A probe with MC dropout's step_noise whose 'loss' is the fraction of dropped entries of
    its step's masks: with common random numbers, grid points of a split with the same rate
    see the same masks and a higher rate drops a superset (same words, larger threshold);
    each network's drop fraction is its rate within 6 standard errors; splits differ. With a
    key per network, same-rate points differ."""
    base = uci.dropout_method()

    def drop_fraction(params, batch, noise, hparams, n_train):
        X = batch[0]  # the words pre-drawn (common random numbers) or drawn here from the key
        words = (noise if noise.dtype == jnp.uint32
                 else base.step_noise(noise, X.shape[0], X.shape[1], 50))
        masks = fast_draws.masks_from_words(words, hparams.rate)
        return jnp.mean(masks == 0).astype(jnp.float32) + 0.0 * params["w"]

    probe = base._replace(name="probe", init=lambda k, d, h: {"w": jnp.zeros(())},
                          loss=drop_fraction)
    X, y, hp = _grid_data(base, yacht)
    settings = dict(SETTINGS, n_epochs=20)
    _, frac = uci.train_grid(jax.random.split(jax.random.key(5), S), probe, X, y, hp,
                             common_random_numbers=True, **settings)
    frac = np.asarray(frac, np.float64)                            # (S, 12, epochs)
    rates = np.asarray(hp.rate[0], np.float64).reshape(4, 3)[:, 0]  # rate-major: 4 rates x 3 taus
    by_rate = frac.reshape(S, 4, 3, -1)
    np.testing.assert_array_equal(by_rate[:, :, 0], by_rate[:, :, 1])  # same rate, same masks
    np.testing.assert_array_equal(by_rate[:, :, 0], by_rate[:, :, 2])
    order = np.argsort(rates)
    assert np.all(np.diff(by_rate[:, order, 0], axis=1) >= 0)          # nested drop sets
    assert not np.array_equal(frac[0], frac[1])
    n = frac.shape[-1] * 2 * BATCH * (yacht.X.shape[1] + 50)           # entries per network
    mean = frac.mean(axis=-1)                                          # (S, 12)
    se = np.sqrt(hp.rate * (1 - hp.rate) / n)
    assert np.all(np.abs(mean - hp.rate) < 6 * se)
    _, own = uci.train_grid(jax.random.split(jax.random.key(5), (S, 12)), probe, X, y, hp,
                            **settings)
    own = np.asarray(own).reshape(S, 4, 3, -1)
    assert not np.array_equal(own[:, :, 0], own[:, :, 1])


def test_protocol_with_common_random_numbers(yacht):
    tiny = dict(n_splits=2, n_epochs=5, n_samples=16, n_samples_val=16, progress=False)
    method = uci.dropout_method()
    crn = uci.run_protocol(jax.random.key(0), yacht, method, optimizer=OPT,
                           common_random_numbers=True, **tiny)
    own = uci.run_protocol(jax.random.key(0), yacht, method, optimizer=OPT, **tiny)
    assert crn.settings["common_random_numbers"] and not own.settings["common_random_numbers"]
    assert np.all(np.isfinite(crn.val_log_likelihood))
    assert not np.allclose(crn.val_log_likelihood, own.val_log_likelihood)


def test_bad_common_random_numbers_input(yacht):
    method = uci.dropout_method()
    with pytest.raises(TypeError, match="common_random_numbers"):
        uci.run_protocol(jax.random.key(0), yacht, method, optimizer=OPT,
                         common_random_numbers="yes")
    X, y, hp = _grid_data(method, yacht)
    with pytest.raises(ValueError, match="one per split"):
        uci.train_grid(jax.random.split(jax.random.key(0), (S, 12)), method, X, y, hp,
                       common_random_numbers=True, **SETTINGS)
    with pytest.raises(ValueError, match="one per network"):
        uci.train_grid(jax.random.split(jax.random.key(0), S), method, X, y, hp, **SETTINGS)
