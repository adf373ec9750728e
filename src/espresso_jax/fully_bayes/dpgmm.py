"""Dirichlet-process Gaussian mixture by truncated stick-breaking, sampled by NUTS (or SVI).

Model (Sethuraman's stick-breaking construction truncated at ``K`` components, on the data
standardised feature by feature; see :func:`model`)::

    v_k ~ Beta(1, α),                    k = 1, …, K − 1
    π_k = v_k ∏_{j<k} (1 − v_j),          π_K = ∏_{j<K} (1 − v_j)
    μ_k ~ N(0, s_μ² I)
    σ_kd ~ LogNormal(log s_σ, τ_σ),      L_k ~ LKJCholesky(D, η)
    Σ_k = diag(σ_k) L_k L_kᵀ diag(σ_k)
    x_n ~ Σ_k π_k N(μ_k, Σ_k)             (assignments z_n summed out)

The discrete assignments are marginalised (``MixtureSameFamily``: a log-sum-exp over
components per point), so every latent is continuous and NUTS applies. The stick fractions are
sampled through ``e_k = −log(1 − v_k) ~ Exponential(α)`` (the same law as ``v_k ~ Beta(1, α)``):
then ``log π_k = log(−expm1(−e_k)) − Σ_{j<k} e_j`` is exact in floating point even when a
fraction is within rounding of 0 or 1, where ``log v`` / ``log(1 − v)`` would give ``−inf``.

Label switching: the posterior is (nearly) invariant to permuting components, so chains can
visit different labellings. Every summary here first **sorts each draw's components by weight,
largest first** (:func:`sort_by_weight`). That identifies the components as long as the
non-negligible weights are distinct (Old Faithful: ≈0.64 and ≈0.36); components with equal
weights would need alignment to a reference draw instead.

Mixing: NUTS moves continuously, so it rarely changes the number of occupied components
(that needs a split or merge). On Old Faithful a chain that reaches a state splitting the
short-eruption cluster (weights ≈ 0.64 / 0.30 / 0.06) tends to stay there for hundreds of
iterations, even with α = 0.01: four chains of 3,000 draws (K = 10) spent 7%, 15%, 69% and
99% of their draws in such states, so the posterior mean of the third sorted weight (≈ 0.05)
and its R-hat (1.6) are not reliable at that length. Check the R-hat of the sorted weights
(:func:`posterior_summary`) before trusting the component count, and compare with other fits
through :func:`cluster_summary`: the total weight and the weighted mean of the components
nearest each of a few given centres do not change when a cluster is split, and they mix
(R-hat ≤ 1.01 in the runs above; weights within 0.002 and means within 0.01 sd of
scikit-learn's variational fit).

Standardisation: :func:`fit_nuts` / :func:`fit_svi` standardise ``X`` per feature (mean 0,
sd 1) before fitting, so the default priors are in units of the data spread and the fit is
equivariant to shifting and rescaling features; the returned draws are mapped back to the
units of ``X``.

This module fits the model (:func:`fit_nuts`, :func:`fit_svi`) and evaluates the posterior
predictive density. The NumPyro model itself is in :mod:`espresso_jax.fully_bayes.dpgmm_model`,
the posterior container and its weight-sorted and cluster summaries in
:mod:`espresso_jax.fully_bayes.dpgmm_posterior`; the names listed in ``__all__`` are
re-exported here.

References:
    J. Sethuraman, "A constructive definition of Dirichlet priors", Statistica Sinica 4, 1994.
    H. Ishwaran and L. F. James, "Gibbs sampling methods for stick-breaking priors", JASA 96,
    2001 (truncation).
    D. M. Blei and M. I. Jordan, "Variational inference for Dirichlet process mixtures",
    Bayesian Analysis 1, 2006.
    D. Lewandowski, D. Kurowicka, H. Joe, "Generating random correlation matrices based on
    vines and extended onion method", J. Multivariate Anal. 100, 2009 (LKJ prior).
    C. M. Bishop, *Pattern Recognition and Machine Learning*, §9.2, §10.2.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike
from numpyro.infer import Trace_ELBO
from numpyro.infer.autoguide import AutoDelta, AutoNormal
from numpyro.infer.initialization import init_to_value

from espresso_jax import validation as V
from espresso_jax.fully_bayes.dpgmm_model import model, stick_log_weights
from espresso_jax.fully_bayes.dpgmm_posterior import (
    DPGMMClusters,
    DPGMMPosterior,
    DPGMMSummary,
    check_posterior,
    cluster_summary,
    posterior_summary,
    sort_by_weight,
)
from espresso_jax.fully_bayes.mcmc import run_nuts_samples, run_svi
from espresso_jax.interop import standard_promotion
from espresso_jax.mixture.kmeans import kmeans_plusplus
from espresso_jax.prob.gaussian import gaussian_log_density

__all__ = ["DPGMMPosterior", "DPGMMSVIResult", "DPGMMSummary", "DPGMMClusters", "cluster_summary",
           "fit_nuts", "fit_svi", "model", "posterior_summary", "predictive_density",
           "sort_by_weight", "stick_log_weights"]

_GUIDES = ("normal", "delta")


class DPGMMSVIResult(NamedTuple):
    """Result of :func:`fit_svi`.

    Attributes:
        posterior: :class:`DPGMMPosterior` of draws from the fitted guide (one draw, the
            point estimate, for ``guide="delta"``).
        params: the guide's optimised parameters (NumPyro names).
        history: ``(num_steps,)`` negative-ELBO estimates.
        n_iter: ``()`` int32 number of steps run (``num_steps``).
        converged: ``()`` bool, always False (a fixed budget of steps, see
            :class:`~espresso_jax.fully_bayes.mcmc.SVIResult`).
    """

    posterior: DPGMMPosterior
    params: dict[str, jax.Array]
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array


# ------------------------------------------------------------------------------- fitting
def _prepare(X, n_components, concentration, mean_scale, scale_median, scale_log_sd,
             lkj_concentration):
    X = V.as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    if X.shape[0] < 2:
        raise ValueError(f"X needs at least 2 samples, got {X.shape[0]}")
    n_components = V.check_int(n_components, "n_components", min_value=2,
                               max_value=X.shape[0])
    kwargs = {"n_components": n_components,
              "concentration": V.check_positive(concentration, "concentration")}
    for name, value in (("mean_scale", mean_scale), ("scale_median", scale_median),
                        ("scale_log_sd", scale_log_sd),
                        ("lkj_concentration", lkj_concentration)):
        kwargs[name] = V.check_positive(value, name)
    centre, spread = _standardiser(X)
    return (X - centre[None]) / spread[None], centre, spread, kwargs


@jax.jit
def _standardiser(X):
    centre = jnp.mean(X, axis=0)
    sd = jnp.std(X, axis=0)
    # a constant feature is only centred (sd 1), never divided by 0
    return centre, jnp.where(sd > 0, sd, jnp.ones_like(sd))


@jax.jit
def _to_posterior_arrays(weights, mu, sigma, corr, centre, spread):
    """Standardised draws -> (weights, means, covariances, scale_tril) in data units."""
    spread = jnp.broadcast_to(spread, mu.shape)
    scale_tril = (spread * sigma)[..., None] * corr                 # diag(spread) diag(σ) L
    cov = scale_tril @ jnp.swapaxes(scale_tril, -1, -2)
    means = jnp.broadcast_to(centre, mu.shape) + spread * mu
    return weights / jnp.sum(weights, axis=-1, keepdims=True), means, cov, scale_tril


def _posterior_from_sites(sites, centre, spread, num_chains, n_div):
    mu, sigma = sites["mu"], sites["sigma"]
    D = mu.shape[-1]
    corr = sites["corr_chol"] if D > 1 else jnp.ones(mu.shape + (1,), mu.dtype)
    weights = jnp.exp(stick_log_weights(sites["stick"]))
    w, m, c, L = _to_posterior_arrays(weights, mu, sigma, corr, centre, spread)
    return DPGMMPosterior(w, m, c, L, num_chains, n_div)


def _init_values(key, Xs, n_components, scale_median):
    """NumPyro init strategy: means at k-means++ seeds, equal weights ``1/K`` (stick fractions
    ``v_k = 1/(K − k + 1)``), every component sd at the prior median; the correlations start
    at NumPyro's ``init_to_uniform``.

    Without it (NumPyro's default ``init_to_uniform`` everywhere) one stick can start near 1
    and, with a small α favouring that, a chain can stay in the one-component mode; seen on
    Old Faithful with 200 warm-up steps.
    """
    K = n_components
    return init_to_value(values={
        "mu": kmeans_plusplus(key, Xs, K),
        "stick": jnp.full((K - 1,), math.log(2.0), Xs.dtype),      # v_k = 1/2
        "sigma": jnp.full((K, Xs.shape[1]), scale_median, Xs.dtype)})


def fit_nuts(
    key: jax.Array,
    X: ArrayLike,
    *,
    n_components: int = 10,
    concentration: float = 0.1,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 1,
    target_accept_prob: float = 0.8,
    dense_mass: bool = False,
    max_tree_depth: int = 10,
    mean_scale: float = 2.0,
    scale_median: float = 0.5,
    scale_log_sd: float = 1.0,
    lkj_concentration: float = 2.0,
    progress_bar: bool = False,
) -> DPGMMPosterior:
    """Sample the truncated DP-GMM posterior with NUTS (assignments marginalised).

    ``X`` is standardised per feature before fitting (the priors of :func:`model` are in
    standardised units); the draws are returned in the units of ``X``. Chains start from
    k-means++ means (picked with ``key``, shared by the chains), equal weights and component
    sds at the prior median; the correlations start at random (``init_to_uniform``).

    Args:
        key: PRNG key.
        X: ``(n_samples, n_features)`` data.
        n_components: truncation level ``K`` (2 <= K <= n_samples; the number of components
            actually used is inferred, see :func:`posterior_summary`).
        concentration: DP concentration ``α`` > 0 (default 0.1 = scikit-learn's ``1/K`` for
            K = 10). Each extra occupied component costs about ``log α`` of log posterior; on
            Old Faithful α = 0.1 leaves much posterior mass on splitting the short-eruption
            cluster, and NUTS moves between such states rarely (check R-hat of the sorted
            weights, :func:`posterior_summary`); α = 0.01 gives a clean 2-component posterior.
        num_warmup, num_samples, num_chains: NUTS schedule (per chain). A chain can stay in
            a poor local mode from its random start (one seed of 200 warm-up steps did):
            run 2+ chains and check R-hat.
        target_accept_prob, dense_mass, max_tree_depth: NUTS settings.
        mean_scale, scale_median, scale_log_sd, lkj_concentration: priors, see :func:`model`.
        progress_bar: show NumPyro's progress bar.

    Returns:
        :class:`DPGMMPosterior` with ``num_chains * num_samples`` draws.

    References:
        Ishwaran and James (2001); Hoffman and Gelman (2014).
    """
    key = V.check_key(key)
    Xs, centre, spread, kwargs = _prepare(X, n_components, concentration, mean_scale,
                                          scale_median, scale_log_sd, lkj_concentration)
    num_chains = V.check_int(num_chains, "num_chains", min_value=1)
    k_init, k_run = jax.random.split(key)
    samples, n_div = run_nuts_samples(
        k_run, model, (Xs,), kwargs, num_warmup=num_warmup, num_samples=num_samples,
        num_chains=num_chains, progress_bar=progress_bar,
        target_accept_prob=target_accept_prob, dense_mass=dense_mass,
        max_tree_depth=max_tree_depth, chain_method=None,
        init_strategy=_init_values(k_init, Xs, n_components, kwargs["scale_median"]))
    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in samples.items()}
    return _posterior_from_sites(flat, centre, spread, num_chains, n_div)


def fit_svi(
    key: jax.Array,
    X: ArrayLike,
    *,
    n_components: int = 10,
    concentration: float = 0.1,
    guide: str = "normal",
    num_steps: int = 3000,
    learning_rate: float = 0.02,
    num_particles: int = 1,
    num_draws: int = 1000,
    mean_scale: float = 2.0,
    scale_median: float = 0.5,
    scale_log_sd: float = 1.0,
    lkj_concentration: float = 2.0,
) -> DPGMMSVIResult:
    """Fit the truncated DP-GMM by SVI with a mean-field Normal or a point-mass guide.

    The guide lives in NumPyro's unconstrained space: ``guide="normal"`` is
    ``AutoNormal`` (mean-field Gaussian), ``guide="delta"`` is ``AutoDelta`` (MAP). It
    starts as :func:`fit_nuts` does (k-means++ means, equal weights, prior-median sds); Adam
    with a cosine-decayed step size.
    ``X`` is standardised per feature as in :func:`fit_nuts`.

    Args:
        key: PRNG key (initialisation, ELBO estimates, guide draws).
        X: ``(n_samples, n_features)`` data.
        n_components: truncation level ``K`` (2 <= K <= n_samples).
        concentration: DP concentration ``α`` > 0.
        guide: ``"normal"`` or ``"delta"``.
        num_steps: optimisation steps.
        learning_rate: initial Adam step size.
        num_particles: ELBO Monte-Carlo particles per step.
        num_draws: draws from the fitted guide in the returned posterior (ignored for
            ``"delta"``, which returns its single point).
        mean_scale, scale_median, scale_log_sd, lkj_concentration: priors, see :func:`model`.

    Returns:
        :class:`DPGMMSVIResult`.

    References:
        Blei and Jordan (2006); Kucukelbir et al., "Automatic differentiation variational
        inference", JMLR 18, 2017.
    """
    key = V.check_key(key)
    Xs, centre, spread, kwargs = _prepare(X, n_components, concentration, mean_scale,
                                          scale_median, scale_log_sd, lkj_concentration)
    guide = V.check_choice(guide, "guide", _GUIDES)
    num_steps = V.check_int(num_steps, "num_steps", min_value=1)
    learning_rate = V.check_positive(learning_rate, "learning_rate")
    num_particles = V.check_int(num_particles, "num_particles", min_value=1)
    num_draws = V.check_int(num_draws, "num_draws", min_value=1)
    k_init, k_svi, k_draw = jax.random.split(key, 3)
    init = _init_values(k_init, Xs, n_components, kwargs["scale_median"])
    auto = (AutoNormal(model, init_loc_fn=init) if guide == "normal"
            else AutoDelta(model, init_loc_fn=init))
    res = run_svi(k_svi, model, auto, Xs,
                  optimizer=optax.adam(optax.cosine_decay_schedule(learning_rate, num_steps)),
                  num_steps=num_steps, loss=Trace_ELBO(num_particles=num_particles), **kwargs)
    shape = (1,) if guide == "delta" else (num_draws,)
    with standard_promotion():
        sites = auto.sample_posterior(k_draw, res.params, Xs, sample_shape=shape, **kwargs)
    post = _posterior_from_sites(sites, centre, spread, 1, jnp.zeros((), jnp.int32))
    return DPGMMSVIResult(post, res.params, res.history, res.n_iter, res.converged)


# ----------------------------------------------------------------------- predictive density
@jax.jit
def _predictive_impl(weights, means, tril, X):
    D = X.shape[1]

    def one_draw(draw):
        w, mu, L = draw
        diff = jnp.swapaxes(X[None] - mu[:, None], -1, -2)                  # (K, D, N)
        z = jax.scipy.linalg.solve_triangular(L, diff, lower=True)
        logdet = jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
        comp = gaussian_log_density(jnp.sum(z * z, axis=1), 2.0 * logdet[:, None], D)  # (K, N)
        return jax.nn.logsumexp(comp, axis=0, b=w[:, None])                 # (N,)

    per_draw = jax.lax.map(one_draw, (weights, means, tril), batch_size=32)   # (S, N)
    S = weights.shape[0]
    return jax.nn.logsumexp(per_draw, axis=0) - math.log(S)


def predictive_density(posterior: DPGMMPosterior, X: ArrayLike) -> jax.Array:
    """Log posterior predictive density of each row of ``X``.

    ``log p(x | data) ≈ log (1/S) Σ_s Σ_k π_sk N(x | μ_sk, Σ_sk)`` over the ``S`` draws
    (label-invariant, no sorting needed).

    Args:
        posterior: :class:`DPGMMPosterior`.
        X: ``(n, D)`` points, in the units of the fitted data.

    Returns:
        ``(n,)`` log densities.
    """
    weights, means, _, tril = check_posterior(posterior)
    X = V.as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    if X.shape[1] != means.shape[-1]:
        raise ValueError(f"X has {X.shape[1]} features but the posterior has "
                         f"{means.shape[-1]}")
    return _predictive_impl(weights, means, tril, X)

