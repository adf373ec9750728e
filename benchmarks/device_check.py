"""Accelerator readiness in one command: floors, hot paths against them, peers, tests.

    python benchmarks/device_check.py                 # full sizes (a GPU: under 8 minutes)
    python benchmarks/device_check.py --quick         # small sizes (a CPU: ~1 minute)
    benchmarks/device_check.sh                        # set-up (make's bench extra), then full

On JAX's default device (GPU or TPU when the installed jaxlib sees one, else the CPU) it
measures, in one run, and writes ``device_check.json`` and ``device_check.md`` to ``--out``:

1. the device and versions;
2. the device's own floors: f32 GEMM FLOP/s and streaming bandwidth
   (``espresso_jax.apps.roofline``);
3. the GMM EM iteration (full covariances; per-iteration time from two fits of different
   lengths, so initialisation cancels) as achieved FLOP/s and bytes/s against those floors;
   16 vmapped restarts against one fit;
4. the VAE training step (784-500-500-20, batch 100, Adam; ``train.fit`` over one epoch) as
   achieved FLOP/s against the GEMM floor;
5. the peak memory in use;
6. the benchmark scripts' ratios against their peers (``--benchmarks``; each script picks its
   peer's device itself: gmmx runs on JAX's device, PyTorch on CUDA only when it sees one,
   scikit-learn on the CPU);
7. the accelerator-relevant test subset (``--tests``): pass/fail counts from pytest.

Sizes: ``--quick`` shrinks every problem so that the default test suite runs the whole check
on the CPU (tests/test_device_check.py), which keeps the script from rotting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax

from espresso_jax import train
from espresso_jax.apps import roofline
from espresso_jax.apps.bench import find_bench_dir, run_benchmarks
from espresso_jax.mixture import gmm
from espresso_jax.nn import vae

ROOT = Path(__file__).resolve().parents[1]
# The tests whose code paths run compiled on the device (engines, mixtures, networks), not
# the host-only ones (CLI, report, validation, properties).
ACCELERATOR_TESTS = ["tests/test_em.py", "tests/test_mixture_gmm.py", "tests/test_train.py",
                     "tests/test_nn_vae.py", "tests/test_bnn_bbb.py", "tests/test_bnn_dropout.py",
                     "tests/test_mixture_vbgmm.py", "tests/test_linear_gp.py"]
SIZES = {
    "full": dict(gemm_n=4096, bandwidth_mib=512, gmm=(1_000_000, 8, 16), restarts=16,
                 vae_steps=50, vae_hidden=(500, 500)),
    "quick": dict(gemm_n=256, bandwidth_mib=16, gmm=(4096, 4, 4), restarts=4,
                  vae_steps=5, vae_hidden=(64, 64)),
}


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else the platform's machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def device_info() -> dict[str, Any]:
    dev = jax.devices()[0]
    return {"backend": jax.default_backend(), "device_kind": dev.device_kind,
            "device_count": jax.device_count(), "jax": jax.__version__,
            "machine": cpu_model(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "cpu_count": os.cpu_count(), "python": platform.python_version()}


def floors(size: dict[str, Any]) -> dict[str, Any]:
    g = roofline.gemm_rate(size["gemm_n"])
    b = roofline.bandwidth(size["bandwidth_mib"] * 2 ** 20)
    return {"gemm_f32_flops": g.per_second, "gemm_n": g.size,
            "bandwidth_bytes_per_s": b.per_second, "bandwidth_mib": size["bandwidth_mib"]}


def gmm_check(size: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    n, d, k = size["gmm"]
    X = jax.random.normal(jax.random.key(0), (n, d), jnp.float32)

    def fit(max_iter: int, n_init: int = 1):
        return lambda: gmm.fit(jax.random.key(1), X, k, max_iter=max_iter, tol=0.0,
                               init="random", n_init=n_init).params

    short, long_ = roofline.median_seconds(fit(5), 3), roofline.median_seconds(fit(15), 3)
    per_iter = max(long_ - short, 1e-9) / 10
    restarts = roofline.median_seconds(fit(15, size["restarts"]), 3)
    flops, bytes_moved = roofline.gmm_em_iteration_work(n, d, k)
    return {"n": n, "d": d, "k": k, "seconds_per_iteration": per_iter,
            "achieved_flops": flops / per_iter, "achieved_bytes_per_s": bytes_moved / per_iter,
            "fraction_of_gemm": flops / per_iter / floor["gemm_f32_flops"],
            "fraction_of_bandwidth": bytes_moved / per_iter / floor["bandwidth_bytes_per_s"],
            "n_init": size["restarts"], "restarts_over_one_fit": restarts / long_}


def vae_check(size: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    batch, steps, hidden = 100, size["vae_steps"], size["vae_hidden"]
    X = (jax.random.uniform(jax.random.key(0), (batch * steps, 784)) < 0.3).astype(jnp.float32)
    model = vae.VAE(data_dim=784, latent_dim=20, hidden=hidden)
    params = vae.init(jax.random.key(1), model)
    loss = vae.make_loss(model, X.shape[0], estimator="B", n_samples=1)
    opt = optax.adam(1e-3)

    def run():
        return train.fit(jax.random.key(2), loss, params, X, optimizer=opt, batch_size=batch,
                         n_epochs=1, has_aux=True, progress=False).state.params

    per_step = roofline.median_seconds(run, 3) / steps
    widths = [784, *hidden, 40], [20, *reversed(hidden), 784]     # encoder (μ, log σ²), decoder
    flops = sum(roofline.mlp_step_flops(w, batch) for w in widths)
    return {"hidden": list(hidden), "batch": batch, "seconds_per_step": per_step,
            "examples_per_s": batch / per_step, "achieved_flops": flops / per_step,
            "fraction_of_gemm": flops / per_step / floor["gemm_f32_flops"]}


def run_tests(paths: list[str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           *paths]
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        text, code = out.stdout + out.stderr, out.returncode
    except subprocess.TimeoutExpired:
        text, code = f"timed out after {timeout:g} s", -1
    counts = {m.group(2): int(m.group(1))
              for m in re.finditer(r"(\d+) (passed|failed|errors?|skipped)", text)}
    return {"files": paths, "returncode": code, "counts": counts,
            "seconds": time.perf_counter() - start, "tail": text.strip().splitlines()[-1:]}


def markdown(report: dict[str, Any]) -> str:
    info, fl, g, v = report["device"], report["floors"], report["gmm"], report["vae"]
    mem_bytes, mem_source = report["peak_memory"]
    lines = [f"# Device check ({report['mode']})", "",
             f"{info['backend']}: {info['device_kind']} x{info['device_count']}, jax "
             f"{info['jax']}, {info['machine']}"
             + (f", XLA_FLAGS={info['xla_flags']}" if info["xla_flags"] else ""), "",
             "| measure | value | against the floor |", "|---|---|---|",
             f"| f32 GEMM (n = {fl['gemm_n']}) | {fl['gemm_f32_flops'] / 1e9:.1f} GFLOP/s "
             "| floor |",
             f"| streaming bandwidth ({fl['bandwidth_mib']} MiB) | "
             f"{fl['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s | floor |",
             f"| GMM EM iteration (N={g['n']}, D={g['d']}, K={g['k']}) | "
             f"{g['seconds_per_iteration'] * 1e3:.2f} ms | {100 * g['fraction_of_gemm']:.1f} % "
             f"of GEMM, {100 * g['fraction_of_bandwidth']:.1f} % of bandwidth |",
             f"| GMM {g['n_init']} vmapped restarts / one fit | {g['restarts_over_one_fit']:.2f}x"
             " | |",
             f"| VAE step (784-{'-'.join(map(str, v['hidden']))}-20, batch {v['batch']}) | "
             f"{v['examples_per_s']:.0f} ex/s | {100 * v['fraction_of_gemm']:.1f} % of GEMM |",
             f"| peak memory | {mem_bytes / 2 ** 20:.0f} MiB | {mem_source} |", ""]
    if report["benchmarks"]:
        lines += ["| benchmark | case | ours | peer | ratio |", "|---|---|---|---|---|"]
        for b in report["benchmarks"]:
            for r in b["rows"] or [{"case": b["error"], "ours": "", "peer": "", "ratio": ""}]:
                lines.append(f"| {b['name']} | {r['case']} | {r['ours']} | "
                             f"{r.get('peer_name', '')} {r['peer']} | {r['ratio']} |")
        lines.append("")
    if report["tests"] is not None:
        t = report["tests"]
        lines += [f"Tests ({len(t['files'])} files, {t['seconds']:.0f} s): {t['counts']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (CPU smoke run)")
    p.add_argument("--out", default="device_check", help="folder for the JSON and Markdown")
    p.add_argument("--benchmarks", nargs="*", default=None,
                   help="benchmark names to run (default: gmm vae uci; none with --quick)")
    p.add_argument("--tests", nargs="*", default=None,
                   help="test files to run (default: the accelerator subset; none with --quick)")
    p.add_argument("--test-timeout", type=float, default=300.0)
    args = p.parse_args(argv)
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    names = args.benchmarks if args.benchmarks is not None else (
        [] if args.quick else ["gmm", "vae", "uci"])
    tests = args.tests if args.tests is not None else ([] if args.quick else ACCELERATOR_TESTS)

    report: dict[str, Any] = {"mode": mode, "device": device_info()}
    report["floors"] = floors(size)
    report["gmm"] = gmm_check(size, report["floors"])
    report["vae"] = vae_check(size, report["floors"])
    report["peak_memory"] = roofline.peak_memory_bytes()
    runs = run_benchmarks(find_bench_dir(), only=names, quick=args.quick) if names else []
    report["benchmarks"] = [{"name": r.name, "rows": r.rows, "error": r.error,
                             "seconds": r.seconds} for r in runs]
    report["tests"] = run_tests(tests, args.test_timeout) if tests else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "device_check.json").write_text(json.dumps(report, indent=1, default=float))
    (out / "device_check.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
