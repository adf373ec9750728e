"""Benchmark: VQ-VAE training steps/s on MNIST, espresso_jax against PyTorch (CPU).

    python benchmarks/bench_vqvae.py            # 8,000 MNIST images, 3 timed epochs, 3 repeats
    python benchmarks/bench_vqvae.py --quick    # 2,000 images, 1 epoch, 2 repeats (smoke test)

Same model, loss, optimiser and data on both sides (van den Oord et al. 2017): MLP encoder
784-512-256-(8 x 16), nearest of 64 codes per latent vector with the straight-through
gradient, mirror decoder, loss = squared error summed over pixels + codebook term + 0.25 x
commitment (codebook learnt by its loss term), Adam(1e-3), batch 100, a fresh shuffle each
epoch. Ours is ``espresso_jax.nn.vqvae.fit`` (``train.fit``: jitted ``lax.scan`` over the
minibatches of an epoch); the peer is the textbook PyTorch loop with
``torch.get_num_threads()`` threads. Steps/s = steps of the timed epochs / wall time (median
of ``--repeats`` runs after a warm-up run: compilation on our side). The final training
losses are printed: they must be comparable (same model, same number of steps).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
import optax

from _common import print_machine, print_result, torch_mlp
from espresso_jax.datasets import load_mnist
from espresso_jax.nn import vqvae

HIDDEN, L, D, K, BETA, BATCH, LR = (512, 256), 8, 16, 64, 0.25, 100, 1e-3


def jax_runner(X: np.ndarray, epochs: int):
    model = vqvae.VQVAE(hidden=HIDDEN, n_latents=L, embedding_dim=D, codebook_size=K)
    data = jax.numpy.asarray(X)

    def run():
        res = vqvae.fit(jax.random.key(0), data, module=model, optimizer=optax.adam(LR),
                        batch_size=BATCH, n_epochs=epochs, beta=BETA, epochs_per_chunk=epochs,
                        progress=False)
        jax.block_until_ready(res.state.params)
        return float(res.history["loss"][-1])

    return run


def torch_runner(X: np.ndarray, epochs: int):
    import torch
    from torch import nn

    data = torch.from_numpy(X)
    n = data.shape[0]

    def loss_fn(encoder, decoder, codebook, x):
        z_e = encoder(x).reshape(x.shape[0], L, D)
        dist = (codebook * codebook).sum(-1) - 2.0 * z_e @ codebook.T     # (M, L, K)
        e = codebook[dist.argmin(-1)]
        z_q = z_e + (e - z_e).detach()
        recon = ((x - decoder(z_q.reshape(x.shape[0], L * D))) ** 2).sum(-1)
        cb = ((z_e.detach() - e) ** 2).sum((-2, -1))
        commit = ((z_e - e.detach()) ** 2).sum((-2, -1))
        return (recon + cb + BETA * commit).mean()

    def run():
        torch.manual_seed(0)
        encoder = torch_mlp((784, *HIDDEN, L * D))
        decoder = torch_mlp((L * D, *HIDDEN[::-1], 784))
        codebook = nn.Parameter(torch.randn(K, D))
        optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters(), codebook],
                                     lr=LR)
        loss = None
        for _ in range(epochs):
            perm = torch.randperm(n)
            for i in range(n // BATCH):
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(encoder, decoder, codebook, data[perm[i * BATCH:(i + 1) * BATCH]])
                loss.backward()
                optimizer.step()
        return float(loss.detach())

    return run, torch.get_num_threads(), torch.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke test")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs per run")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    args = parser.parse_args()
    n = 2_000 if args.quick else 8_000
    epochs = args.epochs or (1 if args.quick else 3)
    repeats = args.repeats or (2 if args.quick else 3)

    print_machine()
    X = np.ascontiguousarray(load_mnist("train")[0][:n], dtype=np.float32)
    ours = jax_runner(X, epochs)
    peer, threads, torch_version = torch_runner(X, epochs)
    print(f"torch {torch_version} ({threads} threads) "
          f"| XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print(f"data: MNIST {n} images, batch {BATCH}, {epochs} epoch(s) per run, median of "
          f"{repeats} runs after warm-up\n")
    steps = n // BATCH * epochs
    t_ours, t_peer = [], []
    ours(), peer()  # warm-up: compilation on our side, allocator and thread pool on both
    for _ in range(repeats):  # alternate the sides so that a change in load hits both
        start = time.perf_counter()
        loss_ours = ours()
        t_ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        loss_peer = peer()
        t_peer.append(time.perf_counter() - start)
    sps_ours = steps / float(np.median(t_ours))
    sps_peer = steps / float(np.median(t_peer))
    ratio = sps_ours / sps_peer
    print(f"{'':10s} {'steps/s':>9s} {'final batch loss':>17s}")
    print(f"{'ours':10s} {sps_ours:9.1f} {loss_ours:17.2f}")
    print(f"{'pytorch':10s} {sps_peer:9.1f} {loss_peer:17.2f}")
    print(f"\nsteps/s ratio ours/pytorch {ratio:.2f}x")
    print_result(f"MNIST VQ-VAE 784-512-256-(8x16), K={K}, batch {BATCH}, {n} images",
                 sps_ours, sps_peer, peer_name=f"PyTorch {torch_version} CPU",
                 unit="steps/s", ratio=ratio)
    if hasattr(os, "getloadavg"):
        print("load average at the end (1/5/15 min): "
              + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
