"""Data parallelism over a device mesh, in one process or several (``jax.distributed``).

The library's pattern is the one of ``jax.sharding``: pass the data sharded over its rows
(the example axis) and the compiled fits run data-parallel, parameters replicated and the
row sums (E-step statistics, gradients) reduced by the compiler.

* EM (:mod:`espresso_jax.em`: GMM, VB-GMM, PPCA, k-means): pass ``X`` row-sharded.
* The SGD engine (:mod:`espresso_jax.train`) and every neural fit built on it (VAE, BBB, MC
  dropout, heteroscedastic nets, GANs): pass the data row-sharded; ``fit_loop`` replicates the
  state (:func:`place_on_rows`) and constrains every shuffled minibatch to the row sharding
  (:func:`batch_sharding`), so a gathered minibatch stays split over the devices.
* The vmapped UCI protocol: shard its leading (split) axis, see
  :func:`espresso_jax.apps.uci.grid_search.train_grid`.

:func:`shard_rows` builds the sharded arrays: ``jax.device_put`` in one process,
``jax.make_array_from_process_local_data`` (each process feeds its own rows) in several.
Random numbers drawn inside a compiled step (dropout masks, reparameterisation noise) do not
depend on the sharding (JAX's partitionable threefry, the default): each device draws its own
slice of the same global array, so no two devices repeat a draw and a run is reproducible
from its key on any number of devices.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["batch_sharding", "shard_rows", "place_on_rows", "replicate"]

PyTree = Any


def batch_sharding(data: PyTree) -> NamedSharding | None:
    """The row sharding of ``data``, or None when no leaf is sharded over its rows.

    A leaf counts as row-sharded when it is a ``jax.Array`` with a ``NamedSharding`` whose
    partition spec names mesh axes for the leading (example) axis. Returns
    ``NamedSharding(mesh, P(axes))`` (the other axes replicated), which :func:`fit_loop`
    applies to every minibatch.

    Raises:
        ValueError: two leaves are sharded over different meshes or mesh axes.
    """
    found = set()
    for leaf in jax.tree.leaves(data):
        sharding = getattr(leaf, "sharding", None)
        if (isinstance(leaf, jax.Array) and isinstance(sharding, NamedSharding)
                and leaf.ndim and len(sharding.spec) and sharding.spec[0] is not None):
            found.add(NamedSharding(sharding.mesh, P(sharding.spec[0])))
    if len(found) > 1:
        raise ValueError("data: every row-sharded array must be sharded over the same mesh "
                         f"axes, got {sorted(str(s.spec) for s in found)}")
    return found.pop() if found else None


def shard_rows(data: PyTree, mesh: jax.sharding.Mesh, axis: str | tuple[str, ...] = "batch"
               ) -> PyTree:
    """Put every leaf of ``data`` ``(n_rows, ...)`` on ``mesh``, its rows split over ``axis``.

    In one process this is ``jax.device_put(a, NamedSharding(mesh, P(axis)))`` per leaf. With
    several processes (``jax.distributed``) each process passes its own rows and the global
    array is assembled with ``jax.make_array_from_process_local_data`` (in the order of the
    mesh's devices: process 0's rows first for a mesh over ``jax.devices()``). Typed PRNG key
    arrays (e.g. one key per network of a vmapped grid) are sharded the same way.

    Raises:
        ValueError: a leaf whose rows do not split evenly over the devices (a JAX
            requirement; the minibatch size need not divide, but a multiple of the device
            count balances the work).
    """
    sharding = NamedSharding(mesh, P(axis))
    names = (axis,) if isinstance(axis, str) else tuple(axis)
    n_devices = int(np.prod([mesh.shape[name] for name in names]))
    n_local = n_devices // jax.process_count()

    def put(leaf):
        if np.ndim(leaf) == 0 or np.shape(leaf)[0] % max(n_local, 1):
            raise ValueError(f"data: every leaf must have a leading (row) axis that splits "
                             f"evenly over the {n_local} local devices of mesh axis {axis!r}, "
                             f"got shape {tuple(np.shape(leaf))}")
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(leaf)),
                                            impl=jax.random.key_impl(leaf))
        if jax.process_count() == 1:
            return jax.device_put(leaf, sharding)
        return jax.make_array_from_process_local_data(sharding, np.asarray(leaf))

    return jax.tree.map(put, data)


def place_on_rows(state: Any, data: PyTree, sharding: NamedSharding) -> tuple[Any, PyTree]:
    """Replicate ``state`` over the mesh of ``sharding`` and put unsharded ``data`` leaves on it.

    Used by :func:`espresso_jax.train.fit_loop` on row-sharded data. With several processes
    every data leaf must already be a global array (see :func:`shard_rows`).

    Raises:
        ValueError: several processes and a data leaf that is a local array.
    """
    replicated = NamedSharding(sharding.mesh, P())

    def put_data(leaf):
        if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
            return leaf
        if jax.process_count() > 1 and not (isinstance(leaf, jax.Array)
                                            and not leaf.is_fully_addressable):
            raise ValueError("data: with several processes every leaf must be a global array "
                             "sharded over its rows (parallel.shard_rows), got a local one")
        return jax.device_put(leaf, sharding)

    if jax.process_count() == 1:
        state = jax.device_put(state, replicated)
    else:
        state = jax.tree.map(lambda leaf: _replicate(leaf, replicated), state)
    return state, jax.tree.map(put_data, data)


def replicate(leaf: Any, mesh: jax.sharding.Mesh) -> jax.Array:
    """One array (or typed PRNG key array) replicated over every device of ``mesh``.

    Works with several processes: a process-local ``leaf`` (the same value in every process,
    e.g. parameters initialised from the same key) becomes a global replicated array; a global
    one is resharded by the compiler. In one process it is ``jax.device_put``.
    """
    return _replicate(leaf, NamedSharding(mesh, P()))


@functools.lru_cache(maxsize=16)
def _resharder(sharding: NamedSharding) -> Any:
    """One jitted identity per target sharding, so a fit's state leaves of the same shape
    compile the resharding once rather than once per leaf and call."""
    return jax.jit(lambda a: a, out_shardings=sharding)


def _replicate(leaf: Any, replicated: NamedSharding) -> jax.Array:
    if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(leaf)
        return jax.random.wrap_key_data(_replicate(jax.random.key_data(leaf), replicated),
                                        impl=impl)
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        return _resharder(replicated)(leaf)
    if jax.process_count() == 1:
        return jax.device_put(leaf, replicated)
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, replicated, lambda index: host[index])
