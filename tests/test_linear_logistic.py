"""Bayesian logistic regression with the Laplace approximation (espresso_jax.linear.logistic).

References we did not write: scikit-learn's LogisticRegression (MAP), JAX autodiff of an
objective written here (gradient and Hessian), brute-force 2-D grid quadrature of the exact
posterior (log evidence, posterior predictive), dense 1-D quadrature of the Gaussian-sigmoid
integral (probit approximation, Monte Carlo predictive).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit, logsumexp
from sklearn.linear_model import LogisticRegression

from espresso_jax.datasets import load_faithful, load_uci, standardized_split
from espresso_jax.linear import logistic as lg


# ------------------------------------------------------------------------------------ data
def faithful():
    """Old Faithful: label = eruption longer than 3 min; features = (1, standardised waiting)."""
    X = load_faithful()
    z = (X[:, 1] - X[:, 1].mean()) / X[:, 1].std()
    return np.stack([np.ones_like(z), z], axis=1), (X[:, 0] > 3.0).astype(np.float64)


def concrete_binary():
    """UCI concrete, split 0: label = strength above the training median; (1, 8 features)."""
    try:
        sp = standardized_split(load_uci("concrete"), 0)
    except FileNotFoundError:
        pytest.skip("UCI data directory not available")
    Phi = np.c_[np.ones(len(sp.X_train)), sp.X_train]
    return Phi, (sp.y_train > np.median(sp.y_train)).astype(np.float64)


DATASETS = {"faithful": faithful, "concrete_binary": concrete_binary}


def neg_log_joint(w, Phi, t, m0, P):
    """Independent objective: −Σ [t log σ(a) + (1−t) log σ(−a)] + ½ (w−m0)ᵀP(w−m0)."""
    a = Phi @ w
    nll = jnp.sum(jnp.logaddexp(0.0, a) - t * a)
    d = w - m0
    return nll + 0.5 * d @ P @ d


# The reference gradient and Hessian, compiled once per dtype: op-by-op autodiff of the
# objective dispatched ~70 tiny programs per call and is not what these tests are about.
grad_and_hessian = jax.jit(lambda w, *args: (jax.grad(neg_log_joint)(w, *args),
                                             jax.hessian(neg_log_joint)(w, *args)))


def grid_posterior(Phi, t, m, cov, alpha, half_width=12.0, n=121):
    """Exact log evidence and posterior grid for D = 2 and prior N(0, α⁻¹I), by the
    trapezoid rule on ±half_width Laplace standard deviations around the mode (the integrand
    is smooth and decays like a Gaussian: halving the spacing changes ln p(D) by < 1e-12).
    Also returns the largest log joint on the grid's edge, which must be far below the peak."""
    L = np.linalg.cholesky(cov)
    z = np.linspace(-half_width, half_width, n)
    Z = np.stack(np.meshgrid(z, z, indexing="ij"), -1).reshape(-1, 2)
    W = m + Z @ L.T
    A = W @ Phi.T
    loglik = -(t * np.logaddexp(0, -A) + (1 - t) * np.logaddexp(0, A)).sum(1)
    logprior = -0.5 * alpha * (W ** 2).sum(1) + math.log(alpha / (2 * math.pi))
    logjoint = loglik + logprior
    log_cell = math.log(abs(np.linalg.det(L))) + 2 * math.log(z[1] - z[0])
    weights = np.exp(logjoint - logjoint.max())
    edge = np.abs(Z).max(1) >= half_width
    return (logsumexp(logjoint) + log_cell, W, weights / weights.sum(), logjoint,
            logjoint[edge].max())


def gauss_sigmoid(mu, var):
    """E[σ(a)] and Var[σ(a)] for a ~ N(mu, var), dense trapezoid quadrature on ±12 sd."""
    z = np.linspace(-12, 12, 2001)
    pz = np.exp(-0.5 * z ** 2)
    pz /= pz.sum()
    s = expit(np.asarray(mu)[:, None] + np.sqrt(np.asarray(var))[:, None] * z)
    m = s @ pz
    return m, np.clip((s ** 2) @ pz - m ** 2, 0.0, None)


