"""Saving and loading fitted parameters round-trips exactly; files are atomic, checksummed and
refuse what they cannot load faithfully."""

import hashlib

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
    (tmp_path / "junk.msgpack").write_bytes(b"not msgpack")      # no checksum sidecar
    with pytest.warns(UserWarning, match="no checksum file"), \
            pytest.raises(ValueError, match="does not hold parameters"):
        io.load_params(tmp_path / "junk.msgpack", like)
    with pytest.raises(ValueError, match="no array leaves"):
        io.save_params(tmp_path / "e.msgpack", {})


# --------------------------------------------------------------------------- files that cannot lie

def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_save_into_a_folder_names_the_path_and_leaves_nothing(tmp_path):
    target = tmp_path / "fit"
    target.mkdir()
    with pytest.raises(IsADirectoryError, match=f"path {target} is a folder"):
        io.save_params(target, {"w": jnp.zeros(3)})
    assert _listing(tmp_path) == ["fit"] and _listing(target) == []
    missing = tmp_path / "no" / "p.msgpack"
    with pytest.raises(FileNotFoundError, match=f"path {missing}: the folder"):
        io.save_params(missing, {"w": jnp.zeros(3)})
    assert _listing(tmp_path) == ["fit"]


def test_interrupted_save_keeps_the_old_file_and_removes_temporaries(tmp_path, monkeypatch):
    path = io.save_params(tmp_path / "p.msgpack", {"w": jnp.arange(3.0)})
    before = {name: (tmp_path / name).read_bytes() for name in _listing(tmp_path)}
    assert sorted(before) == ["p.msgpack", "p.msgpack.sha256"]

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        io.save_params(path, {"w": jnp.zeros(3)})
    assert {name: (tmp_path / name).read_bytes() for name in _listing(tmp_path)} == before


def test_sidecar_is_a_sha256sum_line_and_changed_bytes_are_refused(tmp_path):
    w = jnp.arange(64, dtype=jnp.float32)
    path = io.save_params(tmp_path / "p.msgpack", {"w": w})
    payload = path.read_bytes()
    digest, name = io.checksum_path(path).read_text().split()
    assert (digest, name) == (hashlib.sha256(payload).hexdigest(), "p.msgpack")
    # Overwrite 8 bytes inside the array data (elements 10 and 11).
    start = payload.find(np.asarray(w).tobytes()) + 40
    assert start >= 40
    damaged = payload[:start] + np.float32([7.0, 7.0]).tobytes() + payload[start + 8:]
    path.write_bytes(damaged)
    with pytest.raises(ValueError, match=f"{path} does not match its checksum"):
        io.load_params(path, {"w": w})
    # Without the sidecar the same bytes load (with a warning): the checksum is what caught it.
    io.checksum_path(path).unlink()
    with pytest.warns(UserWarning, match="has no checksum file p.msgpack.sha256"):
        back = io.load_params(path, {"w": w})
    assert float(back["w"][10]) == 7.0
    io.checksum_path(path).write_text("not a checksum\n")
    with pytest.raises(ValueError, match="is not a SHA-256 checksum file"):
        io.load_params(path, {"w": w})


def test_file_saved_before_checksums_loads_with_a_warning(tmp_path):
    from flax import serialization

    params = {"w": np.arange(3.0, dtype=np.float32)}
    path = tmp_path / "old.msgpack"                  # as the previous save_params wrote it
    path.write_bytes(serialization.to_bytes(params))
    with pytest.warns(UserWarning, match="loaded without verification"):
        back = io.load_params(path, params)
    np.testing.assert_array_equal(back["w"], params["w"])
    io.save_params(path, back)                       # saving again adds the checksum
    assert io.checksum_path(path).is_file()


def test_load_needs_a_template_and_training_states_have_their_own_functions(tmp_path):
    import optax

    from espresso_jax import train

    path = io.save_params(tmp_path / "p.msgpack", {"w": jnp.zeros(2)})
    with pytest.raises(TypeError, match="like is None: loading needs a template"):
        io.load_params(path, None)
    state = train.init_state(jax.random.key(0), {"w": jnp.zeros(2)}, optax.sgd(0.1))
    with pytest.raises(TypeError, match="params is a train.TrainState: .*train.save_state"):
        io.save_params(tmp_path / "s.msgpack", state)
    with pytest.raises(TypeError, match=r"typed PRNG key at params\['k'\]"):
        io.save_params(tmp_path / "s.msgpack", {"k": jax.random.key(0)})
    assert _listing(tmp_path) == ["p.msgpack", "p.msgpack.sha256"]
    # save_state writes through the same checksum, and load_state verifies it.
    spath = train.save_state(tmp_path / "s.msgpack", state)
    assert io.checksum_path(spath).is_file()
    with pytest.raises(TypeError, match="like is a train.TrainState: .*train.load_state"):
        io.load_params(spath, state)
    data = bytearray(spath.read_bytes())
    data[-1] ^= 1
    spath.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{spath} does not match its checksum"):
        train.load_state(spath, state)
