"""SG-MCMC (espresso_jax.bnn.sgmcmc, sgmcmc_sampler): SGLD and SGHMC reproduce the closed-form
Bayesian linear regression posterior (PRML 3.53-3.54) within Monte-Carlo error, the cyclical
schedule and its sample collection follow Zhang et al.'s formula, the minibatch gradient is
unbiased, the predictives, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.diagnostics import effective_sample_size
from scipy import linalg

from espresso_jax.bnn import sgmcmc
from espresso_jax.bnn import sgmcmc_sampler as sampler
from espresso_jax.linear import bayes_posterior
from espresso_jax.train import epoch_batches

N, D, ALPHA, BETA = 64, 3, 1.0, 4.0
Z = 4.5  # standard errors allowed per compared number (9 numbers per kernel; see below)
Z_SGHMC = 5.0  # looser: see test_sghmc_reproduces_blr_posterior


def _blr_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, D)).astype(np.float32)
    y = X @ np.array([0.5, -1.0, 2.0]) + rng.normal(size=N) / np.sqrt(BETA)
    return X, y.astype(np.float32)


def _log_prior(w):
    return -0.5 * ALPHA * jnp.sum(w ** 2)


def _log_lik(w, example):
    x, t = example
    return -0.5 * BETA * (t - x @ w) ** 2


X_BLR, Y_BLR = _blr_data()
GRAD = sgmcmc.grad_estimator(_log_prior, _log_lik, N)  # one object: jit caches on it
A = ALPHA * np.eye(D) + BETA * X_BLR.T.astype(np.float64) @ X_BLR  # posterior precision
LAM_MAX = float(np.linalg.eigvalsh(A)[-1])  # ~309 (eigenvalues 188, 219, 309)

# Full-batch chains (batch_size = N: the exact gradient), 8 vmapped chains from zero.
SGLD = dict(kernel="sgld", step_size=0.02 / LAM_MAX, n_epochs=12_000, burn_in=1_000,
            thinning=10)
SGHMC = dict(kernel="sghmc", step_size=0.01 / LAM_MAX, friction=0.2, n_epochs=6_000,
             burn_in=1_000, thinning=5)


def stationary_cov(kernel, h, friction=0.0, grad_noise=None):
    """Exact stationary covariance of the discretised chain on the Gaussian target (a linear
    recursion z' = F z + noise: discrete Lyapunov equation, scipy), its step-size bias.

    SGLD: w' = (I - hA) w + sqrt(2h) xi. SGHMC: v' = (1-a) v - hA w + sqrt(2ah) xi,
    w' = w + v' = (I - hA) w + (1-a) v + sqrt(2ah) xi. The mean of both is exactly m_N.
    ``grad_noise``: covariance V of a minibatch gradient's error, added as independent noise
    h^2 V per step (see :func:`minibatch_grad_noise`)."""
    eye = np.eye(D)
    extra = 0.0 if grad_noise is None else h ** 2 * grad_noise
    if kernel == "sgld":
        return linalg.solve_discrete_lyapunov(eye - h * A, 2 * h * eye + extra)
    a = friction
    F = np.block([[eye - h * A, (1 - a) * eye], [-h * A, (1 - a) * eye]])
    Q = np.kron(np.ones((2, 2)), 2 * a * h * eye + extra)  # the same xi drives v' and w'
    return linalg.solve_discrete_lyapunov(F, Q)[:D, :D]


def minibatch_grad_noise(batch_size):
    """Covariance of the N/n-scaled minibatch gradient's error at m_N for n rows drawn without
    replacement: (N^2 / n) (1 - n / N) S^2, S^2 the rows' gradient covariance (1 / (N-1))."""
    post = bayes_posterior.posterior(X_BLR, Y_BLR, alpha=ALPHA, beta=BETA)
    Xd, yd = X_BLR.astype(np.float64), Y_BLR.astype(np.float64)
    rows = BETA * Xd * (yd - Xd @ np.asarray(post.mean, np.float64))[:, None]
    return N ** 2 / batch_size * (1 - batch_size / N) * np.cov(rows.T)


def posterior_errors(samples, settings, grad_noise=None):
    """Errors of the sample mean and covariance in standard errors of the chains' ESS.

    Mean: SE = sqrt(diag S_N / ESS). Covariance entry (i, j): for Gaussian draws the variance
    of the sample covariance is (S_ij^2 + S_ii S_jj) / n, with n the ESS of the centred
    products; the bias allowance is |C_h - S_N| from :func:`stationary_cov`."""
    post = bayes_posterior.posterior(X_BLR, Y_BLR, alpha=ALPHA, beta=BETA)
    m_N, S_N = np.asarray(post.mean, np.float64), np.asarray(post.cov, np.float64)
    s = np.asarray(samples, np.float64)  # (chains, draws, D)
    flat = s.reshape(-1, D)
    mean, cov = flat.mean(0), np.cov(flat.T)
    ess = effective_sample_size(s)
    centred = s - flat.mean(0)
    ess_cov = np.array([[effective_sample_size(centred[..., i] * centred[..., j])[()]
                         for j in range(D)] for i in range(D)])
    bias = np.abs(stationary_cov(settings["kernel"], settings["step_size"],
                                 settings.get("friction", 0.0), grad_noise) - S_N)
    z_mean = (mean - m_N) / np.sqrt(np.diag(S_N) / ess)
    se_cov = np.sqrt((S_N ** 2 + np.outer(np.diag(S_N), np.diag(S_N))) / ess_cov)
    z_cov = np.maximum(np.abs(cov - S_N) - bias, 0.0) / se_cov
    return z_mean, z_cov, ess, bias.max() / np.abs(S_N).max()


def run_blr(key, settings, batch_size=N):
    return sampler.sample(key, GRAD, jnp.zeros(D, jnp.float32),
                          (jnp.asarray(X_BLR), jnp.asarray(Y_BLR)), n_chains=8,
                          batch_size=batch_size, **settings)


@pytest.fixture(scope="module")
def sgld_run():
    with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        return run_blr(jax.random.key(0), SGLD)


def test_sgld_reproduces_blr_posterior(sgld_run):
    # Step-size bias: the mean of the chain is exact (linear drift); its covariance is
    # (A (I - hA/2))^-1, h lambda_max = 0.02: relative bias <= 1 % (asserted below) and
    # allowed for in z_cov (measured 0.62 % of max |S_N|). MC error: ESS ~ 520-1000 per mean
    # (8 chains x 1,100 thinned draws). Spread over keys 0..4 (run_blr + posterior_errors):
    # max |z| over the 9 numbers 1.22 / 1.53 / 1.44 / 1.47 / 1.60; Z = 4.5 leaves room for
    # the ESS estimate's own error and the 18 comparisons of the two kernels. A kernel with
    # noise sqrt(h) instead of sqrt(2h) halves the covariance: z ~ 10.
    z_mean, z_cov, ess, rel_bias = posterior_errors(sgld_run.samples, SGLD)
    assert sgld_run.samples.shape == (8, 1_100, D)
    assert np.all(ess > 400) and rel_bias < 0.01
    assert np.all(np.abs(z_mean) < Z), z_mean
    assert np.all(z_cov < Z), z_cov


def test_sghmc_reproduces_blr_posterior():
    # SGHMC (eta lambda_max = 0.01, friction 0.2): mean exact, covariance bias from the
    # Lyapunov equation (0.17 % of max |S_N|), ESS ~ 550-990 per mean (8 chains x 1,000
    # draws). Looser than SGLD (Z_SGHMC = 5): the underdamped chain's autocorrelation
    # oscillates, so its ESS estimate is less reliable; spread over keys 0..4: max |z|
    # 1.97 / 2.56 / 1.55 / 1.42 / 2.11 (SGLD's at most 1.60).
    with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        run = run_blr(jax.random.key(1), SGHMC)
    z_mean, z_cov, ess, rel_bias = posterior_errors(run.samples, SGHMC)
    assert np.all(ess > 400) and rel_bias < 0.01
    assert np.all(np.abs(z_mean) < Z_SGHMC), z_mean
    assert np.all(z_cov < Z_SGHMC), z_cov


def test_cyclical_schedule_equals_its_formula():
    # Zhang et al. (2020) eq. 1 with 1-based k: h_k = h0/2 (cos(pi mod(k-1, ceil(K/M)) /
    # ceil(K/M)) + 1); the sampling stage is r_k = mod(k-1, L) / L >= beta.
    K, M, h0 = 100, 4, 0.3
    k1 = np.arange(1, K + 1)
    L = int(np.ceil(K / M))
    expected = h0 / 2 * (np.cos(np.pi * np.mod(k1 - 1, L) / L) + 1)
    got = sgmcmc.cyclical_step_size(jnp.arange(K), K, M, jnp.float32(h0))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-7)
    for beta in (0.0, 0.75, 0.8):
        stage = np.asarray(sgmcmc.sampling_stage(jnp.arange(K), K, M, beta))
        np.testing.assert_array_equal(stage, np.mod(k1 - 1, L) / L >= beta)
    with pytest.raises(ValueError, match="n_cycles"):
        sgmcmc.cyclical_step_size(jnp.arange(3), 10, 3, 0.1)


