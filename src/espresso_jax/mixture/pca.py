"""Principal component analysis by the SVD of the centred data (or eigh of the covariance).

Conventions follow scikit-learn's ``PCA`` (``whiten=False``) so results can be compared:

- ``explained_variance`` are eigenvalues of the sample covariance with ``n − 1`` in the
  denominator, ``explained_variance_ratio`` divides them by the total variance (trace);
- ``components`` rows are unit principal axes, sign-fixed so that the entry of largest absolute
  value in each row is positive (scikit-learn's ``svd_flip(..., u_based_decision=False)``);
- ``noise_variance`` is the mean of the discarded eigenvalues (the probabilistic-PCA ML
  estimate of σ², PRML eq. 12.46, with the ``n − 1`` covariance), 0 when none is discarded.

``method="svd"`` (default) factorises the centred ``(N, D)`` data, which is more accurate (the
covariance squares the condition number); ``method="eigh"`` factorises the ``(D, D)``
covariance, cheaper when ``N ≫ D``. Either runs on ``X / 2**e``, ``2**e`` the power of two
nearest to the RMS spread of ``X`` (exact), and maps the mean, variances and singular values
back, so float32 keeps its digits at any scale it can represent; data whose squared spread
leaves the dtype's range (float32: beyond about ``1e±17``) are rejected with a ``ValueError``.

References:
    C. M. Bishop, *Pattern Recognition and Machine Learning*, 2006, §12.1.
    I. T. Jolliffe, *Principal Component Analysis*, 2nd ed., 2002.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from espresso_jax import em
from espresso_jax.scaling import checked_exponent, pow2
from espresso_jax.validation import as_float_array, check_choice, check_int

__all__ = ["PCAParams", "PCAResult", "fit", "inverse_transform", "transform"]


class PCAParams(NamedTuple):
    """The projection of a fitted PCA (what :func:`transform` and :func:`inverse_transform`
    take).

    Attributes:
        mean: ``(n_features,)`` per-feature mean of the training data.
        components: ``(n_components, n_features)`` principal axes (orthonormal rows), by
            decreasing variance.
    """

    mean: jax.Array
    components: jax.Array


class PCAResult(NamedTuple):
    """A fitted PCA; ``history``, ``n_iter`` and ``converged`` hold the values of every
    closed-form fit (:func:`espresso_jax.em.closed_form`: empty, 0, True).

    Attributes:
        params: :class:`PCAParams`.
        explained_variance: ``(n_components,)`` variance along each axis (``n − 1``
            denominator).
        explained_variance_ratio: ``(n_components,)`` fraction of the total variance.
        singular_values: ``(n_components,)`` singular values of the centred data.
        noise_variance: ``()`` mean of the discarded variances (0 if none is discarded).
    """

    params: PCAParams
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    explained_variance: jax.Array
    explained_variance_ratio: jax.Array
    singular_values: jax.Array
    noise_variance: jax.Array


def _sign_flip(Vt: jax.Array) -> jax.Array:
    """Make the entry of largest absolute value of each row positive."""
    pivot = jnp.take_along_axis(Vt, jnp.argmax(jnp.abs(Vt), axis=1)[:, None], axis=1)
    return Vt * jnp.where(pivot < 0, -1.0, 1.0).astype(Vt.dtype)


def spectrum(X: jax.Array, method: str) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Mean ``(D,)``, sorted scatter eigenvalues ``S² (R,)`` and sign-fixed axes ``(R, D)``,
    ``R = min(N, D)``, of the data (traceable; shared with probabilistic PCA)."""
    n, d = X.shape
    r = min(n, d)
    mean = jnp.mean(X, axis=0)
    Xc = X - mean[None, :]
    if method == "svd":
        _, S, Vt = jnp.linalg.svd(Xc, full_matrices=False)
        scatter = S * S
    else:
        C = jnp.matmul(Xc.T, Xc, precision=lax.Precision.HIGHEST)
        evals, evecs = jnp.linalg.eigh(0.5 * (C + C.T))
        scatter = jnp.maximum(evals[::-1][:r], 0.0)
        Vt = evecs[:, ::-1].T[:r]
    return mean, scatter, _sign_flip(Vt)


