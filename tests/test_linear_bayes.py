"""Bayesian linear regression: closed forms, scipy.stats, scikit-learn BayesianRidge,
Monte-Carlo bounds and Bishop's evidence-vs-order experiment (PRML Fig. 3.14)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.linear_model import BayesianRidge

from espresso_jax import datasets
from espresso_jax.linear import basis, bayes, regression

# Random designs here have cond(Phi) ~ 3 and the posterior precision is well conditioned:
# float32 results agree with float64 references to a few hundred eps.
RTOL = {"float32": 1e-4, "float64": 1e-10}
ALPHA, BETA = 0.7, 3.0


def _data(n=30, d=4, seed=0, noise=0.5):
    rng = np.random.default_rng(seed)
    Phi = rng.standard_normal((n, d))
    t = Phi @ rng.standard_normal(d) + noise * rng.standard_normal(n)
    return Phi, t


def _closed_form(Phi, t, m0, S0, beta):
    """PRML eqs. 3.50-3.51 with explicit inverses, in float64 NumPy."""
    S0inv = np.linalg.inv(S0)
    SN = np.linalg.inv(S0inv + beta * Phi.T @ Phi)
    return SN @ (S0inv @ m0 + beta * Phi.T @ t), SN


# --------------------------------------------------------------------------- posterior

def test_posterior_isotropic_closed_form(both_precisions):
    Phi, t = _data()
    post = bayes.posterior(Phi, t, alpha=ALPHA, beta=BETA)
    m, S = _closed_form(Phi, t, np.zeros(4), np.eye(4) / ALPHA, BETA)
    assert post.mean.dtype == np.dtype(both_precisions)
    np.testing.assert_allclose(post.mean, m, rtol=RTOL[both_precisions])
    np.testing.assert_allclose(post.cov, S, rtol=RTOL[both_precisions], atol=1e-7)
    np.testing.assert_array_equal(post.cov, post.cov.T)


def test_posterior_general_closed_form_and_special_case(both_precisions):
    Phi, t = _data()
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 4))
    S0, m0 = A @ A.T + 0.5 * np.eye(4), rng.standard_normal(4)
    post = bayes.posterior_general(Phi, t, prior_mean=m0, prior_cov=S0, beta=BETA)
    m, S = _closed_form(Phi, t, m0, S0, BETA)
    np.testing.assert_allclose(post.mean, m, rtol=RTOL[both_precisions])
    np.testing.assert_allclose(post.cov, S, rtol=RTOL[both_precisions], atol=1e-6)
    iso = bayes.posterior_general(Phi, t, prior_mean=np.zeros(4), prior_cov=np.eye(4) / ALPHA,
                                  beta=BETA)
    ref = bayes.posterior(Phi, t, alpha=ALPHA, beta=BETA)
    np.testing.assert_allclose(iso.mean, ref.mean, rtol=RTOL[both_precisions])


def test_sequential_updates_equal_batch(x64):
    """PRML §3.3.1: the posterior after batch 1 is the prior for batch 2. (Two batches of 30
    rows: the shapes of the closed-form tests above, whose programs are reused.)"""
    Phi, t = _data(n=60)
    first = bayes.posterior(Phi[:30], t[:30], alpha=ALPHA, beta=BETA)
    both = bayes.posterior_general(Phi[30:], t[30:], prior_mean=first.mean,
                                   prior_cov=first.cov, beta=BETA)
    batch = bayes.posterior(Phi, t, alpha=ALPHA, beta=BETA)
    np.testing.assert_allclose(both.mean, batch.mean, rtol=1e-10)
    np.testing.assert_allclose(both.cov, batch.cov, rtol=1e-9, atol=1e-14)


# --------------------------------------------------------------------------- predictive

def test_predictive_decomposition(both_precisions):
    Phi, t = _data()
    Phi_new = _data(n=6, seed=3)[0]
    post = bayes.posterior(Phi, t, alpha=ALPHA, beta=BETA)
    pred = bayes.predict(post, Phi_new, beta=BETA)
    m, S = _closed_form(Phi, t, np.zeros(4), np.eye(4) / ALPHA, BETA)
    rtol = RTOL[both_precisions]
    np.testing.assert_allclose(pred.mean, Phi_new @ m, rtol=rtol, atol=1e-6)
    # PRML 3.59: sigma_N^2 = 1/beta + phi^T S_N phi.
    np.testing.assert_allclose(pred.noise_var, np.full(6, 1 / BETA), rtol=rtol)
    np.testing.assert_allclose(pred.model_var, np.einsum("nd,de,ne->n", Phi_new, S, Phi_new),
                               rtol=rtol)
    np.testing.assert_allclose(pred.var, pred.noise_var + pred.model_var, rtol=1e-6)
    assert np.all(np.asarray(pred.model_var) >= 0)


def test_predictive_model_variance_shrinks_with_data(x64):
    """sigma_{N+1}^2(x) <= sigma_N^2(x) (PRML §3.3.2, Qazaz et al. 1997); the noise part stays
    at 1/beta, and the model part tends to 0 as N grows. (N = 30 is the closed-form tests'
    shape: that posterior program is reused.)"""
    Phi, t = _data(n=400)
    Phi_new = _data(n=5, seed=4)[0]
    model = [bayes.predict(bayes.posterior(Phi[:n], t[:n], alpha=ALPHA, beta=BETA), Phi_new,
                           beta=BETA).model_var for n in (3, 30, 400)]
    assert np.all(np.diff(np.stack(model), axis=0) <= 1e-15)
    assert float(jnp.max(model[-1])) < 0.05 * float(jnp.max(model[0]))


def test_predict_from_evidence_fit_and_least_squares(x64):
    # shapes and max_iter of test_fit_evidence_is_a_stationary_point: the same compiled loop
    Phi, t = _data(n=60, d=6)
    fit = bayes.fit_evidence(Phi, t, max_iter=1000)
    pred = bayes.predict(fit.params, Phi[:3])
    np.testing.assert_allclose(pred.noise_var, 1 / float(fit.params.beta), rtol=1e-12)
    ls = regression.fit_least_squares(Phi, t)
    pls = bayes.predict(ls.params, Phi[:3])
    np.testing.assert_array_equal(pls.model_var, 0.0)
    np.testing.assert_allclose(pls.mean, regression.predict(ls.params, Phi[:3]), rtol=1e-12)
    np.testing.assert_allclose(pls.var, 1 / float(ls.params.beta), rtol=1e-12)


def test_sample_functions_monte_carlo():
    """Sample mean and covariance of f = Phi_new w within 6 standard errors of N(Phi m, Phi S
    Phi^T). SE(mean_i) = sqrt(C_ii / n); SE(cov_ij) = sqrt((C_ij^2 + C_ii C_jj) / n) (Wishart).
    The bounds are in standard errors of the draws, whatever the posterior; the 30-row design
    is the closed-form tests' (the posterior program is reused)."""
    Phi, t = _data()
    Phi_new = _data(n=5, seed=5)[0]
    post = bayes.posterior(Phi, t, alpha=ALPHA, beta=BETA)
    n = 20_000
    f = np.asarray(bayes.sample_functions(jax.random.key(0), post, Phi_new, n), np.float64)
    assert f.shape == (n, 5)
    mu = Phi_new @ np.asarray(post.mean, np.float64)
    C = Phi_new @ np.asarray(post.cov, np.float64) @ Phi_new.T
    se_mean = np.sqrt(np.diag(C) / n)
    assert np.all(np.abs(f.mean(0) - mu) < 6 * se_mean)
    se_cov = np.sqrt((C**2 + np.outer(np.diag(C), np.diag(C))) / n)
    assert np.all(np.abs(np.cov(f.T) - C) < 6 * se_cov)