def _drift_grad():
    # log p = sum(w) * c: the gradient is N * mean(c_batch) per coordinate (constant).
    return sgmcmc.grad_estimator(lambda w: jnp.zeros((), w.dtype),
                                 lambda w, c: jnp.sum(w) * c, 8)


DRIFT = _drift_grad()


@pytest.mark.parametrize("kernel, x64", [("sgld", False), ("sghmc", False), ("sghmc", True)])
def test_cyclical_collection_follows_the_schedule(kernel, x64):
    with jax.enable_x64(x64):
        _check_collection(kernel, x64)


def _check_collection(kernel, x64):
    # Noise-free (temperature 0) chain with a constant gradient g = 8: its path has a closed
    # form, so the collected samples show which steps were kept and with which step size.
    # 8 rows in batches of 2: 4 steps per epoch, 25 epochs = 100 steps, 4 cycles of 25,
    # exploration 0.75 -> sampling stage = steps 19..24 of each cycle, thinning 2 keeps
    # 20, 22, 24 (3 per cycle, 12 in all).
    # Under x64 the float64 path agrees to 1e-12 (float32: 1e-5, rounding of 100 sums).
    dtype, rtol = (jnp.float64, 1e-12) if x64 else (jnp.float32, 1e-5)
    K, M, beta, thin, h0, a = 100, 4, 0.75, 2, 0.01, 0.3
    data = jnp.ones((8,), dtype)
    res = sampler.sample(jax.random.key(0), DRIFT, jnp.zeros(2, dtype), data,
                         n_chains=1, kernel=kernel, step_size=h0, batch_size=2, n_epochs=25,
                         n_cycles=M, exploration=beta, thinning=thin, friction=a,
                         temperature=0.0)
    k = np.arange(K)
    h = h0 / 2 * (np.cos(np.pi * (k % 25) / 25) + 1)
    w, v, path = 0.0, 0.0, []
    for hk in h:  # the kernels' updates written out: SGLD w += h g; SGHMC v = (1-a) v + h g
        if kernel == "sgld":
            w += hk * 8
        else:
            v = (1 - a) * v + hk * 8
            w += v
        path.append(w)
    kept = [i for i in k if i % 25 >= 19 and (i % 25 - 19 + 1) % thin == 0]
    assert len(kept) == 12 and res.samples.shape == (1, 12, 2) and res.samples.dtype == dtype
    np.testing.assert_allclose(np.asarray(res.samples[0, :, 0]), np.asarray(path)[kept],
                               rtol=rtol)
    assert sampler.n_collected(K, n_cycles=M, exploration=beta, burn_in=0,
                               thinning=thin) == 12


