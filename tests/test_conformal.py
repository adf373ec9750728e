"""Conformal prediction against MAPIE 1.6 (a test-only dependency) on the same predictions, in
float64, plus the finite-sample quantile, jit/vmap use and the input checks.

MAPIE gets our predictions through frozen scikit-learn estimators: the inputs are row indices
and ``predict``/``predict_proba`` look the stored predictions up. Conventions compared:

- split conformal, absolute score: MAPIE ``SplitConformalRegressor(conformity_score=
  "absolute")``; its quantile is ``np.quantile(s, ceil((n + 1)(1 - alpha)) / n,
  method="lower")``, the same ``k``-th smallest score as ours. Equal at every ``n``.
- normalised score: MAPIE ``StdConformityScore`` (estimator ``predict(X, return_std=True)``).
  Its upper bound uses rank ``ceil((n + 1)(1 - alpha))`` like ours, its lower bound rank
  ``n + 1 - ceil((n + 1) alpha)``: the two agree when ``(n + 1) alpha`` is an integer (and
  float rounding of ``alpha = 1 - confidence_level`` does not push it up, as it does at
  ``n = 59, alpha = 0.05``); the lower bound is compared where MAPIE's rank equals ours.
- CQR: ``ConformalizedQuantileRegressor(prefit=True)`` with
  ``symmetric_correction=True`` (Romano et al.'s single score, our default) and ``False``.
- LAC: ``conformity_score="lac"``.
- APS randomised: ``conformity_score="aps"``, ``random_state=s``,
  ``include_last_label="randomized"``; MAPIE draws its uniforms from a fresh
  ``RandomState(s)`` for the calibration scores and again for the test sets, which we pass as
  ``u_cal``/``u_test``.
- APS deterministic: MAPIE 1.6 always randomises the calibration score, so the reference is
  its ``APSConformityScore`` with the calibration score ``E(x, y_true)`` undrawn (a subclass
  overriding only ``get_conformity_scores``) and ``include_last_label=True``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espresso_jax import conformal as cf

mapie = pytest.importorskip("mapie")
from mapie.classification import SplitConformalClassifier  # noqa: E402
from mapie.conformity_scores import StdConformityScore  # noqa: E402
from mapie.conformity_scores.sets.aps import APSConformityScore  # noqa: E402
from mapie.regression import (  # noqa: E402
    ConformalizedQuantileRegressor,
    SplitConformalRegressor,
)
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TOL = 1e-6  # the tolerance; the differences measured are 0 to 4.4e-16 (float64)


class FrozenRegressor(RegressorMixin, BaseEstimator):
    """Returns ``values[i]`` (and ``std[i]`` with ``return_std``) for input row ``[i]``."""

    def __init__(self, values=None, std=None):
        self.values = values
        self.std = std

    def fit(self, X, y):
        return self

    def predict(self, X, return_std=False):
        i = np.asarray(X)[:, 0].astype(int)
        return (self.values[i], self.std[i]) if return_std else self.values[i]

    def __sklearn_is_fitted__(self):
        return True


class FrozenClassifier(ClassifierMixin, BaseEstimator):
    """Returns ``probs[i]`` for input row ``[i]``."""

    def __init__(self, probs=None):
        self.probs = probs

    def fit(self, X, y):
        return self

    def predict_proba(self, X):
        return self.probs[np.asarray(X)[:, 0].astype(int)]

    def predict(self, X):
        return self.predict_proba(X).argmax(1)

    def __sklearn_is_fitted__(self):
        return True

    @property
    def classes_(self):
        return np.arange(self.probs.shape[1])


class UnrandomizedAPS(APSConformityScore):
    """MAPIE's APS with the calibration score ``E(x, y_true)`` (no uniform subtracted)."""

    def get_conformity_scores(self, y, y_pred, y_enc=None, **kwargs):
        scores, self.cutoff = self.get_true_label_cumsum_proba(y, y_pred, self.classes)
        return scores


