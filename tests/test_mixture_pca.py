"""PCA and probabilistic PCA against scikit-learn's PCA (components, variances, score,
get_covariance), closed forms (Gaussian conditioning, scipy.stats), EM properties and
missing-data EM."""

import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from sklearn.decomposition import PCA

from espresso_jax.datasets import load_faithful, load_mnist, load_uci
from espresso_jax.mixture import pca, ppca

_COMPILES = [0]


def _count_compiles(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compiles)


def _standardize(X):
    return (X - X.mean(0)) / X.std(0)


@pytest.fixture(scope="module")
def concrete():
    try:
        X = load_uci("concrete").X
    except FileNotFoundError:
        pytest.skip("the UCI concrete data set is not available (../shared/data/uci)")
    assert X.shape == (1030, 8)
    return _standardize(X)


@pytest.fixture(scope="module")
def mnist():
    X = load_mnist("train")[0][:1000].astype(np.float64)
    return X[:, X.std(0) > 0]          # drop constant pixels (sklearn keeps them; so do we
    #                                    in PCA, but they only add zero eigenvalues)


def _datasets(request, name):
    if name == "faithful":
        return _standardize(load_faithful())
    return request.getfixturevalue(name)


# --------------------------------------------------------------------------------------------
# PCA
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, M, method", [("concrete", 3, "svd"), ("concrete", 8, "eigh"),
                                             ("mnist", 20, "svd"), ("faithful", 1, "eigh")])