def test_float32_parameters_stay_float32_under_x64(x64):
    # blackjax's SGLD noise comes out float64 under x64; the kernel keeps the params' dtype
    state = sgmcmc.init_state(jnp.zeros(D, jnp.float32))
    data = (jnp.asarray(X_BLR), jnp.asarray(Y_BLR))
    out = jax.eval_shape(lambda k: sgmcmc.sgld_step(k, state, GRAD, data, 1e-3),
                         jax.random.key(0))
    assert out.position.dtype == jnp.float32


def test_noise_only_in_the_sampling_stage():
    # Zero gradient, 4,000 coordinates: after the chain each coordinate is a sum of the
    # sampling stage's noise, variance sum_{k sampling} 2 h_k (exploration steps add none).
    # The sample variance of 4,000 normals has relative SE sqrt(2/4000) = 2.2 %: 5 SE = 11 %.
    # With noise in every step the variance would be 5.1x larger.
    zero = sgmcmc.grad_estimator(lambda w: jnp.zeros((), w.dtype),
                                 lambda w, c: jnp.zeros((), w.dtype) * c, 4)
    res = sampler.sample(jax.random.key(3), zero, jnp.zeros(4_000, jnp.float32),
                         jnp.ones((4,), jnp.float32), n_chains=1, step_size=0.5,
                         batch_size=4, n_epochs=40, n_cycles=2, exploration=0.5)
    k = np.arange(40)
    h = 0.25 * (np.cos(np.pi * (k % 20) / 20) + 1)
    var = np.var(np.asarray(res.state.position[0], np.float64))
    expected = np.sum(2 * h[k % 20 >= 10])
    assert abs(var / expected - 1) < 0.11, (var, expected, np.sum(2 * h))


