"""SWAG as a UCIMethod (espresso_jax.apps.uci.swag): a cheap protocol run on yacht and the
finalize step's SWAG moments."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from espresso_jax.apps.uci import protocol as uci
from espresso_jax.apps.uci.grid_search import train_config
from espresso_jax.apps.uci.swag import swag_method
from espresso_jax.bnn import swag
from espresso_jax.datasets.uci import default_data_dir, load_uci, standardized_split

pytestmark = pytest.mark.skipif(default_data_dir() is None, reason="no UCI data directory")

OPT = optax.adam(1e-2)  # one object: the jitted protocol is keyed on it
# the first defaults' collection settings (constant SGD 0.01, one epoch per iterate), with
# which the numbers below were measured
METHOD = dict(n_collect=5, rank=3, learning_rate=0.01, epochs_per_collect=1)


@pytest.fixture(scope="module")
def yacht():
    return load_uci("yacht")


def test_tiny_protocol_run(yacht):
    r = uci.run_protocol(jax.random.key(0), yacht, swag_method(**METHOD), optimizer=OPT,
                         n_splits=2, n_epochs=40, n_samples=32, n_samples_val=16,
                         progress=False)
    assert r.method == "swag" and r.rmse.shape == r.log_likelihood.shape == (2,)
    assert r.val_log_likelihood.shape == (2, 3)  # the folder's three tau values
    assert np.all(np.isfinite(r.val_log_likelihood))
    np.testing.assert_array_equal(r.chosen.tau, r.grid.tau[r.chosen_index])
    # 40 Adam epochs + 5 SGD epochs: measured RMSE 2.4 and 3.5 (key 0) against the target's
    # std of 15.1 (what predicting the training mean scores)
    assert np.all(r.rmse < 0.5 * yacht.y.std())


def test_finalize_collects_swag_moments_after_training(yacht):
    split = standardized_split(yacht, 0)
    X, y = jnp.asarray(split.X_train), jnp.asarray(split.y_train)
    method = swag_method(**METHOD)
    hp = method.standardize(jax.tree.map(lambda a: a[0], method.grid(yacht)),
                            jnp.asarray(split.y_std, jnp.float32))
    kw = dict(optimizer=OPT, n_hidden=10, batch_size=64, n_epochs=3)
    moments, losses = jax.jit(lambda k: train_config(k, method, X, y, hp, **kw))(
        jax.random.key(1))
    trained, _ = jax.jit(lambda k: train_config(k, method._replace(finalize=None), X, y, hp,
                                                **kw))(jax.random.key(1))
    assert isinstance(moments, swag.SWAGState) and int(moments.n) == 5 and losses.shape == (3,)
    # the moments start from the trained weights and move with SGD: the SWA mean differs from
    # them, by less than the weights' own scale, and every weight has a positive variance
    diff = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(),
                        moments.mean, trained)
    assert 0 < max(jax.tree.leaves(diff)) < 1.0
    assert np.all(np.asarray(swag.diagonal_variance(moments)) > 0)
    means, precision = method.predict(jax.random.key(2), moments, X[:20], hp, 8)
    assert means.shape == (8, 20) and float(precision) == pytest.approx(float(hp.tau))
    assert np.all(np.std(np.asarray(means), axis=0) > 0)  # weight samples differ


def test_bad_method_arguments():
    for name, bad in (("rank", 0), ("n_collect", 0), ("learning_rate", 0.0),
                      ("momentum", 1.0), ("batch_size", 0), ("scale", -1.0),
                      ("epochs_per_collect", 0), ("prior_precision", 0.0), ("clip_norm", 0.0)):
        with pytest.raises(ValueError, match=name):
            swag_method(**{name: bad})


def test_collection_steps_are_clipped():
    # A gradient spike (global norm 100) moves the weights by at most rate * clip_norm; without
    # the bound it moves them by rate * 100 (the spikes that sent a bostonHousing refit to NaN).
    params = {"w": jnp.zeros(4), "b": jnp.zeros(())}
    spike = {"w": jnp.full(4, 50.0), "b": jnp.asarray(0.0)}   # norm 100
    for clip, expected in ((5.0, 0.2 * 5.0), (None, 0.2 * 100.0)):
        opt = swag_method(clip_norm=clip).finalize.keywords["optimizer"]
        updates, _ = opt.update(spike, opt.init(params), params)
        norm = float(optax.tree.norm(updates))
        assert norm == pytest.approx(expected, rel=1e-6)
