"""Benchmark: VAE training throughput (examples/s) on MNIST, espresso_jax against PyTorch (CPU).

    python benchmarks/bench_vae.py            # 8,000 MNIST images, 5 timed epochs, 5 repeats
    python benchmarks/bench_vae.py --quick    # 2,000 images, 1 epoch, 2 repeats (smoke test)

Same model, loss, optimiser and data on both sides (Kingma & Welling 2014, AEVB):
encoder MLP 784-500-500 -> (mu, log sigma^2) of a 20-D Gaussian, mirror decoder 20-500-500-784
with Bernoulli logits, ReLU hidden units; SGVB estimator B (analytic KL, L = 1 sample),
loss -(N/M) * sum of the per-example ELBOs, dynamic binarisation of each minibatch, Adam(1e-3),
batch 100, a fresh shuffle each epoch. Ours is ``espresso_jax.nn.vae.make_loss`` driven by
``espresso_jax.train.fit`` (jitted ``lax.scan`` over the minibatches of an epoch); the peer is
the textbook PyTorch loop (``zero_grad``/``backward``/``step`` per minibatch) with
``torch.get_num_threads()`` threads. Throughput = examples processed / wall time of the timed
epochs (median of ``--repeats`` runs after a warm-up epoch: compilation on our side). The
final training ELBOs are printed: they must be comparable (same model, same number of steps).

The machine's floor is measured in the same run, interleaved with the two sides: the f32 GEMM
rate of JAX on this device (``espresso_jax.apps.roofline.gemm_rate``, 2048 x 2048, median of 3
per repeat) turned into examples/s with the step's FLOPs (``roofline.mlp_step_flops``:
``6 · batch · Σ in·out`` over the encoder 784-500-500-40 and the decoder 20-500-500-784, 0.79
GFLOP per step of 100). Printed: both throughputs, the floor, ours/PyTorch and ours/floor, and
the process CPU time per step of each side (the wall times are unreliable on a loaded machine).
Beside it the *per-shape floor*: the step's 17 products (forward, weight and input gradients,
0.72 GFLOP) each timed alone in JAX at their own batch-100 shapes and layouts
(``_common.vae_step_dots``, ``per_shape_floor``), summed, once per repeat: the examples/s the
products alone would allow at the rate JAX reaches on those shapes.

PyTorch: ``pip install torch==2.13.0`` (the CPU build on this machine's disk).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from _common import per_shape_floor, print_machine, print_result, torch_mlp, vae_step_dots
from espresso_jax import train
from espresso_jax.apps import roofline
from espresso_jax.datasets import load_mnist
from espresso_jax.nn import vae

LATENT, HIDDEN, BATCH, LR = 20, (500, 500), 100, 1e-3


def jax_runner(X: np.ndarray, epochs: int):
    model = vae.VAE(data_dim=784, latent_dim=LATENT, hidden=HIDDEN)
    params = vae.init(jax.random.key(0), model)
    loss = vae.make_loss(model, X.shape[0], estimator="B", n_samples=1, binarize=True)
    data = jnp.asarray(X)
    optimizer = optax.adam(LR)

    def run():
        res = train.fit(jax.random.key(1), loss, params, data, optimizer=optimizer,
                        batch_size=BATCH, n_epochs=epochs, epochs_per_chunk=epochs,
                        has_aux=True, progress=False)
        jax.block_until_ready(res.state.params)
        return float(res.history["elbo"][-1])

    return run


def torch_runner(X: np.ndarray, epochs: int):
    import torch
    from torch import nn

    data = torch.from_numpy(X)
    n = data.shape[0]

    def neg_elbo(encoder, decoder, x):
        h = encoder(x)
        mu, logvar = h[:, :LATENT], h[:, LATENT:]
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = decoder(z)
        log_px = (x * logits - nn.functional.softplus(logits)).sum(-1)
        kl = 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar).sum(-1)
        elbo = log_px - kl
        return -(n / x.shape[0]) * elbo.sum(), elbo.mean()

    def run():
        # every run starts from a fresh model, as ours does (same number of steps)
        torch.manual_seed(0)
        encoder = torch_mlp((784, *HIDDEN, 2 * LATENT))
        decoder = torch_mlp((LATENT, *HIDDEN[::-1], 784))
        optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=LR)
        elbo = None
        for _ in range(epochs):
            perm = torch.randperm(n)
            for i in range(n // BATCH):
                x = torch.bernoulli(data[perm[i * BATCH:(i + 1) * BATCH]])
                optimizer.zero_grad(set_to_none=True)
                loss, elbo = neg_elbo(encoder, decoder, x)
                loss.backward()
                optimizer.step()
        return float(elbo.detach())

    return run, torch.get_num_threads(), torch.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke test")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs per run")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    args = parser.parse_args()
    n = 2_000 if args.quick else 8_000
    epochs = args.epochs or (1 if args.quick else 5)
    repeats = args.repeats or (2 if args.quick else 5)

    print_machine()
    X, _ = load_mnist("train")
    X = np.ascontiguousarray(X[:n], dtype=np.float32)
    ours = jax_runner(X, epochs)
    peer, threads, torch_version = torch_runner(X, epochs)
    print(f"torch {torch_version} ({threads} threads) "
          f"| XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print(f"data: MNIST {n} images, batch {BATCH}, {epochs} epoch(s) per run, median of "
          f"{repeats} runs after warm-up\n")

    examples = n // BATCH * BATCH * epochs
    steps = examples // BATCH
    step_flops = (roofline.mlp_step_flops((784, *HIDDEN, 2 * LATENT), BATCH)
                  + roofline.mlp_step_flops((LATENT, *HIDDEN[::-1], 784), BATCH))
    # alternate the sides (and the GEMM floor) so that a change in machine load hits all three
    t_ours, t_peer, c_ours, c_peer, gemm, shape = [], [], [], [], [], []
    ours(), peer()  # warm-up: compilation on our side, allocator and thread pool on both
    dots = vae_step_dots(BATCH)
    for _ in range(repeats):
        gemm.append(roofline.gemm_rate(repeats=3).per_second)
        shape_seconds, shape_flops, _ = per_shape_floor(dots)
        shape.append(shape_seconds)
        start, cpu = time.perf_counter(), time.process_time()
        elbo_ours = ours()
        t_ours.append(time.perf_counter() - start)
        c_ours.append(time.process_time() - cpu)
        start, cpu = time.perf_counter(), time.process_time()
        elbo_peer = peer()
        t_peer.append(time.perf_counter() - start)
        c_peer.append(time.process_time() - cpu)
    thr_ours = examples / float(np.median(t_ours))
    thr_peer = examples / float(np.median(t_peer))
    gemm_rate = float(np.median(gemm))
    thr_floor = gemm_rate / step_flops * BATCH
    ratio = thr_ours / thr_peer
    print(f"{'':10s} {'examples/s':>11s} {'CPU ms/step':>12s} {'final batch ELBO':>17s}")
    print(f"{'ours':10s} {thr_ours:11.0f} {1e3 * np.median(c_ours) / steps:12.2f} "
          f"{elbo_ours:17.2f}")
    print(f"{'pytorch':10s} {thr_peer:11.0f} {1e3 * np.median(c_peer) / steps:12.2f} "
          f"{elbo_peer:17.2f}")
    print(f"{'GEMM floor':10s} {thr_floor:11.0f}   (f32 GEMM {gemm_rate / 1e9:.0f} GFLOP/s, "
          f"{step_flops / 1e9:.2f} GFLOP per step)")
    shape_step = float(np.median(shape))
    thr_shape = BATCH / shape_step
    print(f"{'per-shape':10s} {thr_shape:11.0f}   ({len(dots)} products at their own shapes, "
          f"{shape_step * 1e3:.2f} ms per step, {shape_flops / shape_step / 1e9:.0f} GFLOP/s)")
    print(f"\nthroughput ratio ours/pytorch {ratio:.2f}x (goal >= 2x): "
          f"{'met' if ratio >= 2 else 'NOT met'}")
    print(f"fraction of the GEMM floor ours/floor {thr_ours / thr_floor:.2f} (goal >= 0.75): "
          f"{'met' if thr_ours >= 0.75 * thr_floor else 'NOT met'}; "
          f"pytorch/floor {thr_peer / thr_floor:.2f}; ours/per-shape floor "
          f"{thr_ours / thr_shape:.2f}")
    print_result(f"MNIST VAE 784-500-500-20 batch {BATCH}, {n} images", thr_ours, thr_peer,
                 peer_name=f"PyTorch {torch_version} CPU", unit="examples/s", ratio=ratio,
                 goal=">= 2", met=ratio >= 2)
    print_result(f"MNIST VAE 784-500-500-20 batch {BATCH}, {n} images, against the GEMM floor",
                 thr_ours, thr_floor, peer_name="f32 GEMM floor (same run)",
                 unit="examples/s", ratio=thr_ours / thr_floor, goal=">= 0.75",
                 met=thr_ours >= 0.75 * thr_floor)
    if hasattr(os, "getloadavg"):
        print("load average at the end (1/5/15 min): "
              + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