def test_pca_matches_sklearn(x64, request, name, M, method):
    X = _datasets(request, name)
    sk = PCA(M, svd_solver="full").fit(X)
    res = pca.fit(X, M, method=method)
    # Same decomposition up to rounding: float64 -> 1e-6 relative (brief). Components are
    # compared up to sign (our sign convention is sklearn's, but that is not what is tested).
    signs = np.sign(np.sum(np.asarray(res.params.components) * sk.components_, axis=1))
    comps = np.asarray(res.params.components)
    np.testing.assert_allclose(comps * signs[:, None], sk.components_,
                               rtol=1e-6, atol=1e-8)
    for ours, theirs in [(res.params.mean, sk.mean_),
                         (res.explained_variance, sk.explained_variance_),
                         (res.explained_variance_ratio, sk.explained_variance_ratio_),
                         (res.singular_values, sk.singular_values_),
                         (res.noise_variance, sk.noise_variance_)]:
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-10)
    Z = pca.transform(res.params, X[:50])
    np.testing.assert_allclose(np.asarray(Z) * signs[None, :], sk.transform(X[:50]), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(pca.inverse_transform(res.params, Z),
                               sk.inverse_transform(sk.transform(X[:50])), rtol=1e-6, atol=1e-8)


def test_pca_float32_round_trip_and_orthonormal_axes(concrete):
    res = pca.fit(concrete, 8)
    assert res.params.components.dtype == jnp.float32
    # all axes kept: reconstruction is exact up to float32 rounding (~1e-6 of |x| ~ 3)
    p = res.params
    np.testing.assert_allclose(pca.inverse_transform(p, pca.transform(p, concrete)),
                               concrete, atol=1e-4)
    np.testing.assert_allclose(p.components @ p.components.T, np.eye(8), atol=1e-5)
    np.testing.assert_allclose(float(jnp.sum(res.explained_variance_ratio)), 1.0, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Probabilistic PCA: closed form
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, M", [("concrete", 3), ("mnist", 20), ("faithful", 1)])
def test_ppca_log_likelihood_and_covariance_match_sklearn(x64, request, name, M):
    X = _datasets(request, name)
    sk = PCA(M, svd_solver="full").fit(X)
    params = ppca.fit(X, M, ddof=1).params           # sklearn's (N − 1) covariance
    # sklearn's score is the mean per-sample PPCA log-likelihood; 1e-6 relative (brief).
    np.testing.assert_allclose(float(ppca.log_likelihood(params, X)), sk.score(X), rtol=1e-6)
    # every row (the log-likelihood above already compiled score_samples for this shape)
    np.testing.assert_allclose(ppca.score_samples(params, X), sk.score_samples(X), rtol=1e-6)
    np.testing.assert_allclose(ppca.covariance(params), sk.get_covariance(), rtol=1e-6,
                               atol=1e-9)
    # The ML fit (1/N covariance) has a higher likelihood than sklearn's (N − 1) version.
    ml = float(ppca.log_likelihood(ppca.fit(X, M).params, X))
    assert ml >= sk.score(X) - 1e-12


def test_ppca_closed_form_is_a_maximum(x64, concrete):
    params = ppca.fit(concrete, 3).params
    best = float(ppca.log_likelihood(params, concrete))
    R = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    rotated = params._replace(W=params.W @ R)         # W R gives the same model (PRML 12.2.1)
    np.testing.assert_allclose(float(ppca.log_likelihood(rotated, concrete)), best, rtol=1e-12)
    for change in [{"W": params.W * 1.02}, {"sigma2": params.sigma2 * 1.02},
                   {"mean": params.mean + 0.01}]:
        assert float(ppca.log_likelihood(params._replace(**change), concrete)) < best


def test_posterior_matches_gaussian_conditioning(x64, concrete):
    """p(z | x) from the joint Gaussian: cov = I − Wᵀ C⁻¹ W, mean = Wᵀ C⁻¹ (x − μ)."""
    params = ppca.fit(concrete, 3).params
    W, mu, C = np.asarray(params.W), np.asarray(params.mean), np.asarray(ppca.covariance(params))
    mean, cov = ppca.posterior(params, concrete[:40])
    np.testing.assert_allclose(cov, np.eye(3) - W.T @ np.linalg.solve(C, W), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(mean, (concrete[:40] - mu) @ np.linalg.solve(C, W), rtol=1e-9,
                               atol=1e-12)
    # log-density vs scipy on the full covariance, every row (a shape already compiled)
    np.testing.assert_allclose(ppca.score_samples(params, concrete),
                               stats.multivariate_normal(mu, C).logpdf(concrete),
                               rtol=1e-10)


def test_sampling_moments_within_6_standard_errors(concrete):
    params = ppca.fit(concrete, 3).params
    n = 40000
    x = np.asarray(ppca.sample(jax.random.key(0), params, n), np.float64)
    C = np.asarray(ppca.covariance(params), np.float64)
    mean_se = np.sqrt(np.diag(C) / n)
    assert np.all(np.abs(x.mean(0) - np.asarray(params.mean)) < 6 * mean_se)
    # Var of a Gaussian sample covariance entry: (C_ii C_jj + C_ij²) / n.
    cov_se = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C ** 2) / n)
    assert np.all(np.abs(np.cov(x.T) - C) < 6 * cov_se)


# --------------------------------------------------------------------------------------------
# Probabilistic PCA: EM
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, M", [("concrete", 3), ("faithful", 1)])
def test_em_converges_to_the_closed_form(x64, request, name, M):
    X = _datasets(request, name)
    res = ppca.fit_em(jax.random.key(0), X, M, tol=1e-12, max_iter=3000)
    closed = float(ppca.log_likelihood(ppca.fit(X, M).params, X))
    n = int(res.n_iter)
    # EM converges linearly to the ML solution: 1e-5 relative on the log-likelihood (brief).
    np.testing.assert_allclose(float(ppca.log_likelihood(res.params, X)), closed, rtol=1e-5)
    np.testing.assert_allclose(res.history[n - 1], closed, rtol=1e-5)
    h = np.asarray(res.history[:n])
    assert np.all(np.diff(h) >= -1e-10 * np.abs(h[:-1]))          # EM never decreases
    # same model: the covariances agree (W is only determined up to rotation)
    np.testing.assert_allclose(ppca.covariance(res.params),
                               ppca.covariance(ppca.fit(X, M).params),
                               atol=1e-3)


def test_em_chunked_equals_unchunked_and_does_not_recompile(concrete):
    a = ppca.fit_em(jax.random.key(1), concrete, 3, tol=0.0, max_iter=30)
    b = ppca.fit_em(jax.random.key(1), concrete, 3, tol=0.0, max_iter=30, chunk_size=300)
    # float32, sums in another order: 1e-4 relative
    np.testing.assert_allclose(a.history, b.history, rtol=1e-4)
    before = _COMPILES[0]
    ppca.fit_em(jax.random.key(2), concrete * 2.0, 3, tol=1e-4, max_iter=30)
    assert _COMPILES[0] == before


def _remove(X, fraction, seed=0):
    Xm = np.array(X, dtype=np.float64)
    Xm[np.random.default_rng(seed).uniform(size=X.shape) < fraction] = np.nan
    return Xm


def test_missing_em_with_no_missing_value_equals_plain_em(x64, concrete):
    # max_iter of the missing-data fit below: the masked loop is compiled once for both tests
    plain = ppca.fit_em(jax.random.key(0), concrete, 3, tol=0.0, max_iter=400)
    masked = ppca.fit_em(jax.random.key(0), concrete, 3, tol=0.0, max_iter=400, missing=True)
    # the same iteration written two ways: equal up to rounding (1e-9)
    np.testing.assert_allclose(masked.history, plain.history, rtol=1e-9)
    np.testing.assert_allclose(masked.params.W, plain.params.W, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(masked.params.sigma2, plain.params.sigma2, rtol=1e-9)
    np.testing.assert_allclose(masked.params.mean, plain.params.mean, atol=1e-9)


def test_missing_em_recovers_the_complete_data_fit(x64, concrete):
    Xm = _remove(concrete, 0.10)
    res = ppca.fit_em(jax.random.key(0), Xm, 3, tol=1e-13, max_iter=400, missing=True)
    n = int(res.n_iter)
    h = np.asarray(res.history[:n])
    assert np.all(np.diff(h) >= -1e-10 * np.abs(h[:-1]))   # observed-data loglik never drops
    full = ppca.fit(concrete, 3).params
    C_full = np.asarray(ppca.covariance(full))
    C_miss = np.asarray(ppca.covariance(res.params))
    err = np.linalg.norm(C_miss - C_full) / np.linalg.norm(C_full)
    # 10% of entries missing at random leaves a statistical error of a few % (3-6% measured
    # over 5 masks, 6.2% for this one); mean imputation is 2-3x worse (12-15%: it shrinks
    # every variance by ~10%), so demand both an absolute 10% and 0.6x the imputation error.
    assert err < 0.10
    assert np.max(np.abs(np.asarray(res.params.mean) - np.asarray(full.mean))) < 0.05
    imputed = np.where(np.isnan(Xm), np.nanmean(Xm, axis=0), Xm)
    C_imp = np.asarray(ppca.covariance(ppca.fit(imputed, 3).params))
    assert err < 0.6 * np.linalg.norm(C_imp - C_full) / np.linalg.norm(C_full)
    # An EM fixed point is a stationary point of the observed-data log-likelihood: its
    # gradient (autodiff of the masked log-density, checked against scipy below) vanishes.
    # Measured max |grad| 1.3e-7 at tol=1e-13 (3.5e-6 at tol=1e-10).
    grad = jax.grad(lambda p: ppca.log_likelihood(p, Xm, missing=True))(res.params)
    assert max(float(np.max(np.abs(g))) for g in grad) < 1e-5
    # the history is the observed-data log-likelihood, checked against scipy row by row
    obs_ll = np.mean([stats.multivariate_normal(
        np.asarray(res.params.mean)[~np.isnan(r)],
        C_miss[np.ix_(~np.isnan(r), ~np.isnan(r))]).logpdf(r[~np.isnan(r)])
        if (~np.isnan(r)).any() else 0.0 for r in Xm[:200]])
    np.testing.assert_allclose(float(ppca.log_likelihood(res.params, Xm[:200], missing=True)),
                               obs_ll, rtol=1e-10)
    np.testing.assert_allclose(ppca.score_samples(res.params, concrete[:50], missing=True),
                               ppca.score_samples(res.params, concrete[:50]), rtol=1e-10)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------

_X = np.random.default_rng(0).normal(size=(20, 4))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: pca.fit(np.where(np.eye(20, 4) > 0, np.nan, _X), 2), ValueError, "X contains NaN"),
    (lambda: pca.fit(_X[:, 0], 1), ValueError, "X must be 2-D"),
    (lambda: pca.fit(_X, 5), ValueError, "n_components=5 must be <= min"),
    (lambda: pca.fit(_X, 0), ValueError, "n_components must be >= 1"),
    (lambda: pca.fit(_X[:1], 1), ValueError, "at least 2 samples"),
    (lambda: pca.fit(_X, 2, method="qr"), ValueError, "method must be one of"),
    (lambda: pca.transform(pca.fit(_X, 2).params, _X[:, :3]), ValueError, "X has 3 features"),
    (lambda: pca.inverse_transform(pca.fit(_X, 2).params, _X), ValueError, "Z has 4 columns"),
    (lambda: pca.transform((1, 2), _X), TypeError, "params must be a PCAParams"),
    (lambda: ppca.fit(np.where(np.eye(20, 4) > 0, np.inf, _X), 2), ValueError, "X contains inf"),
    (lambda: ppca.fit(_X, 2, ddof=2), ValueError, "ddof must be <= 1"),
    (lambda: ppca.fit_em(jax.random.key(0), _remove(_X, 0.2), 2), ValueError, "X contains NaN"),
    (lambda: ppca.fit_em(jax.random.key(0), np.where(np.eye(20, 4) > 0, np.inf, _X), 2,
                         missing=True), ValueError, "X contains inf"),
    (lambda: ppca.fit_em(jax.random.key(0), np.where(np.arange(4) == 1, np.nan, _X), 2,
                         missing=True), ValueError, r"columns with no observed value: \[1\]"),
    (lambda: ppca.fit_em(jax.random.key(0), _X, 5), ValueError, "n_components=5"),
    (lambda: ppca.fit_em(jax.random.key(0), _X, 2, tol=-1.0), ValueError, "tol must be >= 0"),
    (lambda: ppca.fit_em(jax.random.key(0), _X, 2, missing="yes"), TypeError, "missing must"),
    (lambda: ppca.fit_em(0, _X, 2), TypeError, "key must be a JAX PRNG key"),
    (lambda: ppca.log_likelihood(ppca.fit(_X, 2).params, _X[:, :3]), ValueError,
     "X has 3 features"),
    (lambda: ppca.log_likelihood(ppca.fit(_X, 2).params, _remove(_X, 0.2)), ValueError,
     "X contains NaN"),
    (lambda: ppca.log_likelihood({"W": 1}, _X), TypeError, "params must be a PPCAParams"),
    (lambda: ppca.sample(jax.random.key(0),
                         ppca.fit(_X, 2).params._replace(sigma2=jnp.zeros(())), 3),
     ValueError, "params.sigma2 must be > 0"),
    (lambda: ppca.sample(jax.random.key(0), ppca.fit(_X, 2).params, 0), ValueError,
     "n_samples must be >= 1"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_em_restarts_are_vmapped_split_keys(concrete):
    """Restart i of fit_em starts from split(key, n_init)[i]; the best final bound wins."""
    key = jax.random.key(3)
    best = ppca.fit_em(key, concrete, 3, n_init=3, tol=0.0, max_iter=20)
    singles = [ppca.fit_em(k, concrete, 3, tol=0.0, max_iter=20)
               for k in jax.random.split(key, 3)]
    finals = [float(s.history[-1]) for s in singles]
    np.testing.assert_allclose(float(best.history[-1]), max(finals), rtol=1e-6)
    assert best.history.shape == (20,) and int(best.n_iter) == 20
