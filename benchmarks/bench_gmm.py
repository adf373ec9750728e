"""Benchmark: Gaussian mixture EM (espresso_jax.mixture.gmm.fit) against scikit-learn's
GaussianMixture and gmmx's EMFitter on the same data and the same initial parameters.

    python benchmarks/bench_gmm.py             # N = 100,000, D = 8, K = 16; N = 10^7 chunked
    python benchmarks/bench_gmm.py --quick     # small smoke test
    python benchmarks/bench_gmm.py --x64       # JAX libraries in float64 too

Measured (full covariances, a fixed number of EM iterations, tol = 0, reg_covar = 1e-6):

1. per-iteration time of ours, scikit-learn and gmmx from the same weights, means and
   precisions (N = 100,000, D = 8, K = 16, 50 iterations), the speed-ups, and the final mean
   log-likelihood of each (the value before the last M-step, scikit-learn's ``lower_bound_``);
2. 16 restarts vmapped in one fit against one fit (``init="random"``, same iterations);
3. N = 10^7, D = 2, K = 8 with ``chunk_size="auto"`` (time per iteration).

Each timing is the median of ``--repeats`` (>= 3) runs after a warm-up run (JAX compilation).
The JAX timings are end to end on arrays already on the device: validation, initialisation,
the EM loop and ``block_until_ready``. Each stage runs in its own fresh process so that its
peak resident memory (``ru_maxrss``, plus the accelerator's peak bytes where the backend
reports them) belongs to it alone. scikit-learn works in float64 (its default); ours and
gmmx in float32 unless ``--x64``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
import resource
import sys

import numpy as np

from _common import median_time, print_machine, print_result

GOALS = {"sklearn": 5.0, "gmmx": 2.0, "restarts": 6.0}


def _data(n: int, d: int, k: int, seed: int) -> np.ndarray:
    """Rows from a random K-component mixture (overlapping, anisotropic)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(k, d))
    A = rng.normal(scale=0.7, size=(k, d, d))
    z = rng.integers(0, k, n)
    X = np.empty((n, d))
    step = 1_000_000
    for s in range(0, n, step):            # bounded temporaries for n = 10^7
        zz = z[s:s + step]
        eps = rng.normal(size=(len(zz), d))
        X[s:s + step] = centres[zz] + np.einsum("nij,nj->ni", A[zz], eps)
    return X


def _init(X: np.ndarray, k: int, seed: int) -> dict:
    """Explicit initial parameters: uniform weights, random rows as means, 1/var precisions."""
    rng = np.random.default_rng(seed + 1)
    d = X.shape[1]
    means = X[rng.choice(len(X), k, replace=False)]
    prec = np.stack([np.diag(1.0 / X[:100_000].var(0))] * k)
    return {"weights_init": np.full(k, 1.0 / k), "means_init": means, "precisions_init": prec,
            "covariances": np.linalg.inv(prec), "d": d}


def _memory() -> dict:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mib = peak / 1024 if sys.platform != "darwin" else peak / 2**20
    out = {"rss_mib": peak_mib}
    import jax

    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # memory statistics are best effort (not on every backend)
        stats = {}
    if "peak_bytes_in_use" in stats:
        out["device_mib"] = stats["peak_bytes_in_use"] / 2**20
    return out


def _stage(name: str, cfg: dict) -> dict:
    """Run one measurement in this (fresh) process and return its numbers."""
    import jax

    if cfg["x64"]:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    n, d, k, iters = cfg["n"], cfg["d"], cfg["k"], cfg["iters"]
    X = _data(n, d, k, cfg["seed"])
    init = _init(X, k, cfg["seed"])
    jdtype = jnp.float64 if cfg["x64"] else jnp.float32
    repeats = cfg["repeats"]
    out: dict = {"stage": name, "n": n, "d": d, "k": k, "iters": iters}

    if name == "sklearn":
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                return GaussianMixture(k, covariance_type="full", max_iter=iters, tol=0.0,
                                       reg_covar=1e-6, weights_init=init["weights_init"],
                                       means_init=init["means_init"],
                                       precisions_init=init["precisions_init"]).fit(X)

        t, gm = median_time(run, repeats)
        out.update(dtype="float64", time=t, loglik=float(gm.lower_bound_))
        return {**out, **_memory()}

    Xj = jax.device_put(jnp.asarray(X, jdtype))
    X = None                                     # drop the host copy
    if name == "gmmx":
        from gmmx import EMFitter, GaussianMixtureModelJax

        gmm0 = GaussianMixtureModelJax.from_squeezed(
            means=jnp.asarray(init["means_init"], jdtype),
            covariances=jnp.asarray(init["covariances"], jdtype),
            weights=jnp.asarray(init["weights_init"], jdtype), covariance_type="full")
        fitter = EMFitter(max_iter=iters, tol=0.0, reg_covar=1e-6)

        def run():
            return jax.block_until_ready(fitter.fit(Xj, gmm0))

        t, res = median_time(run, repeats)
        out.update(dtype=str(Xj.dtype), time=t, loglik=float(res.log_likelihood),
                   n_iter=int(res.n_iter))
        return {**out, **_memory()}

    from espresso_jax.mixture import gmm

    key = jax.random.key(cfg["seed"])
    if name in ("ours", "large"):
        kw = {k_: jnp.asarray(init[k_], jdtype) for k_ in
              ("weights_init", "means_init", "precisions_init")}
        chunk = cfg.get("chunk_size")

        def run():
            return jax.block_until_ready(gmm.fit(key, Xj, k, max_iter=iters, tol=0.0,
                                                 chunk_size=chunk, **kw))
    else:                                        # "one" / "restarts": random init
        n_init = cfg["n_init"] if name == "restarts" else 1

        def run():
            return jax.block_until_ready(gmm.fit(key, Xj, k, init="random", n_init=n_init,
                                                 max_iter=iters, tol=0.0))

    t, res = median_time(run, repeats)
    out.update(dtype=str(Xj.dtype), time=t, loglik=float(res.history[int(res.n_iter) - 1]),
               n_iter=int(res.n_iter), chunk_size=cfg.get("chunk_size"),
               n_init=cfg.get("n_init", 1) if name == "restarts" else 1)
    return {**out, **_memory()}


