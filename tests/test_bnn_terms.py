"""Bayesian-network functions term by term (espresso_jax.bnn.*): predictive moments and the
pruning table against the same quantities assembled by hand from the documented pieces.
Added for the mutation score of issue 12.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import expit, log_softmax
from scipy.stats import norm

from espresso_jax.bnn import bbb, bbb_elbo, bbb_prune, bbb_recurrent, heteroscedastic

NET = bbb.BayesMLP(features=(8, 3), sigma_init=0.1, activation=jnp.tanh)


def _net_and_inputs():
    x = np.linspace(-1.0, 1.0, 10, dtype=np.float32).reshape(5, 2)
    params = bbb_elbo.init_params(jax.random.key(0), NET, x, noise_std=0.3)
    return params, x


def test_regression_predictive_adds_the_noise_variance():
    """``var = Var_w f + noise_std^2`` (divisor S), with a given or the learned noise std."""
    params, x = _net_and_inputs()
    key = jax.random.key(1)
    out = np.asarray(bbb_elbo.sample_outputs(key, NET, params, x, n_samples=7), np.float64)
    for noise_std, noise_var in ((0.5, 0.25), (0.0, 0.0), (None, 0.09)):
        mean, var = bbb_elbo.regression_predictive(key, NET, params, x, n_samples=7,
                                                   noise_std=noise_std)
        np.testing.assert_allclose(np.asarray(mean), out.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(var), out.var(0) + noise_var, rtol=1e-4,
                                   atol=1e-6)


def test_classification_pruning_table_is_the_error_of_the_pruned_predictive():
    """Each row: the error rate of the predictive of the pruned network (the documented
    default of 10 posterior samples, the same key for every fraction)."""
    params, _ = _net_and_inputs()
    x = np.random.default_rng(9).normal(scale=2.0, size=(200, 2)).astype(np.float32)
    y = np.random.default_rng(10).integers(0, 3, 200)
    key = jax.random.key(2)
    fractions = (0.0, 0.5, 0.9)
    table = bbb_prune.pruning_table(key, NET, params, x, y, fractions=fractions)
    n_weights = 2 * 8 + 8 + 8 * 3 + 3
    errors = []
    for fraction in fractions:
        pruned, _ = bbb_prune.prune(params, fraction)
        probs = np.asarray(bbb_elbo.classification_predictive(key, NET, pruned, x,
                                                              n_samples=10))
        errors.append(np.mean(probs.argmax(axis=1) != y))
    np.testing.assert_array_equal(table.fraction, fractions)
    np.testing.assert_array_equal(table.n_kept, [n_weights - round(f * n_weights)
                                                 for f in fractions])
    np.testing.assert_allclose(table.error, errors)


def test_normalized_elbo_loss_divides_every_term_by_n():
    """``normalize=True`` is the per-example scale: loss, ``nll`` and ``kl`` all divided by N;
    the unnormalised loss is ``kl_term + nll`` with ``kl_term = M pi_i KL``."""
    params, x = _net_and_inputs()
    batch = {"x": x[:2], "y": np.array([0, 2]), "kl_weight": jnp.float32(0.125)}
    key = jax.random.key(3)
    plain = bbb_elbo.ELBOLoss(NET, 10, "categorical")
    scaled = bbb_elbo.ELBOLoss(NET, 10, "categorical", normalize=True)
    loss, aux = plain(params, batch, key)
    loss_n, aux_n = scaled(params, batch, key)
    _, kl = bbb.apply(key, NET, params.net, x[:2])
    np.testing.assert_allclose(float(aux["kl"]), 5 * 0.125 * float(kl), rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(aux["kl"] + aux["nll"]), rtol=1e-6)
    for a, b in ((loss_n, loss), (aux_n["nll"], aux["nll"]), (aux_n["kl"], aux["kl"])):
        np.testing.assert_allclose(float(a), float(b) / 10, rtol=1e-6)


def test_default_bayes_conv_is_a_3x3_same_stride_1_correlation():
    """With sigma = 0 (rho = PRUNED_RHO) the default BayesConv (3 x 3 window, stride 1, "SAME"
    zero padding) is the cross-correlation with the posterior means plus the bias, computed
    here by explicit loops."""
    x = np.random.default_rng(0).normal(size=(1, 4, 5, 2)).astype(np.float32)
    conv = bbb.BayesConv(3)
    variables = bbb.init(jax.random.key(0), conv, x)
    p = variables["params"]
    kernel, bias = np.asarray(p["kernel_mu"]), np.asarray(p["bias_mu"])
    assert kernel.shape == (3, 3, 2, 3)
    det = {"params": {k: (jnp.full_like(v, bbb.PRUNED_RHO) if k.endswith("_rho") else v)
                      for k, v in p.items()}}
    out, _ = bbb.apply(jax.random.key(1), conv, det, x)
    padded = np.pad(x[0], ((1, 1), (1, 1), (0, 0)))
    ref = np.array([[np.einsum("abc,abcf->f", padded[i:i + 3, j:j + 3], kernel) + bias
                     for j in range(5)] for i in range(4)])
    np.testing.assert_allclose(np.asarray(out[0]), ref, rtol=1e-4, atol=1e-5)


class _Nested(nn.Module):
    """A BayesMLP inside another module: posterior paths three levels deep."""

    @nn.compact
    def __call__(self, x):
        return bbb.BayesMLP(features=(3, 2), sigma_init=0.05, name="mlp")(x)


def test_signal_to_noise_of_a_nested_module_matches_numpy():
    """``10 log10(|mu| / softplus(rho))`` for every posterior tensor, named by its path."""
    x = np.ones((1, 2), np.float32)
    variables = bbb.init(jax.random.key(4), _Nested(), x)
    snr = bbb_prune.signal_to_noise(variables)
    layers = variables["params"]["mlp"]
    expected = {}
    for layer, p in layers.items():
        for name in ("kernel", "bias"):
            mu, rho = np.asarray(p[f"{name}_mu"], np.float64), np.asarray(p[f"{name}_rho"])
            with np.errstate(divide="ignore"):     # biases start at mu = 0: -inf dB
                expected[f"mlp/{layer}/{name}"] = 10 * np.log10(np.abs(mu)
                                                                / np.log1p(np.exp(rho)))
    assert sorted(snr) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(np.asarray(snr[name]), value, rtol=1e-4, atol=1e-4)
    pruned, n_pruned = bbb_prune.prune(variables, 0.5)      # plain flax variables in and out
    assert n_pruned == round(0.5 * (2 * 3 + 3 + 3 * 2 + 2))
    zeros = sum(int(np.sum(np.asarray(p[f"{n}_rho"]) == bbb.PRUNED_RHO))
                for p in pruned["params"]["mlp"].values() for n in ("kernel", "bias"))
    assert zeros == n_pruned


def test_gaussian_kl_tree_sums_only_complete_pairs():
    """A ``name_mu`` leaf without its ``name_rho`` (and any other leaf) is not a posterior:
    the KL is the closed form summed over the complete pairs alone."""
    rng = np.random.default_rng(5)
    mu, rho = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)) - 2.0
    layer = {"kernel_mu": jnp.asarray(mu, jnp.float32), "kernel_rho": jnp.asarray(rho, jnp.float32),
             "shift_mu": jnp.ones((2,), jnp.float32), "scale": jnp.ones((2,), jnp.float32)}
    tree = {"params": {"outer": {"layer": layer}}}          # paths three levels deep
    var = np.log1p(np.exp(rho)) ** 2
    scale = 0.7
    expected = np.sum(0.5 * (var + mu ** 2) / scale ** 2 - 0.5 * np.log(var / scale ** 2) - 0.5)
    np.testing.assert_allclose(float(bbb.gaussian_kl_tree(tree, scale)), expected, rtol=1e-5)


def test_logit_noise_probs_match_quadrature_for_two_classes():
    """Two classes: ``p_1 = E[sigmoid(d + s Z)]``, ``d = f_1 - f_0``, ``s^2 = sigma_0^2 +
    sigma_1^2``, by quadrature; the MC estimate over T draws is within 6 SE, the SE from the
    quadrature variance of ``sigmoid(d + s Z)`` (measured: at most 1.7 SE over the rows with
    this key, at most 2.2 SE over keys 6 to 11)."""
    mean = np.array([[0.0, 1.5], [0.5, -1.0], [2.0, 2.0]])
    log_var = np.array([[0.0, 0.0], [np.log(4.0), -1.0], [-3.0, 1.0]])
    T = 20_000
    probs = np.asarray(heteroscedastic.logit_noise_probs(jax.random.key(6), mean, log_var,
                                                         n_samples=T), np.float64)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    for i in range(3):
        d, s = mean[i, 1] - mean[i, 0], np.sqrt(np.exp(log_var[i]).sum())
        m1 = quad(lambda z, d=d, s=s: expit(d + s * z) * norm.pdf(z), -12, 12)[0]
        m2 = quad(lambda z, d=d, s=s: expit(d + s * z) ** 2 * norm.pdf(z), -12, 12)[0]
        assert abs(probs[i, 1] - m1) < 6 * np.sqrt((m2 - m1 ** 2) / T)


def test_heteroscedastic_head_drops_every_dense_input_but_the_raw_x():
    """Dropout acts on the input of every Dense layer of the head except the raw ``x`` (no
    body): two dropout keys give the same output exactly when no dropout layer exists."""
    x = np.linspace(0.5, 2.0, 12, dtype=np.float32).reshape(4, 3)
    cases = [(None, (), False), (None, (6,), True), (nn.Dense(5), (), True),
             (nn.Dense(5), (6, 6), True)]
    for body, hidden, random in cases:
        head = heteroscedastic.HeteroscedasticHead(out_features=2, hidden=hidden, body=body,
                                                   dropout_rate=0.5)
        params = head.init(jax.random.key(0), x, deterministic=True)
        a = head.apply(params, x, rngs={"dropout": jax.random.key(1)})
        b = head.apply(params, x, rngs={"dropout": jax.random.key(2)})
        det = head.apply(params, x, deterministic=True)
        assert a[0].shape == a[1].shape == (4, 2)
        same = all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
        assert same != random, (body, hidden)
        if not random:
            np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(det[0]))


def test_scale_mixture_prior_weight_must_lie_strictly_inside_0_1():
    for pi in (0.0, 1.0):
        with pytest.raises(ValueError, match="pi"):
            bbb.check_prior(bbb.ScaleMixturePrior(pi, 1.0, 0.1))
        with pytest.raises(ValueError, match="pi"):
            bbb.scale_mixture_prior(pi, 1.0, 0.1)
    assert bbb.check_prior(bbb.ScaleMixturePrior(0.5, 1.0, 0.1)).pi == 0.5


def test_deterministic_gru_with_a_bias_matches_numpy():
    """The initial posterior stds are the default ``sigma_init = 0.01``. With sigma = 0 and
    random posterior means (a non-zero bias too): ``x_proj = x W + b`` and the documented GRU
    update ``h' = (1 - z) n + z h``, unrolled in NumPy; ``return_sequences=False`` returns the
    last state."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 3, 2)).astype(np.float32)
    gru = bbb_recurrent.BayesGRU(4, return_sequences=False)
    shapes = bbb.init(jax.random.key(0), gru, x)["params"]
    for name, rho in shapes.items():      # every posterior std starts at sigma_init = 0.01
        if name.endswith("_rho"):
            np.testing.assert_allclose(np.log1p(np.exp(np.asarray(rho, np.float64))), 0.01,
                                       rtol=1e-5)
    mus = {k: rng.normal(scale=0.7, size=v.shape).astype(np.float32)
           for k, v in shapes.items() if k.endswith("_mu")}
    det = {"params": {**{k: jnp.asarray(v) for k, v in mus.items()},
                      **{k: jnp.full_like(v, bbb.PRUNED_RHO)
                         for k, v in shapes.items() if k.endswith("_rho")}}}
    last, _ = bbb.apply(jax.random.key(1), gru, det, x)
    w_in, w_rec, b = (mus[f"{n}_mu"].astype(np.float64)
                      for n in ("input_kernel", "recurrent_kernel", "bias"))
    h = np.zeros((2, 4))
    for t in range(3):
        xp, hu = x[:, t] @ w_in + b, h @ w_rec
        z, r = expit(xp[:, :4] + hu[:, :4]), expit(xp[:, 4:8] + hu[:, 4:8])
        h = (1 - z) * np.tanh(xp[:, 8:] + r * hu[:, 8:]) + z * h
    np.testing.assert_allclose(np.asarray(last), h, rtol=1e-4, atol=1e-5)


