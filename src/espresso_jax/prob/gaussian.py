"""Gaussian log-density kernels shared by the models' hot loops.

``numpyro.distributions.Normal`` / ``MultivariateNormal`` are the distribution objects of the
library. Inside a model's inner loop the natural parameters differ from model to model (a
log-variance in a VAE decoder, a softplus scale in Bayes by Backprop, a precision Cholesky
factor in a mixture, a Gram-matrix Cholesky factor in a GP), and building a distribution object
there would redo work the model has already done (a factorisation, a ``log σ`` that must stay
finite when ``σ`` underflows). Every model therefore reduces its parametrisation to the two
numbers the Gaussian log-density is made of, the squared Mahalanobis distance and the log
determinant of the covariance, and calls :func:`gaussian_log_density`:

    log N(x | μ, Σ) = −½ (d log 2π + log|Σ| + (x − μ)ᵀ Σ⁻¹ (x − μ)).

For a scalar, ``d = 1``, ``log|Σ| = log σ²`` and the distance is ``((x − μ)/σ)²``.

:func:`precision_mahalanobis` is the distance for ``K`` components given by upper-triangular
precision Cholesky factors ``U_k`` (``Σ_k⁻¹ = U_k U_kᵀ``), evaluated as one batched GEMM in a
per-component frame (no per-point solve), as the Gaussian mixtures need it.

References:
    C. M. Bishop, *Pattern Recognition and Machine Learning*, 2006, eqs. 1.46 and 2.43.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

__all__ = ["LOG_2PI", "gaussian_log_density", "precision_mahalanobis"]

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_density(sq_mahalanobis: ArrayLike, log_det_cov: ArrayLike,
                         dim: ArrayLike = 1) -> jax.Array:
    """Gaussian log-density from its squared distance and log-determinant.

    Args:
        sq_mahalanobis: ``(...)`` ``(x − μ)ᵀ Σ⁻¹ (x − μ)`` (for a scalar ``((x − μ)/σ)²``).
        log_det_cov: ``log|Σ|``, broadcastable to ``sq_mahalanobis`` (``log σ²`` for a
            scalar; ``−log τ`` for a precision ``τ``).
        dim: the dimension ``d`` of ``x`` (a Python number, or an array for a per-row count of
            observed coordinates).

    Returns:
        ``−½ (d log 2π + log|Σ| + sq_mahalanobis)``, broadcast shape of the inputs.
    """
    return jnp.asarray(-0.5 * (dim * LOG_2PI + log_det_cov + sq_mahalanobis))


def precision_mahalanobis(dx: jax.Array, delta: jax.Array, prec_chol: jax.Array) -> jax.Array:
    """Squared Mahalanobis distances to ``K`` components with precision Cholesky factors.

    Rows and means are given relative to a per-component reference point ``s_k`` near the data
    (``dx = x − s_k``, ``delta = μ_k − s_k``), which keeps float32 accurate for data far from
    the origin; the distance is ``‖U_kᵀ dx − U_kᵀ delta‖²``.

    Args:
        dx: ``(K, B, D)`` rows minus the reference points.
        delta: ``(K, D)`` means minus the reference points.
        prec_chol: ``(K, D, D)`` upper-triangular ``U_k`` with ``Σ_k⁻¹ = U_k U_kᵀ`` (a leading
            axis of 1 broadcasts over the components).

    Returns:
        ``(K, B)`` squared distances. Cost O(K·B·D²) as one batched GEMM.
    """
    hi = lax.Precision.HIGHEST
    y = jnp.matmul(dx, prec_chol, precision=hi)                          # (K, B, D)
    c = jnp.matmul(delta[:, None, :], prec_chol, precision=hi)           # (K, 1, D)
    return jnp.sum(jnp.square(y - c), axis=-1)
