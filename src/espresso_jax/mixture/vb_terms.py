"""Variational-Bayes terms of the Gaussian mixture with Gaussian–Wishart components.

The pure numerical pieces of :mod:`espresso_jax.mixture.vbgmm` (which validates input, builds
the EM model and runs it): expected log-weights for the Dirichlet and the truncated
stick-breaking (Dirichlet-process) priors, the expected log-densities of the E-step, the
posterior update of the M-step for the four covariance structures, the lower bound, and the
posterior-predictive Student-t mixture.

Parametrisation (the same as scikit-learn's ``BayesianGaussianMixture``, so that numbers can be
compared one to one): component ``k`` has ``q(μ_k, Λ_k) = N(μ_k | m_k, (β_k Λ_k)^{-1})
W(Λ_k | W_k, ν_k)``; we store ``covariances[k] = (ν_k W_k)^{-1} = E[Λ_k]^{-1}`` and its inverse
Cholesky factor ``U_k`` (upper triangular, ``U_k U_kᵀ = ν_k W_k``). Every covariance type is
stored as ``(K, D, D)`` matrices (diagonal, scalar·I, or the same matrix for all ``k``).

References:
    Bishop, PRML (2006), §10.2 (eqs. 10.60–10.66, 10.70–10.77, 10.81); Blei & Jordan (2006),
    "Variational inference for Dirichlet process mixtures", Bayesian Analysis 1(1).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import betaln, digamma, gammaln

from espresso_jax.prob.conjugate import NormalInverseWishart, niw_posterior
from espresso_jax.prob.estimate import GaussianStats
from espresso_jax.prob.gaussian import LOG_2PI, gaussian_log_density, precision_mahalanobis
from espresso_jax.prob.linalg import cholesky_with_jitter, upper_cholesky_of_inverse
from espresso_jax.prob.moments import CentredMoments

__all__ = [
    "VBGMMParams",
    "VBGMMPrior",
    "elbo_offset",
    "expected_log_weights",
    "expected_weights",
    "lower_bound",
    "predictive_log_density",
    "update",
    "weighted_log_prob",
]

_HI = lax.Precision.HIGHEST
_LOG_2 = math.log(2.0)


class VBGMMPrior(NamedTuple):
    """Prior hyper-parameters (PRML §10.2 notation in brackets).

    Attributes:
        weight_concentration: ``()`` α₀: symmetric Dirichlet concentration, or the Beta(1, α₀)
            stick concentration of the Dirichlet process.
        mean_precision: ``()`` β₀.
        mean: ``(D,)`` m₀.
        degrees_of_freedom: ``()`` ν₀ (> D − 1).
        covariance: ``(D, D)`` W₀⁻¹ (diagonal, or scalar·I, for the diag/spherical types).
    """

    weight_concentration: jax.Array
    mean_precision: jax.Array
    mean: jax.Array
    degrees_of_freedom: jax.Array
    covariance: jax.Array


class VBGMMParams(NamedTuple):
    """Variational posterior hyper-parameters of ``K`` components in ``D`` dimensions.

    Attributes:
        weight_concentration: ``(K,)`` Dirichlet parameters α_k (finite Dirichlet prior), or
            ``(2, K)`` Beta parameters ``(a_k, b_k)`` of the sticks (Dirichlet process); the
            rank tells the two apart.
        mean_precision: ``(K,)`` β_k.
        means: ``(K, D)`` m_k.
        degrees_of_freedom: ``(K,)`` ν_k.
        covariances: ``(K, D, D)`` ``(ν_k W_k)⁻¹ = E[Λ_k]⁻¹`` (scikit-learn's ``covariances_``
            for ``"full"``; diagonal / scalar·I / repeated for the other types).
        precisions_cholesky: ``(K, D, D)`` upper-triangular ``U_k`` with
            ``U_k U_kᵀ = covariances[k]⁻¹``.
    """

    weight_concentration: jax.Array
    mean_precision: jax.Array
    means: jax.Array
    degrees_of_freedom: jax.Array
    covariances: jax.Array
    precisions_cholesky: jax.Array


def expected_log_weights(weight_concentration: jax.Array) -> jax.Array:
    """``E_q[ln π_k]`` ``(K,)``: Dirichlet ``ψ(α_k) − ψ(Σα)`` (PRML 10.66), or stick-breaking
    ``E[ln v_k] + Σ_{j<k} E[ln(1 − v_j)]`` (Blei & Jordan 2006)."""
    wc = weight_concentration
    if wc.ndim == 1:
        return digamma(wc) - digamma(jnp.sum(wc))
    a, b = wc[0], wc[1]
    dsum = digamma(a + b)
    log_rest = digamma(b) - dsum
    before = jnp.concatenate([jnp.zeros((1,), wc.dtype), jnp.cumsum(log_rest)[:-1]])
    return digamma(a) - dsum + before


def expected_weights(weight_concentration: jax.Array) -> jax.Array:
    """``E_q[π_k]`` ``(K,)``: ``α_k / Σα`` (Dirichlet); ``E[v_k] Π_{j<k} (1 − E[v_j])`` for
    the sticks, renormalised over the ``K`` components (the truncation's leftover mass is
    shared proportionally, as scikit-learn does)."""
    wc = weight_concentration
    if wc.ndim == 1:
        return wc / jnp.sum(wc)
    a, b = wc[0], wc[1]
    v = a / (a + b)
    rest = jnp.concatenate([jnp.ones((1,), wc.dtype), jnp.cumprod(b / (a + b))[:-1]])
    pi = v * rest
    return pi / jnp.sum(pi)


def _log_det_cholesky(U: jax.Array) -> jax.Array:
    """``(K,)`` ``ln|U_k|`` of triangular factors."""
    return jnp.sum(jnp.log(jnp.diagonal(U, axis1=-2, axis2=-1)), axis=-1)


def _sum_gammaln(half_nu: jax.Array, D: int, fn) -> jax.Array:
    """``Σ_{i=0}^{D−1} fn(ν/2 − i/2)`` for a ``(K,)`` vector of ``ν/2``."""
    i = jnp.arange(D, dtype=half_nu.dtype)
    return jnp.sum(fn(half_nu[:, None] - 0.5 * i[None, :]), axis=1)


def _mahalanobis(X: jax.Array, means: jax.Array, U: jax.Array, shift: jax.Array) -> jax.Array:
    """``(B, K)`` ``(x − m_k)ᵀ U_k U_kᵀ (x − m_k)``, formed in the per-component frame
    ``x − shift_k`` (no cancellation of large offsets in float32)."""
    dx = X[None, :, :] - shift[:, None, :]                                  # (K, B, D)
    return precision_mahalanobis(dx, means - shift, U).T


def _log_mahalanobis(X: jax.Array, means: jax.Array, U: jax.Array) -> jax.Array:
    """``(B, K)`` ``ln((x − m_k)ᵀ U_k U_kᵀ (x − m_k))`` without forming the square: the
    whitened residual is divided by its largest entry first, so the log stays finite where the
    squared distance overflows float32 (``-inf`` at a zero distance)."""
    y = jnp.matmul(X[None, :, :] - means[:, None, :], U, precision=lax.Precision.HIGHEST)
    r = jnp.max(jnp.abs(y), axis=-1, keepdims=True)                      # (K, B, 1)
    r = jnp.where(r > 0, r, 1.0)
    return (2.0 * jnp.log(r[..., 0]) + jnp.log(jnp.sum(jnp.square(y / r), axis=-1))).T


def weighted_log_prob(params: VBGMMParams, X: jax.Array, shift: jax.Array) -> jax.Array:
    """``(B, K)`` ``ln ρ_nk = E[ln π_k] + ½E[ln|Λ_k|] − (D/2) ln 2π
    − ½(D/β_k + ν_k (x−m_k)ᵀ W_k (x−m_k))`` (PRML 10.46, 10.64–10.66); responsibilities are
    its row-wise softmax."""
    D = X.shape[1]
    nu, beta = params.degrees_of_freedom, params.mean_precision
    maha = _mahalanobis(X, params.means, params.precisions_cholesky, shift)
    # ½ ln|ν W| − (D/2) ln ν = ½ ln|W|; E[ln|Λ|] = Σ ψ((ν − i)/2) + D ln 2 + ln|W| (10.65).
    half_log_det = _log_det_cholesky(params.precisions_cholesky) - 0.5 * D * jnp.log(nu)
    e_log_det = D * _LOG_2 + _sum_gammaln(0.5 * nu, D, digamma) + 2.0 * half_log_det
    log_gauss = gaussian_log_density(D / beta, -e_log_det, D)
    return (log_gauss[None, :] - 0.5 * maha
            + expected_log_weights(params.weight_concentration)[None, :])


def _jittered_precision_cholesky(cov: jax.Array) -> jax.Array:
    """``(K, D, D)`` upper-triangular ``U`` with ``U Uᵀ = cov⁻¹``; a factor that fails (only
    for a singular covariance prior with an empty component) is jittered by the library's
    policy (:func:`espresso_jax.prob.linalg.cholesky_with_jitter`)."""
    L, _ = cholesky_with_jitter(cov, math.inf)
    return upper_cholesky_of_inverse(L)


def update(prior: VBGMMPrior, cm: CentredMoments, reg_covar: jax.Array, *,
           weight_prior: str, covariance_type: str) -> VBGMMParams:
    """The variational M-step (PRML 10.58, 10.60–10.63; sticks: Blei & Jordan 2006) from
    responsibility-weighted counts, means and scatter matrices.

    As scikit-learn: counts get ``10·eps`` (empty components stay finite) and the component
    covariance estimate ``S_k`` gets ``reg_covar`` on its diagonal, i.e. ``N_k S_k`` gains
    ``N_k·reg_covar·I``; ``"tied"`` pools the scatter and uses ``ν = ν₀ + N/K``. For
    ``"full"`` this is the conjugate Normal-inverse-Wishart update of each component
    (:func:`espresso_jax.prob.conjugate.niw_posterior`, with ``Ψ = W⁻¹``).
    """
    dtype = cm.means.dtype
    K, D = cm.means.shape
    eye = jnp.eye(D, dtype=dtype)
    nk = cm.nk + 10.0 * jnp.finfo(dtype).eps
    a0, b0, m0 = prior.weight_concentration, prior.mean_precision, prior.mean
    if weight_prior == "dirichlet_process":
        tail = jnp.concatenate([jnp.cumsum(nk[::-1])[::-1][1:], jnp.zeros((1,), dtype)])
        wc = jnp.stack([1.0 + nk, a0 + tail])
    else:
        wc = a0 + nk
    beta = b0 + nk
    means = (b0 * m0[None, :] + nk[:, None] * cm.means) / beta[:, None]
    d = cm.means - m0[None, :]
    shrink = nk * b0 / beta                                              # N_k β₀ / β_k
    scatter = cm.scatter
    if covariance_type == "full":
        # the conjugate Normal-inverse-Wishart update of each component, with the scatter
        # regularised as scikit-learn does (N_k S_k + N_k reg_covar I)
        niw = NormalInverseWishart(mu=m0, kappa=b0, nu=prior.degrees_of_freedom,
                                   psi=prior.covariance)
        stats = GaussianStats(n=nk, mean=cm.means,
                              scatter=scatter + (nk * reg_covar)[:, None, None] * eye[None])
        post = jax.vmap(niw_posterior, in_axes=(None, 0))(niw, stats)
        means, beta, nu = post.mu, post.kappa, post.nu
        cov = post.psi / nu[:, None, None]
    elif covariance_type == "tied":
        n = jnp.sum(nk)
        nu_t = prior.degrees_of_freedom + n / K
        nu = jnp.broadcast_to(nu_t, (K,))
        C = (prior.covariance + jnp.sum(scatter, axis=0) / K + (n / K) * reg_covar * eye
             + jnp.einsum("k,ki,kj->ij", shrink, d, d, precision=_HI) / K)
        cov = jnp.broadcast_to(C / nu_t, (K, D, D))
    else:
        nu = prior.degrees_of_freedom + nk
        diag_scatter = scatter if scatter.ndim == 2 else jnp.diagonal(scatter, axis1=1, axis2=2)
        s = diag_scatter / nk[:, None] + reg_covar                     # (K, D) diagonal S_k
        if covariance_type == "diag":
            c = jnp.diagonal(prior.covariance)[None, :] + nk[:, None] * s + shrink[:, None] * d * d
            cov = (c / nu[:, None])[:, :, None] * eye[None]
        else:   # spherical
            c = (prior.covariance[0, 0] + nk * jnp.mean(s, axis=1)
                 + shrink * jnp.mean(d * d, axis=1))
            cov = (c / nu)[:, None, None] * eye[None]
    U = _jittered_precision_cholesky(cov)
    return VBGMMParams(weight_concentration=wc, mean_precision=beta, means=means,
                       degrees_of_freedom=nu, covariances=cov, precisions_cholesky=U)


def lower_bound(params: VBGMMParams, sum_r_log_r: jax.Array) -> jax.Array:
    """scikit-learn's lower bound (``_compute_lower_bound``) after an M-step:

    ``−Σ_n w_n Σ_k r_nk ln r_nk + Σ_k [ν_k ln|W_k|^{1/2} + (ν_k D/2) ln 2 + Σ_i ln Γ((ν_k−i)/2)]
    − (D/2) Σ_k ln β_k + ln Z_π``, with ``ln Z_π = Σ_k ln Γ(α_k) − ln Γ(Σα)`` (Dirichlet) or
    ``Σ_k ln B(a_k, b_k)`` (sticks). With the variational posterior optimal for the current
    responsibilities, the full ELBO is this plus :func:`elbo_offset` (constants of the prior
    and of N only). The bound is a total over the data, not a per-sample mean.
    """
    D = params.means.shape[1]
    nu = params.degrees_of_freedom
    half_log_det_w = _log_det_cholesky(params.precisions_cholesky) - 0.5 * D * jnp.log(nu)
    log_z_wishart = nu * half_log_det_w + 0.5 * D * _LOG_2 * nu + _sum_gammaln(0.5 * nu, D, gammaln)
    wc = params.weight_concentration
    if wc.ndim == 1:
        log_z_weights = jnp.sum(gammaln(wc)) - gammaln(jnp.sum(wc))
    else:
        log_z_weights = jnp.sum(betaln(wc[0], wc[1]))
    return (-sum_r_log_r + jnp.sum(log_z_wishart) + log_z_weights
            - 0.5 * D * jnp.sum(jnp.log(params.mean_precision)))


def elbo_offset(prior: VBGMMPrior, n_components: int, weight_prior: str,
                total_weight: jax.Array) -> jax.Array:
    """``full ELBO − lower_bound`` for the ``"full"`` covariance type.

    After an M-step the ELBO is ``H[q(Z)] + ln Z_post − ln Z_prior − (N D/2) ln 2π`` (the
    ratio of Gaussian–Wishart and weight normalisers); scikit-learn's bound keeps only the
    posterior-dependent part. The difference is
    ``−K[−(D/2) ln β₀ + (ν₀D/2) ln 2 − (ν₀/2) ln|W₀⁻¹| + Σ_i ln Γ((ν₀−i)/2)] − ln Z_π,prior
    − (N D/2) ln 2π``, with ``ln Z_π,prior = K ln Γ(α₀) − ln Γ(Kα₀)`` (Dirichlet) or
    ``K ln B(1, α₀)`` (sticks). Exact for ``reg_covar → 0`` (the regularised covariance update
    is not exactly the optimal ``q``).
    """
    K = n_components
    D = prior.mean.shape[0]
    nu0, b0, a0 = prior.degrees_of_freedom, prior.mean_precision, prior.weight_concentration
    log_det_psi = 2.0 * jnp.sum(jnp.log(jnp.diagonal(jnp.linalg.cholesky(prior.covariance))))
    half_nu = jnp.reshape(0.5 * nu0, (1,))
    log_z_prior = (-0.5 * D * jnp.log(b0) + 0.5 * D * _LOG_2 * nu0 - 0.5 * nu0 * log_det_psi
                   + _sum_gammaln(half_nu, D, gammaln)[0])
    if weight_prior == "dirichlet_process":
        log_z_pi = K * betaln(jnp.ones_like(a0), a0)
    else:
        log_z_pi = K * gammaln(a0) - gammaln(K * a0)
    return -K * log_z_prior - log_z_pi - 0.5 * D * LOG_2PI * total_weight


def predictive_log_density(params: VBGMMParams, X: jax.Array) -> jax.Array:
    """``(B,)`` log posterior-predictive density, a Student-t mixture (PRML 10.81–10.82):
    ``Σ_k E[π_k] St(x | m_k, L_k, ν_k + 1 − D)``, ``L_k = (ν_k+1−D) β_k / (1+β_k) · W_k``."""
    D = X.shape[1]
    nu, beta = params.degrees_of_freedom, params.mean_precision
    dof = nu + 1.0 - D
    c = dof * beta / ((1.0 + beta) * nu)           # L_k = c_k · (ν_k W_k)
    log_maha = _log_mahalanobis(X, params.means, params.precisions_cholesky)
    log_t = (gammaln(0.5 * (dof + D)) - gammaln(0.5 * dof) - 0.5 * D * jnp.log(dof * math.pi)
             + _log_det_cholesky(params.precisions_cholesky) + 0.5 * D * jnp.log(c))
    # ln(1 + c·maha/dof) = softplus(ln maha + ln(c/dof)): finite where maha overflows float32
    # (a row 1e20 from a unit-scale component: maha ~ 1e40, yet ln p ~ -700)
    log1p_term = jnp.logaddexp(0.0, log_maha + jnp.log(c / dof)[None, :])
    log_t = log_t[None, :] - 0.5 * (dof + D)[None, :] * log1p_term
    log_w = jnp.log(expected_weights(params.weight_concentration))
    return jax.nn.logsumexp(log_t + log_w[None, :], axis=1)

