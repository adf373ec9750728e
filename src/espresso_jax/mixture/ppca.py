"""Probabilistic PCA (Tipping & Bishop 1999): closed-form ML, EM, and EM with missing values.

Model (PRML §12.2): ``z ~ N(0, I_M)``, ``x | z ~ N(W z + μ, σ² I_D)``, so
``x ~ N(μ, C)`` with ``C = W Wᵀ + σ² I``. With ``M = Wᵀ W + σ² I`` (an ``M × M`` matrix) the
posterior is ``p(z | x) = N(M⁻¹ Wᵀ (x − μ), σ² M⁻¹)`` (PRML eq. 12.42).

- :func:`fit` — closed form (a :class:`PPCAResult` with ``n_iter = 0``) (PRML eqs.
  12.45–12.46): ``μ`` the sample mean,
  ``W = U_M (L_M − σ² I)^{1/2}`` (rotation ``R = I``), ``σ²`` the mean of the ``D − M``
  discarded eigenvalues of the sample covariance. ``ddof=0`` (default) is the maximum-likelihood
  covariance (``1/N``); ``ddof=1`` uses ``1/(N − 1)``, which is what scikit-learn's
  ``PCA.get_covariance``/``PCA.score`` use (they agree with ``ddof=1`` whenever ``N > D``).
- :func:`fit_em` — EM (PRML eqs. 12.54–12.57) on :func:`espresso_jax.em.fit_em`, with additive
  statistics ``Σ (x − μ) E[z]ᵀ``, ``Σ E[z zᵀ]``, ``Σ ‖x − μ‖²`` and the log-likelihood; ``μ``
  is the sample mean (its ML value, fixed).
- ``fit_em(..., missing=True)`` — NaN entries are missing at random and marginalised exactly:
  per row only the observed coordinates ``O`` enter ``M_n = W_Oᵀ W_O + σ² I`` (batched
  Cholesky solves), and the M-step treats ``(z, x_missing)`` as latent, re-estimating
  ``[W, μ]`` jointly by the normal equations of the augmented latent ``z̃ = [z; 1]``
  (Tipping & Bishop 1999, App. and Ilin & Raiko 2010, §3 give the same quantities). The
  objective is the mean observed-data log-likelihood per row, which EM never decreases. With no
  missing entry the iterates equal those of the plain EM.

Numerics: the log-density uses the thin SVD of ``W``, ``C⁻¹ = U (S² + σ²)⁻¹ Uᵀ +
σ⁻² (I − U Uᵀ)``, with the residual ``x − U Uᵀ x`` formed explicitly (no cancellation when σ²
is small); σ² is floored at ``eps · (mean variance)`` (``eps`` for constant data) so
``n_components = D`` stays finite. Both fits run on ``X / 2**e`` (exact; ``2**e`` nearest
to the RMS spread, :mod:`espresso_jax.scaling`) and map ``μ, W, σ²`` and the log-likelihood
back; data whose squared spread float32 cannot hold (beyond ``1e±17``) raise ``ValueError``.

References:
    M. E. Tipping and C. M. Bishop, "Probabilistic principal component analysis", JRSS B 61(3),
    1999. C. M. Bishop, *Pattern Recognition and Machine Learning*, 2006, §12.2.
    A. Ilin and T. Raiko, "Practical approaches to principal component analysis in the presence
    of missing values", JMLR 11, 2010.
"""

from __future__ import annotations

import functools
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.linalg import cho_solve
from jax.typing import ArrayLike

from espresso_jax import em
from espresso_jax.mixture.pca import check_n_components, spectrum
from espresso_jax.prob.gaussian import gaussian_log_density
from espresso_jax.scaling import checked_exponent, pow2
from espresso_jax.validation import (
    as_float_array,
    check_int,
    check_key,
    check_positive,
    is_traced,
)

__all__ = [
    "PPCAParams",
    "PPCAResult",
    "covariance",
    "fit",
    "fit_em",
    "log_likelihood",
    "posterior",
    "sample",
    "score_samples",
]

_HI = lax.Precision.HIGHEST


class PPCAParams(NamedTuple):
    """Probabilistic-PCA parameters.

    Attributes:
        mean: ``(n_features,)`` μ.
        W: ``(n_features, n_components)`` loading matrix.
        sigma2: ``()`` isotropic noise variance σ².
    """

    mean: jax.Array
    W: jax.Array
    sigma2: jax.Array


