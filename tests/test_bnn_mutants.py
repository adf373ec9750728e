"""Tests written to kill surviving mutants of the BNN modules (issue 12 section 4): each one
checks a documented claim of bnn/{bbb,bbb_elbo,dropout,heteroscedastic}.py against a hand or
numpy reference. Deterministic: fixed keys, and where a posterior std enters it is made
negligible (``rho = -40``: ``softplus(-40) = 4e-18``)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from espresso_jax.bnn import bbb, dropout, heteroscedastic
from espresso_jax.bnn.bbb_elbo import BBBParams, ELBOLoss, classification_predictive, sample_outputs

X2 = np.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5], [1.0, 1.0]], np.float32)
KERNEL = np.array([[0.3, -0.2, 0.1], [0.7, 0.4, -0.5]], np.float32)
BIAS = np.array([0.5, -1.0, 2.0], np.float32)


def _dense_vars(rho_k, rho_b):
    return {"params": {"kernel_mu": jnp.asarray(KERNEL), "kernel_rho": jnp.asarray(rho_k),
                       "bias_mu": jnp.asarray(BIAS), "bias_rho": jnp.asarray(rho_b)}}


def _np_gaussian_kl(mu, rho, scale):
    sigma = np.log1p(np.exp(rho.astype(np.float64)))
    return np.sum(np.log(scale / sigma) + (sigma ** 2 + mu.astype(np.float64) ** 2)
                  / (2 * scale ** 2) - 0.5)


def test_bayes_dense_kl_is_closed_form_over_kernel_and_bias():
    # apply's kl: the sum over kernel AND bias of KL(N(mu, sigma^2) || N(0, 1)), no offset.
    module = bbb.BayesDense(3)
    rho_k = np.full(KERNEL.shape, -1.0, np.float32)
    rho_b = np.array([-2.0, 0.0, 0.5], np.float32)
    _, kl = bbb.apply(jax.random.key(0), module, _dense_vars(rho_k, rho_b), X2)
    ref = _np_gaussian_kl(KERNEL, rho_k, 1.0) + _np_gaussian_kl(BIAS, rho_b, 1.0)
    np.testing.assert_allclose(float(kl), ref, rtol=1e-5)


def test_bayes_dense_with_negligible_sigma_is_affine():
    module = bbb.BayesDense(3)
    v = _dense_vars(np.full(KERNEL.shape, -40.0, np.float32), np.full(3, -40.0, np.float32))
    y, _ = bbb.apply(jax.random.key(1), module, v, X2)
    np.testing.assert_allclose(np.asarray(y), X2 @ KERNEL + BIAS, rtol=1e-5, atol=1e-6)


def test_bayes_conv_3d_pointwise_kernel_is_a_dense_map():
    # kernel_size may have 3 entries (DHW): a (1, 1, 1) kernel is a dense map of the channels.
    module = bbb.BayesConv(3, kernel_size=(1, 1, 1))
    x = np.random.default_rng(0).normal(size=(1, 2, 2, 2, 2)).astype(np.float32)
    v = {"params": {"kernel_mu": jnp.asarray(KERNEL.reshape(1, 1, 1, 2, 3)),
                    "kernel_rho": jnp.full((1, 1, 1, 2, 3), -40.0),
                    "bias_mu": jnp.asarray(BIAS), "bias_rho": jnp.full(3, -40.0)}}
    y, _ = bbb.apply(jax.random.key(2), module, v, x)
    assert y.shape == (1, 2, 2, 2, 3)
    np.testing.assert_allclose(np.asarray(y), x @ KERNEL + BIAS, rtol=1e-5, atol=1e-6)


def test_elbo_loss_with_a_batch_larger_than_the_data_uses_one_batch():
    # M = max(1, N // B) = 1 when B > N: loss = KL + (N / B) * sum_i -log N(y_i | f_i, 1).
    module = bbb.BayesDense(1)
    params = BBBParams(net=bbb.init(jax.random.key(3), module, X2[:1]))
    y = np.array([0.5, -0.5, 1.0, 0.0], np.float32)
    loss_fn = ELBOLoss(module, n_data=2, likelihood="gaussian", noise_std=1.0)
    key = jax.random.key(4)
    loss, aux = loss_fn(params, {"x": jnp.asarray(X2), "y": jnp.asarray(y)}, key)
    out, kl = bbb.apply(key, module, params.net, X2)
    nll = 0.5 * np.sum((y - np.asarray(out)[:, 0]) ** 2 + np.log(2 * np.pi))
    np.testing.assert_allclose(float(aux["kl_weight"]), 1.0)
    np.testing.assert_allclose(float(loss), float(kl) + (2 / 4) * nll, rtol=1e-5)


def test_classification_predictive_is_the_mean_softmax_over_classes():
    module = bbb.BayesMLP((4, 3))
    net = bbb.init(jax.random.key(5), module, X2[:1])
    probs = np.asarray(classification_predictive(jax.random.key(6), module, net, X2,
                                                 n_samples=2))
    logits = np.asarray(sample_outputs(jax.random.key(6), module, net, X2, n_samples=2))
    e = np.exp(logits - logits.max(-1, keepdims=True))
    ref = np.mean(e / e.sum(-1, keepdims=True), axis=0)
    np.testing.assert_allclose(probs, ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)


# ----------------------------------------------------------------------------- MC dropout


def test_apply_dropout_keeps_an_entry_whose_uniform_equals_the_rate():
    # documented: keep when uniform >= rate, scaled by 1 / (1 - rate).
    out = dropout.apply_dropout(jnp.ones(3), jnp.array([0.25, 0.2, 0.9]), 0.25)
    np.testing.assert_allclose(np.asarray(out), [1 / 0.75, 0.0, 1 / 0.75], rtol=1e-6)


def _passes(module, params, x, rate, n):
    return np.stack([np.asarray(module.apply(params, x, rate, deterministic=False,
                                             rngs={"dropout": k}))
                     for k in jax.random.split(jax.random.key(7), n)])


def test_dropout_mlp_drops_the_input_when_input_dropout():
    # no hidden layer: the only dropout is on the input; with unit kernel and zero bias the
    # output is (number of kept inputs) / (1 - p), so the passes take several values.
    module = dropout.DropoutMLP(hidden=(), input_dropout=True)
    params = {"params": {"dense_0": {"kernel": jnp.ones((4, 1)), "bias": jnp.zeros(1)}}}
    out = _passes(module, params, jnp.ones((1, 4)), 0.5, 16)
    np.testing.assert_allclose(out % 2.0, 0.0, atol=1e-5)     # multiples of 1 / (1 - 0.5)
    assert len(np.unique(np.round(out, 4))) >= 3


def test_dropout_mlp_drops_hidden_units_without_input_dropout():
    module = dropout.DropoutMLP(hidden=(4,), input_dropout=False)
    params = {"params": {"dense_0": {"kernel": jnp.ones((2, 4)), "bias": jnp.zeros(4)},
                         "dense_1": {"kernel": jnp.ones((4, 1)), "bias": jnp.zeros(1)}}}
    out = _passes(module, params, jnp.ones((1, 2)), 0.5, 16)  # hidden units are 2 each
    np.testing.assert_allclose(out % 4.0, 0.0, atol=1e-5)     # kept units * 2 / (1 - 0.5)
    assert len(np.unique(np.round(out, 4))) >= 3


def test_mc_forward_pass_t_uses_the_t_th_key_split():
    module = dropout.DropoutMLP(hidden=(5,))
    params = module.init(jax.random.key(8), X2[:1], 0.5, deterministic=True)
    key = jax.random.key(9)
    out = dropout.mc_forward(key, params, X2, 0.5, n_samples=3, chunk_size=2)
    ref = np.stack([np.asarray(module.apply(params, X2, 0.5, deterministic=False,
                                            rngs={"dropout": k}))
                    for k in jax.random.split(key, 3)])
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5, atol=1e-6)


def test_dropout_fit_default_length_scale_is_1e_2():
    X = np.random.default_rng(1).normal(size=(8, 2)).astype(np.float32)
    y = X[:, 0] - X[:, 1]
    module = dropout.DropoutMLP(hidden=(4,))

    def loss(**kw):
        r = dropout.fit(jax.random.key(10), X, y, module=module, optimizer=optax.sgd(0.01),
                        batch_size=8, n_epochs=1, task="regression", rate=0.1, progress=False,
                        **kw)
        return float(r.history["loss"][-1])

    default = loss()
    assert default == pytest.approx(loss(length_scale=1e-2), rel=1e-6)
    assert default != pytest.approx(loss(length_scale=2e-2), rel=1e-6)


# ----------------------------------------------------------------------------- heteroscedastic


def test_logit_noise_loss_one_row_and_one_class():
    # sigma -> 0: the cross-entropy -log softmax(f)_y; one row of 3 classes is valid,
    # one class (column) is not.
    mean = np.array([[1.0, -0.5, 0.25]], np.float32)
    loss = heteroscedastic.logit_noise_loss(jax.random.key(11), np.array([2]), mean,
                                            np.full_like(mean, -40.0), n_samples=2)
    ref = -(mean[0, 2] - np.log(np.sum(np.exp(mean[0]))))
    np.testing.assert_allclose(float(loss), ref, rtol=1e-5)
    with pytest.raises(ValueError, match="2 classes"):
        heteroscedastic.logit_noise_loss(jax.random.key(11), np.zeros(3, int),
                                         np.zeros((3, 1)), np.zeros((3, 1)), n_samples=2)


def _head():
    module = heteroscedastic.HeteroscedasticHead(out_features=1, hidden=(4, 4),
                                                 dropout_rate=0.3)
    return module, module.init(jax.random.key(12), X2[:1], deterministic=True)


def test_mc_predict_rejects_zero_samples_and_takes_3d_inputs():
    module, params = _head()
    with pytest.raises(ValueError, match="n_samples"):
        heteroscedastic.mc_predict(jax.random.key(13), module, params, X2, n_samples=0)
    x3 = np.stack([X2, -X2], axis=1)                          # (n, 2, d)
    mean_t, log_var_t = heteroscedastic.mc_predict(jax.random.key(13), module, params, x3,
                                                   n_samples=2)
    assert mean_t.shape == log_var_t.shape == (2, 4, 2, 1)


def test_predict_regression_decomposes_the_mc_passes():
    module, params = _head()
    key = jax.random.key(14)
    u = heteroscedastic.predict_regression(key, module, params, X2, n_samples=5)
    mean_t, log_var_t = (np.asarray(a)[..., 0] for a in
                         heteroscedastic.mc_predict(key, module, params, X2, n_samples=5))
    np.testing.assert_allclose(np.asarray(u.mean), mean_t.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(u.epistemic), mean_t.var(0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(u.aleatoric), np.exp(log_var_t).mean(0), rtol=1e-5)