# --------------------------------------------------------------------------- evidence

def _scipy_log_evidence(Phi, t, alpha, beta):
    """ln N(t | 0, I/beta + Phi Phi^T / alpha): the evidence without any of our algebra."""
    cov = np.eye(len(t)) / beta + Phi @ Phi.T / alpha
    return multivariate_normal(mean=np.zeros(len(t)), cov=cov).logpdf(t)


@pytest.mark.parametrize("shape", ["n_ge_d", "n_lt_d"])
def test_log_evidence_matches_scipy_grid(both_precisions, shape):
    Phi, t = _data() if shape == "n_ge_d" else _data(n=5, d=8)
    alphas = np.array([0.05, 0.7, 4.0])[:, None]
    betas = np.array([0.3, 1.0, 3.0, 20.0])[None, :]
    got = bayes.log_evidence(Phi, t, alphas, betas)
    assert got.shape == (3, 4)
    ref = np.vectorize(lambda a, b: _scipy_log_evidence(Phi, t, a, b))(alphas, betas)
    # float32: log evidence ~ -50 from terms ~ 1e2-1e3 (beta * sse); 1e-4 relative.
    np.testing.assert_allclose(got, ref, rtol=RTOL[both_precisions])
    scalar = bayes.log_evidence(Phi, t, 0.7, 3.0)
    assert scalar.shape == ()
    np.testing.assert_allclose(scalar, ref[1, 2], rtol=RTOL[both_precisions])