class PPCAResult(NamedTuple):
    """Result of :func:`fit` (closed form) and :func:`fit_em`.

    Attributes:
        params: fitted :class:`PPCAParams`.
        history: :func:`fit_em`: ``(max_iter,)`` mean per-row (observed-data) log-likelihood of
            the parameters entering each iteration, NaN after ``n_iter``; :func:`fit`: ``(0,)``.
        n_iter: ``()`` int32 iterations run (0 for the closed form).
        converged: ``()`` bool, the objective changed by less than ``tol`` (True for the
            closed form).
    """

    params: PPCAParams
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array


# Closed form --------------------------------------------------------------------------------------

def _floor(vbar: jax.Array) -> jax.Array:
    """The σ² floor ``eps · v̄`` (``eps`` for constant data, ``v̄ = 0``)."""
    return float(jnp.finfo(vbar.dtype).eps) * jnp.where(vbar > 0, vbar, 1.0)


@partial(jax.jit, static_argnames=("n_components", "ddof"))
def _fit_impl(X, e, n_components: int, ddof: int) -> PPCAResult:
    (n, d), s = X.shape, pow2(e, X.dtype)
    mean, scatter, Vt = spectrum(X * pow2(-e, X.dtype), "svd")
    lam = scatter / (n - ddof)                                   # (R,) R = min(n, d)
    floor = _floor(jnp.sum(lam) / d)
    if n_components < d:
        # the D − M discarded eigenvalues, zeros beyond the rank R included
        sigma2 = jnp.sum(lam[n_components:]) / (d - n_components)
    else:
        sigma2 = jnp.zeros((), X.dtype)
    sigma2 = jnp.maximum(sigma2, floor)
    scale = jnp.sqrt(jnp.maximum(lam[:n_components] - sigma2, 0.0))
    params = PPCAParams(mean=mean * s, W=Vt[:n_components].T * (scale * s)[None, :],
                        sigma2=sigma2 * (s * s))
    return PPCAResult(params=params, **em.closed_form(X.dtype))


def fit(X: ArrayLike, n_components: int, *, ddof: int = 0) -> PPCAResult:
    """Closed-form maximum-likelihood probabilistic PCA (Tipping & Bishop 1999).

    Args:
        X: ``(n_samples, n_features)`` data, ``n_samples ≥ 2``.
        n_components: latent dimension ``M``, ``1 ≤ M ≤ min(n_samples, n_features)``.
        ddof: ``0`` for the ML covariance ``S = (1/N) Σ (x − x̄)(x − x̄)ᵀ``; ``1`` for the
            ``1/(N − 1)`` covariance used by scikit-learn's ``PCA``.

    Returns:
        :class:`PPCAResult` (``n_iter = 0``) whose ``params`` have
        ``W = U_M (L_M − σ² I)^{1/2}`` and ``σ²`` the mean of the ``D − M`` discarded
        eigenvalues.

    References:
        Tipping & Bishop (1999), eqs. 7–8; Bishop, PRML (2006), eqs. 12.45–12.46.
    """
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    n, d = X.shape
    if n < 2:
        raise ValueError(f"X must have at least 2 samples, got {n}")
    n_components = check_n_components(n_components, n, d)
    ddof = check_int(ddof, "ddof", min_value=0, max_value=1)
    e = checked_exponent(X, "X", what="the noise variance")
    return _fit_impl(X, jnp.asarray(e, jnp.int32), n_components, ddof)


# Densities, posterior, sampling -------------------------------------------------------------------

def _score_complete(params: PPCAParams, X: jax.Array) -> jax.Array:
    """Per-row log N(x | μ, W Wᵀ + σ² I) via the thin SVD of W (traceable)."""
    d, m = params.W.shape
    U, s, _ = jnp.linalg.svd(params.W, full_matrices=False)       # (D, M), (M,)
    Xc = X - params.mean[None, :]
    proj = jnp.matmul(Xc, U, precision=_HI)                        # (N, M)
    resid = Xc - jnp.matmul(proj, U.T, precision=_HI)
    var = s * s + params.sigma2
    quad = jnp.sum(proj * proj / var[None, :], axis=1) + jnp.sum(resid * resid, axis=1) / \
        params.sigma2
    logdet = jnp.sum(jnp.log(var)) + (d - m) * jnp.log(params.sigma2)
    return gaussian_log_density(quad, logdet, d)