# ------------------------------------------------------------------------- reference checks
@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_map_matches_sklearn(x64, name, alpha):
    # scikit-learn minimises C Σ logloss + ½|w|²; ours Σ logloss + (α/2)|w|²: the same
    # minimiser for C = 1/α. Its default l1_ratio=0 is the L2 penalty (penalty="l2" is
    # deprecated in 1.8). Both solvers are Newton methods run to 1e-12, so agreement to 1e-5
    # (the brief's tolerance) leaves a wide margin for conditioning.
    Phi, t = DATASETS[name]()
    fit = lg.fit_laplace(Phi, t, alpha=alpha, tol=1e-10)
    ref = LogisticRegression(C=1.0 / alpha, fit_intercept=False, solver="newton-cholesky",
                             tol=1e-12, max_iter=1000).fit(Phi, t)
    assert bool(fit.converged)
    np.testing.assert_allclose(np.asarray(fit.params.mean), ref.coef_[0], atol=1e-5, rtol=0)


PRIORS = {
    "alpha": lambda D: {"alpha": 2.0},
    "diag": lambda D: {"prior_precision": np.linspace(0.5, 3.0, D)},
    "full_with_mean": lambda D: {
        "prior_mean": np.linspace(-0.5, 0.5, D),
        "prior_precision": np.eye(D) + 0.3 * np.ones((D, D)),
    },
}


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_mode_and_covariance_match_autodiff(both_precisions, prior):
    # The gradient of an objective written here vanishes at the returned mode and its
    # autodiff Hessian equals cov⁻¹. Tolerances: f64 near machine precision; f32 gradient
    # entries are sums of 927 terms of size ≤ ~3, so rounding is ~1e-4.
    Phi, t = concrete_binary()
    D = Phi.shape[1]
    kw = PRIORS[prior](D)
    fit = lg.fit_laplace(Phi, t, **kw)
    dtype = fit.params.mean.dtype
    assert dtype == np.dtype(both_precisions)
    assert bool(fit.converged)
    P = np.diag(kw["prior_precision"]) if prior == "diag" else kw.get(
        "prior_precision", kw.get("alpha", 1.0) * np.eye(D))
    m0 = kw.get("prior_mean", np.zeros(D))
    args = [jnp.asarray(a, dtype) for a in (Phi, t, m0, P)]
    grad, hess = grad_and_hessian(fit.params.mean, *args)
    f32 = both_precisions == "float32"
    np.testing.assert_allclose(np.asarray(grad), 0.0, atol=1e-3 if f32 else 1e-8)
    np.testing.assert_allclose(np.linalg.inv(np.asarray(fit.params.cov, np.float64)),
                               np.asarray(hess), rtol=2e-4 if f32 else 1e-9,
                               atol=1e-3 if f32 else 1e-9)
    np.testing.assert_allclose(np.asarray(fit.prior.precision), P, rtol=1e-6)


@pytest.mark.parametrize("alpha", [0.05, 1.0])
def test_log_evidence_and_predictive_match_grid_quadrature(x64, alpha):
    # Laplace vs the exact 2-D integral. The Laplace error in ln p(D) comes from the
    # posterior's skewness and shrinks like 1/N; on these 272 points we measure 0.039 nats
    # at α = 0.05 (weak prior, skewed posterior) and 0.008 at α = 1, and allow 0.06. The
    # predictive is bounded the same way: Laplace + probit vs the exact posterior predictive
    # within 0.03 (probit alone errs by ≤ 0.016, see the next test).
    Phi, t = faithful()
    fit = lg.fit_laplace(Phi, t, alpha=alpha, tol=1e-10)
    m, cov = np.asarray(fit.params.mean), np.asarray(fit.params.cov)
    log_ev, W, weights, logjoint, edge_max = grid_posterior(Phi, t, m, cov, alpha)
    assert logjoint.max() - edge_max > 20          # the grid's edge carries negligible mass
    assert abs(float(fit.log_evidence) - log_ev) < 0.06
    grid = np.linspace(-2.0, 2.0, 17)
    Phi_new = np.stack([np.ones_like(grid), grid], 1)
    exact = weights @ expit(W @ Phi_new.T)
    probit = np.asarray(lg.predict_proba(fit.params, Phi_new))
    np.testing.assert_allclose(probit, exact, atol=0.03)


