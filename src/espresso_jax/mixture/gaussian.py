"""Per-covariance-type Gaussian log-densities and precision Cholesky factors for mixtures.

Covariance types (the same four as scikit-learn's ``GaussianMixture``), with the shapes used
throughout :mod:`espresso_jax.mixture` (``K`` components, ``D`` features):

============  ======================  =========================================================
type          covariances             precision Cholesky factor ``U`` (``Σ⁻¹ = U Uᵀ``)
============  ======================  =========================================================
full          ``(K, D, D)``           ``(K, D, D)`` upper triangular
tied          ``(1, D, D)``           ``(1, D, D)`` upper triangular (one matrix, all components)
diag          ``(K, D)``              ``(K, D)`` = ``1 / sqrt(variances)``
spherical     ``(K,)``                ``(K,)`` = ``1 / sqrt(variance)``
============  ======================  =========================================================

The tied matrix keeps a leading axis of length 1 (scikit-learn stores ``(D, D)``): it broadcasts
against the component axis and makes the type readable from the shapes alone (a ``(D, D)``
array would be ambiguous with ``(K, D)`` diagonal variances when ``K == D``). A one-component
"tied" mixture is the same model as a one-component "full" one and is reported as "full".

The log-density of row ``x`` under component ``k`` is evaluated in a per-component frame,
``dx = x − s_k`` and ``δ_k = μ_k − s_k`` for a reference point ``s_k`` near the data (the mixture
models use fixed initial means), as

    log N(x | μ_k, Σ_k) = −½ (D log 2π + ‖U_kᵀ dx − U_kᵀ δ_k‖²) + Σ_d log U_k,dd,

i.e. one batched GEMM ``(K, B, D) @ (K, D, D)`` (full/tied) or an elementwise product
(diag/spherical): no per-point solve and no ``(B, K, D, D)`` tensor. Working relative to ``s_k``
keeps float32 accurate when the data sit far from the origin.

References:
    C. M. Bishop, *Pattern Recognition and Machine Learning*, 2006, §2.3, §9.2.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular

from espresso_jax.prob.gaussian import gaussian_log_density, precision_mahalanobis
from espresso_jax.prob.linalg import cholesky_with_jitter, upper_cholesky_of_inverse

__all__ = [
    "COVARIANCE_TYPES",
    "covariance_from_precision_cholesky",
    "covariance_shape",
    "covariance_type_of",
    "log_det_precision_cholesky",
    "log_gaussian",
    "n_covariance_parameters",
    "precision_cholesky",
    "precision_cholesky_from_precision",
    "regularise",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def covariance_type_of(covariances: jax.Array, n_components: int) -> str:
    """The covariance type encoded by the shape of ``covariances`` (static, works under jit).

    Args:
        covariances: covariance array in one of the layouts of the module table.
        n_components: ``K``.

    Returns:
        "full", "tied", "diag" or "spherical".

    Raises:
        ValueError: the shape matches no layout.
    """
    shape = tuple(covariances.shape)
    if len(shape) == 3 and shape[1] == shape[2]:
        if shape[0] == n_components:
            return "full"
        if shape[0] == 1:
            return "tied"
    if len(shape) == 2 and shape[0] == n_components:
        return "diag"
    if len(shape) == 1 and shape[0] == n_components:
        return "spherical"
    raise ValueError(f"covariances of shape {shape} match no covariance type for "
                     f"{n_components} components: expected (K, D, D) full, (1, D, D) tied, "
                     "(K, D) diag or (K,) spherical")


def covariance_shape(covariance_type: str, n_components: int,
                     n_features: int) -> tuple[int, ...]:
    """Shape of the covariance (and precision Cholesky) array of a covariance type."""
    return {"full": (n_components, n_features, n_features),
            "tied": (1, n_features, n_features),
            "diag": (n_components, n_features),
            "spherical": (n_components,)}[covariance_type]


def n_covariance_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Number of free covariance parameters (for BIC/AIC)."""
    half = n_features * (n_features + 1) // 2
    return {"full": n_components * half, "tied": half,
            "diag": n_components * n_features, "spherical": n_components}[covariance_type]


def _diagonal(a: jax.Array) -> jax.Array:
    return jnp.diagonal(a, axis1=-2, axis2=-1)


def log_det_precision_cholesky(prec_chol: jax.Array, covariance_type: str,
                               n_features: int) -> jax.Array:
    """``Σ_d log U_dd`` per component (= −½ log|Σ_k|): ``(K,)``, or ``(1,)`` for tied."""
    if covariance_type in ("full", "tied"):
        return jnp.sum(jnp.log(_diagonal(prec_chol)), axis=-1)
    if covariance_type == "diag":
        return jnp.sum(jnp.log(prec_chol), axis=-1)
    return n_features * jnp.log(prec_chol)


