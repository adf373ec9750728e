"""Where the time of one Bayes-by-Backprop training step goes (issue 14, item 3): per-operation
times of the compiled epoch from a ``jax.profiler`` trace, grouped by what each operation
computes, beside the deterministic step of the same size, and the memory passes over the
largest weight tensor counted in the optimised HLO.

    python benchmarks/profile_bbb.py              # 2,560 MNIST images: 20 steps, batch 128

The steps are the ones ``bench_bbb.py`` times (784-400-400-10 ReLU, batch 128, Adam(1e-3),
``train.run_epochs`` under ``jax.jit``; BBB with the Gaussian prior N(0, 1), closed-form KL).
One epoch is compiled, run, then run under ``jax.profiler.trace``; every XLA operation
(thunk) of the trace is matched by name to the optimised HLO of the same executable, whose
``op_name`` metadata says where it came from. Each operation's time per step is its *minimum*
over the steps times its calls per step (on a loaded machine the minimum is the best estimate
of the unloaded time); their sum ignores the gaps between operations.

"passes over the 784x400 tensor": every top-level HLO instruction (fusion, dot, copy, ...) of
the loop bodies and ``lax.cond`` branches that reads (operand) or writes (result) an array of
the first layer's kernel size; a fusion reading the same array twice counts once (a
``lax.cond`` counts through its branches' instructions; the never-taken branch of zeros of
each materialising ``cond`` is listed too, one write, but never runs). XLA:CPU
gives every output array its own loop (no multi-output fusion by default) and recomputes
cheap producers inside each consumer, so this count, times the array's 1.25 MB, is the
memory traffic of the first layer's element-wise work.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from _common import hlo_ops, per_op_minima, print_machine, print_op_profile
from bench_bbb import FEATURES, build_cases_steps
from espresso_jax import train
from espresso_jax.apps import roofline
from espresso_jax.datasets import load_mnist

BATCH = 128
CATEGORIES = (  # (label, regular expression on the op_name metadata), first match wins
    ("matmul", r"dot_general|/transpose$"),
    ("optimiser (Adam, apply_updates)", r"closed_call/(add|mul|sqrt|div|sub|integer_pow|pow)$"),
    ("sample, softplus, KL and gradients", r"transpose\(jvp\(Bayes.*_forward/cond/"),
    ("random numbers (hash, erf_inv)", r"erf_inv|shift_right|xor|iota|threefry|_normal|"
                                       r"bitcast_convert|/cond/"),
    ("sample, softplus, KL and gradients", r"softplus|logistic|log|sample_gaussian|"
                                           r"custom_vjp|_bwd|_fwd|exp|reduce_sum|Bayes.*_forward/"),
    ("minibatch gather, shuffle", r"gather|_take|sort|permutation|dynamic_slice"),
)




def category(opcode: str, meta: str) -> str:
    """The label of an operation (``CATEGORIES``; copies and the rest apart)."""
    if opcode == "conditional":     # its branch's operations are timed on their own
        return "(conditional wrapper)"
    if opcode == "copy":
        return "copies (loop-carried state)"
    for label, pattern in CATEGORIES:
        if re.search(pattern, meta):
            return label
    return "other (activations, loss, loop)"




def weight_passes(text: str, shape: str) -> tuple[int, int, list[str]]:
    """``(reads, writes, lines)``: instructions of the non-fused computations other than the
    entry (the loop bodies and the ``lax.cond`` branches: what runs every step) that read or
    write an ``f32[shape]`` array (see the module docstring)."""
    comps: dict[str, list[str]] = {}
    entry, current = None, None
    for line in text.splitlines():
        head = re.match(r"^(ENTRY )?%?([\w.\-]+) \(.*\{\s*$", line)
        if head:
            current = head.group(2)
            comps[current] = []
            entry = current if head.group(1) else entry
        elif current and " = " in line:
            comps[current].append(line)
    fused = set(re.findall(r"(?:calls|to_apply)=%?([\w.\-]+)", text))
    instr = re.compile(r"\s*(?:ROOT )?%?([\w.\-]+) = (\([^)]*\)|\S+) ([\w\-]+)\((.*?)\)(?:,|$)")
    shapes = {m.group(1): m.group(2) for lines in comps.values() for m in map(instr.match, lines)
              if m}
    reads = writes = 0
    out = []
    for comp, lines in comps.items():
        if comp in fused or comp == entry:
            continue
        for line in lines:
            m = instr.match(line)
            if m is None or m.group(3) in ("parameter", "get-tuple-element", "tuple", "bitcast",
                                           "constant", "conditional"):
                continue
            operands = set(re.findall(r"%([\w.\-]+)", m.group(4)))
            r = sum(f"f32[{shape}]" in shapes.get(o, "") for o in operands)
            w = m.group(2).count(f"f32[{shape}]")
            if r or w:
                reads, writes = reads + r, writes + w
                meta = re.search(r'op_name="([^"]*)"', line)
                out.append(f"{r}R {w}W {m.group(3):12s} {m.group(1):28s} "
                           f"{(meta.group(1) if meta else '')[-50:]}")
    return reads, writes, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2560, help="images (steps = n / 128)")
    parser.add_argument("--top", type=int, default=12, help="operations listed")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per variant")
    parser.add_argument("--passes", action="store_true",
                        help="list the instructions touching the 784x400 tensor")
    args = parser.parse_args()
    print_machine()
    X, y = load_mnist("train")
    data = {"x": jnp.asarray(np.ascontiguousarray(X[: args.n], np.float32)),
            "y": jnp.asarray(np.ascontiguousarray(y[: args.n], np.int32))}
    steps = args.n // BATCH
    key = jax.random.key(2)
    compiled, states = {}, {}
    for name, (step, state) in build_cases_steps(data, BATCH, ("deterministic", "bbb")).items():
        def epoch(state, data, key, step=step):
            return train.run_epochs(key, step, state, data, batch_size=BATCH, n_epochs=1)

        compiled[name] = jax.jit(epoch).lower(state, data, key).compile()
        states[name] = state
        jax.block_until_ready(compiled[name](state, data, key))
    wall: dict[str, list[float]] = {k: [] for k in compiled}
    cpu: dict[str, list[float]] = {k: [] for k in compiled}
    for _ in range(args.repeats):
        for name, exe in compiled.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(exe(states[name], data, key))
            wall[name].append((time.perf_counter() - start) / steps)
            cpu[name].append((time.process_time() - start_cpu) / steps)
    gemm = roofline.gemm_rate(1024, repeats=5).per_second
    flops = roofline.mlp_step_flops((784, *FEATURES), BATCH)
    print(f"GEMM floor: {flops / gemm * 1e3:.2f} ms per step ({flops / 1e9:.3f} GFLOP at "
          f"{gemm / 1e9:.0f} GFLOP/s)\n")
    for name, exe in compiled.items():
        text = exe.as_text()
        ops = hlo_ops(text)
        with tempfile.TemporaryDirectory() as trace_dir:
            with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
                jax.block_until_ready(exe(states[name], data, key))
            per_op = per_op_minima(trace_dir, ops, steps)
        per_op = {k: v for k, v in per_op.items() if ops[k][0] != "conditional"}
        total = sum(per_op.values())
        reads, writes, lines = weight_passes(text, "784,400")
        print(f"== {name}: wall {1e3 * statistics.median(wall[name]):.2f} ms/step median "
              f"({1e3 * min(wall[name]):.2f} min), CPU {1e3 * statistics.median(cpu[name]):.2f}"
              f" ms/step; sum of per-op minima {1e3 * total:.2f} ms/step; 784x400 arrays: "
              f"{reads} reads, {writes} writes per step")
        print_op_profile(per_op, ops, category, args.top)
        if args.passes:
            print("   instructions touching the 784x400 arrays:\n     " + "\n     ".join(lines))
        print()


if __name__ == "__main__":
    main()
