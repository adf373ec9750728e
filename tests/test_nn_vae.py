"""VAE (Kingma & Welling 2014): SGVB estimators, IWAE bound, linear VAE vs PPCA, MNIST."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optax
import pytest
from scipy.integrate import quad
from scipy.special import expit
from scipy.stats import bernoulli, multivariate_normal, norm

from espresso_jax import train
from espresso_jax.datasets.bundled import load_mnist
from espresso_jax.mixture import ppca
from espresso_jax.nn import modules, vae
from espresso_jax.prob import info

SMALL = vae.VAE(data_dim=12, latent_dim=3, hidden=(16,), activation=jax.nn.tanh)


N_REP = 4000          # independent estimates per input for the expectation tests


@pytest.fixture(scope="module")
def small():
    """A randomly initialised small Bernoulli VAE and 5 binary inputs."""
    params = vae.init(jax.random.key(0), SMALL)
    X = np.random.default_rng(0).integers(0, 2, size=(5, 12)).astype(np.float32)
    return params, X


def test_second_init_does_not_recompile():
    # init is one module-level program with the module static: another key and an equal,
    # separately built module reuse it (the second call compiles nothing; the test ~0.5 s CPU).
    first = vae.init(jax.random.key(1), SMALL)
    size = modules.init_on_rows._cache_size()
    again = vae.init(jax.random.key(2), vae.VAE(data_dim=12, latent_dim=3, hidden=(16,),
                                                activation=jax.nn.tanh))
    assert modules.init_on_rows._cache_size() == size >= 1
    assert not np.allclose(again["params"]["body"]["dense_0"]["kernel"],
                           first["params"]["body"]["dense_0"]["kernel"])


def _repeated(fn, key, params, X, **options):
    """N_REP independent per-example estimates for every row of X, (N_REP, n_rows)."""
    rows = np.tile(X, (N_REP, 1))
    values = fn(key, SMALL, params, rows, batch_size=len(rows), **options)
    return np.asarray(values, dtype=np.float64).reshape(N_REP, len(X))


@pytest.fixture(scope="module")
def estimator_b(small):
    """N_REP one-sample estimator-B ELBO estimates per input (shared by several tests)."""
    params, X = small
    return _repeated(vae.elbo_per_example, jax.random.key(2), params, X, estimator="B")


def _mean_se(values):
    return values.mean(0), values.std(0, ddof=1) / math.sqrt(values.shape[0])


def test_estimators_a_and_b_agree_in_expectation(small, estimator_b):
    params, X = small
    a_mean, a_se = _mean_se(_repeated(vae.elbo_per_example, jax.random.key(1), params, X,
                                      estimator="A"))
    b_mean, b_se = _mean_se(estimator_b)
    # both are unbiased for the same ELBO: independent MC means within 6 combined SEs
    np.testing.assert_array_less(np.abs(a_mean - b_mean), 6 * np.sqrt(a_se**2 + b_se**2))
    # the closed-form KL makes B the lower-variance estimator here (Kingma & Welling §2.3)
    assert np.all(b_se < a_se)


def test_analytic_kl_matches_monte_carlo(small):
    params, X = small
    kl = np.asarray(vae.kl_divergence(SMALL, params, X))
    mu, logvar = vae.encode(SMALL, params, X)
    q = dist.Normal(mu, jnp.exp(0.5 * logvar)).to_event(1)
    p = dist.Normal(jnp.zeros_like(mu), jnp.ones_like(mu)).to_event(1)
    est, se = info.kl_mc(jax.random.key(3), q, p, 20000)
    assert np.all(kl >= 0)
    # independent numpyro MC estimate: within 6 standard errors
    np.testing.assert_array_less(np.abs(kl - np.asarray(est)), 6 * np.asarray(se))


def test_iwae_bounds(small, estimator_b):
    params, X = small
    # IWAE_1 is a one-sample estimator-A ELBO: equal in expectation (6 standard errors)
    i_mean, i_se = _mean_se(_repeated(vae.iwae_per_example, jax.random.key(6), params, X, k=1))
    e_mean, e_se = _mean_se(estimator_b)
    np.testing.assert_array_less(np.abs(e_mean - i_mean), 6 * np.sqrt(e_se**2 + i_se**2))
    # IWAE_k increases with k and exceeds the ELBO: means over 800 replicates of the 5 inputs
    # (4000 rows); measured gaps k=10->100: 0.19 nats (SE of the paired difference 0.010),
    # k=100->1000: 0.031 (SE 0.004), so every gap is > 6 SE
    rows = np.tile(X, (800, 1))
    bounds = [float(np.mean(i_mean))] + [
        float(vae.iwae(jax.random.key(4), SMALL, params, rows, k=k, batch_size=1000))
        for k in (10, 100, 1000)]
    assert np.all(np.diff(bounds) > 0), bounds
    assert bounds[-1] > np.mean(e_mean) + 6 * np.sqrt(np.mean(e_se**2) / len(X))


def test_iwae_chunking_does_not_change_the_value(small):
    params, X = small
    key = jax.random.key(8)
    # The rows, k and options of test_iwae_bounds' k = 100 bound, so `whole` reuses its compiled
    # program (the claim does not depend on the number of rows). chunk_size 7 leaves a ragged
    # last chunk (100 = 14 * 7 + 2) and batch_size 3 a padded last batch (4000 = 1333 * 3 + 1).
    rows = np.tile(X, (800, 1))
    whole = vae.iwae_per_example(key, SMALL, params, rows, k=100, batch_size=1000)
    chunked = vae.iwae_per_example(key, SMALL, params, rows, k=100, chunk_size=7, batch_size=3)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5)


def _linear_vae_vs_ppca(n_epochs):
    rng = np.random.default_rng(0)
    n, d, q = 500, 5, 2
    W = rng.normal(size=(d, q)) * np.array([2.0, 1.0])
    X = rng.normal(size=(n, q)) @ W.T + rng.normal(size=d) + 0.5 * rng.normal(size=(n, d))
    best = float(ppca.log_likelihood(ppca.fit(X, q).params, X))       # closed-form ML optimum
    model = vae.VAE(data_dim=d, latent_dim=q, hidden=(), likelihood="gaussian",
                    variance="shared")
    steps = n_epochs * (n // 100)
    opt = optax.adam(optax.cosine_decay_schedule(3e-2, steps, alpha=0.01))
    fit = vae.fit(jax.random.key(0), X, module=model, optimizer=opt, batch_size=100,
                  n_epochs=n_epochs, estimator="B", progress=False)
    p = fit.best_params["params"]
    # the linear decoder is a PPCA model: its exact marginal likelihood in closed form
    decoder = ppca.PPCAParams(mean=p["decoder"]["dense_0"]["bias"],
                              W=p["decoder"]["dense_0"]["kernel"].T,
                              sigma2=jnp.exp(p["dec_logvar"]))
    exact = float(ppca.log_likelihood(decoder, X))
    elbo = float(vae.elbo(jax.random.key(1), model, fit.best_params, X, n_samples=500))
    iwae = float(vae.iwae(jax.random.key(2), model, fit.best_params, X, k=500))
    return best, exact, elbo, iwae


def test_linear_vae_approaches_ppca_maximum_likelihood(x64):
    best, exact, elbo, iwae = _linear_vae_vs_ppca(n_epochs=200)
    # short run (1000 Adam steps); measured: exact - best = -0.003, elbo - best = -0.020,
    # iwae - best = -0.003 nats/point. Tolerances 0.02 / 0.05 / 0.02 (the @slow test is tight)
    assert best - 0.02 < exact <= best + 1e-9       # nothing beats the ML optimum
    assert best - 0.05 < elbo < exact + 0.005       # ELBO (MC, 500 samples) below log p
    assert best - 0.02 < iwae < exact + 0.005       # IWAE_500 between the ELBO and log p
    assert iwae > elbo


@pytest.mark.slow
def test_linear_vae_reaches_ppca_maximum_likelihood_tight(x64):
    best, exact, elbo, iwae = _linear_vae_vs_ppca(n_epochs=400)
    # 2000 Adam steps; measured: exact - best = -2e-4, elbo - best = -4e-3, iwae - best = -1e-4
    assert best - 0.005 < exact <= best + 1e-9
    assert best - 0.02 < elbo < exact + 0.005
    assert best - 0.005 < iwae < exact + 0.005


def test_gaussian_decoder_variances_and_training():
    X = np.random.default_rng(1).normal(size=(64, 6)).astype(np.float32)
    shapes = {"shared": (), "per_feature": (6,), "fixed": None}
    for variance, shape in shapes.items():
        model = vae.VAE(data_dim=6, latent_dim=2, hidden=(8,), likelihood="gaussian",
                        variance=variance, init_logvar=-1.0)
        params = jax.eval_shape(lambda k, m=model: vae.init(k, m), jax.random.key(0))
        got = params["params"].get("dec_logvar")
        assert (got is None) if shape is None else got.shape == shape
    model = vae.VAE(data_dim=6, latent_dim=2, hidden=(8,), likelihood="gaussian",
                    variance="per_feature")
    fit = vae.fit(jax.random.key(2), X, module=model, optimizer=optax.adam(1e-2),
                  batch_size=32, n_epochs=30, estimator="A", n_samples=2, progress=False)
    elbo = fit.history["elbo"]
    assert np.all(np.isfinite(elbo)) and elbo[-5:].mean() > elbo[:5].mean() + 0.5
    draws = vae.generate(jax.random.key(1), model, fit.best_params, 3, sample=True)
    assert draws.shape == (3, 6) and np.all(np.isfinite(draws))


@pytest.mark.slow
def test_conv_vae_shapes():
    model = vae.VAE(latent_dim=4, hidden=(32,), architecture="conv", conv_features=(8, 16))
    params = vae.init(jax.random.key(0), model)
    X = np.random.default_rng(2).random((3, 784)).astype(np.float32)
    assert vae.encode(model, params, X)[0].shape == (3, 4)
    values = vae.elbo_per_example(jax.random.key(1), model, params, X, estimator="A")
    assert values.shape == (3,) and np.all(np.isfinite(values))


def test_manifold_is_the_decoder_on_gaussian_quantiles():
    model = vae.VAE(data_dim=4, latent_dim=3, hidden=(), likelihood="gaussian")
    # any decoder will do: N(0, 1) parameters in the tree vae.init builds (traced, not compiled)
    shapes = jax.eval_shape(lambda k: vae.init(k, model), jax.random.key(0))
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), a.dtype), shapes)
    grid = np.asarray(vae.manifold(model, params, 5, dims=(2, 0)))
    kernel = np.asarray(params["params"]["decoder"]["dense_0"]["kernel"])   # (3, 4)
    bias = np.asarray(params["params"]["decoder"]["dense_0"]["bias"])
    coords = norm.ppf((np.arange(5) + 0.5) / 5)                 # scipy's inverse normal CDF
    for i in range(5):
        for j in range(5):
            z = np.zeros(3)
            z[2], z[0] = coords[j], coords[4 - i]
            np.testing.assert_allclose(grid[i, j], z @ kernel + bias, rtol=1e-5, atol=1e-5)
    assert vae.generate(jax.random.key(1), model, params, 7).shape == (7, 4)


def test_bad_inputs(small):
    params, X = small
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"\bX\b"):
        vae.elbo(key, SMALL, params, X[:, :5])                  # wrong number of columns
    with pytest.raises(ValueError, match=r"\bX\b"):
        vae.elbo(key, SMALL, params, X[0])                      # 1-D
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        vae.iwae(key, SMALL, params, bad, k=5)
    with pytest.raises(ValueError, match="estimator"):
        vae.elbo(key, SMALL, params, X, estimator="C")
    with pytest.raises(ValueError, match="k must be >= 1"):
        vae.iwae(key, SMALL, params, X, k=0)
    with pytest.raises(ValueError, match="n_samples"):
        vae.elbo(key, SMALL, params, X, n_samples=0)
    with pytest.raises(ValueError, match=r"X must lie in \[0, 1\]"):
        vae.fit(key, X * 3.0, module=SMALL, optimizer=optax.sgd(1e-3), batch_size=2,
                n_epochs=1, progress=False)
    with pytest.raises(ValueError, match="module.likelihood"):
        vae.init(key, vae.VAE(likelihood="poisson"))
    with pytest.raises(ValueError, match="module.image_shape"):
        vae.init(key, vae.VAE(data_dim=100, architecture="conv"))
    with pytest.raises(TypeError, match="module must be a VAE"):
        vae.elbo(key, "vae", params, X)
    with pytest.raises(TypeError, match="key"):
        vae.generate(0, SMALL, params, 3)
    with pytest.raises(ValueError, match="dims"):
        vae.manifold(SMALL, params, 4, dims=(1, 1))


def test_make_loss_is_cached_and_unbiased_scaling(small):
    params, X = small
    loss = vae.make_loss(SMALL, 1000, estimator="B", n_samples=1, binarize=False)
    assert loss is vae.make_loss(SMALL, 1000, estimator="B", n_samples=1, binarize=False)
    value, aux = jax.jit(loss)(params, jnp.asarray(X), jax.random.key(0))
    # -(N/M) * sum of the M per-example estimates = -N * their mean
    np.testing.assert_allclose(float(value), -1000 * float(aux["elbo"]), rtol=1e-5)


def test_mnist_short_run_improves_the_elbo():
    images, _ = load_mnist("train")
    X, X_test = images[:256], images[256:384]
    model = vae.VAE(latent_dim=10, hidden=(64,))
    params0 = vae.init(jax.random.key(0), model)
    key, opt = jax.random.key(1), optax.adam(1e-3)
    fit = vae.fit(key, X, module=model, optimizer=opt, batch_size=32, n_epochs=2,
                  binarize=True, params=params0, progress=False)
    assert fit.history["elbo"][-1] > fit.history["elbo"][0]
    binary = np.asarray(jax.random.bernoulli(jax.random.key(2), X_test), dtype=np.float32)
    before = float(vae.elbo(key, model, params0, binary))
    after = float(vae.elbo(key, model, fit.best_params, binary))
    assert after > before + 50           # measured -599 -> -482 nats; margin 50 nats
    # a second fit with the same configuration reuses the compiled chunk
    size = train._run_chunk._cache_size()
    vae.fit(key, X, module=model, optimizer=opt, batch_size=32, n_epochs=2, binarize=True,
            params=params0, progress=False)
    assert train._run_chunk._cache_size() == size


# --------------------------------------------------------------------------------------------
# Per-example ELBO of a fixed tiny network against an independent NumPy/SciPy forward pass
# --------------------------------------------------------------------------------------------

TINY_N, TINY_L = 4, 3          # examples, samples of z per example


def _tiny(likelihood):
    """A D=6, k=2, one-hidden-layer (4 tanh units) VAE with fixed float64 N(0, 0.7²)
    parameters in the tree vae.init builds (non-zero biases, log-variances away from 0, a
    per-feature decoder variance), and TINY_N inputs (binary for the Bernoulli decoder)."""
    model = vae.VAE(data_dim=6, latent_dim=2, hidden=(4,), activation=jax.nn.tanh,
                    likelihood=likelihood, variance="per_feature")
    rng = np.random.default_rng(11)
    shapes = jax.eval_shape(lambda k: vae.init(k, model), jax.random.key(0))  # no compile
    params = jax.tree.map(lambda a: jnp.asarray(0.7 * rng.normal(size=a.shape)), shapes)
    if likelihood == "bernoulli":
        X = rng.integers(0, 2, size=(TINY_N, 6)).astype(np.float64)
    else:
        X = rng.normal(size=(TINY_N, 6))
    return model, params, X


def _np_forward(params, X, eps):
    """Encoder and decoder written out from the flax parameter arrays (no library code):
    returns mu, logvar (n, k); z (n, L, k); decoder output (n, L, D)."""
    p = jax.tree.map(np.asarray, params)["params"]
    h = np.tanh(X @ p["body"]["dense_0"]["kernel"] + p["body"]["dense_0"]["bias"])
    mu = h @ p["enc_mean"]["kernel"] + p["enc_mean"]["bias"]
    logvar = h @ p["enc_logvar"]["kernel"] + p["enc_logvar"]["bias"]
    z = mu[:, None, :] + np.exp(0.5 * logvar)[:, None, :] * eps        # sd = exp(logvar / 2)
    dec = p["decoder"]
    g = np.tanh(z @ dec["dense_0"]["kernel"] + dec["dense_0"]["bias"])
    return mu, logvar, z, g @ dec["dense_1"]["kernel"] + dec["dense_1"]["bias"]


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_elbo_of_a_fixed_network_matches_an_independent_numpy_computation(x64, likelihood):
    model, params, X = _tiny(likelihood)
    key = jax.random.key(7)

    @jax.jit
    def library(params, X):
        """The noise and every library value checked below, in one compiled program."""
        # elbo_per_example's documented draw: example n uses split(key, n)[n] for its (L, k)
        # noise
        eps = jax.vmap(lambda k: jax.random.normal(k, (TINY_L, 2), dtype=jnp.float64))(
            jax.random.split(key, TINY_N))
        elbos = {e: vae.elbo_per_example(key, model, params, X, estimator=e,
                                         n_samples=TINY_L, batch_size=3)  # padded last batch
                 for e in ("A", "B")}
        loss_kl = vae.make_loss(model, 100, estimator="B")(params, X, key)[1]["kl"]
        return (eps, vae.encode(model, params, X)[0], vae.kl_divergence(model, params, X),
                elbos, loss_kl)

    eps, got_mu, got_kl, elbos, loss_kl = library(params, jnp.asarray(X))
    eps = np.asarray(eps)
    mu, logvar, z, out = _np_forward(params, X, eps)
    sd = np.exp(0.5 * logvar)
    if likelihood == "bernoulli":        # decoder outputs logits
        log_px = bernoulli.logpmf(X[:, None, :], expit(out)).sum(-1)
    else:                                # decoder outputs means; per-feature log-variances
        dec_sd = np.exp(0.5 * np.asarray(params["params"]["dec_logvar"]))
        log_px = norm.logpdf(X[:, None, :], out, dec_sd).sum(-1)       # summed over pixels
    log_prior = norm.logpdf(z).sum(-1)
    log_q = norm.logpdf(z, mu[:, None, :], sd[:, None, :]).sum(-1)
    ref_a = np.mean(log_px + log_prior - log_q, axis=1)                 # K&W eq. 6
    kl = 0.5 * np.sum(mu**2 + sd**2 - 1.0 - logvar, axis=1)             # K&W appendix B
    ref_b = np.mean(log_px, axis=1) - kl                                # K&W eq. 7
    assert np.all(kl > 0.05) and np.all(np.abs(ref_a - ref_b) > 1e-3)   # the check is not vacuous
    # float64 on both sides; the formulas differ only by rounding (log_sigmoid vs log(expit),
    # the change-of-variables log q vs scipy's density), so 1e-9 relative
    np.testing.assert_allclose(np.asarray(got_mu), mu, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(got_kl), kl, rtol=1e-9)
    for estimator, ref in (("A", ref_a), ("B", ref_b)):
        np.testing.assert_allclose(np.asarray(elbos[estimator]), ref, rtol=1e-9,
                                   err_msg=estimator)
    # the training loss reports the same analytic KL (mean over the batch)
    np.testing.assert_allclose(float(loss_kl), kl.mean(), rtol=1e-9)


# --------------------------------------------------------------------------------------------
# Linear-Gaussian VAE: log p(x) in closed form, the exact posterior, IWAE_k -> log p(x)
# --------------------------------------------------------------------------------------------

LIN_D, LIN_K, LIN_S2 = 4, 2, 0.3          # data dim, latent dim, decoder noise variance


@pytest.fixture(scope="module")
def linear_gaussian():
    """x = A z + b + N(0, s² I), z ~ N(0, I): p(x) = N(b, A Aᵀ + s² I). A = Q diag(c) has
    orthogonal columns, so the exact posterior p(z | x) = N(Σ Aᵀ(x − b)/s², Σ) has the
    diagonal covariance Σ = diag(1/(1 + c²/s²)) that the VAE encoder can represent."""
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.normal(size=(LIN_D, LIN_K)))
    c = np.array([2.0, 0.8])
    A, b = Q * c, rng.normal(size=LIN_D)
    X = rng.normal(size=(4, LIN_K)) @ A.T + b + math.sqrt(LIN_S2) * rng.normal(size=(4, LIN_D))
    log_px = multivariate_normal(b, A @ A.T + LIN_S2 * np.eye(LIN_D)).logpdf(X)
    post_var = 1.0 / (1.0 + c**2 / LIN_S2)
    enc_kernel = A * post_var / LIN_S2              # posterior mean = (x − b) @ enc_kernel
    model = vae.VAE(data_dim=LIN_D, latent_dim=LIN_K, hidden=(), likelihood="gaussian",
                    variance="shared")

    def params(mean_shift, logvar):
        """Decoder (A, b, log s²); encoder mean = posterior mean + mean_shift, constant
        log-variance `logvar` (the exact posterior for shift 0 and log Σ)."""
        a = jnp.asarray
        return {"params": {
            "decoder": {"dense_0": {"kernel": a(A.T), "bias": a(b)}},   # z @ kernel + bias
            "dec_logvar": a(math.log(LIN_S2)),
            "enc_mean": {"kernel": a(enc_kernel), "bias": a(mean_shift - b @ enc_kernel)},
            "enc_logvar": {"kernel": jnp.zeros((LIN_D, LIN_K)), "bias": a(logvar)}}}

    return model, params, X, log_px, post_var


def test_linear_vae_with_the_exact_posterior_has_elbo_equal_to_log_px(x64, linear_gaussian):
    # q(z|x) = p(z|x) makes every log weight log p(x, z) − log q(z|x) equal to log p(x): the
    # estimator-A ELBO, IWAE_k and the training loss are log p(x) with zero variance. 1e-10:
    # float64 rounding only (|log p| ~ 6). A dropped or mis-scaled term, a log-variance read
    # as a standard deviation or a mean over pixels breaks the identity.
    model, params, X, log_px, post_var = linear_gaussian
    exact = params(np.zeros(LIN_K), np.log(post_var))
    key = jax.random.key(0)
    elbo_a = vae.elbo_per_example(key, model, exact, X, estimator="A", n_samples=3)
    np.testing.assert_allclose(np.asarray(elbo_a), log_px, rtol=1e-10)
    iwae5 = vae.iwae_per_example(key, model, exact, X, k=5, chunk_size=2)
    np.testing.assert_allclose(np.asarray(iwae5), log_px, rtol=1e-10)
    loss, aux = jax.jit(vae.make_loss(model, 1000, estimator="A", n_samples=2))(
        exact, jnp.asarray(X), key)
    np.testing.assert_allclose(float(loss), -1000 * log_px.mean(), rtol=1e-10)   # -(N/M) Σ
    np.testing.assert_allclose(float(aux["elbo"]), log_px.mean(), rtol=1e-10)


def _ratio_second_moment(var_p, mean_q, var_q):
    """E_q[(p/q)²] = ∫ p(z)² / q(z) dz for p = N(0, var_p), q = N(mean_q, var_q) (quadrature)."""
    half = abs(mean_q) + 20 * math.sqrt(max(var_p, var_q))
    return quad(lambda z: math.exp(2 * norm.logpdf(z, 0, math.sqrt(var_p))
                                   - norm.logpdf(z, mean_q, math.sqrt(var_q))), -half, half,
                points=[0.0, mean_q])[0]


def test_iwae_of_a_linear_vae_increases_with_k_to_the_exact_log_px(x64, linear_gaussian):
    model, params, X, log_px, post_var = linear_gaussian
    # An encoder off the posterior: the mean shifted by `delta` posterior sds, the variance
    # inflated by `ratio`. The same offset for every x, so log w − log p(x) = log p(z|x) −
    # log q(z|x) has one distribution for all rows: pool the gaps log p(x) − IWAE_k.
    delta, ratio = np.array([1.3, -1.0]), np.array([2.0, 1.6])
    shift, q_var = delta * np.sqrt(post_var), ratio * post_var
    pert = params(shift, np.log(q_var))
    # exact ELBO gap: KL(q || p(z|x)) in closed form; chi² = Var_q[p(z|x)/q(z)] (product of
    # 1-D factors) gives the delta-method IWAE bias E[log p − IWAE_k] ≈ chi²/(2k)
    kl_gap = 0.5 * np.sum(ratio - 1.0 - np.log(ratio) + delta**2)
    moments = [_ratio_second_moment(*a) for a in zip(post_var, shift, q_var, strict=True)]
    chi2 = np.prod(moments) - 1.0
    rows = np.tile(X, (500, 1))                                         # 2000 replicates
    gaps, ses = {}, {}
    for k in (1, 10, 1000):
        bound = vae.iwae_per_example(jax.random.key(k), model, pert, rows, k=k,
                                     batch_size=len(rows))
        g = np.tile(log_px, 500) - np.asarray(bound)
        gaps[k], ses[k] = g.mean(), g.std(ddof=1) / math.sqrt(len(g))
    # measured: gaps 1.59 / 0.139 / 0.0023 nats (SE 0.053 / 0.012 / 0.0011); kl_gap 1.56,
    # chi2/2000 = 0.0012. IWAE_1 is a one-sample estimator-A ELBO: unbiased for the ELBO,
    # so its gap matches KL(q || p(z|x)) within 6 SE
    assert abs(gaps[1] - kl_gap) < 6 * ses[1], (gaps, kl_gap)
    # strictly increasing in k: each gap shrinks by more than 6 combined SEs
    assert gaps[1] - gaps[10] > 6 * math.hypot(ses[1], ses[10]), (gaps, ses)
    assert gaps[10] - gaps[1000] > 6 * math.hypot(ses[10], ses[1000]), (gaps, ses)
    # at k = 1000: below log p(x) by the delta-method bias chi²/(2k) within 6 SE
    assert abs(gaps[1000] - chi2 / 2000) < 6 * ses[1000], (gaps[1000], chi2 / 2000, ses[1000])
