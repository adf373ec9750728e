"""The EM engine on a model written here: a 1-D two-component mixture with unit variances.

Its EM update has a closed form we can iterate in NumPy (the independent reference), and its
statistics are additive, so chunked, sharded, restarted and stepwise runs must agree with it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espresso_jax import em


def _e_step(params, X, w):
    logits = jnp.log(params["pi"])[None, :] - 0.5 * (X - params["mu"][None, :]) ** 2  # (B, 2)
    norm = jax.nn.logsumexp(logits, axis=1, keepdims=True)
    r = jnp.exp(logits - norm) * w[:, None]
    return {"n": r.sum(0), "sx": (r * X).sum(0),
            "ll": jnp.sum(w * (norm[:, 0] - 0.5 * jnp.log(2 * jnp.pi))), "w": w.sum()}


def _m_step(params, stats):
    return {"pi": stats["n"] / stats["n"].sum(), "mu": stats["sx"] / stats["n"]}


MODEL = em.EMModel(e_step=_e_step, m_step=_m_step,
                   objective=lambda old, new, stats: stats["ll"] / stats["w"])


def _numpy_em(x, pi, mu, n_iter):
    history = []
    for _ in range(n_iter):
        logits = np.log(pi) - 0.5 * (x[:, None] - mu) ** 2
        norm = np.logaddexp(logits[:, 0], logits[:, 1])
        r = np.exp(logits - norm[:, None])
        history.append(np.mean(norm - 0.5 * np.log(2 * np.pi)))
        pi, mu = r.mean(0), (r * x[:, None]).sum(0) / r.sum(0)
    return pi, mu, np.array(history)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(-2, 1, 300), rng.normal(3, 1, 700)])[:, None]


def _params0(dtype=jnp.float32):
    return {"pi": jnp.array([0.5, 0.5], dtype), "mu": jnp.array([-1.0, 1.0], dtype)}


@pytest.mark.parametrize("chunk_size", [None, 128, 1000, 333])
def test_fit_em_matches_numpy_iteration(x64, data, chunk_size):
    res = em.fit_em(MODEL, _params0(jnp.float64), jnp.asarray(data), tol=0.0, max_iter=25,
                    chunk_size=chunk_size)
    pi, mu, history = _numpy_em(data[:, 0], np.array([0.5, 0.5]), np.array([-1.0, 1.0]), 25)
    np.testing.assert_allclose(res.params["mu"], mu, rtol=1e-10)
    np.testing.assert_allclose(res.params["pi"], pi, rtol=1e-10)
    np.testing.assert_allclose(res.history, history, rtol=1e-10)
    assert int(res.n_iter) == 25 and not bool(res.converged)
    assert np.all(np.diff(np.asarray(res.history)) >= -1e-12)   # EM never decreases


# float32 fits on `data` use max_iter=50 (one compiled loop; tol is traced): tol=1e-4 stops
# after 4 iterations, 1e-7 after 9.
def test_tolerance_stops_early_and_pads_history_with_nan(data):
    res = em.fit_em(MODEL, _params0(), jnp.asarray(data, jnp.float32), tol=1e-4, max_iter=50)
    n = int(res.n_iter)
    assert bool(res.converged) and 2 < n < 50
    assert np.all(np.isfinite(res.history[:n])) and np.all(np.isnan(res.history[n:]))


def test_weights_equal_repeated_rows(x64, data):
    # chunk_size and max_iter of test_fit_em_matches_numpy_iteration[128]: the weighted fit
    # is that compiled program (1000 rows, a ragged last block), only the weights differ.
    counts = np.random.default_rng(1).integers(0, 3, len(data))
    weighted = em.fit_em(MODEL, _params0(jnp.float64), jnp.asarray(data),
                         jnp.asarray(counts, jnp.float64), tol=0.0, max_iter=25, chunk_size=128)
    repeated = em.fit_em(MODEL, _params0(jnp.float64), jnp.asarray(np.repeat(data, counts, 0)),
                         tol=0.0, max_iter=25)
    np.testing.assert_allclose(weighted.params["mu"], repeated.params["mu"], rtol=1e-10)


def test_vmapped_restarts_and_select_best(data):
    X = jnp.asarray(data, jnp.float32)
    starts = {"pi": jnp.full((3, 2), 0.5), "mu": jnp.array([[-1.0, 1.0], [5.0, 6.0],
                                                            [0.0, 0.1]])}
    batch = jax.vmap(lambda p: em.fit_em(MODEL, p, X, tol=1e-6, max_iter=300))(starts)
    best = em.select_best(batch)
    finals = [float(batch.history[i, int(batch.n_iter[i]) - 1]) for i in range(3)]
    assert float(best.history[int(best.n_iter) - 1]) == max(finals)
    np.testing.assert_allclose(np.sort(np.asarray(best.params["mu"])), [-2, 3], atol=0.2)


def test_second_call_does_not_recompile(data):
    X = jnp.asarray(data, jnp.float32)
    em.fit_em(MODEL, _params0(), X, tol=1e-3, max_iter=50)
    before = em._fit_em_impl._cache_size()
    em.fit_em(MODEL, _params0(), X + 1.0, tol=1e-5, max_iter=50)
    assert em._fit_em_impl._cache_size() == before


def test_stepwise_em_reaches_the_batch_fixed_point(data):
    X = jnp.asarray(data, jnp.float32)
    batch = em.fit_em(MODEL, _params0(), X, tol=1e-7, max_iter=50)
    assert bool(batch.converged)      # the batch fixed point (9 iterations)
    online = em.fit_stepwise_em(jax.random.key(0), MODEL, _params0(), X, batch_size=100,
                                n_epochs=30, kappa=0.7)
    # Stepwise EM is a stochastic approximation: its limit is the batch fixed point, with
    # O(rho_T) fluctuation; 30 epochs leave it within a few hundredths of a unit.
    np.testing.assert_allclose(online.params["mu"], batch.params["mu"], atol=0.05)
    assert online.history.shape == (30 * 10,)


@pytest.mark.parametrize("kwargs, match", [
    ({"tol": -1.0, "max_iter": 5}, "tol must be >= 0"),
    ({"tol": 0.0, "max_iter": 0}, "max_iter must be >= 1"),
    ({"tol": 0.0, "max_iter": 5, "chunk_size": 0}, "chunk_size must be >= 1"),
])
def test_engine_arguments_are_checked(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        em.fit_em(MODEL, _params0(), jnp.asarray(data, jnp.float32), **kwargs)


# Rows sharded over 4 virtual CPU devices: the fit equals the one-device fit to 1e-5 —
# checked in tests/parallel_scripts/four_devices.py (run by
# tests/test_parallel.py::test_sgd_on_four_virtual_devices_matches_one_device, one child
# process for every 4-device check).


def test_resolve_chunk_size():
    assert em.resolve_chunk_size(None, 10**6, 512) is None
    assert em.resolve_chunk_size(1000, 10**6, 512) == 1000
    # "auto" on CPU: cache-sized, balanced blocks; small data stays one block.
    assert em.resolve_chunk_size("auto", 1000, 512) is None
    rows = em.resolve_chunk_size("auto", 100_000, 512)          # 16 × 8 float32 per row
    n_chunks = -(-100_000 // rows)
    assert rows * 512 <= 1.01 * em.auto_chunk_bytes()
    assert 0 <= n_chunks * rows - 100_000 < n_chunks             # padding < one row per block
    with pytest.raises(ValueError, match="chunk_size must be a positive int, None or 'auto'"):
        em.resolve_chunk_size("big", 10, 8)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        em.resolve_chunk_size(0, 10, 8)


def test_iterate_records_history_and_stops_on_done():
    """x <- cos(x) to its fixed point: history[i] is the value of iteration i, NaN after the
    iteration whose ``done`` fired; closed_form gives the loop fields of a closed form."""
    def step(x):
        new = jnp.cos(x)
        return new, new, jnp.abs(new - x) < 1e-5

    res = jax.jit(lambda x0: em.iterate(step, x0, max_iter=200, dtype=jnp.float32))(
        jnp.float32(1.0))
    n = int(res.n_iter)
    assert bool(res.converged) and 1 < n < 200
    np.testing.assert_allclose(float(res.params), 0.7390851, atol=1e-5)
    assert np.all(np.isfinite(res.history[:n])) and np.all(np.isnan(res.history[n:]))
    np.testing.assert_allclose(res.history[n - 1], res.params)
    short = em.iterate(step, jnp.float32(1.0), max_iter=3, dtype=jnp.float32)
    assert int(short.n_iter) == 3 and not bool(short.converged)
    fields = em.closed_form(jnp.float32)
    assert fields["history"].shape == (0,) and int(fields["n_iter"]) == 0
    assert bool(fields["converged"])


def test_cpu_cache_sizes_from_sysfs_and_the_auto_rule(tmp_path, monkeypatch):
    """``cpu_cache.read_sysfs`` reads a sysfs cache folder (data and unified caches by level,
    instruction caches skipped, unreadable entries ignored); ``em.auto_chunk_bytes`` is the L2
    size clipped to [1, 8] MiB, 4 MiB without an L2; ``resolve_chunk_size("auto")`` sizes
    blocks from it; on Linux the running CPU's sizes are read (issue 14)."""
    from espresso_jax import cpu_cache

    assert cpu_cache.parse_cache_size("48K") == 48 * 1024
    assert cpu_cache.parse_cache_size("2048K\n") == 2 << 20
    assert cpu_cache.parse_cache_size("32M") == 32 << 20
    assert cpu_cache.parse_cache_size("512") == 512
    with pytest.raises(ValueError, match="cache size"):
        cpu_cache.parse_cache_size("big")
    entries = [("1", "Data", "48K"), ("1", "Instruction", "32K"), ("2", "Unified", "2048K"),
               ("3", "Unified", "300M"), ("4", "Unified", "junk")]
    for i, (level, kind, size) in enumerate(entries):
        folder = tmp_path / f"index{i}"
        folder.mkdir()
        for name, text in (("level", level), ("type", kind), ("size", size)):
            (folder / name).write_text(text + "\n")
    assert cpu_cache.read_sysfs(tmp_path) == {1: 48 << 10, 2: 2 << 20, 3: 300 << 20}
    assert cpu_cache.read_sysfs(tmp_path / "missing") == {}

    for caches, target in (({1: 48 << 10, 2: 2 << 20}, 2 << 20), ({2: 256 << 10}, 1 << 20),
                           ({2: 32 << 20}, 8 << 20), ({1: 48 << 10}, 4 << 20), ({}, 4 << 20)):
        monkeypatch.setattr(em, "cache_sizes", lambda caches=caches: caches)
        assert em.auto_chunk_bytes() == target, caches
        if jax.default_backend() == "cpu":
            rows = em.resolve_chunk_size("auto", 100_000, 512)
            per_block = target // 512                              # rows of one target block
            assert -(-100_000 // rows) == -(-100_000 // per_block)  # as many balanced blocks
    monkeypatch.undo()
    if cpu_cache.read_sysfs():                                   # Linux: the running CPU
        assert cpu_cache.cache_sizes() == cpu_cache.read_sysfs()
        assert cpu_cache.cache_sizes().get(2, 0) > 0
