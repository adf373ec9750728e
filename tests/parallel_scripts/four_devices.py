"""Run by tests/test_parallel.py on 4 virtual CPU devices; prints ``four-devices-ok``.

Checks, each on one device and on 4: VAE, BBB, MC-dropout, GAN and heteroscedastic fits;
that the step sees every minibatch sharded; per-device dropout masks and BBB
local-reparameterisation noise; the vmapped UCI grid (``train_grid``) and
``run_protocol(mesh=...)`` on yacht; the EM engine (``em.fit_em`` with test_em.py's model,
unchunked and chunked) and ``gmm.fit`` (chunked, with sample weights) on row-sharded data,
within 1e-5 of the one-device fit (float32 sums reduced in another order; these two ran in
children of their own from tests/test_em.py and tests/test_mixture_gmm.py, ~4 s of CPU
importing each).

Each fit runs on one device and on 4 (data row-sharded with ``parallel.shard_rows``) from the
same key; losses and parameters must agree to float32 rounding (the gradient's sums are
reduced in another order). Measured differences (jax 0.10.2, CPU): losses equal, parameters
within 1.2e-7 (VAE) and 1.5e-8 (BBB) after 12 Adam steps.
"""

import os
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=4")

import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from espresso_jax import parallel, train  # noqa: E402
from espresso_jax.apps.uci import protocol as uci  # noqa: E402
from espresso_jax.bnn import bbb, bbb_elbo, dropout  # noqa: E402
from espresso_jax.bnn import heteroscedastic as het  # noqa: E402
from espresso_jax.nn import gan, vae  # noqa: E402

assert len(jax.devices()) == 4
mesh = Mesh(np.array(jax.devices()), ("batch",))
rng = np.random.default_rng(0)


def close(a, b, what, rtol=1e-5, atol=1e-6):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol,
                                   err_msg=what)


def same(a, b, what):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=what)


# -- VAE (SGVB): 64 rows, 4 minibatches of 16 (4 rows per device), 3 epochs
X = rng.uniform(size=(64, 12)).astype(np.float32)
module = vae.VAE(data_dim=12, latent_dim=3, hidden=(16,), activation=jax.nn.tanh)
kw = dict(module=module, optimizer=optax.adam(1e-2), batch_size=16, n_epochs=3, progress=False)
one = vae.fit(jax.random.key(0), X, **kw)
four = vae.fit(jax.random.key(0), parallel.shard_rows(X, mesh), **kw)
assert jax.tree.leaves(four.params)[0].sharding.is_fully_replicated
assert len(jax.tree.leaves(four.params)[0].sharding.device_set) == 4
close(four.history, one.history, "vae history")
close(four.params, one.params, "vae params")
# the ε of each device are its slice of the one-device draw (else the run would differ from
# one device); and the run reproduces from its key
again = vae.fit(jax.random.key(0), parallel.shard_rows(X, mesh), **kw)
same(again.params, four.params, "vae rerun")

# -- BBB (learned noise, N/M likelihood and 1/M KL scaling), x and y sharded
x = rng.uniform(-1.0, 1.0, size=(64, 1)).astype(np.float32)
y = (np.sin(3.0 * x[:, 0]) + 0.1 * rng.normal(size=64)).astype(np.float32)
net = bbb.BayesMLP((16, 1))
params = bbb_elbo.init_params(jax.random.key(1), net, x, noise_std=0.5)
kw = dict(module=net, params=params, optimizer=optax.adam(1e-2), batch_size=16, n_epochs=3,
          task="regression", schedule="blundell", progress=False)
one = bbb_elbo.fit(jax.random.key(2), x, y, **kw)
four = bbb_elbo.fit(jax.random.key(2), parallel.shard_rows(x, mesh),
                    parallel.shard_rows(y, mesh), **kw)
close(four.history, one.history, "bbb history")
close(four.params, one.params, "bbb params")

# -- MC dropout, only X sharded (the engine puts y on the same row sharding)
Xd = rng.normal(size=(64, 3)).astype(np.float32)
yd = Xd[:, 0] - 0.5 * Xd[:, 1]
dnet = dropout.DropoutMLP(hidden=(16,))
kw = dict(module=dnet, optimizer=optax.adam(1e-2), batch_size=16, n_epochs=3,
          task="regression", rate=0.2, progress=False)
