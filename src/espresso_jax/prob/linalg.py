"""Cholesky factorisation with diagonal jitter: the library's one policy.

Every model that factorises a covariance, precision, Hessian or Gram matrix that should be
positive definite but may fail to factorise in floating point (rounding, duplicated inputs, an
empty mixture component) calls :func:`cholesky_with_jitter`. The policy:

1. Symmetrise ``A ← (A + Aᵀ)/2`` (exact for a matrix that already is symmetric) and factorise
   it as it is. A factor that succeeds is returned untouched, with jitter 0: well-conditioned
   problems give exactly the plain Cholesky.
2. Each matrix whose factor failed (any non-finite entry) is refactorised as ``A + j I`` with
   ``j = sqrt(eps) · s``, then ``10 j``, ``100 j``, ... where ``s = mean |diag A|`` and ``eps``
   is the machine epsilon of the dtype (``j`` is 3.5e-4 relative in float32, 1.5e-8 in
   float64: far above round-off, far below any modelled noise level). Jitter changes the model
   by O(j) while the round-off in a nearly singular solve grows like eps / j, so the smallest
   ``j`` that succeeds is kept.
3. The escalation stops at ``max_relative_jitter · s`` or after :data:`MAX_TRIES` tries.
   A matrix that still fails reports a NaN jitter (and a non-finite factor); the caller
   decides whether that is an error (GP regression) or cannot happen (a mixture passes
   ``max_relative_jitter=inf``: ``A + j I`` is positive definite once ``j`` exceeds the most
   negative eigenvalue, so some try succeeds).

The loop runs only when a factor failed, so the common case costs one Cholesky. Derivatives
treat the jitter as a constant: they are those of the factor actually used.

References:
    I. Murray, "Differentiation of the Cholesky decomposition", arXiv:1602.07527 (2016).
    C. E. Rasmussen and C. K. I. Williams, *Gaussian Processes for Machine Learning*, 2006,
    Appendix A.4 (jitter for a nearly singular Gram matrix).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular

__all__ = ["MAX_TRIES", "cholesky_with_jitter", "upper_cholesky_of_inverse"]

MAX_TRIES = 20  # at most this many jittered factorisations (×10 each)


def _eye_like(A: jax.Array) -> jax.Array:
    """Identity of A's trailing shape with A's rank (for strict rank promotion)."""
    d = A.shape[-1]
    return jnp.eye(d, dtype=A.dtype).reshape((1,) * (A.ndim - 2) + (d, d))


def _failed(L: jax.Array) -> jax.Array:
    return ~jnp.all(jnp.isfinite(L), axis=(-2, -1))


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def cholesky_with_jitter(A: jax.Array,
                         max_relative_jitter: float = 1e-2) -> tuple[jax.Array, jax.Array]:
    """Lower Cholesky factor of symmetric ``A``, adding diagonal jitter only where it fails.

    Args:
        A: ``(..., d, d)`` symmetric matrices, positive definite up to rounding.
        max_relative_jitter: largest jitter tried, relative to ``mean |diag A|`` (static).

    Returns:
        ``(L, jitter)``: ``L`` ``(..., d, d)`` lower triangular with ``L Lᵀ = A + jitter I``,
        and ``jitter`` ``(...)`` (0 where the plain factor succeeded, NaN where even the
        largest jitter failed). See the module docstring for the policy.
    """
    A = 0.5 * (A + jnp.swapaxes(A, -1, -2))
    dtype = A.dtype
    eye = _eye_like(A)
    diag = jnp.abs(jnp.diagonal(A, axis1=-2, axis2=-1))
    scale = jnp.maximum(jnp.mean(diag, axis=-1), jnp.finfo(dtype).tiny)        # (...)
    start = math.sqrt(float(jnp.finfo(dtype).eps)) * scale
    bound = max_relative_jitter * scale

    def retry(carry):
        L, jitter, _ = carry
        return _failed(L) & (jitter <= bound)

    def cond(carry):
        # The try cap also ends the loop when the diagonal is inf (then so is the bound).
        return jnp.any(retry(carry)) & (carry[2] < MAX_TRIES)

    def body(carry):
        L, jitter, tries = carry
        again = retry(carry)
        jitter = jnp.where(again, jnp.where(jitter == 0.0, start, 10.0 * jitter), jitter)
        L_new = jnp.linalg.cholesky(A + jitter[..., None, None] * eye)
        return jnp.where(again[..., None, None], L_new, L), jitter, tries + 1

    init = (jnp.linalg.cholesky(A), jnp.zeros(scale.shape, dtype), jnp.zeros((), jnp.int32))
    L, jitter, _ = lax.while_loop(cond, body, init)
    return L, jnp.where(_failed(L), jnp.nan, jitter)


@cholesky_with_jitter.defjvp
def _cholesky_with_jitter_jvp(max_relative_jitter, primals, tangents):
    # dL = L Φ(L⁻¹ dA L⁻ᵀ), Φ = lower triangle with halved diagonal (Murray 2016).
    (A,), (dA,) = primals, tangents
    L, jitter = cholesky_with_jitter(A, max_relative_jitter)
    dA = 0.5 * (dA + jnp.swapaxes(dA, -1, -2))
    tmp = solve_triangular(L, dA, lower=True)
    tmp = solve_triangular(L, jnp.swapaxes(tmp, -1, -2), lower=True)
    phi = jnp.tril(tmp) - 0.5 * tmp * _eye_like(tmp)
    dL = jnp.matmul(L, phi, precision=lax.Precision.HIGHEST)
    return (L, jitter), (dL, jnp.zeros_like(jitter))


def upper_cholesky_of_inverse(lower: jax.Array) -> jax.Array:
    """``U = L⁻ᵀ`` (upper triangular) with ``(L Lᵀ)⁻¹ = U Uᵀ``.

    Args:
        lower: ``(..., d, d)`` lower Cholesky factors ``L``.

    Returns:
        ``(..., d, d)`` upper-triangular ``U``: the precision Cholesky factor of the mixtures.
    """
    eye = jnp.broadcast_to(jnp.eye(lower.shape[-1], dtype=lower.dtype), lower.shape)
    return jnp.swapaxes(solve_triangular(lower, eye, lower=True), -1, -2)
