"""Sweep of the GMM E-step block size (``chunk_size``) on this machine, against the
``chunk_size="auto"`` rule of :func:`espresso_jax.em.resolve_chunk_size`.

    python benchmarks/gmm_chunk_sweep.py            # N = 100,000, D = 8, K = 16, 10 iterations
    python benchmarks/gmm_chunk_sweep.py --quick    # N = 20,000, fewer sizes (smoke test)

Full-covariance EM (``espresso_jax.mixture.gmm.fit``, same data and initial parameters as
``bench_gmm.py``, ``tol = 0``) for each block size in turn and for ``"auto"``, every size
compiled before timing; then ``--repeats`` rounds that time every size once each, in
alternation, so a change in the machine's load hits all sizes alike. Printed per size: the
median and the minimum wall time per EM iteration and the median process CPU time (on a
loaded machine the minimum and the CPU time are the better estimates), the block's largest
temporary (``K · D · 4`` bytes a row), the cache sizes the rule read, and the size ``"auto"``
picked.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from _common import print_machine
from bench_gmm import _data, _init
from espresso_jax import cpu_cache, em
from espresso_jax.mixture import gmm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke test")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (>= 5)")
    parser.add_argument("--iters", type=int, default=10, help="EM iterations per fit")
    args = parser.parse_args()
    n, d, k = (20_000 if args.quick else 100_000), 8, 16
    sizes: list[int | str | None] = ([1024, 4096, "auto", None] if args.quick else
                                     [512, 1024, 2048, 4096, 8192, 16384, "auto", None])
    print_machine()
    print(f"caches read by the 'auto' rule: {cpu_cache.cache_sizes()}; target block "
          f"{em.auto_chunk_bytes() / 2**20:.2f} MiB")
    row_bytes = k * d * 4
    picked = em.resolve_chunk_size("auto", n, row_bytes)
    print(f"N={n} D={d} K={k} full, {args.iters} iterations per fit; 'auto' -> {picked} rows "
          f"({(picked or n) * row_bytes / 2**20:.2f} MiB temporaries)\n")
    X = _data(n, d, k, 0)
    init = _init(X, k, 0)
    Xj = jnp.asarray(X, jnp.float32)
    kw = {key: jnp.asarray(init[key], jnp.float32)
          for key in ("weights_init", "means_init", "precisions_init")}

    def fit(chunk):
        return jax.block_until_ready(gmm.fit(jax.random.key(0), Xj, k, max_iter=args.iters,
                                             tol=0.0, chunk_size=chunk, **kw))

    ref = {str(c): float(fit(c).history[args.iters - 1]) for c in sizes}   # compile all
    times: dict[str, list[float]] = {str(c): [] for c in sizes}
    cpu: dict[str, list[float]] = {str(c): [] for c in sizes}
    for _ in range(max(args.repeats, 1)):
        for c in sizes:
            start, start_cpu = time.perf_counter(), time.process_time()
            fit(c)
            times[str(c)].append((time.perf_counter() - start) / args.iters)
            cpu[str(c)].append((time.process_time() - start_cpu) / args.iters)
    print(f"{'chunk_size':>10s} {'MiB':>6s} {'median ms/it':>13s} {'min ms/it':>10s} "
          f"{'CPU ms/it':>10s} {'final loglik':>13s}")
    best = min(times, key=lambda c: float(np.median(cpu[c])))
    for c in sizes:
        rows = picked if c == "auto" else (c or n)
        mark = "  <- least CPU" if str(c) == best else ""
        print(f"{c!s:>10s} {rows * row_bytes / 2**20:6.2f} {1e3 * np.median(times[str(c)]):13.2f} "
              f"{1e3 * min(times[str(c)]):10.2f} {1e3 * np.median(cpu[str(c)]):10.2f} "
              f"{ref[str(c)]:13.6f}{mark}")
    print(f"\n'auto' / least-CPU size: wall (minimum) "
          f"{min(times['auto']) / min(times[best]):.2f}, CPU (median) "
          f"{np.median(cpu['auto']) / np.median(cpu[best]):.2f}")
    if hasattr(os, "getloadavg"):
        print("load average at the end (1/5/15 min): "
              + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
