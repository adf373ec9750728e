"""MC dropout (espresso_jax.bnn.dropout): weight decay, losses, MC predictive, bad input."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import special, stats

from espresso_jax import metrics, train
from espresso_jax.bnn import dropout

# Everything below runs under jax.jit: one compiled program per check is much cheaper than
# op-by-op dispatch of a flax network on the (loaded, 2-core) test machine.


def _init(module, key, X):
    return jax.jit(lambda k, x: module.init(k, x, 0.0, deterministic=True))(key, X)


def _apply(module, params, X):
    return jax.jit(lambda p, x: module.apply(p, x, 0.0, deterministic=True))(params, X)


@pytest.fixture(scope="module")
def net():
    module = dropout.DropoutMLP(hidden=(16, 8), n_outputs=1)
    X = jax.random.normal(jax.random.key(1), (40, 3))
    params = _init(module, jax.random.key(0), X)
    return module, params, X


def _kernels(params):
    layers = params["params"]
    return [np.asarray(layers[name]["kernel"], np.float64) for name in sorted(layers)]


def test_weight_decay_formula():
    # lambda = l^2 (1 - p) / (2 N tau), written out by hand.
    got = float(dropout.weight_decay(1e-2, 0.1, 300, 0.5))
    np.testing.assert_allclose(got, 1e-4 * 0.9 / (2 * 300 * 0.5), rtol=1e-6)
    # vectorised over a grid of rates and precisions
    rates, taus = jnp.array([0.0, 0.5]), jnp.array([1.0, 4.0])
    np.testing.assert_allclose(np.asarray(dropout.weight_decay(0.1, rates, 10, taus)),
                               [0.01 / 20, 0.01 * 0.5 / 80], rtol=1e-6)


def test_kernel_l2_skips_biases(net):
    _, params, _ = net
    shifted = jax.tree_util.tree_map_with_path(
        lambda path, a: a + 5.0 if path[-1].key == "bias" else a, params)
    expected = sum(float(np.sum(k ** 2)) for k in _kernels(params))
    np.testing.assert_allclose(float(dropout.kernel_l2(params)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(dropout.kernel_l2(shifted)), expected, rtol=1e-5)


def test_regression_loss_without_dropout_is_mse_plus_decay(net):
    module, params, X = net
    y = jnp.sin(X[:, 0])
    pred = np.asarray(_apply(module, params, X))[:, 0]
    lam = 0.1 ** 2 * 1.0 / (2 * 500 * 2.0)
    expected = np.mean((np.asarray(y) - pred) ** 2) + lam * sum(
        np.sum(k ** 2) for k in _kernels(params))
    got = jax.jit(lambda p: dropout.regression_loss(
        p, (X, y), jax.random.key(3), rate=0.0, tau=2.0, n_train=500, length_scale=0.1))(params)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_classification_loss_without_dropout():
    module = dropout.DropoutMLP(hidden=(8,), n_outputs=3)
    X = jax.random.normal(jax.random.key(4), (20, 2))
    labels = jnp.arange(20) % 3
    params = _init(module, jax.random.key(5), X)
    logits = np.asarray(_apply(module, params, X), np.float64)
    nll = -np.mean(special.log_softmax(logits, axis=1)[np.arange(20), np.asarray(labels)])
    lam = 1e-4 / (2 * 100)  # tau = 1 for classification
    expected = nll + lam * sum(np.sum(k ** 2) for k in _kernels(params))
    got = jax.jit(lambda p: dropout.classification_loss(
        p, (X, labels), jax.random.key(6), rate=0.0, n_train=100))(params)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


class _HiddenOnlyDropout(nn.Module):
    """A network that is not a DropoutMLP: dropout on the hidden units only, tanh."""

    @nn.compact
    def __call__(self, x, rate, *, deterministic):
        h = jnp.tanh(nn.Dense(6, name="hidden")(x))
        if not deterministic:
            h = dropout.apply_dropout(h, jax.random.uniform(self.make_rng("dropout"), h.shape),
                                      rate)
        return nn.Dense(1, name="out")(h)


def test_losses_take_any_module():
    """module= replaces the default DropoutMLP: the loss of a custom net is its own MSE (or
    cross-entropy) plus the decay on its kernels, and the default equals module=DropoutMLP."""
    X = jax.random.normal(jax.random.key(8), (30, 3))
    y = jnp.cos(X[:, 1])
    custom = _HiddenOnlyDropout()
    params = custom.init(jax.random.key(9), X, 0.2, deterministic=True)
    pred = np.asarray(custom.apply(params, X, 0.2, deterministic=True))[:, 0]
    lam = 1e-4 * (1.0 - 0.0) / (2 * 30 * 3.0)
    expected = np.mean((np.asarray(y) - pred) ** 2) + lam * sum(
        np.sum(np.asarray(k) ** 2) for k in _kernels(params))
    got = dropout.regression_loss(params, (X, y), jax.random.key(1), rate=0.0, tau=3.0,
                                  n_train=30, module=custom)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    # With dropout on, the loss depends on the key (masks are drawn) and stays finite.
    on = [float(dropout.regression_loss(params, (X, y), jax.random.key(k), rate=0.5, tau=3.0,
                                        n_train=30, module=custom)) for k in (1, 2)]
    assert np.all(np.isfinite(on)) and on[0] != on[1]
    mlp = dropout.DropoutMLP(hidden=(5,), n_outputs=3)
    mlp_params = _init(mlp, jax.random.key(10), X)
    labels = jnp.arange(30) % 3
    default = dropout.classification_loss(mlp_params, (X, labels), jax.random.key(2), rate=0.3,
                                          n_train=30)
    explicit = dropout.classification_loss(mlp_params, (X, labels), jax.random.key(2),
                                           rate=0.3, n_train=30, module=mlp)
    assert float(default) == float(explicit)


def test_input_dropout_option():
    """Without hidden layers the only dropout is on the input: with ``input_dropout=False`` a
    stochastic pass equals the deterministic one; with it (Gal's nets) some inputs drop."""
    X = jax.random.normal(jax.random.key(3), (20, 3))
    for input_dropout in (False, True):
        module = dropout.DropoutMLP(hidden=(), n_outputs=2, input_dropout=input_dropout)
        params = _init(module, jax.random.key(0), X)
        stochastic = jax.jit(lambda p, x, m=module: m.apply(
            p, x, 0.5, deterministic=False, rngs={"dropout": jax.random.key(4)}))(params, X)
        same = np.allclose(stochastic, _apply(module, params, X))
        assert bool(same) == (not input_dropout)


def test_apply_dropout_statistics():
    p, n = 0.3, 200_000
    u = jax.random.uniform(jax.random.key(7), (n,))
    out = np.asarray(dropout.apply_dropout(jnp.ones(n), u, p))
    dropped = np.mean(out == 0.0)
    # Bernoulli(p) frequency: within 6 standard errors sqrt(p (1-p) / n) ~ 0.006.
    assert abs(dropped - p) < 6 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(out[out != 0], 1.0 / (1.0 - p), rtol=1e-6)
    # inverted dropout keeps the mean: E[out] = 1, within 6 SE
    assert abs(out.mean() - 1.0) < 6 * out.std() / np.sqrt(n)


def test_mc_forward_shapes_and_determinism(net):
    module, params, X = net
    samples = dropout.mc_forward(jax.random.key(8), params, X, 0.2, n_samples=50,
                                 chunk_size=16)
    assert samples.shape == (50, 40, 1)
    assert float(jnp.std(samples, axis=0).mean()) > 0  # passes differ
    again = dropout.mc_forward(jax.random.key(8), params, X, 0.2, n_samples=50,
                               chunk_size=16)
    np.testing.assert_array_equal(np.asarray(samples), np.asarray(again))
    # rate 0: every pass is the deterministic network
    plain = dropout.mc_forward(jax.random.key(8), params, X, 0.0, n_samples=50, chunk_size=16)
    det = _apply(module, params, X)
    np.testing.assert_allclose(np.asarray(plain), np.broadcast_to(det, (50, 40, 1)),
                               rtol=1e-5, atol=1e-6)


def test_predictive_moments_identity():
    samples = np.random.default_rng(0).normal(size=(30, 7))
    mean, var = dropout.predictive_moments(samples, 4.0)
    np.testing.assert_allclose(np.asarray(mean), samples.mean(0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(var), samples.var(0) + 0.25, rtol=1e-5)


def test_mc_log_likelihood_matches_scipy(both_precisions):
    rng = np.random.default_rng(1)
    samples, y, tau = rng.normal(size=(200, 9)), rng.normal(size=9), 3.0
    expected = special.logsumexp(stats.norm.logpdf(y, samples, 1 / np.sqrt(tau)), axis=0) \
        - np.log(200)
    got = metrics.mc_log_likelihood(y, samples, 1 / tau, reduction="none")
    assert got.dtype == (jnp.float64 if both_precisions == "float64" else jnp.float32)
    rtol = 1e-12 if both_precisions == "float64" else 1e-5
    np.testing.assert_allclose(np.asarray(got), expected, rtol=rtol)
    # per-sample precisions (a Bayes-by-Backprop style predictive)
    taus = rng.uniform(0.5, 2.0, size=(200, 9))
    expected = special.logsumexp(stats.norm.logpdf(y, samples, 1 / np.sqrt(taus)), axis=0) \
        - np.log(200)
    got = metrics.mc_log_likelihood(y, samples, 1 / taus, reduction="none")
    np.testing.assert_allclose(np.asarray(got), expected, rtol=rtol)


def test_original_units_shift_log_likelihood_by_log_std():
    rng = np.random.default_rng(2)
    samples, y, tau, mu, sd = rng.normal(size=(50, 6)), rng.normal(size=6), 2.0, 3.0, 4.0
    orig, tau_orig = dropout.to_original_units(samples, tau, mu, sd)
    np.testing.assert_allclose(float(tau_orig), tau / sd ** 2, rtol=1e-6)
    ll_orig = metrics.mc_log_likelihood(y * sd + mu, orig, 1 / tau_orig, reduction="none")
    ll_std = metrics.mc_log_likelihood(y, samples, 1 / tau, reduction="none")
    np.testing.assert_allclose(np.asarray(ll_orig), np.asarray(ll_std) - np.log(sd),
                               rtol=1e-5)


def test_predict_proba_is_averaged_softmax():
    module = dropout.DropoutMLP(hidden=(8,), n_outputs=4)
    X = jax.random.normal(jax.random.key(9), (15, 3))
    params = _init(module, jax.random.key(10), X)
    proba = dropout.predict_proba(jax.random.key(11), params, X, 0.5, n_samples=20)
    logits = dropout.mc_forward(jax.random.key(11), params, X, 0.5, n_samples=20)
    np.testing.assert_allclose(np.asarray(proba),
                               special.softmax(np.asarray(logits), axis=-1).mean(0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(proba).sum(1), 1.0, rtol=1e-5)


@pytest.mark.slow  # ~20 s on the loaded 2-core machine; tests/test_bnn_uci.py trains too
def test_loss_trains_with_the_engine():
    X = jax.random.normal(jax.random.key(12), (128, 1))
    y = 2.0 * X[:, 0] + 0.1 * jax.random.normal(jax.random.key(13), (128,))
    module = dropout.DropoutMLP(hidden=(32,))
    params = _init(module, jax.random.key(14), X)

    def loss_fn(p, batch, key):
        return dropout.regression_loss(p, batch, key, rate=0.05, tau=100.0, n_train=128)

    res = train.fit(jax.random.key(15), loss_fn, params, (X, y), optimizer=optax.adam(1e-2),
                    batch_size=32, n_epochs=60, progress=False)
    samples = dropout.mc_forward(jax.random.key(16), res.best_params, X, 0.05,
                                 n_samples=100)[..., 0]
    mean, _ = dropout.predictive_moments(samples, 100.0)
    # the target's variance is ~4; a trained net explains almost all of it
    assert float(jnp.mean((mean - y) ** 2)) < 0.1
    assert res.history["loss"][-1] < 0.2 * res.history["loss"][0]


def test_bad_input(net):
    _, params, X = net
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="rate"):
        dropout.mc_forward(key, params, X, 1.0, n_samples=2)
    with pytest.raises(ValueError, match="rate"):
        dropout.mc_forward(key, params, X, -0.1, n_samples=2)
    with pytest.raises(ValueError, match=r"\bX\b"):
        dropout.mc_forward(key, params, X[:, 0], 0.1, n_samples=2)
    with pytest.raises(ValueError, match="n_samples"):
        dropout.mc_forward(key, params, X, 0.1, n_samples=0)
    with pytest.raises(TypeError, match="key"):
        dropout.mc_forward(0, params, X, 0.1, n_samples=2)
    with pytest.raises(ValueError, match="tau"):
        dropout.predictive_moments(np.zeros((5, 4)), 0.0)
    with pytest.raises(ValueError, match="y_std"):
        dropout.to_original_units(np.zeros((5, 4)), 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="samples"):
        dropout.predictive_moments(np.zeros(4), 1.0)


def test_float64_network(x64):
    X = jnp.ones((4, 3), jnp.float64)
    module = dropout.DropoutMLP(hidden=(5,))
    params = _init(module, jax.random.key(0), X)
    assert all(a.dtype == jnp.float64 for a in jax.tree.leaves(params))
    y = jnp.zeros(4, jnp.float64)
    loss = jax.jit(lambda p: dropout.regression_loss(
        p, (X, y), jax.random.key(1), rate=0.1, tau=1.0, n_train=4))(params)
    assert loss.dtype == jnp.float64
