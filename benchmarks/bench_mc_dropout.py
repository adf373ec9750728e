"""Benchmark: MC-dropout predictive, T passes vmapped in one call against T sequential calls.

    python benchmarks/bench_mc_dropout.py            # T = 100, 2,000 MNIST images; 3 repeats
    python benchmarks/bench_mc_dropout.py --quick    # T = 100, 500 MNIST images, 3 repeats

What is compared (one process, same network, parameters, inputs, keys and T): the wall time of
the ``T = 100`` stochastic forward passes (dropout on) that an MC-dropout predictive needs,

* ours: :func:`espresso_jax.bnn.dropout.mc_forward` -- host validation, then one jitted call
  that splits the key and runs the passes vmapped, ``lax.map`` over chunks of ``chunk_size``
  passes, returning ``(T, n, outputs)``. Timed for each ``--chunk-sizes`` entry (default T,
  10 and 1; chunk 1 is a compiled scan over the passes, no vmap); the first,
  ``T``, is the library default (``chunk_size = 256`` >= T: a single vmap of all passes);
* the peer: the straightforward loop -- one jitted single-pass function called ``T`` times from
  Python over the keys of ``jax.random.split(key, T)``, the outputs stacked into ``(T, n,
  outputs)`` and ``block_until_ready`` at the end.

Both sides use the same per-pass keys, so they draw the same masks: the largest absolute
difference of their outputs is printed (rounding only).

Cases: a UCI-sized regression net (:class:`espresso_jax.bnn.dropout.DropoutMLP`, 13 inputs, 50
ReLU units, 1 output, dropout 0.05) on 1,000 standard-normal inputs, and an MNIST-sized
classifier (784-400-400-10, dropout 0.5) on the 2,000 MNIST test images (500 with ``--quick``).
Times are medians of ``--repeats`` runs after a warm-up (compilation), the sides timed in turn
within each repeat. Goal: the vmapped predictive is no slower than the loop (speed-up >= 1).
On a CPU the passes are dominated by drawing the dropout masks (threefry), which is slower per
number on one large ``(T, n, width)`` array than on ``T`` cache-sized ones, so a full vmap can
lose to the loop there; the smaller chunk sizes show the trade-off.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from _common import print_machine, print_result
from espresso_jax.bnn import dropout
from espresso_jax.datasets import load_mnist


def sequential_runner(module, params, X, rate: float, n_samples: int):
    """The Python loop over ``n_samples`` keys of one jitted stochastic pass."""
    @jax.jit
    def one_pass(params, X, key):
        return module.apply(params, X, rate, deterministic=False, rngs={"dropout": key})

    def run(key):
        outs = [one_pass(params, X, k) for k in jax.random.split(key, n_samples)]
        return jax.block_until_ready(jnp.stack(outs))

    return run


def vmapped_runner(params, X, rate: float, n_samples: int, chunk_size: int):
    """:func:`espresso_jax.bnn.dropout.mc_forward` with all passes in one call."""
    def run(key):
        return jax.block_until_ready(dropout.mc_forward(key, params, X, rate,
                                                        n_samples=n_samples,
                                                        chunk_size=chunk_size))

    return run


def time_pair(ours, peer, repeats: int):
    """Warm both up, then time them in turn ``repeats`` times; medians in seconds and the
    last outputs."""
    key = jax.random.key(3)
    out_ours, out_peer = ours(key), peer(key)
    t_ours, t_peer = [], []
    for r in range(repeats):
        k = jax.random.fold_in(key, r)
        start = time.perf_counter()
        out_ours = ours(k)
        t_ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        out_peer = peer(k)
        t_peer.append(time.perf_counter() - start)
    return float(np.median(t_ours)), float(np.median(t_peer)), out_ours, out_peer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke test")
    parser.add_argument("--samples", type=int, default=100, help="MC passes T")
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=None,
                        help="mc_forward chunk sizes to time (default: T, 10 and 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    args = parser.parse_args()
    T = args.samples
    chunks = args.chunk_sizes or [T, 10, 1]
    repeats = args.repeats or 3
    n_mnist = 500 if args.quick else 2_000

    print_machine()
    print(f"T = {T} passes, mc_forward chunk sizes {chunks}, median of {repeats} runs after "
          f"warm-up | XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} "
          f"| jax_threefry_partitionable={jax.config.jax_threefry_partitionable}\n")

    X_uci = jax.random.normal(jax.random.key(0), (1_000, 13), jnp.float32)
    X_mnist = jnp.asarray(load_mnist("test")[0][:n_mnist], jnp.float32)
    cases = [
        ("UCI-sized 13-50-1, p=0.05, 1000 inputs", (50,), 1, 0.05, X_uci),
        (f"MNIST-sized 784-400-400-10, p=0.5, {n_mnist} images", (400, 400), 10, 0.5, X_mnist),
    ]
    rows = []
    for label, hidden, n_out, rate, X in cases:
        module = dropout.DropoutMLP(hidden=hidden, n_outputs=n_out)
        params = module.init(jax.random.key(1), X[:1], 0.0, deterministic=True)
        peer = sequential_runner(module, params, X, rate, T)
        for chunk in chunks:
            ours = vmapped_runner(params, X, rate, T, chunk)
            t_ours, t_peer, out_ours, out_peer = time_pair(ours, peer, repeats)
            diff = float(np.abs(np.asarray(out_ours) - np.asarray(out_peer)).max())
            rows.append((label, chunk, t_ours, t_peer, diff))

    print(f"{'case':48s} {'chunk':>5s} {'vmapped [ms]':>13s} {'loop [ms]':>10s} "
          f"{'speed-up':>9s} {'max |diff|':>11s}")
    for label, chunk, t_o, t_p, diff in rows:
        print(f"{label:48s} {chunk:5d} {1e3 * t_o:13.2f} {1e3 * t_p:10.2f} {t_p / t_o:8.2f}x "
              f"{diff:11.2e}")
    print()
    for label, chunk, t_o, t_p, _ in rows:
        speedup = t_p / t_o
        print(f"{label}, chunk {chunk}: speed-up {speedup:.2f}x (goal >= 1x): "
              f"{'met' if speedup >= 1 else 'NOT met'}")
        print_result(f"MC dropout T={T}, {label}, chunk_size {chunk}", 1e3 * t_o, 1e3 * t_p,
                     peer_name=f"{T} sequential jitted calls", unit="ms", goal=">= 1",
                     met=speedup >= 1)
    if hasattr(os, "getloadavg"):
        print("load average at the end (1/5/15 min): "
              + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
