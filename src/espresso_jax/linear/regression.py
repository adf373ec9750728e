"""Maximum-likelihood (least-squares) and ridge linear regression.

``y = X w + eps``, ``eps ~ N(0, 1/beta)``: the ML weights solve the normal equations
``X^T X w = X^T y`` (PRML eq. 3.15) and ``1/beta_ML`` is the mean squared residual
(eq. 3.21). Ridge (``ridge = lambda > 0``) minimises ``||y - X w||^2 + lambda ||w||^2``
(eq. 3.28), the MAP estimate under an isotropic Gaussian prior.

The solve goes through the thin SVD of ``X`` rather than forming ``X^T X``: that keeps the
condition number of ``X`` (not its square) and handles rank-deficient designs like
``numpy.linalg.lstsq`` (singular values below ``rcond * s_max`` are dropped when
``ridge == 0``).

References:
    Bishop, *Pattern Recognition and Machine Learning* (2006), §3.1.1-3.1.4.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from espresso_jax import em
from espresso_jax.scaling import checked_exponent
from espresso_jax.validation import as_float_array, check_positive, check_same_length

__all__ = ["LeastSquaresParams", "LeastSquaresResult", "fit_least_squares", "predict"]

# Full-precision products also on accelerators (no TF32 / bf16 passes).
_mm = partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)


class LeastSquaresParams(NamedTuple):
    """A fitted linear model (what :func:`predict` takes).

    Attributes:
        w: ``(n_basis,)`` weights (ML, or MAP under the ridge penalty).
        beta: ``()`` noise precision, ``1 / mean squared residual`` (PRML eq. 3.21).
    """

    w: jax.Array
    beta: jax.Array


class LeastSquaresResult(NamedTuple):
    """Result of :func:`fit_least_squares`.

    Attributes:
        params: :class:`LeastSquaresParams`.
        history, n_iter, converged: a closed form's (:func:`espresso_jax.em.closed_form`).
        rss: ``()`` residual sum of squares ``||y - X w||^2``.
        rank: ``()`` int32 numerical rank of ``X``.
        singular_values: ``(min(n_samples, n_basis),)`` singular values of ``X``.
    """

    params: LeastSquaresParams
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    rss: jax.Array
    rank: jax.Array
    singular_values: jax.Array


@jax.jit
def _fit_impl(X: jax.Array, y: jax.Array, ridge: jax.Array, rcond: jax.Array
              ) -> LeastSquaresResult:
    n = X.shape[0]
    u, s, vt = jnp.linalg.svd(X, full_matrices=False)
    keep = s > rcond * s[0]
    # Filter factors s / (s^2 + lambda): the pseudo-inverse for lambda = 0, ridge otherwise.
    # Dropped directions (numerically null) only matter without a ridge penalty.
    safe_s = jnp.where(keep, s, 1.0)
    denom = jnp.where(ridge > 0, s * s + ridge, safe_s * safe_s)
    factor = jnp.where(keep | (ridge > 0), s / denom, 0.0)
    w = _mm(vt.T, factor * _mm(u.T, y))
    resid = y - _mm(X, w)
    rss = jnp.sum(resid * resid)
    # An exact fit (rss == 0) would give beta = inf: floor the mean squared residual.
    mse = jnp.maximum(rss / n, jnp.finfo(X.dtype).tiny)
    return LeastSquaresResult(params=LeastSquaresParams(w=w, beta=1.0 / mse),
                              **em.closed_form(X.dtype), rss=rss,
                              rank=jnp.sum(keep).astype(jnp.int32), singular_values=s)


def fit_least_squares(X: ArrayLike, y: ArrayLike, *, ridge: float = 0.0,
                      rcond: float | None = None) -> LeastSquaresResult:
    """Least-squares (ML) or ridge fit of ``y ≈ X w`` with the ML noise precision.

    Args:
        X: ``(n_samples, n_basis)`` design matrix, rows ``phi(x_n)``.
        y: ``(n_samples,)`` targets.
        ridge: penalty ``lambda >= 0`` on ``||w||^2`` (``0`` is plain least squares).
        rcond: relative cut-off for small singular values when ``ridge == 0``; default
            ``eps * max(n_samples, n_basis)`` as in ``numpy.linalg.lstsq``.

    Returns:
        :class:`LeastSquaresResult` whose ``params`` hold ``w`` and
        ``beta = N / ||y - X w||^2``.

    Raises:
        ValueError / TypeError: non-finite, wrongly shaped or mismatched inputs, negative
            ``ridge`` or ``rcond``.

    References:
        Bishop, PRML (2006), eqs. 3.15, 3.21 (ML) and 3.28 (regularised least squares).
    """
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_basis)")
    y = as_float_array(y, "y", ndim=1, shape_hint="(n_samples,)")
    check_same_length(X=X, y=y)
    # the solve works with XᵀX: a magnitude whose square leaves the dtype gives NaN weights
    checked_exponent(X, "X", kind="magnitude", what="XᵀX")
    ridge = check_positive(ridge, "ridge", allow_zero=True)
    if rcond is None:
        rcond = float(jnp.finfo(X.dtype).eps) * max(X.shape)
    rcond = check_positive(rcond, "rcond", allow_zero=True)
    return _fit_impl(X, y, jnp.asarray(ridge, X.dtype), jnp.asarray(rcond, X.dtype))


@jax.jit
def _predict_impl(w: jax.Array, X: jax.Array) -> jax.Array:
    return _mm(X, w)


def predict(params: LeastSquaresParams, X_new: ArrayLike) -> jax.Array:
    """Point predictions ``X_new w`` of a least-squares fit (PRML eq. 3.3).

    Args:
        params: :class:`LeastSquaresParams` (``fit_least_squares(...).params``).
        X_new: ``(n_new, n_basis)`` design matrix of the new inputs.

    Returns:
        ``(n_new,)`` predicted means.
    """
    if not isinstance(params, LeastSquaresParams):
        raise TypeError(f"params must be a LeastSquaresParams, got {type(params).__name__}")
    X_new = as_float_array(X_new, "X_new", ndim=2, shape_hint="(n_new, n_basis)",
                           n_columns=params.w.shape[0])
    return _predict_impl(params.w.astype(X_new.dtype), X_new)
