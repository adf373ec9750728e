"""Generalised Gauss-Newton (GGN) curvature of a dense MLP's negative log-likelihood: full,
diagonal and Kronecker-factored (KFAC), for regression and classification.

With per-example output Jacobians ``J_n = ∂f(x_n)/∂θ (C, P)`` and the Hessian of the negative
log-likelihood in the outputs ``Λ_n (C, C)``, the GGN is ``Σ_n J_nᵀ Λ_n J_n`` (P, P):

* ``"regression"``: Gaussian likelihood ``N(y | f, β⁻¹ I)``, ``Λ = β I``;
* ``"classification"``: softmax / categorical, ``Λ = diag(p) − p pᵀ``;
* ``"binary"``: one logit, Bernoulli, ``Λ = p (1 − p)``.

KFAC (Martens & Grosse 2015; Ritter et al. 2018) approximates the block of layer ``l``,
parameters ``[W; b]`` flattened row-major, by ``N · A_l ⊗ G_l`` with the layer-wise
expectations ``A_l = E_n[ã ãᵀ]`` (``ã = [a, 1]`` the layer input with a one appended) and
``G_l = E_n[J_sᵀ Λ J_s]`` (``J_s = ∂f/∂s_l (C, d_out)`` the Jacobian of the output in the
layer's pre-activation). Memory: the full and diagonal GGN form all ``n · C · P`` Jacobian
entries at once.

KFAC and laplace-torch: laplace-torch 0.3 (curvlinops, ``separate_weight_and_bias=True``)
splits each layer into a weight block ``N E[a aᵀ] ⊗ G`` and a bias block ``N G``; the single
block over ``[W; b]`` used here has the same two diagonal blocks plus the weight–bias cross
block ``N E[a] ⊗ G`` (Martens & Grosse's homogeneous coordinates). Both add the prior
precision to the products of the factors' eigenvalues, so the only difference is that cross
block: e.g. the log marginal likelihoods −70.35 (here) and −70.82 (laplace-torch) on the
small regression net of ``tests/test_bnn_laplace_torch.py``, where the full GGN gives −66.10.
That test rebuilds laplace-torch's values from these factors without the cross block.

References:
    Martens & Grosse, "Optimizing neural networks with Kronecker-factored approximate
    curvature", ICML 2015. Ritter, Botev & Barber, "A scalable Laplace approximation for
    neural networks", ICLR 2018. Daxberger et al., "Laplace Redux", NeurIPS 2021.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from espresso_jax.bnn.laplace.network import ACTIVATIONS, mlp_apply, mlp_trace

__all__ = ["LIKELIHOODS", "STRUCTURES", "FullCurvature", "DiagCurvature", "KronCurvature",
           "output_hessian", "log_likelihood", "jacobians", "ggn_full", "ggn_diag", "ggn_kfac",
           "curvature", "largest_ggn_eigenvalue"]

#: Likelihood names (see the module docstring).
LIKELIHOODS = ("regression", "classification", "binary")
#: GGN structures: full matrix, its diagonal, Kronecker factors per layer.
STRUCTURES = ("full", "diag", "kron")


class FullCurvature(NamedTuple):
    """Full GGN. ``ggn``: ``(P, P)``."""

    ggn: jax.Array


class DiagCurvature(NamedTuple):
    """Diagonal of the GGN. ``ggn``: ``(P,)``."""

    ggn: jax.Array


class KronCurvature(NamedTuple):
    """KFAC factors: layer ``l``'s GGN block is ``n_data · A[l] ⊗ G[l]``.

    Attributes:
        A: per layer ``(d_in + 1, d_in + 1)`` ``E[ã ãᵀ]``.
        G: per layer ``(d_out, d_out)`` ``E[J_sᵀ Λ J_s]``.
        n_data: ``()`` number of training rows ``N``.
    """

    A: tuple[jax.Array, ...]
    G: tuple[jax.Array, ...]
    n_data: jax.Array


def output_hessian(f: jax.Array, likelihood: str, noise_precision) -> jax.Array:
    """``Λ (n, C, C)``: Hessian of the negative log-likelihood in the outputs ``f (n, C)``."""
    n, C = f.shape
    if likelihood == "regression":
        eye = jnp.eye(C, dtype=f.dtype)
        return jnp.broadcast_to(noise_precision * eye, (n, C, C))
    if likelihood == "classification":
        p = jax.nn.softmax(f, axis=-1)
        return jax.vmap(jnp.diag)(p) - p[:, :, None] * p[:, None, :]
    p = jax.nn.sigmoid(f)
    return (p * jax.nn.sigmoid(-f))[:, :, None]


def log_likelihood(f: jax.Array, y: jax.Array, likelihood: str, noise_precision) -> jax.Array:
    """``Σ_n ln p(y_n | f_n)`` for outputs ``f (n, C)``.

    ``y``: regression ``(n, C)`` targets; classification ``(n,)`` integer labels; binary
    ``(n,)`` labels in {0, 1}.
    """
    if likelihood == "regression":
        r = y.reshape(f.shape) - f
        beta = jnp.asarray(noise_precision, f.dtype)
        return (-0.5 * beta * jnp.sum(r * r)
                + 0.5 * f.size * (jnp.log(beta) - math.log(2 * math.pi)))
    if likelihood == "classification":
        logp = jax.nn.log_softmax(f, axis=-1)
        return jnp.sum(jnp.take_along_axis(logp, y.astype(jnp.int32)[:, None], axis=1))
    a = f[:, 0]
    return jnp.sum(y * jax.nn.log_sigmoid(a) + (1 - y) * jax.nn.log_sigmoid(-a))


def jacobians(params, X: jax.Array, activation: str) -> tuple[jax.Array, jax.Array]:
    """Outputs ``f (n, C)`` and per-example Jacobians ``J (n, C, P)`` in the flattened
    parameters (:func:`jax.flatten_util.ravel_pytree` order)."""
    flat, unravel = ravel_pytree(params)

    def f_flat(theta, x):
        return mlp_apply(unravel(theta), x[None, :], activation)[0]

    J = jax.vmap(jax.jacrev(f_flat), in_axes=(None, 0))(flat, X)
    return mlp_apply(params, X, activation), J


def ggn_full(J: jax.Array, lam: jax.Array) -> FullCurvature:
    """``Σ_n J_nᵀ Λ_n J_n`` from ``J (n, C, P)`` and ``Λ (n, C, C)``."""
    H = jnp.einsum("ncp,ncd,ndq->pq", J, lam, J, precision=jax.lax.Precision.HIGHEST)
    return FullCurvature(0.5 * (H + H.T))


def ggn_diag(J: jax.Array, lam: jax.Array) -> DiagCurvature:
    """Diagonal of ``Σ_n J_nᵀ Λ_n J_n`` (never forms the ``(P, P)`` matrix)."""
    LJ = jnp.einsum("ncd,ndp->ncp", lam, J, precision=jax.lax.Precision.HIGHEST)
    return DiagCurvature(jnp.sum(J * LJ, axis=(0, 1)))


def _pre_activation_jacobians(params, X, activation):
    """Per layer ``∂f/∂s_l (n, C, d_out_l)``: the output's Jacobian in each pre-activation."""
    _, pre = mlp_trace(params, X, activation)
    shifts0 = [jnp.zeros(s.shape[1:], s.dtype) for s in pre]

    def f_shifted(shifts, x):
        act = ACTIVATIONS[activation]
        a = x
        for i, ((W, b), d) in enumerate(zip(params, shifts, strict=True)):
            s = a @ W + b + d          # one example: 1-D
            a = act(s) if i + 1 < len(params) else s
        return a

    return jax.vmap(jax.jacrev(f_shifted), in_axes=(None, 0))(shifts0, X)


