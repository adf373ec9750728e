"""Temperature scaling (espresso_jax.metrics.temperature) against scikit-learn 1.9's
``CalibratedClassifierCV(method="temperature")`` on the same logits (a frozen classifier whose
``decision_function`` returns them), sklearn's ``log_loss`` and the NLL's own minimum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss

from espresso_jax import metrics as M


class _Logits(ClassifierMixin, BaseEstimator):
    """A classifier whose inputs are its logits: ``decision_function(X) = X`` (one column:
    a binary decision value)."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def decision_function(self, X):
        return X[:, 0] if X.shape[1] == 1 else X

    def predict(self, X):
        s = self.decision_function(X)
        return self.classes_[(s > 0).astype(int) if s.ndim == 1 else s.argmax(1)]


def _sklearn_temperature(Z, y, sample_weight=None):
    cal = CalibratedClassifierCV(FrozenEstimator(_Logits().fit(Z, y)), method="temperature")
    cal.fit(Z, y, sample_weight=sample_weight)
    return 1.0 / float(cal.calibrated_classifiers_[0].calibrators[0].beta_)


def _logits(seed, n=400, C=5, scale=3.0, signal=2.0):
    """Noisy logits with the label's logit raised by ``signal``; ``scale`` sets confidence."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    Z = rng.normal(size=(n, C)) * scale
    Z[np.arange(n), y] += signal * scale
    return Z, y


# Over-confident (T > 1) and under-confident (T < 1) logits.
CASES = [dict(seed=0, scale=3.0, signal=0.7), dict(seed=1, scale=0.3, signal=3.0)]


@pytest.mark.parametrize("case", CASES, ids=["overconfident", "underconfident"])
def test_multiclass_temperature_matches_sklearn(case, both_precisions):
    Z, y = _logits(**case)
    expected = _sklearn_temperature(Z, y)       # float64 logits
    fit = M.fit_temperature(Z, y)
    assert fit.temperature.dtype == np.dtype(both_precisions)
    assert (expected > 1.0) == (case["scale"] > 1.0)
    # measured |rel diff|: <= 1e-8 in float64 (sklearn's Brent stops there), <= 2e-7 in
    # float32; sklearn's own fit on float32 logits is off by up to 7e-5 (Brent on float32
    # NLL values), so the reference is always the float64 fit.
    np.testing.assert_allclose(float(fit.temperature), expected, rtol=1e-4)
    nll = log_loss(y, jax.nn.softmax(jnp.asarray(Z) / expected, axis=-1), labels=range(5))
    np.testing.assert_allclose(float(fit.nll_after), nll, rtol=1e-5)
    nll_1 = log_loss(y, jax.nn.softmax(jnp.asarray(Z), axis=-1), labels=range(5))
    np.testing.assert_allclose(float(fit.nll_before), nll_1, rtol=1e-5)
    assert float(fit.nll_after) < float(fit.nll_before)


def test_binary_temperature_matches_sklearn_decision_convention(x64):
    rng = np.random.default_rng(2)
    d = rng.normal(size=500) * 2.0
    y = (rng.random(500) < 1.0 / (1.0 + np.exp(-d))).astype(int)
    d = 3.0 * d                                  # over-confident decision values
    expected = _sklearn_temperature(d[:, None], y)
    # sklearn reads a 1-D decision value as the logits (-d, d) ...
    got = M.fit_temperature(np.stack([-d, d], 1), y).temperature
    np.testing.assert_allclose(float(got), expected, rtol=1e-4)
    # ... which doubles the temperature of the usual logits (0, d) (p = sigmoid(d)).
    half = M.fit_temperature(np.stack([0.0 * d, d], 1), y).temperature
    np.testing.assert_allclose(float(half), expected / 2.0, rtol=1e-4)
    # the 3x inflation is undone: over seeds 0-29, T = 2.99 +- 0.35 (range 2.21-3.81);
    # seed 2 gives 2.47. The bounds are about 4 standard deviations wide.
    assert 1.5 < float(half) < 4.5


# Expected: the frozen classifier takes no weights, so they weight the calibration only.
@pytest.mark.filterwarnings("ignore:Since FrozenEstimator does not appear to accept")
def test_sample_weight_matches_sklearn(x64):
    Z, y = _logits(3, n=300, C=4, scale=2.0, signal=1.0)
    w = np.random.default_rng(4).exponential(size=300)
    expected = _sklearn_temperature(Z, y, sample_weight=w)
    got = float(M.fit_temperature(Z, y, sample_weight=w).temperature)
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    # the weights matter: the unweighted fit differs by far more than the tolerance.
    assert abs(float(M.fit_temperature(Z, y).temperature) - expected) > 1e-3 * expected


def test_fit_is_the_minimum_and_composes_with_jit():
    Z, y = _logits(5)
    fit = M.fit_temperature(Z, y)
    t = float(fit.temperature)
    for factor in (0.999, 1.001):
        nll = M.negative_log_likelihood(y, M.apply_temperature(Z, t * factor), from_logits=True)
        assert float(nll) > float(fit.nll_after)
    jitted = jax.jit(M.fit_temperature)(jnp.asarray(Z, jnp.float32), jnp.asarray(y))
    np.testing.assert_allclose(float(jitted.temperature), t, rtol=1e-6)
    # traced inputs skip the bracket check: separable logits put T on the lower bound.
    Z_sep, y_sep = _separable()
    t_sep = jax.jit(M.fit_temperature)(jnp.asarray(Z_sep, jnp.float32), jnp.asarray(y_sep))
    np.testing.assert_allclose(float(t_sep.temperature), M.DEFAULT_T_BOUNDS[0], rtol=1e-5)


def test_apply_temperature_keeps_argmax_and_lowers_ece():
    Z, y = _logits(6, n=2000, C=10, scale=4.0, signal=0.8)
    t = M.fit_temperature(Z, y).temperature
    scaled = M.apply_temperature(Z, t)
    np.testing.assert_allclose(scaled, Z / float(t), rtol=1e-6)
    np.testing.assert_array_equal(jnp.argmax(scaled, -1), np.argmax(Z, -1))
    ece_before = float(M.expected_calibration_error(y, Z, from_logits=True))
    ece_after = float(M.expected_calibration_error(y, scaled, from_logits=True))
    # measured 0.316 -> 0.020 (seed 6); the bounds leave room on either side.
    assert ece_before > 0.2 and ece_after < 0.05
    # (T_mc, n, C) samples scale the same way.
    stacked = M.apply_temperature(np.stack([Z, Z]), t)
    np.testing.assert_array_equal(stacked[1], scaled)


def _separable():
    y = np.arange(20) % 3
    return np.eye(3)[y] * 5.0, y


def _uninformative():
    y = np.arange(20) % 3
    return -np.eye(3)[y] * 2.0, y          # the label always has the lowest logit


@pytest.mark.parametrize("call, match", [
    (lambda: M.fit_temperature(np.zeros((5, 3)) + [1.0, 2.0, 3.0], np.arange(4) % 3),
     "logits and labels must have the same number of rows: logits has 5, labels has 4"),
    (lambda: M.fit_temperature(np.full((4, 3), np.nan), np.zeros(4, int)), "logits contains NaN"),
    (lambda: M.fit_temperature(np.full((4, 3), np.inf), np.zeros(4, int)), "logits contains inf"),
    (lambda: M.fit_temperature(np.ones((4, 1)), np.zeros(4, int)), "logits needs at least 2"),
    (lambda: M.fit_temperature(np.ones(4), np.zeros(4, int)), "logits must be 2-D"),
    (lambda: M.fit_temperature(np.ones((4, 3)), [0, 1, 2, 3]), "labels must be <= 2"),
    (lambda: M.fit_temperature(np.ones((4, 3)), [0, 1, 2, 1], bounds=(2.0, 1.0)),
     "bounds must satisfy"),
    (lambda: M.fit_temperature(np.ones((4, 3)), [0, 1, 2, 1], bounds=(0.0, 1.0)),
     r"bounds\[0\] must be > 0"),
    (lambda: M.fit_temperature(np.ones((4, 3)), [0, 1, 2, 1], sample_weight=-np.ones(4)),
     "sample_weight must be non-negative"),
    (lambda: M.apply_temperature(np.ones((4, 3)), 0.0), "temperature must be > 0"),
    (lambda: M.apply_temperature(np.ones((4, 3)), [1.0, 2.0]), "temperature must be 0-D"),
])
def test_bad_input_raises_before_compiling(call, match, raises_before_compiling):
    raises_before_compiling(call, match, forbid=("_fit", "_slopes_at_bounds"))


@pytest.mark.parametrize("data, match", [
    (_separable, "logits separate labels"),
    (_uninformative, "logits carry no or the wrong information"),
    (lambda: (np.ones((6, 3)), np.arange(6) % 3), "logits are constant across classes"),
])
def test_failed_search_raises_before_the_fit(data, match, raises_before_compiling):
    # the slopes at the two bounds are computed (one small program), the search never runs.
    Z, y = data()
    raises_before_compiling(lambda: M.fit_temperature(Z, y), match, forbid=("_fit",))
