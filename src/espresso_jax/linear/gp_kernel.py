"""Gaussian-process regression: the RBF kernel, the noise and their hyper-parameters.

The covariance function (Bishop PRML eq. 6.23; Rasmussen & Williams, ch. 2 and §5.1):

    k(x, x') = σ_f² exp(−½ Σ_d (x_d − x'_d)² / ℓ_d²),

with the length-scale ℓ one number (isotropic) or one per input dimension (automatic relevance
determination, ARD, PRML §6.4.4); the targets add Gaussian noise of variance σ_n², so their
covariance is ``K + σ_n² I``. The hyper-parameters live in :class:`GPParams` in log space,
``θ = (log σ_f², log ℓ, log σ_n²)``, the same coordinates as scikit-learn's ``kernel.theta`` for
``ConstantKernel(σ_f²) * RBF(ℓ) + WhiteKernel(σ_n²)``; build them from positive values with
:func:`make_params`.

References:
    C. M. Bishop, *Pattern Recognition and Machine Learning*, 2006, §6.4.2–6.4.4.
    C. E. Rasmussen and C. K. I. Williams, *Gaussian Processes for Machine Learning*, 2006,
    ch. 2 and §5.1.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from espresso_jax.validation import as_float_array, check_positive

__all__ = ["GPParams", "make_params", "check_params", "kernel_matrix", "noisy_kernel_matrix",
           "rbf_kernel"]


class GPParams(NamedTuple):
    """RBF + noise hyper-parameters in unconstrained (log) space.

    Attributes:
        log_signal_var: ``()`` log σ_f² (signal variance, the kernel's amplitude squared).
        log_length_scale: ``()`` isotropic log ℓ, or ``(n_features,)`` ARD log length-scales.
        log_noise_var: ``()`` log σ_n² (Gaussian observation-noise variance).
    """

    log_signal_var: jax.Array
    log_length_scale: jax.Array
    log_noise_var: jax.Array

    @property
    def signal_var(self) -> jax.Array:
        """σ_f²."""
        return jnp.exp(self.log_signal_var)

    @property
    def length_scale(self) -> jax.Array:
        """ℓ, shape ``()`` or ``(n_features,)``."""
        return jnp.exp(self.log_length_scale)

    @property
    def noise_var(self) -> jax.Array:
        """σ_n²."""
        return jnp.exp(self.log_noise_var)


def make_params(signal_var: float, length_scale: ArrayLike, noise_var: float) -> GPParams:
    """Build :class:`GPParams` from positive hyper-parameters.

    Args:
        signal_var: σ_f² > 0.
        length_scale: ℓ > 0, a scalar (isotropic) or ``(n_features,)`` (ARD).
        noise_var: σ_n² > 0.

    Returns:
        :class:`GPParams` holding the logarithms, in the working float dtype.

    Raises:
        ValueError: a value is not finite or not strictly positive, or ``length_scale`` has
            rank > 1.
    """
    sv = check_positive(signal_var, "signal_var")
    nv = check_positive(noise_var, "noise_var")
    ls = np.asarray(as_float_array(length_scale, "length_scale", ndim=(0, 1),
                                   shape_hint="() or (n_features,)"))
    if np.any(ls <= 0):
        raise ValueError(f"length_scale must be > 0, got {ls}")
    dtype = ls.dtype
    return GPParams(
        log_signal_var=jnp.asarray(math.log(sv), dtype=dtype),
        log_length_scale=jnp.asarray(np.log(ls), dtype=dtype),
        log_noise_var=jnp.asarray(math.log(nv), dtype=dtype),
    )


def check_params(params: GPParams, n_features: int, dtype) -> GPParams:
    """Validate ``params`` against the data's feature count and cast it to ``dtype``.

    Args:
        params: :class:`GPParams`; ``log_length_scale`` ``()`` or ``(n_features,)``.
        n_features: number of input features the kernel is applied to.
        dtype: the working float dtype of the data.

    Returns:
        :class:`GPParams` with every field cast to ``dtype``.

    Raises:
        TypeError: ``params`` is not a :class:`GPParams`.
        ValueError: a field has the wrong rank or is not finite, or the number of ARD
            length-scales differs from ``n_features``.
    """
    if not isinstance(params, GPParams):
        raise TypeError(f"params must be a GPParams (see make_params), got "
                        f"{type(params).__name__}")
    sv = as_float_array(params.log_signal_var, "params.log_signal_var", ndim=0)
    nv = as_float_array(params.log_noise_var, "params.log_noise_var", ndim=0)
    ls = as_float_array(params.log_length_scale, "params.log_length_scale", ndim=(0, 1),
                        shape_hint="() or (n_features,)")
    if ls.ndim == 1 and ls.shape[0] != n_features:
        raise ValueError(f"params.log_length_scale has {ls.shape[0]} ARD length-scales but the "
                         f"inputs have {n_features} features")
    return GPParams(sv.astype(dtype), ls.astype(dtype), nv.astype(dtype))


def kernel_matrix(params: GPParams, X1: jax.Array, X2: jax.Array) -> jax.Array:
    """σ_f² exp(−½‖(x − x')/ℓ‖²) for all pairs: traceable, no input checks.

    Args:
        params: :class:`GPParams`.
        X1: ``(n1, n_features)``.
        X2: ``(n2, n_features)``.

    Returns:
        ``(n1, n2)`` kernel matrix.
    """
    ell = jnp.exp(params.log_length_scale).reshape(1, -1)  # (1, 1) or (1, d)
    Z1, Z2 = X1 / ell, X2 / ell
    shift = jnp.mean(Z2, axis=0, keepdims=True)  # distances are shift-invariant; less cancellation
    Z1, Z2 = Z1 - shift, Z2 - shift
    sq1 = jnp.sum(Z1 * Z1, axis=1)
    sq2 = jnp.sum(Z2 * Z2, axis=1)
    cross = jnp.matmul(Z1, Z2.T, precision=lax.Precision.HIGHEST)
    d2 = jnp.maximum(sq1[:, None] + sq2[None, :] - 2.0 * cross, 0.0)
    return jnp.exp(params.log_signal_var) * jnp.exp(-0.5 * d2)


def noisy_kernel_matrix(params: GPParams, X: jax.Array) -> jax.Array:
    """K + σ_n² I, the covariance of the noisy targets: traceable, no input checks.

    Args:
        params: :class:`GPParams`.
        X: ``(n, n_features)`` inputs.

    Returns:
        ``(n, n)`` matrix.
    """
    noise = jnp.exp(params.log_noise_var) * jnp.eye(X.shape[0], dtype=X.dtype)
    return kernel_matrix(params, X, X) + noise


_kernel_matrix_impl = jax.jit(kernel_matrix)


def rbf_kernel(params: GPParams, X1: ArrayLike, X2: ArrayLike | None = None) -> jax.Array:
    """The RBF (squared-exponential) kernel matrix, without the noise term.

    Args:
        params: :class:`GPParams`.
        X1: ``(n1, n_features)``.
        X2: ``(n2, n_features)``; ``X1`` when None.

    Returns:
        ``(n1, n2)`` matrix ``σ_f² exp(−½ Σ_d (x1_d − x2_d)² / ℓ_d²)`` (PRML eq. 6.23).
    """
    X1 = as_float_array(X1, "X1", ndim=2, shape_hint="(n1, n_features)")
    X2 = X1 if X2 is None else as_float_array(X2, "X2", ndim=2, shape_hint="(n2, n_features)")
    if X2.shape[1] != X1.shape[1]:
        raise ValueError(f"X1 has {X1.shape[1]} features but X2 has {X2.shape[1]}")
    params = check_params(params, X1.shape[1], X1.dtype)
    return _kernel_matrix_impl(params, X1, X2)

