"""Least squares / ridge: checked against numpy.linalg.lstsq and scikit-learn Ridge."""

import jax
import numpy as np
import pytest
from sklearn.linear_model import Ridge

from espresso_jax.datasets import load_faithful
from espresso_jax.linear import regression

# Well-conditioned random designs (cond ~ 3): float32 solutions agree with float64 references
# to ~10 eps * cond; 2e-5 relative leaves margin. float64 agrees to rounding.
RTOL = {"float32": 2e-5, "float64": 1e-10}


def _data(n=40, d=5, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    Phi = rng.standard_normal((n, d))
    t = Phi @ rng.standard_normal(d) + noise * rng.standard_normal(n)
    return Phi, t


def test_matches_lstsq(both_precisions):
    Phi, t = _data()
    fit = regression.fit_least_squares(Phi, t)
    w, res, rank, sv = np.linalg.lstsq(Phi, t, rcond=None)
    np.testing.assert_allclose(fit.params.w, w, rtol=RTOL[both_precisions])
    np.testing.assert_allclose(fit.rss, res[0], rtol=10 * RTOL[both_precisions])
    # PRML eq. 3.21: 1/beta_ML is the mean squared residual.
    np.testing.assert_allclose(fit.params.beta, Phi.shape[0] / res[0],
                               rtol=10 * RTOL[both_precisions])
    assert int(fit.rank) == rank
    np.testing.assert_allclose(fit.singular_values, sv, rtol=RTOL[both_precisions])
    np.testing.assert_allclose(regression.predict(fit.params, Phi), Phi @ w,
                               rtol=10 * RTOL[both_precisions], atol=1e-5)


def test_real_data_faithful(x64):
    """Old Faithful: waiting time against eruption length (1, x, x^2)."""
    data = load_faithful()
    x, t = data[:, 0], data[:, 1]
    Phi = np.vander(x, 3, increasing=True)
    fit = regression.fit_least_squares(Phi, t)
    w, res, _, _ = np.linalg.lstsq(Phi, t, rcond=None)
    np.testing.assert_allclose(fit.params.w, w, rtol=1e-10)
    np.testing.assert_allclose(fit.params.beta, len(t) / res[0], rtol=1e-10)


def test_rank_deficient_gives_minimum_norm(x64):
    Phi, t = _data()
    Phi = np.concatenate([Phi, Phi[:, :1]], axis=1)          # duplicated column: rank 5 of 6
    fit = regression.fit_least_squares(Phi, t)
    w, res, rank, _ = np.linalg.lstsq(Phi, t, rcond=None)
    assert int(fit.rank) == rank == 5
    np.testing.assert_allclose(fit.params.w, w, rtol=1e-9)           # the minimum-norm solution


def test_underdetermined_interpolates(x64):
    Phi, t = _data(n=4, d=7)
    fit = regression.fit_least_squares(Phi, t)
    np.testing.assert_allclose(fit.params.w, np.linalg.pinv(Phi) @ t, rtol=1e-9)
    assert float(fit.rss) < 1e-20
    assert np.isfinite(float(fit.params.beta))                       # floored, not inf


@pytest.mark.parametrize("ridge", [1e-3, 0.5, 10.0])
def test_ridge_matches_sklearn(both_precisions, ridge):
    Phi, t = _data()
    fit = regression.fit_least_squares(Phi, t, ridge=ridge)
    ref = Ridge(alpha=ridge, fit_intercept=False, solver="cholesky").fit(Phi, t)
    np.testing.assert_allclose(fit.params.w, ref.coef_, rtol=RTOL[both_precisions])
    # and the closed form (Phi^T Phi + lambda I)^{-1} Phi^T t (PRML eq. 3.28)
    closed = np.linalg.solve(Phi.T @ Phi + ridge * np.eye(Phi.shape[1]), Phi.T @ t)
    np.testing.assert_allclose(fit.params.w, closed, rtol=RTOL[both_precisions])


def test_jit_and_nojit_agree_and_no_recompile():
    Phi, t = _data()
    fit = regression.fit_least_squares(Phi, t, ridge=0.1)
    size = regression._fit_impl._cache_size()
    regression.fit_least_squares(Phi, t + 1.0, ridge=2.0)    # new values, same shapes
    assert regression._fit_impl._cache_size() == size
    with jax.disable_jit():
        eager = regression.fit_least_squares(Phi, t, ridge=0.1)
    np.testing.assert_allclose(eager.params.w, fit.params.w, rtol=1e-5)


@pytest.mark.parametrize("call, err, match", [
    (lambda P, t: regression.fit_least_squares(P[:, 0], t), ValueError, "^X must be 2-D"),
    (lambda P, t: regression.fit_least_squares(P, t[:-1]), ValueError, "same number of rows"),
    (lambda P, t: regression.fit_least_squares(P, np.where(t > 0, np.nan, t)), ValueError,
     "^y contains NaN"),
    (lambda P, t: regression.fit_least_squares(np.where(P > 1, np.inf, P), t), ValueError,
     "^X contains inf"),
    (lambda P, t: regression.fit_least_squares(P, t.astype(str)), TypeError, "^y must have"),
    (lambda P, t: regression.fit_least_squares(P, t, ridge=-1.0), ValueError, "ridge"),
    (lambda P, t: regression.predict(P, P), TypeError, "params must be a LeastSquaresParams"),
    (lambda P, t: regression.predict(regression.fit_least_squares(P, t).params, P[:, :2]),
     ValueError, "^X_new has 2 columns"),
])
def test_bad_input(call, err, match):
    Phi, t = _data()
    with pytest.raises(err, match=match):
        call(Phi, t)
