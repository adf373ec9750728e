"""Data loaders against the facts documented in shared/data/README.md."""

import hashlib
from importlib import resources

import jax
import numpy as np
import pytest

from espresso_jax import datasets


def test_faithful_matches_documented_means():
    X = datasets.load_faithful()
    assert X.shape == (272, 2)
    np.testing.assert_allclose(X.mean(0), [3.487783, 70.897059], atol=1e-6)


def test_mnist_checksums_counts_and_fixed_split():
    data = resources.files("espresso_jax.datasets").joinpath("data")
    md5 = {name: hashlib.md5(data.joinpath(name).read_bytes()).hexdigest()
           for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    assert md5 == {"t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                   "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
    images, labels = datasets.load_mnist("all")
    assert images.shape == (10000, 784) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() == 1.0
    np.testing.assert_array_equal(
        np.bincount(labels), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    xtr, ytr = datasets.load_mnist("train")
    xte, yte = datasets.load_mnist("test")
    assert len(xtr) == datasets.MNIST_N_TRAIN == 8000 and len(xte) == 2000
    np.testing.assert_array_equal(np.concatenate([ytr, yte]), labels)
    with pytest.raises(ValueError, match="split must be one of"):
        datasets.load_mnist("validation")


needs_uci = pytest.mark.skipif(datasets.default_data_dir() is None,
                               reason="no data directory with uci/ (set ESPRESSO_JAX_DATA)")


@needs_uci
@pytest.mark.parametrize("name", datasets.UCI_NAMES)
def test_uci_protocol_files(name):
    ds = datasets.load_uci(name)
    n, d = ds.X.shape
    assert ds.y.shape == (n,)
    assert ds.n_splits == (5 if name.startswith("protein") else 20)
    assert ds.n_hidden == (100 if name.startswith("protein") else 50)
    np.testing.assert_allclose(ds.dropout_rates, [0.005, 0.01, 0.05, 0.1])
    assert ds.tau_values.shape == (3,)
    for tr, te in zip(ds.train_index, ds.test_index, strict=True):
        assert len(np.intersect1d(tr, te)) == 0          # disjoint
        assert len(tr) + len(te) == n                     # a partition of the rows
        assert abs(len(te) / n - 0.1) < 0.01              # 90/10


@needs_uci
def test_uci_standardized_split_uses_training_statistics():
    ds = datasets.load_uci("yacht")
    s = datasets.standardized_split(ds, 3)
    np.testing.assert_allclose(s.X_train.mean(0), 0.0, atol=1e-10)
    np.testing.assert_allclose(s.y_train.std(), 1.0, rtol=1e-10)
    np.testing.assert_allclose(s.y_test * s.y_std + s.y_mean, ds.y[ds.test_index[3]])
    with pytest.raises(ValueError, match="i must be <= 19"):
        datasets.standardized_split(ds, 20)


def test_uci_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="name must be one of"):
        datasets.load_uci("iris")
    with pytest.raises(FileNotFoundError, match="no uci/ folder"):
        datasets.load_uci("yacht", data_dir=tmp_path / "nowhere")


def test_synthetic_generators_are_keyed_and_reproducible():
    key = jax.random.key(0)
    x1, t1 = datasets.sinusoidal(key, 50, noise_std=0.3)
    x2, t2 = datasets.sinusoidal(key, 50, noise_std=0.3)
    np.testing.assert_array_equal(t1, t2)
    resid = np.asarray(t1) - np.sin(2 * np.pi * np.asarray(x1))
    assert 0.2 < resid.std() < 0.4
    X, z = datasets.gaussian_mixture(key, 4000, [[0.0, 0.0], [10.0, 0.0]],
                                     [np.eye(2), np.eye(2)], [0.25, 0.75])
    assert abs(float(np.mean(z)) - 0.75) < 6 * np.sqrt(0.75 * 0.25 / 4000)
    np.testing.assert_allclose(np.asarray(X)[np.asarray(z) == 1].mean(0), [10, 0], atol=0.15)
    with pytest.raises(ValueError, match="positive definite"):
        datasets.gaussian_mixture(key, 3, [[0.0]], [[[-1.0]]], [1.0])
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        datasets.sinusoidal(0, 10)
