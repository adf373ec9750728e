"""MC dropout (espresso_jax.bnn.dropout): weight decay, losses, MC predictive, bad input."""

import functools

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
# op-by-op dispatch of a flax network on the (loaded, 2-core) test machine. The module is a
# static argument, so tests that init or apply the same module on the same shapes share one
# compiled program.


@functools.partial(jax.jit, static_argnums=0)
def _init(module, key, X):
    return module.init(key, X, 0.0, deterministic=True)


@functools.partial(jax.jit, static_argnums=0)
def _apply(module, params, X):
    return module.apply(params, X, 0.0, deterministic=True)


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

    @jax.jit
    def regression(X, y):  # every call of the custom net in one compiled program
        params = custom.init(jax.random.key(9), X, 0.2, deterministic=True)
        pred = custom.apply(params, X, 0.2, deterministic=True)[:, 0]
        got = dropout.regression_loss(params, (X, y), jax.random.key(1), rate=0.0, tau=3.0,
                                      n_train=30, module=custom)
        on = [dropout.regression_loss(params, (X, y), jax.random.key(k), rate=0.5, tau=3.0,
                                      n_train=30, module=custom) for k in (1, 2)]
        return params, pred, got, on

    params, pred, got, on = regression(X, y)
    pred = np.asarray(pred)
    lam = 1e-4 * (1.0 - 0.0) / (2 * 30 * 3.0)
    expected = np.mean((np.asarray(y) - pred) ** 2) + lam * sum(
        np.sum(np.asarray(k) ** 2) for k in _kernels(params))
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    # With dropout on, the loss depends on the key (masks are drawn) and stays finite.
    on = [float(v) for v in on]
    assert np.all(np.isfinite(on)) and on[0] != on[1]
    mlp = dropout.DropoutMLP(hidden=(5,), n_outputs=3)
    mlp_params = _init(mlp, jax.random.key(10), X)
    labels = jnp.arange(30) % 3

    @jax.jit
    def classification(mlp_params, X, labels):
        default = dropout.classification_loss(mlp_params, (X, labels), jax.random.key(2),
                                              rate=0.3, n_train=30)
        explicit = dropout.classification_loss(mlp_params, (X, labels), jax.random.key(2),
                                               rate=0.3, n_train=30, module=mlp)
        return default, explicit

    default, explicit = classification(mlp_params, X, labels)
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


