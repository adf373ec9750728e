"""Default-suite evidence for the UCI published-number claims (issue 12 §2).

The slow tests reproduce the published numbers (tests/test_bnn_uci.py::test_full_boston_protocol:
MC dropout on boston against Gal & Ghahramani's 2.90 +- 0.18 / -2.40 +- 0.04;
tests/test_bnn_bbb.py::test_uci_protocol_smoke_yacht: BBB on yacht). Here each claim gets a
reduced run at the claim's own training length (10x the data folder's epochs, as the library's
default) but with 2 splits, a one-point grid and 256 MC samples, bounded on both sides by the
spread measured over keys, and the plausible bugs of the issue are injected (monkeypatch) to
show that they leave those bounds (each bug test asserts the side of the bound it crosses).

Cost (CPU time, /usr/bin/time, loaded 2-core machine, python start-up included): 45-48 s for
the 15 tests of this file, almost all of it jit compiles (MC dropout: two train_grid compiles
and one evaluate, ~18 s; BBB: one train_grid and one evaluate, ~15 s; the KL-patched BBB
train_grid, ~9 s); every further run reuses them (~1.3 s CPU per dropout run, ~0.35 s per BBB
run). Without the KL-scaling tests the file took 36-38 s. A bug that leaves training's inputs
unchanged (it acts on evaluation or on the test rows) reuses the nominal run's networks
(_TrainMemo: exact-input memo of train_grid; equal bit for bit to a retrain, checked by hand
for three of those bugs on 2026-12-07): 90.8 -> 54.0 s of CPU for the file (one run each, same
loaded machine, `make test`'s compiler flags).

Injection without recompiling: every bug that acts on values (hyper-parameters, the target
scale, the data rows) is injected by wrapping the protocol module's ``train_grid`` /
``evaluate`` (run_protocol looks them up at call time) or the splits module's
``standardized_split``, so the jitted programs compiled by the nominal run are reused (each
bug test asserts that the jit caches do not grow). run_protocol itself compiles train_grid twice
per method (its grid and refit stages train on different row counts), not once per split.

Bugs the bounds do NOT catch (measured, not committed): MC dropout with the dropout rate
ignored in training and prediction (p=0; split-mean RMSE 2.61-2.71 over 3 keys against the
nominal 2.42-2.59: too close), the dropout weight decay scaled by N instead of 1/N (2.47-2.54 /
-2.41: the decay is ~1e-8, negligible at l=1e-2 either way, as the protocol module notes), and
both inputs and target standardised with the test rows' statistics for training and test alike
(2.50-2.63 / -2.42..-2.45: an affine change the network absorbs); BBB trained on a split that
leaks the test rows into training (see _BBB_BOUNDS).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from espresso_jax.apps.uci import bbb as bbb_uci
from espresso_jax.apps.uci import grid_search
from espresso_jax.apps.uci import protocol as uci
from espresso_jax.apps.uci import splits as uci_splits
from espresso_jax.bnn import bbb
from espresso_jax.datasets.uci import default_data_dir, load_uci

pytestmark = pytest.mark.skipif(default_data_dir() is None, reason="no UCI data directory")

N_SPLITS, N_SAMPLES, VAL_FRACTION = 2, 256, 0.11  # 0.11: n_val == n_test (one evaluate compile)
DROPOUT_OPT = optax.adam(1e-3)  # one object each: jit's cache is keyed on it
BBB_OPT = optax.adam(1e-2)
KL_TEST_OPT = optax.adam(1e-2)  # only for the KL-patched programs (a cache entry of their own)

# MC dropout, boston, splits 0-1, grid {rate 0.05} x {tau 0.1}, 400 epochs, key(0). Measured
# over keys 0-7: split-mean RMSE 2.424..2.585, LL -2.438..-2.406 (per split: RMSE 2.23..2.43 and
# 2.56..2.77). Bounds: the observed range widened by ~0.1 each side. Injected bugs (keys 0-2):
# precision used as variance LL -4.24; tau left in original units LL -4.31; predictions not
# un-standardised RMSE 0.27 / LL -0.18..-0.21; test rows standardised with their own statistics
# RMSE 3.06..3.26 / LL -2.55..-2.60; test rows leaked into the fit rows RMSE 2.10..2.23 (LL
# inside: -2.34..-2.36). Reference: Gal's own 10x-epoch one-layer result files
# (yaringal/DropoutUncertaintyExps, bostonHousing/results/test_{MC_rmse,ll}_10_xepochs_1_hidden_
# layers.txt; full 12-point grid, 10,000 samples) give splits 0 and 1 RMSE 2.22 / 2.72 and LL
# -2.33 / -2.44, split means 2.47 / -2.38, inside these bounds; over all 20 splits 3.18 / -2.68
# (splits 0-1 are easier than average), published 2.90 +- 0.18 / -2.40 +- 0.04.
_DROPOUT_BOUNDS = {"rmse": (2.32, 2.70), "ll": (-2.55, -2.30)}


class _TestScores(NamedTuple):
    """Per-split test RMSE and log-likelihood, ``(S,)`` each (as in ProtocolResult)."""

    rmse: np.ndarray
    log_likelihood: np.ndarray


def _cache_sizes():
    return grid_search.train_grid._cache_size(), grid_search.evaluate._cache_size()


def _same(a, b) -> bool:
    """Exact equality of two ``train_grid`` argument trees (arrays bit for bit, keys by their
    data, the optimizer by identity)."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    if ta != tb or len(la) != len(lb):
        return False
    for u, v in zip(la, lb, strict=True):
        if isinstance(u, jax.Array) and jnp.issubdtype(u.dtype, jax.dtypes.prng_key):
            u, v = jax.random.key_data(u), jax.random.key_data(v)
        if isinstance(u, (np.ndarray, jax.Array)):
            if not (np.shape(u) == np.shape(v) and np.array_equal(np.asarray(u), np.asarray(v))):
                return False
        elif not (u is v or u == v):
            return False
    return True


