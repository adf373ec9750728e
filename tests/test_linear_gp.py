"""GP regression checked against scikit-learn's GaussianProcessRegressor, finite differences,
Monte-Carlo bounds and closed-form limits.

Reference model: ``ConstantKernel(σ_f²) * RBF(ℓ) + WhiteKernel(σ_n²)`` with ``alpha=0`` (no extra
diagonal term), ``normalize_y=False``; its ``kernel.theta`` is (log σ_f², log ℓ…, log σ_n²), the
same coordinates as ``GPParams``.

Tolerances. float64: 1e-6 relative (both sides are exact-arithmetic identical algorithms; the
observed gap is ~1e-14). float32: the Cholesky solve of K + σ_n² I loses about eps32 · cond
(cond ≈ n σ_f² / σ_n² ≈ 3e4 for yacht with σ_n² = 0.01), so the log marginal likelihood gets
1e-4 relative (observed ≤ 4e-6) and predictions 1e-4 absolute on the mean / 1e-3 relative on the
std (observed ≤ 8e-6 and 2e-5).
"""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

from espresso_jax.datasets import load_faithful, load_uci, standardized_split
from espresso_jax.linear import gp

# ----------------------------------------------------------------------------- data


@functools.cache
def _faithful():
    """Old Faithful, standardised: predict waiting from eruptions. (272, 1), (272,)."""
    d = load_faithful()
    d = (d - d.mean(0)) / d.std(0)
    return d[:, :1], d[:, 1]


@functools.cache
def _yacht_split():
    try:
        return standardized_split(load_uci("yacht"), 0)
    except FileNotFoundError:
        return None


def _yacht():
    sp = _yacht_split()
    if sp is None:
        pytest.skip("UCI yacht data not found (set ESPRESSO_JAX_DATA)")
    return sp.X_train, sp.y_train


@functools.cache
def _synthetic2d():
    """Two inputs, one irrelevant-ish: an always-available ARD case."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 2))
    y = np.sin(2.0 * X[:, 0]) + 0.1 * X[:, 1] + 0.3 * rng.normal(size=150)
    return X, y


# name -> (data, σ_f², ℓ, σ_n²)
CASES = {
    "faithful": (_faithful, 1.0, 0.8, 0.2),
    "faithful-ard": (_faithful, 1.0, [0.8], 0.2),
    "yacht": (_yacht, 1.0, 1.0, 0.05),
    "yacht-ard": (_yacht, 1.0, [1.5, 2.0, 2.5, 1.0, 2.0, 0.7], 0.01),
    "synthetic-ard": (_synthetic2d, 1.0, [0.7, 3.0], 0.1),
}


def _case(name):
    data, sv, ls, nv = CASES[name]
    X, y = data()
    return X, y, sv, np.asarray(ls, dtype=np.float64), nv


def _sklearn(X, y, sv, ls, nv, **kw):
    kernel = ConstantKernel(sv) * RBF(ls) + WhiteKernel(nv)
    kw.setdefault("optimizer", None)
    return GaussianProcessRegressor(kernel, alpha=0.0, normalize_y=False, **kw).fit(X, y)


def _theta(params):
    """GPParams -> sklearn's theta order (log σ_f², log ℓ…, log σ_n²)."""
    return np.concatenate([np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in params])


# One optimiser object: it is a static argument of the jitted GP loop, so fits that use the same
# object, data shapes and max_iter share one compiled program.
ADAM = optax.adam(0.05)


def _predict_inputs(X):
    """The prediction inputs of test_predict_matches_sklearn: 5 training inputs and 15 draws
    around them (other tests reuse them to hit the same compiled programs)."""
    rng = np.random.default_rng(1)
    return np.concatenate([X[:5], X[:20].mean(0) + 2.0 * rng.normal(size=(15, X.shape[1]))])


