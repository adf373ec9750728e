"""Host-side validation: every failure names the argument; tracers pass through."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espresso_jax import validation as v


@pytest.mark.parametrize(
    "value, kwargs, err, match",
    [
        (None, {}, TypeError, "X must be an array"),
        ("abc", {}, TypeError, "X must be an array"),
        (np.array(["a", "b"]), {}, TypeError, "X must have a real numeric dtype"),
        (np.array([1 + 2j]), {}, TypeError, "real numeric dtype"),
        ([[1.0, 2.0], [3.0]], {}, TypeError, "X must be an array of numbers"),
        (np.ones(3), {"ndim": 2, "shape_hint": "(n, d)"}, ValueError,
         r"X must be 2-D \(n, d\), got shape \(3,\)"),
        (np.ones((2, 2)), {"ndim": (1, 3)}, ValueError, "1-D or 3-D"),
        (np.array([1.0, np.nan]), {}, ValueError, "X contains NaN"),
        (np.array([1.0, np.inf]), {}, ValueError, "X contains inf"),
        (np.array([1.0, np.inf]), {"allow_nan": True}, ValueError, "X contains inf"),
        (np.zeros((0, 3)), {}, ValueError, "X is empty"),
    ],
)
def test_as_float_array_rejects(value, kwargs, err, match):
    with pytest.raises(err, match=match):
        v.as_float_array(value, "X", **kwargs)


def test_as_float_array_casts_to_working_dtype(both_precisions):
    out = v.as_float_array([[1, 2], [3, 4]], "X", ndim=2)
    assert isinstance(out, jax.Array)
    assert out.dtype == np.dtype(both_precisions)
    nan_ok = v.as_float_array([1.0, np.nan], "X", allow_nan=True)
    assert np.isnan(np.asarray(nan_ok)[1])


def test_tracers_are_checked_for_rank_only():
    def f(x):
        return v.as_float_array(x, "x", ndim=1).sum()

    assert float(jax.jit(f)(jnp.arange(3.0))) == 3.0
    assert jax.vmap(f)(jnp.ones((4, 3))).shape == (4,)
    with pytest.raises(ValueError, match="x must be 1-D"):
        jax.jit(f)(jnp.ones((2, 2)))


def test_concrete_arrays_inside_a_user_jit_are_still_checked():
    bad = np.array([1.0, np.nan])

    @jax.jit
    def f(y):
        return v.as_float_array(bad, "x").sum() + y

    with pytest.raises(ValueError, match="x contains NaN"):
        f(1.0)
    good = np.array([1.0, 2.0])
    assert float(jax.jit(lambda y: v.as_float_array(good, "x").sum() + y)(1.0)) == 4.0


def test_as_int_array():
    np.testing.assert_array_equal(v.as_int_array([0.0, 2.0], "y"), [0, 2])
    with pytest.raises(TypeError, match="y must hold integers"):
        v.as_int_array([0.5], "y")
    with pytest.raises(ValueError, match="y must be <= 1"):
        v.as_int_array([0, 2], "y", max_value=1)
    with pytest.raises(ValueError, match="y must be >= 0"):
        v.as_int_array([-1, 0], "y", min_value=0)
    with pytest.raises(ValueError, match="y contains NaN"):
        v.as_int_array([np.nan], "y")


def test_check_same_length():
    assert v.check_same_length(X=np.ones((3, 2)), y=np.ones(3)) == 3
    with pytest.raises(ValueError,
                       match="^X and y must have the same number of rows: X has 3, y has 2"):
        v.check_same_length(X=np.ones((3, 2)), y=np.ones(2))


@pytest.mark.parametrize(
    "fn, value, err, match",
    [
        (lambda x: v.check_positive(x, "alpha"), 0.0, ValueError, "alpha must be > 0"),
        (lambda x: v.check_positive(x, "alpha"), float("nan"), ValueError, "alpha must be finite"),
        (lambda x: v.check_positive(x, "alpha"), [1.0], TypeError, "alpha must be a real scalar"),
        (lambda x: v.check_positive(x, "alpha", allow_zero=True), -1.0, ValueError, ">= 0"),
        (lambda x: v.check_int(x, "n"), 2.0, TypeError, "n must be an int"),
        (lambda x: v.check_int(x, "n"), True, TypeError, "n must be an int"),
        (lambda x: v.check_int(x, "n", min_value=1), 0, ValueError, "n must be >= 1"),
        (lambda x: v.check_probability(x, "p"), 1.5, ValueError, r"p must lie in \[0, 1\]"),
        (lambda x: v.check_probability(x, "p", open_interval=True), 0.0, ValueError, r"\(0, 1\)"),
        (lambda x: v.check_choice(x, "kind", ("a", "b")), "c", ValueError, "kind must be one of"),
        (lambda x: v.check_key(x), None, TypeError, "key must be a JAX PRNG key"),
        (lambda x: v.check_key(x), 3, TypeError, r"use jax.random.key\(3\)"),
        (lambda x: v.check_key(x), np.ones(2), TypeError, "key must be a JAX PRNG key"),
    ],
)
def test_scalar_checks(fn, value, err, match):
    with pytest.raises(err, match=match):
        fn(value)


def test_check_key_accepts_both_key_kinds_and_rejects_batches():
    v.check_key(jax.random.key(0))
    v.check_key(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="single key"):
        v.check_key(jax.random.split(jax.random.key(0), 3))


def test_as_positive_array():
    np.testing.assert_allclose(v.as_positive_array([1.0, 2.0], "alpha"), [1.0, 2.0])
    with pytest.raises(ValueError, match="alpha must be > 0, got 0"):
        v.as_positive_array([1.0, 0.0], "alpha")
    with pytest.raises(ValueError, match="alpha must be >= 0, got -1"):
        v.as_positive_array(-1.0, "alpha", allow_zero=True)
    with pytest.raises(ValueError, match="alpha must be 0-D"):
        v.as_positive_array([1.0], "alpha", ndim=0)
    # Traced values pass through (their sign is unknown on the host): grad works.
    grad = jax.grad(lambda a: v.as_positive_array(a, "alpha", ndim=0) ** 2)(3.0)
    assert float(grad) == 6.0
