"""The Laplace UCIMethod (espresso_jax.apps.uci.laplace): its finalize/predict pair against an
independent computation (numpy marginal likelihood over the grid, the last layer's posterior
from espresso_jax.linear.bayes), and a cheap protocol run on yacht."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from espresso_jax.apps.uci import protocol as uci
from espresso_jax.apps.uci.laplace import LaplaceHParams, laplace_method
from espresso_jax.datasets.uci import load_uci
from espresso_jax.linear import bayes

OPT = optax.adam(1e-3)  # one object: the jitted protocol is keyed on it


def test_finalize_tunes_the_prior_by_marglik_and_predict_is_the_glm_predictive():
    # Last-layer, full GGN: the Laplace log marginal likelihood at the trained last layer θ is
    # ln N(y | Φθ, 1/τ) − ½ (ln|τΦᵀΦ + δI| − P ln δ + δ θᵀθ), written here in numpy; the GLM
    # predictive is that of Bayesian linear regression on Φ (linear.bayes) at (δ*, τ).
    method = laplace_method()
    rng = np.random.default_rng(0)
    X, X_new = rng.normal(size=(40, 4)), rng.normal(size=(5, 4))
    y = np.sin(X[:, 0]) + 0.2 * rng.normal(size=40)
    tau = 4.0
    with jax.enable_x64(True):
        params = method.init(jax.random.key(0), 4, 8)
        state = method.finalize(jax.random.key(1), params, jnp.asarray(X), jnp.asarray(y),
                                LaplaceHParams(jnp.asarray(tau)), 40)
        means, precs = method.predict(jax.random.key(2), state, jnp.asarray(X_new),
                                      LaplaceHParams(jnp.asarray(tau)), 1)
        (W0, b0), (W1, b1) = (tuple(np.asarray(a) for a in layer) for layer in params)
        phi = np.c_[np.maximum(X @ W0 + b0, 0), np.ones(40)]
        phi_new = np.c_[np.maximum(X_new @ W0 + b0, 0), np.ones(5)]
        theta = np.r_[W1[:, 0], b1]
        r = y - phi @ theta
        loglik = -0.5 * tau * r @ r + 20 * np.log(tau / (2 * np.pi))
        grid = np.geomspace(1e-4, 1e4, 41)
        lml = [loglik - 0.5 * (np.linalg.slogdet(tau * phi.T @ phi + d * np.eye(9))[1]
                               - 9 * np.log(d) + d * theta @ theta) for d in grid]
        best = grid[int(np.argmax(lml))]
        ref = bayes.predict(bayes.posterior(phi, y, alpha=best, beta=tau), phi_new, beta=tau)
        np.testing.assert_allclose(float(state.prior_precision), best, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(means)[0], phi_new @ theta, rtol=1e-10)
        np.testing.assert_allclose(1 / np.asarray(precs)[0], ref.var, rtol=1e-8)


def test_diagonal_last_layer_with_sampled_predictive():
    # Diagonal GGN of the last layer: τ diag(ΦᵀΦ) + δ, δ* the numpy argmax of the diagonal
    # Laplace marginal likelihood; the sampled predictive (T = 4000 draws) then has mean φᵀθ
    # and variance Σ_j φ_j² / (τ (ΦᵀΦ)_jj + δ*). Measured over keys 0..9: mean error ≤ 0.028
    # sd, variance error ≤ 0.065 relative; bounds 0.06 and 0.12.
    method = laplace_method(structure="diag", predictive="sample")
    rng = np.random.default_rng(0)
    X, X_new = rng.normal(size=(40, 4)), rng.normal(size=(5, 4))
    y = np.sin(X[:, 0]) + 0.2 * rng.normal(size=40)
    tau = 4.0
    with jax.enable_x64(True):
        params = method.init(jax.random.key(0), 4, 8)
        hp = LaplaceHParams(jnp.asarray(tau))
        state = method.finalize(jax.random.key(1), params, jnp.asarray(X), jnp.asarray(y), hp,
                                40)
        means, precs = method.predict(jax.random.key(3), state, jnp.asarray(X_new), hp, 4000)
        (W0, b0), (W1, b1) = (tuple(np.asarray(a) for a in layer) for layer in params)
        delta = float(state.prior_precision)
        means, precs = np.asarray(means), np.asarray(precs)
    phi = np.c_[np.maximum(X @ W0 + b0, 0), np.ones(40)]
    phi_new = np.c_[np.maximum(X_new @ W0 + b0, 0), np.ones(5)]
    theta = np.r_[W1[:, 0], b1]
    ggn = tau * (phi ** 2).sum(0)
    r = y - phi @ theta
    loglik = -0.5 * tau * r @ r + 20 * np.log(tau / (2 * np.pi))
    grid = np.geomspace(1e-4, 1e4, 41)
    lml = [loglik - 0.5 * (np.sum(np.log(ggn + d)) - 9 * np.log(d) + d * theta @ theta)
           for d in grid]
    np.testing.assert_allclose(delta, grid[int(np.argmax(lml))], rtol=1e-12)
    var = (phi_new ** 2) @ (1 / (ggn + delta))
    assert means.shape == (4000, 5)
    np.testing.assert_allclose(precs, tau)
    assert np.max(np.abs(means.mean(0) - phi_new @ theta) / np.sqrt(var)) < 0.06
    assert np.max(np.abs(means.var(0) / var - 1)) < 0.12


@pytest.mark.parametrize("kwargs", [dict(grid_min=0.0), dict(subset="first"),
                                    dict(predictive="mean"), dict(grid_size=0)])
def test_method_arguments_are_checked(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        laplace_method(**kwargs)


def test_protocol_run_on_yacht():
    yacht = load_uci("yacht")
    with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        r = uci.run_protocol(jax.random.key(0), yacht, laplace_method(), optimizer=OPT,
                             progress=False, n_splits=2, n_epochs=40, n_samples=4,
                             n_samples_val=4)
    assert r.method == "laplace_last_layer_full_glm"
    assert r.rmse.shape == r.log_likelihood.shape == (2,)
    assert np.all(np.isfinite(r.val_log_likelihood)) and np.all(np.isfinite(r.log_likelihood))
    # 40 epochs underfit, but the MAP mean must beat the training mean (RMSE ~ y's std)
    assert np.all(r.rmse < 0.9 * yacht.y.std())
