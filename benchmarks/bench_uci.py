"""Benchmark: the whole UCI MC-dropout protocol, espresso_jax against a PyTorch (CPU) loop.

    python benchmarks/bench_uci.py             # yacht, 20 splits x 12 grid points, 10x epochs
    python benchmarks/bench_uci.py --dataset bostonHousing
    python benchmarks/bench_uci.py --quick     # yacht, 2 splits, 20 epochs, T = 1,000 / 100
    python benchmarks/bench_uci.py --dataset kin8nm --epochs 10 --n-samples 1000 \
        --n-samples-val 100                      # throughput: GFLOP/s against the GEMM rate
    python benchmarks/bench_uci.py --dataset kin8nm --common-random-numbers --no-peer ...
                                                 # one key per split shared by its grid
                                                 # points; no PyTorch loop

What is compared (one process, same data): the wall time of the protocol of Gal & Ghahramani
(2016) on the standard splits (:mod:`espresso_jax.apps.uci.protocol`): per split, train one
network per point of the data folder's dropout-rate x tau grid (4 x 3 = 12) on the first 80% of the
training rows, score each by its MC validation log-likelihood (``--n-samples-val`` passes) on
the last 20%, refit the best point on the whole training split and report the test RMSE and the
MC-mixture test log-likelihood (``--n-samples`` passes) in the target's original units.

* ours: :func:`espresso_jax.apps.uci.protocol.run_protocol` with
  :func:`~espresso_jax.apps.uci.protocol.dropout_method`
  -- every (split, grid point) network trained in one compiled, vmapped call. Its time is the
  first call's wall time, **JIT compilation included** (later calls with the same shapes reuse
  the compiled code: one extra, untimed-for-the-goal call reports the compiled run time);
* the peer: the straightforward PyTorch loop over splits and grid points (one ``nn.Module``
  per network, ``zero_grad``/``backward``/``step`` per minibatch), MC passes as one batched
  forward of ``T`` copies of the inputs in train mode. It runs on ``--torch-threads`` threads
  (default 1: for these 50-unit networks one thread is PyTorch's fastest setting -- on the
  2-core development machine its default of 2 threads was 5x slower on a quiet machine and up
  to 50x slower under load, from thread contention).

Same settings on both sides: inputs and target standardised with the training split's
statistics (:func:`espresso_jax.datasets.uci.standardized_split`); network dropout(p) ->
Dense(n_hidden = 50) -> ReLU -> dropout(p) -> Dense(1), Glorot-uniform kernels, zero biases,
inverted dropout; loss ``mean((y - f(x))^2) + l^2 (1 - p) / (2 N tau) * sum ||W||^2`` over the
kernels only, ``l = 1e-2``, ``tau`` in standardised units (``tau * y_std^2``); Adam(1e-3);
equal minibatches of :func:`~espresso_jax.apps.uci.protocol.balanced_batch_size` ``(N, 128)`` rows
drawn from a fresh permutation each epoch (remainder dropped); ``10 x`` the folder's epochs
(40 for yacht and boston: 400); the same ``T`` for validation and test. Random streams differ
(JAX vs PyTorch), so the test RMSE / log-likelihood agree statistically: both are printed as
mean +- standard error over splits with their difference in standard errors.
Goal: ours >= 5x faster than the PyTorch loop.

Throughput (issue 14): the script also prints the protocol's achieved GFLOP/s, counting the
dense FLOPs of every network (``2 (d h + h)`` per row forward, 3x that per training row for
forward + backward, forward only for the MC passes of validation and test) over the compiled
protocol's median wall time, next to the machine's float32 GEMM rate measured in the same run
(median of a 2048 x 2048 ``jnp.dot``) and the fraction of it the protocol sustains, and the
CPU time (user + sys of this process) of each, since a loaded machine inflates wall times.
The dropout masks and epoch permutations come from :mod:`espresso_jax.prob.fast_draws` (see
``benchmarks/RESULTS.md`` for the profile that motivated them). ``--common-random-numbers``
runs ours with ``run_protocol(..., common_random_numbers=True)`` (the grid points of a split
share its key: initial weights, epoch orders, mask words drawn once per epoch and split); the
PyTorch peer is unchanged.

References:
    Y. Gal and Z. Ghahramani. Dropout as a Bayesian approximation: representing model
    uncertainty in deep learning. ICML 2016.
    J. M. Hernández-Lobato and R. P. Adams. Probabilistic backpropagation for scalable learning
    of Bayesian neural networks. ICML 2015.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from _common import print_machine, print_result
from espresso_jax.apps.uci import protocol as uci
from espresso_jax.datasets.uci import UCI_NAMES, load_uci, standardized_split

LR, BATCH, LENGTH_SCALE, VAL_FRACTION = 1e-3, 128, 1e-2, 0.2


# --------------------------------------------------------------------------------- PyTorch peer


def torch_protocol(ds, *, n_splits: int, n_epochs: int, n_hidden: int, n_samples: int,
                   n_samples_val: int, seed: int = 0):
    """The protocol as a plain PyTorch loop; returns ``(rmse (S,), ll (S,), chosen (S,))``."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rates, taus = np.meshgrid(ds.dropout_rates, ds.tau_values, indexing="ij")
    # rate-major, as ours
    grid = list(zip(rates.ravel().tolist(), taus.ravel().tolist(), strict=True))

    def make_net(d: int, rate: float) -> nn.Module:
        net = nn.Sequential(nn.Dropout(rate), nn.Linear(d, n_hidden), nn.ReLU(),
                            nn.Dropout(rate), nn.Linear(n_hidden, 1))
        for layer in (net[1], net[4]):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        return net

    def train(X, y, rate: float, tau: float) -> nn.Module:
        n, d = X.shape
        batch = uci.balanced_batch_size(n, BATCH)
        decay = LENGTH_SCALE ** 2 * (1.0 - rate) / (2.0 * n * tau)
        net = make_net(d, rate)
        net.train()
        optimizer = torch.optim.Adam(net.parameters(), lr=LR)
        kernels = (net[1].weight, net[4].weight)
        for _ in range(n_epochs):
            perm = torch.randperm(n)
            for i in range(n // batch):
                rows = perm[i * batch:(i + 1) * batch]
                optimizer.zero_grad(set_to_none=True)
                pred = net(X[rows])[:, 0]
                loss = torch.mean((y[rows] - pred) ** 2) + decay * sum(
                    torch.sum(w * w) for w in kernels)
                loss.backward()
                optimizer.step()
        return net

    def mc_scores(net, X, y, tau: float, y_std: float, T: int) -> tuple[float, float]:
        """(RMSE, mean log-likelihood) of the MC predictive, original units."""
        net.train()   # dropout on
        with torch.no_grad():
            chunks = [net(X.expand(min(1000, T - t0), *X.shape))[..., 0]
                      for t0 in range(0, T, 1000)]
        samples = torch.cat(chunks, 0).double()   # (T, n)
        yd = y.double()
        log_terms = -0.5 * tau * (yd[None, :] - samples) ** 2
        ll = (torch.logsumexp(log_terms, 0) - math.log(T) - 0.5 * math.log(2 * math.pi)
              + 0.5 * math.log(tau))
        rmse = torch.sqrt(torch.mean((yd - samples.mean(0)) ** 2))
        return float(rmse) * y_std, float(ll.mean()) - math.log(y_std)

    rmse, ll, chosen = [], [], []
    for s in range(n_splits):
        split = standardized_split(ds, s)
        X = torch.from_numpy(np.asarray(split.X_train, np.float32))
        y = torch.from_numpy(np.asarray(split.y_train, np.float32))
        n_fit = int((1.0 - VAL_FRACTION) * X.shape[0])
        scores = []
        for rate, tau in grid:
            tau_std = tau * split.y_std ** 2
            net = train(X[:n_fit], y[:n_fit], rate, tau_std)
            scores.append(mc_scores(net, X[n_fit:], y[n_fit:], tau_std, split.y_std,
                                    n_samples_val)[1])
        best = int(np.argmax(np.where(np.isnan(scores), -np.inf, scores)))
        rate, tau = grid[best]
        tau_std = tau * split.y_std ** 2
        net = train(X, y, rate, tau_std)
        r, loglik = mc_scores(net, torch.from_numpy(np.asarray(split.X_test, np.float32)),
                         torch.from_numpy(np.asarray(split.y_test, np.float32)), tau_std,
                         split.y_std, n_samples)
        rmse.append(r)
        ll.append(loglik)
        chosen.append(best)
    return np.asarray(rmse), np.asarray(ll), np.asarray(chosen)


# --------------------------------------------------------------------------------- main


def protocol_gflop(ds, res, n_splits: int, n_epochs: int, n_hidden: int) -> float:
    """Dense GFLOP of one protocol run: training (forward + backward = 3x forward per row of
    every step) of the grid networks and the refits, and the MC passes (forward) of
    validation and test."""
    st = res.settings
    d = ds.X.shape[1]
    forward = 2.0 * (d * n_hidden + n_hidden)          # per row, one output
    n_grid = st["n_grid"]

    def train(rows: int, batch: int, nets: int) -> float:
        return 3.0 * forward * nets * n_epochs * (rows // batch) * batch

    flops = (train(st["n_fit"], st["batch_size_fit"], n_splits * n_grid)
             + train(st["n_train"], st["batch_size_refit"], n_splits)
             + forward * n_splits * n_grid * st["n_samples_val"] * st["n_val"]
             + forward * n_splits * st["n_samples"] * st["n_test"])
    return flops / 1e9


def gemm_rate(repeats: int, n: int = 2048) -> tuple[float, float]:
    """Float32 GEMM ``(n, n) @ (n, n)`` in JAX: (GFLOP/s of the median wall time, GFLOP per
    CPU-second of the median call)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    mm(a).block_until_ready()
    walls, cpus = [], []
    for _ in range(max(5, repeats)):
        c0, w0 = time.process_time(), time.perf_counter()
        mm(a).block_until_ready()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    flop = 2.0 * n ** 3 / 1e9
    return flop / float(np.median(walls)), flop / float(np.median(cpus))


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std() / math.sqrt(values.size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 splits, 20 epochs, T = 1,000 test / 100 validation passes")
    parser.add_argument("--dataset", default="yacht", choices=UCI_NAMES)
    parser.add_argument("--n-splits", type=int, default=None, help="default all (20)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default 10x the data folder's)")
    parser.add_argument("--n-samples", type=int, default=None, help="test MC passes T")
    parser.add_argument("--n-samples-val", type=int, default=None,
                        help="validation MC passes")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="PyTorch intra-op threads (default 1, its fastest here)")
    parser.add_argument("--no-peer", action="store_true",
                        help="skip the PyTorch loop (throughput and test metrics of ours only)")
    parser.add_argument("--common-random-numbers", action="store_true",
                        help="ours: one key per split shared by its grid points")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each side, alternating (ours: the first includes JIT)")
    parser.add_argument("--compiled-repeats", type=int, default=5,
                        help="further compiled runs of ours (median; throughput)")
    args = parser.parse_args()

    ds = load_uci(args.dataset)
    n_splits = args.n_splits or (2 if args.quick else ds.n_splits)
    n_epochs = args.epochs or (20 if args.quick else 10 * ds.n_epochs)
    n_samples = args.n_samples or (1_000 if args.quick else 10_000)
    n_samples_val = args.n_samples_val or (100 if args.quick else 1_000)
    n_grid = len(ds.dropout_rates) * len(ds.tau_values)

    import torch

    torch.set_num_threads(args.torch_threads)
    print_machine()
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads) | "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} "
          f"| jax_threefry_partitionable={jax.config.jax_threefry_partitionable}")
    print(f"data: UCI {ds.name} ({ds.X.shape[0]} rows, {ds.X.shape[1]} features), {n_splits} "
          f"splits x {n_grid} grid points + {n_splits} refits, {n_epochs} epochs, "
          f"{ds.n_hidden} hidden units, Adam({LR:g}), batch ~{BATCH}, T = {n_samples} test / "
          f"{n_samples_val} validation passes; {args.repeats} run(s) per side, alternating; "
          f"ours with common_random_numbers={args.common_random_numbers}\n")

    optimizer = optax.adam(LR)   # one object: a second call reuses the compiled code
    method = uci.dropout_method(LENGTH_SCALE)

    def ours():
        return uci.run_protocol(jax.random.key(0), ds, method, optimizer=optimizer,
                                n_splits=n_splits, n_epochs=n_epochs, n_hidden=ds.n_hidden,
                                batch_size=BATCH, n_samples=n_samples,
                                n_samples_val=n_samples_val, val_fraction=VAL_FRACTION,
                                progress=False,
                                common_random_numbers=args.common_random_numbers)

    def peer():
        return torch_protocol(ds, n_splits=n_splits, n_epochs=n_epochs, n_hidden=ds.n_hidden,
                              n_samples=n_samples, n_samples_val=n_samples_val)

    crn = " (common random numbers)" if args.common_random_numbers else ""
    t_ours, t_peer, loads = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        res = ours()
        t_ours.append(time.perf_counter() - start)
        if not args.no_peer:
            start = time.perf_counter()
            rmse_p, ll_p, chosen_p = peer()
            t_peer.append(time.perf_counter() - start)
        if hasattr(os, "getloadavg"):
            loads.append(os.getloadavg()[0])

    c_ours = []
    for _ in range(max(1, args.compiled_repeats)):
        c0, start = time.process_time(), time.perf_counter()
        ours()   # compiled: same shapes, same optimizer and method objects
        t_ours.append(time.perf_counter() - start)
        c_ours.append(time.process_time() - c0)
    gemm_wall, gemm_cpu = gemm_rate(max(5, args.compiled_repeats))
    first = t_ours[0]
    r_o, r_o_se = res.rmse_mean, res.rmse_se
    l_o, l_o_se = res.ll_mean, res.ll_se
    print(f"{'':22s} {'wall [s]':>9s} {'test RMSE':>17s} {'test LL':>17s} "
          f"{'chosen grid points (rate-major index)'}")
    print(f"{'ours (JIT included)':22s} {first:9.2f} {r_o:9.3f} ± {r_o_se:5.3f} "
          f"{l_o:9.3f} ± {l_o_se:5.3f} {np.bincount(res.chosen_index, minlength=n_grid)}")
    print(f"{'ours (compiled)':22s} {float(np.median(t_ours[1:])):9.2f}")
    if not args.no_peer:
        peer_time = float(np.median(t_peer))
        r_p, r_p_se = _mean_se(rmse_p)
        l_p, l_p_se = _mean_se(ll_p)
        print(f"{'pytorch':22s} {peer_time:9.2f} {r_p:9.3f} ± {r_p_se:5.3f} "
              f"{l_p:9.3f} ± {l_p_se:5.3f} {np.bincount(chosen_p, minlength=n_grid)}")
        se_r = math.hypot(r_o_se, r_p_se)
        se_l = math.hypot(l_o_se, l_p_se)
        print(f"difference ours - pytorch: RMSE {r_o - r_p:+.3f} ({(r_o - r_p) / se_r:+.1f} "
              f"SE), LL {l_o - l_p:+.3f} ({(l_o - l_p) / se_l:+.1f} SE)"
              if se_r > 0 and se_l > 0 else
              f"difference ours - pytorch: RMSE {r_o - r_p:+.3f}, LL {l_o - l_p:+.3f}")
        speedup = peer_time / first
        print(f"\nwhole-protocol speed-up {speedup:.1f}x, ours with JIT compilation included "
              f"(goal >= 5x): {'met' if speedup >= 5 else 'NOT met'}")
        print_result(f"UCI {ds.name} MC-dropout protocol, {n_splits} splits x {n_grid} "
                     f"grid{crn}, {n_epochs} epochs, T={n_samples}, ours incl. JIT", first,
                     peer_time, peer_name=f"PyTorch {torch.__version__} CPU loop", unit="s",
                     goal=">= 5", met=speedup >= 5)
    compiled = float(np.median(t_ours[1:]))
    gflop = protocol_gflop(ds, res, n_splits, n_epochs, ds.n_hidden)
    rate, rate_cpu = gflop / compiled, gflop / float(np.median(c_ours))
    print(f"\nthroughput (compiled protocol, median of {len(c_ours)}): {gflop:.1f} GFLOP in "
          f"{compiled:.2f} s wall / {float(np.median(c_ours)):.2f} s CPU = {rate:.2f} GFLOP/s "
          f"({rate_cpu:.2f} GFLOP per CPU-s)")
    print(f"float32 GEMM 2048^2 (same run, median): {gemm_wall:.1f} GFLOP/s "
          f"({gemm_cpu:.1f} GFLOP per CPU-s)")
    print(f"fraction of the GEMM rate: {rate / gemm_wall:.1%} wall, {rate_cpu / gemm_cpu:.1%} "
          f"per CPU-s (goal >= 20%: {'met' if rate / gemm_wall >= 0.2 else 'NOT met'})")
    print_result(f"UCI {ds.name} MC-dropout protocol, {n_splits} splits x {n_grid} grid{crn}, "
                 f"{n_epochs} epochs: GFLOP/s vs float32 GEMM 2048^2 (same run)", rate,
                 gemm_wall, peer_name="float32 GEMM (jnp.dot)", unit="GFLOP/s",
                 ratio=rate / gemm_wall, goal=">= 0.2", met=rate / gemm_wall >= 0.2)
    if not args.no_peer:
        print_result(f"UCI {ds.name} MC-dropout protocol, {n_splits} splits x {n_grid} grid{crn}, "
                     f"{n_epochs} epochs, T={n_samples}, ours compiled (no goal)", compiled,
                     peer_time, peer_name=f"PyTorch {torch.__version__} CPU loop", unit="s")
    if loads:
        print("load average (1 min) after each repeat: " + " ".join(f"{v:.2f}" for v in loads))
    if hasattr(os, "getloadavg"):
        print("load average at the end (1/5/15 min): "
              + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
