"""Experiments of the tour's KL-direction and active-learning sections.

* :func:`kl_directions_experiment`: a Gaussian fitted to a bimodal 1-D mixture by KL(q||p)
  (from starts -2 and +1: one mode each) and by KL(p||q) (the mixture's moments), with the
  closed-form moment-matching optimum (:mod:`espresso_jax.prob.kl_directions`).
* :func:`mnist_active_learning`: MC dropout active learning on MNIST
  (:mod:`espresso_jax.bnn.active`) with BALD, max-entropy, variation ratios and random
  acquisition, from a balanced start of 20 labelled digits, 10 acquired per round; the pool
  is the bundled 8k training split, test accuracy on the 2k test split
  (:func:`espresso_jax.datasets.load_mnist`).

Each returns a NamedTuple of numbers and arrays; the ``plot_*`` functions draw them.

References:
    Bishop, PRML (2006), Fig. 10.3. Gal, Islam, Ghahramani, "Deep Bayesian active learning
    with image data", ICML 2017, Fig. 1.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from espresso_jax.bnn import active
from espresso_jax.datasets.bundled import load_mnist
from espresso_jax.interop import standard_promotion
from espresso_jax.prob import kl_directions as kd

__all__ = [
    "KLDirections",
    "kl_directions_experiment",
    "plot_kl_directions",
    "ActiveCurves",
    "mnist_active_learning",
    "plot_learning_curves",
    "curve_summary",
]

BIMODAL = dict(weights=np.array([0.4, 0.6]), means=np.array([[-2.5], [2.0]]),
               stds=np.array([[0.6], [0.8]]))
"""The 1-D target: two components far apart (4.5 in units of ~0.7 std)."""


class KLDirections(NamedTuple):
    """Fits of a Gaussian to :data:`BIMODAL`; arrays for the figure.

    Attributes:
        reverse: ``{start: GaussianFit}`` KL(q||p) fits from starts -2 and +1.
        forward: the sampled KL(p||q) fit. exact_mean, exact_std: the mixture's moments.
        grid: ``(G,)`` x values; density: ``(G,)`` p(x).
    """

    reverse: dict[float, kd.GaussianFit]
    forward: kd.GaussianFit
    exact_mean: float
    exact_std: float
    grid: np.ndarray
    density: np.ndarray


def kl_directions_experiment(key: jax.Array, *, quick: bool = False) -> KLDirections:
    """Fit q by both KL directions to the bimodal target (``quick``: fewer steps)."""
    p = kd.gaussian_mixture(BIMODAL["weights"], BIMODAL["means"], BIMODAL["stds"])
    n_steps = 500 if quick else 2000
    k_rev, k_fwd = jax.random.split(key)
    reverse = {s: kd.fit_reverse_kl(jax.random.fold_in(k_rev, i), p, np.array([s]),
                                  n_steps=n_steps)
               for i, s in enumerate((-2.0, 1.0))}
    forward = kd.fit_forward_kl(k_fwd, p, np.zeros(1), n_steps=n_steps)
    mean, cov = kd.mixture_moments(p)
    grid = np.linspace(-6.0, 6.0, 400, dtype=np.float32)
    with standard_promotion():
        density = np.exp(np.asarray(p.log_prob(jnp.asarray(grid)[:, None])))
    return KLDirections(reverse, forward, float(mean[0]), float(np.sqrt(cov[0, 0])), grid,
                        density)


def _normal_pdf(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))


def plot_kl_directions(res: KLDirections) -> plt.Figure:
    """The target density with the KL(q||p) fits (dashed) and the KL(p||q) fit (solid)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.fill_between(res.grid, res.density, color="0.85", label="target p (mixture)")
    for start, fit in res.reverse.items():
        m, s = float(fit.mean[0]), float(fit.std[0])
        ax.plot(res.grid, _normal_pdf(res.grid, m, s), "--",
                label=f"KL(q||p) from m0={start:+.0f}: N({m:.2f}, {s:.2f}²)")
    m, s = float(res.forward.mean[0]), float(res.forward.std[0])
    ax.plot(res.grid, _normal_pdf(res.grid, m, s), "-", color="k",
            label=f"KL(p||q): N({m:.2f}, {s:.2f}²)")
    ax.axvline(res.exact_mean, color="k", lw=0.6, ls=":",
               label=f"moment matching: N({res.exact_mean:.2f}, {res.exact_std:.2f}²)")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_title("mode seeking KL(q||p) vs mass covering KL(p||q)")
    ax.legend(fontsize=7, loc="upper left")
    return fig


