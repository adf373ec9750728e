"""Conjugate posteriors of espresso_jax.prob.conjugate against brute-force grid posteriors,
scipy.stats log-densities, Murphy's (2007) closed-form NIW evidence and Monte-Carlo moments."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats as st
from scipy.special import multigammaln

from espresso_jax.interop import standard_promotion
from espresso_jax.prob import conjugate as C
from espresso_jax.prob import estimate as E
from espresso_jax.prob.conjugate import beta_dirichlet, multivariate_gaussian

RNG = np.random.default_rng(42)
X_BERN = RNG.integers(0, 2, size=12)
K_BINOM, N_BINOM = np.array([3, 5, 1, 4]), np.array([6, 6, 4, 5])
LABELS = RNG.integers(0, 3, size=15)
COUNTS = RNG.multinomial(4, [0.2, 0.5, 0.3], size=5)
X_NORM = RNG.normal(1.0, 1.2, size=10)
X_MV = RNG.normal(size=(6, 2)) @ np.array([[1.0, 0.0], [0.4, 0.8]]) + np.array([0.3, -0.5])
N_MC = 20_000  # Monte-Carlo sample size shared by the tests (one sampler compile)
W_POS = RNG.uniform(0.5, 2.0, size=10)  # strictly positive weights (single-point updates)

NG_PRIOR = dict(mu=0.5, kappa=2.0, a=3.0, b=2.0)
NIW_PRIOR = dict(mu=[0.5, -0.2], kappa=1.5, nu=5.0, psi=[[2.0, 0.3], [0.3, 1.0]])


def _ng(dtype=None):
    return C.NormalGamma(*(jnp.asarray(v, dtype=dtype) for v in NG_PRIOR.values()))


def _niw(dtype=None):
    return C.NormalInverseWishart(*(jnp.asarray(v, dtype=dtype) for v in NIW_PRIOR.values()))


@jax.jit
def _log_prob(d, x):  # one compile per distribution type instead of one per eager op
    return d.log_prob(x)


def _lp(d, x):
    with standard_promotion():
        return np.asarray(_log_prob(d, jnp.asarray(x)), dtype=np.float64)


def _grid_check(log_unnorm, grid, cell, post_logpdf, mean, var, rtol):
    """Normalise prior x likelihood on a midpoint grid; compare moments and density."""
    lw = log_unnorm - log_unnorm.max()
    dens = np.exp(lw)
    z = dens.sum() * cell
    dens = dens / z
    grid_mean = (grid * dens).sum() * cell
    grid_var = ((grid - grid_mean) ** 2 * dens).sum() * cell
    np.testing.assert_allclose(grid_mean, mean, rtol=rtol)
    np.testing.assert_allclose(grid_var, var, rtol=rtol)
    # density at the grid's 10%, 30%, ..., 90% quantiles (inside the posterior mass)
    idx = np.searchsorted(np.cumsum(dens) * cell, [0.1, 0.3, 0.5, 0.7, 0.9])
    np.testing.assert_allclose(np.log(dens[idx]), post_logpdf(grid[idx]), rtol=rtol, atol=rtol)


# --------------------------------------------------------------------------- grid checks
# 1-D grids: midpoint rule with 2e5 cells on a smooth density vanishing at the ends (measured
# errors ~1e-14); 1e-6 relative.


def test_beta_bernoulli_grid(x64):
    prior = dist.Beta(2.0, 3.0)
    post = C.beta_bernoulli(prior, X_BERN)
    h = 1.0 / 200_000
    p = (np.arange(200_000) + 0.5) * h
    s = X_BERN.sum()
    logu = st.beta.logpdf(p, 2.0, 3.0) + s * np.log(p) + (len(X_BERN) - s) * np.log1p(-p)
    _grid_check(logu, p, h, lambda v: _lp(post, v), float(post.mean), float(post.variance), 1e-6)


def test_beta_binomial_grid(x64):
    prior = dist.Beta(1.5, 1.5)
    w = np.array([1.0, 2.0, 0.5, 1.0])
    post = C.beta_binomial(prior, K_BINOM, N_BINOM, sample_weight=w)
    h = 1.0 / 200_000
    p = (np.arange(200_000) + 0.5) * h
    loglik = sum(wi * st.binom.logpmf(k, n, p)
                 for wi, k, n in zip(w, K_BINOM, N_BINOM, strict=True))
    _grid_check(st.beta.logpdf(p, 1.5, 1.5) + loglik, p, h, lambda v: _lp(post, v),
                float(post.mean), float(post.variance), 1e-6)


def test_normal_known_variance_grid(x64):
    prior = dist.Normal(1.0, 2.0)
    post = C.normal_known_variance(prior, X_NORM, 1.5)
    h = 40.0 / 200_000
    mu = -20.0 + (np.arange(200_000) + 0.5) * h
    logu = st.norm.logpdf(mu, 1.0, 2.0) + st.norm.logpdf(
        X_NORM[:, None], mu[None], np.sqrt(1.5)).sum(0)
    _grid_check(logu, mu, h, lambda v: _lp(post, v), float(post.mean), float(post.variance), 1e-6)


def test_gamma_known_mean_grid(x64):
    prior = dist.Gamma(2.0, 1.0)
    post = C.gamma_known_mean(prior, X_NORM, 0.5)
    h = 30.0 / 200_000
    tau = (np.arange(200_000) + 0.5) * h
    logu = st.gamma.logpdf(tau, 2.0, scale=1.0) + st.norm.logpdf(
        X_NORM[:, None], 0.5, 1.0 / np.sqrt(tau[None])).sum(0)
    _grid_check(logu, tau, h, lambda v: _lp(post, v), float(post.mean), float(post.variance), 1e-6)


def _simplex_grid(m):
    """Midpoints of an m x m grid on (p0, p1); p2 = 1 - p0 - p1; keep interior points."""
    h = 1.0 / m
    g = (np.arange(m) + 0.5) * h
    p0, p1 = np.meshgrid(g, g, indexing="ij")
    p2 = 1.0 - p0 - p1
    keep = p2 > 0
    return np.stack([p0[keep], p1[keep], p2[keep]], axis=1), h * h


@pytest.mark.parametrize("kind", ["categorical", "multinomial"])
def test_dirichlet_grid(x64, kind):
    # 2-D simplex grid (1200^2 cells): the slanted edge is cut by square cells, an effect
    # damped by the vanishing density there (all posterior alphas > 2). Measured 3e-10; 1e-6.
    alpha0 = np.array([2.0, 3.0, 1.5])
    prior = dist.Dirichlet(jnp.asarray(alpha0))
    if kind == "categorical":
        post = C.dirichlet_categorical(prior, LABELS)
        counts = np.bincount(LABELS, minlength=3)
    else:
        post = C.dirichlet_multinomial(prior, COUNTS)
        counts = COUNTS.sum(0)
    P, cell = _simplex_grid(1200)
    logu = st.dirichlet.logpdf(P.T, alpha0) + (counts * np.log(P)).sum(1)
    dens = np.exp(logu - logu.max())
    dens /= dens.sum() * cell
    mean = (P * dens[:, None]).sum(0) * cell
    var = ((P - mean) ** 2 * dens[:, None]).sum(0) * cell
    np.testing.assert_allclose(mean, np.asarray(post.mean), rtol=1e-6)
    np.testing.assert_allclose(var, np.asarray(post.variance), rtol=1e-6)
    pts = np.array([[0.2, 0.5, 0.3], [0.3, 0.3, 0.4]])
    ref = st.dirichlet.logpdf(pts.T, np.asarray(post.concentration))
    np.testing.assert_allclose(_lp(post, pts), ref, rtol=1e-6)


def test_normal_gamma_grid(x64):
    # 2-D midpoint grid, mean x precision, 1000 x 1000 cells covering > 1 - 1e-12 of the
    # posterior mass; measured max relative error 2e-8 (moments, densities, predictive): 1e-6.
    post = C.normal_gamma(_ng(), X_NORM)
    hm, ht = 8.0 / 1000, 6.0 / 1000
    m = -3.0 + (np.arange(1000) + 0.5) * hm
    t = (np.arange(1000) + 0.5) * ht
    M, T = np.meshgrid(m, t, indexing="ij")
    mu0, k0, a0, b0 = NG_PRIOR.values()
    sq = sum((xi - M) ** 2 for xi in X_NORM)  # likelihood point by point, no statistics
    loglik = 0.5 * len(X_NORM) * np.log(T / (2 * np.pi)) - 0.5 * T * sq
    logu = (st.norm.logpdf(M, mu0, 1 / np.sqrt(k0 * T)) + st.gamma.logpdf(T, a0, scale=1 / b0)
            + loglik)
    dens = np.exp(logu - logu.max())
    dens /= dens.sum() * hm * ht
    em, et = (M * dens).sum() * hm * ht, (T * dens).sum() * hm * ht
    vm, vt = ((M - em) ** 2 * dens).sum() * hm * ht, ((T - et) ** 2 * dens).sum() * hm * ht
    mean_marg, prec_marg = C.normal_gamma_mean(post), C.normal_gamma_precision(post)
    np.testing.assert_allclose([em, vm], [float(mean_marg.mean), float(mean_marg.variance)],
                               rtol=1e-6)
    np.testing.assert_allclose([et, vt], [float(prec_marg.mean), float(prec_marg.variance)],
                               rtol=1e-6)
    for i, j in [(470, 200), (500, 260), (430, 170)]:
        got = float(C.normal_gamma_log_prob(post, M[i, j], T[i, j]))
        np.testing.assert_allclose(got, np.log(dens[i, j]), rtol=1e-6)
    # posterior predictive density = integral of N(x | m, 1/t) over the grid posterior
    pred = C.normal_gamma_predictive(post)
    for x_new in [-1.0, 0.7, 2.5]:
        ref = (st.norm.pdf(x_new, M, 1 / np.sqrt(T)) * dens).sum() * hm * ht
        np.testing.assert_allclose(np.exp(_lp(pred, x_new)), ref, rtol=1e-6)


# --------------------------------------------------------------------- NIW exact identities


def _mvn_loglik(X, mean, cov):
    return st.multivariate_normal.logpdf(X, mean, cov).sum()


def test_niw_density_ratio_identity_and_evidence(x64):
    # log post(theta) - log prior(theta) - log lik(theta) = -log p(D) for EVERY theta (exact);
    # float64 rounding only: 1e-9 absolute spread. The constant is checked against Murphy's
    # (2007, eq. 266) closed-form marginal likelihood, computed here with scipy.
    prior = _niw()
    post = C.normal_inverse_wishart(prior, X_MV)
    means, covs = (a[:25] for a in C.niw_sample(jax.random.key(3), prior, (N_MC,)))
    loglik = np.array([_mvn_loglik(X_MV, m, S) for m, S in zip(np.asarray(means),
                                                               np.asarray(covs), strict=True)])
    diffs = (np.asarray(C.niw_log_prob(post, means, covs))
             - np.asarray(C.niw_log_prob(prior, means, covs)) - loglik)
    assert np.ptp(diffs) < 1e-9, np.ptp(diffs)
    n, d = X_MV.shape
    psi0, psin = np.asarray(NIW_PRIOR["psi"]), np.asarray(post.psi)
    nu0, nun, k0, kn = NIW_PRIOR["nu"], float(post.nu), NIW_PRIOR["kappa"], float(post.kappa)
    log_evidence = (-0.5 * n * d * np.log(np.pi) + multigammaln(nun / 2, d)
                    - multigammaln(nu0 / 2, d) + 0.5 * nu0 * np.linalg.slogdet(psi0)[1]
                    - 0.5 * nun * np.linalg.slogdet(psin)[1] + 0.5 * d * np.log(k0 / kn))
    np.testing.assert_allclose(diffs.mean(), -log_evidence, rtol=1e-9)


def _weighted_mean_se(w, f):
    """Self-normalised importance-sampling mean and its delta-method standard error."""
    w = w / w.sum()
    est = (w[:, None] * f).sum(0)
    return est, np.sqrt((w[:, None] ** 2 * (f - est) ** 2).sum(0))


def test_niw_posterior_moments_by_importance_sampling(x64):
    # Prior draws weighted by the likelihood estimate E[mu | D] and E[Sigma | D]; the closed
    # forms mu_n and psi_n / (nu_n - d - 1) must lie within 6 standard errors.
    prior = _niw()
    post = C.normal_inverse_wishart(prior, X_MV)
    means, covs = (np.asarray(a) for a in C.niw_sample(jax.random.key(7), prior, (N_MC,)))
    chol = np.linalg.cholesky(covs)
    r = X_MV[None, :, :] - means[:, None, :]
    z = np.linalg.solve(chol[:, None], r[..., None])[..., 0]
    loglik = (-0.5 * (z ** 2).sum((-1, -2)) - X_MV.shape[0] * np.log(
        np.diagonal(chol, axis1=1, axis2=2)).sum(1))
    w = np.exp(loglik - loglik.max())
    d = X_MV.shape[1]
    exact = np.concatenate([np.asarray(post.mu),
                            (np.asarray(post.psi) / (float(post.nu) - d - 1)).ravel()])
    est, se = _weighted_mean_se(w, np.concatenate([means, covs.reshape(len(covs), -1)], 1))
    assert np.all(np.abs(est - exact) < 6 * se), (est, exact, se)


def test_samplers_match_moments(x64):
    # MC moments of our samplers vs closed-form moments of the marginals, 6 standard errors.
    n = N_MC
    ng = _ng()
    m, t = (np.asarray(a) for a in C.normal_gamma_sample(jax.random.key(0), ng, (n,)))
    for samples, marg in [(m, C.normal_gamma_mean(ng)), (t, C.normal_gamma_precision(ng))]:
        assert abs(samples.mean() - float(marg.mean)) < 6 * samples.std() / np.sqrt(n)
        sq = (samples - float(marg.mean)) ** 2
        assert abs(sq.mean() - float(marg.variance)) < 6 * sq.std() / np.sqrt(n)
    niw = _niw()
    mu, S = (np.asarray(a) for a in C.niw_sample(jax.random.key(1), niw, (n,)))
    d = 2
    exact_S = np.asarray(NIW_PRIOR["psi"]) / (NIW_PRIOR["nu"] - d - 1)
    assert np.all(np.abs(S.mean(0) - exact_S) < 6 * S.std(0) / np.sqrt(n))
    marg = C.niw_mean(niw)  # Cov of a multivariate t: df/(df-2) * scale matrix
    df = float(marg.df)
    cov_mu = df / (df - 2) * np.asarray(marg.covariance_matrix)
    dev = mu - np.asarray(NIW_PRIOR["mu"])
    outer = dev[:, :, None] * dev[:, None, :]
    assert np.all(np.abs(mu.mean(0) - np.asarray(NIW_PRIOR["mu"])) < 6 * mu.std(0) / np.sqrt(n))
    assert np.all(np.abs(outer.mean(0) - cov_mu) < 6 * outer.std(0) / np.sqrt(n))


def test_niw_predictive_by_monte_carlo(x64):
    # Posterior predictive density = E_post[N(x | mu, Sigma)]: 6 standard errors.
    post = C.normal_inverse_wishart(_niw(), X_MV)
    means, covs = (np.asarray(a) for a in C.niw_sample(jax.random.key(5), post, (N_MC,)))
    pred = C.niw_predictive(post)
    chol = np.linalg.cholesky(covs)
    log_norm = -np.log(2 * np.pi) - np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1)
    for x in np.array([[0.0, 0.0], [1.0, -1.0], [-0.5, 0.8]]):
        z = np.linalg.solve(chol, (x - means)[..., None])[..., 0]
        vals = np.exp(log_norm - 0.5 * (z ** 2).sum(1))
        assert abs(np.exp(_lp(pred, x)) - vals.mean()) < 6 * vals.std() / np.sqrt(len(vals))


# --------------------------------------------------------------- log-densities vs scipy


def test_log_densities_match_scipy(x64):
    # Every distribution we construct, evaluated against scipy.stats: 1e-6 relative.
    ng = C.normal_gamma(_ng(), X_NORM)
    mu0, k, a, b = (float(v) for v in ng)
    pts = np.array([-0.7, 0.4, 1.3, 2.2])
    tau = np.array([0.3, 0.8, 1.1, 2.0])
    mean_m, pred = C.normal_gamma_mean(ng), C.normal_gamma_predictive(ng)
    checks = [
        (_lp(mean_m, pts), st.t.logpdf(pts, 2 * a, mu0, np.sqrt(b / (a * k)))),
        (_lp(pred, pts), st.t.logpdf(pts, 2 * a, mu0, np.sqrt(b * (k + 1) / (a * k)))),
        (_lp(C.normal_gamma_precision(ng), tau), st.gamma.logpdf(tau, a, scale=1 / b)),
        (np.asarray(C.normal_gamma_log_prob(ng, pts, tau)),
         st.norm.logpdf(pts, mu0, 1 / np.sqrt(k * tau)) + st.gamma.logpdf(tau, a, scale=1 / b)),
    ]
    beta = C.beta_bernoulli(dist.Beta(2.0, 3.0), X_BERN)
    u = np.array([0.1, 0.45, 0.9])
    checks.append((_lp(beta, u), st.beta.logpdf(u, float(beta.concentration1),
                                                float(beta.concentration0))))
    normal = C.normal_known_variance(dist.Normal(1.0, 2.0), X_NORM, 1.5)
    checks.append((_lp(normal, pts), st.norm.logpdf(pts, float(normal.loc), float(normal.scale))))
    gamma = C.gamma_known_mean(dist.Gamma(2.0, 1.0), X_NORM, 0.5)
    checks.append((_lp(gamma, tau), st.gamma.logpdf(tau, float(gamma.concentration),
                                                    scale=1 / float(gamma.rate))))
    niw = C.normal_inverse_wishart(_niw(), X_MV)
    mu, kap, nu, psi = (np.asarray(v) for v in niw)
    kap, nu = float(kap), float(nu)
    d = 2
    xs = np.array([[0.1, -0.3], [1.0, 0.5], [-1.0, 2.0]])
    S_pts = [np.array([[1.0, 0.2], [0.2, 0.5]]), np.array([[0.4, -0.1], [-0.1, 2.0]])]
    scale_mean = psi / (kap * (nu - d + 1))
    checks += [
        (_lp(C.niw_mean(niw), xs), st.multivariate_t.logpdf(xs, mu, scale_mean, df=nu - d + 1)),
        (_lp(C.niw_predictive(niw), xs),
         st.multivariate_t.logpdf(xs, mu, scale_mean * (kap + 1), df=nu - d + 1)),
    ]
    for S in S_pts:
        checks += [
            (_lp(C.niw_precision(niw), np.linalg.inv(S)),
             st.wishart.logpdf(np.linalg.inv(S), df=nu, scale=np.linalg.inv(psi))),
            (np.asarray(C.inverse_wishart_log_prob(S, nu, psi)),
             st.invwishart.logpdf(S, df=nu, scale=psi)),
            (np.asarray(C.niw_log_prob(niw, xs[0], S)),
             st.multivariate_normal.logpdf(xs[0], mu, S / kap)
             + st.invwishart.logpdf(S, df=nu, scale=psi)),
        ]
    for got, ref in checks:
        np.testing.assert_allclose(got, ref, rtol=1e-6)


# ------------------------------------------------------------------ sequential == batch

PAIRS = {
    # name: (update(prior, data, w), make_prior(), data, posterior parameters)
    "beta_bernoulli": (lambda p, x, w: C.beta_bernoulli(p, x, w),
                       lambda: dist.Beta(2.0, 3.0), RNG.integers(0, 2, 10),
                       lambda q: [q.concentration1, q.concentration0]),
    "beta_binomial": (lambda p, x, w: C.beta_binomial(p, x, 6, w),
                      lambda: dist.Beta(2.0, 3.0), RNG.integers(0, 7, 10),
                      lambda q: [q.concentration1, q.concentration0]),
    "dirichlet_categorical": (lambda p, x, w: C.dirichlet_categorical(p, x, w),
                              lambda: dist.Dirichlet(jnp.array([1.0, 2.0, 0.5])),
                              RNG.integers(0, 3, 10), lambda q: [q.concentration]),
    "dirichlet_multinomial": (lambda p, x, w: C.dirichlet_multinomial(p, x, w),
                              lambda: dist.Dirichlet(jnp.array([1.0, 2.0, 0.5])),
                              RNG.multinomial(5, [0.3, 0.3, 0.4], 10), lambda q: [q.concentration]),
    "normal_mean": (lambda p, x, w: C.normal_known_variance(p, x, 0.7, w),
                    lambda: dist.Normal(0.0, 3.0), RNG.normal(2.0, 1.0, 10),
                    lambda q: [q.loc, q.scale]),
    "gamma_precision": (lambda p, x, w: C.gamma_known_mean(p, x, 1.5, w),
                        lambda: dist.Gamma(2.0, 1.0), RNG.normal(2.0, 1.0, 10),
                        lambda q: [q.concentration, q.rate]),
    "normal_gamma": (lambda p, x, w: C.normal_gamma(p, x, w), _ng,
                     RNG.normal(2.0, 1.0, 10), lambda q: list(q)),
    "niw": (lambda p, x, w: C.normal_inverse_wishart(p, x, w), _niw,
            RNG.normal(size=(10, 2)) + 3.0, lambda q: list(q)),
}


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_sequential_equals_batch(both_precisions, name, weighted):
    # Folding the exact update over single points reproduces the batch posterior: 1e-5
    # relative (float32 accumulates ~10 roundings of ~6e-8 each).
    batch_fn, make_prior, data, params = PAIRS[name]
    w = W_POS if weighted else np.ones(len(data))
    batch = batch_fn(make_prior(), data, w if weighted else None)
    post = make_prior()
    for i in range(len(data)):
        post = batch_fn(post, data[i:i + 1], w[i:i + 1])
    for got, ref in zip(params(post), params(batch), strict=True):
        assert np.asarray(got).dtype == np.dtype(both_precisions)
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-5)


def test_stats_form_fold_with_scan(x64):
    # The stats form composes with lax.scan: fold the NIW update over per-point statistics.
    X = jnp.asarray(RNG.normal(size=(15, 2)))
    stats = E.GaussianStats(jnp.ones(15), X, jnp.zeros((15, 2, 2)))

    def step(p, s):
        return multivariate_gaussian._niw_impl(p, s), None

    prior = multivariate_gaussian._check_niw(_niw())
    folded, _ = jax.lax.scan(step, prior, stats)
    batch = C.normal_inverse_wishart(_niw(), X)
    for a, b in zip(folded, batch, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10)


def test_jit_no_recompile_and_disable_jit():
    prior = dist.Beta(2.0, 3.0)
    C.beta_bernoulli(prior, X_BERN)
    size = beta_dirichlet._beta_impl._cache_size()
    C.beta_bernoulli(dist.Beta(1.0, 1.0), 1 - X_BERN)
    assert beta_dirichlet._beta_impl._cache_size() == size
    post = C.normal_gamma(_ng(jnp.float32), X_NORM)
    with jax.disable_jit():
        eager = C.normal_gamma(_ng(jnp.float32), X_NORM)
    for a, b in zip(post, eager, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5)


def test_batched_beta_prior(x64):
    # Per-feature Bernoulli data with a scalar prior: batch shape (n_features,).
    X = RNG.integers(0, 2, size=(30, 3))
    post = C.beta_bernoulli(dist.Beta(1.0, 1.0), X)
    np.testing.assert_allclose(np.asarray(post.concentration1), 1 + X.sum(0))
    np.testing.assert_allclose(np.asarray(post.concentration0), 1 + 30 - X.sum(0))


BAD = [
    (lambda: C.beta_bernoulli(dist.Gamma(1.0, 1.0), [0, 1]), TypeError, "prior must be a"),
    (lambda: C.beta_bernoulli(dist.Beta(1.0, 1.0), [0, 2]), ValueError, "x must be <= 1"),
    (lambda: C.beta_bernoulli(dist.Beta(1.0, 1.0), [0.0, np.nan]), ValueError, "x contains"),
    (lambda: C.beta_bernoulli(dist.Beta(1.0, 1.0), [[[0]]]), ValueError, "x must be 1-D"),
    (lambda: C.normal_known_variance(dist.Normal(0.0, -1.0, validate_args=False), [1.0], 1.0),
     ValueError, "prior: Normal distribution got invalid scale"),  # numpyro validation off
    (lambda: C.beta_binomial(dist.Beta(1.0, 1.0), [3, 7], 6), ValueError, "total_count"),
    (lambda: C.beta_binomial(dist.Beta(1.0, 1.0), [-1, 2], 6), ValueError, "k must be >= 0"),
    (lambda: C.dirichlet_categorical(dist.Dirichlet(jnp.ones(3)), [0, 3]), ValueError,
     "labels must be <= 2"),
    (lambda: C.dirichlet_multinomial(dist.Dirichlet(jnp.ones(3)), [[1, 2]]), ValueError,
     "categories"),
    (lambda: C.dirichlet_multinomial(dist.Dirichlet(jnp.ones(2)), [[1, -2]]), ValueError,
     "counts must be >= 0"),
    (lambda: C.normal_known_variance(dist.Normal(0.0, 1.0), [1.0, 2.0], -1.0), ValueError,
     "variance must be > 0"),
    (lambda: C.gamma_known_mean(dist.Gamma(1.0, 1.0), [1.0, 2.0], np.nan), ValueError, "mean"),
    (lambda: C.normal_gamma(C.NormalGamma(0.0, -1.0, 1.0, 1.0), [1.0]), ValueError,
     "prior.kappa must be > 0"),
    (lambda: C.normal_gamma((0.0, 1.0, 1.0, 1.0), [1.0]), TypeError, "NormalGamma"),
    (lambda: C.normal_gamma_sample(0, _ng()), TypeError, "key"),
    (lambda: C.normal_gamma_update(_ng(), (1.0, 1.0, 0.0)), TypeError, "GaussianStats"),
    (lambda: C.normal_inverse_wishart(C.NormalInverseWishart(np.zeros(2), 1.0, 0.5, np.eye(2)),
                                      X_MV), ValueError, "prior.nu must be > "),
    (lambda: C.normal_inverse_wishart(
        C.NormalInverseWishart(np.zeros(2), 1.0, 5.0, [[1.0, 2.0], [2.0, 1.0]]), X_MV),
     ValueError, "positive definite"),
    (lambda: C.normal_inverse_wishart(
        C.NormalInverseWishart(np.zeros(2), 1.0, 5.0, [[1.0, 0.5], [0.0, 1.0]]), X_MV),
     ValueError, "symmetric"),
    (lambda: C.normal_inverse_wishart(_niw(), np.ones((4, 3))), ValueError, "features"),
    (lambda: C.normal_inverse_wishart(_niw(), X_MV, np.ones(3)), ValueError, "sample_weight"),
    (lambda: C.niw_log_prob(_niw(), np.zeros(3), np.eye(2)), ValueError, "mean must have"),
    (lambda: C.niw_log_prob(_niw(), np.zeros(2), np.eye(3)), ValueError, "cov must have"),
]


@pytest.mark.parametrize("call,exc,match", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
