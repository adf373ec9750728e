"""Run by tests/test_parallel.py: ``two_processes.py PROCESS_ID N_PROCESSES PORT OUT.npz``.

With ``N_PROCESSES=2`` the script joins a ``jax.distributed`` run on 127.0.0.1:PORT (gloo CPU
collectives, one CPU device per process), feeds its half of the rows with
``parallel.shard_rows`` (``jax.make_array_from_process_local_data``) and fits GMM (sample
weights, chunked E-steps), VB-GMM, PPCA (EM), BBB, MC dropout and a VAE (SGVB) on the global
arrays; with ``N_PROCESSES=1`` it fits the same models on the whole data in one plain
process (the reference). Process 0 writes the fitted parameters and histories to OUT.npz.
"""

import os
import sys

import jax

process_id, n_processes, port, out_path = (int(sys.argv[1]), int(sys.argv[2]),
                                           int(sys.argv[3]), sys.argv[4])
jax.config.update("jax_numpy_dtype_promotion", "strict")
if n_processes > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}",
                               num_processes=n_processes, process_id=process_id,
                               initialization_timeout=120)

import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from jax.sharding import Mesh  # noqa: E402

from espresso_jax import parallel, train  # noqa: E402
from espresso_jax.bnn import bbb, bbb_elbo, dropout  # noqa: E402
from espresso_jax.mixture import gmm, ppca, vbgmm  # noqa: E402
from espresso_jax.nn import vae  # noqa: E402

assert jax.process_count() == n_processes and len(jax.devices()) == n_processes
rng = np.random.default_rng(0)
X = np.concatenate([rng.normal(size=(40, 2)) * 0.5 + c
                    for c in ([0, 0], [3, 0], [0, 3])]).astype(np.float32)
labels = np.repeat(np.arange(3), 40).astype(np.int32)
target = (0.5 * X[:, 0] - X[:, 1]).astype(np.float32)
weights = np.linspace(0.5, 1.5, 120, dtype=np.float32)
if n_processes > 1:
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    rows = slice(process_id * 60, (process_id + 1) * 60)   # this process's rows
    X, labels, target, weights = parallel.shard_rows(
        (X[rows], labels[rows], target[rows], weights[rows]), mesh)
    assert not X.is_fully_addressable and X.shape == (120, 2)

init = dict(means_init=np.array([[0.5, 0.5], [2.5, 0.5], [0.5, 2.5]]),
            weights_init=np.ones(3) / 3, precisions_init=np.stack([np.eye(2)] * 3))
sgd = dict(optimizer=optax.adam(1e-2), batch_size=20, n_epochs=3, progress=False)
fits = {
    "gmm": lambda: gmm.fit(jax.random.key(0), X, 3, max_iter=10, tol=0.0, chunk_size=30,
                           sample_weight=weights, **init),
    "vbgmm": lambda: vbgmm.fit(jax.random.key(0), X, 3, max_iter=10, tol=0.0),
    "ppca": lambda: ppca.fit_em(jax.random.key(0), X, 1, max_iter=10, tol=0.0),
    "bbb": lambda: bbb_elbo.fit(jax.random.key(0), X, labels, module=bbb.BayesMLP((8, 3)),
                                task="classification", **sgd),
    "dropout": lambda: dropout.fit(jax.random.key(0), X, target, task="regression", rate=0.1,
                                   module=dropout.DropoutMLP(hidden=(8,)), **sgd),
    "vae": lambda: vae.fit(jax.random.key(0), X, module=vae.VAE(
        data_dim=2, latent_dim=1, hidden=(8,), likelihood="gaussian"), **sgd),
}


def to_host(leaf):
    """A global result as a NumPy array (replicated: the local copy; else all-gathered)."""
    if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
        return np.asarray(leaf)
    if leaf.is_fully_replicated:
        return np.asarray(leaf.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))


results = {}
for name, fit in fits.items():
    result = fit()
    tree = {"params": result.params, "history": result.history}
    for i, leaf in enumerate(jax.tree.leaves(tree)):
        results[f"{name}/{i}"] = to_host(leaf)
    if name == "vae":  # every process calls save_state (OUT.npz.<i>.msgpack): only 0 writes
        train.save_state(f"{out_path}.{process_id}.msgpack", result.state)
if jax.process_index() == 0:
    np.savez(out_path, **results)
print("process", process_id, "done", os.getpid())
