"""The fast Bayes-by-Backprop step (issue 14) computes the same estimator as before.

* ``prob.threefry_normal.standard_normal`` gives ``jax.random.normal``'s numbers bit for bit
  (the reference is JAX itself). The Bayesian layers draw with ``exact=False``: the same
  uniforms through a cheaper erf^-1, within float32 rounding of these numbers
  (``tests/test_bbb_fast_normal.py``).
* ``bnn.bbb_sample.sample_gaussian_closed`` (sample + closed-form KL with a hand-written
  backward pass) equals automatic differentiation of ``mu + softplus(rho) eps`` and
  ``bbb.weight_kl(..., "closed")`` to float rounding, pruned weights (``rho = PRUNED_RHO``) and
  the ``rho < -20`` branch of ``log sigma`` included.
* A Bayesian layer on the fused path (Gaussian prior) draws the same weight sample as on the
  automatic path (mixture prior, MC KL) for the same key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espresso_jax.bnn import bbb, bbb_sample
from espresso_jax.prob import threefry_normal

SHAPES = [(0,), (1,), (7,), (3, 5), (2, 3, 4)]


def _keys():
    """A typed key, a raw uint32 key and a derived one (a list: a dict would come back from jit
    with its keys sorted)."""
    return [jax.random.key(11), jax.random.PRNGKey(12),
            jax.random.fold_in(jax.random.key(1), 3)]


@pytest.mark.parametrize("materialize", [False, True])
def test_standard_normal_is_jax_random_normal_bit_for_bit(materialize):
    @jax.jit
    def draws(keys):
        return [[threefry_normal.standard_normal(k, s, jnp.float32, materialize=materialize)
                 for s in SHAPES] for k in keys]

    ours = draws(_keys())
    for got_row, key in zip(ours, _keys(), strict=True):
        for got, shape in zip(got_row, SHAPES, strict=True):
            ref = jax.random.normal(key, shape, jnp.float32)
            assert got.shape == ref.shape and got.dtype == ref.dtype
            np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))
    # under vmap (the UCI protocol trains vmapped networks) and for an odd size
    keys = jax.random.split(jax.random.key(0), 3)
    got = jax.jit(jax.vmap(lambda k: threefry_normal.standard_normal(
        k, (1001,), materialize=materialize)))(keys)
    ref = jax.vmap(lambda k: jax.random.normal(k, (1001,)))(keys)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))


def test_standard_normal_float64_bit_for_bit(x64):
    key = jax.random.key(4)
    got = jax.jit(lambda k: threefry_normal.standard_normal(k, (5, 9)))(key)
    assert got.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(got), np.asarray(jax.random.normal(key, (5, 9))))


def test_other_key_kinds_fall_back_to_jax():
    key = jax.random.key(3, impl="rbg")
    assert not threefry_normal.is_fused(key, (4,))
    assert threefry_normal.is_fused(jax.random.key(3), (4,))
    assert not threefry_normal.is_fused(jax.random.key(3), (4,), jnp.float16)
    np.testing.assert_array_equal(threefry_normal.standard_normal(key, (4,)),
                                  jax.random.normal(key, (4,)))


def _autodiff_reference(mu, rho, eps, scale):
    sigma, _ = bbb.posterior_std(rho)
    return mu + sigma * eps, bbb.weight_kl(bbb.GaussianPrior(scale), mu, rho, eps, "closed")


def _values_and_grads(fn, mu, rho, eps, scale, g_w, g_kl):
    """(w, kl) and the gradient of <g_w, w> + g_kl kl with respect to (mu, rho)."""
    def scalar(mu, rho):
        w, kl = fn(mu, rho, eps, scale)
        return jnp.sum(g_w * w) + g_kl * kl, (w, kl)
    (_, (w, kl)), grads = jax.value_and_grad(scalar, argnums=(0, 1), has_aux=True)(mu, rho)
    return w, kl, grads


def test_fused_sample_and_kl_match_autodiff(both_precisions):
    dtype = jnp.dtype(both_precisions)
    k = jax.random.split(jax.random.key(0), 3)
    rho = jnp.concatenate([jnp.linspace(-6.0, 3.0, 40, dtype=dtype),
                           jnp.array([-25.0, -21.0, -19.0, bbb.PRUNED_RHO], dtype)])
    mu = jax.random.normal(k[0], rho.shape, dtype)
    eps = jax.random.normal(k[1], rho.shape, dtype)
    g_w = jax.random.normal(k[2], rho.shape, dtype)
    for scale in (1.0, 0.3):
        got = jax.jit(lambda *a, s=scale: _values_and_grads(
            bbb_sample.sample_gaussian_closed, a[0], a[1], a[2], s, a[3], 0.7))(mu, rho, eps, g_w)
        ref = jax.jit(lambda *a, s=scale: _values_and_grads(
            _autodiff_reference, a[0], a[1], a[2], s, a[3], 0.7))(mu, rho, eps, g_w)
        # float32: the two formulas round in a different order (relative 1e-6 per element,
        # a sum of 44 KL terms); float64: 1e-12 leaves room for the same reordering.
        rtol = 1e-12 if both_precisions == "float64" else 2e-5
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
            assert a.dtype == b.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
        assert np.all(np.isfinite(np.asarray(got[2][1])))


def test_layer_draws_the_same_sample_on_the_fused_path():
    """Same key, same posterior: the Gaussian-prior layer (fused sample and closed KL) and the
    mixture-prior layer (automatic path, MC KL) give the same outputs and the same gradient
    of a data term with respect to mu."""
    x = jax.random.normal(jax.random.key(0), (4, 3))
    fused = bbb.BayesDense(5, sigma_init=0.3)
    plain = bbb.BayesDense(5, sigma_init=0.3, prior=bbb.scale_mixture_prior(0.5, 1.0, 0.1))
    net = bbb.init(jax.random.key(1), fused, x)

    @jax.jit
    def outputs_and_grads(net, key):
        def data_term(net, module):
            return jnp.sum(jnp.sin(bbb.apply(key, module, net, x)[0]))
        return [(bbb.apply(key, m, net, x)[0], jax.grad(data_term)(net, m)) for m in (fused, plain)]

    (y1, g1), (y2, g2) = outputs_and_grads(net, jax.random.key(2))
    np.testing.assert_allclose(y1, y2, rtol=1e-6, atol=1e-6)
    for name in ("kernel_mu", "bias_mu", "kernel_rho"):
        np.testing.assert_allclose(g1["params"][name], g2["params"][name], rtol=1e-5, atol=1e-6)