# ------------------------------------------------------------------ masks read off the layer
def _dense_io(module):
    """A jitted ``(params, X, rate, key) -> (output, {dense_i: (input, output)})`` for one
    stochastic pass of ``module``. The inputs of ``dense_i`` are the library's post-dropout
    activations (its dropout sits right before every Dense layer), read with flax's
    ``intercept_methods``: the layer under test runs unchanged, only its Dense calls are
    watched."""

    def run(params, X, rate, key):
        seen = {}

        def spy(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if isinstance(context.module, nn.Dense) and context.method_name == "__call__":
                seen[context.module.name] = (args[0], out)
            return out

        with nn.intercept_methods(spy):
            out = module.apply(params, X, rate, deterministic=False, rngs={"dropout": key})
        return out, seen

    return jax.jit(run)


def _binomial_ok(k, n, p, z=5.0):
    """|k - n p| < z sd of Binomial(n, p) (z = 5: a false alarm once in ~3.5 million)."""
    return abs(k - n * p) < z * np.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("input_dropout", [True, False])
def test_dropout_layer_drops_at_the_rate_and_rescales(input_dropout):
    """Every dropped unit of DropoutMLP, counted over 600 rows x (24 + 48 + 48) units: the
    share of zeros is the rate (binomial bound), kept units are exactly ``pre / (1 - p)``,
    masks are independent across rows, across units and across layers. A rate that is
    ignored, inverted (keep prob p instead of 1 - p), not rescaled, or a mask shared by a
    whole row/column/layer fails."""
    rows, d, hidden = 600, 24, (48, 48)
    module = dropout.DropoutMLP(hidden=hidden, input_dropout=input_dropout)
    X = jax.random.uniform(jax.random.key(20), (rows, d), minval=0.5, maxval=1.5)
    params = _init(module, jax.random.key(21), X)
    # Positive kernels and biases with positive inputs: every pre-dropout unit is > 0 (no ReLU
    # zeros), so a zero after dropout is a dropped unit and nothing else.
    params = jax.tree_util.tree_map_with_path(
        lambda path, a: jnp.abs(a) if path[-1].key == "kernel" else a + 0.1, params)
    run = _dense_io(module)
    for j, rate in enumerate((0.1, 0.5)):
        _, seen = run(params, X, jnp.float32(rate), jax.random.key(22 + j))
        pre = np.asarray(X, np.float64)
        dropped = {}
        for i in range(len(hidden) + 1):
            post = np.asarray(seen[f"dense_{i}"][0], np.float64)
            assert post.shape == pre.shape and np.all(pre > 0)
            if i == 0 and not input_dropout:       # the input is passed through untouched
                np.testing.assert_array_equal(post, pre)
            else:
                drop = post == 0.0
                dropped[i] = drop
                assert _binomial_ok(drop.sum(), drop.size, rate), (i, rate, drop.mean())
                # inverted dropout: kept units are scaled by 1 / (1 - p) (float32 rounding)
                np.testing.assert_allclose(post[~drop], pre[~drop] / (1 - rate), rtol=1e-5)
                # One mask per example and unit: the drop counts per column (over rows) and per
                # row (over units) are Binomial, so their dispersion statistic
                # sum (k - m p)^2 / (m p (1 - p)) is ~chi2(#groups); a mask shared along a
                # row or column makes the counts 0 or m and the statistic explode.
                for axis in (0, 1):
                    k, m = drop.sum(axis), drop.shape[axis]
                    chi2 = np.sum((k - m * rate) ** 2) / (m * rate * (1 - rate))
                    assert chi2 < stats.chi2.ppf(1 - 1e-6, k.size), (i, rate, axis, chi2)
            pre = np.maximum(np.asarray(seen[f"dense_{i}"][1], np.float64), 0.0)  # ReLU
        # the two hidden layers (same width) drop independently: both dropped ~ p^2
        both = dropped[1] & dropped[2]
        assert _binomial_ok(both.sum(), both.size, rate ** 2), (rate, both.mean())


def test_mc_predictive_matches_numpy_with_the_same_masks(net):
    """The 3-16-8-1 DropoutMLP of ``net``: the masks of every pass are read off the library's
    layer (the ``"dropout"`` key of pass t is ``split(key, T)[t]``, as mc_forward documents),
    the passes are recomputed by a NumPy forward pass with those masks, and mc_forward's
    samples and predictive_moments' mean and variance (``var_t`` with 1/T plus the noise
    ``1/tau``) must equal the NumPy ones. T = 50 with chunk_size 16 exercises a ragged last
    chunk (and is the mc_forward call of test_mc_forward_shapes_and_determinism, so the
    compiled program is shared)."""
    module, params, X = net
    T, rate, tau = 50, 0.2, 4.0
    key = jax.random.key(8)
    run = _dense_io(module)
    _, seen = jax.jit(jax.vmap(lambda k: run(params, X, jnp.float32(rate), k)))(
        jax.random.split(key, T))
    n_layers = len(params["params"])
    masks = [np.asarray(seen[f"dense_{i}"][0]) != 0.0 for i in range(n_layers)]  # (T, n, w)
    # the masks really are random (the input is never exactly 0, so its mask is exact)
    assert _binomial_ok((~masks[0]).sum(), masks[0].size, rate)
    # NumPy forward pass: inverted dropout before every Dense layer, ReLU hidden units. Where
    # a ReLU unit is 0 its mask reads 0 too, which changes nothing.
    h = np.broadcast_to(np.asarray(X, np.float64), (T, *X.shape))
    for i, mask in enumerate(masks):
        layer = params["params"][f"dense_{i}"]
        h = (h * mask / (1 - rate)) @ np.asarray(layer["kernel"], np.float64) \
            + np.asarray(layer["bias"], np.float64)
        if i < n_layers - 1:
            h = np.maximum(h, 0.0)
    samples = dropout.mc_forward(key, params, X, rate, n_samples=T, chunk_size=16)
    assert samples.shape == h.shape == (T, X.shape[0], 1)
    # float32 network vs float64 NumPy on O(1) values through three small layers: ~1e-6.
    np.testing.assert_allclose(np.asarray(samples), h, rtol=1e-5, atol=1e-5)
    mean, var = dropout.predictive_moments(samples[..., 0], tau)
    y_np = h[..., 0]
    mean_np = y_np.mean(0)
    var_np = np.mean((y_np - mean_np) ** 2, axis=0) + 1.0 / tau   # mixture variance
    np.testing.assert_allclose(np.asarray(mean), mean_np, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(var), var_np, rtol=1e-5, atol=1e-5)
    # the passes do differ: the epistemic part is a real share of the variance
    assert np.min(var_np - 1.0 / tau) > 1e-4


def test_pass_chunk_is_chosen_per_backend_and_never_changes_the_passes(monkeypatch):
    """``chunk_size="auto"``: 10 passes per chunk on CPU, all passes in one vmap on an
    accelerator; the passes themselves (pass t uses split t of the key) do not depend on it."""
    assert dropout.pass_chunk("auto", 50) == dropout.CPU_PASS_CHUNK == 10
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert dropout.pass_chunk("auto", 50) == 50
    monkeypatch.undo()
    with pytest.raises(ValueError, match="chunk_size must be a positive int or 'auto'"):
        dropout.pass_chunk("all", 50)
    with pytest.raises(ValueError, match="chunk_size"):
        dropout.pass_chunk(0, 50)
    module = dropout.DropoutMLP(hidden=(8,), n_outputs=1)
    X = jax.random.normal(jax.random.key(0), (5, 3))
    params = module.init(jax.random.key(1), X, 0.2, deterministic=True)
    auto = dropout.mc_forward(jax.random.key(2), params, X, 0.2, n_samples=12)
    one_vmap = dropout.mc_forward(jax.random.key(2), params, X, 0.2, n_samples=12,
                                  chunk_size=12)
    np.testing.assert_allclose(auto, one_vmap, rtol=1e-6, atol=1e-6)
