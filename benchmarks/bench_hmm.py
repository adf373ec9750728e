"""Benchmark: Baum–Welch (espresso_jax.hmm) against hmmlearn's GaussianHMM on the same data
from the same initial parameters.

    python benchmarks/bench_hmm.py            # 100 sequences x 1,000 steps, K = 8, D = 4
    python benchmarks/bench_hmm.py --quick    # small smoke test
    python benchmarks/bench_hmm.py --x64      # ours in float64 too (hmmlearn always is)

Measured (diagonal covariances, a fixed number of iterations, hmmlearn ``tol=-inf`` with its
covariance prior off, ours ``tol=0``):

1. per-iteration time of hmmlearn's ``fit`` (its Python loop over sequences around C
   forward–backward kernels) and of ours as a Python loop around one jitted EM iteration
   (E-step over the whole padded batch, vmapped, and the M-step): the same loop shape;
2. the same fit as one fully compiled ``hmm.fit`` (``lax.while_loop`` of the EM engine),
   time per iteration.

Each figure is the median of ``--repeats`` runs after a warm-up run (JAX compilation). The
final log-likelihoods are printed as a check that both did the same work.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from _common import median_time, print_machine, print_result


def _problem(n_seq: int, n_steps: int, k: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    trans = np.full((k, k), 0.05 / (k - 1)) + 0.95 * np.eye(k) - 0.05 / (k - 1) * np.eye(k)
    means = rng.normal(scale=3.0, size=(k, d))
    X = np.empty((n_seq * n_steps, d))
    for s in range(n_seq):
        z = np.empty(n_steps, int)
        z[0] = rng.integers(k)
        for t in range(1, n_steps):
            z[t] = rng.choice(k, p=trans[z[t - 1]])
        X[s * n_steps:(s + 1) * n_steps] = means[z] + rng.normal(size=(n_steps, d))
    init_means = X[rng.choice(len(X), k, replace=False)]
    return X, [n_steps] * n_seq, init_means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--x64", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args()
    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from hmmlearn import __version__ as hl_version
    from hmmlearn import hmm as hl

    from espresso_jax import hmm

    n_seq, n_steps, k, d = (10, 200, 4, 2) if args.quick else (100, 1000, 8, 4)
    iters = 3 if args.quick else args.iters
    print_machine()
    print(f"hmmlearn {hl_version} | sequences {n_seq} x {n_steps} steps, K = {k}, D = {d}, "
          f"{iters} iterations, ours in {'float64' if args.x64 else 'float32'}")
    X, lengths, means = _problem(n_seq, n_steps, k, d)
    start, trans, var = np.full(k, 1.0 / k), np.full((k, k), 1.0 / k), np.tile(X.var(0), (k, 1))

    def run_hmmlearn():
        ref = hl.GaussianHMM(k, covariance_type="diag", covars_prior=0.0, min_covar=0.0,
                             n_iter=iters, tol=-np.inf, init_params="")
        ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = start, trans, means, var
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ref.fit(X, lengths)

    t_peer, ref = median_time(run_hmmlearn, args.repeats)
    t_peer /= iters
    peer_ll = ref.monitor_.history[-1]

    dtype = jnp.float64 if args.x64 else jnp.float32
    p0 = hmm.HMMParams(jnp.asarray(start, dtype), jnp.asarray(trans, dtype),
                       hmm.GaussianEmission(jnp.ones((k, 1), dtype),
                                            jnp.asarray(means[:, None], dtype),
                                            jnp.asarray(var[:, None], dtype),
                                            jnp.asarray(1 / np.sqrt(var[:, None]), dtype)))
    packed = hmm.pack(jnp.asarray(X, dtype), lengths)
    model = hmm.model.em_model()
    state0 = hmm.model.HMMState(p0, p0.emission.means.reshape(k, d), jnp.zeros((), dtype),
                                jnp.ones((k,), dtype), jnp.ones((k, k), dtype))

    @jax.jit
    def one_iteration(state, X, w):       # data as arguments: no constant folding of X
        stats = model.e_step(state, X, w)
        return model.m_step(state, stats), stats.loglik

    def run_loop():
        state, ll = state0, None
        for _ in range(iters):
            state, ll = one_iteration(state, packed.X, packed.w)
        return jax.block_until_ready(ll)

    t_loop, ll_loop = median_time(run_loop, args.repeats)
    t_loop /= iters

    def run_fit():
        res = hmm.fit(jax.random.key(0), packed.X, k, lengths=np.array(lengths),
                      init_params=p0, max_iter=iters, tol=0.0, reg_covar=0.0)
        return jax.block_until_ready(res)

    start_c = time.perf_counter()
    run_fit()
    compile_s = time.perf_counter() - start_c
    t_fit, res = median_time(run_fit, args.repeats)
    t_fit /= iters
    ours_ll = float(res.history[iters - 1]) * n_seq * n_steps
    print(f"final log-likelihood (before the last M-step): hmmlearn {peer_ll:.6f}, ours loop "
          f"{float(ll_loop):.6f}, ours compiled {ours_ll:.6f}")
    print(f"per iteration: hmmlearn {t_peer * 1e3:.1f} ms, ours (Python loop of jitted "
          f"iterations) {t_loop * 1e3:.1f} ms, ours (compiled fit) {t_fit * 1e3:.1f} ms; "
          f"first compiled call incl. compilation {compile_s:.1f} s")
    case = f"{n_seq}x{n_steps} K={k} D={d} diag"
    print_result(f"Baum-Welch iteration, loop of jitted steps, {case}", t_loop, t_peer,
                 peer_name=f"hmmlearn {hl_version}")
    print_result(f"Baum-Welch iteration, compiled fit, {case}", t_fit, t_peer,
                 peer_name=f"hmmlearn {hl_version}")


if __name__ == "__main__":
    main()
