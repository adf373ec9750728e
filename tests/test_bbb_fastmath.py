"""``bnn.bbb_fastmath`` (multiply-add ``exp``, ``softplus``, ``sigmoid``, ``log``) equals the
exact functions, computed in float64 by NumPy (the independent reference), to float32
rounding, over the range of ``rho`` that Bayes by Backprop meets (pruned weights at -1e4,
the underflow of ``exp`` near -87, the ``rho < -20`` switch, large positive values)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espresso_jax.bnn import bbb_fastmath
from espresso_jax.prob import threefry_normal


@pytest.fixture(scope="module")
def grid():
    """2e5 uniform points on [-100, 100], 2e5 on [-10, 10] and the edge cases, float32."""
    rng = np.random.default_rng(0)
    edges = [-1e4, -103.0, -87.4, -87.3, -87.0, -20.0, -1e-8, 0.0, 1e-8, 0.34, 30.0, 100.0]
    return np.concatenate([rng.uniform(-100, 100, 200_000), rng.uniform(-10, 10, 200_000),
                           edges]).astype(np.float32)


def _rel_err(got, ref):
    """Max relative error where the reference is a normal float32, max absolute elsewhere."""
    got = np.asarray(got).astype(np.float64)
    normal = ref > np.finfo(np.float32).tiny
    rel = np.max(np.abs(got - ref)[normal] / ref[normal])
    return rel, np.max(np.abs(got - ref)[~normal], initial=0.0)


@pytest.mark.parametrize("name", ["exp_nonpositive", "softplus", "sigmoid"])
def test_fast_functions_match_float64(grid, name):
    """Relative error <= 5e-7 where the value is a normal float32 (measured: exp 8.1e-8,
    softplus 2.1e-7, sigmoid 1.7e-7; XLA's own: 8.1e-8, 2.2e-7, 1.5e-7), absolute <= 2e-38
    below (underflow to 0 or a subnormal)."""
    x = np.minimum(grid, 0.0) if name == "exp_nonpositive" else grid
    xd = x.astype(np.float64)
    with np.errstate(over="ignore"):
        ref = {"exp_nonpositive": np.exp(xd), "softplus": np.logaddexp(0.0, xd),
               "sigmoid": 1.0 / (1.0 + np.exp(-xd))}[name]
    rel, tiny = _rel_err(jax.jit(getattr(bbb_fastmath, name))(x), ref)
    assert rel <= 5e-7
    assert tiny <= 2e-38


def test_log_positive_and_log1p_reduced():
    """``log_positive`` over softplus's outputs (2e-9 to 100) and ``fast_log1p_reduced`` on
    its whole interval, tiny arguments included (relative 1.5e-7; measured 8e-8)."""
    x = np.geomspace(2e-9, 100.0, 100_001).astype(np.float32)
    ref = np.log(x.astype(np.float64))
    got = np.asarray(jax.jit(bbb_fastmath.log_positive)(x)).astype(np.float64)
    far = np.abs(ref) >= 0.1     # near x = 1 the relative error is ill-conditioned: absolute
    assert np.max(np.abs(got - ref)[far] / np.abs(ref[far])) <= 1.5e-7
    assert np.max(np.abs(got - ref)[~far]) <= 1e-7
    t = np.concatenate([np.linspace(np.sqrt(0.5) - 1.0, np.sqrt(2.0) - 1.0, 100_001),
                        np.geomspace(1e-30, 1e-3, 1001)]).astype(np.float32)
    ref = np.log1p(t.astype(np.float64))
    got = np.asarray(jax.jit(threefry_normal.fast_log1p_reduced)(t)).astype(np.float64)
    nonzero = ref != 0.0
    assert np.max(np.abs(got - ref)[nonzero] / np.abs(ref[nonzero])) <= 1.5e-7


def test_other_dtypes_use_jax():
    """float64 goes to ``jax.nn``/``jnp`` unchanged (bit-equal)."""
    with jax.enable_x64(True):
        x = jnp.linspace(-30.0, 30.0, 101, dtype=jnp.float64)
        np.testing.assert_array_equal(bbb_fastmath.softplus(x), jax.nn.softplus(x))
        np.testing.assert_array_equal(bbb_fastmath.sigmoid(x), jax.nn.sigmoid(x))
        np.testing.assert_array_equal(bbb_fastmath.exp_nonpositive(-jnp.abs(x)),
                                      jnp.exp(-jnp.abs(x)))
