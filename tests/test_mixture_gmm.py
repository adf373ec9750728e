"""Gaussian mixture by EM (espresso_jax.mixture.gmm) against scikit-learn's GaussianMixture,
scipy.stats and Monte-Carlo bounds.

Reference runs start from the SAME explicit parameters (weights_init, means_init,
precisions_init) so that the whole log-likelihood path can be compared: scikit-learn records
it in ``lower_bounds_`` (one value per iteration, the mean log-likelihood before each M-step).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from espresso_jax.datasets import load_faithful
from espresso_jax.mixture import gmm

TYPES = ["full", "tied", "diag", "spherical"]


def _synthetic(offset=0.0, n_per=200, seed=0):
    """Three anisotropic 3-D clusters (the "synthetic set")."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(3, 3, 3)) * 0.6
    X = np.concatenate([rng.normal(size=(n_per, 3)) @ A[i] + 2.5 * i for i in range(3)])
    return X + offset


def _datasets():
    return {"faithful": load_faithful(), "synthetic": _synthetic()}


def _init(X, ctype, k=3, seed=0):
    """Explicit initial parameters in scikit-learn's ``*_init`` conventions."""
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    means = X[rng.choice(len(X), k, replace=False)]
    weights = np.full(k, 1.0 / k)
    var = X.var(0)
    prec = {"full": np.stack([np.diag(1 / var)] * k), "tied": np.diag(1 / var),
            "diag": np.tile(1 / var, (k, 1)), "spherical": np.full(k, 1 / var.mean())}[ctype]
    return {"weights_init": weights, "means_init": means, "precisions_init": prec}, d


