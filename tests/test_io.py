"""Saving and loading fitted parameters round-trips exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espresso_jax import io
from espresso_jax.linear import bayes


def test_round_trip_of_a_fit(tmp_path):
    X = jax.random.normal(jax.random.key(0), (50, 3))
    t = X @ jnp.array([1.0, -2.0, 0.5])
    fit = bayes.fit_evidence(X, t)
    path = io.save_params(tmp_path / "fit.msgpack", fit)
    back = io.load_params(path, fit)
    assert type(back) is type(fit)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(fit), strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    # Predictions from the loaded parameters are identical.
    np.testing.assert_array_equal(bayes.predict(back.params, X).mean,
                                  bayes.predict(fit.params, X).mean)


def test_load_errors(tmp_path):
    like = {"w": jnp.zeros(3)}
    with pytest.raises(FileNotFoundError, match="no parameter file"):
        io.load_params(tmp_path / "missing.msgpack", like)
    io.save_params(tmp_path / "p.msgpack", {"w": jnp.zeros(4)})
    with pytest.raises(ValueError, match="shape"):
        io.load_params(tmp_path / "p.msgpack", like)
    (tmp_path / "junk.msgpack").write_bytes(b"not msgpack")
    with pytest.raises(ValueError, match="does not hold parameters"):
        io.load_params(tmp_path / "junk.msgpack", like)
    with pytest.raises(ValueError, match="no array leaves"):
        io.save_params(tmp_path / "e.msgpack", {})
