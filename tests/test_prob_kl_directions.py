"""KL(q||p) against KL(p||q) for a Gaussian q fitted to a Gaussian mixture p
(espresso_jax.prob.kl_directions).

References: moment matching for KL(p||q) (the exact mixture moments, checked to 1e-5 with the
exact-expectation objective, and within the MC error with the sampled one); mode seeking for
KL(q||p) on a well-separated bimodal target (Bishop, PRML Fig. 10.3); the MC losses against
numpyro's closed-form Gaussian KL.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from espresso_jax.interop import standard_promotion
from espresso_jax.prob import info
from espresso_jax.prob import kl_directions as kd

# Two components 6 std apart: the density between them is ~e^-18 of a peak.
BIMODAL = dict(weights=[0.5, 0.5], means=[[-3.0], [3.0]], stds=[[0.5], [0.5]])
SKEWED_2D = dict(weights=[0.3, 0.7], means=[[-2.0, 1.0], [2.0, -1.0]],
                 stds=[[0.5, 0.8], [1.0, 0.3]])


def _numpy_moments(weights, means, stds):
    w, mu, s = (np.asarray(a, np.float64) for a in (weights, means, stds))
    mean = w @ mu
    second = np.einsum("k,kd,ke->de", w, mu, mu) + np.diag(w @ s ** 2)
    return mean, second - np.outer(mean, mean)


@pytest.mark.parametrize("spec", [BIMODAL, SKEWED_2D])
def test_mixture_moments_match_numpy_and_samples(spec):
    p = kd.gaussian_mixture(**spec)
    mean, cov = kd.mixture_moments(p)
    ref_mean, ref_cov = _numpy_moments(**spec)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-6)
    np.testing.assert_allclose(cov, ref_cov, atol=1e-5)
    # Independent check of the formula through the sampler: 2e5 draws, MC error of the
    # variance below 0.03 for these targets; 0.1 is > 3 standard errors.
    with standard_promotion():  # numpyro's mixture sampler broadcasts by rank promotion
        x = np.asarray(p.sample(jax.random.key(0), (200_000,)), np.float64)
    np.testing.assert_allclose(np.cov(x.T).reshape(cov.shape), ref_cov, atol=0.1)


@pytest.mark.parametrize("spec", [BIMODAL, SKEWED_2D])
def test_exact_forward_fit_is_moment_matching(spec):
    p = kd.gaussian_mixture(**spec)
    d = len(spec["means"][0])
    fit = kd.fit_forward_kl(jax.random.key(0), p, np.full(d, 0.5), exact=True, n_steps=2000)
    mean, cov = _numpy_moments(**spec)
    # The exact objective is minimised by the moments themselves; float32 Adam reaches them
    # to ~3e-7 relative (measured); 1e-5 as the brief asks.
    np.testing.assert_allclose(fit.mean, mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fit.std ** 2, np.diag(cov), rtol=1e-5)


def test_sampled_forward_fit_within_mc_error():
    p = kd.gaussian_mixture(**BIMODAL)
    n = 4096
    mean, cov = _numpy_moments(**BIMODAL)
    var = cov[0, 0]
    # Standard errors of the sample mean and of the (biased) sample variance, from the exact
    # 4th central moment of the mixture: E(x-0)^4 = sum_k w_k (mu^4 + 6 mu^2 s^2 + 3 s^4).
    m4 = 81.0 + 6 * 9.0 * 0.25 + 3 * 0.0625
    se_mean, se_var = math.sqrt(var / n), math.sqrt((m4 - var ** 2) / n)
    for seed in range(3):
        fit = kd.fit_forward_kl(jax.random.key(seed), p, [1.0], n_samples=n, n_steps=1500)
        assert abs(float(fit.mean[0]) - mean[0]) < 4 * se_mean
        assert abs(float(fit.std[0]) ** 2 - var) < 4 * se_var
        # Mass covering: q spreads over both modes, std ~3.04, far wider than a component.
        assert float(fit.std[0]) > 2.5


@pytest.mark.parametrize("start", [-1.0, 1.0])
def test_reverse_fit_seeks_one_mode(start):
    p = kd.gaussian_mixture(**BIMODAL)
    target = 3.0 * np.sign(start)
    for seed in range(3):
        fit = kd.fit_reverse_kl(jax.random.key(seed), p, [start], n_steps=1000)
        # Measured over seeds 0-2 and starts +-1: |mean - mode| <= 0.030, std in
        # [0.488, 0.536] (Adam's constant step leaves this much noise); bounds ~3x that.
        assert abs(float(fit.mean[0]) - target) < 0.1
        assert 0.4 < float(fit.std[0]) < 0.62
        # On one mode KL(q||p) = log 2 + KL(q || component) -> log 2 (mean of last 100 steps
        # measured 0.691-0.706).
        assert abs(float(jnp.mean(fit.loss[-100:])) - math.log(2.0)) < 0.05


def test_reverse_fit_2d_lands_on_a_component():
    p = kd.gaussian_mixture(**SKEWED_2D)
    fit = kd.fit_reverse_kl(jax.random.key(0), p, [1.5, -0.5], n_steps=1500)
    np.testing.assert_allclose(fit.mean, [2.0, -1.0], atol=0.15)
    np.testing.assert_allclose(fit.std, [1.0, 0.3], rtol=0.15)


def test_mc_losses_match_closed_form_gaussian_kl():
    p = dist.Normal(jnp.array([0.3, -1.0]), jnp.array([1.5, 0.7])).to_event(1)
    params = (jnp.array([1.0, 0.0]), jnp.log(jnp.array([0.8, 1.2])))
    q = kd.diag_gaussian(params)
    n = 20_000
    rev_exact, fwd_exact = info.kl_divergence(q, p), info.kl_divergence(p, q)
    rev, rev_se = info.kl_mc(jax.random.key(1), q, p, n)
    fwd, fwd_se = info.kl_mc(jax.random.key(2), p, q, n)
    assert abs(float(kd.reverse_kl_loss(params, p, jax.random.key(1), n)) - rev_exact) \
        < 4 * float(rev_se)
    assert abs(float(kd.forward_kl_loss(params, p, jax.random.key(2), n)) - fwd_exact) \
        < 4 * float(fwd_se)
    assert float(rev_exact) != pytest.approx(float(fwd_exact), abs=0.05)  # KL is asymmetric


def test_exact_forward_loss_is_cross_entropy():
    # -E_p[log q] for a one-component "mixture" equals H(p) + KL(p||q) in closed form.
    p_mix = kd.gaussian_mixture([1.0], [[0.3, -1.0]], [[1.5, 0.7]])
    p = dist.Normal(jnp.array([0.3, -1.0]), jnp.array([1.5, 0.7])).to_event(1)
    params = (jnp.array([1.0, 0.0]), jnp.log(jnp.array([0.8, 1.2])))
    ref = info.entropy(p) + info.kl_divergence(p, kd.diag_gaussian(params))
    np.testing.assert_allclose(kd.forward_kl_exact_loss(params, p_mix), ref, rtol=1e-5)


def test_bad_inputs_raise():
    p = kd.gaussian_mixture(**BIMODAL)
    with pytest.raises(ValueError, match="weights"):
        kd.gaussian_mixture([0.5, 0.6], [[0.0], [1.0]], [[1.0], [1.0]])
    with pytest.raises(ValueError, match="stds"):
        kd.gaussian_mixture([0.5, 0.5], [[0.0], [1.0]], [[1.0], [-1.0]])
    with pytest.raises(ValueError, match="means"):
        kd.gaussian_mixture([0.5, 0.5], [0.0, 1.0], [[1.0], [1.0]])
    with pytest.raises(ValueError, match="init_mean"):
        kd.fit_reverse_kl(jax.random.key(0), p, [0.0, 1.0])
    with pytest.raises(ValueError, match="init_log_std"):
        kd.fit_forward_kl(jax.random.key(0), p, [0.0], init_log_std=[0.0, 0.0])
    with pytest.raises(ValueError, match="n_samples"):
        kd.fit_reverse_kl(jax.random.key(0), p, [0.0], n_samples=1)
    with pytest.raises(ValueError, match="n_steps"):
        kd.fit_forward_kl(jax.random.key(0), p, [0.0], n_steps=0)
    with pytest.raises(ValueError, match="learning_rate"):
        kd.fit_reverse_kl(jax.random.key(0), p, [0.0], learning_rate=-1.0)
    with pytest.raises(ValueError, match="p must have event shape"):
        kd.fit_reverse_kl(jax.random.key(0), dist.Normal(0.0, 1.0), [0.0])
    with pytest.raises(ValueError, match="exact=True"):
        kd.fit_forward_kl(jax.random.key(0), dist.Normal(jnp.zeros(1), 1.0).to_event(1),
                          [0.0], exact=True)
    with pytest.raises(TypeError, match="p must be"):
        kd.fit_reverse_kl(jax.random.key(0), "normal", [0.0])