def test_minibatch_gradient_is_unbiased():
    # Over the batches of one shuffled epoch (a partition: 64 rows in 4 batches of 16) the
    # mean of the N/n-scaled estimates is the full-data gradient; float32 sums: rtol 1e-5.
    # The full gradient is checked against its closed form -alpha w + beta X^T (y - X w).
    w = jnp.asarray([0.3, -0.2, 1.0], jnp.float32)
    data = (jnp.asarray(X_BLR), jnp.asarray(Y_BLR))
    rows = epoch_batches(jax.random.key(5), N, 16)
    grad = jax.jit(GRAD)
    per_batch = np.stack([np.asarray(grad(w, jax.tree.map(lambda a, r=r: a[r], data)))
                          for r in rows])
    full = np.asarray(grad(w, data))
    np.testing.assert_allclose(per_batch.mean(0), full, rtol=1e-5, atol=1e-4)
    Xd, yd, wd = X_BLR.astype(np.float64), Y_BLR.astype(np.float64), np.asarray(w, np.float64)
    np.testing.assert_allclose(full, -ALPHA * wd + BETA * Xd.T @ (yd - Xd @ wd), rtol=1e-4)
    assert np.abs(per_batch[0] - full).max() > 1.0  # one batch alone is noisy


def test_chains_are_vmapped_run_chains_and_do_not_recompile():
    # sample() == run_chain per chain (own key, own start with init_batched); a second call
    # with new keys and starts hits the compiled call.
    data = (jnp.asarray(X_BLR), jnp.asarray(Y_BLR))
    starts = jnp.asarray([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5]], jnp.float32)
    settings = dict(kernel="sghmc", step_size=1e-3, batch_size=16, n_epochs=3, thinning=2,
                    friction=0.3)
    res = sampler.sample(jax.random.key(7), GRAD, starts, data, n_chains=2,
                         init_batched=True, **settings)
    assert res.samples.shape == (2, 6, D) and res.n_iter == 12
    chain = jax.jit(lambda k, p: sampler.run_chain(k, GRAD, p, data, **settings))
    for c, key in enumerate(jax.random.split(jax.random.key(7), 2)):
        one, _ = chain(key, starts[c])
        np.testing.assert_allclose(np.asarray(res.samples[c]), np.asarray(one), rtol=1e-5,
                                   atol=1e-6)
    size = sampler._sample_impl._cache_size()
    again = sampler.sample(jax.random.key(8), GRAD, starts + 1, data, n_chains=2,
                           init_batched=True, **settings)
    assert sampler._sample_impl._cache_size() == size
    assert not np.allclose(np.asarray(again.samples), np.asarray(res.samples))


def test_predictives():
    samples = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, D)), jnp.float32)
    flat = sampler.flatten_chains(samples)
    assert flat.shape == (10, D)
    np.testing.assert_array_equal(np.asarray(flat[5]), np.asarray(samples[1, 0]))
    X = jnp.asarray(X_BLR[:7])
    means, tau = sampler.predict_regression(lambda w, x: x @ w, flat, X, 4.0)
    np.testing.assert_allclose(np.asarray(means), np.asarray(flat) @ X_BLR[:7].T, rtol=1e-5,
                               atol=1e-5)
    assert means.shape == (10, 7) and tau.shape == (10, 1) and np.all(np.asarray(tau) == 4)
    _, tau_t = sampler.predict_regression(lambda w, x: x @ w, flat, X, lambda w: w[0] ** 2)
    np.testing.assert_allclose(np.asarray(tau_t[:, 0]), np.asarray(flat[:, 0]) ** 2, rtol=1e-6)
    W = jnp.asarray(np.random.default_rng(2).normal(size=(10, D, 4)), jnp.float32)
    probs = sampler.predict_proba(lambda w, x: x @ w, W, X)
    logits = np.einsum("nd,tdc->tnc", X_BLR[:7].astype(np.float64), np.asarray(W, np.float64))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(np.asarray(probs), (p / p.sum(-1, keepdims=True)).mean(0),
                               rtol=1e-5, atol=1e-6)