def test_gaussian_log_likelihood_squeezes_a_single_output_column():
    """Outputs ``(batch, 1)`` for a ``(batch,)`` target: ``log N(y; f, s^2)`` per example."""
    f = np.array([[0.5], [-1.0], [2.0]], np.float32)
    y = np.array([0.0, -0.5, 3.0], np.float32)
    ll = bbb_elbo.log_likelihood("gaussian", jnp.asarray(f), jnp.asarray(y),
                                 jnp.log(jnp.float32(0.5)))
    np.testing.assert_allclose(np.asarray(ll), norm.logpdf(y, f[:, 0], 0.5), rtol=1e-5)


class _Flatten(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x.reshape(x.shape[0], -1)


def test_mc_predict_takes_image_batches_through_a_body():
    """``x`` may be ``(n, h, w, c)`` for a body that takes images: ``(T, n, D)`` outputs."""
    head = heteroscedastic.HeteroscedasticHead(out_features=2, body=_Flatten(),
                                               dropout_rate=0.2)
    x = np.ones((3, 2, 2, 1), np.float32)
    params = head.init(jax.random.key(0), x, deterministic=True)
    mean, log_var = heteroscedastic.mc_predict(jax.random.key(1), head, params, x, n_samples=4)
    assert mean.shape == log_var.shape == (4, 3, 2)


def test_categorical_log_likelihood_is_the_log_softmax_of_the_label():
    logits = np.random.default_rng(11).normal(size=(4, 3)).astype(np.float32)
    y = np.array([2, 0, 1, 2])
    ll = bbb_elbo.log_likelihood("categorical", jnp.asarray(logits), jnp.asarray(y))
    np.testing.assert_allclose(np.asarray(ll), log_softmax(logits, axis=1)[np.arange(4), y],
                               rtol=1e-5)


@pytest.mark.parametrize("use_x64", [False, True])
def test_bayes_dense_defaults_sigma_init_and_parameter_dtype(use_x64, request):
    """A default ``BayesDense`` starts every posterior std at ``sigma_init = 0.01`` and keeps
    its parameters in the default float dtype: float32, or float64 under x64."""
    if use_x64:
        request.getfixturevalue("x64")
    dtype = np.float64 if use_x64 else np.float32
    x = np.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(3, 2)
    params = bbb.init(jax.random.key(0), bbb.BayesDense(4), x)["params"]
    rhos = {k: v for k, v in params.items() if k.endswith("_rho")}
    assert set(rhos) == {"kernel_rho", "bias_rho"}
    for rho in rhos.values():
        np.testing.assert_allclose(np.log1p(np.exp(np.asarray(rho, np.float64))), 0.01,
                                   rtol=1e-5)
    assert {np.dtype(v.dtype) for v in params.values()} == {np.dtype(dtype)}


def test_heteroscedastic_classification_loss_needs_a_sample():
    head = heteroscedastic.HeteroscedasticHead(out_features=3)
    with pytest.raises(ValueError, match=r"^n_samples must be >= 1"):
        heteroscedastic.make_classification_loss(head, n_samples=0)
