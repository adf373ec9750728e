"""Benchmark: Bayes-by-Backprop training step time against a deterministic MLP of the same size.

    python benchmarks/bench_bbb.py            # 8,000 MNIST images, 2 timed epochs, 5 repeats
    python benchmarks/bench_bbb.py --quick    # 2,000 images, 1 epoch, 2 repeats (smoke test)

What is compared (one process, same data, same engine): the time per training step of
``espresso_jax.train.run_epochs`` (jitted, ``lax.scan`` over the shuffled minibatches of each
epoch, ``block_until_ready`` at the end) for a 784-400-400-10 ReLU classifier on MNIST,
batch 128, Adam(1e-3), in four variants:

* ``deterministic``: :class:`espresso_jax.nn.modules.MLP` with the mean softmax cross-entropy
  (the baseline, ``train.make_step``);
* ``bbb``: :class:`espresso_jax.bnn.bbb.BayesMLP`, one weight sample per minibatch, Gaussian
  prior N(0, 1) with the closed-form KL, :class:`~espresso_jax.bnn.bbb_elbo.ELBOLoss`
  (categorical likelihood, uniform KL weights, per-example scale) and
  :func:`espresso_jax.bnn.bbb_elbo.make_step`;
* ``bbb mixture prior``: as ``bbb`` with Blundell's scale-mixture prior (pi = 1/2,
  sigma1 = e^0, sigma2 = e^-6) and its one-sample Monte-Carlo KL;
* ``bbb local reparam``: as ``bbb`` with the local reparameterisation trick (two matmuls per
  layer: mean and variance of the pre-activations).

Every timed run starts from the same initial state and runs the same number of steps;
the time per step is the run's wall time divided by its steps (median of ``--repeats`` runs
after a warm-up run that compiles; the variants are timed in turn within each repeat so that a
change in machine load hits all of them). Goal: a BBB step costs at most 2x a deterministic
step (ratio BBB / deterministic <= 2). The extra work of BBB is per weight (drawing the noise,
softplus, the KL and its gradient, Adam on mu and rho), so it does not grow with the batch
while the matmuls do: ``--batch`` shows how the ratio falls with the batch size; a diagnostic
line times the noise draw (``jax.random.normal`` against the fused
:func:`espresso_jax.prob.threefry_normal.standard_normal`, the same numbers) and the Adam
updates alone. The mean training loss of the last epoch is printed as a sanity check
(cross-entropy for the baseline, per-example negative ELBO for BBB).

The machine's floor: the f32 GEMM rate measured in the same run (a jitted 1024^3 matmul,
median), and the fraction of it each step reaches (the step's matmul FLOPs: forward, weight
gradients and input gradients of layers 2 and 3; twice that with local reparameterisation).
Both wall time and process CPU time (user + sys, all threads) per step are printed: on a
loaded machine the CPU time is the steadier figure.

References:
    Blundell, Cornebise, Kavukcuoglu, Wierstra (2015). Weight Uncertainty in Neural Networks.
    ICML.
    Kingma, Salimans, Welling (2015). Variational Dropout and the Local Reparameterization
    Trick. NeurIPS.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from _common import median_time, print_machine, print_result
from espresso_jax import train
from espresso_jax.bnn import bbb, bbb_elbo
from espresso_jax.datasets import load_mnist
from espresso_jax.nn.modules import MLP
from espresso_jax.prob.threefry_normal import standard_normal

FEATURES, LR = (400, 400, 10), 1e-3


def deterministic_loss(module, params, batch, key):
    """Mean softmax cross-entropy of a deterministic MLP (``key`` unused)."""
    del key
    logits = module.apply(params, batch["x"])
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]))


def make_runner(step, state0, data, n_epochs: int, batch_size: int):
    """A function that runs ``n_epochs`` epochs of ``step`` from ``state0`` (jitted once) and
    returns the mean loss of the last epoch after blocking on the result."""
    run = jax.jit(functools.partial(train.run_epochs, step_fn=step, batch_size=batch_size,
                                    n_epochs=n_epochs))
    key = jax.random.key(2)

    def go():
        state, metrics = run(key, state=state0, data=data)
        jax.block_until_ready(state.params)
        return float(metrics["loss"][-1])

    return go


VARIANTS = {
    "bbb": dict(),
    "bbb mixture prior": dict(prior=bbb.scale_mixture_prior(0.5, 1.0, math.exp(-6.0))),
    "bbb local reparam": dict(local_reparam=True),
}


def build_cases_steps(data: dict, batch_size: int, names=None) -> dict:
    """``{name: (step, state0)}`` for the variants ``names`` (default: the deterministic
    baseline and every entry of ``VARIANTS``), same data, same optimiser settings."""
    names = ("deterministic", *VARIANTS) if names is None else names
    n = data["x"].shape[0]
    x0 = data["x"][:1]
    optimizer = optax.adam(LR)
    cases = {}
    for name in names:
        if name == "deterministic":
            mlp = MLP(features=FEATURES)
            params = mlp.init(jax.random.key(0), x0)
            step = train.make_step(functools.partial(deterministic_loss, mlp), optimizer)
        else:
            module = bbb.BayesMLP(features=FEATURES, **VARIANTS[name])
            params = bbb_elbo.init_params(jax.random.key(0), module, x0)
            loss = bbb_elbo.ELBOLoss(module, n, "categorical", normalize=True)
            step = bbb_elbo.make_step(loss, optimizer, n_batches=n // batch_size,
                                      schedule="uniform")
        cases[name] = (step, train.init_state(jax.random.key(1), params, optimizer))
    return cases


def build_cases(X: np.ndarray, y: np.ndarray, n_epochs: int, batch_size: int):
    """``{name: runner}`` for the four variants (same data, same optimiser settings)."""
    data = {"x": jnp.asarray(X), "y": jnp.asarray(y)}
    return {name: make_runner(step, state0, data, n_epochs, batch_size)
            for name, (step, state0) in build_cases_steps(data, batch_size).items()}


def overhead_diagnostics(n_weights: int, repeats: int
                         ) -> tuple[float, float, float, float, float]:
    """Milliseconds of the element-wise work a BBB step adds: drawing ``n_weights`` standard
    normals (``jax.random.normal``, the fused draw of the same numbers, and the fused draw
    with ``exact=False`` that the Bayesian layers use), and an Adam update
    of ``2 n_weights`` (mu and rho) against ``n_weights`` parameters (median of ``repeats``
    jitted calls after a warm-up)."""
    key = jax.random.key(0)
    draw = jax.jit(lambda k: jax.random.normal(k, (n_weights,)))
    t_draw, _ = median_time(lambda: jax.block_until_ready(draw(key)), repeats)
    fused = jax.jit(lambda k: standard_normal(k, (n_weights,)))
    t_fused, _ = median_time(lambda: jax.block_until_ready(fused(key)), repeats)
    fast = jax.jit(lambda k: standard_normal(k, (n_weights,), exact=False))
    t_fast, _ = median_time(lambda: jax.block_until_ready(fast(key)), repeats)
    optimizer = optax.adam(LR)
    t_adam = []
    for size in (2 * n_weights, n_weights):
        params = jnp.ones((size,), jnp.float32)
        state = optimizer.init(params)
        update = jax.jit(lambda p, s: optimizer.update(p, s, p))
        t, _ = median_time(lambda u=update, p=params, s=state: jax.block_until_ready(u(p, s)),
                           repeats)
        t_adam.append(t)
    return 1e3 * t_draw, 1e3 * t_fused, 1e3 * t_fast, 1e3 * t_adam[0], 1e3 * t_adam[1]


def gemm_gflops(repeats: int, size: int = 1024) -> float:
    """The machine's f32 GEMM rate in GFLOP/s: a jitted ``size``^3 matmul, median of
    ``repeats`` calls after a warm-up."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    mm = jax.jit(jnp.matmul)
    t, _ = median_time(lambda: jax.block_until_ready(mm(a, b)), repeats)
    return 2.0 * size ** 3 / t / 1e9


