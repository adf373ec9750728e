"""The course tour: every model family on bundled data, written as a report folder.

Each ``_section_*`` function takes ``(key, report, quick)``, calls only the public API, adds
figures and numbers to the report and returns nothing. ``quick`` shrinks sample counts and
steps, never the code path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optax
from tqdm.auto import tqdm

from espresso_jax import datasets, fully_bayes, linear, mixture, prob
from espresso_jax.apps import viz
from espresso_jax.apps.report import Report
from espresso_jax.apps.tour_active import SECTIONS as ACTIVE_SECTIONS
from espresso_jax.apps.tour_baselines import SECTIONS as BASELINES_SECTIONS
from espresso_jax.apps.tour_codes import SECTIONS as CODES_SECTIONS
from espresso_jax.apps.tour_deep import SECTIONS as DEEP_SECTIONS
from espresso_jax.apps.tour_hmm import SECTIONS as HMM_SECTIONS
from espresso_jax.validation import check_int


def _section_beta_binomial(key: jax.Array, report: Report, quick: bool) -> None:
    true_p, prior = 0.7, dist.Beta(2.0, 2.0)
    flips = jax.random.bernoulli(key, true_p, (100,)).astype(jnp.float32)
    stages = [0, 1, 2, 5, 20, 100]
    grid = np.linspace(0.001, 0.999, 400)
    densities, labels = [], []
    for n in stages:
        post = prior if n == 0 else prob.conjugate.beta_bernoulli(prior, flips[:n])
        log_density = jax.vmap(post.log_prob)(jnp.asarray(grid, jnp.float32))
        densities.append(np.exp(np.asarray(log_density)))
        labels.append(f"n = {n}")
    report.section("Beta–Bernoulli sequential update",
                   "Coin flips with p = 0.7 update a Beta(2, 2) prior (PRML §2.1.1).")
    report.figure(viz.plot_beta_sequence(grid, densities, labels, true_p=true_p),
                  "beta_binomial", "Beta posterior after n flips")
    final = prob.conjugate.beta_bernoulli(prior, flips)
    report.metrics({
        "heads_in_100": int(flips.sum()),
        "posterior_mean": float(final.mean),
        "posterior_sd": float(jnp.sqrt(final.variance)),
        "kl_posterior_prior_nats": float(prob.info.kl_divergence(final, prior)),
        "entropy_prior": float(prob.info.entropy(prior)),
        "entropy_posterior": float(prob.info.entropy(final)),
    })


def _gaussian_design(x: jax.Array) -> jax.Array:
    return linear.basis.design_matrix(x, "gaussian", centres=jnp.linspace(0.0, 1.0, 9),
                                      width=0.1, bias=True)


def _section_blr(key: jax.Array, report: Report, quick: bool) -> None:
    alpha, beta = 2.0, 25.0
    k_data, k_samples = jax.random.split(key)
    x, t = datasets.sinusoidal(k_data, 25, noise_std=0.2)
    grid = jnp.linspace(0.0, 1.0, 200)
    design_grid = _gaussian_design(grid)
    panels = []
    for n in (1, 2, 4, 25):
        post = linear.bayes.posterior(_gaussian_design(x[:n]), t[:n], alpha=alpha, beta=beta)
        pred = linear.bayes.predict(post, design_grid, beta=beta)
        samples = linear.bayes.sample_functions(k_samples, post, design_grid, 5)
        panels.append(dict(x_grid=grid, mean=pred.mean, std=jnp.sqrt(pred.var), x=x[:n],
                           t=t[:n], samples=samples, truth=jnp.sin(2 * jnp.pi * grid),
                           title=f"N = {n}"))
    report.section("Bayesian linear regression",
                   "9 Gaussian basis functions (s = 0.1) plus a bias, α = 2, β = 25, data "
                   "sin(2πx) + N(0, 0.2²) (PRML Figs. 3.8–3.9).")
    report.figure(viz.plot_predictive_band(panels, title="Predictive distribution and "
                                           "posterior function samples"),
                  "blr_predictive", "Predictive mean ± 2 sd with 5 posterior function samples")
    fit = linear.bayes.fit_evidence(_gaussian_design(x), t)
    pred = linear.bayes.predict(fit.params, design_grid)
    report.figure(viz.plot_predictive_band(
        [dict(x_grid=grid, mean=pred.mean, std=jnp.sqrt(pred.var), x=x, t=t,
              truth=jnp.sin(2 * jnp.pi * grid), title="evidence-optimal α, β")],
        title="Evidence maximisation"), "blr_evidence_fit",
        "Predictive band at the evidence-maximising α and β")
    report.metrics({
        "evidence_alpha": float(fit.params.alpha), "evidence_beta": float(fit.params.beta),
        "true_beta": 25.0, "gamma_effective_params": float(fit.gamma),
        "log_evidence": float(fit.log_evidence), "n_iter": int(fit.n_iter),
        "mean_model_sd_on_grid": float(jnp.mean(jnp.sqrt(pred.model_var))),
        "noise_sd": float(jnp.sqrt(pred.noise_var[0])),
    })


def _section_evidence_order(key: jax.Array, report: Report, quick: bool) -> None:
    k_runs, k_test = jax.random.split(key)
    # The displayed data set is the first of the repeated ones (run 0).
    x, t = datasets.sinusoidal(jax.random.fold_in(k_runs, 0), 10, noise_std=0.3,
                               evenly_spaced=True)
    orders = np.arange(10)
    res = linear.bayes.evidence_by_order(x, t, orders, alpha=5e-3, beta=11.1)
    x_test, t_test = datasets.sinusoidal(k_test, 100, noise_std=0.3)
    rms_test = []
    for m in orders:
        ls = linear.regression.fit_least_squares(linear.basis.polynomial(x, int(m)), t)
        resid = t_test - linear.regression.predict(ls.params,
                                                   linear.basis.polynomial(x_test, int(m)))
        rms_test.append(float(jnp.sqrt(jnp.mean(resid ** 2))))
    n_repeats = 20 if quick else 100
    runs = np.stack([np.asarray(linear.bayes.evidence_by_order(
        *datasets.sinusoidal(jax.random.fold_in(k_runs, r), 10, noise_std=0.3,
                             evenly_spaced=True), orders, alpha=5e-3, beta=11.1).log_evidence)
        for r in range(n_repeats)])
    report.section("Model evidence against polynomial order",
                   "10 evenly spaced points of sin(2πx) + N(0, 0.3²), α = 5e-3, β = 11.1 (PRML "
                   "Fig. 3.14): the evidence peaks at a low order while the training error keeps "
                   f"falling. The grey curve averages {n_repeats} independent data sets: which "
                   "order wins varies with the noise draw (the book's data set peaks at M = 3).")
    report.figure(viz.plot_evidence_by_order(orders, res.log_evidence, res.rms_ml, rms_test,
                                             log_evidence_runs=runs),
                  "evidence_vs_order", "Log evidence and RMS error against polynomial order M")
    report.metrics({"best_order": int(orders[int(jnp.argmax(res.log_evidence))]),
                    "best_order_of_mean_curve": int(orders[int(np.argmax(runs.mean(0)))]),
                    "best_order_counts": np.bincount(runs.argmax(1), minlength=len(orders)),
                    "log_evidence": res.log_evidence, "rms_train": res.rms_ml,
                    "rms_test": rms_test})


def _section_sequential_weights(key: jax.Array, report: Report, quick: bool) -> None:
    true_w, alpha, beta = (-0.3, 0.5), 2.0, 25.0
    k_x, k_noise, k_lines = jax.random.split(key, 3)
    x = jax.random.uniform(k_x, (20,), minval=-1.0, maxval=1.0)
    t = true_w[0] + true_w[1] * x + 0.2 * jax.random.normal(k_noise, (20,))
    w_grid = np.linspace(-1, 1, 120)
    W0, W1 = np.meshgrid(w_grid, w_grid)
    points = jnp.asarray(np.stack([W0.ravel(), W1.ravel()], -1), jnp.float32)
    densities, lines, data, labels = [], [], [], []
    for n in (0, 1, 2, 20):
        if n == 0:
            mean, cov = jnp.zeros(2), jnp.eye(2) / alpha
        else:
            post = linear.bayes.posterior(linear.basis.polynomial(x[:n], 1), t[:n],
                                          alpha=alpha, beta=beta)
            mean, cov = post.mean, post.cov
        belief = dist.MultivariateNormal(mean, covariance_matrix=cov)
        densities.append(np.exp(np.asarray(jax.vmap(belief.log_prob)(points))).reshape(W0.shape))
        lines.append(np.asarray(jax.random.multivariate_normal(k_lines, mean, cov, (6,))))
        data.append((np.asarray(x[:n]), np.asarray(t[:n])))
        labels.append(f"after {n} point{'s' if n != 1 else ''}")
    report.section("Sequential Bayesian learning",
                   "y = −0.3 + 0.5x with noise sd 0.2, α = 2, β = 25 (PRML Fig. 3.7): the "
                   "posterior over (w0, w1) narrows as points arrive; lines are weight samples.")
    report.figure(viz.plot_sequential_weights(w_grid, densities, lines, data, true_w, labels),
                  "sequential_weights", "Posterior over the weights and sampled lines")
    report.metrics({"posterior_mean_after_20": mean, "posterior_sd_after_20":
                    jnp.sqrt(jnp.diag(cov)), "true_w": list(true_w)})


def _faithful_standardised() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = datasets.load_faithful()
    z = (X - X.mean(0)) / X.std(0)
    return X, z[:, 0], z[:, 1]


def _section_gp(key: jax.Array, report: Report, quick: bool) -> None:
    X, erupt, wait = _faithful_standardised()
    params0 = linear.gp.make_params(1.0, 1.0, 0.5)
    steps = 150 if quick else 500
    hyper = linear.gp.fit_hyperparameters(erupt[:, None], wait, params0,
                                          optimizer=optax.adam(0.05), max_iter=steps)
    post = linear.gp.fit(erupt[:, None], wait, hyper.params).params
    grid = np.linspace(erupt.min() - 0.5, erupt.max() + 0.5, 200)
    mean, var = linear.gp.predict(post, grid[:, None])
    samples = linear.gp.sample_posterior(key, post, grid[:, None], 3, include_noise=False)
    report.section("Gaussian-process regression",
                   "Old Faithful, standardised waiting time against eruption length; RBF "
                   "kernel hyper-parameters fitted by maximising the marginal likelihood with "
                   "optax Adam.")
    report.figure(viz.plot_predictive_band(
        [dict(x_grid=grid, mean=mean, std=jnp.sqrt(var), x=erupt, t=wait, samples=samples,
              title="GP posterior")], title="Gaussian process (RBF kernel)"),
        "gp_faithful", "GP predictive mean ± 2 sd (latent samples in orange)")
    signal_var, length_scale, noise_var = (float(jnp.exp(p)) for p in (
        hyper.params.log_signal_var, jnp.mean(hyper.params.log_length_scale),
        hyper.params.log_noise_var))
    report.metrics({"signal_var": signal_var, "length_scale": length_scale,
                    "noise_var": noise_var, "optax_steps": steps,
                    "log_marginal_likelihood": float(linear.gp.log_marginal_likelihood(
                        hyper.params, erupt[:, None], wait))})


def _section_logistic(key: jax.Array, report: Report, quick: bool) -> None:
    X, _, wait = _faithful_standardised()
    label = (X[:, 0] > 3.0).astype(np.int32)
    design = np.stack([np.ones_like(wait), wait], -1)
    alpha = 1.0
    laplace = linear.logistic.fit_laplace(design, label, alpha=alpha)
    k_mc, k_nuts = jax.random.split(key)
    grid = np.linspace(wait.min() - 0.5, wait.max() + 0.5, 200)
    design_grid = np.stack([np.ones_like(grid), grid], -1)
    curves = {
        "Laplace + probit": linear.logistic.predict_proba(laplace.params, design_grid),
        "Laplace + MC": linear.logistic.predict_proba_mc(k_mc, laplace.params, design_grid,
                                                         n_samples=2000),
    }
    n_warm, n_samp = (200, 300) if quick else (1000, 2000)
    nuts = fully_bayes.logistic.fit_nuts(k_nuts, design, label, alpha=alpha,
                                         num_warmup=n_warm, num_samples=n_samp)
    curves["NUTS (NumPyro)"] = fully_bayes.logistic.predict_proba(nuts, design_grid)
    report.section("Bayesian logistic regression",
                   "Old Faithful: P(eruption > 3 min) from the standardised waiting time, "
                   "prior N(0, I). The Laplace approximation (Newton/IRLS) with probit and MC "
                   "predictive against a NumPyro NUTS posterior.")
    report.figure(viz.plot_logistic_predictive(grid, curves, wait, label,
                                               xlabel="standardised waiting time",
                                               title="Predictive probability"),
                  "logistic_faithful", "Laplace (probit, MC) and NUTS predictive probabilities")
    gap = np.max(np.abs(np.asarray(curves["Laplace + probit"]) -
                        np.asarray(curves["NUTS (NumPyro)"])))
    report.metrics({"map_weights": laplace.params.mean, "newton_iterations": int(laplace.n_iter),
                    "nuts_posterior_mean": jnp.mean(nuts.w, 0),
                    "max_abs_gap_probit_vs_nuts": float(gap),
                    "nuts_samples": n_samp})


def _section_fully_bayes_linear(key: jax.Array, report: Report, quick: bool) -> None:
    X, erupt, wait = _faithful_standardised()
    design = np.asarray(linear.basis.polynomial(erupt, 3))
    fit = linear.bayes.fit_evidence(design, wait)
    n_warm, n_samp = (200, 400) if quick else (1000, 2000)
    nuts = fully_bayes.linear.fit_nuts(key, design, wait, num_warmup=n_warm, num_samples=n_samp)
    report.section("Fully Bayesian linear regression",
                   "Cubic polynomial of eruption length predicting waiting time (standardised). "
                   "Empirical Bayes (evidence maximisation) against NUTS with Gamma hyperpriors "
                   "on α and β.")
    report.metrics({"evidence_alpha": float(fit.params.alpha),
                    "evidence_beta": float(fit.params.beta),
                    "nuts_alpha_mean": float(jnp.mean(nuts.alpha)),
                    "nuts_beta_mean": float(jnp.mean(nuts.beta)),
                    "evidence_weights": fit.params.mean, "nuts_weights_mean": jnp.mean(nuts.w, 0),
                    "nuts_weights_sd": jnp.std(nuts.w, 0),
                    "closed_form_weights_sd": jnp.sqrt(jnp.diag(fit.params.cov))})


def _faithful_raw_and_standardised() -> tuple[np.ndarray, np.ndarray]:
    X = datasets.load_faithful()
    return X, (X - X.mean(0)) / X.std(0)


def _section_gmm(key: jax.Array, report: Report, quick: bool) -> None:
    _, Xs = _faithful_raw_and_standardised()
    init: dict[str, Any] = dict(weights_init=np.array([0.5, 0.5]), means_init=np.array([[-1.5, 1.0],
                                                                         [1.5, -1.0]]),
                precisions_init=np.stack([np.eye(2)] * 2))
    snapshots = []
    for n_iter in (1, 2, 5, 20):
        res = mixture.gmm.fit(key, Xs, 2, max_iter=n_iter, tol=0.0, **init)
        p = res.params
        snapshots.append((f"after {n_iter} EM step{'s' if n_iter > 1 else ''}",
                          np.asarray(p.weights), np.asarray(p.means),
                          np.asarray(p.covariances), np.asarray(mixture.gmm.predict_proba(p, Xs))))
    history = np.asarray(res.history)
    report.section("Gaussian mixture by EM",
                   "Old Faithful (standardised), K = 2, full covariances, started from means "
                   "(−1.5, 1), (1.5, −1) and unit covariances, as in PRML Fig. 9.8; ellipses are "
                   "2 sd. The log-likelihood never decreases.")
    report.figure(viz.plot_mixture_snapshots(Xs, snapshots, history,
                                             xlabel="eruptions (std.)", ylabel="waiting (std.)"),
                  "gmm_em_faithful", "EM iterations with covariance ellipses; log-likelihood")
    best = mixture.gmm.fit(key, Xs, 2, n_init=4)
    report.metrics({"final_loglik_per_point": float(history[-1]),
                    "loglik_never_decreases": bool(np.all(np.diff(history) >= -1e-5)),
                    "weights": p.weights, "bic_k2": float(mixture.gmm.bic(best.params, Xs)),
                    "bic_k3": float(mixture.gmm.bic(mixture.gmm.fit(key, Xs, 3, n_init=4)
                                                    .params, Xs))})


def _section_vbgmm(key: jax.Array, report: Report, quick: bool) -> None:
    X, _ = _faithful_raw_and_standardised()
    weights, fits = {}, {}
    for prior in ("dirichlet_process", "dirichlet_distribution"):
        fits[prior] = mixture.vbgmm.fit(key, X, 10, weight_prior=prior,
                                        weight_concentration=1e-3, max_iter=500)
        weights[prior] = np.asarray(mixture.vbgmm.expected_weights(fits[prior].params))
    p = fits["dirichlet_process"].params
    report.section("Variational Bayesian GMM",
                   "Old Faithful with 10 components, weight concentration 1e-3, Gaussian–Wishart "
                   "component priors (PRML §10.2): the surplus components' weights collapse.")
    report.figure(viz.plot_weight_pruning(X, weights, np.asarray(p.means),
                                          np.asarray(p.covariances), threshold=1e-2,
                                          xlabel="eruptions [min]", ylabel="waiting [min]"),
                  "vbgmm_pruning", "Expected weights (log scale) and the surviving components")
    report.metrics({f"active_components_{k}": int((w > 1e-2).sum()) for k, w in weights.items()}
                   | {f"final_elbo_{k}": float(r.history[int(r.n_iter) - 1])
                      for k, r in fits.items()})


def _section_kmeans(key: jax.Array, report: Report, quick: bool) -> None:
    _, Xs = _faithful_raw_and_standardised()
    res = mixture.kmeans.fit(key, Xs, 2, n_init=4, tol=0.0, max_iter=10)
    labels = mixture.kmeans.predict(res.params, Xs)
    history = np.asarray(res.history)
    report.section("k-means", "Old Faithful (standardised), K = 2, k-means++ initialisation, "
                   "best of 4 vmapped restarts; Lloyd iterations never increase the distortion.")
    report.figure(viz.plot_kmeans(Xs, np.asarray(labels), np.asarray(res.params.centres),
                                  history[np.isfinite(history)], xlabel="eruptions (std.)",
                                  ylabel="waiting (std.)"),
                  "kmeans_faithful", "k-means clusters and inertia per iteration")
    report.metrics({"inertia": float(res.inertia), "n_iter": int(res.n_iter),
                    "cluster_sizes": np.bincount(np.asarray(labels), minlength=2)})


def _section_pca(key: jax.Array, report: Report, quick: bool) -> None:
    images, labels = datasets.load_mnist("train")
    X = images[labels == 3][: 300 if quick else 1000].astype(np.float64)
    n_comp = 10
    pca = mixture.pca.fit(X, 20)
    closed = mixture.ppca.fit(X, n_comp).params
    em_fit = mixture.ppca.fit_em(key, X, n_comp, max_iter=100 if quick else 400, tol=0.0)
    history = np.asarray(em_fit.history)
    k_sample = jax.random.fold_in(key, 1)
    pictures = {
        "mean, PCs": np.concatenate([np.asarray(pca.params.mean)[None],
                                     np.asarray(pca.params.components[:7])]),
        "PPCA samples": np.clip(np.asarray(mixture.ppca.sample(k_sample, closed, 8)), 0, 1),
        "data": X[:8],
    }
    closed_ll = float(mixture.ppca.log_likelihood(closed, X))
    report.section("PCA and probabilistic PCA",
                   f"{len(X)} MNIST images of the digit 3 (D = 784). PPCA with M = {n_comp}: the "
                   "closed-form maximum-likelihood solution (Tipping & Bishop) and EM converging "
                   "to it (PRML §12.2).")
    report.figure(viz.plot_pca_ppca(np.asarray(pca.explained_variance_ratio), history[
        np.isfinite(history)], closed_ll, pictures, (28, 28)), "pca_ppca_mnist",
        "PCA spectrum and components, PPCA EM against the closed form, PPCA samples")
    report.metrics({"explained_variance_10": float(np.sum(pca.explained_variance_ratio[:10])),
                    "ppca_sigma2": float(closed.sigma2), "closed_form_loglik": closed_ll,
                    "em_final_loglik": float(mixture.ppca.log_likelihood(em_fit.params, X)),
                    "em_iterations": int(em_fit.n_iter)})


SECTIONS: dict[str, Callable[[jax.Array, Report, bool], None]] = {
    "beta-binomial": _section_beta_binomial,
    "bayesian linear regression": _section_blr,
    "evidence vs order": _section_evidence_order,
    "sequential weights": _section_sequential_weights,
    "gaussian process": _section_gp,
    "logistic regression": _section_logistic,
    "fully bayesian linear": _section_fully_bayes_linear,
    "gmm": _section_gmm,
    "vbgmm": _section_vbgmm,
    "kmeans": _section_kmeans,
    "pca": _section_pca,
    **DEEP_SECTIONS,
    **CODES_SECTIONS,
    **HMM_SECTIONS,
    **ACTIVE_SECTIONS,
    **BASELINES_SECTIONS,
}


def run_tour(seed: int, out_dir: str | Path, *, quick: bool = False,
             sections: list[str] | None = None) -> Path:
    """Run every section (or the named ones) and write the report folder.

    Args:
        seed: integer seed; the ``i``-th entry of :data:`SECTIONS` uses
            ``fold_in(key(seed), i)``, so a section's numbers do not depend on which others run.
        out_dir: destination folder (replaced atomically when the run completes).
        quick: smaller sample counts and step numbers, same code paths.
        sections: names from :data:`SECTIONS` to run (default: all).

    Returns:
        The report folder.
    """
    seed = check_int(seed, "seed", min_value=0)
    names = list(SECTIONS) if sections is None else list(sections)
    for name in names:
        if name not in SECTIONS:
            raise ValueError(f"sections: unknown section {name!r}; choose from {list(SECTIONS)}")
    report = Report(out_dir, title="espresso_jax — course tour" + (" (quick)" if quick else ""))
    key = jax.random.key(seed)
    try:
        bar = tqdm(names, desc="tour", unit="section")
        for name in bar:
            bar.set_postfix_str(name)
            SECTIONS[name](jax.random.fold_in(key, list(SECTIONS).index(name)), report, quick)
        return report.write()
    except BaseException:
        report.discard()
        raise