one = dropout.fit(jax.random.key(3), Xd, yd, **kw)
four = dropout.fit(jax.random.key(3), parallel.shard_rows(Xd, mesh), yd, **kw)
close(four.history, one.history, "dropout history")
close(four.params, one.params, "dropout params")

# -- GAN (two-player step, k_disc = 2 discriminator batches per step) and a heteroscedastic
# head with dropout (classification with logit noise): the same engine, nothing added
Xg = rng.normal(size=(64, 2)).astype(np.float32)
kw = dict(module=gan.mlp_gan(2, latent_dim=2, g_hidden=(8,), d_hidden=(8,)),
          loss="non_saturating", k_disc=2, optimizer=optax.adam(1e-3), batch_size=8,
          n_epochs=3, progress=False)
one = gan.fit(jax.random.key(4), Xg, **kw)
four = gan.fit(jax.random.key(4), parallel.shard_rows(Xg, mesh), **kw)
close(four.history, one.history, "gan history")
close(four.params, one.params, "gan params")
head = het.HeteroscedasticHead(out_features=3, hidden=(8,), dropout_rate=0.1)
labels = np.repeat(np.arange(4) % 3, 16).astype(np.int32)
kw = dict(module=head, optimizer=optax.adam(1e-2), batch_size=16, n_epochs=3,
          task="classification", n_samples=4, progress=False)
one = het.fit(jax.random.key(6), Xd, labels, **kw)
four = het.fit(jax.random.key(6), *parallel.shard_rows((Xd, labels), mesh), **kw)
close(four.history, one.history, "heteroscedastic history")
close(four.params, one.params, "heteroscedastic params")

# -- every minibatch the step sees is sharded over the 4 devices
seen = []


def loss(p, batch, key):
    jax.debug.inspect_array_sharding(batch, callback=seen.append)
    return jnp.sum((batch - p) ** 2)


train.fit(jax.random.key(0), loss, jnp.zeros(2), parallel.shard_rows(Xd[:, :2], mesh),
          optimizer=optax.sgd(1e-3), batch_size=16, n_epochs=1, progress=False)
assert seen and all(len(s.device_set) == 4 and not s.is_fully_replicated for s in seen), seen

# -- per-device randomness: 4 copies of the same 2 rows, one copy per device. Dropout masks
# and BBB local-reparameterisation noise differ between devices and equal the one-device draw.
rows = np.tile(rng.normal(size=(2, 3)).astype(np.float32), (4, 1))
dparams = dnet.init(jax.random.key(0), rows[:1], 0.5, deterministic=True)
bnet = bbb.BayesMLP((16, 1), local_reparam=True, sigma_init=0.5)
bparams = bbb.init(jax.random.key(0), bnet, rows[:1])
draws = {
    "dropout": jax.jit(lambda k, r: dnet.apply(dparams, r, 0.5, deterministic=False,
                                               rngs={"dropout": k})),
    "bbb local": jax.jit(lambda k, r: bbb.apply(k, bnet, bparams, r)[0]),
}
for name, draw in draws.items():
    whole = draw(jax.random.key(7), rows)
    split = draw(jax.random.key(7), parallel.shard_rows(rows, mesh))
    shards = [np.asarray(s.data) for s in split.addressable_shards]
    assert len(shards) == 4 and all(s.shape == (2, 1) for s in shards), name
    for i in range(4):
        for j in range(i):
            assert not np.allclose(shards[i], shards[j]), (name, i, j)
    close(split, whole, name)

# -- the vmapped UCI grid with its split axis sharded: 4 splits x 2 grid points
nets = Mesh(np.array(jax.devices()), ("nets",))
S, G, N = 4, 2, 24
Xs = rng.normal(size=(S, N, 3)).astype(np.float32)
ys = rng.normal(size=(S, N)).astype(np.float32)
hp = uci.DropoutHParams(rate=jnp.full((S, G), 0.05, jnp.float32),
                        tau=jnp.tile(jnp.array([1.0, 10.0], jnp.float32), (S, 1)))
keys = jax.random.split(jax.random.key(5), (S, G))
settings = dict(optimizer=optax.adam(1e-3), n_hidden=8, batch_size=8, n_epochs=3)
method = uci.dropout_method()
p1, h1 = uci.train_grid(keys, method, Xs, ys, hp, **settings)
k4, X4, y4, hp4 = parallel.shard_rows((keys, Xs, ys, hp), nets, "nets")
p4, h4 = uci.train_grid(k4, method, X4, y4, hp4, **settings)
assert len(h4.sharding.device_set) == 4 and not h4.sharding.is_fully_replicated
close(h4, h1, "uci history")
close(p4, p1, "uci params")
try:
    parallel.shard_rows(X[:63], mesh)
