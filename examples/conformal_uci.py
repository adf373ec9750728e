"""Conformal intervals around a library predictive: Bayesian linear regression (evidence
maximisation) on one UCI regression set, split 0 of its standard splits.

The standard training rows are split 75/25 into a fitting part and a calibration part; the
model's predictive on the calibration and test rows goes to ``espresso_jax.conformal``:

    python examples/conformal_uci.py                  # yacht, alpha = 0.1
    python examples/conformal_uci.py --dataset concrete --alpha 0.05

Without the UCI data (README, "Data") it runs on a synthetic heteroscedastic set instead.
Prints test coverage and mean width (original units) of the Gaussian predictive's central
interval (no guarantee) and of the conformal intervals: absolute residual, residual
normalised by the predictive std, and CQR on the predictive's quantiles.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
from scipy import stats

from espresso_jax import conformal
from espresso_jax.datasets.uci import UCI_NAMES, load_uci, standardized_split
from espresso_jax.linear import bayes


def data(name: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """(label, X_train, y_train, X_test, y_test, y_std): standardised, split 0."""
    try:
        split = standardized_split(load_uci(name), 0)
        return (name, split.X_train, split.y_train, split.X_test, split.y_test, split.y_std)
    except FileNotFoundError:
        x = np.asarray(jax.random.uniform(jax.random.key(0), (1000, 1), minval=-2, maxval=2))
        noise = np.asarray(jax.random.normal(jax.random.key(1), (1000,)))
        y = np.sin(2 * x[:, 0]) + x[:, 0] + (0.2 + 0.3 * np.abs(x[:, 0])) * noise
        return ("synthetic (no UCI data found)", x[:900], y[:900], x[900:], y[900:], 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--dataset", default="yacht", choices=UCI_NAMES)
    parser.add_argument("--alpha", type=float, default=0.1)
    args = parser.parse_args()
    label, X, y, X_test, y_test, y_std = data(args.dataset)
    rows = np.random.default_rng(0).permutation(len(y))
    fit_rows, cal_rows = rows[: int(0.75 * len(rows))], rows[int(0.75 * len(rows)):]

    def design(A):
        return np.column_stack([np.ones(len(A)), A])

    params = bayes.fit_evidence(design(X[fit_rows]), y[fit_rows]).params
    pred_cal = bayes.predict(params, design(X[cal_rows]))
    pred_test = bayes.predict(params, design(X_test))
    y_cal, a = y[cal_rows], args.alpha
    z = float(stats.norm.ppf(1 - a / 2))
    s_cal, s_test = np.sqrt(pred_cal.var), np.sqrt(pred_test.var)
    gaussian = conformal.Interval(pred_test.mean - z * s_test, pred_test.mean + z * s_test,
                                  np.array([z, z]))
    intervals = {
        "Gaussian predictive (no guarantee)": gaussian,
        "split conformal, |y - mean|": conformal.from_predictive(y_cal, pred_cal, pred_test, a,
                                                                 normalized=False),
        "split conformal, |y - mean| / std": conformal.from_predictive(y_cal, pred_cal,
                                                                       pred_test, a),
        "CQR on the predictive quantiles": conformal.cqr(
            y_cal, pred_cal.mean - z * s_cal, pred_cal.mean + z * s_cal, gaussian.lower,
            gaussian.upper, a),
    }
    a_beta, b_beta = conformal.coverage_distribution(len(y_cal), a)
    print(f"{label}: {len(fit_rows)} fitting, {len(y_cal)} calibration, {len(y_test)} test rows;"
          f" target level {1 - a:.2f}, coverage given the calibration set ~ "
          f"Beta({a_beta}, {b_beta}) (mean {a_beta / (a_beta + b_beta):.4f})")
    for name, iv in intervals.items():
        cover = float(conformal.interval_coverage(y_test, iv))
        width = float(np.mean(np.asarray(iv.upper) - np.asarray(iv.lower))) * y_std
        print(f"  {name:38s} coverage {cover:.3f}  mean width {width:.3f}")


if __name__ == "__main__":
    main()
