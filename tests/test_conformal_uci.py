"""Empirical coverage of the conformal intervals on the UCI regression sets over their 20
standard splits, with Bayesian linear regression (evidence maximisation, closed form per
split) as the predictive. Skipped when the UCI data are absent (README, "Data").

Per split: the standard training rows are shuffled (``default_rng(split)``), the first 75% fit
the model and the last 25% (``n_cal`` rows) calibrate; the split's test rows are scored.
Training, calibration and test rows are then exchangeable, and for continuous scores the
number of covered test points is ``BetaBinomial(n_test, k, n_cal + 1 - k)``,
``k = ceil((n_cal + 1)(1 - alpha))`` (the coverage given the calibration set is
``Beta(k, n_cal + 1 - k)``, Vovk 2012). The finite-sample slack is that law's tail: every
split's count must lie within its ``delta / m`` and ``1 - delta / m`` quantiles, ``m`` the
number of such checks in the test and ``delta = 1e-3`` (a union bound, valid whatever the
dependence between splits). The upper check catches conservative bugs (an infinite or doubled
interval), the lower one anti-conservative ones (a score on the training rows, a rank off by
several). The mean coverage over splits is printed as a record.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from espresso_jax import conformal as cf
from espresso_jax.datasets import load_uci
from espresso_jax.datasets.uci import default_data_dir, standardized_split
from espresso_jax.linear import bayes

ALPHA = 0.1
DELTA = 1e-3
METHODS = ("absolute", "normalised", "cqr")
# all nine sets, 2-4 s of CPU each (closed-form fits; one compile per set's shapes)
NAMES = ("bostonHousing", "concrete", "energy", "kin8nm", "naval-propulsion-plant",
         "power-plant", "protein-tertiary-structure", "wine-quality-red", "yacht")
# an upper bound on the number of per-split checks (protein has 5 splits, the others 20), so
# the union bound holds with room to spare
N_CHECKS = 20 * len(METHODS) * len(NAMES)


def _have_data() -> bool:
    root = default_data_dir()
    return root is not None and (root / "uci" / "yacht").is_dir()


needs_data = pytest.mark.skipif(not _have_data(), reason="UCI data not found (README, Data)")
Z = float(stats.norm.ppf(1 - ALPHA / 2))


def _split_coverage(ds, i: int) -> dict[str, tuple[int, int, int]]:
    """``{method: (covered, n_test, n_cal)}`` for split ``i``."""
    s = standardized_split(ds, i)
    rows = np.random.default_rng(i).permutation(len(s.y_train))
    n_fit = int(0.75 * len(rows))
    fit_rows, cal_rows = rows[:n_fit], rows[n_fit:]

    def design(X):
        return np.column_stack([np.ones(len(X)), X])

    Xf, Xc, Xt = design(s.X_train[fit_rows]), design(s.X_train[cal_rows]), design(s.X_test)
    y_cal, y_test = s.y_train[cal_rows], s.y_test
    params = bayes.fit_evidence(Xf, s.y_train[fit_rows]).params
    pc, pt = bayes.predict(params, Xc), bayes.predict(params, Xt)
    sc, st = np.sqrt(np.asarray(pc.var)), np.sqrt(np.asarray(pt.var))
    intervals = {
        "absolute": cf.from_predictive(y_cal, pc, pt, ALPHA, normalized=False),
        "normalised": cf.from_predictive(y_cal, pc, pt, ALPHA),
        # CQR on the Gaussian predictive's alpha/2 and 1 - alpha/2 quantiles
        "cqr": cf.cqr(y_cal, pc.mean - Z * sc, pc.mean + Z * sc, pt.mean - Z * st,
                      pt.mean + Z * st, ALPHA),
    }
    out = {}
    for name, iv in intervals.items():
        covered = int(np.sum((y_test >= np.asarray(iv.lower)) & (y_test <= np.asarray(iv.upper))))
        out[name] = (covered, len(y_test), len(y_cal))
    return out


def _check(name: str) -> dict[str, float]:
    ds = load_uci(name)
    per_split = [_split_coverage(ds, i) for i in range(ds.n_splits)]
    assert len(per_split) == (5 if name == "protein-tertiary-structure" else 20)
    means = {}
    for method in METHODS:
        counts = np.array([r[method][0] for r in per_split])
        n_test, n_cal = per_split[0][method][1], per_split[0][method][2]
        a, b = cf.coverage_distribution(n_cal, ALPHA)
        law = stats.betabinom(n_test, a, b)
        low, high = law.ppf(DELTA / N_CHECKS), law.ppf(1 - DELTA / N_CHECKS)
        assert counts.min() >= low, (name, method, counts.min(), low, n_test)
        assert counts.max() <= high, (name, method, counts.max(), high, n_test)
        means[method] = float(counts.mean() / n_test)
    print(name, {k: round(v, 4) for k, v in means.items()})
    return means


# Measured (alpha = 0.1; mean coverage over the standard splits, absolute / normalised / CQR):
# boston 0.918/0.919/0.918, concrete 0.895/0.895/0.895, energy 0.890/0.890/0.890,
# yacht 0.915/0.915/0.915, wine 0.890/0.891/0.891. Below 0.9 on three sets is the spread of
# 20 overlapping test sets: over 200 fresh random 90/10 splits instead (absolute score) the
# means are wine 0.8978 (s.e. 0.0020; Beta mean k/(n+1) = 0.9003), energy 0.9009 (0.0030;
# 0.9023), concrete 0.8996 (0.0024; 0.9013), all within 1.3 s.e. of the Beta law.
@needs_data
@pytest.mark.parametrize("name", NAMES)
def test_uci_coverage(name):
    _check(name)
