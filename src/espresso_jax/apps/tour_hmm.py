"""The tour's hidden-Markov-model section: a regime-switching series decoded by Baum–Welch and
Viterbi (:mod:`espresso_jax.hmm`).

``SECTIONS`` maps the section's name to a ``(key, report, quick) -> None`` function like
:mod:`espresso_jax.apps.tour_deep`; ``quick`` lowers the EM budget, never the code path.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from espresso_jax import hmm
from espresso_jax.apps.report import Report

# three regimes of a daily-return-like series: calm, drifting up, turbulent
TRUE_MEANS = np.array([0.0, 1.0, -0.5])
TRUE_SD = np.array([0.5, 0.7, 2.0])
TRUE_TRANS = np.array([[0.97, 0.02, 0.01], [0.03, 0.95, 0.02], [0.04, 0.02, 0.94]])


def true_params() -> hmm.HMMParams:
    """The generating model of the section's series (``TRUE_MEANS``, ``TRUE_SD``,
    ``TRUE_TRANS``, uniform start)."""
    var = jnp.asarray(np.square(TRUE_SD)[:, None, None])
    return hmm.HMMParams(jnp.full(3, 1.0 / 3), jnp.asarray(TRUE_TRANS), hmm.GaussianEmission(
        jnp.ones((3, 1)), jnp.asarray(TRUE_MEANS[:, None, None]), var, 1.0 / jnp.sqrt(var)))


def _best_permutation(decoded: np.ndarray, truth: np.ndarray, k: int) -> tuple[int, ...]:
    """Label permutation of the decoded states that agrees most with the truth."""
    return max(itertools.permutations(range(k)),
               key=lambda p: int(np.sum(np.asarray(p)[decoded] == truth)))


def _figure(x: np.ndarray, truth: np.ndarray, decoded: np.ndarray, proba: np.ndarray,
            colours: list[str]) -> plt.Figure:
    t = np.arange(len(x))
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True,
                             gridspec_kw={"height_ratios": [2, 1]})
    ax = axes[0]
    for k, colour in enumerate(colours):
        ax.fill_between(t, x.min(), x.max(), where=truth == k, color=colour, alpha=0.12, lw=0,
                        step="mid")
        ax.scatter(t[decoded == k], x[decoded == k], s=6, color=colour,
                   label=f"decoded regime {k}")
    ax.plot(t, x, color="0.5", lw=0.4)
    ax.set_ylabel("observation")
    ax.set_title("Series coloured by Viterbi state (background: true regime)")
    ax.legend(loc="upper right", fontsize=8, ncol=3)
    ax = axes[1]
    ax.stackplot(t, proba.T, colors=colours, alpha=0.8)
    ax.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.set_ylabel("p(state | series)")
    fig.tight_layout()
    return fig


def _section_hmm(key: jax.Array, report: Report, quick: bool) -> None:
    k_data, k_fit = jax.random.split(key)
    n_steps, k = 800, 3
    x_jax, z_jax = hmm.sample(k_data, true_params(), n_steps)
    x, truth = np.asarray(x_jax), np.asarray(z_jax)
    max_iter = 50 if quick else 200
    ml = hmm.fit(k_fit, x, k, n_init=4, max_iter=max_iter, tol=1e-6)
    sticky = hmm.fit(k_fit, x, k, n_init=4, max_iter=max_iter, tol=1e-6, trans_prior=1.0,
                     sticky=50.0)
    decoded = np.asarray(hmm.predict(sticky.params, x))
    perm = np.array(_best_permutation(decoded, truth, k), dtype=np.int64)
    inverse = np.argsort(perm)
    proba = np.asarray(hmm.predict_proba(sticky.params, x))[:, inverse]
    decoded_true_labels = perm[decoded]
    colours = ["tab:blue", "tab:green", "tab:red"]
    report.section(
        "Hidden Markov model: a regime-switching series",
        f"{n_steps} steps of a 3-regime Gaussian HMM (means {list(TRUE_MEANS)}, sds "
        f"{list(TRUE_SD)}, self-transition 0.94–0.97) sampled with hmm.sample; Baum–Welch with "
        "4 vmapped restarts, once by maximum likelihood and once as MAP with a sticky "
        "Dirichlet prior on the transition rows (κ = 50, Fox et al. 2011), then Viterbi "
        "decoding and forward–backward marginals (PRML §13.2).")
    report.figure(_figure(x[:, 0], truth, decoded_true_labels, proba, colours), "hmm_regimes",
                  "Viterbi regimes of the sticky MAP fit and their posterior probabilities")

    def switches(path):
        return int(np.sum(np.diff(np.asarray(path)) != 0))

    trans = np.asarray(sticky.params.trans)[np.ix_(inverse, inverse)]
    emission = sticky.params.emission
    if not isinstance(emission, hmm.GaussianEmission):
        raise TypeError("the section fits Gaussian emissions")
    means = emission.means
    report.metrics({
        "decoding_accuracy_sticky": float(np.mean(decoded_true_labels == truth)),
        "switches_true": switches(truth),
        "switches_ml": switches(hmm.predict(ml.params, x)),
        "switches_sticky": switches(decoded),
        "mean_loglik_ml": float(ml.history[int(ml.n_iter) - 1]),
        "em_iterations_ml": int(ml.n_iter),
        "fitted_means": np.asarray(means)[inverse, 0, 0].round(3).tolist(),
        "fitted_self_transitions": np.diag(trans).round(3).tolist(),
    })


SECTIONS = {"hmm": _section_hmm}
