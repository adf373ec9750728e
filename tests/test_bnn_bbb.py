"""Bayes by Backprop (espresso_jax.bnn.bbb*): KL terms against closed forms, numpyro and scipy,
MC bounds for the local reparameterisation trick, gradients reaching every posterior parameter,
the KL re-weighting schedules and minibatch scaling, a short regression fit, SNR pruning and the
Bayesian GRU.

Stochastic checks use fixed keys and 6 standard errors (a false alarm has probability < 1e-8
per comparison for a Gaussian estimator), the SE estimated from the same samples.
"""

from __future__ import annotations

import fractions
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optax
import pytest
from numpyro.distributions.kl import kl_divergence as numpyro_kl
from scipy.special import logsumexp
from scipy.stats import norm

from espresso_jax import train
from espresso_jax.bnn import bbb, bbb_elbo, bbb_prune, bbb_recurrent

# One forward pass with its KL, jitted (eager flax dispatch is slow on a loaded 2-core box).
_apply = jax.jit(bbb.apply, static_argnums=1)


def _normal(key, shape):
    """``jax.random.normal(key, shape)``, bit for bit (threefry numbers depend only on the flat
    index), drawn flat and reshaped: XLA:CPU compiles the rank-3/4 draw in seconds, the flat
    one in a fraction of that."""
    return jax.random.normal(key, (math.prod(shape),)).reshape(shape)

MIXTURE = bbb.scale_mixture_prior(0.25, float(np.exp(-1.0)), float(np.exp(-7.0)))


class MLPNet(nn.Module):
    """1 -> hidden -> out with Bayesian dense layers."""

    hidden: int = 16
    out: int = 1
    prior: bbb.Prior = bbb.GaussianPrior(1.0)
    local_reparam: bool = False
    sigma_init: float = 0.01

    @nn.compact
    def __call__(self, x):
        kw = dict(prior=self.prior, local_reparam=self.local_reparam,
                  sigma_init=self.sigma_init)
        x = nn.relu(bbb.BayesDense(self.hidden, **kw)(x))
        return bbb.BayesDense(self.out, **kw)(x)


class AllNet(nn.Module):
    """Every Bayesian layer and sampling path in one model (one compile): a weight-sampling
    strided conv and a local-reparam dense layer on an image, a GRU and a local-reparam then a
    weight-sampling dense layer on a sequence, summed into 3 logits. ``mixture`` puts the
    scale-mixture prior (MC KL) on the conv, the GRU and the second dense layer (MC KL with the
    local trick too)."""

    mixture: bool = False

    @nn.compact
    def __call__(self, x):
        img, seq = x
        gauss = bbb.GaussianPrior(1.0)
        other = MIXTURE if self.mixture else gauss
        h = nn.relu(bbb.BayesConv(3, kernel_size=(3, 3), strides=2, padding="VALID",
                                  prior=other)(img))
        h = bbb.BayesDense(3, prior=gauss, local_reparam=True)(h.reshape(h.shape[0], -1))
        g = bbb_recurrent.BayesGRU(4, prior=other, return_sequences=False)(seq)
        g = nn.relu(bbb.BayesDense(4, prior=other, local_reparam=True)(g))
        return h + bbb.BayesDense(3, prior=other)(g)


@functools.cache
def _all_net_params():
    """Shared initial parameters of AllNet (the prior does not change them)."""
    return bbb_elbo.init_params(jax.random.key(0), AllNet(), _all_inputs()[0])


class GRUNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = bbb_recurrent.BayesGRU(8, return_sequences=False)(x)
        return bbb.BayesDense(1)(h)


def _np_gaussian_kl(mu, rho, scale):
    """Summed KL(N(mu, softplus(rho)^2) || N(0, scale^2)) in NumPy float64."""
    mu, rho = np.asarray(mu, np.float64), np.asarray(rho, np.float64)
    var = np.log1p(np.exp(rho)) ** 2
    return float(np.sum(0.5 * (var + mu ** 2) / scale ** 2 - 0.5 * np.log(var / scale ** 2)
                        - 0.5))


