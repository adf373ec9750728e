"""Default-suite evidence for the linear VAE = PPCA claim (issue 12 §2).

A VAE with an affine encoder and an affine Gaussian decoder with one shared variance is a
probabilistic PCA model whose ELBO, at its optimum, equals the PPCA maximum log-likelihood:
at the ML solution the exact posterior ``N(M^-1 W^T (x - mu), sigma^2 M^-1)`` has a diagonal
covariance (``W^T W`` is diagonal there) and an affine mean, which the encoder can represent, so
the bound is tight (Tipping & Bishop 1999; Lucas et al. 2019). The slow test in
test_nn_vae.py checks this on 500 points with Monte Carlo ELBO and IWAE estimates; here the
fit is small (200 points, full-batch Adam) and the ELBO of the trained parameters is computed
in closed form with numpy, independently of the library:

    E_q log p(x|z) = -D/2 log(2 pi s2)
                     - (||x - W mu - c||^2 + sum_j sigma_j^2 ||W_:j||^2) / (2 s2)
    KL(q || p)     = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)

Cost: about 8 s CPU for the fit (x64, compilation included) and about 5 s for each injected
bug (a fresh compilation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from espresso_jax.mixture import ppca
from espresso_jax.nn import vae, vae_model, vae_objectives

N, D, Q = 200, 5, 2
STEPS = 3000
MODEL = vae.VAE(data_dim=D, latent_dim=Q, hidden=(), likelihood="gaussian", variance="shared")


def _data():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(D, Q)) * np.array([2.0, 1.0])
    return rng.normal(size=(N, Q)) @ W.T + rng.normal(size=D) + 0.5 * rng.normal(size=(N, D))


def closed_form_elbo(params, X):
    """Mean per-point ELBO of the linear Gaussian VAE, exact expectation over q (numpy)."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params["params"])
    mu = X @ p["enc_mean"]["kernel"] + p["enc_mean"]["bias"]                      # (N, Q)
    logvar = np.clip(X @ p["enc_logvar"]["kernel"] + p["enc_logvar"]["bias"], -30, 30)
    W, c = p["decoder"]["dense_0"]["kernel"], p["decoder"]["dense_0"]["bias"]     # (Q, D)
    s = float(np.clip(p["dec_logvar"], -30, 30))
    sq = np.sum((X - mu @ W - c) ** 2, axis=1) + np.exp(logvar) @ np.sum(W**2, axis=1)
    expected_ll = -0.5 * D * (np.log(2 * np.pi) + s) - 0.5 * sq * np.exp(-s)
    kl = 0.5 * np.sum(mu**2 + np.exp(logvar) - 1.0 - logvar, axis=1)
    return float(np.mean(expected_ll - kl))


def _fit(key):
    X = _data()
    best = float(ppca.log_likelihood(ppca.fit(X, Q).params, X))    # closed-form ML optimum
    opt = optax.adam(optax.cosine_decay_schedule(1e-1, STEPS, alpha=0.01))
    res = vae.fit(key, X, module=MODEL, optimizer=opt, batch_size=N, n_epochs=STEPS,
                  estimator="B", progress=False, epochs_per_chunk=STEPS)
    p = res.params["params"]
    # the decoder is a PPCA model: its exact marginal log-likelihood in closed form
    decoder = ppca.PPCAParams(mean=p["decoder"]["dense_0"]["bias"],
                              W=p["decoder"]["dense_0"]["kernel"].T,
                              sigma2=jnp.exp(p["dec_logvar"]))
    exact = float(ppca.log_likelihood(decoder, X))
    return best, exact, closed_form_elbo(res.params, X)


def _check(best, exact, elbo):
    # Measured over fit keys 0-5 (x64, 3000 full-batch steps): best - exact 3.8e-5 to 2.9e-4
    # (key 0: 4.8e-5), best - elbo 6.7e-4 to 5.6e-3 (key 0: 6.7e-4); the slow test's bounds
    # are 5e-3 and 2e-2 (Monte Carlo ELBO).
    assert exact <= best + 1e-9              # nothing beats the ML optimum
    assert elbo <= exact + 1e-9              # the ELBO bounds the marginal likelihood
    assert best - exact < 1e-3, best - exact
    assert best - elbo < 1e-2, best - elbo


def test_linear_vae_elbo_optimum_is_the_ppca_maximum_likelihood(x64):
    _check(*_fit(jax.random.key(0)))


@pytest.mark.parametrize("bug", ["kl_dropped", pytest.param(
    "decoder_variance_as_std", marks=pytest.mark.slow)])
def test_injected_bugs_miss_the_ppca_optimum(x64, monkeypatch, bug):
    # an uncached make_loss gives a fresh loss function, so the step is traced with the bug
    monkeypatch.setattr(vae, "make_loss", vae_objectives.make_loss.__wrapped__)
    if bug == "kl_dropped":
        # measured (keys 0, 1): best - exact 14.6, 29.7; best - elbo 50.9, 83.0
        monkeypatch.setattr(vae_objectives, "kl_to_prior",
                            lambda mu, logvar: jnp.zeros(mu.shape[:-1], mu.dtype))
    else:
        # log-likelihood normalised with log s instead of log s^2: measured (keys 0, 1)
        # best - exact 1.31, 1.32
        original = vae_model.gaussian_log_density

        def wrong(sq, log_det, dim=1):
            return original(sq, 0.5 * log_det, dim)

        monkeypatch.setattr(vae_model, "gaussian_log_density", wrong)
    with pytest.raises(AssertionError):
        _check(*_fit(jax.random.key(0)))