def _tols(dtype_name):
    # See the module docstring for where these come from.
    if dtype_name == "float64":
        return {"lml": 1e-6, "mean_atol": 1e-9, "std_rtol": 1e-6}
    return {"lml": 1e-4, "mean_atol": 1e-4, "std_rtol": 1e-3}


# ----------------------------------------------------------------------------- references


@pytest.mark.parametrize("name", list(CASES))
def test_log_marginal_likelihood_matches_sklearn(name, both_precisions):
    X, y, sv, ls, nv = _case(name)
    params = gp.make_params(sv, ls, nv)
    sk = _sklearn(X, y, sv, ls, nv)
    np.testing.assert_allclose(_theta(params), sk.kernel_.theta, rtol=1e-6)
    ref = sk.log_marginal_likelihood(sk.kernel_.theta)
    ours = gp.log_marginal_likelihood(params, X, y)
    assert ours.dtype == np.dtype(both_precisions)
    np.testing.assert_allclose(float(ours), ref, rtol=_tols(both_precisions)["lml"])


@pytest.mark.parametrize("name", ["faithful", "yacht-ard", "synthetic-ard"])
def test_log_marginal_likelihood_gradient(name, x64):
    X, y, sv, ls, nv = _case(name)
    params = gp.make_params(sv, ls, nv)
    grad = _theta(jax.grad(gp.log_marginal_likelihood)(params, X, y))
    sk = _sklearn(X, y, sv, ls, nv)
    _, sk_grad = sk.log_marginal_likelihood(sk.kernel_.theta, eval_gradient=True)
    # sklearn's analytic gradient (R&W eq. 5.9) in the same log coordinates: float64 round-off.
    np.testing.assert_allclose(grad, sk_grad, rtol=1e-6, atol=1e-8)

    # Central differences in log space, h = 1e-5: truncation O(h²) ~ 1e-9 and round-off
    # eps·|lml|/h ~ 1e-9 for |lml| ~ 500, so 1e-6 absolute.
    theta = _theta(params)
    d = theta.size
    h = 1e-5

    def lml_at(t):
        p = gp.GPParams(jnp.asarray(t[0]), jnp.asarray(t[1:d - 1].reshape(np.shape(ls))),
                        jnp.asarray(t[d - 1]))
        return float(gp.log_marginal_likelihood(p, X, y))

    fd = np.array([(lml_at(theta + h * e) - lml_at(theta - h * e)) / (2 * h) for e in np.eye(d)])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["faithful", "yacht-ard", "synthetic-ard"])
def test_predict_matches_sklearn(name, both_precisions):
    X, y, sv, ls, nv = _case(name)
    tol = _tols(both_precisions)
    X_new = _predict_inputs(X)
    sk = _sklearn(X, y, sv, ls, nv)
    ref_mean, ref_std = sk.predict(X_new, return_std=True)
    _, ref_cov = sk.predict(X_new, return_cov=True)

    post = gp.fit(X, y, gp.make_params(sv, ls, nv)).params
    assert float(post.jitter) == 0.0
    mean, var = gp.predict(post, X_new)  # include_noise=True, as sklearn's WhiteKernel diag
    np.testing.assert_allclose(mean, ref_mean, atol=tol["mean_atol"], rtol=tol["std_rtol"])
    np.testing.assert_allclose(np.sqrt(var), ref_std, rtol=tol["std_rtol"])
    mean_c, cov = gp.predict(post, X_new, full_cov=True)
    np.testing.assert_allclose(mean_c, mean, rtol=0, atol=tol["mean_atol"])
    np.testing.assert_allclose(cov, ref_cov, atol=tol["std_rtol"] * sv, rtol=tol["std_rtol"])
    np.testing.assert_allclose(np.diag(np.asarray(cov)), var, atol=tol["std_rtol"] * sv)
    # Latent-function variance excludes σ_n² exactly (R&W eq. 2.26 vs 2.24 + noise).
    _, var_f = gp.predict(post, X_new, include_noise=False)
    np.testing.assert_allclose(var_f, ref_std**2 - nv, atol=tol["std_rtol"] * sv)
    _, cov_f = gp.predict(post, X_new, full_cov=True, include_noise=False)
    np.testing.assert_allclose(cov_f, ref_cov - nv * np.eye(len(X_new)), atol=tol["std_rtol"] * sv)