@functools.cache
def _all_inputs():
    img = _normal(jax.random.key(2), (6, 5, 5, 2))
    seq = _normal(jax.random.key(3), (6, 5, 2))
    return (img, seq), jnp.array([0, 1, 2, 0, 1, 2])


# ----------------------------------------------------------------------------- priors and KL


def test_gaussian_kl_matches_numpyro_and_mc(both_precisions):
    mu = jnp.asarray(np.linspace(-1.5, 1.0, 7))
    rho = jnp.asarray(np.linspace(-3.0, 1.0, 7))
    scale = 0.7
    n = 20_000
    eps = jax.random.normal(jax.random.key(0), (n, 7), mu.dtype)

    @jax.jit
    def kls(mu, rho, eps):  # one compiled program instead of ~40 eager ops
        closed = bbb.gaussian_kl(mu, rho, scale)
        ref = numpyro_kl(dist.Normal(mu, jax.nn.softplus(rho)), dist.Normal(0.0, scale))
        mc = jax.vmap(lambda e: bbb.weight_kl(bbb.GaussianPrior(scale), mu, rho, e, "mc"))(eps)
        # "auto" picks the closed form for a Gaussian prior and ignores the noise.
        auto = bbb.weight_kl(bbb.GaussianPrior(scale), mu, rho, eps[0])
        return closed, ref, mc, auto

    closed, ref, mc, auto = kls(mu, rho, eps)
    rtol = 1e-10 if both_precisions == "float64" else 1e-5
    np.testing.assert_allclose(closed, ref, rtol=rtol, atol=rtol)
    # One-sample MC estimates of the summed KL are unbiased: their mean is within 6 SE.
    mc = np.asarray(mc, np.float64)
    se = mc.std(ddof=1) / np.sqrt(n)
    closed_sum = np.sum(np.asarray(closed, np.float64))
    assert abs(mc.mean() - closed_sum) < 6 * se
    np.testing.assert_allclose(auto, closed_sum, rtol=rtol)


def test_scale_mixture_log_prior_matches_scipy(both_precisions):
    pi, s1, s2 = 0.25, float(np.exp(-1.0)), float(np.exp(-7.0))
    w = np.array([-3.0, -0.5, -1e-2, -1e-4, 0.0, 1e-3, 0.02, 0.3, 2.5])
    ref = logsumexp(np.stack([np.log(pi) + norm.logpdf(w, scale=s1),
                              np.log1p(-pi) + norm.logpdf(w, scale=s2)]), axis=0)
    got = bbb.log_prior(MIXTURE, jnp.asarray(w))
    assert got.dtype == jnp.dtype(both_precisions)
    rtol = 1e-12 if both_precisions == "float64" else 1e-5
    np.testing.assert_allclose(got, ref, rtol=rtol)
    np.testing.assert_allclose(bbb.log_prior(bbb.GaussianPrior(0.3), jnp.asarray(w)),
                               norm.logpdf(w, scale=0.3), rtol=rtol)


def test_mixture_kl_is_mc_of_log_q_minus_log_p():
    mu, rho = jnp.array([0.3, -0.1]), jnp.array([-2.0, -4.0])
    eps = jnp.array([0.5, -1.2])
    sigma = np.log1p(np.exp(np.asarray(rho, np.float64)))
    w = np.asarray(mu, np.float64) + sigma * np.asarray(eps, np.float64)
    ref = np.sum(norm.logpdf(w, np.asarray(mu, np.float64), sigma)) - np.sum(
        logsumexp(np.stack([np.log(0.25) + norm.logpdf(w, scale=np.exp(-1.0)),
                            np.log(0.75) + norm.logpdf(w, scale=np.exp(-7.0))]), axis=0))
    np.testing.assert_allclose(bbb.weight_kl(MIXTURE, mu, rho, eps), ref, rtol=1e-5)


# ----------------------------------------------------------------------------- layers