def _rows(n_cal, n_test):
    return np.arange(n_cal)[:, None], np.arange(n_cal, n_cal + n_test)[:, None]


def _regression(seed, n):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n) * 2.0
    mu = y + rng.normal(size=n) * np.exp(rng.normal(size=n) * 0.4)
    sd = np.exp(rng.normal(size=n) * 0.3)
    lo, hi = mu - 1.5 + 0.2 * rng.normal(size=n), mu + 1.5 + 0.2 * rng.normal(size=n)
    return y, mu, sd, lo, hi


def _classification(seed, n, n_classes=6):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(n_classes, 0.6), size=n)
    labels = np.array([rng.choice(n_classes, p=p) for p in probs])
    return probs, labels


def _interval(mapie_out):
    return mapie_out[1][:, 0, 0], mapie_out[1][:, 1, 0]


# alpha and n such that (n + 1)(1 - alpha) is and is not an integer
CASES = [(0.1, 137), (0.1, 99), (0.05, 59), (0.2, 301), (0.3, 40)]


@pytest.mark.parametrize(("alpha", "n_cal"), CASES)
def test_split_conformal_matches_mapie(x64, alpha, n_cal):
    n_test = 45
    y, mu, sd, _, _ = _regression(n_cal, n_cal + n_test)
    Xc, Xt = _rows(n_cal, n_test)
    ref = SplitConformalRegressor(FrozenRegressor(mu), confidence_level=1 - alpha,
                                  prefit=True).conformalize(Xc, y[:n_cal])
    lo, hi = _interval(ref.predict_interval(Xt))
    ours = cf.split_conformal(y[:n_cal], mu[:n_cal], mu[n_cal:], alpha)
    np.testing.assert_allclose(ours.lower, lo, rtol=0, atol=TOL)
    np.testing.assert_allclose(ours.upper, hi, rtol=0, atol=TOL)

    ref = SplitConformalRegressor(FrozenRegressor(mu, sd), confidence_level=1 - alpha,
                                  conformity_score=StdConformityScore(),
                                  prefit=True).conformalize(Xc, y[:n_cal])
    lo, hi = _interval(ref.predict_interval(Xt))
    ours = cf.split_conformal(y[:n_cal], mu[:n_cal], mu[n_cal:], alpha,
                              std_cal=sd[:n_cal], std_test=sd[n_cal:])
    np.testing.assert_allclose(ours.upper, hi, rtol=0, atol=TOL)
    alpha_mapie = 1 - (1 - alpha)  # MAPIE takes confidence_level and forms alpha again
    if n_cal + 1 - np.ceil(alpha_mapie * (n_cal + 1)) == cf.conformal_rank(n_cal, alpha):
        np.testing.assert_allclose(ours.lower, lo, rtol=0, atol=TOL)
    # the bounds are mean -/+ q std with one q, so they are symmetric about the mean
    np.testing.assert_allclose(ours.upper - mu[n_cal:], mu[n_cal:] - ours.lower, rtol=1e-12)


@pytest.mark.parametrize(("alpha", "n_cal"), CASES)
@pytest.mark.parametrize("symmetric", [True, False])
def test_cqr_matches_mapie(x64, alpha, n_cal, symmetric):
    n_test = 45
    y, mu, _, lo_q, hi_q = _regression(n_cal + 1, n_cal + n_test)
    Xc, Xt = _rows(n_cal, n_test)
    ref = ConformalizedQuantileRegressor(
        [FrozenRegressor(lo_q), FrozenRegressor(hi_q), FrozenRegressor(mu)],
        confidence_level=1 - alpha, prefit=True).conformalize(Xc, y[:n_cal])
    lo, hi = _interval(ref.predict_interval(Xt, symmetric_correction=symmetric))
    ours = cf.cqr(y[:n_cal], lo_q[:n_cal], hi_q[:n_cal], lo_q[n_cal:], hi_q[n_cal:], alpha,
                  symmetric=symmetric)
    np.testing.assert_allclose(ours.lower, lo, rtol=0, atol=TOL)
    np.testing.assert_allclose(ours.upper, hi, rtol=0, atol=TOL)


