"""InfoGAN: the information term against scipy's densities, the Q head's gradient reaching the
generator (checked by finite differences), a short training run, the matched classification
error against a brute-force search, input errors; slow: MNIST's categorical code as a
classifier."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import special, stats

from espresso_jax.datasets.bundled import load_mnist
from espresso_jax.nn import GANOptimizers, gan, infogan

_TINY = infogan.mlp_infogan(784, noise_dim=4, g_hidden=(64,), d_hidden=(64,), q_hidden=16)


def test_information_term_matches_closed_form():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 10)).astype(np.float32)
    mean = rng.normal(size=(5, 2)).astype(np.float32)
    log_std = rng.normal(scale=0.5, size=(5, 2)).astype(np.float32)
    cat = np.array([0, 3, 9, 3, 7])
    cont = rng.uniform(-1, 1, size=(5, 2)).astype(np.float32)
    ce = -special.log_softmax(logits.astype(np.float64), axis=1)[np.arange(5), cat]
    nll = -stats.norm.logpdf(cont, mean, np.exp(log_std)).sum(axis=1)
    for lc, lg in ((1.0, 1.0), (1.0, 0.1), (0.0, 2.0)):
        got = infogan.information_term(jnp.asarray(logits), jnp.asarray(mean),
                                       jnp.asarray(log_std), jnp.asarray(cat),
                                       jnp.asarray(cont), lambda_cat=lc, lambda_cont=lg)
        # float32 log-softmax and squares of O(1) values
        np.testing.assert_allclose(np.asarray(got), lc * ce + lg * nll, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_state():
    return gan.init_state(jax.random.key(0), _TINY.gan, optimizer=optax.adam(1e-3))


def test_q_head_gradient_reaches_the_generator(tiny_state):
    latent = infogan.sample_latent(jax.random.key(1), 16, _TINY)
    _, g_with = infogan.make_losses(_TINY, 1.0, 1.0)
    _, g_without = infogan.make_losses(_TINY, 0.0, 0.0)
    gp, dp = tiny_state.gen.params, tiny_state.disc.params

    @jax.jit
    def info_part(p):
        return g_with(p, dp, latent)[0] - g_without(p, dp, latent)[0]

    grads = jax.jit(jax.grad(info_part))(gp)
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert min(norms) > 0.0, norms          # every generator array gets information gradient
    # the directional derivative along a random direction against a central difference
    leaves, tree = jax.tree.flatten(gp)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    # a unit direction half along the claimed gradient, half random (a random direction alone
    # is nearly orthogonal to it in ~50k dimensions)
    r = [jax.random.normal(k, a.shape) for k, a in zip(keys, leaves, strict=True)]
    g = jax.tree.leaves(grads)

    def unit(xs):
        n = float(jnp.sqrt(sum(jnp.sum(x * x) for x in xs)))
        return [x / n for x in xs]

    v = jax.tree.unflatten(tree, unit([a + b for a, b in zip(unit(g), unit(r), strict=True)]))
    autodiff = sum(float(jnp.sum(g * d)) for g, d in
                   zip(jax.tree.leaves(grads), jax.tree.leaves(v), strict=True))
    h = 1e-2
    shifted = [jax.tree.map(lambda p, d, s=s: p + s * h * d, gp, v) for s in (1.0, -1.0)]
    finite = (float(info_part(shifted[0])) - float(info_part(shifted[1]))) / (2 * h)
    # float32 losses of size ~3 differenced over 2h = 0.02: rounding ~3e-5; the step moves
    # each parameter by ~5e-5, far below the scale of the ReLU kinks' effect
    np.testing.assert_allclose(autodiff, finite, rtol=2e-2, atol=1e-3)
    assert abs(autodiff) > 1e-2                 # a real slope, not two zeros agreeing
    # the discriminator's objective trains the Q head too
    d_loss, _ = infogan.make_losses(_TINY)
    fake = infogan.generate(tiny_state, _TINY, latent.z[:, :4], latent.category,
                            latent.continuous)
    real = jnp.asarray(load_mnist("train")[0][:16]) * 2 - 1
    d_grads = jax.jit(jax.grad(lambda p: d_loss(p, real, fake, latent)[0]))(dp)
    assert all(float(jnp.linalg.norm(g)) > 0 for g in jax.tree.leaves(d_grads["q"]))


def test_generate_uses_the_codes(tiny_state):
    latent = infogan.sample_latent(jax.random.key(3), 6, _TINY)
    noise = latent.z[:, :4]
    # generate() assembles [z, one_hot(c), c_cont] exactly as sample_latent does
    direct = _TINY.gan.generator.apply({"params": tiny_state.gen.params}, latent.z)
    got = infogan.generate(tiny_state, _TINY, noise, latent.category, latent.continuous)
    np.testing.assert_allclose(np.asarray(got), np.asarray(direct), rtol=1e-6, atol=1e-6)
    assert got.shape == (6, 784)


def test_short_training_run_learns_the_categorical_code():
    X = load_mnist("train")[0][:512] * 2.0 - 1.0
    opt = GANOptimizers(optax.adam(2e-3, b1=0.5), optax.adam(2e-3, b1=0.5))
    res = infogan.fit(jax.random.key(0), X, module=_TINY, optimizer=opt, batch_size=32,
                      n_epochs=4, progress=False)
    h = res.history
    assert res.n_iter == 4 and int(res.state.step) == 64
    assert all(np.all(np.isfinite(v)) for v in h.values())
    # Q recovers the category from G's output: the generator-side CE starts at log 10 = 2.30;
    # its last-epoch mean over keys 0..4 (64 steps) measured 1.66-2.03; bound 2.15
    assert h["g_ce"][-1] < 2.15
    codes = infogan.predict_codes(res.state, _TINY, X[:50])
    assert codes.shape == (50,) and int(codes.min()) >= 0 and int(codes.max()) < 10


def test_batch_norm_generator_threads_its_statistics():
    model = infogan.mlp_infogan(784, noise_dim=4, g_hidden=(16,), d_hidden=(16,), q_hidden=8,
                                g_batch_norm=True)
    X = load_mnist("train")[0][:64] * 2.0 - 1.0
    opt = optax.adam(1e-3)
    state = gan.init_state(jax.random.key(0), model.gan, optimizer=opt)
    res = infogan.fit(jax.random.key(1), X, module=model, optimizer=opt, batch_size=32,
                      n_epochs=1, state=state, progress=False)
    before, after = state.gen.batch_stats["bn_0"], res.state.gen.batch_stats["bn_0"]
    # two generator updates, momentum 0.9: the running mean moved off its zero start
    assert float(jnp.max(jnp.abs(after["mean"] - before["mean"]))) > 0.0
    # generate() runs the generator in evaluation mode, on the running averages
    latent = infogan.sample_latent(jax.random.key(2), 5, model)
    direct = model.gan.generator.apply({"params": res.state.gen.params,
                                        "batch_stats": res.state.gen.batch_stats},
                                       latent.z, train=False)
    got = infogan.generate(res.state, model, latent.z[:, :4], latent.category,
                           latent.continuous)
    np.testing.assert_allclose(np.asarray(got), np.asarray(direct), rtol=1e-6, atol=1e-6)


def test_matched_error_is_the_best_permutation():
    rng = np.random.default_rng(1)
    codes, labels = rng.integers(0, 4, 60), rng.integers(0, 4, 60)
    best = min(np.mean(np.asarray(p)[codes] != labels) for p in itertools.permutations(range(4)))
    err, mapping = infogan.matched_error(codes, labels, 4)
    np.testing.assert_allclose(err, best)
    np.testing.assert_allclose(np.mean(mapping[codes] != labels), err)
    assert sorted(mapping) == [0, 1, 2, 3]


def test_majority_mapping_counts_each_code():
    rng = np.random.default_rng(2)
    codes, labels = rng.integers(0, 3, 80), rng.integers(0, 5, 80)   # codes 3 and 4 unused
    mapping = infogan.majority_mapping(codes, labels, 5)
    for c in range(5):
        got = [int(v) for v in labels[codes == c]]
        # the most frequent label, the smaller one on ties; -1 for a code no example got
        want = min(set(got), key=lambda v: (-got.count(v), v)) if got else -1
        assert mapping[c] == want
    with pytest.raises(ValueError, match="labels"):
        infogan.majority_mapping([0, 1], [0, 7], 5)


def test_bad_inputs_name_the_argument():
    X = np.zeros((8, 784), np.float32)
    opt = optax.adam(1e-3)
    with pytest.raises(ValueError, match="lambda_cat"):
        infogan.fit(jax.random.key(0), X, module=_TINY, optimizer=opt, batch_size=4,
                    n_epochs=1, lambda_cat=-1.0)
    with pytest.raises(ValueError, match="lambda_cont"):
        infogan.make_step(_TINY, opt, 1.0, -0.5)
    with pytest.raises(TypeError, match="module"):
        infogan.fit(jax.random.key(0), X, module=_TINY.gan, optimizer=opt, batch_size=4,
                    n_epochs=1)
    with pytest.raises(ValueError, match="n_categories"):
        infogan.mlp_infogan(784, n_categories=1)
    with pytest.raises(ValueError, match="X"):
        infogan.fit(jax.random.key(0), X[:, :10], module=_TINY, optimizer=opt, batch_size=4,
                    n_epochs=1)
    with pytest.raises(ValueError, match="batch_size"):
        infogan.fit(jax.random.key(0), X, module=_TINY, optimizer=opt, batch_size=16,
                    n_epochs=1)
    with pytest.raises(ValueError, match="X"):
        infogan.predict_codes(gan.init_state(jax.random.key(0), _TINY.gan, optimizer=opt),
                              _TINY, X[:, :10])
    with pytest.raises(ValueError, match="codes"):
        infogan.matched_error([0, 5], [0, 1], 3)


@pytest.mark.slow
def test_mnist_categorical_code_classifies_digits():
    import matplotlib.pyplot as plt

    from espresso_jax.apps.experiments import vq_infogan

    metrics, figures = vq_infogan.infogan_mnist(jax.random.key(0), n_epochs=10, progress=False)
    for fig in figures.values():
        plt.close(fig)
    # The paper reaches 5 % (conv nets, 60k digits, ~50 epochs); our MLP on 8k digits after
    # 10 epochs (2,500 steps at batch 32) does far worse but well below chance (90 %): test
    # error measured 0.466, 0.510, 0.514 at keys 0, 1, 2 (XLA's default flags, 29-36 s CPU
    # each under load), and 0.450, 0.539 at keys 0, 1 with the training split in two
    # 5-epoch calls (2026-12-07); each code read as its majority training digit: 0.425-0.519
    # over these five runs. The settings before (the paper's rates 1e-3 / 2e-4, batch 64,
    # discriminator body 512-256) gave 0.677, 0.674, 0.669. Bounds 0.58 and 0.56.
    assert metrics["test_error"] < 0.58
    assert metrics["test_error_majority"] < 0.56
    assert metrics["steps"] == 2500 and sorted(metrics["code_to_digit"]) == list(range(10))
    # Q decodes the category of generated digits almost perfectly (log 10 = 2.30 nats;
    # measured 2.25-2.26)
    assert metrics["last_mi_cat_nats"] > 2.0