def _sklearn_fit(X, ctype, init, max_iter, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(len(init["weights_init"]), covariance_type=ctype,
                               max_iter=max_iter, tol=0.0, **init, **kw).fit(X)


def _sk_layout(a, ctype):
    """Our tied layout (1, D, D) -> scikit-learn's (D, D)."""
    a = np.asarray(a)
    return a[0] if ctype == "tied" else a


# --------------------------------------------------------------------------------------------
# Reference: scikit-learn, float64, same initial parameters


@pytest.mark.parametrize("data", ["faithful", "synthetic"])
@pytest.mark.parametrize("ctype", TYPES)
def test_path_and_final_params_match_sklearn(x64, data, ctype):
    X = _datasets()[data]
    init, _ = _init(X, ctype)
    T = 40
    sk = _sklearn_fit(X, ctype, init, T)
    res = gmm.fit(jax.random.key(0), X, 3, covariance_type=ctype, max_iter=T, tol=0.0, **init)
    assert int(res.n_iter) == T and len(sk.lower_bounds_) == T
    # Same float64 arithmetic up to summation order (observed ~1e-14); the brief asks 1e-4,
    # 1e-6 leaves room for round-off amplified along 40 iterations.
    np.testing.assert_allclose(res.history, sk.lower_bounds_, rtol=1e-6)
    np.testing.assert_allclose(res.params.weights, sk.weights_, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(res.params.means, sk.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(_sk_layout(res.params.covariances, ctype), sk.covariances_,
                               rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(_sk_layout(res.params.precisions_cholesky, ctype),
                               sk.precisions_cholesky_, rtol=1e-6, atol=1e-10)
    # EM never decreases the log-likelihood (up to float64 rounding).
    h = np.asarray(res.history)
    assert np.all(np.diff(h) >= -1e-12 * np.abs(h[1:]))


def test_init_params_equals_the_star_init_arguments(x64):
    """A GMMParams start equals the same start given as weights/means/precisions."""
    X = _datasets()["faithful"]
    init, _ = _init(X, "full")
    a = gmm.fit(jax.random.key(0), X, 3, max_iter=40, tol=0.0, **init)
    cov = np.linalg.inv(init["precisions_init"])
    p0 = gmm.GMMParams(jnp.asarray(init["weights_init"]), jnp.asarray(init["means_init"]),
                       jnp.asarray(cov), jnp.asarray(np.linalg.cholesky(init["precisions_init"])))
    b = gmm.fit(jax.random.key(1), X, 3, max_iter=40, tol=0.0, init_params=p0)
    np.testing.assert_allclose(b.history, a.history, rtol=1e-10)
    np.testing.assert_allclose(b.params.means, a.params.means, rtol=1e-10)


def test_tol_stops_at_the_same_iteration_as_sklearn(x64):
    """tol on the change of the mean log-likelihood, as scikit-learn: same n_iter, same
    values, NaN padding after the stop."""
    X = _datasets()["faithful"]
    init, _ = _init(X, "full")
    sk = GaussianMixture(3, max_iter=200, tol=1e-6, **init).fit(X)
    res = gmm.fit(jax.random.key(0), X, 3, max_iter=200, tol=1e-6, **init)
    n = int(res.n_iter)
    assert sk.converged_ and bool(res.converged) and n == sk.n_iter_ < 200
    np.testing.assert_allclose(res.history[:n], sk.lower_bounds_, rtol=1e-6)
    assert np.all(np.isnan(np.asarray(res.history)[n:]))


def test_bic_aic_score_match_sklearn(x64):
    X = _datasets()["faithful"]
    for ctype in TYPES:
        init, _ = _init(X, ctype)
        sk = _sklearn_fit(X, ctype, init, 40)
        # same configuration as the path test above: no new compilation
        res = gmm.fit(jax.random.key(0), X, 3, covariance_type=ctype, max_iter=40, tol=0.0,
                      **init)
        # Final parameters agree to ~1e-12 (test above); scores follow.
        np.testing.assert_allclose(gmm.bic(res.params, X), sk.bic(X), rtol=1e-8)
        np.testing.assert_allclose(gmm.aic(res.params, X), sk.aic(X), rtol=1e-8)
        np.testing.assert_allclose(gmm.score(res.params, X), sk.score(X), rtol=1e-8)
        np.testing.assert_allclose(gmm.predict_proba(res.params, X), sk.predict_proba(X),
                                   atol=1e-8)
        np.testing.assert_array_equal(gmm.predict(res.params, X), sk.predict(X))
        assert gmm.n_parameters(res.params) == sk._n_parameters()


# --------------------------------------------------------------------------------------------
# Densities and sampling


def _dense_covariances(params, ctype):
    c = np.asarray(params.covariances)
    k, d = params.means.shape
    if ctype == "full":
        return c
    if ctype == "tied":
        return np.repeat(c, k, axis=0)
    if ctype == "diag":
        return np.stack([np.diag(v) for v in c])
    return np.stack([np.eye(d) * v for v in c])


@pytest.mark.parametrize("ctype", TYPES)
def test_score_samples_matches_scipy_mixture(x64, ctype):
    X = _synthetic()
    res = gmm.fit(jax.random.key(0), X, 3, covariance_type=ctype, max_iter=40, tol=0.0,
                  **_init(X, ctype)[0])
    p = res.params
    covs = _dense_covariances(p, ctype)
    comp = np.stack([scipy.stats.multivariate_normal(np.asarray(p.means[k]), covs[k]).logpdf(X)
                     for k in range(3)], axis=1) + np.log(np.asarray(p.weights))
    # Same density, different algebra (triangular factor vs scipy's eigh): 1e-10 relative.
    np.testing.assert_allclose(gmm.score_samples(p, X), logsumexp(comp, axis=1), rtol=1e-10)
    np.testing.assert_allclose(gmm.predict_proba(p, X),
                               np.exp(comp - logsumexp(comp, axis=1, keepdims=True)), atol=1e-10)
    # chunked evaluation (ragged last block) equals the one-block evaluation
    jitted = gmm.score_samples(p, X)
    np.testing.assert_allclose(gmm.score_samples(p, X, chunk_size=77), jitted, rtol=1e-12)
    # Op-by-op execution of the same call: its cost is one compile per primitive whatever
    # the number of rows, so all rows are compared (no extra jitted program for a subset).
    with jax.disable_jit():
        np.testing.assert_allclose(gmm.score_samples(p, X), jitted, rtol=1e-12)


@pytest.mark.parametrize("ctype", TYPES)
def test_sample_moments_within_6_standard_errors(ctype):
    k, d, n = 3, 2, 40_000
    rng = np.random.default_rng(1)
    means = rng.normal(size=(k, d)) * 3
    B = rng.normal(size=(k, d, d))
    full = np.einsum("kij,klj->kil", B, B) + 0.5 * np.eye(d)
    cov = {"full": full, "tied": full[:1], "diag": np.stack([np.diag(c) for c in full]),
           "spherical": np.array([1.0, 2.0, 0.5])}[ctype]
    weights = np.array([0.2, 0.5, 0.3])
    # precisions_cholesky is not used by sample(); any array of the right shape does
    p = gmm.GMMParams(jnp.asarray(weights, jnp.float32), jnp.asarray(means, jnp.float32),
                      jnp.asarray(cov, jnp.float32), jnp.asarray(cov, jnp.float32))
    X, labels = gmm.sample(jax.random.key(0), p, n)
    X, labels = np.asarray(X, np.float64), np.asarray(labels)
    assert X.shape == (n, d) and labels.shape == (n,)
    freq = np.bincount(labels, minlength=k) / n
    assert np.all(np.abs(freq - weights) < 6 * np.sqrt(weights * (1 - weights) / n))
    covs = _dense_covariances(p, ctype)
    for j in range(k):
        Xj = X[labels == j]
        nj = len(Xj)
        sd = np.sqrt(np.diag(covs[j]))
        assert np.all(np.abs(Xj.mean(0) - means[j]) < 6 * sd / np.sqrt(nj))
        # variance of a sample variance ≈ 2σ⁴/(n−1) for Gaussian data
        assert np.all(np.abs(Xj.var(0) - sd ** 2) < 6 * sd ** 2 * np.sqrt(2 / (nj - 1)))
        if ctype in ("full", "tied"):
            c01 = np.cov(Xj.T)[0, 1]
            se = np.sqrt((covs[j][0, 0] * covs[j][1, 1] + covs[j][0, 1] ** 2) / (nj - 1))
            assert abs(c01 - covs[j][0, 1]) < 6 * se


# --------------------------------------------------------------------------------------------
# Numerical robustness


@pytest.mark.parametrize("ctype", ["full", "diag"])
def test_degenerate_components_stay_finite(ctype):
    """A component collapsed on 30 copies of one point, and one far from all data (empty)."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(200, 2)), np.full((30, 2), 5.0)]).astype(np.float32)
    means = np.array([[0.0, 0.0], [5.0, 5.0], [1e3, 1e3]])
    prec = np.ones((3, 2)) if ctype == "diag" else np.stack([np.eye(2)] * 3)
    res = gmm.fit(jax.random.key(0), X, 3, covariance_type=ctype, max_iter=30, tol=0.0,
                  means_init=means, weights_init=np.ones(3) / 3, precisions_init=prec,
                  reg_covar=1e-6)
    assert np.all(np.isfinite(res.history))
    for leaf in jax.tree.leaves(res.params):
        assert np.all(np.isfinite(leaf))
    cov = np.asarray(res.params.covariances).reshape(3, -1)
    # the collapsed component is left with reg_covar on its diagonal
    np.testing.assert_allclose(cov[1][:: 3 if ctype == "full" else 1], 1e-6, rtol=1e-2)
    assert float(res.params.weights[2]) < 1e-5                   # the empty one
    assert np.all(np.isfinite(gmm.score_samples(res.params, X)))


@pytest.mark.parametrize("ctype", ["full", "tied"])
def test_float32_far_from_origin_matches_float64(ctype):
    """Data offset by 1e4: float32 covariances stay positive definite and close to float64
    (statistics are accumulated about the fixed initial means)."""
    X = _synthetic(offset=1e4)
    init, _ = _init(X, ctype)
    r32 = gmm.fit(jax.random.key(0), X.astype(np.float32), 3, covariance_type=ctype,
                  max_iter=40, tol=0.0, **init)
    with jax.enable_x64(True):
        r64 = gmm.fit(jax.random.key(0), X, 3, covariance_type=ctype, max_iter=40, tol=0.0,
                      **init)
        c64 = np.asarray(r64.params.covariances)
        m64, h64 = np.asarray(r64.params.means), np.asarray(r64.history)
    c32 = np.asarray(r32.params.covariances, np.float64)
    eig = np.linalg.eigvalsh(c32) if c32.ndim == 3 else c32
    assert np.all(eig > 0)
    # one float32 ulp at 1e4 is 1e-3: means agree to that, covariances (O(1)) far better
    np.testing.assert_allclose(r32.params.means, m64, atol=2e-3)
    np.testing.assert_allclose(c32, c64, atol=1e-3 * np.abs(c64).max())
    np.testing.assert_allclose(r32.history, h64, atol=2e-3)


# --------------------------------------------------------------------------------------------
# Weights, restarts, chunking, compilation


def test_integer_sample_weight_equals_repeated_rows(x64):
    X = _datasets()["faithful"]
    counts = np.random.default_rng(2).integers(0, 4, len(X))
    init, _ = _init(X, "full")
    a = gmm.fit(jax.random.key(0), X, 3, sample_weight=counts.astype(float), max_iter=40,
                tol=0.0, **init)
    b = gmm.fit(jax.random.key(0), np.repeat(X, counts, axis=0), 3, max_iter=40, tol=0.0,
                **init)
    # same sums in a different order: float64 round-off only
    np.testing.assert_allclose(a.history, b.history, rtol=1e-10)
    np.testing.assert_allclose(a.params.means, b.params.means, rtol=1e-10)
    np.testing.assert_allclose(a.params.covariances, b.params.covariances, rtol=1e-9)


def test_chunked_equals_unchunked(x64):
    """Random init (per-row draws do not depend on the blocks) and weighted rows, with a
    ragged last block: chunked statistics are the same sums in another order."""
    X = _synthetic()
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(X))
    a = gmm.fit(jax.random.key(5), X, 3, init="random", max_iter=40, tol=0.0, sample_weight=w)
    b = gmm.fit(jax.random.key(5), X, 3, init="random", max_iter=40, tol=0.0, sample_weight=w,
                chunk_size=128)
    np.testing.assert_allclose(b.history, a.history, rtol=1e-10)
    np.testing.assert_allclose(b.params.covariances, a.params.covariances, rtol=1e-8,
                               atol=1e-12)


def test_vmapped_restarts_pick_the_best():
    X = load_faithful().astype(np.float32)
    key = jax.random.key(7)
    best = gmm.fit(key, X, 4, init="random", n_init=4, max_iter=60, tol=1e-5)
    finals, runs = [], []
    for k in jax.random.split(key, 4):
        r = gmm.fit(k, X, 4, init="random", n_init=1, max_iter=60, tol=1e-5)
        runs.append(r)
        finals.append(float(r.history[int(r.n_iter) - 1]))
    assert len({round(f, 4) for f in finals}) > 1           # the restarts really differ
    i = int(np.argmax(finals))
    # vmapped and single runs differ only by float32 rounding
    np.testing.assert_allclose(best.history[int(best.n_iter) - 1], finals[i], rtol=1e-5)
    np.testing.assert_allclose(best.params.means, runs[i].params.means, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("init", ["kmeans", "kmeans++", "random"])
def test_every_init_recovers_well_separated_clusters(init):
    key = jax.random.key(0)
    X = _synthetic(n_per=300).astype(np.float32) * np.float32(2.0)
    res = gmm.fit(key, X, 3, init=init, n_init=2, max_iter=200, tol=1e-5)
    truth = np.array([np.mean(X[i * 300:(i + 1) * 300], 0) for i in range(3)])
    got = np.asarray(res.params.means)
    got = got[np.argsort(got[:, 0])]
    truth = truth[np.argsort(truth[:, 0])]
    np.testing.assert_allclose(got, truth, atol=0.15)


def test_second_call_does_not_recompile():
    X = _synthetic(offset=1e4).astype(np.float32)       # the float32 test's configuration
    init, _ = _init(X, "full")
    p = gmm.fit(jax.random.key(0), X, 3, max_iter=40, tol=0.0, **init).params
    before = gmm._fit_impl._cache_size()
    init["means_init"] = init["means_init"] + 0.5
    gmm.fit(jax.random.key(1), X + np.float32(1.0), 3, max_iter=40, tol=1e-4, reg_covar=1e-5,
            sample_weight=np.ones(len(X)), **init)
    assert gmm._fit_impl._cache_size() == before
    gmm.score_samples(p, X)
    before = gmm._eval_impl._cache_size()
    gmm.score_samples(p._replace(means=p.means + 1.0), X * np.float32(2.0))
    assert gmm._eval_impl._cache_size() == before


# Rows sharded over 4 virtual CPU devices: the fit equals the one-device fit to 1e-5 —
# checked in tests/parallel_scripts/four_devices.py (run by
# tests/test_parallel.py::test_sgd_on_four_virtual_devices_matches_one_device, one child
# process for every 4-device check).


# --------------------------------------------------------------------------------------------
# Bad input


@pytest.fixture
def X_small():
    return _synthetic(n_per=20).astype(np.float32)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"n_components": 61}, ValueError, "n_components"),
    ({"n_components": 0}, ValueError, "n_components"),
    ({"covariance_type": "banded"}, ValueError, "covariance_type"),
    ({"init": "kmeans||"}, ValueError, "init"),
    ({"reg_covar": 0.0}, ValueError, "reg_covar"),
    ({"reg_covar": -1e-3}, ValueError, "reg_covar"),
    ({"tol": -1.0}, ValueError, "tol"),
    ({"max_iter": 0}, ValueError, "max_iter"),
    ({"n_init": 0}, ValueError, "n_init"),
    ({"chunk_size": 0}, ValueError, "chunk_size"),
    ({"sample_weight": -np.ones(60)}, ValueError, "sample_weight"),
    ({"sample_weight": np.ones(59)}, ValueError, "sample_weight"),
    ({"means_init": np.zeros((2, 3))}, ValueError, "means_init"),
    ({"weights_init": np.array([0.5, 0.5, 0.5])}, ValueError, "weights_init"),
    ({"precisions_init": -np.stack([np.eye(3)] * 3)}, ValueError, "precisions_init"),
    ({"precisions_init": np.eye(3)}, ValueError, "precisions_init"),
])
def test_bad_arguments_raise_naming_the_argument(X_small, kwargs, exc, match):
    args = {"n_components": 3, **kwargs}
    with pytest.raises(exc, match=match):
        gmm.fit(jax.random.key(0), X_small, **args)


@pytest.mark.parametrize("bad", ["nan", "inf", "rank", "string"])
def test_bad_X_raises(X_small, bad):
    X = X_small.copy()
    if bad == "nan":
        X[3, 1] = np.nan
    elif bad == "inf":
        X[0, 0] = np.inf
    elif bad == "rank":
        X = X[:, 0]
    else:
        X = "data"
    with pytest.raises((ValueError, TypeError), match=r"\bX\b"):
        gmm.fit(jax.random.key(0), X, 3)


def test_bad_key_params_and_features(X_small):
    with pytest.raises(TypeError, match="key"):
        gmm.fit(0, X_small, 3)
    p = gmm.GMMParams(jnp.array([0.5, 0.5]), jnp.zeros((2, 3)), jnp.ones((2, 3)),
                      jnp.ones((2, 3)))                                     # diag
    with pytest.raises(ValueError, match="features"):
        gmm.score_samples(p, X_small[:, :2])
    with pytest.raises(TypeError, match="params"):
        gmm.predict((1, 2), X_small)
    with pytest.raises(ValueError, match="init_params"):
        gmm.fit(jax.random.key(0), X_small, 2, covariance_type="full", init_params=p)
    with pytest.raises(ValueError, match="not both"):
        gmm.fit(jax.random.key(0), X_small, 2, covariance_type="diag", init_params=p,
                means_init=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="^n_samples must be >= 1"):
        gmm.sample(jax.random.key(0), p, 0)


def test_precision_cholesky_repairs_indefinite_covariances():
    """A rank-deficient and an indefinite matrix get finite factors (jittered, then diagonal);
    a good one is untouched and U Uᵀ is its inverse."""
    from espresso_jax.mixture import gaussian

    c = np.array([[[1.0, 1.0], [1.0, 1.0]], [[2.0, 0.1], [0.1, 1.0]], [[1.0, 2.0], [2.0, 1.0]]],
                 np.float32)
    cov, U = gaussian.precision_cholesky(jnp.asarray(c), "full")
    assert np.all(np.isfinite(U)) and np.all(np.linalg.eigvalsh(np.asarray(cov)) > 0)
    np.testing.assert_array_equal(cov[1], c[1])
    np.testing.assert_allclose(np.asarray(U[1] @ U[1].T), np.linalg.inv(c[1]), rtol=1e-5)
