"""Synthetic data generators. Each takes a PRNG key first and returns host arrays."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.validation import (
    as_float_array,
    check_int,
    check_key,
    check_positive,
    float_dtype,
)


def sinusoidal(key: jax.Array, n: int, *, noise_std: float = 0.3,
               x_range: tuple[float, float] = (0.0, 1.0),
               evenly_spaced: bool = False) -> tuple[jax.Array, jax.Array]:
    """Bishop's curve-fitting data: t = sin(2πx) + ε, ε ~ N(0, noise_std²).

    Args:
        key: PRNG key.
        n: number of points.
        noise_std: standard deviation of the noise (0.3 in PRML §1.1 and §3.4).
        x_range: interval of x.
        evenly_spaced: x on an even grid (as in PRML Fig. 1.2) instead of uniform draws.

    Returns:
        x ``(n,)`` and t ``(n,)``.

    References:
        Bishop, *Pattern Recognition and Machine Learning* (2006), §1.1.
    """
    check_key(key)
    n = check_int(n, "n", min_value=1)
    noise_std = check_positive(noise_std, "noise_std", allow_zero=True)
    lo, hi = x_range
    dtype = float_dtype()
    kx, kt = jax.random.split(key)
    if evenly_spaced:
        x = jnp.linspace(lo, hi, n, dtype=dtype)
    else:
        x = jax.random.uniform(kx, (n,), dtype=dtype, minval=lo, maxval=hi)
    t = jnp.sin(2 * jnp.pi * x) + noise_std * jax.random.normal(kt, (n,), dtype=dtype)
    return x, t


def linear_regression(key: jax.Array, n: int, d: int, *, noise_std: float = 0.1,
                      weight_std: float = 1.0) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Gaussian design ``X (n, d)``, weights ``w ~ N(0, weight_std² I)``, ``t = X w + ε``.

    Returns:
        X ``(n, d)``, t ``(n,)``, w ``(d,)``.
    """
    check_key(key)
    n = check_int(n, "n", min_value=1)
    d = check_int(d, "d", min_value=1)
    noise_std = check_positive(noise_std, "noise_std", allow_zero=True)
    weight_std = check_positive(weight_std, "weight_std")
    dtype = float_dtype()
    kx, kw, ke = jax.random.split(key, 3)
    X = jax.random.normal(kx, (n, d), dtype=dtype)
    w = weight_std * jax.random.normal(kw, (d,), dtype=dtype)
    t = X @ w + noise_std * jax.random.normal(ke, (n,), dtype=dtype)
    return X, t, w


def logistic_classification(key: jax.Array, n: int, d: int, *, weight_std: float = 1.0
                            ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Gaussian inputs, ``w ~ N(0, weight_std² I)``, labels ``y ~ Bernoulli(σ(Xw))``.

    Returns:
        X ``(n, d)``, y ``(n,)`` int32 in {0, 1}, w ``(d,)``.
    """
    check_key(key)
    n = check_int(n, "n", min_value=1)
    d = check_int(d, "d", min_value=1)
    weight_std = check_positive(weight_std, "weight_std")
    dtype = float_dtype()
    kx, kw, ky = jax.random.split(key, 3)
    X = jax.random.normal(kx, (n, d), dtype=dtype)
    w = weight_std * jax.random.normal(kw, (d,), dtype=dtype)
    y = jax.random.bernoulli(ky, jax.nn.sigmoid(X @ w)).astype(jnp.int32)
    return X, y, w


def gaussian_mixture(key: jax.Array, n: int, means, covariances, weights
                     ) -> tuple[jax.Array, jax.Array]:
    """Draw ``n`` points from a Gaussian mixture.

    Args:
        key: PRNG key.
        n: number of points.
        means: ``(K, D)`` component means.
        covariances: ``(K, D, D)`` positive-definite covariances.
        weights: ``(K,)`` mixing weights (non-negative; normalised here).

    Returns:
        X ``(n, D)`` and the component labels ``(n,)`` int32.
    """
    check_key(key)
    n = check_int(n, "n", min_value=1)
    means = as_float_array(means, "means", ndim=2, shape_hint="(K, D)")
    covariances = as_float_array(covariances, "covariances", ndim=3, shape_hint="(K, D, D)")
    weights = as_float_array(weights, "weights", ndim=1, shape_hint="(K,)")
    k, d = means.shape
    if covariances.shape != (k, d, d):
        raise ValueError(f"covariances must have shape ({k}, {d}, {d}), got {covariances.shape}")
    if weights.shape != (k,):
        raise ValueError(f"weights must have shape ({k},), got {weights.shape}")
    if np.any(np.asarray(weights) < 0) or float(weights.sum()) <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
    try:
        chol_np = np.linalg.cholesky(np.asarray(covariances, dtype=np.float64))
    except np.linalg.LinAlgError:
        raise ValueError("covariances must be positive definite") from None
    chol = jnp.asarray(chol_np, dtype=means.dtype)
    kz, ke = jax.random.split(key)
    z = jax.random.categorical(kz, jnp.log(weights / weights.sum()), shape=(n,))
    eps = jax.random.normal(ke, (n, d), dtype=means.dtype)
    X = means[z] + jnp.einsum("nij,nj->ni", chol[z], eps)
    return X, z.astype(jnp.int32)