GOOD = dict(n_chains=2, kernel="sgld", step_size=1e-3, batch_size=16, n_epochs=2)


@pytest.mark.parametrize("change, exc, match", [
    (dict(n_chains=0), ValueError, "n_chains"),
    (dict(kernel="hmc"), ValueError, "kernel"),
    (dict(step_size=-1.0), ValueError, "step_size"),
    (dict(step_size=float("nan")), ValueError, "step_size"),
    (dict(batch_size=65), ValueError, "batch_size"),
    (dict(n_epochs=0), ValueError, "n_epochs"),
    (dict(n_cycles=3), ValueError, "n_cycles"),
    (dict(n_cycles=2, exploration=1.0), ValueError, "exploration"),
    (dict(n_cycles=2, burn_in=3), ValueError, "burn_in"),
    (dict(burn_in=-1), ValueError, "burn_in"),
    (dict(burn_in=8), ValueError, "no sample"),
    (dict(thinning=0), ValueError, "thinning"),
    (dict(kernel="sghmc", friction=1.5), ValueError, "friction"),
    (dict(temperature=-1.0), ValueError, "temperature"),
    (dict(init_batched=True), ValueError, "init_batched"),
    (dict(n_epochs=2.0), TypeError, "n_epochs"),
])
def test_bad_input_names_the_argument(change, exc, match):
    data = (jnp.asarray(X_BLR), jnp.asarray(Y_BLR))
    with pytest.raises(exc, match=match):
        sampler.sample(jax.random.key(0), GRAD, jnp.zeros(D, jnp.float32), data,
                       **{**GOOD, **change})


def test_bad_data_key_and_functions(raises_before_compiling):
    data = (jnp.asarray(X_BLR), jnp.asarray(Y_BLR))
    w = jnp.zeros(D, jnp.float32)
    raises_before_compiling(lambda: sampler.sample(jax.random.key(0), GRAD, w,
                                                   (data[0], data[1][:5]), **GOOD),
                            "leading axis", forbid=("_sample_impl",))
    with pytest.raises(TypeError, match="key"):
        sampler.sample(0, GRAD, w, data, **GOOD)
    with pytest.raises(TypeError, match="grad_fn"):
        sampler.sample(jax.random.key(0), "grad", w, data, **GOOD)
    with pytest.raises(TypeError, match="params"):
        sampler.sample(jax.random.key(0), GRAD, jnp.zeros(D, jnp.int32), data, **GOOD)
    with pytest.raises(TypeError, match="log_likelihood"):
        sgmcmc.grad_estimator(_log_prior, None, N)
    with pytest.raises(ValueError, match="n_data"):
        sgmcmc.grad_estimator(_log_prior, _log_lik, 0)


@pytest.mark.slow
@pytest.mark.parametrize("settings", [
    dict(kernel="sgld", step_size=0.02 / LAM_MAX, n_epochs=5_000, burn_in=1_000, thinning=20),
    dict(kernel="sghmc", step_size=0.01 / LAM_MAX, friction=0.2, n_epochs=2_500, burn_in=1_000,
         thinning=10)], ids=["sgld", "sghmc"])
def test_minibatch_chains_reproduce_blr_posterior(settings):
    # Minibatches of 16 of the 64 rows (4 shuffled steps per epoch). Bias allowance: the
    # discretisation bias plus the minibatch gradient's error taken as independent noise of
    # covariance h^2 V(m_N) per step (Lyapunov equation): 3.3 % (SGLD) and 6.7 % (SGHMC) of
    # max |S_N|. It is conservative: the batches of an epoch partition the rows, so their
    # errors cancel over an epoch; measured without the allowance the covariance z stayed
    # <= 1.33. ESS ~ 900-1600 per mean. Spread over keys 0..2, max |z| (mean, cov):
    # SGLD (0.87, 0.85), (1.69, 0.33), (1.03, 0.84); SGHMC (1.13, 0.67), (1.33, 1.06),
    # (1.37, 1.16). Bound Z_SGHMC = 5 for both; the test runs key 11.
    run = run_blr(jax.random.key(11), settings, batch_size=16)
    z_mean, z_cov, ess, rel_bias = posterior_errors(run.samples, settings,
                                                    minibatch_grad_noise(16))
    assert np.all(ess > 400) and rel_bias < 0.1
    assert np.all(np.abs(z_mean) < Z_SGHMC), z_mean
    assert np.all(z_cov < Z_SGHMC), z_cov
