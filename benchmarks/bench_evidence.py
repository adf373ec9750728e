"""Benchmark: evidence maximisation (espresso_jax.linear.bayes.fit_evidence) against
scikit-learn's BayesianRidge on the same synthetic data, in the same process.

    python benchmarks/bench_evidence.py            # N = 100,000, D = 50
    python benchmarks/bench_evidence.py --quick    # N = 5,000 smoke test

Both fits start from the same point (alpha = 1, beta = 1 / var(y)), use the same
non-informative Gamma(1e-6, 1e-6) hyperpriors and a tight tolerance, so they converge to the
same fixed point; the script prints the max relative difference of alpha and beta (float64).
Each timing is the median of ``--repeats`` runs after a warm-up call (JAX compilation).
Our timing is end to end: host-side validation, transfer to the device, the fit, and
``block_until_ready``.
"""

from __future__ import annotations

import argparse
import os

import jax
import numpy as np
from sklearn.linear_model import BayesianRidge

from _common import median_time, print_machine, print_result
from espresso_jax.linear import bayes


def _ours(X, y, tol, max_iter):
    def run():
        fit = bayes.fit_evidence(X, y, tol=tol, max_iter=max_iter)
        return jax.block_until_ready(fit)
    return run


def _sklearn(X, y, tol, max_iter):
    def run():
        return BayesianRidge(fit_intercept=False, tol=tol, max_iter=max_iter).fit(X, y)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N smoke test")
    parser.add_argument("--n", type=int, default=None, help="number of samples")
    parser.add_argument("--d", type=int, default=50, help="number of features")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = args.n or (5_000 if args.quick else 100_000)
    d = args.d
    repeats = max(args.repeats, 5)

    print_machine()

    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    y = X @ w + 0.5 * rng.standard_normal(n)
    print(f"data: N={n}, D={d}, y = X w + N(0, 0.5^2), seed {args.seed}; median of {repeats} "
          "runs after warm-up\n")

    # Tight tolerances so both reach the same fixed point (the criteria differ: sklearn
    # stops on sum|delta coef| < tol, we on the relative change of alpha and beta).
    tol_ours, tol_sk, max_iter = 1e-10, 1e-10, 300

    rows = []
    for label, dtype, x64 in (("float64", np.float64, True), ("float32", np.float32, False)):
        Xd, yd = X.astype(dtype), y.astype(dtype)
        with jax.enable_x64(x64):
            t_ours, fit = median_time(_ours(Xd, yd, tol_ours, max_iter), repeats)
        t_sk, br = median_time(_sklearn(Xd, yd, tol_sk, max_iter), repeats)
        d_beta = abs(float(fit.params.beta) / float(br.alpha_) - 1.0)
        d_alpha = abs(float(fit.params.alpha) / float(br.lambda_) - 1.0)
        rows.append((label, t_ours, t_sk, d_alpha, d_beta, int(fit.n_iter), int(br.n_iter_)))

    print(f"{'dtype':8s} {'ours [s]':>10s} {'sklearn [s]':>12s} {'speed-up':>9s} "
          f"{'rel|d alpha|':>13s} {'rel|d beta|':>12s} {'iters ours/sk':>14s}")
    for label, t_ours, t_sk, d_alpha, d_beta, it_o, it_s in rows:
        print(f"{label:8s} {t_ours:10.4f} {t_sk:12.4f} {t_sk / t_ours:8.1f}x "
              f"{d_alpha:13.2e} {d_beta:12.2e} {it_o:>6d}/{it_s:<6d}")
    speedup = rows[0][2] / rows[0][1]
    print(f"\nfloat64 speed-up {speedup:.1f}x (goal >= 3x): {'met' if speedup >= 3 else 'NOT met'}")
    for label, t_ours, t_sk, *_ in rows:
        goal = label == "float64"
        print_result(f"N={n} D={d} {label}", t_ours, t_sk, peer_name="sklearn BayesianRidge",
                     goal=">= 3" if goal else None, met=t_sk / t_ours >= 3 if goal else None)
    if hasattr(os, "getloadavg"):
        print("load average at the end (1/5/15 min): "
              + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
