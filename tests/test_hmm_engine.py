"""Slow checks of the HMM fits (``-m slow``): full covariances and Gaussian-mixture emissions
against hmmlearn, and the engine features that come with the additive statistics (chunked
E-steps, the associative forward–backward inside the fit, vmapped restarts, stepwise EM).

hmmlearn's ``GMMHMM`` accumulates its covariance statistics about the means of the E-step
(the OLD means: ``c_n = Σ r (x − μ_old)(x − μ_old)ᵀ``) and divides by the counts, so its
covariance update is not the maximum-likelihood one that ours (and its own ``GaussianHMM``)
makes, about the NEW means; the two differ by exactly ``(μ_new − μ_old)(μ_new − μ_old)ᵀ``
per component, and their paths diverge after the first iteration. The GMM emission is
therefore checked over ONE iteration (start, transitions, weights and means equal; covariances
equal after that rank-one correction), and over 20 iterations by its non-decreasing
log-likelihood.
"""

import warnings

import jax
import numpy as np
import pytest
from hmmlearn import hmm as hl

from espresso_jax import em, hmm

pytestmark = pytest.mark.slow

K, D = 3, 2
LENGTHS = [120, 90, 150]
START = np.full(K, 1.0 / K)
TRANS = np.full((K, K), 0.1) + 0.7 * np.eye(K)


@pytest.fixture(autouse=True, scope="module")
def _float64():
    with jax.enable_x64(True):
        yield


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(sum(LENGTHS), D))
    X[100:200] += 3.0
    X[250:300] -= 2.0
    X[::3] *= 2.0
    return X, rng


def _quiet_fit(model, X, lengths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, lengths)


def test_gaussian_full_matches_hmmlearn():
    X, rng = _data()
    means = rng.normal(size=(K, D)) * 2.0
    covs = np.tile(np.eye(D), (K, 1, 1))
    ref = hl.GaussianHMM(K, covariance_type="full", covars_prior=0.0, min_covar=0.0, n_iter=20,
                         tol=-np.inf, init_params="")
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = START, TRANS, means, covs
    _quiet_fit(ref, X, LENGTHS)
    p0 = hmm.HMMParams(START, TRANS, hmm.GaussianEmission(np.ones((K, 1)), means[:, None],
                                                          covs[:, None], covs[:, None]))
    ours = hmm.fit(jax.random.key(0), X, K, lengths=LENGTHS, covariance_type="full",
                   init_params=p0, max_iter=20, tol=0.0, reg_covar=0.0)
    e = ours.params.emission
    # measured agreement 7e-13; asserted 1e-5 (see tests/test_hmm.py)
    np.testing.assert_allclose(ours.params.trans, ref.transmat_, atol=1e-5)
    np.testing.assert_allclose(ours.params.start, ref.startprob_, atol=1e-5)
    np.testing.assert_allclose(e.means[:, 0], ref.means_, atol=1e-5)
    np.testing.assert_allclose(e.covariances[:, 0], ref.covars_, atol=1e-5)
    np.testing.assert_allclose(float(hmm.score(ours.params, X, LENGTHS)),
                               ref.score(X, LENGTHS), rtol=1e-8)
    np.testing.assert_array_equal(hmm.predict(ours.params, X, LENGTHS), ref.predict(X, LENGTHS))


@pytest.mark.parametrize("ctype", ["diag", "full"])
def test_gmm_emissions_one_iteration_match_hmmlearn_up_to_its_covariance_centring(ctype):
    X, rng = _data(1)
    m = 2
    means = rng.normal(size=(K, m, D)) * 2.0
    w = np.full((K, m), 1.0 / m)
    covs = np.ones((K, m, D)) if ctype == "diag" else np.tile(np.eye(D), (K, m, 1, 1))
    ref = hl.GMMHMM(K, m, covariance_type=ctype, n_iter=1, tol=-np.inf, init_params="")
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_, ref.weights_ = (START, TRANS, means,
                                                                            covs, w)
    _quiet_fit(ref, X, LENGTHS)
    p0 = hmm.HMMParams(START, TRANS, hmm.GaussianEmission(w, means, covs, covs))
    one = hmm.fit(jax.random.key(0), X, K, lengths=LENGTHS, covariance_type=ctype,
                  init_params=p0, max_iter=1, tol=0.0, reg_covar=0.0)
    e = one.params.emission
    # measured 1e-13 (means 2e-12)
    np.testing.assert_allclose(one.params.trans, ref.transmat_, atol=1e-5)
    np.testing.assert_allclose(e.weights, ref.weights_, atol=1e-5)
    np.testing.assert_allclose(e.means, ref.means_, atol=1e-5)
    shift = np.asarray(e.means) - means
    outer = shift[..., :, None] * shift[..., None, :]
    corrected = ref.covars_ - (outer if ctype == "full" else np.square(shift))
    np.testing.assert_allclose(e.covariances, corrected, atol=1e-5)
    # without reg_covar one full component of these data collapses (smallest covariance
    # eigenvalue 2e-8 after 20 iterations) and the path is ruled by the singularity; with
    # 1e-6 the smallest step of the objective was +1.3e-4 (diag and full)
    twenty = hmm.fit(jax.random.key(0), X, K, lengths=LENGTHS, covariance_type=ctype,
                     init_params=p0, max_iter=20, tol=0.0, reg_covar=1e-6)
    h = np.asarray(twenty.history)
    assert np.all(np.diff(h) >= -1e-12), np.diff(h).min()


def test_chunks_associative_scan_and_restarts_agree():
    X, _ = _data(2)
    base = hmm.fit(jax.random.key(3), X, K, lengths=LENGTHS, max_iter=15, tol=0.0)
    chunked = hmm.fit(jax.random.key(3), X, K, lengths=LENGTHS, max_iter=15, tol=0.0,
                      chunk_size=2)                   # 3 sequences -> 2 blocks, one padded
    assoc = hmm.fit(jax.random.key(3), X, K, lengths=LENGTHS, max_iter=15, tol=0.0,
                    method="associative")
    for other in (chunked, assoc):
        # different summation orders: float64 rounding amplified by 15 iterations, 1e-9
        for a, b in zip(jax.tree.leaves(other.params), jax.tree.leaves(base.params),
                        strict=True):
            np.testing.assert_allclose(a, b, atol=1e-9)
    restarts = hmm.fit(jax.random.key(4), X, K, lengths=LENGTHS, max_iter=15, tol=0.0,
                       n_init=4)
    singles = [hmm.fit(k, X, K, lengths=LENGTHS, max_iter=15, tol=0.0)
               for k in jax.random.split(jax.random.key(4), 4)]
    finals = [float(s.history[-1]) for s in singles]
    np.testing.assert_allclose(float(restarts.history[-1]), max(finals), rtol=1e-10)


def test_stepwise_em_improves_on_its_start():
    """The model runs unchanged under the engine's stepwise (online) EM over minibatches of
    sequences; its fit beats the initial parameters' likelihood."""
    X, _ = _data(3)
    packed = hmm.pack(X, LENGTHS)
    start = hmm.fit(jax.random.key(5), X, K, lengths=LENGTHS, max_iter=1, tol=0.0)
    state0 = hmm.model.HMMState(start.params, start.params.emission.means.reshape(K, D),
                                np.asarray(1e-6), np.ones(K), np.ones((K, K)))
    res = em.fit_stepwise_em(jax.random.key(6), hmm.model.em_model(), state0, packed.X,
                             packed.w, batch_size=1, n_epochs=10)
    assert float(hmm.score(res.params.params, X, LENGTHS)) > float(
        hmm.score(start.params, X, LENGTHS)) + 10.0
