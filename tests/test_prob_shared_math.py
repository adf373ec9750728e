"""The shared kernels of espresso_jax.prob that the models call: Gaussian log-density, the
diagonal-Gaussian KL, weighted moments and the Cholesky-with-jitter policy."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import scipy.stats as st
from numpyro.distributions.kl import kl_divergence as numpyro_kl

from espresso_jax.prob import gaussian, info, linalg, moments


def test_gaussian_log_density_matches_scipy(x64):
    rng = np.random.default_rng(0)
    x, mu, sd = rng.normal(size=5), rng.normal(size=5), rng.uniform(0.5, 2.0, size=5)
    got = gaussian.gaussian_log_density(jnp.square((x - mu) / sd), jnp.log(sd * sd))
    np.testing.assert_allclose(got, st.norm(mu, sd).logpdf(x), rtol=1e-12)
    cov = np.array([[2.0, 0.3], [0.3, 1.0]])
    X, m = rng.normal(size=(4, 2)), np.array([0.5, -1.0])
    U = np.linalg.cholesky(np.linalg.inv(cov)[::-1, ::-1])[::-1, ::-1]     # U Uᵀ = Σ⁻¹
    maha = gaussian.precision_mahalanobis(jnp.asarray(X)[None], jnp.asarray(m)[None],
                                          jnp.asarray(U)[None])
    got = gaussian.gaussian_log_density(maha, np.linalg.slogdet(cov)[1], 2)
    np.testing.assert_allclose(got[0], st.multivariate_normal(m, cov).logpdf(X), rtol=1e-12)


def test_normal_kl_matches_numpyro(x64):
    mu, var, prior_var = jnp.asarray([0.3, -1.0]), jnp.asarray([0.5, 2.0]), 1.7
    got = info.normal_kl(mu, var, jnp.log(var), prior_var, np.log(prior_var))
    want = numpyro_kl(dist.Normal(mu, jnp.sqrt(var)), dist.Normal(0.0, np.sqrt(prior_var)))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert float(info.normal_kl(0.0, 1.0, 0.0)) == 0.0


def test_label_and_responsibility_moments_agree(x64):
    rng = np.random.default_rng(1)
    X, w = jnp.asarray(rng.normal(size=(30, 3)) + 1e3), jnp.asarray(rng.uniform(size=30))
    labels = jnp.asarray(rng.integers(0, 4, size=30))
    shift = X[:4]
    for diagonal in (False, True):
        a = moments.moment_stats(X, w, labels, shift, diagonal=diagonal)
        b = moments.moment_stats(X, w, jax.nn.one_hot(labels, 4, dtype=X.dtype), shift,
                                 diagonal=diagonal)
        jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-10), a, b)
    cm = moments.data_moments(X, w)
    mean = np.average(np.asarray(X), axis=0, weights=np.asarray(w))
    scatter = np.cov(np.asarray(X).T, aweights=np.asarray(w), bias=True) * float(jnp.sum(w))
    np.testing.assert_allclose(cm.means[0], mean, rtol=1e-12)
    np.testing.assert_allclose(cm.scatter[0], scatter, rtol=1e-8)


def test_cholesky_with_jitter_policy():
    good = jnp.array([[4.0, 2.0], [2.0, 5.0]])
    bad = jnp.array([[1.0, 2.0], [2.0, 1.0]])                              # eigenvalue −1
    L, jitter = linalg.cholesky_with_jitter(jnp.stack([good, bad]))
    assert float(jitter[0]) == 0.0 and np.isnan(jitter[1])                 # bounded at 1e-2
    np.testing.assert_array_equal(L[0], jnp.linalg.cholesky(good))
    L, jitter = linalg.cholesky_with_jitter(jnp.stack([good, bad]), float("inf"))
    assert np.all(np.isfinite(L)) and float(jitter[1]) > 1.0
    np.testing.assert_allclose(L[1] @ L[1].T, bad + jitter[1] * jnp.eye(2), rtol=1e-5)
    # derivative of the factor actually used (jitter constant) = derivative of the Cholesky
    weights = jnp.arange(4.0).reshape(2, 2)

    def f(a):
        return jnp.sum(linalg.cholesky_with_jitter(a)[0] ** 2 * weights)

    def g(a):
        return jnp.sum(jnp.linalg.cholesky(0.5 * (a + a.T)) ** 2 * weights)

    np.testing.assert_allclose(jax.grad(f)(good), jax.grad(g)(good), rtol=1e-5)
