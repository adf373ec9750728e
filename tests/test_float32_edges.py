"""Data at float32's edges (issue 13, sections 1 and 5): scaled data fit to the scaled answer,
data whose squared scale float32 cannot hold are rejected on the host naming ``X`` (or ``y``)
and saying what to do, ``converged`` is never claimed with a non-finite objective or a
tolerance below the objective's rounding, and random seeding does not depend on the dtype.

Reference: iris in float32, key 0 (``X`` spread about 1, so the fits run in data units).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit
from sklearn.datasets import load_iris

from espresso_jax import em
from espresso_jax.linear import bayes, logistic
from espresso_jax.mixture import gmm, kmeans, pca, ppca, vbgmm
from espresso_jax.scaling import exponent_limit, spread_exponent

_IRIS = load_iris()
X = _IRIS.data.astype(np.float32)
D = X.shape[1]
KEY = jax.random.key(0)
# a power of two (dividing by it is exact: bit-identical fits) and two decimal scales near
# the float32 limit of 2**±56 on the spread
SCALES = [2.0 ** 40, 1e15, 1e-15]


def _scaled(c):
    return X * np.float32(c)


@pytest.fixture(scope="module")
def base():
    """The unscaled fits everything is compared with."""
    return {"gmm": gmm.fit(KEY, X, 3), "kmeans": kmeans.fit(KEY, X, 3),
            "ppca": ppca.fit(X, 2), "pca": pca.fit(X, 2),
            "ppca_em": ppca.fit_em(KEY, X, 2, tol=0.0, max_iter=150)}


def test_spread_exponent_and_limits():
    assert int(spread_exponent(jnp.asarray(X))) == 0          # iris: RMS spread 1.07
    assert int(spread_exponent(jnp.asarray(_scaled(2.0 ** 40)))) == 40
    assert int(spread_exponent(jnp.ones((5, 2), jnp.float32) * 1e30)) == 0   # constant
    assert exponent_limit(jnp.float32) == 56 and exponent_limit(jnp.float64) == 504


# --------------------------------------------------------------------------------------------
# Scaled data fit to the scaled answer (float32, inside the representable range)


@pytest.mark.parametrize("c", SCALES)
def test_gmm_scaled_data_give_the_scaled_fit(base, c):
    r0, Xc = base["gmm"], _scaled(c)
    r = gmm.fit(KEY, Xc, 3, reg_covar=1e-6 * c * c)     # reg_covar is in the units of X²
    n = int(r.n_iter)
    assert bool(r.converged) and n == int(r0.n_iter)
    np.testing.assert_array_equal(gmm.predict(r.params, Xc), gmm.predict(r0.params, X))
    if c == 2.0 ** 40:       # exact: the fit runs on the very same numbers
        np.testing.assert_array_equal(np.asarray(r.params.means) / c, r0.params.means)
    np.testing.assert_allclose(np.asarray(r.params.means) / c, r0.params.means, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(r.params.covariances) / c ** 2,
                               r0.params.covariances, rtol=2e-5, atol=1e-6)
    # mean log-likelihood shifted by -D log c (float32 rounding of a value ~ D·|log c| ≈ 140)
    np.testing.assert_allclose(float(r.history[n - 1]) + D * np.log(c),
                               float(r0.history[n - 1]), atol=2e-5)
    assert np.isfinite(float(gmm.score(r.params, Xc)))      # the library accepts the params


@pytest.mark.parametrize("c", SCALES)
def test_kmeans_pca_ppca_scaled_data_give_the_scaled_fit(base, c):
    Xc = _scaled(c)
    k0, k = base["kmeans"], kmeans.fit(KEY, Xc, 3)
    np.testing.assert_array_equal(kmeans.predict(k.params, Xc), kmeans.predict(k0.params, X))
    np.testing.assert_allclose(float(k.inertia) / c ** 2, float(k0.inertia), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(k.params.centres) / c, k0.params.centres, rtol=1e-6)

    p0, p = base["pca"], pca.fit(Xc, 2)
    np.testing.assert_allclose(np.asarray(p.explained_variance) / c ** 2,
                               p0.explained_variance, rtol=1e-5)
    np.testing.assert_allclose(p.params.components, p0.params.components, atol=1e-6)

    q0, q = base["ppca"], ppca.fit(Xc, 2)
    np.testing.assert_allclose(np.asarray(q.params.W) / c, q0.params.W, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(q.params.sigma2) / c ** 2, float(q0.params.sigma2),
                               rtol=1e-5)
    ll = float(ppca.log_likelihood(q.params, Xc))           # accepted by the library
    np.testing.assert_allclose(ll + D * np.log(c), float(ppca.log_likelihood(q0.params, X)),
                               atol=2e-5)

    e0, e = base["ppca_em"], ppca.fit_em(KEY, Xc, 2, tol=0.0, max_iter=150)
    if c == 2.0 ** 40:
        np.testing.assert_array_equal(np.asarray(e.params.W) / c, e0.params.W)
    np.testing.assert_allclose(np.asarray(e.params.W) / c, e0.params.W, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(e.history) + D * np.log(c), e0.history, atol=3e-5)


@pytest.mark.slow   # ~20 s CPU, mostly the VB-GMM compile
def test_vbgmm_scaled_data_give_the_scaled_fit():
    r0 = vbgmm.fit(KEY, X, 3)
    for c in (2.0 ** 40, 1e-15):
        Xc = _scaled(c)
        r = vbgmm.fit(KEY, Xc, 3, reg_covar=1e-6 * c * c)
        assert bool(r.converged)
        np.testing.assert_array_equal(vbgmm.predict(r.params, Xc), vbgmm.predict(r0.params, X))
        np.testing.assert_allclose(np.asarray(r.params.means) / c, r0.params.means, rtol=1e-5)


def test_float64_fits_far_outside_float32(x64):
    """1e30 and 1e-30 are fine in float64: the fit is the unscaled one, scaled."""
    X64 = _IRIS.data
    k0 = kmeans.fit(KEY, X64, 3)
    for c in (1e30, 1e-30):
        k = kmeans.fit(KEY, X64 * c, 3)
        np.testing.assert_allclose(float(k.inertia) / c ** 2, float(k0.inertia), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(k.params.centres) / c, k0.params.centres,
                                   rtol=1e-12)


@pytest.mark.slow   # ~15 s CPU, the float64 GMM compile
def test_float64_gmm_far_outside_float32(x64):
    X64 = _IRIS.data
    g0 = gmm.fit(KEY, X64, 3)
    for c in (1e30, 1e-30):
        g = gmm.fit(KEY, X64 * c, 3, reg_covar=1e-6 * c * c)
        np.testing.assert_allclose(np.asarray(g.params.means) / c, g0.params.means, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(g.params.covariances) / c ** 2,
                                   g0.params.covariances, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------------------------
# Out of float32's range: a ValueError on the host that names X and says what to do

_FITS = {
    "gmm": lambda Xc: gmm.fit(KEY, Xc, 3),
    "vbgmm": lambda Xc: vbgmm.fit(KEY, Xc, 3),
    "kmeans": lambda Xc: kmeans.fit(KEY, Xc, 3),
    "ppca": lambda Xc: ppca.fit(Xc, 2),
    "ppca_em": lambda Xc: ppca.fit_em(KEY, Xc, 2),
    "pca": lambda Xc: pca.fit(Xc, 2),
}


@pytest.mark.parametrize("c, how", [(1e30, "divide X by about 1e\\+30"),
                                    (1e-20, "multiply X by about 1e\\+20"),
                                    (1e-30, "multiply X by about 1e\\+30")])
@pytest.mark.parametrize("name", list(_FITS))
def test_unrepresentable_scales_raise_naming_X(name, c, how):
    with pytest.raises(ValueError, match=f"X has a spread of about .*{how}.*enable float64"):
        _FITS[name](_scaled(c))


def test_reg_covar_larger_than_the_data_variance_raises():
    for fit in (gmm.fit, vbgmm.fit):
        with pytest.raises(ValueError, match="reg_covar=1e-06 exceeds the variance of X"):
            fit(KEY, _scaled(1e-15), 3)


def test_linear_models_name_the_users_argument():
    y = (_IRIS.target == 1).astype(np.float32)
    with pytest.raises(ValueError, match="X has a magnitude of about 1e\\+31.*float64"):
        logistic.fit_laplace(_scaled(1e30), y, alpha=1.0)
    t = X[:, 0]
    with pytest.raises(ValueError, match="^y has a spread of about 1e\\+30") as err:
        bayes.fit_evidence(X[:, 1:], t * np.float32(1e30))
    assert "beta0" not in str(err.value)


@pytest.mark.parametrize("c", [1e30, 1e-30, 1.0])
def test_logistic_predictive_at_far_inputs_matches_float64(c):
    """κμ = μ / sqrt(1 + πσ²/8) stays defined when μ ~ |x| and σ² ~ |x|² leave float32's range
    (x ~ 1e30 gives σ² ~ 1e60: inf·0 was NaN, and which rows did depended on the compiler's
    fusion). Reference: the same formula in float64 numpy. Tolerance 1e-5: float32 rounding of
    the fit's mean and covariance, then a handful of operations (probabilities are in [0, 1])."""
    y = (_IRIS.target == 1).astype(np.float32)
    params = logistic.fit_laplace(X, y, alpha=1.0).params
    X_new = np.concatenate([X[::15], -X[:3], np.zeros((1, D), np.float32)]) * np.float32(c)
    m, S, x = (np.asarray(a, np.float64) for a in (params.mean, params.cov, X_new))
    mu, var = x @ m, np.einsum("nd,de,ne->n", x, S, x)
    want = {"probit": expit(mu / np.sqrt(1 + np.pi * var / 8)), "map": expit(mu)}
    for method, p in want.items():
        got = np.asarray(logistic.predict_proba(params, X_new, method=method))
        assert got.dtype == np.float32 and np.all(np.isfinite(got))
        np.testing.assert_allclose(got, p, atol=1e-5, err_msg=method)


