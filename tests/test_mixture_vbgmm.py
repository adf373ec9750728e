"""Variational Bayesian GMM against scikit-learn's BayesianGaussianMixture (same model, same
initial responsibilities), an independent NumPy evaluation of the full ELBO (PRML 10.70–10.77),
scipy's multivariate t, and the Old Faithful data.

Every float64 fit here uses the same data shape (300, 2), K = 5, T = 30 iterations so that the
compiled loop is shared between tests (one compile per weight prior / covariance type).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps
from scipy.special import betaln, digamma, gammaln

from espresso_jax import em
from espresso_jax.datasets import load_faithful
from espresso_jax.mixture import vb_terms, vbgmm
from espresso_jax.prob.moments import centred_moments, moment_stats

N, K, T, SEED = 300, 5, 30, 3


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal([0, 0], [1, .5], (100, 2)),
                           rng.normal([4, 2], [.5, 1], (120, 2)),
                           rng.normal([-3, 4], .7, (80, 2))])


def _sklearn_resp(seed=SEED, n=N, k=K):
    """scikit-learn's init_params="random": RandomState(seed).uniform, rows normalised."""
    resp = np.random.RandomState(seed).uniform(size=(n, k))
    return resp / resp.sum(1, keepdims=True)


def _sklearn(X, weight_prior, covariance_type, **kw):
    from sklearn.mixture import BayesianGaussianMixture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # ConvergenceWarning: tol=0 runs all iterations
        return BayesianGaussianMixture(
            n_components=K, covariance_type=covariance_type, init_params="random",
            weight_concentration_prior_type=weight_prior, random_state=SEED, max_iter=T,
            tol=0, **kw).fit(X)


def _fit64(X, weight_prior, covariance_type="full", **kw):
    kw.setdefault("init", _sklearn_resp())
    return vbgmm.fit(jax.random.key(0), X, K, weight_prior=weight_prior,
                     covariance_type=covariance_type, max_iter=T, tol=0.0, **kw)


# full (both priors) and diag in the default suite; spherical and tied (one compile each,
# ~4 s on a busy 2-core machine) with the slow checks.
CONFIGS = [("dirichlet_process", "full"), ("dirichlet_distribution", "full"),
           ("dirichlet_process", "diag"),
           pytest.param("dirichlet_distribution", "spherical", marks=pytest.mark.slow),
           pytest.param("dirichlet_process", "tied", marks=pytest.mark.slow)]


