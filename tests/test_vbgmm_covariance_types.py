"""VB-GMM with spherical and tied covariances against scikit-learn's BayesianGaussianMixture,
at a small size so that both run in the default suite (the (300, 2), K = 5 versions in
test_mixture_vbgmm.py are slow-marked).

Same model and same defaults as scikit-learn; both start from the same random responsibilities
(scikit-learn's ``init_params="random"``: ``RandomState(seed).uniform``, rows normalised; or
its ``"kmeans"``: one-hot labels of ``KMeans(n_init=1, random_state=RandomState(seed))``) and
run a fixed number of iterations with ``tol=0``, in float64.
"""

import warnings

import jax
import numpy as np
import pytest

from espresso_jax.mixture import vbgmm

N, K, T, SEED = 60, 3, 12, 5


def _data():
    rng = np.random.default_rng(1)
    # Three clusters of different spread (spherical) sharing no common shape (tied must
    # average them): a bug that used one cluster's scatter or dropped the pooling would show.
    return np.concatenate([rng.normal([0.0, 0.0], [1.0, 0.4], (25, 2)),
                           rng.normal([4.0, 2.0], 0.5, (20, 2)),
                           rng.normal([-3.0, 4.0], [0.3, 0.9], (15, 2))])


def _resp(X, init):
    """scikit-learn's initial responsibilities for ``init_params=init`` and ``SEED``."""
    if init == "random":
        resp = np.random.RandomState(SEED).uniform(size=(N, K))
        return resp / resp.sum(1, keepdims=True)
    from sklearn.cluster import KMeans

    labels = KMeans(K, n_init=1, random_state=np.random.RandomState(SEED)).fit(X).labels_
    return np.eye(K)[labels]


# From random responsibilities the tied model collapses onto one component (both libraries,
# measured on seeds 0-5), which would not test the pooling: it starts from k-means labels.
@pytest.mark.parametrize("weight_prior, covariance_type, init",
                         [("dirichlet_distribution", "spherical", "random"),
                          ("dirichlet_process", "tied", "kmeans")])
def test_spherical_and_tied_match_sklearn(x64, weight_prior, covariance_type, init):
    from sklearn.mixture import BayesianGaussianMixture

    X = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # ConvergenceWarning: tol=0 runs all iterations
        sk = BayesianGaussianMixture(
            n_components=K, covariance_type=covariance_type, init_params=init,
            weight_concentration_prior_type=weight_prior, random_state=SEED, max_iter=T,
            tol=0).fit(X)
    res = vbgmm.fit(jax.random.key(0), X, K, weight_prior=weight_prior,
                    covariance_type=covariance_type, init=_resp(X, init), max_iter=T, tol=0.0)
    assert int(res.n_iter) == T
    # Same algorithm in float64: measured relative gaps 2e-15 (spherical) and 6e-10 (tied;
    # 2e-9 over random starts, seeds 0-5); 1e-8 is the bound the slow test uses.
    np.testing.assert_allclose(np.asarray(res.history), np.ravel(sk.lower_bounds_), rtol=1e-8)
    p = res.params
    np.testing.assert_allclose(vbgmm.expected_weights(p), sk.weights_, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(p.means, sk.means_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(p.degrees_of_freedom,
                               np.broadcast_to(sk.degrees_of_freedom_, (K,)), rtol=1e-8)
    np.testing.assert_allclose(p.weight_concentration, np.asarray(sk.weight_concentration_),
                               rtol=1e-8)
    cov = np.asarray(p.covariances)
    if covariance_type == "tied":
        expected = np.broadcast_to(sk.covariances_, (K, 2, 2))
    else:
        expected = sk.covariances_[:, None, None] * np.eye(2)
    np.testing.assert_allclose(cov, expected, rtol=1e-7, atol=1e-12)
    # Responsibilities of new points are scikit-learn's, and the three generated clusters
    # (25, 20 and 15 points) are recovered.
    np.testing.assert_allclose(vbgmm.predict_proba(p, X + 0.2), sk.predict_proba(X + 0.2),
                               rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(vbgmm.predict(p, X + 0.2), sk.predict(X + 0.2))
    assert sorted(np.bincount(np.asarray(vbgmm.predict(p, X)), minlength=K)) == [15, 20, 25]
