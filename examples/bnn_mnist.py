"""Bayesian neural networks on MNIST: deterministic MLP vs MC dropout vs Bayes by Backprop.

Trains four 784-400-400-10 ReLU nets with Adam on the library's 8k MNIST training split
(deterministic, MC dropout p = 0.25, BBB with a Gaussian prior, BBB with Blundell's
scale-mixture prior), scores them on the 2k test split (error %, NLL, ECE with 15 bins, Brier;
100 stochastic passes), prunes the scale-mixture BBB net by signal-to-noise ratio and runs Gal &
Ghahramani's rotated-'1' experiment. Writes PNG figures and ``metrics.json`` to ``--out``.

    python examples/bnn_mnist.py                 # full run (20 epochs, Adam 1e-3, batch 100)
    python examples/bnn_mnist.py --quick         # the tour's run: 5 epochs, batch 200, Adam
                                                 # 6e-3 with a cosine decay (all nets < 5 %)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from espresso_jax.apps.experiments import bnn_mnist as experiments
from espresso_jax.apps.viz import bnn as viz


def _snr_histogram(snr_db: np.ndarray) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    ax.hist(snr_db[np.isfinite(snr_db)], bins=100, color="tab:blue", density=True)
    ax.set(xlabel="signal-to-noise ratio (dB)", ylabel="density",
           title="BBB (scale mixture): weight SNR")
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="short run (5 epochs, batch 200, Adam 6e-3 cosine)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default 20, quick 5)")
    parser.add_argument("--n-train", type=int, default=None, help="training images (max 8000)")
    parser.add_argument("--out", default="bnn_mnist", help="folder for figures and JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    k_cmp, k_prune, k_rot = jax.random.split(jax.random.key(args.seed), 3)

    cmp = experiments.mnist_comparison(k_cmp, quick=args.quick, n_train=args.n_train,
                                       n_epochs=args.epochs, progress=args.progress)
    trained = cmp.trained
    print(f"784-400-400-10 ReLU nets, Adam {trained.learning_rate:g} ({trained.lr_schedule}), "
          f"batch {trained.batch_size}, {trained.n_epochs} epochs, "
          f"{trained.n_train} training / {cmp.n_test} test images, "
          f"{cmp.n_samples} stochastic passes")
    print(f"{'model':<14} {'error %':>8} {'NLL':>7} {'ECE':>7} {'Brier':>7} {'s/epoch':>8}")
    for name, m in cmp.metrics.items():
        print(f"{name:<14} {m.error:8.2f} {m.nll:7.4f} {m.ece:7.4f} {m.brier:7.4f} "
              f"{cmp.seconds_per_epoch[name]:8.2f}")
        rel = cmp.reliability[name]
        viz.plot_reliability_diagram(rel.bin_edges, rel.confidence, rel.accuracy, rel.counts,
                                     ece=m.ece, title=name).savefig(
            out / f"reliability_{name}.png", dpi=110)

    pruning = experiments.mnist_pruning(k_prune, trained.models["bbb_mixture"],
                                        quick=args.quick)
    print("\nBBB (scale mixture) pruned by signal-to-noise ratio")
    print(f"{'pruned %':>8} {'weights kept':>13} {'test error %':>13}")
    for f, kept, err in zip(*pruning.table, strict=True):
        print(f"{100 * f:8.0f} {kept:13d} {100 * err:13.2f}")
    _snr_histogram(pruning.snr_db).savefig(out / "snr_histogram.png", dpi=110)

    stochastic = {k: trained.models[k] for k in ("mc_dropout", "bbb_mixture")}
    rot = experiments.rotated_digit(k_rot, stochastic, n_samples=100)
    print("\nrotated '1': predictive entropy (nats) / BALD per angle")
    print("angle  " + "  ".join(f"{a:5.0f}" for a in rot.angles))
    for name in stochastic:
        print(f"{name:<12} H " + " ".join(f"{v:5.2f}" for v in rot.entropy[name]))
        print(f"{'':<12} I " + " ".join(f"{v:5.3f}" for v in rot.bald[name]))
        print(f"{'':<12} y " + " ".join(f"{v:5d}" for v in rot.predicted[name]))
        viz.plot_rotated_digits(rot.angles, rot.logits[name], rot.probs[name],
                                images=rot.images, title=name).savefig(
            out / f"rotated_{name}.png", dpi=110)
        viz.plot_uncertainty_decomposition(
            rot.angles, rot.bald[name], rot.entropy[name] - rot.bald[name],
            xlabel="rotation (degrees)", ylabel="nats",
            title=f"{name}: entropy = BALD (epistemic) + expected entropy").savefig(
            out / f"rotated_entropy_{name}.png", dpi=110)

    metrics = {
        "config": {"architecture": "784-400-400-10 relu",
                   "optimizer": f"adam {trained.learning_rate:g} {trained.lr_schedule}",
                   "batch_size": trained.batch_size, "n_epochs": trained.n_epochs,
                   "n_train": trained.n_train, "n_test": cmp.n_test,
                   "n_samples": cmp.n_samples, "dropout_rate": 0.25,
                   "bbb_gaussian_prior": experiments.MNIST_GAUSSIAN_PRIOR._asdict(),
                   "bbb_mixture_prior": experiments.MNIST_MIXTURE_PRIOR._asdict(),
                   "quick": args.quick, "seed": args.seed},
        "models": {name: {**m._asdict(), "seconds_per_epoch": cmp.seconds_per_epoch[name]}
                   for name, m in cmp.metrics.items()},
        "pruning": [{"fraction": float(f), "n_kept": int(k), "error_percent": 100 * float(e)}
                    for f, k, e in zip(*pruning.table, strict=True)],
        "rotated_digit": {"angles": rot.angles.tolist(),
                          **{name: {"entropy": rot.entropy[name].tolist(),
                                    "bald": rot.bald[name].tolist(),
                                    "predicted": rot.predicted[name].tolist()}
                             for name in stochastic}},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"\nfigures and metrics.json written to {out.resolve()}")


if __name__ == "__main__":
    main()