def step_gflop(batch: int, local_reparam: bool = False) -> float:
    """Matmul GFLOP of one training step: forward and weight gradient of every layer, input
    gradient of every layer but the first; local reparameterisation doubles all of them (a
    mean and a variance product)."""
    sizes = list(zip((784, *FEATURES[:-1]), FEATURES, strict=True))
    flops = sum(2 * batch * a * b * (2 if i == 0 else 3) for i, (a, b) in enumerate(sizes))
    return flops * (2 if local_reparam else 1) / 1e9


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke test")
    parser.add_argument("--n", type=int, default=None, help="training images (<= 8000)")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs per run")
    parser.add_argument("--batch", type=int, default=128, help="minibatch size")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    args = parser.parse_args()
    n = args.n or (2_000 if args.quick else 8_000)
    epochs = args.epochs or (1 if args.quick else 2)
    repeats = args.repeats or (2 if args.quick else 5)

    print_machine()
    X, y = load_mnist("train")
    X, y = np.ascontiguousarray(X[:n], np.float32), np.ascontiguousarray(y[:n], np.int32)
    batch = args.batch
    steps = (n // batch) * epochs
    print(f"data: MNIST {n} images, 784-{'-'.join(map(str, FEATURES))} ReLU, batch {batch}, "
          f"Adam({LR:g}), {epochs} epoch(s) = {steps} steps per run, median of {repeats} runs "
          f"after warm-up | XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} "
          f"| jax_threefry_partitionable={jax.config.jax_threefry_partitionable}\n")

    cases = build_cases(X, y, epochs, batch)
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    losses = {}
    for go in cases.values():   # warm-up: compilation
        go()
    gemm = []
    for _ in range(repeats):
        gemm.append(gemm_gflops(3))
        for name, go in cases.items():
            start, start_cpu = time.perf_counter(), cpu_seconds()
            losses[name] = go()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(cpu_seconds() - start_cpu)
    ms = {name: 1e3 * float(np.median(t)) / steps for name, t in times.items()}
    cpu_ms = {name: 1e3 * float(np.median(t)) / steps for name, t in cpu.items()}
    rate = float(np.median(gemm))

    base, base_cpu = ms["deterministic"], cpu_ms["deterministic"]
    print(f"f32 GEMM rate (1024^3 matmul, median): {rate:.1f} GFLOP/s\n")
    print(f"{'variant':20s} {'ms/step':>8s} {'x det':>7s} {'cpu ms/step':>12s} {'x det':>7s} "
          f"{'% GEMM rate':>12s} {'last-epoch loss':>16s}")
    for name in cases:
        gflop = step_gflop(batch, local_reparam="local" in name)
        print(f"{name:20s} {ms[name]:8.2f} {ms[name] / base:6.2f}x {cpu_ms[name]:12.2f} "
              f"{cpu_ms[name] / base_cpu:6.2f}x {100 * gflop / (ms[name] / 1e3) / rate:11.1f}% "
              f"{losses[name]:16.4f}")
    print()
    for name in cases:
        if name == "deterministic":
            continue
        ratio = ms[name] / base
        print(f"{name}: {ratio:.2f}x the deterministic step (goal <= 2x): "
              f"{'met' if ratio <= 2 else 'NOT met'}")
        print_result(f"MNIST 784-400-400-10 batch {batch}, {name} step vs deterministic",
                     ms[name], base, peer_name="deterministic MLP (same engine)",
                     unit="ms/step", ratio=ratio, goal="<= 2", met=ratio <= 2)
    n_weights = sum(a * b + b for a, b in zip((784, *FEATURES[:-1]), FEATURES, strict=True))
    t_draw, t_fused, t_fast, t_adam2, t_adam1 = overhead_diagnostics(n_weights,
                                                                     max(5, repeats))
    print(f"\ndiagnostic ({n_weights:,} weights): one threefry N(0,1) draw per weight "
          f"{t_draw:.2f} ms with jax.random.normal, {t_fused:.2f} ms fused (the same numbers), "
          f"{t_fast:.2f} ms fused with exact=False (the layers' draw); "
          f"Adam update of mu and rho {t_adam2:.2f} ms vs {t_adam1:.2f} ms for the "
          "deterministic weights")
    if hasattr(os, "getloadavg"):
        print("load average at the end (1/5/15 min): "
              + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