@pytest.mark.parametrize(("alpha", "n_cal"), CASES)
@pytest.mark.parametrize("score", ["lac", "aps", "aps_randomized"])
def test_classification_sets_match_mapie(x64, alpha, n_cal, score):
    n_test, seed = 60, 7
    probs, labels = _classification(n_cal, n_cal + n_test)
    Xc, Xt = _rows(n_cal, n_test)
    pc, yc, pt = probs[:n_cal], labels[:n_cal], probs[n_cal:]
    if score == "lac":
        ours = cf.lac(pc, yc, pt, alpha)
        conformity, last = "lac", True
    elif score == "aps":
        ours = cf.aps(pc, yc, pt, alpha)
        conformity, last = UnrandomizedAPS(), True
    else:
        ours = cf.aps(pc, yc, pt, alpha, u_cal=np.random.RandomState(seed).uniform(size=n_cal),
                      u_test=np.random.RandomState(seed).uniform(size=n_test))
        conformity, last = "aps", "randomized"
    ref = SplitConformalClassifier(FrozenClassifier(probs), confidence_level=1 - alpha,
                                   conformity_score=conformity, prefit=True,
                                   random_state=seed).conformalize(Xc, yc)
    _, sets = ref.predict_set(Xt, conformity_score_params={"include_last_label": last})
    np.testing.assert_array_equal(np.asarray(ours.sets), sets[:, :, 0])
    # the sets are neither all empty nor all full, so the comparison has content
    sizes = np.asarray(ours.sets).sum(1)
    assert 0 < sizes.mean() < probs.shape[1]
    if score == "aps":
        assert sizes.min() >= 1  # deterministic APS never returns an empty set


def test_conformal_quantile_is_the_kth_order_statistic():
    scores = np.array([5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 7.0, 8.0, 6.0])  # n = 9: 1..9 shuffled
    # alpha = 0.25: k = ceil(10 * 0.75) = 8 -> the 8th smallest, 8.0; np "lower" at k / n too
    assert float(cf.conformal_quantile(scores, 0.25)) == 8.0
    assert float(np.quantile(scores, 8 / 9, method="lower")) == 8.0
    assert cf.conformal_rank(9, 0.25) == 8 and cf.conformal_rank(9, 0.1) == 9
    # alpha = 0.05: k = ceil(9.5) = 10 > 9: no finite threshold
    with pytest.raises(ValueError, match="scores has 9 calibration points.*at least 19"):
        cf.conformal_quantile(scores, 0.05)
    assert float(cf.conformal_quantile(scores, 0.05, allow_infinite=True)) == np.inf
    assert cf.coverage_distribution(9, 0.25) == (8, 2)


def test_too_few_calibration_points_give_infinite_intervals_and_full_sets():
    y, mu, _, lo, hi = _regression(0, 12)
    with pytest.raises(ValueError, match="y_cal has 9 calibration points"):
        cf.split_conformal(y[:9], mu[:9], mu[9:], 0.05)
    iv = cf.split_conformal(y[:9], mu[:9], mu[9:], 0.05, allow_infinite=True)
    assert np.all(np.asarray(iv.lower) == -np.inf) and np.all(np.asarray(iv.upper) == np.inf)
    with pytest.raises(ValueError, match="y_cal has 9"):
        cf.cqr(y[:9], lo[:9], hi[:9], lo[9:], hi[9:], 0.15, symmetric=False)  # k at 0.075
    probs, labels = _classification(0, 12)
    with pytest.raises(ValueError, match="labels_cal has 9"):
        cf.lac(probs[:9], labels[:9], probs[9:], 0.05)
    full = cf.aps(probs[:9], labels[:9], probs[9:], 0.05, allow_infinite=True)
    assert np.asarray(full.sets).all()


