"""VQ-VAE: the straight-through gradient against a hand derivation, EMA updates against the
k-means step of :mod:`espresso_jax.mixture.kmeans`, perplexity against scipy's entropy, a
short MNIST fit and input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from espresso_jax.datasets.bundled import load_mnist
from espresso_jax.mixture import kmeans
from espresso_jax.nn import vqvae
from espresso_jax.nn import vqvae_quantize as vq

_TINY = vqvae.VQVAE(hidden=(32,), n_latents=4, embedding_dim=4, codebook_size=16)


def test_straight_through_gradient_matches_hand_derivation():
    # three 2-D encoder outputs, four codes; nearest codes 1, 3, 1 (clear margins)
    z = jnp.array([[0.9, 0.1], [-1.1, 2.0], [1.2, -0.3]])
    e = jnp.array([[-3.0, -3.0], [1.0, 0.0], [5.0, 5.0], [-1.0, 2.0]])
    w = jnp.array([[0.5, -2.0], [1.5, 0.25], [-1.0, 3.0]])
    beta = 0.25

    def f(z, e):
        z_q, idx = vq.quantize(z, e)
        cb, commit = vq.vq_terms(z, e, idx)
        return jnp.sum(w * z_q) + jnp.sum(cb) + beta * jnp.sum(commit)

    z_q, idx = vq.quantize(z, e)
    np.testing.assert_array_equal(np.asarray(idx), [1, 3, 1])
    np.testing.assert_array_equal(np.asarray(z_q), np.asarray(e)[[1, 3, 1]])
    gz, ge = jax.grad(f, argnums=(0, 1))(z, e)
    zn, en, wn = np.asarray(z), np.asarray(e), np.asarray(w)
    ek = en[[1, 3, 1]]
    # d/dz: the decoder's gradient copied through (w) plus the commitment 2β(z − e_k)
    np.testing.assert_allclose(np.asarray(gz), wn + 2 * beta * (zn - ek), rtol=1e-6,
                               atol=1e-6)
    # d/de_j: only the codebook term, Σ_{i: k(i)=j} 2(e_j − z_i); no decoder gradient
    ge_hand = np.zeros_like(en)
    for i, k in enumerate([1, 3, 1]):
        ge_hand[k] += 2 * (en[k] - zn[i])
    np.testing.assert_allclose(np.asarray(ge), ge_hand, rtol=1e-6, atol=1e-6)


def test_perplexity_matches_entropy_formula():
    K = 8
    uniform = jnp.tile(jnp.arange(5), 7)                    # 5 codes used equally often
    np.testing.assert_allclose(float(vq.perplexity(uniform, K)), 5.0, rtol=1e-6)
    np.testing.assert_allclose(float(vq.perplexity(jnp.zeros(9, jnp.int32), K)), 1.0)
    idx = jax.random.randint(jax.random.key(3), (4, 50), 0, 6)
    counts = np.bincount(np.asarray(idx).ravel(), minlength=K)
    np.testing.assert_allclose(np.asarray(vq.codebook_usage(idx, K)), counts / counts.sum(),
                               rtol=1e-6)
    # scipy.stats.entropy drops zero probabilities and uses natural logs
    np.testing.assert_allclose(float(vq.perplexity(idx, K)),
                               np.exp(stats.entropy(counts / counts.sum())), rtol=1e-5)


@pytest.fixture(scope="module")
def batch_and_params():
    X = load_mnist("train")[0][:64]
    params = vqvae.init(jax.random.key(0), _TINY)
    z_e = _TINY.apply(params, X, method=vqvae.VQVAE.encode).reshape(-1, 4)   # (256, 4)
    # codebook = 16 of the encoder outputs, so every code keeps at least one vector
    rows = np.random.default_rng(0).choice(z_e.shape[0], 16, replace=False)
    inner = dict(params["params"])
    inner["codebook"] = z_e[rows]
    return jnp.asarray(X), {"params": inner}, z_e


def _kmeans_step(z_e, codebook):
    # the library's Lloyd iteration, one step from the given centres (tol=0: no early stop)
    res = kmeans.fit(jax.random.key(0), z_e, codebook.shape[0], init=codebook, max_iter=1,
                     tol=0.0)
    return np.asarray(res.params.centres)


def test_ema_with_zero_decay_is_the_kmeans_step(batch_and_params):
    X, params, z_e = batch_and_params
    cb = vqvae.codebook(params)
    idx = vq.nearest_code(z_e, cb)
    _, new = vq.ema_update(vq.init_ema(cb), z_e, idx, 0.0, 0.0)
    reference = _kmeans_step(z_e, cb)
    # float32 means of ~16 vectors of O(1) values; kmeans centres and rescales X first
    np.testing.assert_allclose(np.asarray(new), reference, rtol=1e-5, atol=1e-5)
    # the training step: its codebook is the same update on the batch's encoder outputs
    # under the parameters the step started from (SGD moves the network meanwhile)
    step = jax.jit(vqvae.make_ema_step(_TINY, optax.sgd(0.1), 0.25, 0.0, 0.0))
    state = vqvae.init_ema_state(jax.random.key(1), params, optax.sgd(0.1))
    state, metrics = step(state, X)
    np.testing.assert_allclose(np.asarray(vqvae.codebook(state.train.params)), reference,
                               rtol=1e-5, atol=1e-5)
    assert set(metrics) == {"loss", "reconstruction", "commitment", "perplexity"}
    enc = state.train.params["params"]["encoder"]["dense_0"]["kernel"]
    assert not np.allclose(np.asarray(enc), params["params"]["encoder"]["dense_0"]["kernel"])


def test_ema_decay_and_smoothing_follow_the_moving_averages(batch_and_params):
    _, params, z_e = batch_and_params
    cb = vqvae.codebook(params)
    idx = np.asarray(vq.nearest_code(z_e, cb))
    gamma, eps = 0.5, 0.1
    ema = vq.EMAState(jnp.full((16,), 3.0), 3.0 * cb)
    state, new = vq.ema_update(ema, z_e, jnp.asarray(idx), gamma, eps)
    z = np.asarray(z_e, np.float64)
    n = np.bincount(idx, minlength=16)
    sums = np.stack([z[idx == j].sum(0) for j in range(16)])
    N = gamma * 3.0 + (1 - gamma) * n
    m = gamma * 3.0 * np.asarray(cb, np.float64) + (1 - gamma) * sums
    Ns = (N + eps) / (N.sum() + 16 * eps) * N.sum()
    np.testing.assert_allclose(np.asarray(state.counts), N, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(new), m / Ns[:, None], rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def short_fits():
    X = load_mnist("train")[0][:2000]
    out = {}
    for ema in (None, 0.9):
        res = vqvae.fit(jax.random.key(0), X, module=_TINY, optimizer=optax.adam(2e-3),
                        batch_size=100, n_epochs=3, ema_decay=ema, progress=False)
        start = vqvae.evaluate(_TINY, vqvae.init(jax.random.split(jax.random.key(0))[0],
                                                 _TINY), X[:500])
        out[ema] = (start, vqvae.evaluate(_TINY, res.params, X[:500]), res)
    return out


@pytest.mark.parametrize("ema", [None, 0.9])
def test_short_mnist_fit_lowers_reconstruction(short_fits, ema):
    start, end, res = short_fits[ema]
    # fit() initialises with the first half of split(key); start is that initialisation.
    # Ratio end/start over keys 0..4 (3 epochs on 2k digits), measured: gradient codebook
    # 0.25-0.57, EMA 0.22-0.46; codes used 6-9 and 5-10 of 16. Bounds 0.75 and >= 3.
    assert end["reconstruction"] < 0.75 * start["reconstruction"]
    assert np.all(np.isfinite(res.history["loss"]))
    assert end["codes_used"] >= 3 and 1.0 <= end["perplexity"] <= 16.0
    np.testing.assert_allclose(float(np.sum(end["usage"])), 1.0, rtol=1e-6)


def test_bad_inputs_name_the_argument():
    X = np.zeros((10, 784), np.float32)
    opt = optax.adam(1e-3)
    bad = vqvae.VQVAE(hidden=(8,), codebook_size=0)
    with pytest.raises(ValueError, match="codebook_size"):
        vqvae.fit(jax.random.key(0), X, module=bad, optimizer=opt, batch_size=5, n_epochs=1)
    with pytest.raises(ValueError, match="beta"):
        vqvae.fit(jax.random.key(0), X, module=_TINY, optimizer=opt, batch_size=5,
                  n_epochs=1, beta=-0.1)
    for decay in (1.0, -0.2, 1.5):
        with pytest.raises(ValueError, match="ema_decay"):
            vqvae.fit(jax.random.key(0), X, module=_TINY, optimizer=opt, batch_size=5,
                      n_epochs=1, ema_decay=decay)
    with pytest.raises(ValueError, match="batch_size"):
        vqvae.fit(jax.random.key(0), X, module=_TINY, optimizer=opt, batch_size=20,
                  n_epochs=1)
    with pytest.raises(ValueError, match="epsilon"):
        vqvae.make_ema_step(_TINY, opt, 0.25, 0.5, -1.0)
    with pytest.raises(TypeError, match="module"):
        vqvae.init(jax.random.key(0), "vqvae")
