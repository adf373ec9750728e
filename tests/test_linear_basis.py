"""Basis functions: checked against NumPy/SciPy constructions we did not write."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import expit

from espresso_jax.linear import basis

# float32 builds the same products in single precision: 1e-5 relative covers a few roundings
# on values of order 1; float64 agrees to rounding.
RTOL = {"float32": 1e-5, "float64": 1e-12}


def _x(n=11, d=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) if d is None else (n, d)
    return rng.uniform(-1.5, 1.5, size=shape)


@pytest.mark.parametrize("degree", [0, 1, 3, 9])
def test_polynomial_matches_vandermonde(both_precisions, degree):
    x = _x()
    Phi = basis.polynomial(x, degree)
    assert Phi.shape == (x.shape[0], degree + 1)
    assert Phi.dtype == np.dtype(both_precisions)
    # numpy.vander(increasing=True): columns 1, x, ..., x^M. Negative x keeps its sign.
    np.testing.assert_allclose(Phi, np.vander(x, degree + 1, increasing=True),
                               rtol=RTOL[both_precisions], atol=1e-6)


def test_polynomial_multid_no_cross_terms(both_precisions):
    x = _x(7, 3)
    Phi = basis.polynomial(x, 2)
    expected = np.concatenate([np.ones((7, 1)), x, x**2], axis=1)   # 1, x_d, x_d^2
    np.testing.assert_allclose(Phi, expected, rtol=RTOL[both_precisions], atol=1e-6)


@pytest.mark.parametrize("d", [None, 1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_gaussian_matches_cdist(both_precisions, d, bias):
    x = _x(9, d)
    xc = x[:, None] if x.ndim == 1 else x
    centres = np.linspace(-1, 1, 4) if d is None else _x(4, d, seed=1)
    cc = centres[:, None] if centres.ndim == 1 else centres
    s = 0.7
    expected = np.exp(-cdist(xc, cc, "sqeuclidean") / (2 * s**2))
    if bias:
        expected = np.concatenate([np.ones((9, 1)), expected], axis=1)
    Phi = basis.gaussian(x, centres, s, bias=bias)
    np.testing.assert_allclose(Phi, expected, rtol=RTOL[both_precisions], atol=1e-7)


@pytest.mark.parametrize("bias", [False, True])
def test_sigmoid_matches_expit(both_precisions, bias):
    x = _x()
    centres = np.array([-1.0, 0.0, 0.5])
    s = 0.3
    expected = expit((x[:, None] - centres[None, :]) / s)
    if bias:
        expected = np.concatenate([np.ones((x.shape[0], 1)), expected], axis=1)
    np.testing.assert_allclose(basis.sigmoid(x, centres, s, bias=bias), expected,
                               rtol=RTOL[both_precisions], atol=1e-7)


@pytest.mark.parametrize("name, kwargs, fn", [
    ("polynomial", dict(degree=4), lambda x: basis.polynomial(x, 4)),
    ("gaussian", dict(centres=[0.0, 1.0], width=0.5, bias=True),
     lambda x: basis.gaussian(x, [0.0, 1.0], 0.5, bias=True)),
    ("sigmoid", dict(centres=[0.0, 1.0], width=0.5),
     lambda x: basis.sigmoid(x, [0.0, 1.0], 0.5)),
])
def test_design_matrix_dispatch(name, kwargs, fn):
    x = _x()
    np.testing.assert_array_equal(basis.design_matrix(x, name, **kwargs), fn(x))


def test_jittable_and_differentiable():
    x = jnp.asarray(_x(), dtype=jnp.float32)
    jitted = jax.jit(lambda x, s: basis.gaussian(x, jnp.array([0.0, 0.5]), s))
    np.testing.assert_allclose(jitted(x, 0.4), basis.gaussian(x, [0.0, 0.5], 0.4), rtol=1e-6)
    # d/ds exp(-r^2 / (2 s^2)) = exp(...) r^2 / s^3, checked against the closed form.
    g = jax.grad(lambda s: basis.gaussian(x, [0.0], s).sum())(0.4)
    r2 = np.asarray(x, np.float64) ** 2
    np.testing.assert_allclose(g, np.sum(np.exp(-r2 / 0.32) * r2 / 0.4**3), rtol=1e-5)
    jitted_poly = basis.polynomial(x, 3)
    with jax.disable_jit():
        np.testing.assert_allclose(basis.polynomial(x, 3), jitted_poly, rtol=1e-6)


def test_no_recompile_on_second_call():
    x = _x()
    basis.polynomial(x, 5)
    size = basis._polynomial_impl._cache_size()
    basis.polynomial(x + 1.0, 5)
    basis.gaussian(x, [0.0, 1.0], 0.3)
    size_g = basis._gaussian_impl._cache_size()
    basis.gaussian(x, [2.0, 1.0], 0.9)       # new centres and width: same trace
    assert basis._polynomial_impl._cache_size() == size
    assert basis._gaussian_impl._cache_size() == size_g


@pytest.mark.parametrize("call, err, match", [
    (lambda: basis.polynomial([0.0, np.nan], 2), ValueError, "x contains NaN"),
    (lambda: basis.polynomial([0.0, np.inf], 2), ValueError, "x contains inf"),
    (lambda: basis.polynomial(np.zeros((2, 2, 2)), 2), ValueError, "x must be"),
    (lambda: basis.polynomial("abc", 2), TypeError, "x must be"),
    (lambda: basis.polynomial([1.0 + 1j], 2), TypeError, "x must have a real"),
    (lambda: basis.polynomial([0.0, 1.0], -1), ValueError, "degree"),
    (lambda: basis.polynomial([0.0, 1.0], 2.0), TypeError, "degree"),
    (lambda: basis.polynomial([0.0, 1.0], True), TypeError, "degree"),
    (lambda: basis.gaussian([0.0, 1.0], [0.0], 0.0), ValueError, "width"),
    (lambda: basis.gaussian([0.0, 1.0], [0.0], np.nan), ValueError, "width"),
    (lambda: basis.gaussian(np.zeros((3, 2)), [0.0, 1.0], 1.0), ValueError, "centres"),
    (lambda: basis.gaussian(np.zeros((3, 2)), np.zeros((2, 3)), 1.0), ValueError, "centres"),
    (lambda: basis.gaussian([0.0], [0.0], 1.0, bias=1), TypeError, "bias"),
    (lambda: basis.sigmoid(np.zeros((3, 2)), [0.0], 1.0), ValueError, "x must be 1-D"),
    (lambda: basis.design_matrix([0.0], "fourier", degree=2), ValueError, "basis"),
    (lambda: basis.design_matrix([0.0], "polynomial"), ValueError, "degree"),
    (lambda: basis.design_matrix([0.0], "gaussian", centres=[0.0]), ValueError, "width"),
    (lambda: basis.design_matrix([0.0], "polynomial", degree=1, width=1.0), ValueError,
     "not used"),
])
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()