# --------------------------------------------------------------------------------------------
# Section 5: converged means the tolerance was met; seeding does not depend on the dtype


def test_non_finite_objective_never_converges():
    model = em.EMModel(e_step=lambda p, Xb, w: {"s": jnp.sum(w)},
                       m_step=lambda p, s: p,
                       objective=lambda old, new, s: -jnp.inf * s["s"])
    res = em.fit_em(model, {"a": jnp.zeros(())}, jnp.ones((4, 1), jnp.float32), tol=1.0,
                    max_iter=5)
    assert not bool(res.converged) and int(res.n_iter) == 5


def test_tolerance_below_float32_rounding_is_not_reported_as_converged():
    """float32 log-likelihood of iris is about -2.7 (half ulp 1.2e-7): tol=1e-10 cannot be
    verified, so the loop runs max_iter and says so; the default 1e-6 can."""
    tiny = ppca.fit_em(KEY, X, 2, tol=1e-10, max_iter=150)
    assert not bool(tiny.converged) and int(tiny.n_iter) == 150
    default = ppca.fit_em(KEY, X, 2, max_iter=150)
    assert bool(default.converged) and int(default.n_iter) < 150


@pytest.mark.slow   # ~5 s CPU, the float64 compile
def test_tolerance_that_float64_resolves_converges(x64):
    r64 = ppca.fit_em(KEY, _IRIS.data, 2, tol=1e-10, max_iter=2000)
    assert bool(r64.converged)