def test_gradient_reaches_every_posterior_parameter():
    """Dense, conv and GRU layers, weight sampling and local reparameterisation, Gaussian and
    mixture priors: the ELBO's gradient is finite and non-zero for every mu and rho leaf, and
    non-zero for every single rho entry (the KL term alone guarantees it, so this also shows
    the KL of every layer is collected)."""
    module = AllNet(mixture=True)
    x, y = _all_inputs()
    params = _all_net_params()
    loss = bbb_elbo.ELBOLoss(module, 60, "categorical")
    grads = jax.jit(jax.grad(lambda p: loss(p, {"x": x, "y": y}, jax.random.key(5))[0]))(params)
    flat = jax.tree_util.tree_flatten_with_path(grads.net)[0]
    names = [jax.tree_util.keystr(path) for path, _ in flat]
    # 5 layers: 4 with kernel + bias, the GRU with input, recurrent kernels and bias.
    assert len(names) == 2 * (4 * 2 + 3)
    # (checked in NumPy: jnp reductions would compile per leaf shape)
    for name, g in zip(names, (np.asarray(leaf) for _, leaf in flat), strict=True):
        assert name.endswith(("_mu']", "_rho']")), name
        assert np.all(np.isfinite(g)), name
        assert np.max(np.abs(g)) > 0.0, f"zero gradient for {name}"
        if name.endswith("_rho']"):
            assert np.all(g != 0.0), name


def test_collected_kl_is_closed_form_sum_over_all_layers():
    module = AllNet()
    x, _ = _all_inputs()
    net = _all_net_params().net
    _, kl = _apply(jax.random.key(1), module, net, x)
    flat = bbb_prune._pairs(net)[0]
    ref = sum(_np_gaussian_kl(flat[p], flat[p[:-1] + (p[-1][:-3] + "_rho",)], 1.0)
              for p in flat if p[-1].endswith("_mu"))
    np.testing.assert_allclose(float(kl), ref, rtol=1e-5)  # float32 sum of ~500 terms
    # Applying twice does not accumulate the collection.
    _, kl2 = _apply(jax.random.key(1), module, net, x)
    assert float(kl2) == float(kl)


def test_zero_variance_layers_match_flax_reference():
    """With sigma = 0 (rho = PRUNED_RHO) the Bayesian layers are flax's Dense / Conv."""
    x = _normal(jax.random.key(0), (2, 6, 6, 3))
    conv = bbb.BayesConv(5, kernel_size=(3, 2), strides=(1, 2), padding="SAME")
    net = bbb.init(jax.random.key(1), conv, x)
    p = net["params"]
    net = {"params": {**p, "kernel_rho": jnp.full_like(p["kernel_rho"], bbb.PRUNED_RHO),
                      "bias_rho": jnp.full_like(p["bias_rho"], bbb.PRUNED_RHO)}}
    got, _ = _apply(jax.random.key(2), conv, net, x)
    ref = nn.Conv(5, (3, 2), strides=(1, 2), padding="SAME").apply(
        {"params": {"kernel": p["kernel_mu"], "bias": p["bias_mu"]}}, x)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_local_reparam_matches_weight_sampling_moments():
    """Pre-activations: both samplers have mean x mu + b_mu and variance x^2 sigma^2 +
    sigma_b^2. Means agree within 6 SE of their difference; each sample variance is within 6 SE
    of the closed form (SE of a Gaussian sample variance: var sqrt(2 / (S - 1)))."""
    x = jnp.array([[0.5, -1.0, 2.0], [1.5, 0.2, -0.3]])
    kw = dict(sigma_init=0.4, bias_init=nn.initializers.normal(1.0))
    plain, local = bbb.BayesDense(4, **kw), bbb.BayesDense(4, local_reparam=True, **kw)
    net = bbb.init(jax.random.key(0), plain, x)
    p = net["params"]
    s = 8000
    keys = jax.random.split(jax.random.key(1), s)
    draws = {}
    for name, m in (("plain", plain), ("local", local)):
        sampler = jax.jit(jax.vmap(lambda k, m=m: bbb.apply(k, m, net, x)[0]))
        draws[name] = np.asarray(sampler(keys), np.float64)
    sig_k = np.log1p(np.exp(np.asarray(p["kernel_rho"], np.float64)))
    sig_b = np.log1p(np.exp(np.asarray(p["bias_rho"], np.float64)))
    xn = np.asarray(x, np.float64)
    mean = xn @ np.asarray(p["kernel_mu"], np.float64) + np.asarray(p["bias_mu"], np.float64)
    var = xn ** 2 @ sig_k ** 2 + sig_b ** 2
    a, b = draws["plain"], draws["local"]
    se_diff = np.sqrt((a.var(0, ddof=1) + b.var(0, ddof=1)) / s)
    assert np.all(np.abs(a.mean(0) - b.mean(0)) < 6 * se_diff)
    for d in (a, b):
        assert np.all(np.abs(d.mean(0) - mean) < 6 * np.sqrt(var / s))
        assert np.all(np.abs(d.var(0, ddof=1) - var) < 6 * var * np.sqrt(2.0 / (s - 1)))
    # Weight sampling shares one weight draw over the batch; local reparam does not: the two
    # rows' pre-activations are correlated only in the first.
    corr = [np.corrcoef(d[:, 0, 0], d[:, 1, 0])[0, 1] for d in (a, b)]
    assert abs(corr[1]) < 6 / np.sqrt(s) < abs(corr[0])