def test_centering_matches_sklearn_on_centred_targets(x64):
    X, y, sv, ls, nv = _case("faithful")
    y = y + 3.0  # a non-zero constant mean
    ybar = y.mean()
    sk = _sklearn(X, y - ybar, sv, ls, nv)
    params = gp.make_params(sv, ls, nv)
    np.testing.assert_allclose(gp.log_marginal_likelihood(params, X, y, center=True),
                               sk.log_marginal_likelihood(sk.kernel_.theta), rtol=1e-6)
    post = gp.fit(X, y, params, center=True).params
    np.testing.assert_allclose(post.y_mean, ybar, rtol=1e-12)
    X_new = np.linspace(-3.0, 3.0, 20)[:, None]   # 20 rows: predict_matches_sklearn's program
    ref_mean, ref_std = sk.predict(X_new, return_std=True)
    mean, var = gp.predict(post, X_new)
    np.testing.assert_allclose(mean, ref_mean + ybar, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.sqrt(var), ref_std, rtol=1e-6)


@pytest.mark.parametrize("name", ["faithful", "yacht-ard", "synthetic-ard"])
def test_fit_hyperparameters_reaches_sklearn_optimum(name, x64):
    X, y, sv, ls, nv = _case(name)
    sk = _sklearn(X, y, sv, ls, nv, optimizer="fmin_l_bfgs_b", n_restarts_optimizer=0)
    res = gp.fit_hyperparameters(X, y, gp.make_params(sv, ls, nv),
                                 optimizer=optax.adam(0.05), max_iter=250)
    ours = float(gp.log_marginal_likelihood(res.params, X, y))
    assert res.history.shape == (251,)
    assert int(res.n_skipped) == 0
    # history[0] is the start, history[-1] the returned parameters.
    np.testing.assert_allclose(res.history[-1], -ours, rtol=1e-10)
    np.testing.assert_allclose(res.history[0],
                               -sk.log_marginal_likelihood(_theta(gp.make_params(sv, ls, nv))),
                               rtol=1e-6)
    # Same start, same objective: Adam must get at least as high as L-BFGS-B, up to 1e-3 nats
    # (the L-BFGS-B stopping tolerance is of that order).
    ref = sk.log_marginal_likelihood_value_
    assert ours >= ref - 1e-3, (ours, ref)


# ----------------------------------------------------------------------------- sampling


def test_sample_posterior_moments(both_precisions):
    X, y, sv, ls, nv = _case("faithful")
    post = gp.fit(X, y, gp.make_params(sv, ls, nv)).params
    X_new = np.array([[-1.5], [-1.4], [0.3], [3.5]])  # close pair, interior, extrapolation
    n = 4000
    for include_noise in (False, True):
        mean, cov = (np.asarray(a, np.float64) for a in
                     gp.predict(post, X_new, full_cov=True, include_noise=include_noise))
        draws = gp.sample_posterior(jax.random.key(0), post, X_new, n,
                                    include_noise=include_noise)
        assert draws.shape == (n, 4) and draws.dtype == np.dtype(both_precisions)
        draws = np.asarray(draws, np.float64)
        # 6 standard errors: se(mean_i) = sqrt(Σ_ii / n), se(cov_ij) ≈ sqrt((Σ_ij² + Σ_ii Σ_jj)/n).
        se_mean = np.sqrt(np.diag(cov) / n)
        assert np.all(np.abs(draws.mean(0) - mean) < 6 * se_mean)
        se_cov = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / n)
        assert np.all(np.abs(np.cov(draws, rowvar=False) - cov) < 6 * se_cov)
    # Same key, same draws (n as above: the compiled program is reused).
    a = gp.sample_posterior(jax.random.key(1), post, X_new, n)
    b = gp.sample_posterior(jax.random.key(1), post, X_new, n)
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- numerics


