"""The Laplace posterior of a dense MLP: ``q(θ) = N(θ_MAP, (GGN + P₀)⁻¹)`` with the prior
``N(0, P₀⁻¹)``, ``P₀ = diag(δ)`` (one prior precision ``δ`` for every weight, or one per
weight), over all weights or the last layer only.

Per curvature structure (:mod:`espresso_jax.bnn.laplace.curvature`) this module holds the log
determinant of the posterior precision, the posterior quadratic form ``J Σ Jᵀ`` that the
linearised predictive needs, and weight sampling:

* full: Cholesky of ``GGN + diag(δ)``;
* diagonal: ``GGN_pp + δ_p``;
* KFAC: per layer the eigendecompositions ``A = U_A diag(a) U_Aᵀ``, ``G = U_G diag(g) U_Gᵀ``,
  so ``N A ⊗ G + δ I = (U_A ⊗ U_G) diag(N a_i g_j + δ) (U_A ⊗ U_G)ᵀ`` (scalar ``δ`` only).

References:
    MacKay, "A practical Bayesian framework for backpropagation networks", Neural
    Computation 4(3), 1992. Daxberger et al., "Laplace Redux", NeurIPS 2021.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import solve_triangular

from espresso_jax.bnn.laplace import curvature as C
from espresso_jax.bnn.laplace.network import Layer, check_mlp, split_last_layer
from espresso_jax.validation import (
    as_float_array,
    as_positive_array,
    check_choice,
    check_same_length,
    is_traced,
)

__all__ = ["LaplaceFit", "fit_laplace", "laplace_fit", "network_of", "check_prior_precision",
           "log_det_precision", "quadratic_form", "sample_weights"]

_HI = jax.lax.Precision.HIGHEST


class LaplaceFit(NamedTuple):
    """A fitted Laplace approximation (the prior precision is an argument of what uses it).

    Attributes:
        params: the trained network, layers ``(W, b)``.
        mean: ``(P,)`` the MAP weights the posterior covers, flattened: all of ``params``, or
            the last layer (then ``P`` is less than the size of ``params``).
        curvature: :class:`~espresso_jax.bnn.laplace.curvature.FullCurvature`,
            ``DiagCurvature`` or ``KronCurvature`` of the negative log-likelihood at ``mean``.
        log_lik: ``()`` ``ln p(y | θ_MAP)`` on the training rows.
        noise_precision: ``()`` ``β`` of the Gaussian likelihood (1 for classification).
    """

    params: tuple[Layer, ...]
    mean: jax.Array
    curvature: Any
    log_lik: jax.Array
    noise_precision: jax.Array


def network_of(fit: LaplaceFit, X: jax.Array, activation: str
               ) -> tuple[tuple[Layer, ...], jax.Array, str]:
    """The network the posterior covers and its inputs: ``(params, X, activation)`` for the
    full network, ``((W_L, b_L), features, "identity")`` for the last layer."""
    n_all = ravel_pytree(fit.params)[0].shape[0]
    if fit.mean.shape[0] == n_all:
        return fit.params, X, activation
    features, last = split_last_layer(fit.params, X, activation)
    return last, features, "identity"


def laplace_fit(params, X, y, *, likelihood: str, structure: str, subset: str = "all",
                activation: str = "tanh", noise_precision=1.0) -> LaplaceFit:
    """:func:`fit_laplace` without input checks: traceable (e.g. inside a jitted training
    call)."""
    net, Xs, act = params, X, activation
    if subset == "last_layer":
        Xs, net = split_last_layer(params, X, activation)
        act = "identity"
    beta = jnp.asarray(noise_precision if likelihood == "regression" else 1.0, X.dtype)
    curv, log_lik = C.curvature(net, Xs, y, likelihood=likelihood, structure=structure,
                                activation=act, noise_precision=beta)
    return LaplaceFit(params=params, mean=ravel_pytree(net)[0], curvature=curv,
                      log_lik=log_lik, noise_precision=beta)


_fit_jit = jax.jit(laplace_fit, static_argnames=("likelihood", "structure", "subset",
                                                 "activation"))


def fit_laplace(params, X, y, *, likelihood: str, structure: str = "full",
                subset: str = "all", activation: str = "tanh",
                noise_precision: float = 1.0) -> LaplaceFit:
    """Laplace approximation around trained MLP weights (GGN curvature).

    Args:
        params: MAP weights, layers ``(W (d_in, d_out), b (d_out,))``.
        X: ``(n, d_in)`` training inputs.
        y: regression ``(n,)`` or ``(n, C)`` targets; classification ``(n,)`` integer labels
            in ``[0, C)``; binary ``(n,)`` labels in {0, 1}.
        likelihood: ``"regression"``, ``"classification"`` or ``"binary"``.
        structure: ``"full"``, ``"diag"`` or ``"kron"`` (KFAC).
        subset: ``"all"`` weights or the ``"last_layer"``.
        activation: hidden-layer activation, a key of
            :data:`~espresso_jax.bnn.laplace.network.ACTIVATIONS`.
        noise_precision: ``β > 0`` of the Gaussian likelihood (regression).

    Returns:
        :class:`LaplaceFit`.

    Raises:
        ValueError: an unknown option, malformed ``params``, or data that disagree with it.
    """
    check_choice(likelihood, "likelihood", C.LIKELIHOODS)
    check_choice(structure, "structure", C.STRUCTURES)
    check_choice(subset, "subset", ("all", "last_layer"))
    params = check_mlp(params, activation)
    d_in, d_out = params[0][0].shape[0], params[-1][0].shape[1]
    X = as_float_array(X, "X", ndim=2, shape_hint="(n, d_in)", n_columns=d_in)
    if likelihood == "regression":
        y = as_float_array(y, "y", ndim=(1, 2), shape_hint="(n,) or (n, d_out)")
        if y.size != X.shape[0] * d_out:
            raise ValueError(f"y must hold one target per output ({d_out}) and row of X, got "
                             f"shape {tuple(y.shape)}")
    else:
        y = jnp.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be (n,) labels, got shape {tuple(y.shape)}")
        n_cls = 2 if likelihood == "binary" else d_out
        if likelihood == "binary" and d_out != 1:
            raise ValueError(f"params must have one output for likelihood='binary', got {d_out}")
        if not is_traced(y) and (bool(jnp.any(y < 0)) or bool(jnp.any(y >= n_cls))
                                 or bool(jnp.any(y != jnp.round(y)))):
            raise ValueError(f"y must hold integer labels in [0, {n_cls})")
        y = y.astype(X.dtype) if likelihood == "binary" else y.astype(jnp.int32)
    check_same_length(X=X, y=y)
    beta = as_positive_array(noise_precision, "noise_precision", ndim=0)
    params = jax.tree.map(lambda a: jnp.asarray(a, X.dtype), params)
    return _fit_jit(params, X, y, likelihood=likelihood, structure=structure, subset=subset,
                    activation=activation, noise_precision=beta.astype(X.dtype))


def check_prior_precision(prior_precision, fit: LaplaceFit, name: str = "prior_precision"
                          ) -> jax.Array:
    """Validate ``δ``: ``()`` or ``(P,)`` (full / diagonal curvature), ``()`` for KFAC."""
    ndim = 0 if isinstance(fit.curvature, C.KronCurvature) else (0, 1)
    delta = as_positive_array(prior_precision, name, ndim=ndim, shape_hint="() or (P,)")
    if delta.ndim == 1 and delta.shape[0] != fit.mean.shape[0]:
        raise ValueError(f"{name} must be a scalar or have shape ({fit.mean.shape[0]},), got "
                         f"{tuple(delta.shape)}")
    return delta.astype(fit.mean.dtype)


def _full_chol(curv, delta):
    P = curv.ggn + jnp.diag(jnp.broadcast_to(delta, curv.ggn.shape[:1]))
    return jnp.linalg.cholesky(0.5 * (P + P.T))


def _kron_eigen(curv):
    out = []
    for A, G in zip(curv.A, curv.G, strict=True):
        a, UA = jnp.linalg.eigh(A)
        g, UG = jnp.linalg.eigh(G)
        lam = curv.n_data * jnp.clip(a, 0.0)[:, None] * jnp.clip(g, 0.0)[None, :]
        out.append((UA, UG, lam))
    return out


def log_det_precision(curv, prior_precision) -> jax.Array:
    """``ln |GGN + diag(δ)|`` for any structure (``δ`` scalar or ``(P,)``)."""
    if isinstance(curv, C.FullCurvature):
        return 2 * jnp.sum(jnp.log(jnp.diag(_full_chol(curv, prior_precision))))
    if isinstance(curv, C.DiagCurvature):
        return jnp.sum(jnp.log(curv.ggn + prior_precision))
    terms = [jnp.sum(jnp.log(lam + prior_precision)) for _, _, lam in _kron_eigen(curv)]
    return jnp.sum(jnp.stack(terms))


def _layer_blocks(curv):
    sizes = [A.shape[0] * G.shape[0] for A, G in zip(curv.A, curv.G, strict=True)]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return starts, [s + size for s, size in zip(starts, sizes, strict=True)]


def quadratic_form(curv, prior_precision, J: jax.Array) -> jax.Array:
    """``J Σ Jᵀ`` with ``Σ = (GGN + diag(δ))⁻¹``: ``J (n, C, P)`` → ``(n, C, C)``."""
    if isinstance(curv, C.FullCurvature):
        L = _full_chol(curv, prior_precision)
        n, c, p = J.shape
        V = solve_triangular(L, J.reshape(n * c, p).T, lower=True).T.reshape(n, c, p)
        return jnp.einsum("ncp,ndp->ncd", V, V, precision=_HI)
    if isinstance(curv, C.DiagCurvature):
        return jnp.einsum("ncp,ndp->ncd", J / (curv.ggn + prior_precision)[None, None, :], J,
                          precision=_HI)
    starts, ends = _layer_blocks(curv)
    blocks = []
    for (UA, UG, lam), s, e in zip(_kron_eigen(curv), starts, ends, strict=True):
        Jl = J[:, :, s:e].reshape(J.shape[:2] + lam.shape)
        Jt = jnp.einsum("ai,ncab,bj->ncij", UA, Jl, UG, precision=_HI)
        blocks.append(jnp.einsum("ncij,ndij->ncd", Jt / (lam + prior_precision)[None, None], Jt,
                                 precision=_HI))
    return jnp.sum(jnp.stack(blocks), axis=0)


@partial(jax.jit, static_argnames=("n_samples",))
def sample_weights(key: jax.Array, fit: LaplaceFit, prior_precision, n_samples: int
                   ) -> jax.Array:
    """Draws ``θ ~ N(mean, (GGN + diag(δ))⁻¹)``: ``(n_samples, P)`` (traceable; vmappable over
    keys)."""
    curv, mean = fit.curvature, fit.mean
    z = jax.random.normal(key, (n_samples, mean.shape[0]), mean.dtype)
    if isinstance(curv, C.FullCurvature):
        L = _full_chol(curv, prior_precision)
        return mean[None, :] + solve_triangular(L.T, z.T, lower=False).T    # cov = L⁻ᵀ L⁻¹
    if isinstance(curv, C.DiagCurvature):
        return mean[None, :] + z / jnp.sqrt(curv.ggn + prior_precision)[None, :]
    starts, ends = _layer_blocks(curv)
    parts = []
    for (UA, UG, lam), s, e in zip(_kron_eigen(curv), starts, ends, strict=True):
        zl = z[:, s:e].reshape((n_samples,) + lam.shape) / jnp.sqrt(lam + prior_precision)[None]
        parts.append(jnp.einsum("ai,sij,bj->sab", UA, zl, UG,
                                precision=_HI).reshape(n_samples, -1))
    return mean[None, :] + jnp.concatenate(parts, axis=1)