def _masked_posterior(params: PPCAParams, X: jax.Array):
    """Per-row posterior over z from the observed coordinates of ``X`` (NaN = missing).

    Returns ``(obs mask (B, D), E[z] (B, M), M_n⁻¹ (B, M, M), log-likelihood (B,))``."""
    m = params.W.shape[1]
    obs = ~jnp.isnan(X)
    o = obs.astype(X.dtype)
    xt = jnp.where(obs, X - params.mean[None, :], 0.0)             # (B, D), 0 where missing
    eye = jnp.eye(m, dtype=X.dtype)
    Mn = jnp.einsum("bd,di,dj->bij", o, params.W, params.W, precision=_HI) + \
        params.sigma2 * eye[None, :, :]
    L = jnp.linalg.cholesky(Mn)
    b = jnp.matmul(xt, params.W, precision=_HI)                    # (B, M)
    solve = jax.vmap(lambda Lb, rhs: cho_solve((Lb, True), rhs))
    Ez = solve(L, b)
    Minv = solve(L, jnp.broadcast_to(eye, Mn.shape))
    n_obs = jnp.sum(o, axis=1)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=1, axis2=2)), axis=1) + \
        (n_obs - m) * jnp.log(params.sigma2)
    quad = (jnp.sum(xt * xt, axis=1) - jnp.sum(b * Ez, axis=1)) / params.sigma2
    ll = gaussian_log_density(quad, logdet, n_obs)
    return o, Ez, Minv, ll


@partial(jax.jit, static_argnames=("missing",))
def _score_impl(params, X, missing: bool):
    if missing:
        return _masked_posterior(params, X)[3]
    return _score_complete(params, X)


def _check_params(params: PPCAParams) -> PPCAParams:
    if not isinstance(params, PPCAParams):
        raise TypeError(f"params must be a PPCAParams, got {type(params).__name__}")
    W = as_float_array(params.W, "params.W", ndim=2, shape_hint="(n_features, n_components)")
    mean = as_float_array(params.mean, "params.mean", ndim=1, shape_hint="(n_features,)")
    sigma2 = as_float_array(params.sigma2, "params.sigma2", ndim=0)
    if mean.shape[0] != W.shape[0]:
        raise ValueError(f"params.mean has {mean.shape[0]} entries but params.W has "
                         f"{W.shape[0]} rows")
    if not is_traced(sigma2) and not float(sigma2) > 0:
        raise ValueError(f"params.sigma2 must be > 0, got {float(sigma2)}")
    return PPCAParams(mean=mean, W=W, sigma2=sigma2)


def _check_X(params: PPCAParams, X: ArrayLike, missing: bool) -> jax.Array:
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)",
                       allow_nan=missing)
    if X.shape[1] != params.W.shape[0]:
        raise ValueError(f"X has {X.shape[1]} features, params have {params.W.shape[0]}")
    return X


def score_samples(params: PPCAParams, X: ArrayLike, *, missing: bool = False) -> jax.Array:
    """Per-row log-likelihood ``log N(x_n | μ, W Wᵀ + σ² I)``.

    Args:
        params: :class:`PPCAParams`.
        X: ``(n_samples, n_features)``; with ``missing=True`` NaN entries are marginalised
            (the log-density of the observed coordinates of each row).
        missing: accept and marginalise NaN entries.

    Returns:
        ``(n_samples,)`` log-densities.
    """
    params = _check_params(params)
    return _score_impl(params, _check_X(params, X, missing), missing)


def log_likelihood(params: PPCAParams, X: ArrayLike, *, missing: bool = False) -> jax.Array:
    """Mean per-row log-likelihood (scikit-learn's ``PCA.score`` for the same parameters).

    Args:
        params: :class:`PPCAParams`.
        X: ``(n_samples, n_features)`` (NaN allowed with ``missing=True``).
        missing: marginalise NaN entries.

    Returns:
        ``()`` mean of :func:`score_samples`.
    """
    return jnp.mean(score_samples(params, X, missing=missing))


def covariance(params: PPCAParams) -> jax.Array:
    """Model covariance ``C = W Wᵀ + σ² I``, ``(n_features, n_features)``."""
    params = _check_params(params)
    d = params.W.shape[0]
    return jnp.matmul(params.W, params.W.T, precision=_HI) + \
        params.sigma2 * jnp.eye(d, dtype=params.W.dtype)