class _TrainMemo:
    """The nominal runs' ``train_grid`` calls, inputs and outputs. A bug that leaves training's
    inputs bit for bit unchanged (it acts on evaluation or on the test rows only) gets the
    nominal networks back instead of training them again: the compiled training is a
    deterministic function of its inputs (a bug run that did retrain gave the same bits), so
    the bug's metrics are those of a retrained run, without ~2/3 of its CPU. ``hits`` counts
    the calls answered from the memo; each bug test asserts how many it expects."""

    def __init__(self):
        self.calls, self.hits = [], 0

    def wrap(self, real, record):
        def train_grid(keys, method, X, y, hparams, **kw):
            inputs = (keys, method, X, y, hparams, kw)
            for old, out in self.calls:
                if old[1] == method and _same(old[:1] + old[2:], inputs[:1] + inputs[2:]):
                    self.hits += 1
                    return out
            out = real(keys, method, X, y, hparams, **kw)
            if record:
                self.calls.append((inputs, out))
            return out
        return train_grid


_MEMO = _TrainMemo()


def _split_means(r):
    return {"rmse": float(np.mean(r.rmse)), "ll": float(np.mean(r.log_likelihood))}


def _violations(r, bounds):
    """``{metric: "low" | "high"}`` for every split-mean metric outside its bounds."""
    out = {}
    for name, value in _split_means(r).items():
        lo, hi = bounds[name]
        if not value > lo:
            out[name] = "low"
        elif not value < hi:
            out[name] = "high"
    return out


@pytest.fixture(scope="module")
def boston():
    ds = load_uci("bostonHousing")
    return ds._replace(dropout_rates=np.array([0.05]), tau_values=np.array([0.1]))


@pytest.fixture(scope="module")
def yacht():
    return load_uci("yacht")


def _dropout_run(ds, key=0):
    return uci.run_protocol(jax.random.key(key), ds, uci.dropout_method(), optimizer=DROPOUT_OPT,
                            n_splits=N_SPLITS, n_samples=N_SAMPLES, n_samples_val=N_SAMPLES,
                            val_fraction=VAL_FRACTION, progress=False)