@pytest.mark.parametrize("name", ["concrete", "bostonHousing", "faithful"])
def test_fit_evidence_matches_sklearn_bayesian_ridge(x64, name):
    """Real data: alpha, beta, m_N, S_N from sklearn's BayesianRidge (its alpha_ is our beta,
    its lambda_ our alpha) with the same Gamma(1e-6, 1e-6) hyperpriors and start point."""
    if name == "faithful":
        data = datasets.load_faithful()
        X, y = np.vander(data[:, 0], 2, increasing=True), data[:, 1]
    else:
        try:
            split = datasets.standardized_split(datasets.load_uci(name), 0)
        except FileNotFoundError as err:
            pytest.skip(f"UCI data not available: {err}")
        X, y = split.X_train, split.y_train
    br = BayesianRidge(fit_intercept=False, tol=1e-12, max_iter=10_000,
                       compute_score=True).fit(X, y)
    fit = bayes.fit_evidence(X, y, tol=1e-12, max_iter=10_000)
    assert bool(fit.converged)
    # Brief asks 1e-4 relative; the two implementations agree to ~1e-12 at the fixed point.
    np.testing.assert_allclose(fit.params.beta, br.alpha_, rtol=1e-8)
    np.testing.assert_allclose(fit.params.alpha, br.lambda_, rtol=1e-8)
    np.testing.assert_allclose(fit.params.mean, br.coef_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(fit.params.cov, br.sigma_, rtol=1e-8, atol=1e-14)
    # sklearn's score adds the log hyperprior densities (unnormalised) to eq. 3.86.
    hyper = 1e-6 * (np.log(br.lambda_) - br.lambda_ + np.log(br.alpha_) - br.alpha_)
    np.testing.assert_allclose(fit.log_evidence, br.scores_[-1] - hyper, rtol=1e-10)


def test_fit_evidence_is_a_stationary_point(x64):
    """With no hyperprior the fixed point satisfies PRML 3.92 and 3.95, and the evidence there
    beats a brute-force grid of (alpha, beta) around it; log_evidence agrees with the fit."""
    Phi, t = _data(n=60, d=6)
    fit = bayes.fit_evidence(Phi, t, tol=1e-13, max_iter=1000, alpha_shape=0.0,
                             alpha_rate=0.0, beta_shape=0.0, beta_rate=0.0)
    lam = np.linalg.eigvalsh(float(fit.params.beta) * Phi.T @ Phi)
    gamma = np.sum(lam / (float(fit.params.alpha) + lam))
    m = np.asarray(fit.params.mean)
    np.testing.assert_allclose(fit.gamma, gamma, rtol=1e-10)
    np.testing.assert_allclose(fit.params.alpha, gamma / (m @ m), rtol=1e-10)
    np.testing.assert_allclose(1 / fit.params.beta, np.sum((t - Phi @ m) ** 2) / (60 - gamma),
                               rtol=1e-10)
    grid = np.exp(np.linspace(-0.3, 0.3, 13))
    ev = bayes.log_evidence(Phi, t, float(fit.params.alpha) * grid[:, None],
                            float(fit.params.beta) * grid[None, :])
    assert float(jnp.max(ev)) <= float(fit.log_evidence) + 1e-9
    np.testing.assert_allclose(ev[6, 6], fit.log_evidence, rtol=1e-12)
    np.testing.assert_allclose(fit.log_evidence,
                               _scipy_log_evidence(Phi, t, float(fit.params.alpha),
                                                   float(fit.params.beta)),
                               rtol=1e-10)


def test_fit_evidence_float32_accuracy_at_high_snr():
    """The residual is never formed as ||t||^2 - 2 m^T Phi^T t + m^T Phi^T Phi m (which
    cancels: here ||t||^2 ~ 1e5 and sse ~ 2e-2, below float32 resolution of ||t||^2), so
    float32 alpha and beta match float64 closely. Measured ~1e-6 (alpha), ~2e-5 (beta); the
    bound 1e-3 leaves room for other BLAS builds."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 10))
    t = X @ rng.standard_normal(10) + 1e-3 * rng.standard_normal(20_000)
    f32 = bayes.fit_evidence(X.astype(np.float32), t.astype(np.float32))
    with jax.enable_x64(True):
        f64 = bayes.fit_evidence(X, t, tol=1e-12)
    assert f32.params.beta.dtype == np.float32 and bool(f32.converged)
    np.testing.assert_allclose(f32.params.beta, f64.params.beta, rtol=1e-3)
    np.testing.assert_allclose(f32.params.alpha, f64.params.alpha, rtol=1e-3)
    np.testing.assert_allclose(f32.params.mean, f64.params.mean, rtol=1e-4, atol=1e-5)


def test_fit_evidence_jit_nojit_recompile_and_max_iter():
    # The closed-form tests' design: the eager run shares their shapes' primitives.
    Phi, t = _data()
    fit = bayes.fit_evidence(Phi, t)
    size = bayes._fit_evidence_impl._cache_size()
    bayes.fit_evidence(Phi, t + 1.0, tol=1e-4, alpha0=3.0, beta0=2.0, alpha_shape=1.0)
    assert bayes._fit_evidence_impl._cache_size() == size    # config values are traced
    # max_iter is static (it sets the length of history)
    assert bayes.fit_evidence(Phi, t, max_iter=7).history.shape == (7,)
    with jax.disable_jit():
        eager = bayes.fit_evidence(Phi, t)
    np.testing.assert_allclose(eager.params.alpha, fit.params.alpha, rtol=1e-4)
    np.testing.assert_allclose(eager.params.beta, fit.params.beta, rtol=1e-4)
    one = bayes.fit_evidence(Phi, t, max_iter=1)
    assert int(one.n_iter) == 1 and not bool(one.converged)
    assert int(fit.n_iter) < 300 and bool(fit.converged)


# Jitted sides as in the closed-form and grid tests (same shapes: compiled programs reused).
@pytest.mark.parametrize("fn", [
    lambda P, t: bayes.posterior(P, t, alpha=ALPHA, beta=BETA),
    lambda P, t: bayes.log_evidence(P, t, np.array([0.05, 0.7, 4.0])[:, None],
                                    np.array([0.3, 1.0, 3.0, 20.0])[None, :]),
])
def test_jit_and_nojit_agree(fn):
    Phi, t = _data()
    jitted = fn(Phi, t)
    with jax.disable_jit():
        eager = fn(Phi, t)
    # float32, same algorithm: differences are XLA fusion/reordering roundings.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 jitted, eager)


def test_log_evidence_vmaps_over_data():
    """Public functions compose with vmap (validation checks rank/dtype of tracers only)."""
    Phis = np.stack([_data(seed=s)[0] for s in range(3)])
    ts = np.stack([_data(seed=s)[1] for s in range(3)])
    batched = jax.vmap(lambda P, t: bayes.log_evidence(P, t, ALPHA, BETA))(Phis, ts)
    single = [float(bayes.log_evidence(P, t, ALPHA, BETA)) for P, t in zip(Phis, ts, strict=True)]
    np.testing.assert_allclose(batched, single, rtol=1e-5)


# --------------------------------------------------------------------------- PRML Fig. 3.14

BOOK = dict(alpha=5e-3, beta=11.1)   # PRML §3.5.1: alpha = 5e-3, beta = 1 / 0.3^2
ORDERS = list(range(10))


def test_evidence_by_order_matches_direct_evidence(x64):
    x, t = datasets.sinusoidal(jax.random.key(0), 10, noise_std=0.3)
    res = bayes.evidence_by_order(x, t, ORDERS, **BOOK)
    for m in (2, 9):
        Phi = np.vander(np.asarray(x), m + 1, increasing=True)
        np.testing.assert_allclose(res.log_evidence[m],
                                   _scipy_log_evidence(Phi, np.asarray(t), **BOOK), rtol=1e-8)
        ls = regression.fit_least_squares(basis.polynomial(x, m), t)
        np.testing.assert_allclose(res.rms_ml[m], np.sqrt(float(ls.rss) / 10), rtol=1e-6,
                                   atol=1e-7)
        post = bayes.posterior(basis.polynomial(x, m), t, **BOOK)
        resid = np.asarray(t) - Phi @ np.asarray(post.mean)
        np.testing.assert_allclose(res.rms_map[m], np.sqrt(np.mean(resid**2)), rtol=1e-8)


def test_evidence_peaks_at_low_order_book_key():
    """PRML Fig. 3.14 with the book's alpha, beta: key 7 (float32) peaks at M = 3, while the
    least-squares training error keeps falling and reaches ~0 at M = 9 (10 points)."""
    x, t = datasets.sinusoidal(jax.random.key(7), 10, noise_std=0.3)
    res = bayes.evidence_by_order(x, t, ORDERS, **BOOK)
    assert int(jnp.argmax(res.log_evidence)) == 3
    assert np.all(np.diff(np.asarray(res.rms_ml)) <= 0)
    assert float(res.rms_ml[9]) < 1e-3
    assert float(res.log_evidence[3]) > float(res.log_evidence[9]) + 1.0


@pytest.mark.parametrize("evenly_spaced, min_count", [(False, 11), (True, 15)])
def test_evidence_peak_is_robust_over_keys(both_precisions, evenly_spaced, min_count):
    """Over 20 keys the evidence argmax is <= 4 in a clear majority. Measured over 200 keys:
    P(argmax <= 4) ~ 0.70 with uniform random x, ~ 0.90 with evenly spaced x (PRML Fig. 1.2's
    design). Bounds: Binomial(20, p) falls below 11 (p = 0.7) or 15 (p = 0.9) with prob. ~5%
    / ~1%; these 20 fixed keys give 13 / 18 (float32) and 16 / 16 (float64)."""
    data = [datasets.sinusoidal(jax.random.key(s), 10, noise_std=0.3,
                                evenly_spaced=evenly_spaced) for s in range(20)]
    xs, ts = jnp.stack([d[0] for d in data]), jnp.stack([d[1] for d in data])
    res = jax.vmap(lambda x, t: bayes.evidence_by_order(x, t, ORDERS, **BOOK))(xs, ts)
    best = np.asarray(jnp.argmax(res.log_evidence, axis=1))
    assert np.sum(best <= 4) >= min_count, best
    assert np.all(np.diff(np.asarray(res.rms_ml), axis=1) <= 0)    # non-increasing in M


# --------------------------------------------------------------------------- bad input

def _post():
    Phi, t = _data()
    return bayes.posterior(Phi, t, alpha=ALPHA, beta=BETA)


@pytest.mark.parametrize("call, err, match", [
    (lambda P, t: bayes.posterior(P, t, alpha=0.0, beta=1.0), ValueError, "alpha must be > 0"),
    (lambda P, t: bayes.posterior(P, t, alpha=1.0, beta=-1.0), ValueError, "beta must be > 0"),
    (lambda P, t: bayes.posterior(P, t, alpha=np.nan, beta=1.0), ValueError, "alpha contains"),
    (lambda P, t: bayes.posterior(P, t, alpha=[1.0, 2.0], beta=1.0), ValueError, "alpha must"),
    (lambda P, t: bayes.posterior(P, t[:-1], alpha=1.0, beta=1.0), ValueError, "same number"),
    (lambda P, t: bayes.posterior(P, t[:, None], alpha=1.0, beta=1.0), ValueError,
     "^y must be 1-D"),
    (lambda P, t: bayes.posterior(np.where(P > 1, np.nan, P), t, alpha=1.0, beta=1.0),
     ValueError, "^X contains NaN"),
    (lambda P, t: bayes.posterior(P, t.astype(str), alpha=1.0, beta=1.0), TypeError,
     "^y must have"),
    (lambda P, t: bayes.posterior_general(P, t, prior_mean=np.zeros(3), prior_cov=np.eye(4),
                                          beta=1.0), ValueError, "prior_mean must have shape"),
    (lambda P, t: bayes.posterior_general(P, t, prior_mean=np.zeros(4), prior_cov=-np.eye(4),
                                          beta=1.0), ValueError, "positive definite"),
    (lambda P, t: bayes.posterior_general(P, t, prior_mean=np.zeros(4),
                                          prior_cov=np.triu(np.ones((4, 4))), beta=1.0),
     ValueError, "symmetric"),
    (lambda P, t: bayes.predict(_post(), P), ValueError, "beta is required"),
    (lambda P, t: bayes.predict(_post(), P[:, :2], beta=1.0), ValueError,
     "^X_new has 2 columns but the fitted model has 4"),
    (lambda P, t: bayes.predict((P, t), P, beta=1.0), TypeError, "params must be"),
    (lambda P, t: bayes.sample_functions(0, _post(), P, 3), TypeError, "key must be"),
    (lambda P, t: bayes.sample_functions(jax.random.key(0), _post(), P, 0), ValueError,
     "n_samples"),
    (lambda P, t: bayes.log_evidence(P, t, np.ones(2), np.ones(3)), ValueError,
     "do not broadcast"),
    (lambda P, t: bayes.log_evidence(P, t, np.array([1.0, 0.0]), 1.0), ValueError, "alpha"),
    (lambda P, t: bayes.fit_evidence(P, t, max_iter=0), ValueError, "max_iter"),
    (lambda P, t: bayes.fit_evidence(P, t, tol=-1.0), ValueError, "tol"),
    (lambda P, t: bayes.fit_evidence(P, t, alpha_rate=-1.0), ValueError, "alpha_rate"),
    (lambda P, t: bayes.fit_evidence(P, np.ones_like(t)), ValueError, "^y is constant"),
    (lambda P, t: bayes.evidence_by_order(P[:, 0], t, [1.5], alpha=1.0, beta=1.0), TypeError,
     "orders"),
    (lambda P, t: bayes.evidence_by_order(P[:, 0], t, [-1, 2], alpha=1.0, beta=1.0),
     ValueError, "orders"),
    (lambda P, t: bayes.evidence_by_order(P, t, [1], alpha=1.0, beta=1.0), ValueError,
     "x must be 1-D"),
])
def test_bad_input(call, err, match):
    Phi, t = _data()
    with pytest.raises(err, match=match):
        call(Phi, t)