def _run_isolated(name: str, cfg: dict) -> dict:
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(_stage, name, cfg).result()


def _fmt_mem(r: dict) -> str:
    text = f"{r['rss_mib']:8.0f}"
    if "device_mib" in r:
        text += f" / dev {r['device_mib']:.0f}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke test")
    parser.add_argument("--x64", action="store_true", help="run the JAX libraries in float64")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median), >= 3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-large", action="store_true", help="skip the N = 10^7 stage")
    args = parser.parse_args()
    repeats = max(args.repeats, 3)
    q = args.quick
    base = {"n": 5_000 if q else 100_000, "d": 8, "k": 16, "iters": 10 if q else 50,
            "seed": args.seed, "x64": args.x64, "repeats": repeats, "chunk_size": "auto"}
    restarts = {**base, "n_init": 4 if q else 16}
    large = {**base, "n": 200_000 if q else 10_000_000, "d": 2, "k": 8, "iters": 5 if q else 10,
             "chunk_size": "auto"}


    print_machine()
    print(f"full covariances, tol=0, reg_covar=1e-6; median of {repeats} runs after a warm-up; "
          "each stage in a fresh process\n")

    results = {}
    stages = [("ours", base), ("sklearn", base), ("gmmx", base), ("one", base),
              ("restarts", restarts)]
    if not args.skip_large:
        stages.append(("large", large))
    for name, cfg in stages:
        results[name] = _run_isolated(name, cfg)
        r = results[name]
        print(f"  done {name:9s} {r['time']:.3f} s", flush=True)

    print(f"\n{'stage':44s} {'dtype':8s} {'s / iter':>10s} {'total s':>9s} {'final loglik':>13s} "
          f"{'peak RSS MiB':>14s}")
    labels = {"ours": "espresso_jax (same init)", "sklearn": "scikit-learn GaussianMixture",
              "gmmx": "gmmx EMFitter", "one": "espresso_jax 1 fit, random init",
              "restarts": f"espresso_jax n_init={restarts['n_init']} vmapped",
              "large": f"espresso_jax chunk_size={large['chunk_size']}"}
    for name, r in results.items():
        head = f"N={r['n']} D={r['d']} K={r['k']}, {r['iters']} it"
        if name in ("ours", "one", "large"):
            print(f"  [{head}]")
        print(f"{labels[name]:44s} {r['dtype']:8s} {r['time'] / r['iters']:10.5f} "
              f"{r['time']:9.3f} {r['loglik']:13.6f} {_fmt_mem(r):>14s}")

    ours = results["ours"]["time"]
    sk = results["sklearn"]["time"] / ours
    gx = results["gmmx"]["time"] / ours
    rs = results["restarts"]["time"] / results["one"]["time"]
    print("\nratios")
    print(f"  sklearn / ours       {sk:7.2f}x   (goal >= {GOALS['sklearn']}x: "
          f"{'met' if sk >= GOALS['sklearn'] else 'NOT met'})")
    print(f"  gmmx / ours          {gx:7.2f}x   (goal >= {GOALS['gmmx']}x: "
          f"{'met' if gx >= GOALS['gmmx'] else 'NOT met'})")
    print(f"  {restarts['n_init']} restarts / 1 fit  {rs:7.2f}x   (goal <= {GOALS['restarts']}x: "
          f"{'met' if rs <= GOALS['restarts'] else 'NOT met'})")
    r0 = results["ours"]
    case = f"N={r0['n']} D={r0['d']} K={r0['k']} {r0['iters']} it, same init"
    print_result(case, ours, results["sklearn"]["time"], peer_name="sklearn GaussianMixture",
                 goal=f">= {GOALS['sklearn']}", met=sk >= GOALS["sklearn"])
    print_result(case, ours, results["gmmx"]["time"], peer_name="gmmx EMFitter",
                 goal=f">= {GOALS['gmmx']}", met=gx >= GOALS["gmmx"])
    print_result(f"{restarts['n_init']} vmapped restarts vs 1 fit (ours / peer)",
                 results["restarts"]["time"], results["one"]["time"],
                 peer_name="espresso_jax 1 fit", ratio=rs, goal=f"<= {GOALS['restarts']}",
                 met=rs <= GOALS["restarts"])
    d_sk = abs(results["ours"]["loglik"] - results["sklearn"]["loglik"])
    d_gx = abs(results["ours"]["loglik"] - results["gmmx"]["loglik"])
    print(f"  |final loglik ours − sklearn| = {d_sk:.2e}, ours − gmmx = {d_gx:.2e}")
    if hasattr(os, "getloadavg"):
        print("load average at the end (1/5/15 min): "
              + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