@jax.jit
def _posterior_impl(params, X):
    m = params.W.shape[1]
    Mm = jnp.matmul(params.W.T, params.W, precision=_HI) + \
        params.sigma2 * jnp.eye(m, dtype=X.dtype)
    cf = jax.scipy.linalg.cho_factor(Mm, lower=True)
    mean = cho_solve(cf, jnp.matmul(params.W.T, (X - params.mean[None, :]).T,
                                    precision=_HI)).T
    cov = params.sigma2 * cho_solve(cf, jnp.eye(m, dtype=X.dtype))
    return mean, 0.5 * (cov + cov.T)


def posterior(params: PPCAParams, X: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Posterior ``p(z | x) = N(M⁻¹ Wᵀ (x − μ), σ² M⁻¹)``, ``M = WᵀW + σ² I`` (PRML 12.48).

    Args:
        params: :class:`PPCAParams`.
        X: ``(n_samples, n_features)`` complete rows.

    Returns:
        ``(means (n_samples, n_components), cov (n_components, n_components))``; the
        covariance is the same for every row.
    """
    params = _check_params(params)
    return _posterior_impl(params, _check_X(params, X, False))


@partial(jax.jit, static_argnames=("n",))
def _sample_impl(key, params, n: int):
    d, m = params.W.shape
    kz, ke = jax.random.split(key)
    z = jax.random.normal(kz, (n, m), params.W.dtype)
    eps = jax.random.normal(ke, (n, d), params.W.dtype)
    return jnp.matmul(z, params.W.T, precision=_HI) + params.mean[None, :] + \
        jnp.sqrt(params.sigma2) * eps


def sample(key: jax.Array, params: PPCAParams, n_samples: int) -> jax.Array:
    """Draw ``x = W z + μ + ε``, ``z ~ N(0, I)``, ``ε ~ N(0, σ² I)`` (PRML eq. 12.33).

    Args:
        key: PRNG key.
        params: :class:`PPCAParams`.
        n_samples: number of samples.

    Returns:
        ``(n_samples, n_features)`` samples.
    """
    key = check_key(key)
    params = _check_params(params)
    return _sample_impl(key, params, check_int(n_samples, "n_samples", min_value=1))


# EM -----------------------------------------------------------------------------------------------

class _Stats(NamedTuple):
    n: jax.Array      # () Σ w
    sxz: jax.Array    # (D, M) Σ w (x − μ) E[z]ᵀ
    szz: jax.Array    # (M, M) Σ w E[z zᵀ]
    sxx: jax.Array    # () Σ w ‖x − μ‖²
    ll: jax.Array     # () Σ w log p(x | params)


class _MissingStats(NamedTuple):
    n: jax.Array      # () Σ w
    A: jax.Array      # (M+1, M+1) Σ w E[z̃ z̃ᵀ]
    sxz: jax.Array    # (D, M+1) Σ w o_d x_d E[z̃]
    B: jax.Array      # (D, M+1, M+1) Σ w (1 − o_d) E[z̃ z̃ᵀ]
    sxx: jax.Array    # (D,) Σ w o_d x_d²
    n_miss: jax.Array  # (D,) Σ w (1 − o_d)
    ll: jax.Array     # () Σ w log p(x_O | params)


def _e_step(params: PPCAParams, X, w) -> _Stats:
    m = params.W.shape[1]
    Xc = X - params.mean[None, :]
    Mm = jnp.matmul(params.W.T, params.W, precision=_HI) + \
        params.sigma2 * jnp.eye(m, dtype=X.dtype)
    cf = jax.scipy.linalg.cho_factor(Mm, lower=True)
    b = jnp.matmul(Xc, params.W, precision=_HI)                     # (B, M)
    Ez = cho_solve(cf, b.T).T
    Minv = cho_solve(cf, jnp.eye(m, dtype=X.dtype))
    n = jnp.sum(w)
    wEz = w[:, None] * Ez
    sxz = jnp.matmul(Xc.T, wEz, precision=_HI)
    szz = n * params.sigma2 * Minv + jnp.matmul(Ez.T, wEz, precision=_HI)
    sq = jnp.sum(Xc * Xc, axis=1)
    # log-likelihood of the current parameters by Woodbury (|C| = σ^{2(D−M)} |M|)
    d = X.shape[1]
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(cf[0]))) + (d - m) * jnp.log(params.sigma2)
    quad = (sq - jnp.sum(b * Ez, axis=1)) / params.sigma2
    ll = gaussian_log_density(quad, logdet, d)
    return _Stats(n=n, sxz=sxz, szz=0.5 * (szz + szz.T), sxx=jnp.sum(w * sq), ll=jnp.sum(w * ll))


def _m_step(params: PPCAParams, s: _Stats) -> PPCAParams:
    d = params.W.shape[0]
    W = jnp.linalg.solve(s.szz, s.sxz.T).T                           # PRML 12.56
    # PRML 12.57: Σ‖x−μ‖² − 2 tr(Wᵀ Σ(x−μ)E[z]ᵀ) + tr(Σ E[zzᵀ] WᵀW)
    resid = s.sxx - 2.0 * jnp.sum(W * s.sxz) + jnp.sum(s.szz * jnp.matmul(W.T, W, precision=_HI))
    sigma2 = jnp.maximum(resid / (s.n * d), _floor(s.sxx / (s.n * d)))
    return params._replace(W=W, sigma2=sigma2)


def _e_step_missing(params: PPCAParams, X, w) -> _MissingStats:
    o, Ez, Minv, ll = _masked_posterior(params, X)
    b_rows = Ez.shape[0]
    x = jnp.where(o > 0, X, 0.0)
    ones = jnp.ones((b_rows, 1), X.dtype)
    Ezt = jnp.concatenate([Ez, ones], axis=1)                        # (B, M+1)
    Ezz = params.sigma2 * Minv + Ez[:, :, None] * Ez[:, None, :]
    top = jnp.concatenate([Ezz, Ez[:, :, None]], axis=2)
    bottom = jnp.concatenate([Ez[:, None, :], ones[:, :, None]], axis=2)
    Ezzt = jnp.concatenate([top, bottom], axis=1)                    # (B, M+1, M+1)
    miss = 1.0 - o
    return _MissingStats(
        n=jnp.sum(w),
        A=jnp.einsum("b,bij->ij", w, Ezzt, precision=_HI),
        sxz=jnp.einsum("b,bd,bi->di", w, x, Ezt, precision=_HI),
        B=jnp.einsum("b,bd,bij->dij", w, miss, Ezzt, precision=_HI),
        sxx=jnp.sum(w[:, None] * x * x, axis=0),
        n_miss=jnp.sum(w[:, None] * miss, axis=0),
        ll=jnp.sum(w * ll),
    )


def _m_step_missing(params: PPCAParams, s: _MissingStats) -> PPCAParams:
    d = params.W.shape[0]
    old = jnp.concatenate([params.W, params.mean[:, None]], axis=1)  # (D, M+1) = [W, μ]
    # E[x_d z̃] over rows missing d is E[z̃z̃ᵀ] ŵ_d,old: the normal equations A ŵ_d = r_d
    r = s.sxz + jnp.einsum("dij,dj->di", s.B, old, precision=_HI)
    A = 0.5 * (s.A + s.A.T)
    new = jnp.linalg.solve(A, r.T).T
    # Σ_n E[(x_nd − ŵ_dᵀ z̃_n)²] at the optimum = S_xx,d − ŵ_dᵀ r_d
    sxx_full = s.sxx + s.n_miss * params.sigma2 + \
        jnp.einsum("di,dij,dj->d", old, s.B, old, precision=_HI)
    resid = jnp.sum(sxx_full) - jnp.sum(new * r)
    n_observed = jnp.maximum(s.n * d - jnp.sum(s.n_miss), 1)
    sigma2 = jnp.maximum(resid / (s.n * d), _floor(jnp.sum(s.sxx) / n_observed))
    return PPCAParams(mean=new[:, -1], W=new[:, :-1], sigma2=sigma2)


def _objective(params, new, stats) -> jax.Array:
    return stats.ll / stats.n


@functools.cache
def _model(missing: bool) -> em.EMModel:
    """One EMModel per configuration, so the engine's jit cache is reused."""
    if missing:
        return em.EMModel(e_step=_e_step_missing, m_step=_m_step_missing, objective=_objective)
    return em.EMModel(e_step=_e_step, m_step=_m_step, objective=_objective)


@partial(jax.jit, static_argnames=("n_components",))
def _init_em(keys, X, e, n_components: int):
    """Column (nan)means, the data centred and divided by ``2**e``, and one random start
    ``W ~ N(0, v̄/M)``, ``σ² = v̄`` per key (stacked parameters, one row per restart)."""
    d = X.shape[1]
    obs = ~jnp.isnan(X)
    count = jnp.sum(obs, axis=0).astype(X.dtype)
    centre = jnp.sum(jnp.where(obs, X, 0.0), axis=0) / count
    Xc = (X - centre[None, :]) * pow2(-e, X.dtype)
    var = jnp.sum(jnp.where(obs, Xc * Xc, 0.0), axis=0) / count
    vbar = jnp.mean(var)
    vbar = jnp.where(vbar > 0, vbar, 1.0)
    W0 = jax.vmap(lambda k: jax.random.normal(k, (d, n_components), X.dtype))(keys)
    r = keys.shape[0]
    params0 = PPCAParams(mean=jnp.zeros((r, d), X.dtype), W=W0 * jnp.sqrt(vbar / n_components),
                         sigma2=jnp.full((r,), vbar))
    return Xc, centre, params0


def fit_em(key: jax.Array, X: ArrayLike, n_components: int, *, n_init: int = 1,
           max_iter: int = 1000, tol: float = 1e-6, missing: bool = False,
           chunk_size: int | None = None) -> PPCAResult:
    """Probabilistic PCA by EM (PRML §12.2.2), optionally with missing values.

    The data are centred on their column means first (added back to ``params.mean``); with
    ``missing=False`` μ stays at the sample mean (its ML value), with ``missing=True`` it is
    re-estimated with ``W`` from the observed entries.

    Args:
        key: PRNG key for the random initial ``W``: restart ``i`` uses
            ``jax.random.split(key, n_init)[i]`` (``key`` itself when ``n_init=1``).
        X: ``(n_samples, n_features)`` data; with ``missing=True`` NaN entries are missing
            values (every column needs at least one observed entry).
        n_components: latent dimension ``M``, ``1 ≤ M ≤ min(n_samples, n_features)``.
        n_init: restarts (vmapped); the highest final log-likelihood is kept.
        max_iter: maximum EM iterations (also the length of ``history``).
        tol: stop when the mean per-row log-likelihood changes by less than ``tol``.
        missing: marginalise NaN entries (cost O(N·D·M²) per iteration instead of O(N·D·M)).
        chunk_size: rows per E-step block.

    Returns:
        :class:`PPCAResult`; ``history`` never decreases (up to rounding).

    References:
        Tipping & Bishop (1999); Bishop, PRML (2006), eqs. 12.54–12.57; Ilin & Raiko (2010).
    """
    key = check_key(key)
    if not isinstance(missing, (bool, np.bool_)):
        raise TypeError(f"missing must be a bool, got {type(missing).__name__}")
    missing = bool(missing)
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)", allow_nan=missing)
    n, d = X.shape
    if n < 2:
        raise ValueError(f"X must have at least 2 samples, got {n}")
    n_components = check_n_components(n_components, n, d)
    n_init = check_int(n_init, "n_init", min_value=1)
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol", allow_zero=True)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
    if missing and not is_traced(X):
        observed = np.asarray(jnp.sum(~jnp.isnan(X), axis=0))
        if (observed == 0).any():
            raise ValueError(f"X has columns with no observed value: "
                             f"{np.flatnonzero(observed == 0).tolist()}")
    keys = key[None] if n_init == 1 else jax.random.split(key, n_init)
    e = jnp.asarray(checked_exponent(X, "X", what="the noise variance"), jnp.int32)
    Xc, centre, starts = _init_em(keys, X, e, n_components)
    run = partial(em.fit_em, _model(missing), X=Xc, tol=tol, max_iter=max_iter,
                  chunk_size=chunk_size)
    if n_init == 1:   # no restarts: skip the batched program
        res = run(jax.tree.map(lambda a: a[0], starts))
    else:
        res = em.select_best(jax.vmap(run)(starts))
    s, p, obs = pow2(e, X.dtype), res.params, jnp.sum(~jnp.isnan(X)).astype(X.dtype) / n
    params = PPCAParams(mean=p.mean * s + centre, W=p.W * s, sigma2=p.sigma2 * (s * s))
    return PPCAResult(params=params, n_iter=res.n_iter, converged=res.converged,
                      history=res.history - obs * e.astype(X.dtype) * np.log(2.0).astype(X.dtype))
