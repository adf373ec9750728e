"""Benchmark: variational Bayesian GMM (espresso_jax.mixture.vbgmm.fit) against
scikit-learn's BayesianGaussianMixture, same data, same initial responsibilities.

    python benchmarks/bench_vbgmm.py            # N = 100,000, D = 8, K = 16, 50 iterations
    python benchmarks/bench_vbgmm.py --quick    # N = 5,000, 10 iterations (smoke test)

Both fits run a fixed number of variational EM iterations (``tol = 0``) from scikit-learn's
``init_params="random"`` responsibilities (``RandomState(seed).uniform``, rows normalised), which
we pass to ours as an explicit ``init`` array; full covariances, Dirichlet-process weights.
The per-iteration time is the end-to-end fit time (validation, prior, initial M-step, the loop,
``block_until_ready``) divided by the number of iterations; median of ``--repeats`` runs after a
warm-up (compilation). The final lower bounds must agree (same definition; float64).
"""

from __future__ import annotations

import argparse
import os
import warnings

import jax
import numpy as np
from sklearn.mixture import BayesianGaussianMixture

from _common import median_time, print_machine, print_result
from espresso_jax.mixture import vbgmm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N smoke test")
    parser.add_argument("--n", type=int, default=None, help="number of samples")
    parser.add_argument("--d", type=int, default=8, help="number of features")
    parser.add_argument("--k", type=int, default=16, help="number of components")
    parser.add_argument("--iters", type=int, default=None, help="EM iterations (fixed)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = args.n or (5_000 if args.quick else 100_000)
    iters = args.iters or (10 if args.quick else 50)
    repeats = args.repeats or (2 if args.quick else 5)
    d, k = args.d, args.k

    print_machine()

    rng = np.random.default_rng(args.seed)
    centres = rng.normal(scale=4.0, size=(8, d))
    X = centres[rng.integers(0, 8, n)] + rng.normal(size=(n, d)) * rng.uniform(0.5, 1.5, d)
    resp = np.random.RandomState(args.seed).uniform(size=(n, k))
    resp /= resp.sum(1, keepdims=True)
    print(f"data: N={n}, D={d}, 8 Gaussian clusters; K={k}, full covariances, "
          f"dirichlet_process weights, {iters} iterations (tol=0); median of {repeats} runs "
          "after warm-up\n")

    def sk_fit(Xd):
        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # ConvergenceWarning (tol = 0)
                return BayesianGaussianMixture(
                    n_components=k, covariance_type="full", init_params="random",
                    random_state=args.seed, max_iter=iters, tol=0).fit(Xd)
        return run

    def our_fit(Xd, r):
        def run():
            res = vbgmm.fit(jax.random.key(0), Xd, k, init=r, max_iter=iters, tol=0.0)
            return jax.block_until_ready(res)
        return run

    rows = []
    for label, dtype, x64 in (("float64", np.float64, True), ("float32", np.float32, False)):
        Xd, rd = X.astype(dtype), resp.astype(dtype)
        with jax.enable_x64(x64):
            t_ours, res = median_time(our_fit(Xd, rd), repeats)
        t_sk, sk = median_time(sk_fit(Xd), repeats)
        lb_ours = float(res.history[int(res.n_iter) - 1])
        lb_sk = float(np.ravel(sk.lower_bounds_)[-1])
        rows.append((label, t_ours / iters, t_sk / iters, lb_ours, lb_sk))

    print(f"{'dtype':8s} {'ours [ms/it]':>13s} {'sklearn [ms/it]':>16s} {'speed-up':>9s} "
          f"{'final LB ours':>16s} {'final LB sklearn':>17s} {'rel diff':>9s}")
    for label, t_o, t_s, lb_o, lb_s in rows:
        print(f"{label:8s} {1e3 * t_o:13.2f} {1e3 * t_s:16.2f} {t_s / t_o:8.1f}x "
              f"{lb_o:16.6f} {lb_s:17.6f} {abs(lb_o / lb_s - 1):9.1e}")
    speedup = rows[0][2] / rows[0][1]
    print(f"\nfloat64 per-iteration speed-up {speedup:.1f}x (goal >= 5x): "
          f"{'met' if speedup >= 5 else 'NOT met'}")
    for label, t_o, t_s, *_ in rows:
        goal = label == "float64"
        print_result(f"N={n} D={d} K={k} {iters} it {label}, per iteration", t_o, t_s,
                     peer_name="sklearn BayesianGaussianMixture", unit="s/it",
                     goal=">= 5" if goal else None, met=t_s / t_o >= 5 if goal else None)
    if hasattr(os, "getloadavg"):
        print("load average at the end (1/5/15 min): "
              + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