def ggn_kfac(params, X: jax.Array, lam: jax.Array, activation: str) -> KronCurvature:
    """KFAC factors ``A_l = E[ã ãᵀ]``, ``G_l = E[J_sᵀ Λ J_s]`` (see the module docstring)."""
    n = X.shape[0]
    inputs, _ = mlp_trace(params, X, activation)
    Js = _pre_activation_jacobians(params, X, activation)
    hi = jax.lax.Precision.HIGHEST
    A, G = [], []
    for a, Jl in zip(inputs, Js, strict=True):
        at = jnp.concatenate([a, jnp.ones((n, 1), a.dtype)], axis=1)
        A.append(jnp.matmul(at.T, at, precision=hi) / n)
        G.append(jnp.einsum("nco,ncd,ndq->oq", Jl, lam, Jl, precision=hi) / n)
    return KronCurvature(tuple(A), tuple(G), jnp.asarray(n, X.dtype))


def curvature(params, X: jax.Array, y: jax.Array, *, likelihood: str, structure: str,
              activation: str = "tanh", noise_precision=1.0):
    """GGN of ``−ln p(y | f(X; θ))`` at ``params`` and the log-likelihood there. Traceable
    (no input checks: :func:`espresso_jax.bnn.laplace.posterior.fit_laplace` validates).

    Args:
        params: MLP layers ``(W, b)`` (:mod:`espresso_jax.bnn.laplace.network`).
        X: ``(n, d_in)`` inputs.
        y: targets (see :func:`log_likelihood`).
        likelihood: one of :data:`LIKELIHOODS`.
        structure: one of :data:`STRUCTURES`.
        activation: hidden-layer activation name.
        noise_precision: ``β`` of the Gaussian likelihood (regression only).

    Returns:
        ``(curvature, log_lik ())``: a :class:`FullCurvature`, :class:`DiagCurvature` or
        :class:`KronCurvature`.
    """
    f = mlp_apply(params, X, activation)
    lam = output_hessian(f, likelihood, noise_precision)
    log_lik = log_likelihood(f, y, likelihood, noise_precision)
    if structure == "kron":
        return ggn_kfac(params, X, lam, activation), log_lik
    _, J = jacobians(params, X, activation)
    if structure == "full":
        return ggn_full(J, lam), log_lik
    return ggn_diag(J, lam), log_lik


