"""Helpers shared by the benchmark scripts: timing and the machine/version banner."""

from __future__ import annotations

import os
import platform
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