# ----------------------------------------------------------------------------- loss and schedule


@pytest.mark.parametrize("m", [1, 2, 7, 60, 3000])
def test_kl_weights_sum_to_one(m):
    for schedule in bbb_elbo.SCHEDULES:
        w = np.asarray(bbb_elbo.kl_weights(m, schedule), np.float64)
        assert w.shape == (m,) and np.all(w >= 0)
        np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(bbb_elbo.kl_weights(m, "uniform"), np.full(m, 1.0 / m), rtol=1e-6)


def test_blundell_weights_exact():
    m = 7
    ref = [float(fractions.Fraction(2 ** (m - i), 2 ** m - 1)) for i in range(1, m + 1)]
    np.testing.assert_allclose(bbb_elbo.kl_weights(m, "blundell"), ref, rtol=1e-6)


def test_minibatch_losses_average_to_full_negative_elbo(x64):
    """Fixed weight sample (same key each minibatch): mean over an epoch of the scaled minibatch
    losses == KL - sum_n log p(y_n | x_n, w), to float64 rounding."""
    module = MLPNet(hidden=8, prior=MIXTURE)
    n, b = 24, 6
    x = jax.random.normal(jax.random.key(0), (n, 1))
    y = jnp.sin(x[:, 0])
    params = bbb_elbo.init_params(jax.random.key(1), module, x, noise_std=0.3)
    assert params.log_noise_std.dtype == jnp.float64
    loss = bbb_elbo.ELBOLoss(module, n, "gaussian")
    normalized = bbb_elbo.ELBOLoss(module, n, "gaussian", normalize=True)
    key = jax.random.key(2)

    @jax.jit
    def evaluate(params, key, weights):
        """The reference pass, the normalized full-data loss and the loss of every minibatch
        (rows i b .. (i + 1) b, KL weight weights[i]; vmapped): one compiled program."""
        out, kl = bbb.apply(key, module, params.net, x)
        batches = {"x": x.reshape(n // b, b, 1), "y": y.reshape(n // b, b), "kl_weight": weights}
        losses = jax.vmap(lambda batch: loss(params, batch, key)[0])(batches)
        return out, kl, normalized(params, {"x": x, "y": y}, key)[0], losses

    for schedule in bbb_elbo.SCHEDULES:
        weights = bbb_elbo.kl_weights(n // b, schedule)
        out, kl, normalized_loss, losses = evaluate(params, key, weights)
        assert out.dtype == jnp.float64
        ll = norm.logpdf(np.asarray(y), np.asarray(out)[:, 0], 0.3).sum()
        np.testing.assert_allclose(np.mean(losses), float(kl) - ll, rtol=1e-12)
    np.testing.assert_allclose(normalized_loss * n, float(kl) - ll, rtol=1e-12)


def test_step_feeds_the_schedule_from_the_step_counter():
    module = MLPNet(hidden=4)
    x = jnp.linspace(-1.0, 1.0, 10)[:, None]
    y = x[:, 0]
    params = bbb_elbo.init_params(jax.random.key(0), module, x)
    loss = bbb_elbo.ELBOLoss(module, 10, "gaussian", noise_std=0.1)
    opt = optax.sgd(0.0)
    step = bbb_elbo.make_step(loss, opt, n_batches=5, schedule="blundell")
    assert step is bbb_elbo.make_step(bbb_elbo.ELBOLoss(module, 10, "gaussian", noise_std=0.1),
                                      opt, n_batches=5, schedule="blundell")  # cached: 1 compile
    state = train.init_state(jax.random.key(1), params, opt)
    seen = []
    jstep = jax.jit(step)
    for i in range(10):
        state, metrics = jstep(state, {"x": x[2 * (i % 5):2 * (i % 5) + 2],
                                       "y": y[2 * (i % 5):2 * (i % 5) + 2]})
        seen.append(float(metrics["kl_weight"]))
    ref = np.tile(np.asarray(bbb_elbo.kl_weights(5, "blundell")), 2)
    np.testing.assert_allclose(seen, ref, rtol=1e-6)


# ----------------------------------------------------------------- fit, predictive, pruning


@functools.cache
def _toy_fit():
    """1-D regression, 200 points on [-1, 1]; a short BBB fit with learned noise."""
    kx, kn = jax.random.split(jax.random.key(0))
    x = jax.random.uniform(kx, (200, 1), minval=-1.0, maxval=1.0)
    y = jnp.sin(3.0 * x[:, 0]) + 0.1 * jax.random.normal(kn, (200,))
    module = MLPNet(hidden=32)
    params = bbb_elbo.init_params(jax.random.key(1), module, x, noise_std=0.5)
    res = bbb_elbo.fit(jax.random.key(2), x, y, module=module, params=params,
                       optimizer=optax.adam(1e-2), batch_size=40, n_epochs=200,
                       task="regression", progress=False, epochs_per_chunk=200)
    return module, res, x, y


def test_regression_fit_uncertainty_grows_away_from_data():
    module, res, x, y = _toy_fit()
    hist = res.history["loss"]
    assert hist[-20:].mean() < hist[:5].mean()
    params = res.params
    # Learned noise std near the true 0.1 (loose: a short run and a 200-point sample).
    assert 0.05 < math.exp(float(params.log_noise_std)) < 0.25
    far = jnp.array([[-3.0], [-2.5], [2.5], [3.0]])
    grid = jnp.concatenate([x, far], axis=0)  # one predictive call: one compile
    mean, var = bbb_elbo.regression_predictive(jax.random.key(3), module, params, grid,
                                               n_samples=100)
    rmse = float(np.sqrt(np.mean(np.square(np.asarray(mean)[:200] - np.asarray(y)))))
    assert rmse < 0.2
    # Epistemic part: variance of the network output over weight samples (same samples).
    out = bbb_elbo.sample_outputs(jax.random.key(3), module, params, grid, n_samples=100)
    epistemic = jnp.var(out[..., 0], axis=0)
    np.testing.assert_allclose(var - epistemic, jnp.exp(2.0 * params.log_noise_std),
                               rtol=1e-4)
    epistemic = np.asarray(epistemic)
    assert epistemic[200:].min() > 3.0 * epistemic[:200].mean()


def test_pruning_keeps_fraction_and_zero_pruning_is_identity():
    module, res, x, y = _toy_fit()
    params = res.params
    snr = bbb_prune.signal_to_noise(params)
    n_total = sum(v.size for v in snr.values())
    assert n_total == 1 * 32 + 32 + 32 * 1 + 1
    plain = bbb_prune.signal_to_noise(params, decibels=False)
    for name in snr:
        np.testing.assert_allclose(snr[name], 10 * np.log10(plain[name]), rtol=1e-4, atol=1e-4)
    key = jax.random.key(4)
    ref = bbb_elbo.sample_outputs(key, module, params, x, n_samples=5)
    same, n0 = bbb_prune.prune(params, 0.0)
    assert n0 == 0
    np.testing.assert_array_equal(bbb_elbo.sample_outputs(key, module, same, x, n_samples=5), ref)
    all_snr = np.concatenate([np.ravel(v) for v in plain.values()])
    for fraction in (0.5, 0.75, 0.95, 0.98):
        pruned, n_pruned = bbb_prune.prune(params, fraction)
        assert n_pruned == round(fraction * n_total)
        flat, pairs = bbb_prune._pairs(pruned.net)
        zero = np.concatenate([np.ravel((np.asarray(flat[m]) == 0)
                                        & (np.asarray(flat[r]) == bbb.PRUNED_RHO))
                               for m, r in pairs])
        assert zero.sum() == n_pruned
        # The pruned weights are the lowest-SNR ones.
        assert all_snr[zero].max() <= all_snr[~zero].min()
        # and they are deterministic zeros: sigma = softplus(PRUNED_RHO) == 0.
        assert float(jax.nn.softplus(jnp.float32(bbb.PRUNED_RHO))) == 0.0
    table = bbb_prune.pruning_table(key, module, params, x, y, task="regression", n_samples=5)
    np.testing.assert_array_equal(table.n_kept, [97 - round(f * 97) for f in table.fraction])
    assert table.error[0] < 0.2 and np.all(np.isfinite(table.error))


# ----------------------------------------------------------------------------- recurrent


def test_gru_weights_sampled_once_and_cell_matches_manual_unroll():
    x = _normal(jax.random.key(0), (3, 6, 2))
    gru = bbb_recurrent.BayesGRU(5)
    net = bbb.init(jax.random.key(1), gru, x)
    p = net["params"]
    # KL counted once per call (weights sampled once, not once per time step).
    _, kl = _apply(jax.random.key(2), gru, net, x)
    ref_kl = sum(_np_gaussian_kl(p[f"{n}_mu"], p[f"{n}_rho"], 1.0)
                 for n in ("input_kernel", "recurrent_kernel", "bias"))
    np.testing.assert_allclose(float(kl), ref_kl, rtol=1e-5)
    # With sigma = 0 the layer is a plain GRU with the posterior means: unroll it by hand.
    det = {"params": {k: (jnp.full_like(v, bbb.PRUNED_RHO) if k.endswith("_rho") else v)
                      for k, v in p.items()}}
    hs, _ = _apply(jax.random.key(2), gru, det, x)
    w_in, w_rec, b = (np.asarray(p[f"{n}_mu"], np.float64)
                      for n in ("input_kernel", "recurrent_kernel", "bias"))

    def sig(v):
        return 1.0 / (1.0 + np.exp(-v))

    h = np.zeros((3, 5))
    for t in range(6):
        xp, hu = np.asarray(x[:, t], np.float64) @ w_in + b, h @ w_rec
        z, r = sig(xp[:, :5] + hu[:, :5]), sig(xp[:, 5:10] + hu[:, 5:10])
        h = (1 - z) * np.tanh(xp[:, 10:] + r * hu[:, 10:]) + z * h
        np.testing.assert_allclose(hs[:, t], h, rtol=1e-4, atol=1e-5)
    # With sigma > 0, one weight draw is shared over the sequence: identical sequences in the
    # batch give identical outputs at every step.
    x_same = jnp.concatenate([x[:1], x[:1], x[:1]], axis=0)  # same shape: no recompile
    hs2, _ = _apply(jax.random.key(3), gru, net, x_same)
    np.testing.assert_array_equal(hs2[0], hs2[1])
    np.testing.assert_array_equal(hs2[0], hs2[2])


@pytest.mark.slow  # ~25 s wall on the loaded 2-core box (training compile + 320 steps)
def test_gru_learns_sequence_sum():
    """Target = sum of a length-5 sequence of U(-1, 1) values (variance 5/3): the predictor of
    the mean has MSE 5/3; a short BBB fit of the GRU gets well below it."""
    kx, kt = jax.random.split(jax.random.key(0))
    x = jax.random.uniform(kx, (256, 5, 1), minval=-1.0, maxval=1.0)
    y = x.sum(axis=(1, 2))
    module = GRUNet()
    params = bbb_elbo.init_params(jax.random.key(1), module, x)
    res = bbb_elbo.fit(jax.random.key(2), x, y, module=module, params=params,
                       optimizer=optax.adam(2e-2), batch_size=32, n_epochs=40,
                       task="regression", noise_std=0.3, schedule="blundell",
                       progress=False, epochs_per_chunk=40)
    xt = jax.random.uniform(kt, (200, 5, 1), minval=-1.0, maxval=1.0)
    mean, _ = bbb_elbo.regression_predictive(jax.random.key(3), module, res.params, xt,
                                             n_samples=20, noise_std=0.0)
    mse = float(jnp.mean(jnp.square(mean - xt.sum(axis=(1, 2)))))
    assert mse < 0.1 * (5.0 / 3.0), mse


# ----------------------------------------------------------------------------- bad input


def test_bad_input_raises():
    with pytest.raises(ValueError, match="scale"):
        bbb.gaussian_prior(-1.0)
    with pytest.raises(ValueError, match="pi"):
        bbb.scale_mixture_prior(1.2, 1.0, 0.01)
    with pytest.raises(ValueError, match="pi"):
        bbb.scale_mixture_prior(0.0, 1.0, 0.01)
    with pytest.raises(ValueError, match="scale2"):
        bbb.scale_mixture_prior(0.5, 1.0, -0.01)
    with pytest.raises(ValueError, match="prior.scale"):
        bbb.BayesDense(3, prior=bbb.GaussianPrior(-1.0))
    with pytest.raises(ValueError, match="prior.pi"):
        bbb_recurrent.BayesGRU(3, prior=bbb.ScaleMixturePrior(1.5, 1.0, 0.1))
    with pytest.raises(TypeError, match="prior"):
        bbb.BayesConv(3, prior=0.5)
    with pytest.raises(ValueError, match="sigma_init"):
        bbb.BayesDense(3, sigma_init=0.0)
    with pytest.raises(ValueError, match="kl_method"):
        bbb.BayesDense(3, kl_method="exact")
    with pytest.raises(ValueError, match="GaussianPrior"):
        bbb.BayesDense(3, prior=MIXTURE, kl_method="closed")
    with pytest.raises(ValueError, match="schedule"):
        bbb_elbo.kl_weights(5, "cosine")
    module = MLPNet(hidden=4)
    with pytest.raises(ValueError, match="schedule"):
        bbb_elbo.make_step(bbb_elbo.ELBOLoss(module, 10, "gaussian", 0.1), optax.sgd(0.1),
                           n_batches=2, schedule="linear")
    with pytest.raises(ValueError, match="likelihood"):
        bbb_elbo.ELBOLoss(module, 10, "poisson")
    with pytest.raises(ValueError, match="noise_std"):
        bbb_elbo.ELBOLoss(module, 10, "gaussian", noise_std=-1.0)
    x, y = jnp.ones((10, 1)), jnp.ones(10)
    params = bbb_elbo.init_params(jax.random.key(0), module, x)
    with pytest.raises(ValueError, match="noise_std"):
        bbb_elbo.fit(jax.random.key(0), x, y, module=module, params=params,
                     optimizer=optax.sgd(0.1), batch_size=5, n_epochs=1, task="regression")
    with pytest.raises(ValueError, match="y must have one entry per row of X"):
        bbb_elbo.fit(jax.random.key(0), x, y[:5], module=module, params=params,
                     optimizer=optax.sgd(0.1), batch_size=5, n_epochs=1, task="regression",
                     noise_std=0.1)
    with pytest.raises(ValueError, match="n_samples"):
        bbb_elbo.sample_outputs(jax.random.key(0), module, params, x, n_samples=0)
    with pytest.raises(TypeError, match="key"):
        bbb_elbo.init_params(0, module, x)
    with pytest.raises(ValueError, match="fraction"):
        bbb_prune.prune(params, 1.0)
    with pytest.raises(ValueError, match="fraction"):
        bbb_prune.prune(params, -0.1)
    with pytest.raises(ValueError, match="x must be 4-D"):
        bbb.init(jax.random.key(0), bbb.BayesConv(2), jnp.ones((3, 5, 1)))
    with pytest.raises(ValueError, match="x must be 3-D"):
        bbb.init(jax.random.key(0), bbb_recurrent.BayesGRU(2), jnp.ones((3, 5)))


# ----------------------------------------------------------------------------- UCI method


def test_uci_method_loss_is_the_normalized_elbo():
    """bbb_uci's loss (KL from gaussian_kl_tree with a traced prior scale) equals ELBOLoss with
    normalize=True (KL sown by the layers with their static prior) for the same weight
    sample, and the grid/standardise/predict pieces have the protocol's units and shapes."""
    from espresso_jax.apps.uci import bbb as bbb_uci
    from espresso_jax.datasets.uci import UCIDataset

    method = bbb_uci.bbb_method(noise="learned", prior_scales=(1.0,))
    params = jax.jit(method.init, static_argnums=(1, 2))(jax.random.key(0), 3, 7)
    x = jax.random.normal(jax.random.key(1), (10, 3))
    y = jnp.sin(x[:, 0])
    hp = bbb_uci.BBBHParams(jnp.float32(1.0), jnp.float32(1.0))
    key = jax.random.key(2)
    ref_loss = bbb_elbo.ELBOLoss(bbb.BayesMLP((7, 1)), 40, "gaussian", normalize=True)

    @jax.jit
    def everything(params):  # one compile for all the pieces
        got = method.loss(params, (x, y), key, hp, 40)
        # ELBOLoss: uniform KL weight (no kl_weight given), the sample key used directly.
        ref = ref_loss(params, {"x": x, "y": y}, jax.random.split(key, 1)[0])[0]
        kl = bbb.gaussian_kl_tree(params.net, hp.prior_scale)
        return got, ref, kl, method.predict(jax.random.key(3), params, x, hp, 5)

    got, ref, kl, (means, prec) = everything(params)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    np.testing.assert_allclose(kl, sum(_np_gaussian_kl(v["kernel_mu"], v["kernel_rho"], 1.0)
                                       + _np_gaussian_kl(v["bias_mu"], v["bias_rho"], 1.0)
                                       for v in params.net["params"].values()), rtol=1e-5)
    assert means.shape == (5, 10)
    np.testing.assert_allclose(prec, np.exp(-2.0 * float(params.log_noise_std)), rtol=1e-6)
    ds = UCIDataset("toy", np.zeros((4, 3)), np.zeros(4), (), (), 7, 1, np.array([0.1]),
                    np.array([0.5, 2.0]))
    grid = bbb_uci.bbb_method(noise="grid", prior_scales=(0.5, 1.0)).grid(ds)
    np.testing.assert_allclose(grid.prior_scale, [0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(grid.tau, [0.5, 2.0, 0.5, 2.0])
    std = bbb_uci.bbb_method(noise="grid", prior_scales=(0.5, 1.0)).standardize(
        grid, jnp.float32(3.0))
    np.testing.assert_allclose(std.tau, 9.0 * grid.tau, rtol=1e-6)
    with pytest.raises(ValueError, match="noise"):
        bbb_uci.bbb_method(noise="fixed")
    with pytest.raises(ValueError, match="prior_scales"):
        bbb_uci.bbb_method(prior_scales=(1.0, -1.0))


@pytest.mark.slow  # a compiled protocol run: ~1 min on the loaded 2-core box
def test_uci_protocol_smoke_yacht():
    from espresso_jax.apps.uci import bbb as bbb_uci
    from espresso_jax.apps.uci import protocol as uci
    from espresso_jax.datasets.uci import load_uci

    try:
        ds = load_uci("yacht")
    except FileNotFoundError:
        pytest.skip("UCI yacht data not found (set ESPRESSO_JAX_DATA)")
    res = uci.run_protocol(jax.random.key(0), ds, bbb_uci.bbb_method(),
                           optimizer=optax.adam(1e-2), n_splits=2, n_epochs=100,
                           n_samples=500, n_samples_val=100)
    # Target std of yacht is ~15: a trained net must do far better than predicting the mean.
    assert res.rmse_mean < 4.0 and np.isfinite(res.ll_mean)