def test_probit_and_mc_match_gaussian_sigmoid_quadrature(x64):
    # One-feature fits N(μ, σ²) spanning σ² ∈ [0, 30]: the probit approximation
    # σ(κμ) is within 0.016 of the exact ∫σ(a)N(a|μ,σ²)da everywhere (measured max 0.0160
    # over μ ∈ [-10, 10], σ² ≤ 1000); MC must be within 6 standard errors of the exact value.
    mu = np.repeat(np.linspace(-6, 6, 13), 4)
    var = np.tile([0.0, 0.5, 4.0, 30.0], 13)
    exact, exact_var = gauss_sigmoid(mu, var)
    for m_i, v_i, e_i, ev_i in zip(mu[::5], var[::5], exact[::5], exact_var[::5], strict=True):
        params = lg.LaplaceParams(jnp.array([m_i]), jnp.array([[v_i]]))
        probit = float(lg.predict_proba(params, np.ones((1, 1)))[0])
        assert abs(probit - e_i) <= 0.0165
        p_map = float(lg.predict_proba(params, np.ones((1, 1)), method="map")[0])
        assert abs(probit - 0.5) <= abs(p_map - 0.5) + 1e-12      # κ ≤ 1 shrinks to 0.5
        n = 4000
        mc = float(lg.predict_proba_mc(jax.random.key(3), params, np.ones((1, 1)),
                                       n_samples=n)[0])
        assert abs(mc - e_i) <= 6 * math.sqrt(ev_i / n) + 1e-9


def test_mc_predictive_on_real_fit(x64):
    # MC over q(w) (all points share the draws) vs quadrature of the exact 1-D activation
    # marginal N(μ_a, σ²_a): within 6 standard errors; reproducible for a fixed key.
    Phi, t = faithful()
    fit = lg.fit_laplace(Phi, t, alpha=1.0)
    Phi_new = Phi[::17]
    mu_a, var_a = (np.asarray(v) for v in lg.predictive_activation(fit.params, Phi_new))
    np.testing.assert_allclose(mu_a, Phi_new @ np.asarray(fit.params.mean), rtol=1e-12)
    np.testing.assert_allclose(var_a,
                               np.einsum("nd,de,ne->n", Phi_new, fit.params.cov, Phi_new),
                               rtol=1e-10)
    exact, exact_var = gauss_sigmoid(mu_a, var_a)
    n = 5000
    mc = np.asarray(lg.predict_proba_mc(jax.random.key(0), fit.params, Phi_new, n_samples=n))
    assert np.all(np.abs(mc - exact) <= 6 * np.sqrt(exact_var / n) + 1e-9)
    again = lg.predict_proba_mc(jax.random.key(0), fit.params, Phi_new, n_samples=n)
    np.testing.assert_array_equal(np.asarray(again), mc)
    other = lg.predict_proba_mc(jax.random.key(1), fit.params, Phi_new, n_samples=n)
    assert not np.array_equal(np.asarray(other), mc)


def test_fit_evidence_maximises_laplace_evidence(x64):
    # Brute force: the Laplace log evidence on a log-spaced α grid (fit_laplace vmapped over
    # the prior precision). fit_evidence's α is an exact stationary point of that function,
    # so it must beat every grid point (up to 1e-9 nats of rounding) and sit within one grid
    # step (Δ ln α = 0.017) of the grid argmax. (MacKay's update without the dR/dα term
    # stops at α = 0.0240 here, 0.022 nats below the maximum at α = 0.0191.)
    Phi, t = faithful()
    fe = lg.fit_evidence(Phi, t, tol=1e-8)
    assert bool(fe.converged)
    alphas = jnp.exp(jnp.linspace(math.log(1e-3), math.log(1.0), 401))
    log_ev = jax.vmap(lambda a: lg.fit_laplace(Phi, t, prior_precision=a,
                                               tol=1e-10).log_evidence)(alphas)
    best = int(jnp.argmax(log_ev))
    assert 0 < best < len(alphas) - 1
    assert float(fe.log_evidence) >= float(log_ev[best]) - 1e-9
    step = math.log(1e3) / 400
    assert abs(math.log(float(fe.alpha) / float(alphas[best]))) <= step
    # γ = Σ λ/(α+λ) lies in (0, D) and the mean/cov are the Laplace fit at the final α.
    assert 0 < float(fe.gamma) < Phi.shape[1]
    ref = lg.fit_laplace(Phi, t, alpha=float(fe.alpha), tol=1e-10)
    np.testing.assert_allclose(np.asarray(fe.params.mean), np.asarray(ref.params.mean),
                               rtol=1e-7)
    np.testing.assert_allclose(float(fe.log_evidence), float(ref.log_evidence), rtol=1e-9)