def test_jitter_fallback_on_replicated_inputs():
    # 5 distinct inputs, each 20 times, σ_n² = 1e-12: K + σ_n² I is singular to float32
    # precision, so the plain Cholesky fails and jitter must be added.
    rng = np.random.default_rng(0)
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    X = np.repeat(x, 20)[:, None]
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=100)
    params = gp.make_params(1.0, 1.0, 1e-12)
    post = gp.fit(X, y, params).params
    # First try of the documented schedule: sqrt(eps32) x mean diagonal (= σ_f² = 1).
    np.testing.assert_allclose(float(post.jitter), np.sqrt(np.finfo(np.float32).eps), rtol=1e-6)
    mean, var = gp.predict(post, x[:, None])
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(var))
    # Almost noise-free replicates: the posterior mean at an input tends to the average of its
    # replicates as the noise -> 0. With j = 3.5e-4 the model shrinks it by O(j / 20) ~ 1e-5 and
    # float32 round-off is ~ eps32 · cond ~ eps32 · n / j ~ 3e-5 (observed 3.3e-4 max), so 1e-3.
    np.testing.assert_allclose(mean, y.reshape(5, 20).mean(1), atol=1e-3)
    assert np.all(var < 1e-2)  # noise-free fit at the data: latent + jitter-size variance only
    lml, grad = jax.value_and_grad(gp.log_marginal_likelihood)(params, X, y)
    assert np.isfinite(lml)
    assert all(np.all(np.isfinite(g)) for g in grad)


def test_cholesky_jitter_reports_failure():
    chol = jax.jit(gp._cholesky_jitter)   # one program for both calls, not op-by-op dispatch
    L, jitter = chol(jnp.array([[1.0, 0.0], [0.0, -1.0]]))
    assert np.isnan(jitter)
    L, jitter = chol(jnp.array([[4.0, 2.0], [2.0, 5.0]]))
    assert float(jitter) == 0.0
    np.testing.assert_allclose(L, np.linalg.cholesky(np.array([[4.0, 2.0], [2.0, 5.0]])))


