"""Parameters of a maximum-likelihood Gaussian mixture and the host-side checks of its inputs.

:class:`GMMParams` stores a mixture as scikit-learn's ``GaussianMixture`` does (weights, means,
covariances in one of the four layouts of :mod:`espresso_jax.mixture.gaussian`, and the upper
precision Cholesky factors). The checks run on the host before any compilation and raise
``ValueError`` / ``TypeError`` naming the offending argument: the data ``X``, fitted or explicit
parameters, and the explicit initial weights, means and covariance-shaped arrays of
:func:`espresso_jax.mixture.gmm.fit`. Arguments that are traced (inside ``jit``) are checked
for shape only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.mixture import gaussian as gauss
from espresso_jax.validation import as_float_array, is_traced

__all__ = [
    "GMMParams",
    "as_covariance_layout",
    "check_X",
    "check_means",
    "check_params",
    "check_weights",
    "covariance_type",
]


class GMMParams(NamedTuple):
    """Parameters of a Gaussian mixture (``K`` components, ``D`` features).

    Attributes:
        weights: ``(K,)`` mixing weights (sum to 1).
        means: ``(K, D)`` component means.
        covariances: ``(K, D, D)`` full, ``(1, D, D)`` tied, ``(K, D)`` diag or ``(K,)``
            spherical (the shape encodes the covariance type; see :func:`covariance_type`).
        precisions_cholesky: upper-triangular ``U`` with ``Σ⁻¹ = U Uᵀ``, same layout
            (``1/sqrt(variances)`` for diag and spherical).
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array
    precisions_cholesky: jax.Array


def covariance_type(params: GMMParams) -> str:
    """The covariance type of ``params`` ("full", "tied", "diag" or "spherical"), read from
    the shapes (static: usable inside jit)."""
    return gauss.covariance_type_of(params.covariances, params.means.shape[0])


def check_X(X: Any, n_features: int | None = None) -> jax.Array:
    """``X`` as a ``(n_samples, n_features)`` float array, rejected on the host (``ValueError``
    naming ``X``) if it is not 2-D, not finite, or has other than ``n_features`` columns."""
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features but the mixture has {n_features}")
    return X


def check_params(params: Any, name: str = "params") -> GMMParams:
    """Validate fitted or explicit parameters (shapes consistent, finite): a
    :class:`GMMParams` of float arrays; errors name ``name`` and the field."""
    if not all(hasattr(params, f) for f in GMMParams._fields):
        raise TypeError(f"{name} must be a GMMParams, got {type(params).__name__}")
    means = as_float_array(params.means, f"{name}.means", ndim=2,
                           shape_hint="(n_components, n_features)")
    k, d = means.shape
    weights = as_float_array(params.weights, f"{name}.weights", ndim=1)
    if weights.shape != (k,):
        raise ValueError(f"{name}.weights must have shape ({k},), got {tuple(weights.shape)}")
    cov = as_float_array(params.covariances, f"{name}.covariances", ndim=(1, 2, 3))
    ctype = gauss.covariance_type_of(cov, k)
    if tuple(cov.shape) != gauss.covariance_shape(ctype, k, d):
        raise ValueError(f"{name}.covariances has shape {tuple(cov.shape)}, inconsistent with "
                         f"means of shape {(k, d)}")
    prec = as_float_array(params.precisions_cholesky, f"{name}.precisions_cholesky",
                          ndim=cov.ndim)
    if prec.shape != cov.shape:
        raise ValueError(f"{name}.precisions_cholesky must have the shape of the covariances "
                         f"{tuple(cov.shape)}, got {tuple(prec.shape)}")
    return GMMParams(weights, means, cov, prec)


def check_weights(x: Any, name: str, k: int) -> jax.Array:
    """``(k,)`` mixing weights in [0, 1] summing to 1 (within 1e-5; checked when concrete),
    returned renormalised; errors name the argument ``name``."""
    wts = as_float_array(x, name, ndim=1, shape_hint="(n_components,)")
    if wts.shape != (k,):
        raise ValueError(f"{name} must have shape ({k},), got {tuple(wts.shape)}")
    if not is_traced(wts):
        a = np.asarray(wts, dtype=np.float64)
        if (a < 0).any() or (a > 1).any():
            raise ValueError(f"{name} must lie in [0, 1], got range [{a.min()}, {a.max()}]")
        if abs(a.sum() - 1.0) > 1e-5:
            raise ValueError(f"{name} must sum to 1, got {a.sum()}")
    return wts / jnp.sum(wts)


def check_means(x: Any, name: str, k: int, d: int) -> jax.Array:
    """``(k, d)`` finite means; errors name the argument ``name``."""
    means = as_float_array(x, name, ndim=2, shape_hint="(n_components, n_features)")
    if means.shape != (k, d):
        raise ValueError(f"{name} must have shape ({k}, {d}), got {tuple(means.shape)}")
    return means


def as_covariance_layout(x: Any, name: str, ctype: str, k: int, d: int) -> jax.Array:
    """Validate a covariance- or precision-shaped argument in the layout of ``ctype``.

    Returns it as ``(k, d, d)`` full, ``(1, d, d)`` tied (also accepted as ``(d, d)``),
    ``(k, d)`` diag or ``(k,)`` spherical; when concrete, full and tied matrices must be
    symmetric positive definite and diag / spherical entries positive.
    """
    want = gauss.covariance_shape(ctype, k, d)
    arr = as_float_array(x, name, ndim=len(want) if ctype != "tied" else (2, 3))
    if ctype == "tied" and arr.ndim == 2:
        arr = arr[None]
    if tuple(arr.shape) != want:
        raise ValueError(f"{name} must have shape {want} for covariance_type={ctype!r}, "
                         f"got {tuple(arr.shape)}")
    if not is_traced(arr):
        a = np.asarray(arr)
        if ctype in ("full", "tied"):
            _check_pd(a, name)
        elif (a <= 0).any():
            raise ValueError(f"{name} must be positive for covariance_type={ctype!r}")
    return arr


def _check_pd(mats: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless the ``(..., D, D)`` matrices are SPD."""
    try:
        np.linalg.cholesky(np.asarray(mats, dtype=np.float64))
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be symmetric positive definite") from None
    if not np.allclose(mats, np.swapaxes(mats, -1, -2), rtol=1e-5, atol=1e-8):
        raise ValueError(f"{name} must be symmetric")
