"""ML estimates of espresso_jax.prob.estimate against numpy closed forms and scipy.stats."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from espresso_jax.interop import standard_promotion
from espresso_jax.prob import estimate as E

RNG = np.random.default_rng(0)
N = 40
X_BIN = RNG.integers(0, 2, size=(N, 3))
K_BIN = RNG.integers(0, 6, size=N)  # binomial successes out of 5
LABELS = RNG.integers(0, 4, size=N)
COUNTS = RNG.multinomial(7, [0.1, 0.2, 0.3, 0.4], size=N)
X_GAUSS = RNG.normal(2.0, 3.0, size=(N, 2))
X_MV = RNG.normal(size=(N, 3)) @ np.array([[2.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.1, -0.3, 0.7]])
WEIGHTS = RNG.integers(0, 4, size=N)  # integer frequency weights, some zero


def _params(d):
    """The fitted parameters of a numpyro distribution, as float64 numpy arrays."""
    names = {"BernoulliProbs": ["probs"], "BinomialProbs": ["probs"],
             "CategoricalProbs": ["probs"], "MultinomialProbs": ["probs"],
             "Normal": ["loc", "scale"], "MultivariateNormal": ["loc", "covariance_matrix"]}
    return [np.asarray(getattr(d, n), dtype=np.float64) for n in names[type(d).__name__]]


# (name, fit(data, weights), data) for every estimator
FITS = [
    ("bernoulli", lambda x, w: E.bernoulli(x, w), X_BIN),
    ("binomial", lambda x, w: E.binomial(x, 5, w), K_BIN),
    ("categorical", lambda x, w: E.categorical(x, 4, w), LABELS),
    ("multinomial", lambda x, w: E.multinomial(x, w), COUNTS),
    ("gaussian", lambda x, w: E.gaussian(x, w), X_GAUSS),
    ("gaussian_unbiased", lambda x, w: E.gaussian(x, w, unbiased=True), X_GAUSS),
    ("mv_gaussian", lambda x, w: E.multivariate_gaussian(x, w), X_MV),
    ("mv_gaussian_unbiased", lambda x, w: E.multivariate_gaussian(x, w, unbiased=True), X_MV),
]


def _numpy_reference(name, x):
    """Closed-form ML estimates computed with numpy in float64."""
    if name == "bernoulli":
        return [x.mean(0)]
    if name == "binomial":
        return [x.mean() / 5]
    if name == "categorical":
        return [np.bincount(x, minlength=4) / len(x)]
    if name == "multinomial":
        return [x.sum(0) / x.sum()]
    if name.startswith("gaussian"):
        ddof = 1 if name.endswith("unbiased") else 0
        return [x.mean(0), x.std(0, ddof=ddof)]
    ddof = 1 if name.endswith("unbiased") else 0
    return [x.mean(0), np.cov(x.T, ddof=ddof)]


@pytest.mark.parametrize("name,fit,data", FITS, ids=[f[0] for f in FITS])
def test_ml_matches_numpy(both_precisions, name, fit, data):
    # float64: rounding only (1e-10); float32: ~40 sums of O(1) terms, 1e-5 relative.
    tol = 1e-10 if both_precisions == "float64" else 1e-5
    got = _params(fit(data, None))
    for g, r in zip(got, _numpy_reference(name, data), strict=True):
        np.testing.assert_allclose(g, r, rtol=tol, atol=tol)
    assert np.asarray(fit(data, None).mean).dtype == np.dtype(both_precisions)


@pytest.mark.parametrize("name,fit,data", FITS, ids=[f[0] for f in FITS])
def test_integer_weights_equal_repeated_rows(x64, name, fit, data):
    # Frequency-weight semantics: exact up to float64 rounding.
    weighted = _params(fit(data, WEIGHTS))
    repeated = _params(fit(np.repeat(data, WEIGHTS, axis=0), None))
    for g, r in zip(weighted, repeated, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)


@jax.jit
def _log_prob(d, x):  # one compile per distribution type instead of one per eager op
    return d.log_prob(x)


def test_log_densities_match_scipy(x64):
    # Our fitted numpyro distributions evaluated against scipy.stats with the same parameters:
    # float64, 1e-6 relative (both are exact formulas; differences are rounding).
    b = E.bernoulli(X_BIN[:, 0])
    p = float(b.probs)
    bn = E.binomial(K_BIN, 5)
    c = E.categorical(LABELS, 4)
    m = E.multinomial(COUNTS)
    g = E.gaussian(X_GAUSS[:, 0])
    mv = E.multivariate_gaussian(X_MV)
    with standard_promotion():
        pairs = [
            (_log_prob(b, jnp.asarray(X_BIN[:, 0], dtype=jnp.float64)),
             st.bernoulli.logpmf(X_BIN[:, 0], p)),
            (_log_prob(bn, jnp.asarray(K_BIN, dtype=jnp.float64)),
             st.binom.logpmf(K_BIN, 5, float(bn.probs))),
            (_log_prob(c, jnp.asarray(LABELS)), np.log(np.asarray(c.probs))[LABELS]),
            (_log_prob(m, jnp.asarray(COUNTS, dtype=jnp.float64)),
             st.multinomial.logpmf(COUNTS, 7, np.asarray(m.probs))),
            (_log_prob(g, jnp.asarray(X_GAUSS[:, 0])),
             st.norm.logpdf(X_GAUSS[:, 0], float(g.loc), float(g.scale))),
            (_log_prob(mv, jnp.asarray(X_MV)),
             st.multivariate_normal.logpdf(X_MV, np.asarray(mv.loc),
                                           np.asarray(mv.covariance_matrix))),
        ]
    for got, ref in pairs:
        np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-6)


def test_covariance_far_from_origin_float32():
    # Data offset by 1e4 in float32 (ulp(1e4) ~ 1e-3): the reference is the float64 covariance
    # of the SAME float32 numbers, so only the algorithm's rounding is measured. The centred
    # two-pass result must stay positive definite and within 1e-4 relative (Frobenius).
    rng = np.random.default_rng(1)
    A = np.array([[1.0, 0.0, 0.0], [0.9, 0.3, 0.0], [0.2, 0.1, 0.5]])
    X32 = (rng.normal(size=(5000, 3)) @ A.T + 1e4).astype(np.float32)
    ref = np.cov(X32.astype(np.float64).T, bias=True)
    fit = E.multivariate_gaussian(X32)
    cov = np.asarray(fit.covariance_matrix)
    assert cov.dtype == np.float32
    assert np.all(np.linalg.eigvalsh(cov.astype(np.float64)) > 0)
    assert np.all(np.isfinite(np.asarray(fit.scale_tril)))
    rel = np.linalg.norm(cov - ref) / np.linalg.norm(ref)
    assert rel < 1e-4, rel  # measured 3.8e-6
    # The one-pass formula E[xx^T] - mu mu^T in float32 is useless here (shows the test bites).
    Xj = jnp.asarray(X32)
    mu = Xj.mean(0)
    naive = np.asarray((Xj.T @ Xj) / Xj.shape[0] - jnp.outer(mu, mu))
    assert np.linalg.norm(naive - ref) / np.linalg.norm(ref) > 0.1
    # univariate path too
    g = E.gaussian(X32[:, 0])
    np.testing.assert_allclose(float(g.scale) ** 2, ref[0, 0], rtol=1e-3)


def test_stats_shapes_and_values(x64):
    s = E.multivariate_gaussian_stats(X_MV, WEIGHTS)
    assert s.mean.shape == (3,) and s.scatter.shape == (3, 3) and s.n.shape == ()
    Xr = np.repeat(X_MV, WEIGHTS, axis=0)
    np.testing.assert_allclose(np.asarray(s.scatter), np.cov(Xr.T, bias=True) * len(Xr),
                               rtol=1e-10)
    b = E.bernoulli_stats(X_BIN)
    np.testing.assert_array_equal(np.asarray(b.successes), X_BIN.sum(0))
    np.testing.assert_array_equal(np.asarray(b.failures), N - X_BIN.sum(0))
    k = E.binomial_stats(K_BIN, np.full(N, 5))
    assert float(k.successes) == K_BIN.sum() and float(k.failures) == 5 * N - K_BIN.sum()


def test_jit_matches_no_jit_and_no_recompile():
    first = E.multivariate_gaussian_stats(X_MV)
    size = E._mv_gaussian_impl._cache_size()
    second = E.multivariate_gaussian_stats(X_MV + 1.0)
    assert E._mv_gaussian_impl._cache_size() == size  # same shapes: no new trace
    with jax.disable_jit():
        eager = E.multivariate_gaussian_stats(X_MV)
    for a, b in zip(first, eager, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(second.mean), np.asarray(first.mean) + 1.0, rtol=1e-5)


def test_traced_input_composes_with_vmap():
    # Public functions accept tracers (validation checks rank/dtype only).
    xs = jnp.asarray(np.stack([X_GAUSS[:, 0], X_GAUSS[:, 1]]), dtype=jnp.float32)
    means = jax.vmap(lambda x: E.gaussian_stats(x).mean)(xs)
    np.testing.assert_allclose(np.asarray(means), X_GAUSS.mean(0), rtol=1e-5)


BAD = [
    (lambda: E.bernoulli([0.0, np.nan]), ValueError, "x"),
    (lambda: E.bernoulli([0, 2, 1]), ValueError, "x must be <= 1"),
    (lambda: E.bernoulli(np.zeros((2, 2, 2))), ValueError, "x must be 1-D or 2-D"),
    (lambda: E.binomial([1, 6], 5), ValueError, "k must be <= total_count"),
    (lambda: E.binomial([-1, 2], 5), ValueError, "k must be >= 0"),
    (lambda: E.binomial([1, 2], 0), ValueError, "total_count"),
    (lambda: E.categorical([0, 4], 4), ValueError, "labels must be <= 3"),
    (lambda: E.categorical([0, 1.5], 4), TypeError, "labels"),
    (lambda: E.categorical([[0, 1]], 4), ValueError, "labels must be 1-D"),
    (lambda: E.categorical([0, 1], 0), ValueError, "n_categories"),
    (lambda: E.multinomial([[1, -1], [0, 2]]), ValueError, "counts must be >= 0"),
    (lambda: E.multinomial([[1, 2], [0, 2]]), ValueError, "total_count"),
    (lambda: E.multinomial([1, 2]), ValueError, "counts must be 2-D"),
    (lambda: E.gaussian([1.0, np.inf]), ValueError, "x contains inf"),
    (lambda: E.gaussian([1.0, 1.0]), ValueError, "zero variance"),
    (lambda: E.gaussian([1.0, 2.0], unbiased=True, sample_weight=[1.0, 0.0]), ValueError,
     "unbiased"),
    (lambda: E.gaussian(["a", "b"]), TypeError, "x"),
    (lambda: E.gaussian([1.0, 2.0], [1.0, -1.0]), ValueError, "sample_weight must be non-neg"),
    (lambda: E.gaussian([1.0, 2.0], [0.0, 0.0]), ValueError, "sample_weight must have a pos"),
    (lambda: E.gaussian([1.0, 2.0], [1.0, 1.0, 1.0]), ValueError, "sample_weight must have one"),
    (lambda: E.gaussian([1.0, 2.0], [1.0, np.nan]), ValueError, "sample_weight contains NaN"),
    (lambda: E.multivariate_gaussian(np.ones(3)), ValueError, "X must be 2-D"),
    (lambda: E.multivariate_gaussian(X_MV[:2]), ValueError, "reg_covar"),
    (lambda: E.multivariate_gaussian(X_MV, reg_covar=-1.0), ValueError, "reg_covar"),
]


@pytest.mark.parametrize("call,exc,match", BAD, ids=[b[2] for b in BAD])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_reg_covar_rescues_singular():
    fit = E.multivariate_gaussian(X_MV[:2], reg_covar=1e-3)
    assert np.all(np.isfinite(np.asarray(fit.scale_tril)))