@pytest.mark.parametrize("weight_prior, covariance_type", CONFIGS)
def test_matches_sklearn_from_the_same_responsibilities(x64, data, weight_prior,
                                                        covariance_type):
    sk = _sklearn(data, weight_prior, covariance_type)
    res = _fit64(data, weight_prior, covariance_type)
    history = np.asarray(res.history)
    # Same algorithm in float64: agreement is ~1e-11 in practice; the brief's 1e-4 relative
    # is the stated requirement, 1e-8 leaves room for BLAS summation order over 30 iterations.
    np.testing.assert_allclose(history, np.ravel(sk.lower_bounds_), rtol=1e-8)
    assert int(res.n_iter) == T and not bool(res.converged)
    # The bound never decreases (variational EM is coordinate ascent on it).
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:]))
    p = res.params
    np.testing.assert_allclose(vbgmm.expected_weights(p), sk.weights_, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(p.means, sk.means_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(p.mean_precision, sk.mean_precision_, rtol=1e-8)
    np.testing.assert_allclose(p.degrees_of_freedom,
                               np.broadcast_to(sk.degrees_of_freedom_, (K,)), rtol=1e-8)
    cov = np.asarray(p.covariances)
    expected_cov = {"full": lambda c: c, "tied": lambda c: np.broadcast_to(c, (K, 2, 2)),
                    "diag": lambda c: c[:, :, None] * np.eye(2),
                    "spherical": lambda c: c[:, None, None] * np.eye(2)}[covariance_type]
    np.testing.assert_allclose(cov, expected_cov(sk.covariances_), rtol=1e-7, atol=1e-12)
    wc = np.asarray(p.weight_concentration)
    np.testing.assert_allclose(wc, np.asarray(sk.weight_concentration_), rtol=1e-8)
    # Responsibilities of new points = scikit-learn's predict_proba (the E-step). All 300
    # rows shifted: the (300, 2) program is the one the ELBO test below needs anyway.
    Xn = data + 0.3
    np.testing.assert_allclose(vbgmm.predict_proba(p, Xn), sk.predict_proba(Xn), rtol=1e-6,
                               atol=1e-12)
    np.testing.assert_array_equal(vbgmm.predict(p, Xn), sk.predict(Xn))


def _full_elbo_numpy(X, r, prior, post, weight_prior):
    """PRML eqs. 10.70–10.77 (and their stick-breaking analogues), written independently."""
    a0, b0, m0, nu0, psi0 = (np.asarray(v, np.float64) for v in prior)
    D = X.shape[1]
    nk = r.sum(0)
    xbar = r.T @ X / nk[:, None]
    beta, m, nu = (np.asarray(v) for v in (post.mean_precision, post.means,
                                            post.degrees_of_freedom))
    W = np.linalg.inv(nu[:, None, None] * np.asarray(post.covariances))
    W0inv = psi0
    i = np.arange(1, D + 1)
    e_log_lam = (digamma(0.5 * (nu[:, None] + 1 - i)).sum(1) + D * np.log(2)
                 + np.linalg.slogdet(W)[1])

    def log_b(Wm, v):
        return -0.5 * v * np.linalg.slogdet(Wm)[1] - (
            0.5 * v * D * np.log(2) + 0.25 * D * (D - 1) * np.log(np.pi)
            + gammaln(0.5 * (v + 1 - i)).sum())

    wc = np.asarray(post.weight_concentration)
    if weight_prior == "dirichlet_process":
        a, b = wc
        e_v, e_1v = digamma(a) - digamma(a + b), digamma(b) - digamma(a + b)
        e_log_pi = e_v + np.concatenate([[0.0], np.cumsum(e_1v)[:-1]])
        log_p_pi = np.sum(-betaln(1.0, a0) + (a0 - 1) * e_1v)
        log_q_pi = np.sum(-betaln(a, b) + (a - 1) * e_v + (b - 1) * e_1v)
    else:
        e_log_pi = digamma(wc) - digamma(wc.sum())
        log_p_pi = gammaln(K * a0) - K * gammaln(a0) + (a0 - 1) * e_log_pi.sum()
        log_q_pi = gammaln(wc.sum()) - gammaln(wc).sum() + ((wc - 1) * e_log_pi).sum()
    t1 = 0.0
    for k in range(K):
        dx = X - xbar[k]
        S = (r[:, k, None] * dx).T @ dx / nk[k]
        dm = xbar[k] - m[k]
        t1 += 0.5 * nk[k] * (e_log_lam[k] - D / beta[k] - nu[k] * np.trace(S @ W[k])
                             - nu[k] * dm @ W[k] @ dm - D * np.log(2 * np.pi))
    t2 = np.sum(r * e_log_pi)
    t4 = 0.0
    for k in range(K):
        dm = m[k] - m0
        t4 += 0.5 * (D * np.log(b0 / (2 * np.pi)) + e_log_lam[k] - D * b0 / beta[k]
                     - b0 * nu[k] * dm @ W[k] @ dm)
        t4 += log_b(np.linalg.inv(W0inv), nu0) + 0.5 * (nu0 - D - 1) * e_log_lam[k]
        t4 -= 0.5 * nu[k] * np.trace(W0inv @ W[k])
    t5 = np.sum(r * np.log(r))
    t7 = 0.0
    for k in range(K):
        entropy = -log_b(W[k], nu[k]) - 0.5 * (nu[k] - D - 1) * e_log_lam[k] + 0.5 * nu[k] * D
        t7 += 0.5 * e_log_lam[k] + 0.5 * D * np.log(beta[k] / (2 * np.pi)) - 0.5 * D - entropy
    return t1 + t2 + log_p_pi + t4 - t5 - log_q_pi - t7


@pytest.mark.parametrize("weight_prior", ["dirichlet_process", "dirichlet_distribution"])
def test_lower_bound_plus_offset_is_the_full_elbo(x64, data, weight_prior):
    """After an exact M-step (reg_covar = 0) the full ELBO of PRML 10.70 equals scikit-learn's
    bound plus elbo_offset; 1e-9 relative (float64, sums of ~1e3)."""
    res = _fit64(data, weight_prior)
    X = jnp.asarray(data)
    r = vbgmm.predict_proba(res.params, X)

    @jax.jit
    def exact_m_step_and_bound(r, shift, prior):
        cm = centred_moments(moment_stats(X, jnp.ones(N), r, shift), shift)
        post = vb_terms.update(prior, cm, 0.0, weight_prior=weight_prior,
                               covariance_type="full")
        return post, vb_terms.lower_bound(post, jnp.sum(r * jnp.log(r)))

    post, bound = exact_m_step_and_bound(r, res.params.means, res.prior)
    full = _full_elbo_numpy(data, np.asarray(r), res.prior, post, weight_prior)
    np.testing.assert_allclose(bound + vbgmm.elbo_offset(res, N), full, rtol=1e-9)


def test_score_samples_is_the_student_t_predictive(x64, data):
    """PRML 10.81 against scipy.stats.multivariate_t (1e-10 relative, float64)."""
    res = _fit64(data, "dirichlet_distribution")
    p = res.params
    Xn = data[::11] * 1.1
    nu, beta = np.asarray(p.degrees_of_freedom), np.asarray(p.mean_precision)
    pi = np.asarray(p.weight_concentration) / np.sum(p.weight_concentration)
    dens = 0.0
    for k in range(K):
        df = nu[k] + 1 - 2
        W = np.linalg.inv(nu[k] * np.asarray(p.covariances[k]))
        L = df * beta[k] / (1 + beta[k]) * W
        dens += pi[k] * sps.multivariate_t(np.asarray(p.means[k]), np.linalg.inv(L), df=df).pdf(Xn)
    np.testing.assert_allclose(vbgmm.score_samples(p, Xn), np.log(dens), rtol=1e-10)


def test_chunked_e_step_and_integer_weights_equal_repeated_rows(x64, data):
    """Integer sample weights == repeated rows (same shapes: weights in {0,1,2} summing to N);
    chunked E-steps == one block. Same float64 arithmetic up to summation order: 1e-9."""
    rng = np.random.default_rng(1)
    counts = rng.permutation(np.r_[np.zeros(60), np.ones(180), 2 * np.ones(60)]).astype(int)
    resp = _sklearn_resp()
    weighted = _fit64(data, "dirichlet_process", init=resp, sample_weight=counts)
    repeated = _fit64(np.repeat(data, counts, 0), "dirichlet_process",
                      init=np.repeat(resp, counts, 0))
    chunked = _fit64(np.repeat(data, counts, 0), "dirichlet_process",
                     init=np.repeat(resp, counts, 0), chunk_size=64)
    for other in (repeated, chunked):
        np.testing.assert_allclose(weighted.history, other.history, rtol=1e-9)
        for a, b in zip(weighted.params, other.params, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("weight_prior", ["dirichlet_process", "dirichlet_distribution"])
def test_old_faithful_surplus_components_collapse(weight_prior):
    """Raw (unstandardised) Old Faithful, K = 10, α₀ = 1e-3, k-means init, float32: the two
    eruption regimes remain, the other eight weights collapse (< 1e-2)."""
    X = load_faithful()
    res = vbgmm.fit(jax.random.key(0), X, 10, weight_prior=weight_prior,
                    weight_concentration=1e-3, max_iter=500, tol=1e-4)
    w = np.asarray(vbgmm.expected_weights(res.params))
    assert int(np.sum(w > 1e-2)) in {2, 3}
    assert int(vbgmm.active_components(res.params).sum()) == int(np.sum(w > 1e-2))
    h = np.asarray(res.history)[: int(res.n_iter)]
    # float32 bound of magnitude ~6e2: allow rounding of a few ulps per iteration.
    assert np.all(np.diff(h) >= -1e-4 * np.abs(h[1:]))
    assert np.isclose(w.sum(), 1.0, atol=1e-5)
    big = np.sort(np.asarray(res.params.means)[w > 0.2, 0])
    np.testing.assert_allclose(big, [2.04, 4.29], atol=0.1)    # short and long eruptions


def test_restarts_are_vmapped_split_keys_and_random_init():
    """Restart i uses split(key, n_init)[i], as gmm.fit: n_init=3 returns the best of the three
    single runs from those keys."""
    X = load_faithful()    # the same shapes and loop as the Old Faithful test (shared compile)
    kw = {"weight_prior": "dirichlet_distribution", "weight_concentration": 1e-3,
              "init": "random", "max_iter": 500, "tol": 1e-4}
    key = jax.random.key(5)
    three = vbgmm.fit(key, X, 10, n_init=3, **kw)
    singles = [vbgmm.fit(k, X, 10, n_init=1, **kw) for k in jax.random.split(key, 3)]
    final = [float(r.history[int(r.n_iter) - 1]) for r in singles]
    best = float(three.history[int(three.n_iter) - 1])
    np.testing.assert_allclose(best, max(final), rtol=1e-5)


@pytest.mark.parametrize("case", ["duplicates", "constant_feature"])
def test_degenerate_data_stays_finite(case):
    """Three distinct points repeated (components collapse onto a point, others empty), or a
    constant column (singular covariance prior): no NaN anywhere."""
    rng = np.random.default_rng(2)
    if case == "duplicates":
        X = np.repeat(rng.normal(size=(3, 2)), 100, axis=0)
    else:
        X = np.c_[rng.normal(size=N), np.full(N, 7.0)]
    res = vbgmm.fit(jax.random.key(0), X, K, init="random", max_iter=T, tol=0.0)
    for leaf in jax.tree.leaves(res.params):
        assert np.all(np.isfinite(leaf))
    assert np.all(np.isfinite(res.history))
    assert np.all(np.isfinite(vbgmm.predict_proba(res.params, X)))
    assert np.all(np.isfinite(vbgmm.score_samples(res.params, X[:5] + 0.1)))


def test_second_call_does_not_recompile(monkeypatch, data):
    X = data.astype(np.float32)
    kw = {"weight_prior": "dirichlet_process", "init": "random", "max_iter": T, "tol": 0.0}
    vbgmm.fit(jax.random.key(0), X, K, **kw)
    traces = []
    original = vb_terms.weighted_log_prob
    monkeypatch.setattr(vb_terms, "weighted_log_prob",
                        lambda *a: traces.append(1) or original(*a))
    before = em._fit_em_impl._cache_size()
    res = vbgmm.fit(jax.random.key(1), X * 2.0 + 1.0, K, **{**kw, "tol": 1e-3})
    assert np.isfinite(float(res.history[0]))
    assert not traces and em._fit_em_impl._cache_size() == before


@pytest.mark.parametrize("kwargs, error, match", [
    ({"X": [[0.0, np.nan]] * 10}, ValueError, "X contains NaN"),
    ({"X": [[0.0, np.inf]] * 10}, ValueError, "X contains inf"),
    ({"X": np.zeros(10)}, ValueError, "X must be 2-D"),
    ({"n_components": 11}, ValueError, "n_components"),
    ({"n_components": 0}, ValueError, "n_components must be >= 1"),
    ({"reg_covar": 0.0}, ValueError, "reg_covar must be > 0"),
    ({"reg_covar": -1.0}, ValueError, "reg_covar must be > 0"),
    ({"covariance_type": "banded"}, ValueError, "covariance_type must be one of"),
    ({"weight_prior": "pitman_yor"}, ValueError, "weight_prior must be one of"),
    ({"init": "k-means++"}, ValueError, "init must be one of"),
    ({"init": np.ones((10, 3))}, ValueError, "init responsibilities must have shape"),
    ({"init": -np.ones((10, 2))}, ValueError, "non-negative"),
    ({"degrees_of_freedom": 0.5}, ValueError, "degrees_of_freedom must be > n_features - 1"),
    ({"covariance_prior": np.eye(3)}, ValueError, "covariance_prior must have shape"),
    ({"covariance_prior": -np.eye(2)}, ValueError, "positive definite"),
    ({"covariance_type": "diag", "covariance_prior": [1.0, -1.0]}, ValueError,
     "covariance_prior must be 2 positive"),
    ({"mean_prior": [0.0]}, ValueError, "mean_prior must have shape"),
    ({"weight_concentration": 0.0}, ValueError, "weight_concentration must be > 0"),
    ({"mean_precision": -1.0}, ValueError, "mean_precision must be > 0"),
    ({"sample_weight": np.ones(9)}, ValueError, "sample_weight must have one entry"),
    ({"sample_weight": -np.ones(10)}, ValueError, "sample_weight must be non-negative"),
    ({"n_init": 0}, ValueError, "n_init must be >= 1"),
    ({"max_iter": 0}, ValueError, "max_iter must be >= 1"),
    ({"tol": -1.0}, ValueError, "tol must be >= 0"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be >= 1"),
    ({"key": 0}, TypeError, "key must be a JAX PRNG key"),
])
def test_bad_input_is_rejected_before_jit(kwargs, error, match):
    args = {"key": jax.random.key(0), "X": np.random.default_rng(0).normal(size=(10, 2)),
            "n_components": 2, **kwargs}
    key, X, k = args.pop("key"), args.pop("X"), args.pop("n_components")
    with pytest.raises(error, match=match):
        vbgmm.fit(key, X, k, **args)


def test_prediction_input_is_checked(data):
    res = vbgmm.fit(jax.random.key(0), data.astype(np.float32), K, init="random",
                    max_iter=T, tol=0.0)
    with pytest.raises(ValueError, match="X must have 2 features"):
        vbgmm.predict_proba(res.params, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="X contains NaN"):
        vbgmm.score_samples(res.params, np.full((3, 2), np.nan))
    with pytest.raises(TypeError, match="params must be a VBGMMParams"):
        vbgmm.predict(res, data)


def test_float32_far_from_the_origin_matches_float64(data):
    """Data offset by 1e4: shifted statistics keep float32 covariances accurate. Reference:
    float64 on the same float32-rounded data, from the true labels (a well-conditioned fit;
    from near-symmetric random responsibilities the slow symmetry breaking amplifies any
    rounding). Means: 3e-3 absolute = 3 float32 ulps at 1e4 (the means' own resolution);
    covariances and weights 1e-3 relative."""
    X = (data + 1e4).astype(np.float32)
    resp = np.eye(K)[np.repeat([0, 1, 2], [100, 120, 80])]     # two components start empty
    res32 = vbgmm.fit(jax.random.key(0), X, K, init=resp, max_iter=T, tol=0.0)
    with jax.enable_x64(True):
        res64 = vbgmm.fit(jax.random.key(0), X.astype(np.float64), K, init=resp, max_iter=T,
                          tol=0.0)
        ref = jax.tree.map(np.asarray, res64.params)
        ref_w = np.asarray(vbgmm.expected_weights(res64.params))
    p = res32.params
    np.testing.assert_allclose(np.asarray(p.means, np.float64) - 1e4, ref.means - 1e4,
                               atol=3e-3)
    np.testing.assert_allclose(p.covariances, ref.covariances, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(vbgmm.expected_weights(p), ref_w, rtol=1e-3, atol=1e-6)


@pytest.mark.slow   # op-by-op dispatch of the digamma/gammaln terms: ~6 s
def test_prediction_jit_and_no_jit_agree(data):
    res = vbgmm.fit(jax.random.key(0), data.astype(np.float32), K, init="random",
                    max_iter=T, tol=0.0)
    Xn = data[:20].astype(np.float32)
    jitted = (vbgmm.predict_proba(res.params, Xn), vbgmm.score_samples(res.params, Xn))
    with jax.disable_jit():
        eager = (vbgmm.predict_proba(res.params, Xn), vbgmm.score_samples(res.params, Xn))
    for a, b in zip(jitted, eager, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)   # float32, fusion order