def test_constant_data_keep_a_positive_noise_variance():
    Xc = np.ones((10, 3), np.float32)
    q = ppca.fit(Xc, 1)
    assert float(q.params.sigma2) > 0
    assert np.isfinite(float(ppca.log_likelihood(q.params, Xc)))


@pytest.mark.parametrize("key", [0, 1, 2])
def test_seeding_is_the_same_in_float32_and_float64(key):
    """Before: key 0 gave inertia 142.75 in float32 and 78.85 in float64 (other seeds)."""
    k = jax.random.key(key)
    seeds32, k32 = np.asarray(kmeans.kmeans_plusplus(k, X, 3)), kmeans.fit(k, X, 3)
    with jax.enable_x64(True):
        X64 = X.astype(np.float64)
        np.testing.assert_array_equal(kmeans.kmeans_plusplus(k, X64, 3), seeds32)
        k64 = kmeans.fit(k, X64, 3)
        np.testing.assert_array_equal(kmeans.predict(k64.params, X64),
                                      kmeans.predict(k32.params, X))
        np.testing.assert_allclose(float(k64.inertia), float(k32.inertia), rtol=1e-5)


@pytest.mark.slow   # ~8 s CPU: k-means "random" compiles in both dtypes
def test_kmeans_random_init_is_the_same_in_float32_and_float64():
    r32 = kmeans.fit(KEY, X, 3, init="random")
    with jax.enable_x64(True):
        r64 = kmeans.fit(KEY, X.astype(np.float64), 3, init="random")
        np.testing.assert_array_equal(kmeans.predict(r64.params, X.astype(np.float64)),
                                      kmeans.predict(r32.params, X))


@pytest.mark.slow   # ~10 s CPU: two more GMM compiles
def test_gmm_random_init_is_the_same_in_float32_and_float64():
    g32 = gmm.fit(KEY, X, 3, init="random", max_iter=5)
    with jax.enable_x64(True):
        g64 = gmm.fit(KEY, X.astype(np.float64), 3, init="random", max_iter=5)
        np.testing.assert_allclose(g64.params.means, g32.params.means, rtol=1e-4)