def test_coverage_on_exchangeable_synthetic_data():
    """Marginal coverage over 200 calibration/test draws (vmapped) against its Beta law."""
    from scipy import stats

    n_cal, n_test, reps, alpha = 50, 50, 200, 0.1
    key = jax.random.key(0)
    x = jax.random.normal(key, (reps, n_cal + n_test))
    y = x + jax.random.normal(jax.random.key(1), x.shape) * (0.5 + jnp.abs(x))
    mu, sd = x, 0.5 + jnp.abs(x)

    def one(y, mu, sd):
        iv = cf.split_conformal(y[:n_cal], mu[:n_cal], mu[n_cal:], alpha,
                                std_cal=sd[:n_cal], std_test=sd[n_cal:])
        return cf.interval_coverage(y[n_cal:], iv)

    cov = np.asarray(jax.jit(jax.vmap(one))(y, mu, sd))
    a, b = cf.coverage_distribution(n_cal, alpha)  # Beta(46, 5): mean 0.902
    # mean of 200 independent BetaBinomial(50, 46, 5) / 50 draws: sd 0.047 / sqrt(200)
    dist = stats.betabinom(n_test, a, b)
    sd_mean = dist.std() / n_test / np.sqrt(reps)  # 0.0041
    # Measured over key pairs (2s, 2s + 1), s = 0..9: (mean - 46/51) / sd_mean = -1.32 (these
    # keys), -0.09, -0.21, 0.23, 0.47, 0.44, -1.05, -0.06, 0.56, 0.56. A rank one too low
    # (k - 1) moves the mean by -1/51 = -4.7 sd_mean, one too high by +4.7: the 4-sd bound
    # catches both.
    assert abs(cov.mean() - a / (a + b)) < 4 * sd_mean, (cov.mean(), sd_mean)


def test_vmap_and_jit_over_calibration_sets():
    y, mu, _, lo, hi = _regression(3, 60)
    Y, M = np.stack([y, y[::-1]]), np.stack([mu, mu[::-1]])

    def f(y, mu):
        return cf.split_conformal(y[:40], mu[:40], mu[40:], 0.2).upper

    batched = jax.vmap(f)(Y, M)
    one = cf.split_conformal(Y[1, :40], M[1, :40], M[1, 40:], 0.2).upper
    np.testing.assert_allclose(batched[1], one, rtol=1e-6)
    jitted = jax.jit(lambda p, lab, q: cf.lac(p, lab, q, 0.2).sets)
    probs, labels = _classification(1, 60)
    np.testing.assert_array_equal(jitted(probs[:40], labels[:40], probs[40:]),
                                  cf.lac(probs[:40], labels[:40], probs[40:], 0.2).sets)


def test_aps_randomized_uses_the_key():
    probs, labels = _classification(2, 300)
    args = (probs[:200], labels[:200], probs[200:], 0.1)
    a = cf.aps_randomized(jax.random.key(0), *args)
    b = cf.aps_randomized(jax.random.key(0), *args)
    c = cf.aps_randomized(jax.random.key(1), *args)
    np.testing.assert_array_equal(a.sets, b.sets)
    assert not np.array_equal(np.asarray(a.sets), np.asarray(c.sets))


def test_from_predictive_with_bayesian_linear_regression():
    from espresso_jax.linear import bayes

    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(300), rng.normal(size=(300, 2))])
    y = X @ np.array([0.5, 1.0, -2.0]) + 0.3 * rng.normal(size=300)
    fit = bayes.fit_evidence(X[:100], y[:100])
    pc, pt = bayes.predict(fit.params, X[100:200]), bayes.predict(fit.params, X[200:])
    iv = cf.from_predictive(y[100:200], pc, pt, 0.1)
    ref = cf.split_conformal(y[100:200], pc.mean, pt.mean, 0.1, std_cal=jnp.sqrt(pc.var),
                             std_test=jnp.sqrt(pt.var))
    np.testing.assert_allclose(iv.upper, ref.upper, rtol=1e-6)
    plain = cf.from_predictive(y[100:200], pc.mean, pt.mean, 0.1, normalized=False)
    assert float(plain.quantile[0]) > 0
    with pytest.raises(TypeError, match="pred_cal has no var"):
        cf.from_predictive(y[100:200], pc.mean, pt.mean, 0.1)