def log_gaussian(dx: jax.Array, delta: jax.Array, prec_chol: jax.Array,
                 covariance_type: str) -> jax.Array:
    """Component log-densities of a block of rows in per-component frames.

    Args:
        dx: ``(K, B, D)`` rows minus the component reference points ``s_k``.
        delta: ``(K, D)`` means minus the reference points (zeros when ``s_k = μ_k``).
        prec_chol: precision Cholesky factors in the layout of ``covariance_type``.
        covariance_type: one of :data:`COVARIANCE_TYPES`.

    Returns:
        ``(K, B)`` values of ``log N(x_b | μ_k, Σ_k)``.
    """
    d = dx.shape[-1]
    if covariance_type in ("full", "tied"):
        maha = precision_mahalanobis(dx, delta, prec_chol)
    elif covariance_type == "diag":
        maha = jnp.sum(jnp.square((dx - delta[:, None, :]) * prec_chol[:, None, :]), axis=-1)
    else:
        maha = jnp.sum(jnp.square(dx - delta[:, None, :]), axis=-1) * jnp.square(prec_chol)[:, None]
    log_det = log_det_precision_cholesky(prec_chol, covariance_type, d)
    return gaussian_log_density(maha, -2.0 * log_det[:, None], d)


def _safe_cholesky(cov: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Cholesky factors of ``(M, D, D)`` symmetric matrices by the library's jitter policy
    (:func:`espresso_jax.prob.linalg.cholesky_with_jitter`), unbounded so that every factor is
    finite. Returns ``(cov_used, lower)`` with ``cov_used = cov + jitter I``."""
    lower, jitter = cholesky_with_jitter(cov, math.inf)
    eye = jnp.eye(cov.shape[-1], dtype=cov.dtype)[None]
    return cov + jitter[:, None, None] * eye, lower


def precision_cholesky(covariances: jax.Array,
                       covariance_type: str) -> tuple[jax.Array, jax.Array]:
    """Precision Cholesky factors of covariances (scikit-learn's ``precisions_cholesky_``).

    Args:
        covariances: covariances in the layout of ``covariance_type`` (positive definite up to
            rounding; a failed factorisation is repaired by diagonal jitter).
        covariance_type: one of :data:`COVARIANCE_TYPES`.

    Returns:
        ``(covariances, prec_chol)``: the covariances actually factorised (equal to the input
        unless a repair was needed) and ``U`` with ``Σ⁻¹ = U Uᵀ``.
    """
    if covariance_type in ("full", "tied"):
        cov, lower = _safe_cholesky(covariances)
        return cov, upper_cholesky_of_inverse(lower)
    tiny = jnp.finfo(covariances.dtype).tiny
    cov = jnp.maximum(covariances, tiny)
    return cov, lax.rsqrt(cov)


def precision_cholesky_from_precision(precisions: jax.Array, covariance_type: str) -> jax.Array:
    """Upper-triangular ``U`` with ``P = U Uᵀ`` from precisions ``P`` (reverse rows and columns,
    lower Cholesky, reverse back: as scikit-learn does for ``precisions_init``)."""
    if covariance_type in ("full", "tied"):
        def flip(a):
            return jnp.flip(a, axis=(-2, -1))

        return flip(jnp.linalg.cholesky(flip(precisions)))
    return jnp.sqrt(precisions)


def covariance_from_precision_cholesky(prec_chol: jax.Array, covariance_type: str) -> jax.Array:
    """``Σ = (U Uᵀ)⁻¹ = U⁻ᵀ U⁻¹`` (or ``1 / U²`` for diag/spherical)."""
    if covariance_type in ("full", "tied"):
        eye = jnp.broadcast_to(jnp.eye(prec_chol.shape[-1], dtype=prec_chol.dtype),
                               prec_chol.shape)
        inv = solve_triangular(prec_chol, eye, lower=False)                  # U⁻¹
        cov = jnp.matmul(jnp.swapaxes(inv, -1, -2), inv, precision=lax.Precision.HIGHEST)
        return 0.5 * (cov + jnp.swapaxes(cov, -1, -2))
    return 1.0 / jnp.square(prec_chol)


def regularise(scatter: jax.Array, nk: jax.Array, reg_covar: jax.Array,
               covariance_type: str) -> jax.Array:
    """ML covariances from scatter matrices about the means, plus ``reg_covar`` on the diagonal.

    Args:
        scatter: ``(K, D, D)`` (full/tied) or ``(K, D)`` (diag/spherical) ``Σ w r (x−μ)(x−μ)ᵀ``.
        nk: ``(K,)`` weighted counts (already guarded against zero).
        reg_covar: ``()`` non-negative regulariser.
        covariance_type: one of :data:`COVARIANCE_TYPES`.

    Returns:
        Covariances in the layout of ``covariance_type`` (as scikit-learn's M-step: tied divides
        the pooled scatter by ``Σ nk``; spherical is the mean of the diagonal variances).
    """
    if covariance_type == "full":
        eye = jnp.eye(scatter.shape[-1], dtype=scatter.dtype)[None]
        return scatter / nk[:, None, None] + reg_covar * eye
    if covariance_type == "tied":
        eye = jnp.eye(scatter.shape[-1], dtype=scatter.dtype)[None]
        return jnp.sum(scatter, axis=0, keepdims=True) / jnp.sum(nk) + reg_covar * eye
    variances = scatter / nk[:, None] + reg_covar
    if covariance_type == "diag":
        return variances
    return jnp.mean(variances, axis=-1)