class ActiveCurves(NamedTuple):
    """Learning curves of :func:`mnist_active_learning`.

    Attributes:
        acquisitions: names, in the order of the first axis of ``accuracy``.
        n_labelled: ``(R + 1,)`` labelled digits at each training.
        accuracy: ``(A, S, R + 1)`` test accuracy per acquisition function and seed.
        acquired: ``(A, S, 20 + 10 R)`` pool indices in acquisition order.
        cpu_seconds: process CPU time of the run (compiling included).
        settings: the loop's settings.
    """

    acquisitions: tuple[str, ...]
    n_labelled: np.ndarray
    accuracy: np.ndarray
    acquired: np.ndarray
    cpu_seconds: float
    settings: dict


def mnist_active_learning(key: jax.Array, *, n_rounds: int = 30, n_seeds: int = 3,
                          n_candidates: int = 2000, quick: bool = False,
                          acquisitions: tuple[str, ...] = ("bald", "max_entropy",
                                                           "variation_ratios", "random"),
                          **options) -> ActiveCurves:
    """MC dropout active learning on MNIST: 20 balanced initial digits, 10 acquired a round.

    ``quick`` runs 3 rounds, 1 seed, BALD and random, 300 candidates, 100 training steps.
    ``options`` go to :func:`espresso_jax.bnn.active.run_active_learning` (network 784-128-10
    with dropout 0.5 by default, ``n_mc=20`` passes, 150 full-batch Adam steps at 2e-3).
    """
    if quick:
        n_rounds, n_seeds, n_candidates = 3, 1, 300
        acquisitions = ("bald", "random")
        options.setdefault("n_steps", 100)
    settings = dict(hidden=(128,), n_mc=20, n_steps=150, learning_rate=2e-3, rate=0.5)
    settings.update(options)
    X, y = load_mnist("train")
    Xt, yt = load_mnist("test")
    start = time.process_time()
    res = active.run_active_learning(key, X, y, Xt, yt, n_seeds=n_seeds, n_rounds=n_rounds,
                                     n_acquire=10, n_initial_per_class=2,
                                     acquisitions=acquisitions, n_candidates=n_candidates,
                                     **settings)
    accuracy = np.asarray(jax.block_until_ready(res.accuracy))
    cpu = time.process_time() - start
    settings.update(n_rounds=n_rounds, n_seeds=n_seeds, n_candidates=n_candidates,
                    pool=int(X.shape[0]), test=int(Xt.shape[0]))
    return ActiveCurves(tuple(acquisitions), res.n_labelled, accuracy,
                        np.asarray(res.acquired), cpu, settings)


def curve_summary(curves: ActiveCurves) -> dict[str, object]:
    """Mean and sd over seeds of the accuracy per function, the mean area under each curve
    and BALD's paired gap to random (mean and sd over seeds of the per-seed mean gap)."""
    out: dict[str, object] = {"n_labelled": curves.n_labelled}
    acc = curves.accuracy
    for i, name in enumerate(curves.acquisitions):
        out[f"{name}_accuracy_mean"] = acc[i].mean(0)
        out[f"{name}_accuracy_sd"] = acc[i].std(0, ddof=1) if acc.shape[1] > 1 else \
            np.zeros(acc.shape[2])
        out[f"{name}_mean_accuracy_over_curve"] = float(acc[i].mean())
    if "bald" in curves.acquisitions and "random" in curves.acquisitions:
        b, r = curves.acquisitions.index("bald"), curves.acquisitions.index("random")
        gap = (acc[b] - acc[r])[:, 1:].mean(axis=1)  # per seed, after the first acquisition
        out["bald_minus_random_gap_per_seed"] = gap
        out["bald_minus_random_gap_mean"] = float(gap.mean())
        out["bald_minus_random_final"] = float((acc[b, :, -1] - acc[r, :, -1]).mean())
    return out


def plot_learning_curves(curves: ActiveCurves) -> plt.Figure:
    """Test accuracy against labelled digits, mean ± sd over seeds per acquisition function."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, name in enumerate(curves.acquisitions):
        acc = 100 * curves.accuracy[i]
        mean = acc.mean(0)
        ax.plot(curves.n_labelled, mean, marker=".", label=name)
        if acc.shape[0] > 1:
            sd = acc.std(0, ddof=1)
            ax.fill_between(curves.n_labelled, mean - sd, mean + sd, alpha=0.15)
    ax.set_xlabel("labelled digits")
    ax.set_ylabel("test accuracy (%)")
    n_seeds = curves.accuracy.shape[1]
    ax.set_title(f"MC dropout active learning on MNIST ({n_seeds} seed{'s' * (n_seeds > 1)})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
