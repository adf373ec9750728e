"""Stepwise (online) EM for Gaussian mixtures reaches the batch EM optimum."""

import jax
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from espresso_jax.mixture import gmm, gmm_online


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    z = rng.integers(0, 3, 6000)
    return (means[z] + rng.normal(size=(6000, 2)) * np.array([1.0, 0.5])).astype(np.float32)


@pytest.mark.parametrize("ctype", ["full", "diag"])
def test_stepwise_reaches_the_batch_optimum(data, ctype):
    online = gmm_online.fit_stepwise(jax.random.key(0), data, 3, batch_size=200, n_epochs=4,
                                     covariance_type=ctype, kappa=0.6)
    reference = GaussianMixture(3, covariance_type=ctype, random_state=0, tol=1e-8).fit(data)
    # The stochastic-approximation fixed point is the batch fixed point; after 4 epochs of
    # 30 steps the remaining fluctuation costs well under 0.01 nats per point here.
    ll_online = float(gmm.score(online.params, data))
    assert ll_online == pytest.approx(reference.score(data), abs=0.01)
    order = np.argsort(np.asarray(online.params.means)[:, 0] + 10 * np.asarray(
        online.params.means)[:, 1])
    ref_order = np.argsort(reference.means_[:, 0] + 10 * reference.means_[:, 1])
    np.testing.assert_allclose(np.asarray(online.params.means)[order],
                               reference.means_[ref_order], atol=0.1)
    assert online.history.shape == (4 * 30,)
    assert np.all(np.isfinite(online.history))


def test_stepwise_arguments_are_checked(data):
    with pytest.raises(ValueError, match="batch_size must be <= 6000"):
        gmm_online.fit_stepwise(jax.random.key(0), data, 3, batch_size=7000, n_epochs=1)
    with pytest.raises(ValueError, match=r"kappa must lie in \(0.5, 1\]"):
        gmm_online.fit_stepwise(jax.random.key(0), data, 3, batch_size=100, n_epochs=1,
                                kappa=0.4)
    with pytest.raises(ValueError, match="n_components=7000 must be <= n_samples=6000"):
        gmm_online.fit_stepwise(jax.random.key(0), data, 7000, batch_size=100, n_epochs=1)