@partial(jax.jit, static_argnames=("n_components", "method"))
def _fit_impl(X, e, n_components: int, method: str) -> PCAResult:
    n = X.shape[0]
    s = pow2(e, X.dtype)
    mean, scatter, Vt = spectrum(X * pow2(-e, X.dtype), method)
    mean, scatter = mean * s, scatter * (s * s)
    ev_all = scatter / (n - 1)
    ev = ev_all[:n_components]
    total = jnp.sum(ev_all)
    if n_components < ev_all.shape[0]:
        noise = jnp.mean(ev_all[n_components:])
    else:
        noise = jnp.zeros((), X.dtype)
    return PCAResult(
        params=PCAParams(mean=mean, components=Vt[:n_components]),
        **em.closed_form(X.dtype),
        explained_variance=ev,
        explained_variance_ratio=ev / jnp.where(total > 0, total, 1.0),
        singular_values=jnp.sqrt(scatter[:n_components]),
        noise_variance=noise,
    )


def check_n_components(n_components, n_samples: int, n_features: int) -> int:
    """``1 ≤ n_components ≤ min(n_samples, n_features)`` (shared with probabilistic PCA)."""
    limit = min(n_samples, n_features)
    n_components = check_int(n_components, "n_components", min_value=1)
    if n_components > limit:
        raise ValueError(f"n_components={n_components} must be <= min(n_samples, n_features)"
                         f" = {limit}")
    return n_components


def fit(X: ArrayLike, n_components: int, *, method: str = "svd") -> PCAResult:
    """Fit PCA.

    Args:
        X: ``(n_samples, n_features)`` data, ``n_samples ≥ 2``.
        n_components: number of axes kept, ``1 ≤ M ≤ min(n_samples, n_features)``.
        method: ``"svd"`` (of the centred data) or ``"eigh"`` (of the covariance).

    Returns:
        :class:`PCAResult`.

    Raises:
        ValueError: non-finite or non-2-D ``X``, fewer than 2 rows, bad ``n_components`` or
            ``method``, ``X`` whose squared spread its dtype cannot hold.

    References:
        Bishop, PRML (2006), §12.1.
    """
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    n, d = X.shape
    if n < 2:
        raise ValueError(f"X must have at least 2 samples, got {n}")
    n_components = check_n_components(n_components, n, d)
    method = check_choice(method, "method", ("svd", "eigh"))
    e = checked_exponent(X, "X", what="the explained variances")
    return _fit_impl(X, jnp.asarray(e, jnp.int32), n_components, method)


def _check_params(params: PCAParams) -> None:
    if not isinstance(params, PCAParams):
        raise TypeError(f"params must be a PCAParams (fit(...).params), got "
                        f"{type(params).__name__}")


@jax.jit
def _transform_impl(params: PCAParams, X):
    return jnp.matmul(X - params.mean[None, :], params.components.T,
                      precision=lax.Precision.HIGHEST)


@jax.jit
def _inverse_impl(params: PCAParams, Z):
    return jnp.matmul(Z, params.components, precision=lax.Precision.HIGHEST) + \
        params.mean[None, :]


def transform(params: PCAParams, X: ArrayLike) -> jax.Array:
    """Project rows on the principal axes: ``(X − mean) componentsᵀ``.

    Args:
        params: :class:`PCAParams` (``fit(...).params``).
        X: ``(n_samples, n_features)``.

    Returns:
        ``(n_samples, n_components)`` scores.
    """
    _check_params(params)
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    if X.shape[1] != params.mean.shape[0]:
        raise ValueError(f"X has {X.shape[1]} features, the PCA was fitted on "
                         f"{params.mean.shape[0]}")
    return _transform_impl(params, X)


def inverse_transform(params: PCAParams, Z: ArrayLike) -> jax.Array:
    """Map scores back to data space: ``Z components + mean``.

    Args:
        params: :class:`PCAParams` (``fit(...).params``).
        Z: ``(n_samples, n_components)``.

    Returns:
        ``(n_samples, n_features)`` reconstructions.
    """
    _check_params(params)
    Z = as_float_array(Z, "Z", ndim=2, shape_hint="(n_samples, n_components)")
    if Z.shape[1] != params.components.shape[0]:
        raise ValueError(f"Z has {Z.shape[1]} columns, the PCA has "
                         f"{params.components.shape[0]} components")
    return _inverse_impl(params, Z)
