"""The tour's baselines sections: the leaderboard's methods side by side on two small studies.

* **1-D gap toy** (:func:`espresso_jax.apps.experiments.bnn_toys.gap_data`: ``sin(3x)`` plus
  noise observed outside :data:`~espresso_jax.apps.experiments.bnn_toys.GAP`): every method of
  :data:`espresso_jax.apps.leaderboard.registry.METHODS` (the UCI methods exactly as the
  leaderboard runs them: same network, loss, predictive; one grid point, the first of the
  toy's grid, noise precision ``1 / 0.1^2``) is trained by the protocol's compiled
  :func:`~espresso_jax.apps.uci.grid_search.train_grid`, and its epistemic band (std over the
  predictive samples of the mean; for Laplace's linearised predictive, one Gaussian per point,
  the GLM variance of the network output ``J Σ Jᵀ``) and total band are drawn over
  ``[-1.5, 1.5]``; the metrics give the epistemic std in the gap against on the data. A method
  registered there appears here with no change.
* **Rotated digit** (Gal & Ghahramani 2016, Fig. 4):
  :func:`~espresso_jax.apps.experiments.bnn_mnist.train_mnist_models` for the models of
  :data:`ROTATED_MODELS`, the predictive entropy of a test '1' rotated from 0 to 180 degrees
  (:func:`~espresso_jax.apps.experiments.bnn_mnist.rotated_digit`), and the AUROC of the
  entropy separating test digits from the same digits rotated by 90 degrees
  (:func:`espresso_jax.metrics.ood_metrics`).

The UCI nets use input dropout (Gal's), which on a one-dimensional input turns a share
``rate`` of the passes into the constant ``f(0)`` (see
:mod:`espresso_jax.apps.experiments.bnn_toys`): MC dropout's band on the toy shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from espresso_jax import metrics
from espresso_jax.apps.experiments import bnn_mnist
from espresso_jax.apps.experiments.bnn_toys import GAP, gap_data
from espresso_jax.apps.leaderboard.registry import METHODS
from espresso_jax.apps.report import Report
from espresso_jax.apps.uci.grid_search import train_grid
from espresso_jax.apps.uci.laplace import LaplaceState
from espresso_jax.datasets.bundled import load_mnist
from espresso_jax.datasets.uci import UCIDataset

__all__ = ["ROTATED_MODELS", "gap_bands", "rotated_study", "SECTIONS"]

ROTATED_MODELS = ("deterministic", "mc_dropout", "bbb_gaussian")
"""Models of the rotated-digit study (names of
:data:`espresso_jax.apps.experiments.bnn_mnist.MNIST_MODELS`); quick mode runs the first two
(each model is a training compile: the three cost 28 s of CPU in quick mode, over the
tour's 20 s per section)."""

NOISE_STD = 0.1


def _toy_dataset(x: np.ndarray, y: np.ndarray, n_epochs: int) -> UCIDataset:
    """The toy as a one-split UCIDataset, so that each method's ``grid`` applies to it."""
    idx = np.arange(x.shape[0])
    return UCIDataset("gap", x[:, None], y, (idx,), (idx[:0],), 50, n_epochs,
                      np.asarray([0.05]), np.asarray([1.0 / NOISE_STD ** 2]))


def gap_bands(key: jax.Array, *, n_epochs: int = 600, n_samples: int = 100,
              methods: dict[str, Callable] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Each method on the gap toy (see the module docstring).

    Returns:
        ``name -> {"x", "y", "x_grid", "mean", "epistemic", "aleatoric"}`` (``(G,)`` arrays,
        variances in the target's units; ``x, y`` the training data).
    """
    methods = METHODS if methods is None else methods
    k_data, k_fit, k_pred = jax.random.split(key, 3)
    x, y = (np.asarray(a, np.float64) for a in gap_data(k_data, 80, noise_std=NOISE_STD))
    y_mean, y_std = y.mean(), y.std()
    ds = _toy_dataset(x, y, n_epochs)
    dtype = jnp.zeros(()).dtype
    X = jnp.asarray(x[None, :, None], dtype)
    Y = jnp.asarray(((y - y_mean) / y_std)[None], dtype)
    x_grid = np.linspace(-1.5, 1.5, 301)
    out = {}
    optimizer = optax.adam(1e-2)
    for name, factory in methods.items():
        method = factory()
        hp = jax.tree.map(lambda a: a[:1], method.grid(ds))          # first grid point
        hp = method.standardize(hp, jnp.asarray(y_std, dtype))
        params, _ = train_grid(jax.random.split(k_fit, (1, 1)), method, X, Y,
                               jax.tree.map(lambda a: a[None], hp), optimizer=optimizer,
                               n_hidden=50, batch_size=20, n_epochs=n_epochs)
        params = jax.tree.map(lambda a: a[0, 0], params)
        means, precisions = method.predict(k_pred, params, jnp.asarray(x_grid[:, None], dtype),
                                           jax.tree.map(lambda a: a[0], hp), n_samples)
        means = np.asarray(means, np.float64) * y_std + y_mean                # (T, G)
        noise_var = np.broadcast_to(1.0 / np.asarray(precisions, np.float64),
                                    means.shape) * y_std ** 2
        epistemic, aleatoric = means.var(0), noise_var.mean(0)
        if isinstance(params, LaplaceState) and means.shape[0] == 1:
            # GLM predictive: one Gaussian N(f, J Σ Jᵀ + 1/τ) per point; its epistemic part
            # is J Σ Jᵀ, the variance minus the fit's noise variance 1/τ
            noise = y_std ** 2 / float(params.fit.noise_precision)
            epistemic, aleatoric = np.clip(aleatoric - noise, 0.0, None), np.full_like(
                aleatoric, noise)
        out[name] = {"x": x, "y": y, "x_grid": x_grid, "mean": means.mean(0),
                     "epistemic": epistemic, "aleatoric": aleatoric}
    return out


def rotated_study(key: jax.Array, *, quick: bool = False, n_ood: int = 200,
                  models: tuple[str, ...] | None = None) -> dict:
    """Entropy against rotation angle and the 90-degree AUROC per model.

    Args:
        key: PRNG key. quick: this study's quick settings (1,000 digits, 2 epochs, 50 hidden
            units, 20 passes). n_ood: test digits (and their 90-degree rotations) for AUROC.
        models: names of ``bnn_mnist.MNIST_MODELS`` (default :data:`ROTATED_MODELS`, its
            first two when ``quick``).

    Returns:
        ``{"angles": (A,), "entropy": name -> (A,), "auroc": name -> float}``.
    """
    if models is None:
        models = ROTATED_MODELS[:2] if quick else ROTATED_MODELS
    k_train, k_rot, k_ood = jax.random.split(key, 3)
    # this study's own quick sizes (bnn_mnist's quick mode trains longer, for its error table)
    sizes: dict[str, Any] = {}
    if quick:
        sizes = dict(n_train=1000, n_epochs=2, batch_size=100, learning_rate=1e-3,
                     lr_schedule="constant")
    trained = bnn_mnist.train_mnist_models(k_train, quick=quick, models=models,
                                           hidden=(50,) if quick else (400, 400), **sizes)
    rot = bnn_mnist.rotated_digit(k_rot, trained.models, n_samples=20 if quick else 100)
    x_test, _ = load_mnist("test")
    x_in = np.asarray(x_test[:n_ood], np.float32)
    x_out = np.stack([bnn_mnist.rotate_images(im, [90.0])[0] for im in x_in]).reshape(n_ood, -1)
    auroc = {}
    for name, model in trained.models.items():
        scores = [metrics.ood_score(bnn_mnist.sample_outputs(k_ood, model, xs, n_samples=20),
                                    score="entropy", from_logits=True) for xs in (x_in, x_out)]
        auroc[name] = float(metrics.ood_metrics(*scores).auroc)
    return {"angles": rot.angles, "entropy": rot.entropy, "auroc": auroc}


def _section_baselines_gap(key: jax.Array, report: Report, quick: bool) -> None:
    from espresso_jax.apps.viz import bnn as viz

    bands = gap_bands(key, n_epochs=100 if quick else 600, n_samples=50 if quick else 100)
    report.section(
        "Baselines side by side: the gap toy",
        "The leaderboard's methods (apps/leaderboard/registry.py) as the UCI protocol trains "
        f"them (one hidden layer of 50 ReLU units, Gal's input dropout, noise precision "
        f"1/{NOISE_STD}²) on sin(3x) + noise observed outside {GAP}: inner band ±2 epistemic "
        "sd, outer band ±2 total sd.")
    gap_metrics = {}
    for name, b in bands.items():
        report.figure(viz.plot_regression_band(b["x"], b["y"], b["x_grid"], b["mean"],
                                               b["epistemic"], b["aleatoric"], gap=GAP,
                                               title=name),
                      f"baselines_gap_{name}", f"{name}: epistemic and total bands")
        sd, g = np.sqrt(b["epistemic"]), np.abs(b["x_grid"])
        gap_metrics[f"{name}_gap_epistemic_std"] = float(sd[g < GAP[1]].mean())
        gap_metrics[f"{name}_data_epistemic_std"] = float(sd[(g >= GAP[1]) & (g <= 1)].mean())
    report.metrics(gap_metrics)


def _section_baselines_rotated(key: jax.Array, report: Report, quick: bool) -> None:
    import matplotlib.pyplot as plt

    rot = rotated_study(key, quick=quick, n_ood=100 if quick else 500)
    report.section(
        "Baselines side by side: the rotated digit",
        "MNIST nets (apps/experiments/bnn_mnist.py) on a test '1' rotated from 0° to 180°: "
        "predictive entropy by angle, and the AUROC of the entropy separating test digits "
        "from the same digits rotated by 90°.")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, ent in rot["entropy"].items():
        ax.plot(rot["angles"], ent, marker="o", label=f"{name} (AUROC {rot['auroc'][name]:.2f})")
    ax.set_xlabel("rotation (degrees)")
    ax.set_ylabel("predictive entropy (nats)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    report.figure(fig, "baselines_rotated_entropy", "Entropy of a rotated '1' by angle")
    report.metrics({**{f"{n}_auroc_rot90": v for n, v in rot["auroc"].items()},
                    "rotation_angles": rot["angles"],
                    **{f"{n}_entropy_by_angle": e for n, e in rot["entropy"].items()}})


SECTIONS = {"baselines gap": _section_baselines_gap,
            "baselines rotated digit": _section_baselines_rotated}