def test_separable_data_stays_finite():
    # Perfectly separable labels and a nearly flat prior: the MAP is far out (|w| ~ ln 1/α),
    # the damped Newton iteration must still converge to finite values, not NaN.
    x = np.linspace(-2, 2, 40)
    Phi = np.stack([np.ones_like(x), x], 1)
    t = (x > 0.05).astype(np.float32)
    fit = lg.fit_laplace(Phi, t, alpha=1e-6, max_iter=200)
    assert bool(fit.converged)
    assert np.all(np.isfinite(np.asarray(fit.params.mean)))
    assert np.all(np.isfinite(np.asarray(fit.params.cov)))
    assert np.isfinite(float(fit.log_evidence))
    p = np.asarray(lg.predict_proba(fit.params, Phi))
    assert np.all((p > 0.5) == (t == 1))


# ------------------------------------------------------------------------ jit and dtypes
def test_jit_and_no_jit_agree():
    # Both paths must take the same Newton steps. Op-by-op execution compiles each primitive
    # once per shape, so its cost hardly depends on the number of steps: run to convergence
    # with the default max_iter, whose jitted program (like the MC one: 3 rows, 8 draws) is
    # the one test_dtype_follows_precision[float32] compiles anyway.
    Phi, t = faithful()
    fit = lg.fit_laplace(Phi, t, alpha=1.0)
    probs = lg.predict_proba_mc(jax.random.key(0), fit.params, Phi[:3], n_samples=8)
    with jax.disable_jit():
        fit_nj = lg.fit_laplace(Phi, t, alpha=1.0)
        probs_nj = lg.predict_proba_mc(jax.random.key(0), fit.params, Phi[:3], n_samples=8)
    assert int(fit.n_iter) == int(fit_nj.n_iter)
    for a, b in zip(jax.tree.leaves(fit), jax.tree.leaves(fit_nj), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(probs), np.asarray(probs_nj), rtol=1e-5, atol=1e-6)


def test_second_call_does_not_recompile():
    # Random data of the float32 Old Faithful shapes: the first call usually hits the program
    # the tests above compiled (hence mid - before <= 1); the later calls must add nothing.
    rng = np.random.default_rng(0)
    Phi = rng.normal(size=(272, 2))
    t = (rng.uniform(size=272) < 0.5).astype(np.float32)
    before = lg._fit_impl._cache_size()
    lg.fit_laplace(Phi, t, alpha=1.0)
    mid = lg._fit_impl._cache_size()
    lg.fit_laplace(Phi + 0.1, 1 - t, alpha=3.0, tol=1e-4)   # new values, same shapes
    lg.fit_laplace(Phi, t, prior_precision=np.ones(2), prior_mean=np.ones(2))
    assert mid - before <= 1 and lg._fit_impl._cache_size() == mid
    fit = lg.fit_laplace(Phi, t)
    lg.predict_proba(fit.params, Phi)
    size = lg._probit_impl._cache_size()
    lg.predict_proba(fit.params, Phi * 2.0)
    assert lg._probit_impl._cache_size() == size


def test_dtype_follows_precision(both_precisions):
    Phi, t = faithful()
    fit = lg.fit_laplace(Phi, t)
    fe = lg.fit_evidence(Phi, t)
    for arr in (fit.params.mean, fit.params.cov, fit.log_evidence, fe.alpha, fe.params.mean,
                lg.predict_proba(fit.params, Phi[:3]),
                lg.predict_proba_mc(jax.random.key(0), fe.params, Phi[:3], n_samples=8)):
        assert arr.dtype == np.dtype(both_precisions)


def test_bool_labels_accepted():
    Phi, t = faithful()
    a = lg.fit_laplace(Phi, t.astype(bool))
    b = lg.fit_laplace(Phi, t)
    np.testing.assert_array_equal(np.asarray(a.params.mean), np.asarray(b.params.mean))


