"""k-means: Lloyd iterations vs scikit-learn's KMeans from the same centres, k-means++ seeding
vs scikit-learn's kmeans_plusplus (statistically), weights, restarts, monotonicity, bad input."""

import warnings

import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.cluster import kmeans_plusplus as sk_kmeans_plusplus

from espresso_jax.mixture import kmeans

_COMPILES = [0]


def _count_compiles(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compiles)


def _blobs(seed=0, n_per=80, centres=((0, 0, 0), (4, 4, 0), (0, 5, 5), (6, 0, 3)), scale=1.0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, scale, (n_per, len(c))) for c in centres])


def _inertia(X, C, w=None):
    d2 = ((X[:, None, :] - C[None, :, :]) ** 2).sum(-1).min(1)
    return float(d2 @ (np.ones(len(X)) if w is None else w))


# (precision, chunk_size): each configuration is one compile, so the table is kept short.
@pytest.mark.parametrize("precision, chunk_size", [("float64", None), ("float64", 64),
                                                   ("float32", None)])
def test_lloyd_matches_sklearn_from_same_centres(precision, chunk_size):
    X = _blobs()
    w = np.random.default_rng(1).uniform(0.2, 3.0, len(X))   # weights exercise the general path
    c0 = X[[0, 100, 170, 250, 10]]
    sk = KMeans(5, init=c0, n_init=1, algorithm="lloyd", tol=0.0, max_iter=300).fit(
        X, sample_weight=w)
    with jax.enable_x64(precision == "float64"):
        res = kmeans.fit(jax.random.key(0), X, 5, init=c0, tol=0.0, max_iter=60,
                         sample_weight=w, chunk_size=chunk_size)
        labels = kmeans.predict(res.params, X)
        dists = kmeans.transform(res.params, X)
    # float64: same arithmetic up to summation order -> 1e-6 (brief); float32: ~1e-7 relative
    # rounding per operation accumulated over the iterations -> 1e-4.
    rtol = 1e-6 if precision == "float64" else 1e-4
    np.testing.assert_allclose(res.params.centres, sk.cluster_centers_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(float(res.inertia), sk.inertia_, rtol=rtol)
    assert res.params.centres.dtype == jnp.dtype(precision)
    np.testing.assert_array_equal(labels, sk.predict(X))
    np.testing.assert_allclose(dists, sk.transform(X),
                               rtol=rtol, atol=10 * rtol)


def _eight_blobs():
    return _blobs(seed=5, n_per=60, centres=[(i, (i * 7) % 5, (i * 3) % 4) for i in range(8)],
                  scale=0.8)


def test_tolerance_stops_early_and_history_is_inertia(x64):
    X = _eight_blobs()     # configuration shared with test_inertia_never_increases[float64]
    res = kmeans.fit(jax.random.key(1), X, 8, init="random", n_init=3, tol=1e-4, max_iter=40)
    n = int(res.n_iter)
    assert bool(res.converged) and n < 40
    assert np.all(np.isnan(res.history[n:]))
    # history[n-1] is the inertia of the centres entering the last iteration; once converged
    # the returned centres have (up to tol) the same inertia.
    np.testing.assert_allclose(res.history[n - 1], res.inertia, rtol=1e-4)
    np.testing.assert_allclose(float(res.inertia), _inertia(X, np.asarray(res.params.centres)),
                               rtol=1e-10)


@pytest.mark.parametrize("both_precisions, init",
                         [("float32", "kmeans++"), ("float64", "random")],
                         indirect=["both_precisions"])
def test_inertia_never_increases(both_precisions, init):
    X = _eight_blobs()
    res = kmeans.fit(jax.random.key(2), X, 8, init=init, n_init=3, tol=0.0, max_iter=40)
    h = np.asarray(res.history)
    # Lloyd never increases the inertia; allow float rounding of the sum (1e-6 relative f32).
    slack = 1e-5 if both_precisions == "float32" else 1e-10
    assert np.all(np.diff(h) <= slack * h[0])
    assert float(res.inertia) <= h[-1] * (1 + slack)


def test_kmeanspp_init_quality_comparable_to_sklearn(x64):
    """E[inertia of the seeding] over 40 seeds: ours vs scikit-learn's greedy k-means++.
    Both are the same randomised algorithm, so the means agree within the Monte-Carlo error:
    the difference must be within 6 standard errors of the difference of two means."""
    X = _blobs(seed=7, n_per=40, centres=[(3 * i, (5 * i) % 7, (2 * i) % 3) for i in range(10)],
               scale=0.7)
    n_seeds = 40
    keys = jax.random.split(jax.random.key(3), n_seeds)
    ours = np.array([_inertia(X, np.asarray(c)) for c in
                     jax.vmap(lambda k: kmeans.kmeans_plusplus(k, X, 10))(keys)])
    theirs = np.array([_inertia(X, sk_kmeans_plusplus(X, 10, random_state=s)[0])
                       for s in range(n_seeds)])
    se = np.sqrt(ours.var(ddof=1) / n_seeds + theirs.var(ddof=1) / n_seeds)
    assert abs(ours.mean() - theirs.mean()) < 6 * se + 1e-9
    # and seeding is far better than uniform random rows on this 10-blob problem
    assert ours.mean() < 0.6 * np.mean(
        [_inertia(X, X[np.random.default_rng(s).choice(len(X), 10, replace=False)])
         for s in range(n_seeds)])


def test_kmeanspp_respects_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    w = np.where(np.arange(30) % 3 == 0, 1.0 + np.arange(30) % 4, 0.0)   # 10 rows, weights 1-4
    keys = jax.random.split(jax.random.key(4), 3000)
    cs = np.asarray(jax.vmap(lambda k: kmeans.kmeans_plusplus(k, X, 4, sample_weight=w))(keys))
    idx = np.argmin(((cs[..., None, :] - X[None, None]) ** 2).sum(-1), axis=-1)   # (keys, K)
    # Zero-weight rows are never chosen, at any step.
    assert np.all(w[idx] > 0)
    # The first centre is drawn with probability w / Σw: multinomial frequencies within
    # 6 standard errors sqrt(p(1-p)/n).
    freq = np.bincount(idx[:, 0], minlength=30) / len(keys)
    p = w / w.sum()
    assert np.all(np.abs(freq - p) <= 6 * np.sqrt(p * (1 - p) / len(keys)))


def test_integer_weights_equal_repeated_rows(x64):
    X = _blobs(seed=2)
    counts = np.random.default_rng(3).integers(0, 4, len(X))
    c0 = X[[1, 90, 180, 300]]
    a = kmeans.fit(jax.random.key(0), X, 4, init=c0, sample_weight=counts, tol=0.0,
                   max_iter=30, chunk_size=50)
    b = kmeans.fit(jax.random.key(0), np.repeat(X, counts, axis=0), 4, init=c0, tol=0.0,
                   max_iter=30)
    np.testing.assert_allclose(a.params.centres, b.params.centres, rtol=1e-10)
    np.testing.assert_allclose(a.inertia, b.inertia, rtol=1e-10)


def test_restarts_are_vmapped_and_the_best_is_returned(x64):
    # No cluster structure: many optima (the four restarts end at four different inertias).
    # Shapes, K and max_iter of the float64 sklearn test: the single runs reuse its program.
    X = np.random.default_rng(11).uniform(size=(320, 3))
    key, n_init = jax.random.key(5), 4
    best = kmeans.fit(key, X, 5, n_init=n_init, tol=0.0, max_iter=60)
    singles = [kmeans.fit(key, X, 5, init=kmeans.kmeans_plusplus(k, X, 5), tol=0.0,
                          max_iter=60) for k in jax.random.split(key, n_init)]
    inertias = np.array([float(s.inertia) for s in singles])
    assert inertias.max() > inertias.min() * (1 + 1e-6)     # the restarts really differ
    np.testing.assert_allclose(float(best.inertia), inertias.min(), rtol=1e-10)
    best_single = singles[int(np.argmin(inertias))]
    np.testing.assert_allclose(best.params.centres, best_single.params.centres,
                               rtol=1e-10)


def test_empty_cluster_keeps_its_centre_and_no_nan():
    # Shapes, K and max_iter of the float32 sklearn test, then of the recompile test below:
    # both fits reuse compiled programs.
    X = _blobs(seed=1)
    far = np.array([100.0, 100.0, 100.0])
    c0 = np.stack([X[0], X[85], X[165], X[250], far])      # one row of each blob, and far
    res = kmeans.fit(jax.random.key(0), X, 5, init=c0, max_iter=60)
    np.testing.assert_allclose(res.params.centres[4], far, rtol=1e-6)
    assert np.all(np.isfinite(res.params.centres)) and np.isfinite(float(res.inertia))
    # more clusters than distinct points: duplicated seeds, empty clusters, still finite
    Xd = X[np.arange(len(X)) % 3]                            # 3 distinct rows, K = 4
    res = kmeans.fit(jax.random.key(1), Xd, 4, n_init=2, max_iter=50)
    assert np.all(np.isfinite(res.params.centres)) and float(res.inertia) < 1e-6


def test_far_from_origin_float32_matches_float64():
    """Data offset by 1e4 (|x| / σ ~ 1e4): centring inside the fit keeps float32 accurate."""
    X = _blobs(seed=4) + 1e4
    c0 = X[[0, 100, 170, 250, 10]]     # shapes and max_iter as the sklearn test: no new compile
    w = np.ones(len(X))
    r32 = kmeans.fit(jax.random.key(0), X, 5, init=c0, tol=0.0, max_iter=60, sample_weight=w)
    with jax.enable_x64(True):
        r64 = kmeans.fit(jax.random.key(0), X, 5, init=c0, tol=0.0, max_iter=60,
                         sample_weight=w)
        labels64 = np.asarray(kmeans.predict(r64.params, X))
    np.testing.assert_array_equal(kmeans.predict(r32.params, X), labels64)
    # centres ~1e4 in float32 carry ~1e-3 absolute rounding; inertia ~1e3 to 1e-4 relative.
    np.testing.assert_allclose(r32.params.centres, r64.params.centres, atol=5e-3)
    np.testing.assert_allclose(float(r32.inertia), float(r64.inertia), rtol=1e-4)


def test_second_fit_does_not_recompile():
    X = _blobs(seed=0).astype(np.float32)
    X2, w = X + 1.0, np.ones(len(X), np.float32)
    kmeans.fit(jax.random.key(0), X, 4, n_init=2, tol=1e-3, max_iter=50)
    before = _COMPILES[0]
    kmeans.fit(jax.random.key(1), X2, 4, n_init=2, tol=1e-5, max_iter=50, sample_weight=w)
    assert _COMPILES[0] == before


def test_composable_with_user_jit_and_jit_matches_no_jit():
    X = jnp.asarray(_blobs(seed=6), jnp.float32)
    key = jax.random.key(0)
    # same configuration as the recompile test above, so the eager fit is already compiled
    jitted = jax.jit(lambda X: kmeans.fit(key, X, 4, n_init=2, max_iter=50).params.centres)(X)
    eager = kmeans.fit(key, X, 4, n_init=2, max_iter=50).params.centres
    # Both restarts reach the same optimum with the clusters in a different order, and the
    # argmin between their (equal up to rounding) inertias may differ: compare as sets.
    def order(c):
        return np.asarray(c)[np.lexsort(np.asarray(c).T)]

    np.testing.assert_allclose(order(jitted), order(eager), rtol=1e-5, atol=1e-5)
    with jax.disable_jit():
        labels = kmeans.predict(kmeans.KMeansParams(eager), X[:50])
    np.testing.assert_array_equal(labels, kmeans.predict(kmeans.KMeansParams(eager), X[:50]))


def test_explicit_init_with_n_init_warns_and_runs_once():
    X = _blobs(seed=0, n_per=10)
    with pytest.warns(UserWarning, match="single run"):
        kmeans.fit(jax.random.key(0), X, 2, init=X[:2], n_init=3, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kmeans.fit(jax.random.key(0), X, 2, init=X[:2], max_iter=5)


_X = np.random.default_rng(0).normal(size=(20, 2))


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"X": np.where(np.eye(20, 2) > 0, np.nan, _X)}, ValueError, "X contains NaN"),
    ({"X": np.where(np.eye(20, 2) > 0, np.inf, _X)}, ValueError, "X contains inf"),
    ({"X": _X[:, 0]}, ValueError, "X must be 2-D"),
    ({"X": "abc"}, TypeError, "X must be an array"),
    ({"n_clusters": 21}, ValueError, "n_clusters=21 must be <= n_samples=20"),
    ({"n_clusters": 0}, ValueError, "n_clusters must be >= 1"),
    ({"n_clusters": 2.0}, TypeError, "n_clusters must be an int"),
    ({"init": "kmeans"}, ValueError, "init must be one of"),
    ({"init": np.zeros((3, 2))}, ValueError, "init must have shape"),
    ({"init": np.full((2, 2), np.nan)}, ValueError, "init contains NaN"),
    ({"sample_weight": -np.ones(20)}, ValueError, "sample_weight must be non-negative"),
    ({"sample_weight": np.ones(19)}, ValueError, "sample_weight must have one entry"),
    ({"n_init": 0}, ValueError, "n_init must be >= 1"),
    ({"max_iter": 0}, ValueError, "max_iter must be >= 1"),
    ({"tol": -1.0}, ValueError, "tol must be >= 0"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be >= 1"),
    ({"key": 0}, TypeError, "key must be a JAX PRNG key"),
])
def test_bad_input(kwargs, exc, match):
    args = {"key": jax.random.key(0), "X": _X, "n_clusters": 2} | kwargs
    key, X, k = args.pop("key"), args.pop("X"), args.pop("n_clusters")
    with pytest.raises(exc, match=match):
        kmeans.fit(key, X, k, **args)


def test_bad_input_seeding_and_prediction():
    with pytest.raises(ValueError, match="n_clusters=21"):
        kmeans.kmeans_plusplus(jax.random.key(0), _X, 21)
    with pytest.raises(ValueError, match="sample_weight must have a positive sum"):
        kmeans.kmeans_plusplus(jax.random.key(0), _X, 2, sample_weight=np.zeros(20))
    with pytest.raises(ValueError, match="X has 3 features but centres have 2"):
        kmeans.predict(kmeans.KMeansParams(_X[:2]), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="params.centres must be 2-D"):
        kmeans.transform(kmeans.KMeansParams(_X[0]), _X)
