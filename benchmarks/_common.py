"""Helpers shared by the benchmark scripts: timing, the machine/version banner, and the
machine-readable ``RESULT {json}`` lines that ``espresso-jax bench`` collects."""

from __future__ import annotations

import collections
import glob
import gzip
import json
import math
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from typing import Any


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Call ``fn`` once to warm up (JAX compiles), then return the median wall time of
    ``repeats`` further calls and the last result. ``fn`` must block until its work is done."""
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def print_machine() -> None:
    """Print the CPU, usable cores, and the versions of Python, JAX, scikit-learn and NumPy."""
    import jax
    import numpy as np
    import sklearn

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    print(f"machine: {platform.machine()} {platform.processor() or ''} | os.cpu_count()="
          f"{os.cpu_count()} usable={usable} | python {platform.python_version()}")
    print(f"jax {jax.__version__} ({jax.default_backend()}: {jax.devices()[0].device_kind}) | "
          f"scikit-learn {sklearn.__version__} | numpy {np.__version__}")


def print_result(case: str, ours: float, peer: float, *, peer_name: str, unit: str = "s",
                 ratio: float | None = None, goal: str | None = None,
                 met: bool | None = None) -> None:
    """Print one machine-readable line ``RESULT {json}`` (read by ``espresso-jax bench``).

    Args:
        case: what was measured (sizes, dtype).
        ours: our figure (e.g. seconds).
        peer: the peer's figure in the same unit.
        peer_name: who the peer is.
        unit: unit of ``ours`` and ``peer``.
        ratio: the ratio the script reports; default ``peer / ours`` (our speed-up).
        goal: the goal as text, e.g. ``">= 5"``.
        met: whether the goal was met.
    """
    ratio = peer / ours if ratio is None else ratio
    row = {"case": case, "ours": ours, "peer": peer, "ratio": ratio, "peer_name": peer_name,
           "unit": unit, "goal": goal, "met": met}
    row = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
           for k, v in row.items()}
    print("RESULT " + json.dumps(row), flush=True)


def torch_mlp(sizes: tuple[int, ...]) -> Any:
    """A PyTorch ``nn.Sequential`` of Linear layers of the given widths with ReLU between them
    (none after the last): the peer networks of the benchmarks (torch imported on call)."""
    from torch import nn

    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def mlp_step_dots(widths: tuple[int, ...], batch: int, *, input_grad: bool = False
                  ) -> list[tuple[str, int, int, int, str]]:
    """The matrix products of one training step of a dense network (input width first), as
    ``(what, M, K, N, layout)`` with ``2·M·K·N`` FLOPs each: per layer the forward product
    ``x (batch, in) @ W (in, out)`` (layout ``"nn"``), the weight gradient
    ``xᵀ (in, batch) @ δ (batch, out)`` (``"tn"``) and the input gradient
    ``δ (batch, out) @ Wᵀ (out, in)`` (``"nt"``), except for the first layer unless
    ``input_grad`` (data need no gradient; a VAE decoder's input ``z`` does)."""
    dots = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        dots.append((f"{a}->{b} forward", batch, a, b, "nn"))
        dots.append((f"{a}->{b} weight grad", a, batch, b, "tn"))
        if i > 0 or input_grad:
            dots.append((f"{a}->{b} input grad", batch, b, a, "nt"))
    return dots


def dot_seconds(m: int, k: int, n: int, layout: str, *, calls: int = 50,
                repeats: int = 5, reduce: Callable[[list[float]], float] = statistics.median
                ) -> float:
    """Median seconds of one f32 ``(m, k) @ (k, n)`` product in JAX on the default device,
    with the operands stored as the step stores them: ``layout`` ``"nn"`` (``A (m, k)``,
    ``B (k, n)``), ``"tn"`` (``A`` stored ``(k, m)``) or ``"nt"`` (``B`` stored ``(n, k)``).
    ``calls`` products are dispatched back to back (asynchronously) per timing so the
    dispatch cost overlaps the work, as inside a compiled loop; median of ``repeats`` (or
    ``reduce``, e.g. ``min`` on a loaded machine)."""
    import jax
    import jax.numpy as jnp

    ka, kb = jax.random.split(jax.random.key(0))
    a_shape = (k, m) if layout == "tn" else (m, k)
    b_shape = (n, k) if layout == "nt" else (k, n)
    a = jax.random.normal(ka, a_shape, jnp.float32)
    b = jax.random.normal(kb, b_shape, jnp.float32)
    contract = (((0,) if layout == "tn" else (1,)), ((1,) if layout == "nt" else (0,)))
    product = jax.jit(lambda x, y: jax.lax.dot_general(x, y, (contract, ((), ()))))
    jax.block_until_ready(product(a, b))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = [product(a, b) for _ in range(calls)]
        jax.block_until_ready(out)
        times.append((time.perf_counter() - start) / calls)
    return reduce(times)


def vae_step_dots(batch: int = 100) -> list[tuple[str, int, int, int, str]]:
    """The products of one VAE training step, 784-500-500-(20 + 20) encoder and 20-500-500-784
    decoder (the two 20-wide heads counted as one 40-wide product: the same FLOPs), as
    :func:`mlp_step_dots` lists them: 0.72 GFLOP at batch 100."""
    return (mlp_step_dots((784, 500, 500, 40), batch)
            + mlp_step_dots((20, 500, 500, 784), batch, input_grad=True))


def per_shape_floor(dots: list[tuple[str, int, int, int, str]], *, calls: int = 20,
                    repeats: int = 3,
                    reduce: Callable[[list[float]], float] = statistics.median
                    ) -> tuple[float, float, list[float]]:
    """``(seconds, flops, per-dot seconds)``: the time of the step's products each run alone
    at its own shape and layout (:func:`dot_seconds`, ``reduce`` over ``repeats``), summed,
    and their FLOPs."""
    seconds = [dot_seconds(m, k, n, layout, calls=calls, repeats=repeats, reduce=reduce)
               for _, m, k, n, layout in dots]
    flops = sum(2.0 * m * k * n for _, m, k, n, _ in dots)
    return sum(seconds), flops, seconds

def hlo_ops(text: str) -> dict[str, tuple[str, str]]:
    """name -> (opcode, op_name metadata) for every instruction of an optimised HLO module."""
    ops = {}
    for line in text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = .*? ([\w\-]+)\(", line)
        if m:
            meta = re.search(r'op_name="([^"]*)"', line)
            ops[m.group(1)] = (m.group(2), meta.group(1) if meta else "")
    return ops


def per_op_minima(trace_dir: str, ops: dict, steps: int) -> dict[str, float]:
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


def print_op_profile(per_op: dict[str, float], ops: dict, category: Callable[[str, str], str],
                     top: int) -> None:
    """Print per-op seconds per step (:func:`per_op_minima`) summed by ``category(opcode,
    meta)`` with their shares, then the ``top`` most expensive operations."""
    total = sum(per_op.values())
    groups: dict[str, float] = collections.defaultdict(float)
    for op, seconds in per_op.items():
        groups[category(*ops[op])] += seconds
    for label, seconds in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"   {label:36s} {1e3 * seconds:7.3f} ms  {100 * seconds / total:5.1f} %")
    print(f"   top {top} operations:")
    for op, seconds in sorted(per_op.items(), key=lambda kv: -kv[1])[:top]:
        opcode, meta = ops[op]
        print(f"   {1e3 * seconds:7.3f} ms  {op:28s} {category(opcode, meta)[:22]:22s} "
              f"{meta[-60:]}")