# ---------------------------------------------------------------------------------------------
# Bug injections (monkeypatch): wrappers of the protocol's compiled calls, same shapes.


def _wrap_train(monkeypatch, hp_fn):
    """Training sees ``hp_fn(hparams, n_rows, batch_size)`` instead of ``hparams``."""
    real = uci.train_grid

    def train_grid(keys, method, X, y, hparams, **kw):
        return real(keys, method, X, y, hp_fn(hparams, X.shape[1], kw["batch_size"]), **kw)

    monkeypatch.setattr(uci, "train_grid", train_grid)


def _wrap_evaluate(monkeypatch, hp_fn=None, params_fn=None, y_std_fn=None):
    real = uci.evaluate

    def evaluate(keys, method, params, X, y, hparams, y_std, **kw):
        return real(keys, method, params if params_fn is None else params_fn(params), X, y,
                    hparams if hp_fn is None else hp_fn(hparams, y_std), y_std if
                    y_std_fn is None else y_std_fn(y_std), **kw)

    monkeypatch.setattr(uci, "evaluate", evaluate)


def _test_rows_own_stats(monkeypatch):
    """Test rows standardised with the test rows' own mean and std (training rows correct)."""
    real = uci_splits.standardized_split

    def standardized_split(ds, i):
        s, te = real(ds, i), ds.test_index[i]
        x_std = ds.X[te].std(0)
        x_std = np.where(x_std > 0, x_std, 1.0)
        return s._replace(X_test=(ds.X[te] - ds.X[te].mean(0)) / x_std,
                          y_test=(ds.y[te] - ds.y[te].mean()) / ds.y[te].std())

    monkeypatch.setattr(uci_splits, "standardized_split", standardized_split)


def _leak_test_rows(ds):
    """The test rows replace the first training rows (the fit rows, not the validation tail)."""
    return ds._replace(train_index=tuple(np.concatenate([te, tr[len(te):]])
                                         for tr, te in zip(ds.train_index, ds.test_index,
                                                              strict=True)))


def _inject(bug, monkeypatch, ds):
    """Apply ``bug``; returns the data set to run on."""
    if bug == "tau_as_variance":  # the precision tau used as a variance, loss and predictive
        _wrap_train(monkeypatch, lambda h, n, m: h._replace(tau=1.0 / h.tau))
        _wrap_evaluate(monkeypatch, hp_fn=lambda h, s: h._replace(tau=1.0 / h.tau))
    elif bug == "tau_original_units":  # tau not converted to standardised units (tau y_std^2)
        _wrap_evaluate(monkeypatch, hp_fn=lambda h, s: h._replace(tau=h.tau / s ** 2))
    elif bug == "variance_as_precision":  # BBB: the learned noise variance used as precision
        _wrap_evaluate(monkeypatch, params_fn=lambda p: p._replace(
            log_noise_std=-p.log_noise_std))
    elif bug == "not_unstandardised":  # metrics left in standardised units
        _wrap_evaluate(monkeypatch, y_std_fn=jnp.ones_like)
    elif bug == "test_rows_own_stats":
        _test_rows_own_stats(monkeypatch)
    elif bug == "leak_test_rows":
        ds = _leak_test_rows(ds)
    else:
        raise AssertionError(bug)
    return ds


# ---------------------------------------------------------------------------------------------
# MC dropout on boston


@pytest.fixture(scope="module")
def dropout_nominal(boston):
    # Module fixtures set up before conftest's strict-promotion fixture, which is part of jit's
    # cache key: use the same mode as the tests so the bug runs reuse these programs.
    with (jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"),
          pytest.MonkeyPatch.context() as mp):
        mp.setattr(uci, "train_grid", _MEMO.wrap(uci.train_grid, record=True))
        return _dropout_run(boston)


