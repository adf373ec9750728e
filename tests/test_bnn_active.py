"""Deep Bayesian active learning (espresso_jax.bnn.active): acquisition functions against numpy
on fixed probabilities, and the compiled loop's bookkeeping on a tiny data set (exactly k new
distinct pool points per round, never re-acquired, a balanced start, vmapped seeds equal to
separate runs). The MNIST learning curves are the slow test in test_bnn_active_mnist.py."""

import jax
import numpy as np
import pytest

from espresso_jax.bnn import active


@pytest.fixture(scope="module")
def fixed_probs():
    # T=6 passes, n=5 inputs, C=4 classes; rows 3 and 4 are built to tie / agree exactly.
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=(6, 5)).astype(np.float32)
    p[:, 3] = [0.7, 0.1, 0.1, 0.1]  # every pass says class 0: BALD 0, variation ratio 0
    p[:, 4] = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]] * 0.97 + 0.0075
    return p


def _entropy(p):
    return -np.sum(p * np.log(p), axis=-1)


def test_bald_and_entropy_match_numpy(fixed_probs):
    p = fixed_probs.astype(np.float64)
    h_mean = _entropy(p.mean(0))
    bald_ref = h_mean - _entropy(p).mean(0)
    key = jax.random.key(0)
    # float32 logs of probabilities >= 0.0075: absolute error ~1e-6; 1e-5 leaves margin.
    np.testing.assert_allclose(active.bald(key, fixed_probs), bald_ref, atol=1e-5)
    np.testing.assert_allclose(active.max_entropy(key, fixed_probs), h_mean, atol=1e-5)
    assert abs(float(active.bald(key, fixed_probs)[3])) < 1e-6


def test_variation_ratios_match_counts(fixed_probs):
    votes = fixed_probs.argmax(-1)  # (T, n)
    ref = np.array([1.0 - np.bincount(votes[:, i], minlength=4).max() / 6 for i in range(5)])
    got = active.variation_ratios(jax.random.key(0), fixed_probs)
    np.testing.assert_allclose(got, ref, atol=1e-7)
    np.testing.assert_allclose(got[3:], [0.0, 1.0 - 2 / 6], atol=1e-7)


def test_random_scores_depend_on_key_only(fixed_probs):
    a = active.random_acquisition(jax.random.key(1), fixed_probs)
    b = active.random_acquisition(jax.random.key(1), fixed_probs[::-1])
    c = active.random_acquisition(jax.random.key(2), fixed_probs)
    assert a.shape == (5,)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


N_CLASSES, N_ROUNDS, K = 3, 3, 4


@pytest.fixture(scope="module")
def tiny():
    # Three Gaussian blobs in 5-D: 60 pool points, 30 test points.
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(N_CLASSES, 5)) * 2.0
    y = np.repeat(np.arange(N_CLASSES), 30).astype(np.int32)
    X = (centres[y] + rng.normal(size=(90, 5))).astype(np.float32)
    order = rng.permutation(90)
    X, y = X[order], y[order]
    return X[:60], y[:60], X[60:], y[60:]


OPTIONS = dict(n_rounds=N_ROUNDS, n_acquire=K, n_initial_per_class=2, hidden=(16,), n_mc=5,
               n_steps=30, learning_rate=1e-2, n_candidates=40,
               acquisitions=("bald", "variation_ratios", "random"))


@pytest.fixture(scope="module")
def runs(tiny):
    X, y, Xt, yt = tiny
    key = jax.random.key(0)
    return active.run_active_learning(key, X, y, Xt, yt, n_seeds=2, **OPTIONS)


def test_loop_acquires_k_new_distinct_points(tiny, runs):
    X, y, _, _ = tiny
    res = runs
    n0 = 2 * N_CLASSES
    assert res.acquired.shape == (3, 2, n0 + N_ROUNDS * K)
    assert res.accuracy.shape == (3, 2, N_ROUNDS + 1)
    np.testing.assert_array_equal(res.n_labelled, n0 + K * np.arange(N_ROUNDS + 1))
    for acq in np.asarray(res.acquired).reshape(-1, n0 + N_ROUNDS * K):
        assert len(set(acq.tolist())) == acq.size  # never re-acquired, all distinct
        assert acq.min() >= 0 and acq.max() < X.shape[0]
        # the balanced start: n_initial_per_class of every class
        np.testing.assert_array_equal(np.bincount(y[acq[:n0]], minlength=N_CLASSES), 2)
    # Paired comparison: every acquisition function starts from the seed's initial set, and
    # different functions go on to acquire different points.
    acq = np.asarray(res.acquired)
    np.testing.assert_array_equal(acq[0, :, :n0], acq[2, :, :n0])
    assert not np.array_equal(acq[0, :, n0:], acq[2, :, n0:])
    assert np.all((res.accuracy >= 0) & (res.accuracy <= 1))


def test_vmapped_seeds_equal_separate_runs(tiny, runs):
    X, y, Xt, yt = tiny
    res = runs
    key = jax.random.key(0)
    seed_keys = jax.random.split(key, 2)
    config = active.ActiveConfig(n_rounds=N_ROUNDS, n_acquire=K, hidden=(16,),
                                 n_classes=N_CLASSES, n_mc=5, n_steps=30, learning_rate=1e-2,
                                 n_candidates=40, acquisitions=OPTIONS["acquisitions"])
    for s in range(2):
        k_init, k_loop = jax.random.split(seed_keys[s])
        initial = active.balanced_initial(k_init, y, 2, N_CLASSES)
        for a in (0, 2):
            acquired, acc = jax.jit(active.active_learning_loop, static_argnums=7)(
                k_loop, a, initial, X, y, Xt, yt, config)
            np.testing.assert_array_equal(acquired, res.acquired[a, s])
            # vmapping may reorder float reductions: accuracies agree to a few ulps.
            np.testing.assert_allclose(acc, res.accuracy[a, s], atol=1e-6)


def test_bad_inputs_raise(tiny):
    X, y, Xt, yt = tiny
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="acquisitions"):
        active.run_active_learning(key, X, y, Xt, yt, n_seeds=1, n_rounds=1, n_acquire=2,
                                   acquisitions=("bald", "margin"))
    with pytest.raises(ValueError, match="X_pool"):
        active.run_active_learning(key, X, y, Xt, yt, n_seeds=1, n_rounds=20, n_acquire=5)
    with pytest.raises(ValueError, match="y_pool"):
        active.run_active_learning(key, X, y[:10], Xt, yt, n_seeds=1, n_rounds=1, n_acquire=2)
    with pytest.raises(ValueError, match="n_acquire"):
        active.run_active_learning(key, X, y, Xt, yt, n_seeds=1, n_rounds=1, n_acquire=0)
    with pytest.raises(ValueError, match="n_candidates"):
        active.run_active_learning(key, X, y, Xt, yt, n_seeds=1, n_rounds=1, n_acquire=5,
                                   n_candidates=3)
    with pytest.raises(ValueError, match="rate"):
        active.run_active_learning(key, X, y, Xt, yt, n_seeds=1, n_rounds=1, n_acquire=2,
                                   rate=1.0)
    with pytest.raises(ValueError, match="X_test"):
        active.run_active_learning(key, X, y, Xt[:, :3], yt, n_seeds=1, n_rounds=1,
                                   n_acquire=2)
