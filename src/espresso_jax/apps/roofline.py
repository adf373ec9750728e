"""The machine's own floors, measured in JAX on the default device, and the work models that
turn a timed step into achieved FLOP/s and bytes/s against them.

- :func:`gemm_rate`: FLOP/s of a square matrix product (``2 n³`` FLOPs), the compute floor.
- :func:`bandwidth`: bytes/s of a streaming ``y = x + 1`` over an array much larger than the
  caches (one read and one write per element), the memory floor.
- :func:`gmm_em_iteration_work` and :func:`mlp_step_flops`: FLOPs (and bytes) of a
  full-covariance GMM EM iteration and of one training step of a dense network, counted
  from the shapes.
- :func:`peak_memory_bytes`: the device's peak memory in use when the backend reports it
  (GPU/TPU), else the process's peak resident set (CPU).

Each timing is the median of ``repeats`` calls after a warm-up call (the compile), every call
blocked until its result is ready.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Rate", "bandwidth", "gemm_rate", "gmm_em_iteration_work", "median_seconds",
           "mlp_step_flops", "peak_memory_bytes"]


class Rate(NamedTuple):
    """A measured rate.

    Attributes:
        per_second: FLOP/s or bytes/s.
        seconds: median time of one call.
        work: FLOPs or bytes of one call.
        size: the problem size measured (matrix order or array length).
    """

    per_second: float
    seconds: float
    work: float
    size: int


def median_seconds(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after one warm-up call; ``fn``'s
    result is blocked on (``jax.block_until_ready``) inside the timing."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_rate(n: int = 2048, *, dtype: Any = jnp.float32, repeats: int = 5) -> Rate:
    """FLOP/s of ``A @ B`` for ``(n, n)`` matrices of ``dtype`` on the default device.

    ``2 n³`` FLOPs per product (one multiply and one add per term). ``n = 2048`` saturates a
    CPU core's vector units and a GPU's; smaller ``n`` measures less than the peak.
    """
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), dtype)
    b = jax.random.normal(kb, (n, n), dtype)
    matmul = jax.jit(jnp.matmul)
    seconds = median_seconds(lambda: matmul(a, b), repeats)
    work = 2.0 * n ** 3
    return Rate(work / seconds, seconds, work, n)


def bandwidth(n_bytes: int = 256 * 2 ** 20, *, repeats: int = 5) -> Rate:
    """Bytes/s of ``y = x + 1`` over a float32 array of ``n_bytes`` (read ``x``, write ``y``:
    ``2 n_bytes`` of traffic per call). Use an array several times the last-level cache
    (the default 256 MiB is, on CPUs and GPUs alike)."""
    n = max(1, n_bytes // 4)
    x = jnp.zeros((n,), jnp.float32)
    add_one = jax.jit(lambda v: v + 1.0)
    seconds = median_seconds(lambda: add_one(x), repeats)
    work = 2.0 * 4 * n
    return Rate(work / seconds, seconds, work, n)


def gmm_em_iteration_work(n: int, d: int, k: int, *, itemsize: int = 4
                          ) -> tuple[float, float]:
    """``(flops, bytes)`` of one full-covariance GMM EM iteration on ``(n, d)`` data, ``k``
    components.

    E-step, per point and component: the whitened residual ``L⁻¹(x − μ)`` by a triangular
    solve (``d²`` FLOPs: a multiply and an add per entry of the triangle, plus ``d`` for the
    subtraction), its squared norm (``2d``), the log-sum-exp (~``4``). M-step: the weighted
    sums of ``x`` (``2d``) and of ``x xᵀ`` (``2d²``, counted in full). In all
    ``n k (3d² + 5d + 4)``. Bytes: ``X`` read by each step and the ``(n, k)``
    responsibilities written and read once each, ``itemsize (2nd + 2nk)``; the parameters
    are negligible. A fused iteration can move less, so the fraction of bandwidth it reports
    is a lower bound on what the hardware sustains.
    """
    flops = float(n) * k * (3 * d * d + 5 * d + 4)
    bytes_moved = float(itemsize) * (2 * n * d + 2 * n * k)
    return flops, bytes_moved


def mlp_step_flops(widths: Sequence[int], batch: int) -> float:
    """FLOPs of one training step (forward and backward) of a dense network with layer widths
    ``widths`` (input first) on ``batch`` examples: ``2·batch·in·out`` per layer forward,
    twice that backward (gradients of the inputs and of the weights): ``6·batch·Σ in·out``.
    Element-wise work (activations, the optimiser) is not counted."""
    pairs = zip(widths[:-1], widths[1:], strict=True)
    return 6.0 * batch * sum(a * b for a, b in pairs)


def peak_memory_bytes(device: jax.Device | None = None) -> tuple[int | None, str]:
    """``(bytes, source)``: the device's ``peak_bytes_in_use`` where its backend reports memory
    statistics (GPU, TPU), else the process's peak resident set size (CPU; ``ru_maxrss``)."""
    device = jax.devices()[0] if device is None else device
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # backends without memory statistics raise or return None
        stats = None
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device peak_bytes_in_use"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024             # Linux reports KiB
    return int(rss) * scale, "process peak resident set (ru_maxrss)"