def largest_ggn_eigenvalue(apply_fn, params, X: jax.Array, *, n_iter: int = 50) -> jax.Array:
    """Largest eigenvalue of ``(1/n) Σ_n J_nᵀ J_n``, the GGN of the per-row squared error
    ``(1/2n) Σ_n ‖y_n − f(x_n)‖²``, by ``n_iter`` power iterations with one JVP and one VJP
    each (matrix-free: no Jacobian is formed). Traceable, vmappable.

    Args:
        apply_fn: ``(params, X (n, d)) -> (n, ...)`` network outputs.
        params: parameter pytree.
        X: ``(n, d)`` inputs.
        n_iter: power iterations (static), from the all-ones direction.

    Returns:
        ``()`` the estimate ``‖G v‖`` for the last unit vector ``v`` (a lower bound that
        converges to the largest eigenvalue at the rate of the two largest's ratio).
    """
    def f(p):
        return apply_fn(p, X)

    flat, unravel = ravel_pytree(params)
    _, vjp = jax.vjp(f, params)
    n = X.shape[0]

    def ggn_vec(v):
        _, jv = jax.jvp(f, (params,), (unravel(v),))
        return ravel_pytree(vjp(jv)[0])[0] / n

    def body(_, v):
        w = ggn_vec(v)
        return w / jnp.linalg.norm(w)

    v0 = jnp.ones_like(flat) / math.sqrt(flat.size)
    v = jax.lax.fori_loop(0, n_iter, body, v0)
    return jnp.linalg.norm(ggn_vec(v))