# --------------------------------------------------------------------------- bad input

def _bad_cases():
    y, mu, sd, lo, hi = _regression(5, 40)
    probs, labels = _classification(5, 40)
    yc, mc, mt = y[:30], mu[:30], mu[30:]
    pc, lc, pt = probs[:30], labels[:30], probs[30:]
    nan = mc.copy()
    nan[3] = np.nan
    return [
        (lambda: cf.split_conformal(yc, mc, mt, 0.0), ValueError, "alpha"),
        (lambda: cf.split_conformal(yc, mc, mt, 1.0), ValueError, "alpha"),
        (lambda: cf.split_conformal(yc, mc, mt, 1.5), ValueError, "alpha"),
        (lambda: cf.split_conformal(yc, mc[:-1], mt, 0.1), ValueError, "y_cal and mean_cal"),
        (lambda: cf.split_conformal(yc, nan, mt, 0.1), ValueError, "mean_cal contains NaN"),
        (lambda: cf.split_conformal(yc, mc, mt * np.inf, 0.1), ValueError, "mean_test"),
        (lambda: cf.split_conformal(yc, mc, mt, 0.1, std_cal=sd[:30]), ValueError, "std_test"),
        (lambda: cf.split_conformal(yc, mc, mt, 0.1, std_cal=-sd[:30], std_test=sd[30:]),
         ValueError, "std_cal"),
        (lambda: cf.split_conformal(yc, mc, mt, 0.1, std_cal=sd[:30], std_test=sd[31:]),
         ValueError, "mean_test and std_test"),
        (lambda: cf.split_conformal(yc[:, None], mc, mt, 0.1), ValueError, "y_cal must be 1-D"),
        (lambda: cf.cqr(yc, lo[:30], hi[:29], lo[30:], hi[30:], 0.1), ValueError, "upper_cal"),
        (lambda: cf.cqr(yc, lo[:30], hi[:30], lo[30:], hi[31:], 0.1), ValueError, "upper_test"),
        (lambda: cf.lac(pc, lc, pt, -0.1), ValueError, "alpha"),
        (lambda: cf.lac(pc * 1.1, lc, pt, 0.1), ValueError, "probs_cal rows must sum to 1"),
        (lambda: cf.lac(pc, lc, np.log(pt), 0.1), ValueError, "probs_test"),
        (lambda: cf.lac(pc, lc[:-1], pt, 0.1), ValueError, "labels_cal and probs_cal"),
        (lambda: cf.lac(pc, lc + 6, pt, 0.1), ValueError, "labels_cal"),
        (lambda: cf.lac(pc, lc, pt[:, :5] / pt[:, :5].sum(1, keepdims=True), 0.1), ValueError,
         "probs_test has 5"),
        (lambda: cf.aps(pc, lc, pt, 0.1, u_cal=np.zeros(30)), ValueError, "u_test"),
        (lambda: cf.aps(pc, lc, pt, 0.1, u_cal=np.full(30, 2.0), u_test=np.zeros(10)),
         ValueError, "u_cal must lie"),
        (lambda: cf.aps_randomized(0, pc, lc, pt, 0.1), TypeError, "key"),
        (lambda: cf.split_conformal(yc, mc, mt, "0.1"), TypeError, "alpha"),
    ]


@pytest.mark.parametrize("case", range(22))
def test_bad_input_names_the_argument(case):
    fn, error, text = _bad_cases()[case]
    with pytest.raises(error, match=text):
        fn()


def test_bad_case_count_is_current():
    assert len(_bad_cases()) == 22


# examples/conformal_uci.py runs, and its four interval lines are checked, in
# tests/test_examples.py (with the other fast examples, in one child process).
