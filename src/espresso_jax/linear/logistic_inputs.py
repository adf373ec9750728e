"""Bayesian logistic regression: input checks and the Gaussian weight prior.

What a logistic-regression fit takes, validated on the host before anything is traced: the
design matrix, binary labels, the fit's tolerance and iteration cap, and the Gaussian prior
``w ~ N(m₀, S₀)`` (by default ``N(0, α⁻¹I)``) held as a mean and a full precision matrix.
Shared by the Laplace fits (:mod:`espresso_jax.linear.logistic`,
:mod:`espresso_jax.linear.logistic_evidence`) and the NUTS one
(:mod:`espresso_jax.fully_bayes.logistic`).

References:
    C. M. Bishop, *Pattern Recognition and Machine Learning* (PRML), §4.5.1.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from espresso_jax import validation as V
from espresso_jax.scaling import checked_exponent

__all__ = ["GaussianPrior", "check_design", "check_labels", "check_tolerance", "gaussian_prior"]


class GaussianPrior(NamedTuple):
    """Gaussian prior ``N(mean, precision⁻¹)`` on the weights.

    Attributes:
        mean: ``(n_features,)`` prior mean ``m₀``.
        precision: ``(n_features, n_features)`` prior precision ``S₀⁻¹``.
    """

    mean: jax.Array
    precision: jax.Array


def check_design(X: Any, name: str = "X") -> jax.Array:
    """Validate a design matrix ``(n_samples, n_features)`` and return it in the working dtype.

    Raises:
        ValueError: also when the largest ``|X|`` squared leaves the dtype's range (float32:
            entries beyond about ``1e±17``): ``XᵀRX`` could not be represented.
    """
    X = V.as_float_array(X, name, ndim=2, shape_hint="(n_samples, n_features)")
    checked_exponent(X, name, kind="magnitude", what="the Hessian XᵀRX")
    return X


def check_labels(y: Any, name: str = "y") -> jax.Array:
    """Validate binary labels ``(n_samples,)`` holding only 0 and 1 (bools accepted).

    Returns:
        ``(n_samples,)`` labels as floats of the working dtype.

    Raises:
        TypeError: non-numeric labels.
        ValueError: wrong rank, NaN/inf, or a value other than 0 and 1.
    """
    y = V.as_float_array(y, name, ndim=1, shape_hint="(n_samples,)")
    if not V.is_traced(y):
        values = np.asarray(y)
        bad = (values != 0) & (values != 1)
        if bad.any():
            raise ValueError(f"{name} must hold binary labels 0 and 1 only, got "
                             f"{np.unique(values[bad])[:5].tolist()}")
    return y


def gaussian_prior(
    n_features: int,
    *,
    alpha: float | None = None,
    prior_mean: ArrayLike | None = None,
    prior_precision: ArrayLike | None = None,
) -> GaussianPrior:
    """Build and validate the Gaussian weight prior.

    Args:
        n_features: number of weights ``D``.
        alpha: isotropic prior precision, prior ``N(0, α⁻¹I)``; 1.0 when neither ``alpha`` nor
            ``prior_precision`` is given.
        prior_mean: ``(D,)`` prior mean (zeros by default).
        prior_precision: scalar, ``(D,)`` diagonal or ``(D, D)`` symmetric positive-definite
            prior precision. Exclusive with ``alpha``.

    Returns:
        :class:`GaussianPrior` with a full ``(D, D)`` precision.
    """
    n_features = V.check_int(n_features, "n_features", min_value=1)
    dtype = V.float_dtype()
    if alpha is not None and prior_precision is not None:
        raise TypeError("give either alpha or prior_precision, not both")
    if prior_mean is None:
        mean = jnp.zeros(n_features, dtype)
    else:
        mean = V.as_float_array(prior_mean, "prior_mean", ndim=1, shape_hint="(n_features,)")
        if mean.shape[0] != n_features:
            raise ValueError(f"prior_mean must have length n_features={n_features}, "
                             f"got {mean.shape[0]}")
    if prior_precision is None:
        a = V.check_positive(1.0 if alpha is None else alpha, "alpha")
        return GaussianPrior(mean, a * jnp.eye(n_features, dtype=dtype))
    prec = V.as_float_array(prior_precision, "prior_precision", ndim=(0, 1, 2),
                            shape_hint="(), (n_features,) or (n_features, n_features)")
    if prec.ndim == 2 and prec.shape != (n_features, n_features):
        raise ValueError(f"prior_precision must be ({n_features}, {n_features}), "
                         f"got {prec.shape}")
    if prec.ndim == 1 and prec.shape[0] != n_features:
        raise ValueError(f"prior_precision must have length n_features={n_features}, "
                         f"got {prec.shape[0]}")
    if not V.is_traced(prec):
        p = np.asarray(prec)
        if p.ndim < 2 and (p <= 0).any():
            raise ValueError("prior_precision must be > 0")
        if p.ndim == 2:
            if not np.allclose(p, p.T, rtol=1e-5, atol=1e-8 * np.abs(p).max()):
                raise ValueError("prior_precision must be symmetric")
            if np.linalg.eigvalsh(0.5 * (p + p.T)).min() <= 0:
                raise ValueError("prior_precision must be positive definite")
    if prec.ndim == 0:
        prec = prec * jnp.eye(n_features, dtype=prec.dtype)
    elif prec.ndim == 1:
        prec = jnp.diag(prec)
    return GaussianPrior(mean, 0.5 * (prec + prec.T))


def check_tolerance(tol: float, max_iter: int, prefix: str = "") -> tuple[float, int]:
    """Validate an iterative fit's stopping settings.

    Args:
        tol: tolerance ``> 0``, reported as ``{prefix}tol``.
        max_iter: iteration cap ``>= 1``, reported as ``{prefix}max_iter``.
        prefix: prefix of the argument names in error messages (e.g. ``"newton_"``).

    Returns:
        ``(tol, max_iter)`` as a float and an int.
    """
    return (V.check_positive(tol, f"{prefix}tol"),
            V.check_int(max_iter, f"{prefix}max_iter", min_value=1))

