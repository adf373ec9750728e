"""Laplace for networks (espresso_jax.bnn.laplace): last-layer evidence against scikit-learn's
BayesianRidge, KFAC factors against layer-wise expectations computed here with numpy, the
KFAC posterior algebra against dense numpy, prior tuning by grid and by gradient, weight
sampling, predictives and input checks. All float64. (laplace-torch: test_bnn_laplace_torch.)
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from sklearn.linear_model import BayesianRidge

from espresso_jax.bnn import laplace as L
from espresso_jax.bnn.laplace.curvature import jacobians
from espresso_jax.bnn.laplace.posterior import log_det_precision, sample_weights
from espresso_jax.linear import bayes

PRIOR = 1.5


def _mlp(rng, sizes):
    return tuple((0.8 * rng.normal(size=(a, b)), 0.3 * rng.normal(size=b))
                 for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def _softmax(f):
    e = np.exp(f - f.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# ------------------------------------------------------------- last layer vs BayesianRidge

@pytest.fixture(scope="module")
def ridge():
    rng = np.random.default_rng(3)
    params = _mlp(rng, (3, 6, 1))
    X, X_new = rng.normal(size=(60, 3)), rng.normal(size=(9, 3))
    y = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] + 0.1 * rng.normal(size=60)
    (W0, b0) = params[0]
    phi = np.c_[np.tanh(X @ W0 + b0), np.ones(60)]
    phi_new = np.c_[np.tanh(X_new @ W0 + b0), np.ones(9)]
    ref = BayesianRidge(fit_intercept=False, tol=1e-13, max_iter=10_000,
                        compute_score=True).fit(phi, y)
    mean_ref, std_ref = ref.predict(phi_new, return_std=True)
    return params, X, y, X_new, ref, mean_ref, std_ref


def test_last_layer_evidence_equals_bayesian_ridge(ridge):
    # Both run MacKay's fixed point with Gamma(1e-6, 1e-6) hyperpriors on the same frozen
    # features: 1e-5 relative (float64; the fixed points agree to ~1e-10).
    params, X, y, X_new, ref, mean_ref, std_ref = ridge
    with jax.enable_x64(True):
        ev = L.last_layer_evidence(params, X, y, tol=1e-13, max_iter=10_000)
        pred = bayes.predict(ev.params, L.last_layer_features(params, X_new))
        assert bool(ev.converged)
        np.testing.assert_allclose(ev.params.mean, ref.coef_, rtol=1e-5)
        np.testing.assert_allclose(ev.params.alpha, ref.lambda_, rtol=1e-5)
        np.testing.assert_allclose(ev.params.beta, ref.alpha_, rtol=1e-5)
        np.testing.assert_allclose(ev.params.cov, ref.sigma_, rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(pred.mean, mean_ref, rtol=1e-5)
        np.testing.assert_allclose(np.sqrt(pred.var), std_ref, rtol=1e-5)


def test_generic_last_layer_laplace_is_exact_at_the_ridge_solution(ridge):
    # The GGN path (curvature, log marginal likelihood, GLM predictive) on a network whose
    # last layer is BayesianRidge's posterior mean: the model is linear-Gaussian in the last
    # layer, so the Laplace evidence is exact and equals sklearn's score minus its hyperprior
    # terms (its _log_marginal_likelihood, documented formula).
    params, X, y, X_new, ref, mean_ref, std_ref = ridge
    last = (ref.coef_[:-1, None], ref.coef_[-1:])
    hyper = (1e-6 * math.log(ref.lambda_) - 1e-6 * ref.lambda_
             + 1e-6 * math.log(ref.alpha_) - 1e-6 * ref.alpha_)
    with jax.enable_x64(True):
        fit = L.fit_laplace((params[0], last), X, y, likelihood="regression",
                            structure="full", subset="last_layer", noise_precision=ref.alpha_)
        lml = float(L.log_marginal_likelihood(fit, ref.lambda_))
        mean, var = L.regression_predictive(fit, ref.lambda_, X_new)
    np.testing.assert_allclose(lml, ref.scores_[-1] - hyper, rtol=1e-8)
    np.testing.assert_allclose(np.asarray(mean)[:, 0], mean_ref, rtol=1e-8)
    np.testing.assert_allclose(np.sqrt(np.asarray(var)[:, 0]), std_ref, rtol=1e-8)


# ------------------------------------------------------------------- KFAC

@pytest.fixture(scope="module")
def cls():
    rng = np.random.default_rng(5)
    params = _mlp(rng, (3, 5, 3))
    X, X_new = rng.normal(size=(25, 3)), rng.normal(size=(6, 3))
    y = rng.integers(0, 3, size=25)
    with jax.enable_x64(True), jax.numpy_dtype_promotion("strict"), \
            jax.numpy_rank_promotion("raise"):
        kron = L.fit_laplace(params, X, y, likelihood="classification", structure="kron")
        full = L.fit_laplace(params, X, y, likelihood="classification", structure="full")
    return params, X, y, X_new, kron, full


def test_kfac_factors_are_layerwise_expectations(cls):
    params, X, y, _, kron, _ = cls
    (W0, b0), (W1, b1) = params
    h = np.tanh(X @ W0 + b0)
    p = _softmax(h @ W1 + b1)
    lam = np.stack([np.diag(q) - np.outer(q, q) for q in p])           # (n, 3, 3)
    J0 = W1.T[None] * (1 - h ** 2)[:, None, :]                          # ∂f/∂s_0: (n, 3, 5)
    x1, h1 = np.c_[X, np.ones(25)], np.c_[h, np.ones(25)]
    A_ref = [np.einsum("ni,nj->ij", x1, x1) / 25, np.einsum("ni,nj->ij", h1, h1) / 25]
    G_ref = [np.einsum("nco,ncd,ndq->oq", J0, lam, J0) / 25, lam.mean(0)]
    for got, want in zip(kron.curvature.A + kron.curvature.G, A_ref + G_ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    assert float(kron.curvature.n_data) == 25


def test_kfac_factors_of_a_regression_carry_the_noise_precision(ridge):
    # Gaussian likelihood: Λ = β, so G_1 = β and G_0 = β E[J_0ᵀ J_0] with J_0 = W_1ᵀ ∘ (1 − h²).
    params, X, y, _, _, _, _ = ridge
    (W0, b0), (W1, _) = params
    with jax.enable_x64(True):
        c = L.fit_laplace(params, X, y, likelihood="regression", structure="kron",
                          noise_precision=3.0).curvature
        A, G = [np.asarray(a) for a in c.A], [np.asarray(g) for g in c.G]
    h = np.tanh(X @ W0 + b0)
    J0 = W1.T * (1 - h ** 2)                                           # (n, 6)
    x1, h1 = np.c_[X, np.ones(60)], np.c_[h, np.ones(60)]
    np.testing.assert_allclose(A[0], x1.T @ x1 / 60, rtol=1e-10)
    np.testing.assert_allclose(A[1], h1.T @ h1 / 60, rtol=1e-10)
    np.testing.assert_allclose(G[0], 3.0 * J0.T @ J0 / 60, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(G[1], [[3.0]], rtol=1e-12)


def test_kfac_posterior_algebra_matches_dense(cls):
    # log |N A⊗G + δI| and J Σ Jᵀ from the per-layer eigendecompositions equal dense numpy on
    # the block-diagonal matrix; on a single row KFAC is exact, so its blocks equal the GGN's.
    params, X, y, X_new, kron, _ = cls
    c = kron.curvature
    blocks = [25 * np.kron(A, G) for A, G in zip(c.A, c.G, strict=True)]
    K = np.block([[blocks[0], np.zeros((20, 18))], [np.zeros((18, 20)), blocks[1]]])
    prec = K + PRIOR * np.eye(38)
    with jax.enable_x64(True):
        logdet = float(log_det_precision(c, PRIOR))
        _, var = L.glm_predictive(kron, PRIOR, X_new)
        _, J = jacobians(params, X_new, "tanh")
        one_k = L.fit_laplace(params, X[:1], y[:1], likelihood="classification",
                              structure="kron").curvature
        one_f = L.fit_laplace(params, X[:1], y[:1], likelihood="classification",
                              structure="full").curvature
    np.testing.assert_allclose(logdet, np.linalg.slogdet(prec)[1], rtol=1e-10)
    J = np.asarray(J)
    want = np.einsum("ncp,pq,ndq->ncd", J, np.linalg.inv(prec), J)
    np.testing.assert_allclose(var, want, rtol=1e-8, atol=1e-12)
    G1 = np.asarray(one_f.ggn)
    np.testing.assert_allclose(np.kron(one_k.A[0], one_k.G[0]), G1[:20, :20], atol=1e-12)
    np.testing.assert_allclose(np.kron(one_k.A[1], one_k.G[1]), G1[20:, 20:], atol=1e-12)


# ------------------------------------------------------------- prior tuning, sampling

def test_grid_and_gradient_tuning_agree(cls):
    _, _, _, _, _, full = cls
    grid = np.logspace(-2, 3, 501)
    step = math.log(10) * 5 / 500
    with jax.enable_x64(True):
        g = L.tune_prior_grid(full, grid)
        r = L.tune_prior_gradient(full, 1.0, n_steps=400, learning_rate=0.05)
        lml_r = float(L.log_marginal_likelihood(full, r.prior_precision))
        values, history = np.asarray(g.log_marglik), np.asarray(r.history)
    best = int(np.argmax(values))
    assert 0 < best < 500                                    # an interior optimum
    assert abs(math.log(float(r.prior_precision)) - math.log(float(g.prior_precision))) <= step
    assert lml_r >= values.max() - 1e-9
    assert history[-1] > history[0]


@pytest.mark.parametrize("which", ["full", "kron"])
def test_sampled_weights_have_the_posterior_covariance(cls, which):
    # max |Ĉ_ij − Σ_ij| / sqrt(Σ_ii Σ_jj) over the 38 x 38 entries, 20 000 draws; measured
    # over keys 0..9: full 0.022-0.031, kron 0.022-0.035; bound 0.05. The mean's largest
    # z-score over those keys was 3.0; bound 4 sd of the widest marginal.
    _, _, _, _, kron, full = cls
    fit = {"full": full, "kron": kron}[which]
    c = fit.curvature
    if which == "full":
        prec = np.asarray(c.ggn) + PRIOR * np.eye(38)
    else:
        blocks = [25 * np.kron(A, G) for A, G in zip(c.A, c.G, strict=True)]
        prec = np.block([[blocks[0], np.zeros((20, 18))], [np.zeros((18, 20)), blocks[1]]])
        prec = prec + PRIOR * np.eye(38)
    cov = np.linalg.inv(prec)
    with jax.enable_x64(True):
        draws = np.asarray(sample_weights(jax.random.key(0), fit, PRIOR, 20_000))
    np.testing.assert_allclose(draws.mean(0), fit.mean, atol=4 * np.sqrt(np.diag(cov).max()
                                                                         / 20_000))
    d = np.sqrt(np.diag(cov))
    err = np.abs(np.cov(draws.T) - cov) / np.outer(d, d)
    assert err.max() < 0.05


def test_predictives_of_a_last_layer_posterior(cls):
    # The network is linear in its last layer, so sampled-weight logits are exactly
    # N(f_mu, J Σ Jᵀ): their moments (4000 draws) and the two MC estimates of E[softmax(f)]
    # agree within measured spreads (keys 1..20: mean error ≤ 0.051 sd, cov error ≤ 0.071
    # relative, probability gap ≤ 0.018; bounds 0.1, 0.12, 0.03); the probit predictive is a
    # distribution and tends to softmax(f_mu) as the variance vanishes.
    params, X, y, X_new, _, _ = cls
    with jax.enable_x64(True):
        fit = L.fit_laplace(params, X, y, likelihood="classification", structure="diag",
                            subset="last_layer")
        f_mu, f_var = L.glm_predictive(fit, PRIOR, X_new)
        logits = np.asarray(L.sample_predictive(jax.random.key(1), fit, PRIOR, X_new,
                                                n_samples=4000))
        mc = np.asarray(L.glm_mc_predictive(jax.random.key(2), f_mu, f_var, n_samples=4000))
        probit = np.asarray(L.probit_predictive(f_mu, f_var))
        sharp = np.asarray(L.probit_predictive(*L.glm_predictive(fit, 1e12, X_new)))
    f_mu, f_var = np.asarray(f_mu), np.asarray(f_var)
    sd = np.sqrt(np.einsum("ncc->nc", f_var))
    assert np.max(np.abs(logits.mean(0) - f_mu) / sd) < 0.1
    emp = np.einsum("snc,snd->ncd", logits - f_mu, logits - f_mu) / 4000
    assert np.max(np.abs(emp - f_var) / (sd[:, :, None] * sd[:, None, :])) < 0.12
    np.testing.assert_allclose(mc, _softmax_rows(logits).mean(0), atol=0.03)
    np.testing.assert_allclose(probit.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(sharp, _softmax(f_mu), rtol=1e-6)


def _softmax_rows(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ------------------------------------------------------------------- input checks

def test_bad_inputs_raise_naming_the_argument(cls):
    params, X, y, _, kron, full = cls
    cases = [
        (lambda: L.fit_laplace(params, X, y, likelihood="poisson"), "likelihood"),
        (lambda: L.fit_laplace(params, X, y, likelihood="classification", structure="block"),
         "structure"),
        (lambda: L.fit_laplace(params, X, y, likelihood="classification", subset="first"),
         "subset"),
        (lambda: L.fit_laplace(params, X, y, likelihood="classification", activation="swish"),
         "activation"),
        (lambda: L.fit_laplace(params[:1] + ((np.ones((4, 3)), np.ones(3)),), X, y,
                               likelihood="classification"), "params"),
        (lambda: L.fit_laplace(params, X[:, :2], y, likelihood="classification"), "X"),
        (lambda: L.fit_laplace(params, X, y + 3, likelihood="classification"), "y"),
        (lambda: L.fit_laplace(params, X, X, likelihood="regression",
                               noise_precision=-1.0), "noise_precision"),
        (lambda: L.log_marginal_likelihood(full, -1.0), "prior_precision"),
        (lambda: L.log_marginal_likelihood(full, np.ones(5)), "prior_precision"),
        (lambda: L.log_marginal_likelihood(kron, np.ones(38)), "prior_precision"),
        (lambda: L.tune_prior_grid(full, [1.0, 0.0]), "grid"),
        (lambda: L.tune_prior_gradient(full, 1.0, n_steps=0), "n_steps"),
        (lambda: L.last_layer_evidence(params, X, y), "params"),
    ]
    with jax.enable_x64(True):
        for call, name in cases:
            with pytest.raises(ValueError, match=name):
                call()
