"""Where the time of one VAE training step goes (issue 14): per-operation times of the
compiled epoch, from a ``jax.profiler`` trace, grouped by what each operation computes.

    python benchmarks/profile_vae.py              # 4,000 MNIST images: 40 steps, batch 100
    python benchmarks/profile_vae.py --no-ynn     # also the same epoch without YNNPACK fusions
    python benchmarks/profile_vae.py --baseline   # also the step as landed before issue 14's
                                                  # item 4 work (jax.random.bernoulli, XLA's
                                                  # default copy insertion)

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
``--baseline`` adds the step as it was before this profile's changes: binarisation by
``jax.random.bernoulli`` (the same bits, JAX's rolled threefry loop) and XLA's default copy
insertion (without ``train.COMPILER_OPTIONS``): the same parameters bit for bit, compiled
side by side. Every variant uses the engine's compiler options unless it says otherwise.

The floors printed first: the 2048 x 2048 f32 GEMM rate turned into ms per step with the step's
FLOPs (``roofline.mlp_step_flops``, as ``bench_vae.py``), and the *per-shape floor*: each
matrix product of the step (forward, weight and input gradients, at batch 100 and the layout
the step stores its operands in) timed alone in JAX and summed (``_common.vae_step_dots``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from _common import (
    hlo_ops,
    per_op_minima,
    per_shape_floor,
    print_machine,
    print_op_profile,
    vae_step_dots,
)
from espresso_jax import train
from espresso_jax.apps import roofline
from espresso_jax.datasets import load_mnist
from espresso_jax.nn import vae, vae_binarize, vae_objectives

LATENT, HIDDEN, BATCH = 20, (500, 500), 100
CATEGORIES = (  # (label, regular expression on the op_name metadata), first match wins
    ("matmul", r"dot_general|/transpose$"),
    ("Bernoulli log-likelihood", r"log_sigmoid|softplus|logaddexp|log1p"),
    ("binarisation draws", r"_bernoulli|cond/branch_1_fun"),  # jax.random / nn.vae_binarize
    ("normal draws (eps)", r"_normal|erf_inv"),
    ("key splits", r"threefry_split|_shuffle|permutation|sort"),
    ("minibatch gather", r"_take|gather"),
    ("backward element-wise", r"transpose\(jvp"),
    ("forward element-wise", r"jvp\("),
    ("optimiser (Adam, apply_updates)", r"closed_call/(add|mul|sqrt|div|sub|integer_pow|pow)$"),
)




def _category(opcode: str, meta: str) -> str:
    if opcode == "copy":
        return "copies (loop-carried state)"
    for label, pattern in CATEGORIES:
        if re.search(pattern, meta):
            return label
    return "other"




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="images (steps = n / 100)")
    parser.add_argument("--top", type=int, default=15, help="operations listed")
    parser.add_argument("--no-ynn", action="store_true",
                        help="also time the epoch compiled without YNNPACK fusions")
    parser.add_argument("--baseline", action="store_true",
                        help="also time the step as landed before (jax.random.bernoulli, "
                             "XLA's default copy insertion)")
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

    options = dict(train.COMPILER_OPTIONS)
    variants = {"default": jax.jit(epoch, compiler_options=options)}
    if args.no_ynn:
        variants["no YNNPACK"] = jax.jit(
            epoch, compiler_options={**options, "xla_cpu_experimental_ynn_fusion_type": ""})
    if args.baseline:
        variants["baseline (before)"] = _baseline_epoch(model, args.n, optimizer)
    key = jax.random.key(2)
    compiled = {}
    for name, fn in variants.items():
        patched = name.startswith("baseline")
        if patched:  # the landed binarisation (same bits) while this variant is traced
            vae_objectives.binarize_batch = _bernoulli
        try:
            compiled[name] = fn.lower(state, X, key).compile()
        finally:
            vae_objectives.binarize_batch = vae_binarize.binarize
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
    outputs = {name: exe(state, X, key) for name, exe in compiled.items()}
    first = jax.tree.leaves(next(iter(outputs.values()))[0].params)
    for name, (out_state, metrics) in outputs.items():
        diff = max(float(jnp.max(jnp.abs(a - b)))
                   for a, b in zip(jax.tree.leaves(out_state.params), first, strict=True))
        print(f"{name:18s} final ELBO {float(metrics['elbo'][-1]):.6f}, max |parameter "
              f"difference| to {next(iter(outputs))} {diff:.3g}")
    gemm = roofline.gemm_rate(repeats=5).per_second
    flops = (roofline.mlp_step_flops((784, *HIDDEN, 2 * LATENT), BATCH)
             + roofline.mlp_step_flops((LATENT, *HIDDEN[::-1], 784), BATCH))
    dots = vae_step_dots(BATCH)
    samples: list[list[float]] = []

    def median_keeping(times: list[float]) -> float:
        samples.append(times)
        return statistics.median(times)

    shape_seconds, shape_flops, each = per_shape_floor(dots, calls=50, repeats=5,
                                                       reduce=median_keeping)
    best = [min(times) for times in samples]  # the same timings' minima
    best_seconds = sum(best)
    print(f"\nGEMM floor: {flops / gemm * 1e3:.2f} ms per step ({flops / 1e9:.2f} GFLOP at "
          f"{gemm / 1e9:.0f} GFLOP/s, 2048 x 2048)")
    print(f"per-shape floor: {shape_seconds * 1e3:.2f} ms per step, median "
          f"({best_seconds * 1e3:.2f} from the minima; {shape_flops / 1e9:.2f} GFLOP in "
          f"{len(dots)} products at their own shapes, {shape_flops / shape_seconds / 1e9:.0f} "
          f"({shape_flops / best_seconds / 1e9:.0f}) GFLOP/s; each alone):")
    for (what, m, k, n, layout), seconds, low in zip(dots, each, best, strict=True):
        print(f"   {what:24s} ({m:3d} x {k:3d}) @ ({k:3d} x {n:3d}) {layout}  "
              f"{seconds * 1e3:6.3f} ms ({low * 1e3:6.3f})  "
              f"{2 * m * k * n / seconds / 1e9:5.0f} ({2 * m * k * n / low / 1e9:5.0f}) GFLOP/s")
    print()
    for name, exe in compiled.items():
        ops = hlo_ops(exe.as_text())
        with tempfile.TemporaryDirectory() as trace_dir:
            with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
                jax.block_until_ready(exe(state, X, key))
            per_op = per_op_minima(trace_dir, ops, steps)
        total = sum(per_op.values())
        print(f"== {name}: wall {1e3 * statistics.median(wall[name]):.2f} ms/step median "
              f"({1e3 * min(wall[name]):.2f} min), CPU {1e3 * statistics.median(cpu[name]):.2f}"
              f" ms/step; sum of per-op minima {1e3 * total:.2f} ms/step")
        print_op_profile(per_op, ops, _category, args.top)
        print()
    if hasattr(os, "getloadavg"):
        print("load average at the end (1/5/15 min): "
              + " ".join(f"{v:.2f}" for v in os.getloadavg()))


def _bernoulli(key: jax.Array, x: jax.Array) -> jax.Array:
    """The binarisation as landed before: ``jax.random.bernoulli`` (the same bits)."""
    return jax.random.bernoulli(key, x).astype(x.dtype)


def _baseline_epoch(model: vae.VAE, n: int, optimizer):
    """The epoch as landed before, jitted with XLA's default options. Its loss is a fresh
    closure (``make_loss`` uncached) so that it is traced, with :func:`_bernoulli` patched in,
    apart from the default variant."""
    loss = vae_objectives.make_loss.__wrapped__(model, n, estimator="B", n_samples=1,
                                                binarize=True)
    step = train.make_step(loss, optimizer, has_aux=True)

    def epoch(state, data, key):
        return train.run_epochs(key, step, state, data, batch_size=BATCH, n_epochs=1)

    return jax.jit(epoch)


if __name__ == "__main__":
    main()