def test_dropout_boston_reduced_protocol(dropout_nominal, boston):
    r = dropout_nominal
    assert r.settings["n_epochs"] == 10 * boston.n_epochs == 400
    assert r.settings["n_val"] == r.settings["n_test"] == 51
    assert _violations(r, _DROPOUT_BOUNDS) == {}, _split_means(r)


# reused: how many of the run's two train_grid calls (grid stage, refit) have the nominal run's
# inputs bit for bit, so that the memo answers them (_TrainMemo)
@pytest.mark.parametrize("bug, expected, reused", [
    ("tau_as_variance", {"ll": "low"}, 0),
    ("tau_original_units", {"ll": "low"}, 2),
    ("not_unstandardised", {"rmse": "low", "ll": "high"}, 2),
    ("test_rows_own_stats", {"rmse": "high"}, 2),
    ("leak_test_rows", {"rmse": "low"}, 0),
])
def test_dropout_bug_leaves_bounds(bug, expected, reused, dropout_nominal, boston, monkeypatch):
    sizes, hits = _cache_sizes(), _MEMO.hits
    monkeypatch.setattr(uci, "train_grid", _MEMO.wrap(uci.train_grid, record=False))
    r = _dropout_run(_inject(bug, monkeypatch, boston))
    assert _MEMO.hits - hits == reused
    assert _cache_sizes() == sizes  # the nominal run's programs, no recompile
    # the expected side of each listed bound is crossed (others may be crossed as well)
    assert expected.items() <= _violations(r, _DROPOUT_BOUNDS).items(), _split_means(r)


# ---------------------------------------------------------------------------------------------
# Bayes by Backprop on yacht

# With a one-point grid run_protocol's grid stage selects nothing, and its second train_grid
# compile (fit rows) costs another ~12-20 s CPU for BBB, over this file's budget. So the BBB
# check runs the protocol's refit-and-test stage alone, through the same public calls
# run_protocol makes (stack_splits, method.standardize, train_grid on the full training rows
# with the balanced batch, evaluate on the test rows); the whole run_protocol path for BBB stays
# in the slow tests/test_bnn_bbb.py::test_uci_protocol_smoke_yacht.
BBB_PRIOR_SCALE = 1.0  # the KL-multiplier injection below relies on the nominal scale being 1


def _bbb_run(ds, key=0, optimizer=BBB_OPT):
    method = bbb_uci.bbb_method(prior_scales=(BBB_PRIOR_SCALE,))
    data = uci.stack_splits(ds, N_SPLITS)
    S, N = data.y_train.shape
    grid = method.grid(ds)  # (1,) leaves
    hp = jax.vmap(lambda s: jax.vmap(lambda h: method.standardize(h, s))(grid))(data.y_std)
    fit_key, test_key = jax.random.split(jax.random.key(key))
    params, _ = uci.train_grid(jax.random.split(fit_key, (S, 1)), method, data.X_train,
                               data.y_train, hp, optimizer=optimizer, n_hidden=ds.n_hidden,
                               batch_size=uci.balanced_batch_size(N, 128),
                               n_epochs=10 * ds.n_epochs, on_epoch=None)
    rmse, ll = uci.evaluate(jax.random.split(test_key, S), method,
                            jax.tree.map(lambda a: a[:, 0], params), data.X_test, data.y_test,
                            jax.tree.map(lambda a: a[:, 0], hp), data.y_std,
                            n_samples=N_SAMPLES)
    return _TestScores(np.asarray(rmse, np.float64), np.asarray(ll, np.float64))