except ValueError as err:
    assert "data" in str(err)
else:
    raise AssertionError("63 rows on 4 devices did not raise")

# -- run_protocol(mesh=...) on yacht, 4 splits over 4 devices (when the UCI data are found)
from espresso_jax.datasets.uci import default_data_dir, load_uci  # noqa: E402

if default_data_dir() is not None:
    yacht = load_uci("yacht")
    tiny = dict(optimizer=optax.adam(1e-3), n_splits=4, n_epochs=4, n_samples=16,
                n_samples_val=8, progress=False)
    one = uci.run_protocol(jax.random.key(0), yacht, uci.dropout_method(), **tiny)
    four = uci.run_protocol(jax.random.key(0), yacht, uci.dropout_method(), mesh=nets, **tiny)
    np.testing.assert_array_equal(four.chosen_index, one.chosen_index)
    close(four.val_log_likelihood, one.val_log_likelihood, "protocol validation ll")
    close((four.rmse, four.log_likelihood), (one.rmse, one.log_likelihood), "protocol test")
    try:
        uci.run_protocol(jax.random.key(0), yacht, uci.dropout_method(), mesh=nets,
                         **{**tiny, "n_splits": 3})
    except ValueError as err:
        assert "mesh" in str(err)
    else:
        raise AssertionError("3 splits on 4 devices did not raise")
    print("protocol-ok")
else:
    print("protocol-skipped: no UCI data directory")


# -- the EM engine and the GMM on rows sharded over the 4 devices (from test_em.py and
# test_mixture_gmm.py)
def em_sharded():
    from espresso_jax.em import fit_em

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from test_em import MODEL, _params0

    rng = np.random.default_rng(0)
    X = jnp.asarray(np.concatenate([rng.normal(-2, 1, 3000), rng.normal(3, 1, 5000)])[:, None],
                    jnp.float32)
    mesh = Mesh(np.array(jax.devices()), ("rows",))
    Xs = jax.device_put(X, NamedSharding(mesh, P("rows", None)))
    ws = jax.device_put(jnp.ones(8000, jnp.float32), NamedSharding(mesh, P("rows")))
    a = fit_em(MODEL, _params0(), X, tol=0.0, max_iter=30)
    for chunk in (None, 500):
        b = fit_em(MODEL, _params0(), Xs, ws, tol=0.0, max_iter=30, chunk_size=chunk)
        assert len(b.params["mu"].sharding.device_set) >= 1
        np.testing.assert_allclose(b.params["mu"], a.params["mu"], rtol=1e-5)
        np.testing.assert_allclose(b.history, a.history, rtol=1e-5)


def gmm_sharded():
    from espresso_jax.mixture import gmm

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(2000, 2)) * 0.5 + c for c in ([0, 0], [3, 0], [0, 3])])
    X = jnp.asarray(X, jnp.float32)
    mesh = Mesh(np.array(jax.devices()), ("rows",))
    Xs = jax.device_put(X, NamedSharding(mesh, P("rows", None)))
    ws = jax.device_put(jnp.ones(6000, jnp.float32), NamedSharding(mesh, P("rows")))
    init = dict(means_init=np.array([[0.5, 0.5], [2.5, 0.5], [0.5, 2.5]]),
                weights_init=np.ones(3) / 3, precisions_init=np.stack([np.eye(2)] * 3))
    a = gmm.fit(jax.random.key(0), X, 3, max_iter=30, tol=0.0, **init)
    for chunk in (500,):
        b = gmm.fit(jax.random.key(0), Xs, 3, max_iter=30, tol=0.0, sample_weight=ws,
                    chunk_size=chunk, **init)
        np.testing.assert_allclose(b.history, a.history, rtol=1e-5)
        np.testing.assert_allclose(b.params.means, a.params.means, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(b.params.covariances, a.params.covariances, rtol=1e-5,
                                   atol=1e-5)


em_sharded()
print("em-sharded-ok")
gmm_sharded()
print("gmm-sharded-ok")
print("four-devices-ok")
