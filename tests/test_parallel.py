"""Data parallelism (espresso_jax.parallel): the SGD engine on row-sharded data, the vmapped UCI
grid on a sharded split axis, randomness under sharding, and fits over two processes
(jax.distributed on localhost).

The multi-device checks run in subprocesses: 4 virtual CPU devices
(``--xla_force_host_platform_device_count=4``) or two processes talking over 127.0.0.1 (gloo
CPU collectives). Every subprocess has a timeout and is killed in a ``finally``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from espresso_jax import parallel
from espresso_jax.datasets.uci import default_data_dir
from espresso_jax.validation import as_int_array, check_targets

HERE = os.path.dirname(__file__)


def _env() -> dict[str, str]:
    """The test's environment without a device count (the scripts set their own)."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join(flags)
    src = os.path.join(os.path.dirname(HERE), "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    return env


def _run_script(name: str, args: list[str], timeout: float) -> str:
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "parallel_scripts", name), *args],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-4000:]
    return out


# --------------------------------------------------------------------------------------------
# One process, one device: the helpers


def test_batch_sharding_of_unsharded_data_is_none():
    assert parallel.batch_sharding({"x": np.zeros((4, 2)), "y": jnp.zeros(4)}) is None


def test_batch_sharding_reads_the_row_axis_and_rejects_two_meshes():
    device = np.array(jax.devices()[:1])
    a = jax.device_put(jnp.zeros((4, 2)), NamedSharding(Mesh(device, ("batch",)), P("batch")))
    got = parallel.batch_sharding((a, np.zeros(4)))
    assert got == NamedSharding(Mesh(device, ("batch",)), P("batch"))
    b = jax.device_put(jnp.zeros(4), NamedSharding(Mesh(device, ("rows",)), P("rows")))
    with pytest.raises(ValueError, match="data"):
        parallel.batch_sharding((a, b))
    # sharded over a feature axis only: not a row sharding
    c = jax.device_put(jnp.zeros((4, 2)), NamedSharding(Mesh(device, ("f",)), P(None, "f")))
    assert parallel.batch_sharding(c) is None


def test_shard_rows_and_replicate_keep_values():
    mesh = Mesh(np.array(jax.devices()[:1]), ("batch",))
    x = np.arange(12.0, dtype=np.float32).reshape(6, 2)
    got = parallel.shard_rows({"x": x}, mesh)["x"]
    assert got.sharding == NamedSharding(mesh, P("batch"))
    np.testing.assert_array_equal(np.asarray(got), x)
    key = jax.random.key(3)
    rep = parallel.replicate(key, mesh)
    assert rep.sharding == NamedSharding(mesh, P())
    np.testing.assert_array_equal(jax.random.key_data(rep), jax.random.key_data(key))


def test_shard_rows_rejects_rows_that_do_not_split():
    mesh = Mesh(np.array(jax.devices()[:1]), ("batch",))
    with pytest.raises(ValueError, match="data"):
        parallel.shard_rows(np.float32(1.0), mesh)


@pytest.mark.parametrize("y, exc, match", [
    (jnp.array([0.0, 1.5]), TypeError, "non-integral"),
    (jnp.array([0.0, jnp.nan]), ValueError, "NaN"),
    (jnp.array([-1, 1]), ValueError, ">= 0"),
    (jnp.array([[0, 1]]), ValueError, "1-D"),
    (jnp.array([], jnp.int32), ValueError, "empty"),
])
def test_int_labels_checked_on_the_device(y, exc, match):
    # jax arrays are checked by reductions on the device (a global array of several processes
    # cannot be copied to the host); the errors are those of the NumPy path
    with pytest.raises(exc, match=match):
        as_int_array(y, "y", ndim=1, min_value=0)
    with pytest.raises(exc, match=match):
        as_int_array(np.asarray(y), "y", ndim=1, min_value=0)


def test_device_labels_keep_their_values_and_range_check():
    y = jnp.array([0.0, 2.0, 1.0])
    np.testing.assert_array_equal(np.asarray(as_int_array(y, "y")), [0, 2, 1])
    with pytest.raises(ValueError, match="largest label 2"):
        check_targets(jnp.array([0, 2, 1]), 3, n_classes=2)


# --------------------------------------------------------------------------------------------
# Four virtual CPU devices


def test_sgd_on_four_virtual_devices_matches_one_device():
    # VAE, BBB, MC dropout fits and the UCI grid and protocol: 1 device vs 4, minibatches
    # stay sharded, per-device noise differs, runs reproduce
    # (tests/parallel_scripts/four_devices.py; ~24 s CPU, 14 s without the UCI data).
    out = _run_script("four_devices.py", [], timeout=600)
    assert "four-devices-ok" in out, out[-3000:]
    # the EM engine and the GMM on sharded rows (checks of test_em.py and test_mixture_gmm.py,
    # run here to save their children's imports)
    assert "em-sharded-ok" in out and "gmm-sharded-ok" in out, out[-3000:]
    if default_data_dir() is not None:
        assert "protocol-ok" in out, out[-3000:]


# --------------------------------------------------------------------------------------------
# Two processes (jax.distributed over 127.0.0.1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # ~40 s CPU: three interpreters, each compiling six fits
def test_two_processes_match_one_process(tmp_path):
    script = os.path.join(HERE, "parallel_scripts", "two_processes.py")
    port = _free_port()
    out_path = str(tmp_path / "two.npz")
    logs = [tmp_path / f"process{i}.log" for i in range(2)]   # files: no pipe can fill up
    procs = []
    try:
        for i, log in enumerate(logs):
            with open(log, "w") as sink:
                procs.append(subprocess.Popen(
                    [sys.executable, script, str(i), "2", str(port), out_path], env=_env(),
                    stdout=sink, stderr=subprocess.STDOUT))
        for p in procs:
            p.wait(timeout=400)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log.read_text()[-4000:]
    ref_path = str(tmp_path / "one.npz")
    _run_script("two_processes.py", ["0", "1", "0", ref_path], timeout=300)
    two, one = np.load(out_path), np.load(ref_path)
    assert sorted(two.files) == sorted(one.files)
    assert {name.split("/")[0] for name in one.files} == {"gmm", "vbgmm", "ppca", "bbb",
                                                            "dropout", "vae"}
    for name in one.files:
        # the row sums are reduced across processes in another order: float32 rounding
        np.testing.assert_allclose(two[name], one[name], rtol=2e-5, atol=2e-6, err_msg=name)
    # save_state called by both processes: process 0 wrote the VAE's state, process 1 nothing
    assert os.path.exists(out_path + ".0.msgpack")
    assert not os.path.exists(out_path + ".1.msgpack")
    state_two = (tmp_path / "two.npz.0.msgpack").read_bytes()
    state_one = (tmp_path / "one.npz.0.msgpack").read_bytes()
    assert len(state_two) == len(state_one) > 0