# ------------------------------------------------------------------------------ bad input
_PHI = np.c_[np.ones(6), np.arange(6.0)]
_T = np.array([0, 0, 1, 0, 1, 1.0])


def _nan(a):
    a = np.array(a, dtype=float)
    a.flat[1] = np.nan
    return a


BAD_FIT = [
    ({"y": np.array([0, 0, 2, 0, 1, 1.0])}, ValueError, "^y must hold binary"),
    ({"y": np.array([0, 0, 0.5, 0, 1, 1])}, ValueError, "^y must hold binary"),
    ({"y": -_T}, ValueError, "^y must hold binary"),
    ({"y": _nan(_T)}, ValueError, "^y contains NaN"),
    ({"X": _nan(_PHI)}, ValueError, "^X contains NaN"),
    ({"X": np.where(_PHI > 4, np.inf, _PHI)}, ValueError, "^X contains inf"),
    ({"y": _T[:5]}, ValueError, "^X and y must have the same number of rows"),
    ({"X": _PHI[:, 1]}, ValueError, "^X must be 2-D"),
    ({"y": _T[:, None]}, ValueError, "^y must be 1-D"),
    ({"y": np.array(["a"] * 6)}, TypeError, "^y must have a real numeric dtype"),
    ({"alpha": 0.0}, ValueError, "alpha must be > 0"),
    ({"alpha": 1.0, "prior_precision": 1.0}, TypeError, "either alpha or prior_precision"),
    ({"prior_precision": np.array([[1.0, 2.0], [2.0, 1.0]])}, ValueError, "positive definite"),
    ({"prior_precision": np.array([[1.0, 0.5], [0.0, 1.0]])}, ValueError, "symmetric"),
    ({"prior_precision": np.eye(3)}, ValueError, "prior_precision must be (2, 2)"),
    ({"prior_precision": np.array([1.0, -1.0])}, ValueError, "prior_precision must be > 0"),
    ({"prior_mean": np.zeros(3)}, ValueError, "prior_mean must have length"),
    ({"tol": 0.0}, ValueError, "tol must be > 0"),
    ({"max_iter": 0}, ValueError, "max_iter must be >= 1"),
    ({"max_iter": 2.5}, TypeError, "max_iter must be an int"),
]


@pytest.mark.parametrize("kwargs,err,msg", BAD_FIT)
def test_fit_laplace_rejects_bad_input(kwargs, err, msg):
    kw = {"X": _PHI, "y": _T, **kwargs}
    with pytest.raises(err, match=msg.replace("(", r"\(").replace(")", r"\)")):
        lg.fit_laplace(kw.pop("X"), kw.pop("y"), **kw)


@pytest.mark.parametrize("kwargs,err,msg", [
    ({"alpha0": -1.0}, ValueError, "alpha0 must be > 0"),
    ({"newton_max_iter": 0}, ValueError, "newton_max_iter must be >= 1"),
    ({"y": np.array([0, 0, 3, 0, 1, 1.0])}, ValueError, "^y must hold binary"),
])
def test_fit_evidence_rejects_bad_input(kwargs, err, msg):
    kw = {"X": _PHI, "y": _T, **kwargs}
    with pytest.raises(err, match=msg):
        lg.fit_evidence(kw.pop("X"), kw.pop("y"), **kw)


def test_predict_rejects_bad_input():
    fit = lg.fit_laplace(*faithful())    # two features, like _PHI; shapes compiled above
    with pytest.raises(ValueError, match="^X_new has 3 columns but the fitted model has 2"):
        lg.predict_proba(fit.params, np.ones((4, 3)))
    with pytest.raises(ValueError, match="^X_new contains NaN"):
        lg.predict_proba(fit.params, _nan(_PHI))
    with pytest.raises(ValueError, match="method must be one of"):
        lg.predict_proba(fit.params, _PHI, method="laplace")
    with pytest.raises(TypeError, match="params must be a LaplaceParams"):
        lg.predict_proba({"mean": 1}, _PHI)
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        lg.predict_proba_mc(0, fit.params, _PHI)
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        lg.predict_proba_mc(jax.random.key(0), fit.params, _PHI, n_samples=0)
    with pytest.raises(ValueError, match="^X_new must be 2-D"):
        lg.predictive_activation(fit.params, np.ones(2))
