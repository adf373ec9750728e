"""Temperature scaling and out-of-distribution detection on MNIST.

Trains the deterministic and MC-dropout 784-400-400-10 nets of
:mod:`espresso_jax.apps.experiments.bnn_mnist` (no new model), fits a temperature on held-out
training digits, and scores clean test digits against shifted copies of the same digits
(rotated by 45 and 90 degrees, Gaussian pixel noise of standard deviation 0.5): test error,
NLL and ECE (15 bins) before and after temperature scaling, and AUROC / AUPR-In / AUPR-Out /
FPR at 95% TPR of the max-probability and entropy scores (plus BALD for MC dropout; the
temperature divides the log predictive of the passes). Writes ``ood.json`` to ``--out``.

    python examples/ood_mnist.py             # 7000 training images, 20 epochs
    python examples/ood_mnist.py --quick     # smoke run: 1000 images, 2 epochs, 500 tests
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from espresso_jax import metrics
from espresso_jax.apps.experiments import bnn_mnist as experiments
from espresso_jax.datasets.bundled import MNIST_N_TRAIN, load_mnist
from espresso_jax.metrics.class_predictive import log_predictive

N_VAL = 1000          # the last N_VAL training digits fit the temperature, never the nets


def _log_predictive(logits: Any) -> jax.Array:
    """``log E_t softmax(z_t)``, ``(n, C)``, of ``(n, C)`` or ``(T_mc, n, C)`` logits."""
    z = jnp.asarray(logits)
    return log_predictive(z if z.ndim == 3 else z[None], True)


def _scores(logits: Any, temperature: float) -> dict[str, jax.Array]:
    z = metrics.apply_temperature(_log_predictive(logits), temperature)
    out = {s: metrics.ood_score(z, score=s, from_logits=True) for s in ("max_prob", "entropy")}
    if np.ndim(logits) == 3 and np.shape(logits)[0] > 1:
        passes = metrics.apply_temperature(logits, temperature)
        out["mutual_information"] = metrics.ood_score(passes, score="mutual_information",
                                                      from_logits=True)
    return out


def calibration_ood_report(val_logits: Any, val_labels: Any, test_logits: Any,
                           test_labels: Any, shifted: dict[str, Any]) -> dict[str, Any]:
    """Fit a temperature on ``(val_logits, val_labels)`` and report, at ``T = 1`` ("before")
    and the fitted ``T`` ("after"), the test error / NLL / ECE and the OOD metrics of each
    score for clean test inputs vs each ``shifted[name]`` set.

    Logits are ``(n, C)`` or ``(T_mc, n, C)`` passes. The calibrated predictive is
    ``softmax(log p / T)`` of the passes' predictive ``p = E_t softmax(z_t)`` (the temperature
    is fitted on ``log p``); BALD, which needs the passes, is that of ``z_t / T``.
    """
    fit = metrics.fit_temperature(_log_predictive(val_logits), val_labels)
    report: dict[str, Any] = {"temperature": float(fit.temperature),
                              "val_nll": [float(fit.nll_before), float(fit.nll_after)],
                              "shifted": {name: {} for name in shifted}}
    for stage, t in (("before", 1.0), ("after", float(fit.temperature))):
        z = metrics.apply_temperature(_log_predictive(test_logits), t)
        report[stage] = {
            "error": 1.0 - float(metrics.accuracy(test_labels, z, from_logits=True)),
            "nll": float(metrics.negative_log_likelihood(test_labels, z, from_logits=True)),
            "ece": float(metrics.expected_calibration_error(test_labels, z, from_logits=True))}
        clean = _scores(test_logits, t)
        for name, logits in shifted.items():
            report["shifted"][name][stage] = {
                score: {k: float(v) for k, v in metrics.ood_metrics(s, out)._asdict().items()}
                for (score, s), out in zip(clean.items(), _scores(logits, t).values(),
                                           strict=True)}
    return report


def shifted_digits(key: jax.Array, x: np.ndarray) -> dict[str, np.ndarray]:
    """Rotated (45, 90 degrees, bilinear) and noised (N(0, 0.5^2), clipped) copies of the
    ``(n, 784)`` digits ``x``."""
    imgs = x.reshape(-1, 28, 28)
    out = {f"rotated {a}": np.clip(ndimage.rotate(imgs, a, axes=(1, 2), reshape=False,
                                                  order=1), 0.0, 1.0).reshape(-1, 784)
           for a in (45, 90)}
    noise = 0.5 * np.asarray(jax.random.normal(key, x.shape))
    out["noise 0.5"] = np.clip(x + noise, 0.0, 1.0)
    return {k: v.astype(np.float32) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run (1000 images, 2 epochs, 500 test digits)")
    parser.add_argument("--out", default="ood_mnist", help="folder for ood.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    k_train, k_pass, k_noise = jax.random.split(jax.random.key(args.seed), 3)
    n_train = 1000 if args.quick else MNIST_N_TRAIN - N_VAL
    n_test, n_passes = (500, 10) if args.quick else (2000, 50)

    # the smoke run's own sizes (bnn_mnist's quick mode trains 5 epochs for the tour's table)
    sizes = dict(n_epochs=2, batch_size=100, learning_rate=1e-3, lr_schedule="constant")
    trained = experiments.train_mnist_models(
        k_train, quick=args.quick, n_train=n_train, models=("deterministic", "mc_dropout"),
        **(sizes if args.quick else {}))
    x_train, y_train = load_mnist("train")
    x_val, y_val = x_train[-N_VAL:], y_train[-N_VAL:]
    x_test, y_test = (a[:n_test] for a in load_mnist("test"))
    shifted = shifted_digits(k_noise, x_test)
    print(f"{trained.n_train} training / {N_VAL} validation / {n_test} test digits, "
          f"{trained.n_epochs} epochs, {n_passes} MC-dropout passes")
    results = {}
    for name, model in trained.models.items():
        def passes(x, model=model):
            return experiments.sample_outputs(k_pass, model, x, n_samples=n_passes)

        rep = calibration_ood_report(passes(x_val), y_val, passes(x_test), y_test,
                                     {k: passes(v) for k, v in shifted.items()})
        results[name] = rep
        b, a = rep["before"], rep["after"]
        print(f"\n{name}: T = {rep['temperature']:.3f}   error {100 * b['error']:.2f}%   "
              f"NLL {b['nll']:.4f} -> {a['nll']:.4f}   ECE {b['ece']:.4f} -> {a['ece']:.4f}")
        print(f"  {'shift':<11} {'score':<19} {'AUROC':>13} {'AUPR-In':>13} "
              f"{'AUPR-Out':>13} {'FPR@95%TPR':>13}")
        for shift, stages in rep["shifted"].items():
            for score in stages["before"]:
                cells = [f"{stages['before'][score][k]:.3f}->{stages['after'][score][k]:.3f}"
                         for k in ("auroc", "aupr_in", "aupr_out", "fpr_at_tpr")]
                print(f"  {shift:<11} {score:<19} " + " ".join(f"{c:>13}" for c in cells))
    config = {"n_train": trained.n_train, "n_val": N_VAL, "n_test": n_test,
              "n_epochs": trained.n_epochs, "n_passes": n_passes, "quick": args.quick,
              "seed": args.seed}
    (out / "ood.json").write_text(json.dumps({"config": config, "models": results}, indent=2))
    print(f"\nood.json written to {out.resolve()}")


if __name__ == "__main__":
    main()