# BBB (learned noise, prior scale 1), yacht, splits 0-1, 400 epochs, Adam(1e-2), key(0). Measured
# over keys 0-7: split-mean RMSE 0.951..1.250, LL -1.968..-1.804 (target std ~15; the 20-split
# protocol at 10x epochs gives 1.34 / -1.94 in benchmarks/RESULTS.md). Bounds: the range widened
# by ~0.15 each side. Injected bugs (keys 0-2): the learned noise variance used as a precision LL
# -5.63..-5.69; predictions not un-standardised RMSE 0.07..0.08 / LL 0.80..0.82; test rows
# standardised with their own statistics RMSE 2.76..3.24 / LL -2.29..-2.45; the KL term (see
# the KL-scaling test below) dropped RMSE 0.54..0.64 / LL -0.76..-0.98, not divided by N RMSE
# 16.5..21.2, divided by the batch size M instead of N RMSE 4.28..5.69, times N instead of
# divided by N RMSE 16.3..18.5. Not caught: the test rows leaked into training (RMSE 0.73..1.10,
# LL -1.83..-1.92: the KL-regularised net does not memorise them in 400 epochs).
_BBB_BOUNDS = {"rmse": (0.80, 1.50), "ll": (-2.10, -1.65)}


@pytest.fixture(scope="module")
def bbb_nominal(yacht):
    with (jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"),
          pytest.MonkeyPatch.context() as mp):
        mp.setattr(uci, "train_grid", _MEMO.wrap(uci.train_grid, record=True))
        return _bbb_run(yacht)


def test_bbb_yacht_reduced_protocol(bbb_nominal):
    assert _violations(bbb_nominal, _BBB_BOUNDS) == {}, _split_means(bbb_nominal)


# none of these bugs changes training's inputs: the memo answers the one train_grid call
@pytest.mark.parametrize("bug, expected", [
    ("variance_as_precision", {"ll": "low"}),
    ("not_unstandardised", {"rmse": "low", "ll": "high"}),
    ("test_rows_own_stats", {"rmse": "high", "ll": "low"}),
])
def test_bbb_bug_leaves_bounds(bug, expected, bbb_nominal, yacht, monkeypatch):
    sizes, hits = _cache_sizes(), _MEMO.hits
    monkeypatch.setattr(uci, "train_grid", _MEMO.wrap(uci.train_grid, record=False))
    r = _bbb_run(_inject(bug, monkeypatch, yacht))
    assert _MEMO.hits - hits == 1
    assert _cache_sizes() == sizes
    assert expected.items() <= _violations(r, _BBB_BOUNDS).items(), _split_means(r)


# Its own train_grid compile: ~9 s CPU, reused by the five factors (~0.3 s each).
@pytest.mark.parametrize("factor, expected", [
    pytest.param(lambda n, m: 1.0, None, id="nominal"),
    pytest.param(lambda n, m: 0.0, {"rmse": "low", "ll": "high"}, id="kl_dropped"),
    pytest.param(lambda n, m: float(n), {"rmse": "high", "ll": "low"},
                 id="kl_not_divided_by_n"),
    pytest.param(lambda n, m: n / m, {"rmse": "high", "ll": "low"}, id="kl_divided_by_batch"),
    pytest.param(lambda n, m: float(n) ** 2, {"rmse": "high", "ll": "low"}, id="kl_times_n"),
])
def test_bbb_kl_scaling_bug_leaves_bounds(factor, expected, bbb_nominal, yacht, monkeypatch):
    """The library's loss computes ``KL / N``; the KL is replaced by ``factor(N, M) * KL`` at
    prior scale 1 (the factor travels in the traced prior-scale slot, so one compile serves
    every factor; its own optimizer object keeps this program out of the nominal cache)."""
    real_kl = bbb.gaussian_kl_tree
    monkeypatch.setattr(bbb, "gaussian_kl_tree", lambda v, s: real_kl(v, BBB_PRIOR_SCALE) * s)
    _wrap_train(monkeypatch, lambda h, n, m: h._replace(
        prior_scale=jnp.full_like(h.prior_scale, factor(n, m))))
    r = _bbb_run(yacht, optimizer=KL_TEST_OPT)
    if expected is None:  # the injection itself is faithful: factor 1 is the library's loss
        assert _violations(r, _BBB_BOUNDS) == {}, _split_means(r)
        np.testing.assert_allclose(r.rmse, bbb_nominal.rmse, rtol=1e-2)
    else:
        assert expected.items() <= _violations(r, _BBB_BOUNDS).items(), _split_means(r)
