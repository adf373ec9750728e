"""Fixed basis functions for linear models: polynomial, Gaussian (RBF) and sigmoid.

Each basis maps inputs ``x: (n_samples,)`` or ``(n_samples, n_dims)`` to a design matrix
``X: (n_samples, n_basis)``; :func:`design_matrix` picks a basis by name. All functions are
pure and jittable: inputs are validated on the host (rank and dtype only for traced inputs), then
a jitted kernel builds the matrix.

References:
    Bishop, *Pattern Recognition and Machine Learning* (2006), §3.1 (eqs. 3.2-3.6).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from espresso_jax.validation import (
    as_float_array,
    as_positive_array,
    check_choice,
    check_int,
)

__all__ = ["BASES", "polynomial", "gaussian", "sigmoid", "design_matrix"]

BASES = ("polynomial", "gaussian", "sigmoid")
"""Names accepted by :func:`design_matrix`."""


# --------------------------------------------------------------------------- validation

def _inputs(x: Any) -> jax.Array:
    """``x`` as a ``(n_samples, n_dims)`` array (a 1-D input becomes one column)."""
    x = as_float_array(x, "x", ndim=(1, 2), shape_hint="(n_samples,) or (n_samples, n_dims)")
    return x[:, None] if x.ndim == 1 else x


def _centres(centres: Any, n_dims: int) -> jax.Array:
    """``centres`` as ``(n_centres, n_dims)``; 1-D centres are allowed for 1-D inputs."""
    c = as_float_array(centres, "centres", ndim=(1, 2),
                       shape_hint="(n_centres,) or (n_centres, n_dims)")
    if c.ndim == 1:
        if n_dims != 1:
            raise ValueError(f"centres must be 2-D (n_centres, {n_dims}) for {n_dims}-D inputs, "
                             f"got shape {tuple(c.shape)}")
        c = c[:, None]
    if c.shape[1] != n_dims:
        raise ValueError(f"centres must have {n_dims} columns to match x, got shape "
                         f"{tuple(c.shape)}")
    return c


def _bias_flag(bias: Any) -> bool:
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be a bool, got {type(bias).__name__}")
    return bias


# --------------------------------------------------------------------------- kernels

@partial(jax.jit, static_argnames=("degree",))
def _polynomial_impl(x: jax.Array, degree: int) -> jax.Array:
    # Powers by repeated multiplication: exact signs for negative x (a float exponent is not).
    cols = jnp.cumprod(jnp.broadcast_to(x[:, :, None], (*x.shape, degree)), axis=-1)
    # Column order: x_1, ..., x_d, x_1^2, ..., x_d^2, ... (power-major).
    cols = jnp.swapaxes(cols, 1, 2).reshape(x.shape[0], -1)
    ones = jnp.ones((x.shape[0], 1), dtype=x.dtype)
    return jnp.concatenate([ones, cols], axis=1)


@partial(jax.jit, static_argnames=("bias",))
def _gaussian_impl(x: jax.Array, centres: jax.Array, width: jax.Array, bias: bool) -> jax.Array:
    diff = x[:, None, :] - centres[None, :, :]                          # (n, k, d)
    sq = jnp.sum(diff * diff, axis=-1)                                  # (n, k)
    phi = jnp.exp(-0.5 * sq / (width * width))
    return _with_bias(phi) if bias else phi


@partial(jax.jit, static_argnames=("bias",))
def _sigmoid_impl(x: jax.Array, centres: jax.Array, width: jax.Array, bias: bool) -> jax.Array:
    phi = jax.nn.sigmoid((x - centres[None, :, 0]) / width)             # (n, k), x is (n, 1)
    return _with_bias(phi) if bias else phi


def _with_bias(phi: jax.Array) -> jax.Array:
    return jnp.concatenate([jnp.ones((phi.shape[0], 1), dtype=phi.dtype), phi], axis=1)


# --------------------------------------------------------------------------- public API

def polynomial(x: ArrayLike, degree: int) -> jax.Array:
    """Polynomial basis ``phi_j(x) = x^j`` for ``j = 0..degree`` (PRML eq. 3.3 / §1.1).

    Multi-dimensional inputs get the powers of each coordinate separately (no cross terms).

    Args:
        x: ``(n_samples,)`` or ``(n_samples, n_dims)`` inputs.
        degree: highest power ``M >= 0``.

    Returns:
        ``X: (n_samples, 1 + n_dims * degree)``; column 0 is the constant 1, then
        ``x_1..x_d``, then ``x_1^2..x_d^2`` and so on. For 1-D input that is ``degree + 1``
        columns ``1, x, x^2, ..., x^M``.

    References:
        Bishop, PRML (2006), §1.1 and §3.1.
    """
    degree = check_int(degree, "degree", min_value=0)
    return _polynomial_impl(_inputs(x), degree)


def gaussian(x: ArrayLike, centres: ArrayLike, width: float, *, bias: bool = False
             ) -> jax.Array:
    """Gaussian radial basis ``phi_j(x) = exp(-||x - mu_j||^2 / (2 s^2))`` (PRML eq. 3.4).

    Args:
        x: ``(n_samples,)`` or ``(n_samples, n_dims)`` inputs.
        centres: ``(n_centres,)`` (1-D inputs) or ``(n_centres, n_dims)`` centres ``mu_j``.
        width: spatial scale ``s > 0`` (Euclidean distance).
        bias: prepend a constant column ``phi_0 = 1``.

    Returns:
        ``X: (n_samples, n_centres + bias)``.

    References:
        Bishop, PRML (2006), §3.1, eq. 3.4.
    """
    x = _inputs(x)
    c = _centres(centres, x.shape[1])
    w = as_positive_array(width, "width", ndim=0).astype(x.dtype)
    return _gaussian_impl(x, c, w, _bias_flag(bias))


def sigmoid(x: ArrayLike, centres: ArrayLike, width: float, *, bias: bool = False
            ) -> jax.Array:
    """Logistic-sigmoid basis ``phi_j(x) = sigma((x - mu_j) / s)`` for 1-D inputs (PRML 3.5).

    Args:
        x: ``(n_samples,)`` or ``(n_samples, 1)`` inputs.
        centres: ``(n_centres,)`` locations ``mu_j``.
        width: scale ``s > 0``.
        bias: prepend a constant column ``phi_0 = 1``.

    Returns:
        ``X: (n_samples, n_centres + bias)``.

    References:
        Bishop, PRML (2006), §3.1, eqs. 3.5-3.6.
    """
    x = _inputs(x)
    if x.shape[1] != 1:
        raise ValueError(f"x must be 1-D (n_samples,) for the sigmoid basis, got shape "
                         f"{tuple(x.shape)}")
    c = _centres(centres, 1)
    w = as_positive_array(width, "width", ndim=0).astype(x.dtype)
    return _sigmoid_impl(x, c, w, _bias_flag(bias))


def design_matrix(x: ArrayLike, basis: str = "polynomial", *, degree: int | None = None,
                  centres: ArrayLike | None = None, width: float | None = None,
                  bias: bool = False) -> jax.Array:
    """Design matrix ``X[n, j] = phi_j(x_n)`` for a named basis (PRML eq. 3.16).

    Args:
        x: ``(n_samples,)`` or ``(n_samples, n_dims)`` inputs.
        basis: ``"polynomial"`` (needs ``degree``), ``"gaussian"`` or ``"sigmoid"`` (need
            ``centres`` and ``width``; ``bias`` adds the constant column).
        degree: polynomial degree ``M``.
        centres: basis centres, see :func:`gaussian` / :func:`sigmoid`.
        width: basis width ``s``.
        bias: constant column for the Gaussian and sigmoid bases (the polynomial basis always
            has one).

    Returns:
        ``X: (n_samples, n_basis)``.

    Raises:
        ValueError: unknown basis, or a missing / superfluous argument for it.

    References:
        Bishop, PRML (2006), §3.1.
    """
    check_choice(basis, "basis", BASES)
    if basis == "polynomial":
        if degree is None:
            raise ValueError("degree is required for the polynomial basis")
        if centres is not None or width is not None:
            raise ValueError("centres and width are not used by the polynomial basis")
        return polynomial(x, degree)
    if centres is None or width is None:
        raise ValueError(f"centres and width are required for the {basis} basis")
    if degree is not None:
        raise ValueError(f"degree is not used by the {basis} basis")
    fn = gaussian if basis == "gaussian" else sigmoid
    return fn(x, centres, width, bias=bias)