def test_nonfinite_steps_are_skipped(x64):
    # Old Faithful, ADAM and max_iter=20 as in test_composes_with_vmap_and_user_jit, and the
    # float64 Old Faithful fit and evidence of the sklearn tests: all programs are shared.
    X, y = _faithful()
    # exp(800) overflows: the loss is NaN at the start, so every step is skipped.
    bad = gp.GPParams(jnp.asarray(800.0), jnp.asarray(0.0), jnp.asarray(-1.0))
    res = gp.fit_hyperparameters(X, y, bad, optimizer=ADAM, max_iter=20)
    assert int(res.n_skipped) == 20
    for a, b in zip(res.params, bad, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not finite"):
        gp.log_marginal_likelihood(bad, X, y)
    with pytest.raises(ValueError, match="not positive definite"):
        gp.fit(X, y, bad)


def test_rbf_kernel_closed_form(x64):
    rng = np.random.default_rng(2)
    X1, X2 = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
    ls = np.array([0.5, 1.0, 2.0])
    K = gp.rbf_kernel(gp.make_params(1.7, ls, 0.1), X1, X2)
    d2 = (((X1[:, None, :] - X2[None, :, :]) / ls) ** 2).sum(-1)
    np.testing.assert_allclose(K, 1.7 * np.exp(-0.5 * d2), rtol=1e-12)
    K11 = gp.rbf_kernel(gp.make_params(1.7, ls, 0.1), X1)
    np.testing.assert_allclose(np.diag(np.asarray(K11)), 1.7, rtol=1e-12)


# ----------------------------------------------------------------------------- jit / transforms


def test_jit_and_no_jit_agree(x64):
    # Eager mode compiles each primitive once per shape, a cost that does not grow with n, so
    # the full synthetic-ard data and the prediction inputs of test_predict_matches_sklearn
    # are used: the jitted fit, evidence and prediction are the programs those tests compile,
    # and sampling at the same inputs reuses most of the eager prediction's primitives.
    X, y, sv, ls, nv = _case("synthetic-ard")
    params = gp.make_params(sv, ls, nv)
    X_new = _predict_inputs(X)

    def run():
        post = gp.fit(X, y, params).params
        return (gp.log_marginal_likelihood(params, X, y), *gp.predict(post, X_new),
                gp.sample_posterior(jax.random.key(3), post, X_new, 2))

    jitted = run()
    with jax.disable_jit():
        eager = run()
    for a, b in zip(jitted, eager, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_second_call_does_not_recompile():
    X, y = _faithful()
    p1, p2 = gp.make_params(1.0, 0.8, 0.2), gp.make_params(2.0, 0.5, 0.1)
    opt = optax.adam(0.05)
    gp.predict(gp.fit(X, y, p1).params, X[:20])
    gp.fit_hyperparameters(X, y, p1, optimizer=opt, max_iter=3)
    gp.log_marginal_likelihood(p1, X, y)
    sizes = [f._cache_size() for f in (gp._fit_impl, gp._predict_impl, gp._fit_hyper_impl,
                                       gp._lml_impl)]
    gp.predict(gp.fit(X + 1.0, 2.0 * y, p2).params, X[20:40] - 1.0)
    gp.fit_hyperparameters(X + 1.0, y, p2, optimizer=opt, max_iter=3)
    gp.log_marginal_likelihood(p2, X + 1.0, y)
    assert sizes == [f._cache_size() for f in (gp._fit_impl, gp._predict_impl,
                                               gp._fit_hyper_impl, gp._lml_impl)]


def test_composes_with_vmap_and_user_jit(x64):
    X, y, sv, ls, nv = _case("faithful")
    params = gp.make_params(sv, ls, nv)
    grid = jnp.log(jnp.array([0.05, 0.2, 1.0]))
    batched = jax.vmap(lambda lv: gp.log_marginal_likelihood(
        params._replace(log_noise_var=lv), X, y))(grid)
    looped = [gp.log_marginal_likelihood(params._replace(log_noise_var=lv), X, y) for lv in grid]
    np.testing.assert_allclose(batched, looped, rtol=1e-10)
    g_jit = jax.jit(jax.grad(gp.log_marginal_likelihood))(params, X, y)
    g = jax.grad(gp.log_marginal_likelihood)(params, X, y)
    np.testing.assert_allclose(_theta(g_jit), _theta(g), rtol=1e-10)
    # Forward mode works too (the custom derivative is a JVP rule).
    g_fwd = jax.jacfwd(gp.log_marginal_likelihood)(params, X, y)
    np.testing.assert_allclose(_theta(g_fwd), _theta(g), rtol=1e-10)
    # Restarts as a vmap over starting points equal separate fits.
    opt = ADAM
    starts = jax.tree.map(lambda a, b: jnp.stack([a, b]), params,
                          gp.make_params(0.3, 2.0, 0.05))
    batched = jax.vmap(lambda p: gp.fit_hyperparameters(X, y, p, optimizer=opt,
                                                        max_iter=20))(starts)
    for i in range(2):
        single = gp.fit_hyperparameters(X, y, jax.tree.map(operator.itemgetter(i), starts),
                                        optimizer=opt, max_iter=20)
        np.testing.assert_allclose(batched.history[i], single.history, rtol=1e-9)


# ----------------------------------------------------------------------------- bad input


def _good():
    X, y = _faithful()
    return X, y, gp.make_params(1.0, 0.8, 0.2)


def _with_nan(a, where=0):
    a = np.array(a, dtype=np.float64)
    a.flat[where] = np.nan
    return a


@pytest.mark.parametrize("call, err, match", [
    (lambda X, y, p: gp.fit(_with_nan(X), y, p), ValueError, "X contains NaN"),
    (lambda X, y, p: gp.fit(X, np.where(np.arange(len(y)) == 3, np.inf, y), p),
     ValueError, "y contains inf"),
    (lambda X, y, p: gp.fit(X[:, 0], y, p), ValueError, r"X must be 2-D"),
    (lambda X, y, p: gp.fit(X, y[:, None], p), ValueError, r"y must be 1-D"),
    (lambda X, y, p: gp.fit(X[:-1], y, p), ValueError, "same number of rows"),
    (lambda X, y, p: gp.fit(X, y, (0.0, 0.0, 0.0)), TypeError, "params must be a GPParams"),
    (lambda X, y, p: gp.fit(X, y, p._replace(log_noise_var=jnp.asarray(jnp.nan))), ValueError,
     "params.log_noise_var contains NaN"),
    (lambda X, y, p: gp.fit(X, y, gp.make_params(1.0, [1.0, 2.0], 0.1)), ValueError,
     "2 ARD length-scales but the inputs have 1 features"),
    (lambda X, y, p: gp.log_marginal_likelihood(p, X, y[:10]), ValueError, "same number of rows"),
    (lambda X, y, p: gp.predict(gp.fit(X, y, p).params, np.ones((3, 2))), ValueError,
     "X_new has 2 columns but the fitted model has 1"),
    (lambda X, y, p: gp.predict(gp.fit(X, y, p).params, _with_nan(np.ones((3, 1)))), ValueError,
     "X_new contains NaN"),
    (lambda X, y, p: gp.predict(p, X), TypeError, "post must be a GPPosterior"),
    (lambda X, y, p: gp.sample_posterior(jax.random.key(0), gp.fit(X, y, p).params, X, 0),
     ValueError,
     "n_samples must be >= 1"),
    (lambda X, y, p: gp.sample_posterior(0, gp.fit(X, y, p).params, X, 3), TypeError, "key"),
    (lambda X, y, p: gp.fit_hyperparameters(X, y, p, optimizer=None, max_iter=3), TypeError,
     "optimizer must be an optax.GradientTransformation"),
    (lambda X, y, p: gp.fit_hyperparameters(X, y, p, optimizer=optax.sgd(0.1), max_iter=0),
     ValueError, "max_iter must be >= 1"),
    (lambda X, y, p: gp.fit_hyperparameters(X, y, p, optimizer=optax.sgd(0.1), max_iter=2.0),
     TypeError, "max_iter must be an int"),
    (lambda X, y, p: gp.rbf_kernel(p, X, np.ones((2, 3))), ValueError, "X2 has 3"),
    (lambda X, y, p: gp.make_params(0.0, 1.0, 1.0), ValueError, "signal_var must be > 0"),
    (lambda X, y, p: gp.make_params(1.0, 1.0, -0.1), ValueError, "noise_var must be > 0"),
    (lambda X, y, p: gp.make_params(1.0, [1.0, -1.0], 0.1), ValueError,
     "length_scale must be > 0"),
    (lambda X, y, p: gp.make_params(1.0, [1.0, np.nan], 0.1), ValueError,
     "length_scale contains NaN"),
    (lambda X, y, p: gp.make_params(np.nan, 1.0, 0.1), ValueError, "signal_var must be finite"),
    (lambda X, y, p: gp.make_params(1.0, np.ones((2, 2)), 0.1), ValueError,
     "length_scale must be 0-D or 1-D"),
    (lambda X, y, p: gp.make_params(1.0, "1", 0.1), TypeError, "length_scale"),
])
def test_bad_input(call, err, match):
    X, y, p = _good()
    with pytest.raises(err, match=match):
        call(X, y, p)
