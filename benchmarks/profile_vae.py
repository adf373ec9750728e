"""Where the time of one VAE training step goes (issue 14): per-operation times of the
compiled epoch, from a ``jax.profiler`` trace, grouped by what each operation computes.

    python benchmarks/profile_vae.py              # 4,000 MNIST images: 40 steps, batch 100
    python benchmarks/profile_vae.py --no-ynn     # also the same epoch without YNNPACK fusions

The step is the one ``bench_vae.py`` times (784-500-500-20, SGVB-B, dynamic binarisation,
Adam(1e-3), ``train.run_epochs`` under ``jax.jit``). One epoch is compiled, run once, then run
under ``jax.profiler.trace``; every XLA operation (thunk) of the trace is matched by name to
the optimised HLO of the same executable, whose ``op_name`` metadata says where it came from
(the decoder's ``dot_general``, ``log_sigmoid``, Adam's moment updates, ``threefry``, ...).
Each operation's time per step is its *minimum* over the steps times its calls per step: on a
loaded machine the minimum is the best estimate of the unloaded time, and their sum (printed
as "sum of per-op minima") ignores the gaps between operations. ``--no-ynn`` compiles a second
copy of the epoch with ``compiler_options={"xla_cpu_experimental_ynn_fusion_type": ""}``
(XLA's Eigen dots instead of YNNPACK fusions) and times both copies in alternation.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from _common import print_machine
from espresso_jax import train
from espresso_jax.apps import roofline
from espresso_jax.datasets import load_mnist
from espresso_jax.nn import vae

LATENT, HIDDEN, BATCH = 20, (500, 500), 100
CATEGORIES = (  # (label, regular expression on the op_name metadata), first match wins
    ("matmul", r"dot_general|/transpose$"),
    ("Bernoulli log-likelihood", r"log_sigmoid|softplus|logaddexp|log1p"),
    ("binarisation draws", r"_bernoulli"),
    ("normal draws (eps)", r"_normal|erf_inv"),
    ("key splits", r"threefry_split|_shuffle|permutation|sort"),
    ("minibatch gather", r"_take|gather"),
    ("backward element-wise", r"transpose\(jvp"),
    ("forward element-wise", r"jvp\("),
    ("optimiser (Adam, apply_updates)", r"closed_call/(add|mul|sqrt|div|sub|integer_pow|pow)$"),
)


def _hlo_ops(text: str) -> dict[str, tuple[str, str]]:
    """name -> (opcode, op_name metadata) for every instruction of an optimised HLO module."""
    ops = {}
    for line in text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = \S+ ([\w\-]+)\(", line)
        if m:
            meta = re.search(r'op_name="([^"]*)"', line)
            ops[m.group(1)] = (m.group(2), meta.group(1) if meta else "")
    return ops


def _category(opcode: str, meta: str) -> str:
    if opcode == "copy":
        return "copies (loop-carried state)"
    for label, pattern in CATEGORIES:
        if re.search(pattern, meta):
            return label
    return "other"


def _per_op_minima(trace_dir: str, ops: dict, steps: int) -> dict[str, float]:
    """Seconds per step of each HLO operation: min duration x calls per step."""
    path = sorted(glob.glob(f"{trace_dir}/**/perfetto_trace.json.gz", recursive=True))[-1]
    with gzip.open(path) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    low: dict[str, float] = collections.defaultdict(lambda: float("inf"))
    calls: collections.Counter = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e["name"] in ops:
            low[e["name"]] = min(low[e["name"]], e.get("dur", 0) * 1e-6)
            calls[e["name"]] += 1
    return {k: low[k] * (calls[k] // steps) for k in low if calls[k] >= steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="images (steps = n / 100)")
    parser.add_argument("--top", type=int, default=15, help="operations listed")
    parser.add_argument("--no-ynn", action="store_true",
                        help="also time the epoch compiled without YNNPACK fusions")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per variant")
    args = parser.parse_args()
    print_machine()
    X, _ = load_mnist("train")
    X = jnp.asarray(np.ascontiguousarray(X[: args.n], dtype=np.float32))
    steps = args.n // BATCH
    model = vae.VAE(data_dim=784, latent_dim=LATENT, hidden=HIDDEN)
    params = vae.init(jax.random.key(0), model)
    loss = vae.make_loss(model, args.n, estimator="B", n_samples=1, binarize=True)
    optimizer = optax.adam(1e-3)
    step = train.make_step(loss, optimizer, has_aux=True)
    state = train.init_state(jax.random.key(1), params, optimizer)

    def epoch(state, data, key):
        return train.run_epochs(key, step, state, data, batch_size=BATCH, n_epochs=1)

    variants = {"default": jax.jit(epoch)}
    if args.no_ynn:
        variants["no YNNPACK"] = jax.jit(
            epoch, compiler_options={"xla_cpu_experimental_ynn_fusion_type": ""})
    key = jax.random.key(2)
    compiled = {k: f.lower(state, X, key).compile() for k, f in variants.items()}
    for exe in compiled.values():
        jax.block_until_ready(exe(state, X, key))
    wall: dict[str, list[float]] = {k: [] for k in compiled}
    cpu: dict[str, list[float]] = {k: [] for k in compiled}
    for _ in range(args.repeats):
        for name, exe in compiled.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(exe(state, X, key))
            wall[name].append((time.perf_counter() - start) / steps)
            cpu[name].append((time.process_time() - start_cpu) / steps)
    gemm = roofline.gemm_rate(repeats=5).per_second
    flops = (roofline.mlp_step_flops((784, *HIDDEN, 2 * LATENT), BATCH)
             + roofline.mlp_step_flops((LATENT, *HIDDEN[::-1], 784), BATCH))
    print(f"GEMM floor: {flops / gemm * 1e3:.2f} ms per step ({flops / 1e9:.2f} GFLOP at "
          f"{gemm / 1e9:.0f} GFLOP/s)\n")
    for name, exe in compiled.items():
        ops = _hlo_ops(exe.as_text())
        with tempfile.TemporaryDirectory() as trace_dir:
            with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
                jax.block_until_ready(exe(state, X, key))
            per_op = _per_op_minima(trace_dir, ops, steps)
        total = sum(per_op.values())
        print(f"== {name}: wall {1e3 * statistics.median(wall[name]):.2f} ms/step median "
              f"({1e3 * min(wall[name]):.2f} min), CPU {1e3 * statistics.median(cpu[name]):.2f}"
              f" ms/step; sum of per-op minima {1e3 * total:.2f} ms/step")
        groups: dict[str, float] = collections.defaultdict(float)
        for op, seconds in per_op.items():
            groups[_category(*ops[op])] += seconds
        for label, seconds in sorted(groups.items(), key=lambda kv: -kv[1]):
            print(f"   {label:34s} {1e3 * seconds:7.3f} ms  {100 * seconds / total:5.1f} %")
        print(f"   top {args.top} operations:")
        for op, seconds in sorted(per_op.items(), key=lambda kv: -kv[1])[: args.top]:
            opcode, meta = ops[op]
            print(f"   {1e3 * seconds:7.3f} ms  {op:28s} {meta[-70:]}")
        print()


if __name__ == "__main__":
    main()
