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
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from jax.typing import ArrayLike
from numpyro.infer import Trace_ELBO
from numpyro.infer.autoguide import AutoDelta, AutoNormal
from numpyro.infer.initialization import init_to_value

from espresso_jax import validation as V
from espresso_jax.fully_bayes.mcmc import run_nuts_samples, run_svi, summarize
from espresso_jax.interop import standard_promotion
from espresso_jax.mixture.kmeans import kmeans_plusplus
from espresso_jax.prob.gaussian import gaussian_log_density

__all__ = ["DPGMMPosterior", "DPGMMSVIResult", "DPGMMSummary", "DPGMMClusters", "cluster_summary",
           "fit_nuts", "fit_svi", "model", "posterior_summary", "predictive_density",
           "sort_by_weight", "stick_log_weights"]

_GUIDES = ("normal", "delta")


class DPGMMPosterior(NamedTuple):
    """Posterior draws of the truncated DP-GMM, in the units of the fitted ``X``.

    Components are in the model's stick order (use :func:`sort_by_weight` to order them by
    weight per draw). Draws of several chains are concatenated chain by chain.

    Attributes:
        weights: ``(n_draws, K)`` mixing weights (each row sums to 1).
        means: ``(n_draws, K, D)`` component means.
        covariances: ``(n_draws, K, D, D)`` component covariances.
        scale_tril: ``(n_draws, K, D, D)`` their lower Cholesky factors.
        num_chains: chains the draws came from (1 for SVI).
        num_divergent: ``()`` divergent NUTS transitions after warm-up (0 for SVI).
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array
    scale_tril: jax.Array
    num_chains: int
    num_divergent: jax.Array


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


class DPGMMSummary(NamedTuple):
    """Host-side summary of the components with non-negligible weight (weight-sorted).

    Attributes:
        n_components: number of components whose posterior-mean (sorted) weight exceeds the
            threshold.
        weights, weights_sd: ``(n_components,)`` posterior mean and sd of their weights.
        means, means_sd: ``(n_components, D)`` posterior mean and sd of their means.
        covariances: ``(n_components, D, D)`` posterior-mean covariances.
        sorted_weights: ``(K,)`` posterior mean of all weight-sorted weights.
        weights_ess, weights_r_hat: ``(K,)`` effective sample size and split R-hat of the
            sorted weights (R-hat is NaN with fewer than 4 draws per chain).
    """

    n_components: int
    weights: np.ndarray
    weights_sd: np.ndarray
    means: np.ndarray
    means_sd: np.ndarray
    covariances: np.ndarray
    sorted_weights: np.ndarray
    weights_ess: np.ndarray
    weights_r_hat: np.ndarray


class DPGMMClusters(NamedTuple):
    """Per-draw cluster summaries from :func:`cluster_summary` (NumPy, float64).

    Attributes:
        weights: ``(n_draws, J)`` total weight of the components assigned to each centre.
        means: ``(n_draws, J, D)`` weight-averaged mean of those components (NaN in a draw
            where a centre received no weight).
        r_hat: ``(J, 1 + D)`` split R-hat of each cluster's weight and mean coordinates over
            the chains (NaN with a single chain, fewer than 4 draws per chain, or a centre
            that received no weight in some draw).
    """

    weights: np.ndarray
    means: np.ndarray
    r_hat: np.ndarray


# ------------------------------------------------------------------------------------ model
def stick_log_weights(e: jax.Array) -> jax.Array:
    """Log mixing weights from stick-breaking variables ``e_k = −log(1 − v_k)``.

    Args:
        e: ``(..., K − 1)`` positive stick variables.

    Returns:
        ``(..., K)`` log weights: ``log π_k = log v_k + Σ_{j<k} log(1 − v_j)`` for ``k < K`` and
        ``log π_K = Σ_{j<K} log(1 − v_j)``, computed as ``log(−expm1(−e_k)) − Σ_{j<k} e_j``.
    """
    zero = jnp.zeros(e.shape[:-1] + (1,), e.dtype)
    log_v = jnp.concatenate([jnp.log(-jnp.expm1(-e)), zero], axis=-1)
    log_rest = jnp.concatenate([zero, -jnp.cumsum(e, axis=-1)], axis=-1)
    return log_v + log_rest


def model(
    X: jax.Array | None,
    *,
    n_components: int,
    concentration: float,
    n_samples: int | None = None,
    n_features: int | None = None,
    mean_scale: float = 2.0,
    scale_median: float = 0.5,
    scale_log_sd: float = 1.0,
    lkj_concentration: float = 2.0,
) -> None:
    """NumPyro model of the truncated DP-GMM on standardised data (see the module docstring).

    Sites: ``stick`` ``(K−1,)`` (``e_k = −log(1 − v_k) ~ Exponential(α)``), deterministic
    ``weights`` ``(K,)``, ``mu`` ``(K, D)``, ``sigma`` ``(K, D)``, ``corr_chol`` ``(K, D, D)``
    (only when ``D > 1``), observed ``x`` in the plate ``data``.

    Args:
        X: ``(n_samples, n_features)`` standardised data, or ``None`` to sample the prior
            predictive (then give ``n_samples`` and ``n_features``).
        n_components: truncation level ``K``.
        concentration: DP concentration ``α`` (small α: few components).
        n_samples, n_features: data shape when ``X`` is None.
        mean_scale: prior sd ``s_μ`` of the component means.
        scale_median: prior median ``s_σ`` of the component sds.
        scale_log_sd: prior sd ``τ_σ`` of the log component sds.
        lkj_concentration: LKJ shape ``η`` of the component correlations (1: uniform).
    """
    if X is not None:
        n_samples, n_features = X.shape
        dtype = X.dtype
    elif n_samples is None or n_features is None:
        raise ValueError("n_samples and n_features are required when X is None")
    else:
        dtype = V.float_dtype()
    K, D = n_components, n_features
    e = numpyro.sample("stick", dist.Exponential(jnp.asarray(concentration, dtype))
                       .expand([K - 1]).to_event(1))
    log_w = stick_log_weights(e)
    numpyro.deterministic("weights", jnp.exp(log_w))
    mu = numpyro.sample("mu", dist.Normal(jnp.zeros((K, D), dtype),
                                          jnp.asarray(mean_scale, dtype)).to_event(2))
    sigma = numpyro.sample("sigma", dist.LogNormal(
        jnp.full((K, D), math.log(scale_median), dtype),
        jnp.asarray(scale_log_sd, dtype)).to_event(2))
    if D > 1:
        corr = numpyro.sample("corr_chol", dist.LKJCholesky(
            D, jnp.asarray(lkj_concentration, dtype)).expand([K]).to_event(1))
        scale_tril = sigma[..., None] * corr
    else:
        scale_tril = sigma[..., None]
    mixture = dist.MixtureSameFamily(dist.Categorical(logits=log_w),
                                     dist.MultivariateNormal(mu, scale_tril=scale_tril))
    with numpyro.plate("data", n_samples):
        numpyro.sample("x", mixture, obs=X)


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


# ------------------------------------------------------------------------------ posterior
@jax.jit
def _sort_impl(post_arrays):
    weights, means, cov, tril = post_arrays
    order = jnp.argsort(-weights, axis=-1)                          # (S, K), stable

    def take(a):
        return jnp.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)

    return take(weights), take(means), take(cov), take(tril)


def sort_by_weight(posterior: DPGMMPosterior) -> DPGMMPosterior:
    """Reorder each draw's components by decreasing weight (the label-switching fix used by
    :func:`posterior_summary`).

    Args:
        posterior: :class:`DPGMMPosterior`.

    Returns:
        :class:`DPGMMPosterior` whose component ``0`` is the heaviest in every draw.
    """
    arrays = _check_posterior(posterior)
    return posterior._replace(**dict(zip(("weights", "means", "covariances", "scale_tril"),
                                         _sort_impl(arrays), strict=True)))


def posterior_summary(posterior: DPGMMPosterior, threshold: float = 0.05) -> DPGMMSummary:
    """Components with non-negligible posterior-mean weight, after sorting by weight per draw.

    Each draw's components are sorted by decreasing weight (:func:`sort_by_weight`); the
    ``j``-th heaviest components are then averaged over draws. A component counts when its
    posterior-mean sorted weight exceeds ``threshold``.

    Args:
        posterior: :class:`DPGMMPosterior`.
        threshold: weight threshold in [0, 1).

    Returns:
        :class:`DPGMMSummary` (NumPy arrays, float64).
    """
    threshold = V.check_probability(threshold, "threshold")
    s = sort_by_weight(posterior)
    w = np.asarray(s.weights, np.float64)
    S, K = w.shape
    C = posterior.num_chains if S % max(posterior.num_chains, 1) == 0 else 1
    if S // C >= 2:
        diag = summarize({"w": w.reshape(C, S // C, K)}, group_by_chain=True)["w"]
        ess, r_hat = diag.ess, diag.r_hat
    else:
        ess, r_hat = np.full(K, np.nan), np.full(K, np.nan)
    mean_w = w.mean(0)
    n = int(np.sum(mean_w > threshold))
    means = np.asarray(s.means, np.float64)[:, :n]
    cov = np.asarray(s.covariances, np.float64)[:, :n]
    sd = (lambda a: a.std(0, ddof=1)) if S > 1 else (lambda a: np.zeros(a.shape[1:]))
    return DPGMMSummary(n, mean_w[:n], sd(w[:, :n]), means.mean(0), sd(means), cov.mean(0),
                        mean_w, np.asarray(ess), np.asarray(r_hat))


def cluster_summary(posterior: DPGMMPosterior, centres: ArrayLike) -> DPGMMClusters:
    """Label- and split-invariant summaries: each component of each draw is assigned to the
    nearest of ``J`` given centres (e.g. the means of an EM or variational fit); per draw, a
    cluster's weight is the sum of its components' weights and its mean is their
    weight-averaged mean.

    Unlike the weight-sorted components of :func:`posterior_summary`, these do not change when
    a draw splits a cluster into two components, so they can be compared across chains and
    with point fits even when the number of occupied components mixes slowly.

    Args:
        posterior: :class:`DPGMMPosterior`.
        centres: ``(J, D)`` reference points, in the units of the fitted data.

    Returns:
        :class:`DPGMMClusters`.
    """
    weights, means, _, _ = _check_posterior(posterior)
    w = np.asarray(weights, np.float64)
    m = np.asarray(means, np.float64)
    centres = np.asarray(V.as_float_array(centres, "centres", ndim=2,
                                          shape_hint="(n_centres, n_features)"), np.float64)
    if centres.shape[1] != m.shape[-1]:
        raise ValueError(f"centres has {centres.shape[1]} features but the posterior has "
                         f"{m.shape[-1]}")
    nearest = np.argmin(np.sum((m[:, :, None, :] - centres) ** 2, axis=-1), axis=-1)  # (S, K)
    member = nearest[..., None] == np.arange(len(centres))                       # (S, K, J)
    cw = np.einsum("sk,skj->sj", w, member)
    with np.errstate(invalid="ignore", divide="ignore"):
        cm = np.einsum("sk,skj,skd->sjd", w, member, m) / cw[..., None]
    S, J = cw.shape
    C = posterior.num_chains if S % max(posterior.num_chains, 1) == 0 else 1
    stacked = np.concatenate([cw[..., None], cm], axis=-1)                       # (S, J, 1+D)
    if C >= 2 and S // C >= 4 and np.all(np.isfinite(stacked)):
        r_hat = summarize({"c": stacked.reshape((C, S // C) + stacked.shape[1:])},
                          group_by_chain=True)["c"].r_hat
    else:
        r_hat = np.full(stacked.shape[1:], np.nan)
    return DPGMMClusters(cw, cm, np.asarray(r_hat, np.float64))


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
    weights, means, _, tril = _check_posterior(posterior)
    X = V.as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    if X.shape[1] != means.shape[-1]:
        raise ValueError(f"X has {X.shape[1]} features but the posterior has "
                         f"{means.shape[-1]}")
    return _predictive_impl(weights, means, tril, X)


def _check_posterior(posterior: Any) -> tuple[jax.Array, ...]:
    if not isinstance(posterior, DPGMMPosterior):
        raise TypeError(f"posterior must be a DPGMMPosterior, got {type(posterior).__name__}")
    w = V.as_float_array(posterior.weights, "posterior.weights", ndim=2,
                         shape_hint="(n_draws, K)")
    m = V.as_float_array(posterior.means, "posterior.means", ndim=3,
                         shape_hint="(n_draws, K, D)")
    c = V.as_float_array(posterior.covariances, "posterior.covariances", ndim=4,
                         shape_hint="(n_draws, K, D, D)")
    L = V.as_float_array(posterior.scale_tril, "posterior.scale_tril", ndim=4,
                         shape_hint="(n_draws, K, D, D)")
    S, K, D = m.shape
    for name, arr, shape in (("weights", w, (S, K)), ("covariances", c, (S, K, D, D)),
                             ("scale_tril", L, (S, K, D, D))):
        if arr.shape != shape:
            raise ValueError(f"posterior.{name} has shape {arr.shape}, expected {shape} "
                             f"to match posterior.means {m.shape}")
    return w, m, c, L
