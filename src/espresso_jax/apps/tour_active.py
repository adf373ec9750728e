"""The tour's sections on the two directions of the KL divergence and on active learning.

Each section takes ``(key, report, quick)`` like those of :mod:`espresso_jax.apps.tour` and
calls :mod:`espresso_jax.apps.experiments.active_learning`; ``quick`` shortens the runs (fewer
steps, rounds, seeds and acquisition functions), never the code path.
"""

from __future__ import annotations

import jax

from espresso_jax.apps.experiments import active_learning as experiments
from espresso_jax.apps.report import Report


def _section_kl_directions(key: jax.Array, report: Report, quick: bool) -> None:
    res = experiments.kl_directions_experiment(key, quick=quick)
    report.section(
        "KL(q||p) against KL(p||q)",
        "A Gaussian q fitted to a two-component mixture p by each direction of the KL "
        "divergence (Adam on Monte-Carlo estimates from prob.info.kl_mc). KL(q||p) = "
        "E_q[log q − log p] is mode seeking: from either start q settles on one component. "
        "KL(p||q) = E_p[log p − log q] is mass covering: its optimum over Gaussians is moment "
        "matching, the mixture's mean and variance (drawn as the dotted line).")
    report.figure(experiments.plot_kl_directions(res), "kl_directions",
                  "Both KL fits over the target density")
    metrics = {f"reverse_from_{start:+.0f}_{what}": float(getattr(fit, what)[0])
               for start, fit in res.reverse.items() for what in ("mean", "std")}
    metrics.update(forward_mean=float(res.forward.mean[0]),
                   forward_std=float(res.forward.std[0]), moment_mean=res.exact_mean,
                   moment_std=res.exact_std)
    report.metrics(metrics)


def _section_active_learning(key: jax.Array, report: Report, quick: bool) -> None:
    curves = experiments.mnist_active_learning(key, quick=quick)
    s = curves.settings
    report.section(
        "Active learning on MNIST with MC dropout",
        f"Gal, Islam & Ghahramani (2017): 20 labelled digits (2 per class), then {s['n_rounds']} "
        f"rounds that each retrain a 784-{s['hidden'][0]}-10 MC dropout MLP from scratch "
        f"(dropout {s['rate']}, {s['n_steps']} full-batch Adam steps), score "
        f"{s['n_candidates']} random pool digits with {s['n_mc']} stochastic passes and "
        f"acquire the 10 best; {s['n_seeds']} seed(s), pool {s['pool']}, test {s['test']}. "
        "One compiled loop, vmapped over seeds and acquisition functions. BALD should run "
        "ahead of random acquisition (their Fig. 1; they used a conv net and 1,000 points).")
    report.figure(experiments.plot_learning_curves(curves), "active_learning_curves",
                  "Test accuracy against labelled digits per acquisition function")
    report.metrics({**experiments.curve_summary(curves), "cpu_seconds": curves.cpu_seconds})


SECTIONS = {
    "kl directions": _section_kl_directions,
    "active learning": _section_active_learning,
}
