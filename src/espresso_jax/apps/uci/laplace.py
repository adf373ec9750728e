"""Laplace approximation (last-layer or diagonal, GGN) as a
:class:`~espresso_jax.apps.uci.method.UCIMethod` for the UCI regression protocol.

Network: a one-hidden-layer MLP of :mod:`espresso_jax.bnn.laplace.network`; loss: the MAP
objective per training row, ``½ τ (y − f)² + δ₀ ‖θ‖² / (2 N)`` (Gaussian likelihood with the
grid's noise precision ``τ``, Gaussian prior of precision ``δ₀``); ``finalize``: the Laplace
posterior at the trained weights on the training rows (:func:`espresso_jax.bnn.laplace.
posterior.laplace_fit`) with the prior precision re-chosen by the Laplace marginal likelihood
over a vmapped log grid (:func:`espresso_jax.bnn.laplace.marglik.tune_prior_grid`);
``predict``: the linearised (GLM) predictive ``N(f_MAP, J Σ Jᵀ + 1/τ)`` (one Gaussian,
``T = 1``) or ``T`` networks with sampled weights and precision ``τ``. Grid: the data
folder's ``τ`` values (standardised as ``τ · y_std²``, as MC dropout's).

References:
    Daxberger et al., "Laplace Redux — effortless Bayesian deep learning", NeurIPS 2021.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.apps.uci.method import UCIMethod
from espresso_jax.bnn.laplace.marglik import tune_prior_grid
from espresso_jax.bnn.laplace.network import ACTIVATIONS, init_mlp, mlp_apply
from espresso_jax.bnn.laplace.posterior import LaplaceFit, laplace_fit
from espresso_jax.bnn.laplace.predictive import regression_predictive, sample_predictive
from espresso_jax.datasets.uci import UCIDataset
from espresso_jax.validation import check_choice, check_positive, float_dtype

__all__ = ["LaplaceHParams", "LaplaceState", "laplace_method"]


class LaplaceHParams(NamedTuple):
    """One grid point: the noise precision ``tau`` of the Gaussian likelihood."""

    tau: jax.Array


class LaplaceState(NamedTuple):
    """What ``finalize`` hands to ``predict``: the Laplace fit and its tuned ``δ ()``."""

    fit: LaplaceFit
    prior_precision: jax.Array


def _init(key, n_features, n_hidden):
    return init_mlp(key, (n_features, n_hidden, 1))


def _loss(params, batch, key, hparams, n_train, *, activation, prior_precision):
    del key
    X, y = batch
    r = y - mlp_apply(params, X, activation)[:, 0]
    sq = sum(jnp.sum(W * W) + jnp.sum(b * b) for W, b in params)
    return 0.5 * hparams.tau * jnp.mean(r * r) + 0.5 * prior_precision * sq / n_train


def _finalize(key, params, X, y, hparams, n_train, *, activation, structure, subset, grid):
    del key, n_train
    fit = laplace_fit(params, X, y, likelihood="regression", structure=structure,
                      subset=subset, activation=activation, noise_precision=hparams.tau)
    return LaplaceState(fit, tune_prior_grid(fit, grid).prior_precision)


def _predict(key, state, X, hparams, n_samples, *, activation, predictive):
    if predictive == "glm":
        mean, var = regression_predictive(state.fit, state.prior_precision, X, activation)
        return mean[:, 0][None, :], 1.0 / var[:, 0][None, :]
    out = sample_predictive(key, state.fit, state.prior_precision, X, activation, n_samples)
    return out[..., 0], jnp.asarray(hparams.tau, out.dtype)


def _grid(ds: UCIDataset) -> LaplaceHParams:
    return LaplaceHParams(tau=jnp.asarray(ds.tau_values, float_dtype()))


def _standardize(hparams: LaplaceHParams, y_std: jax.Array) -> LaplaceHParams:
    return hparams._replace(tau=hparams.tau * y_std ** 2)


@functools.lru_cache(maxsize=16)
def laplace_method(subset: str = "last_layer", structure: str = "full",
                   predictive: str = "glm", activation: str = "relu",
                   prior_precision: float = 1.0, grid_min: float = 1e-4,
                   grid_max: float = 1e4, grid_size: int = 41) -> UCIMethod:
    """Laplace approximation of a MAP-trained network as a :class:`UCIMethod`.

    Args:
        subset: ``"last_layer"`` or ``"all"`` weights.
        structure: GGN structure, ``"full"``, ``"diag"`` or ``"kron"`` (``"full"`` over all
            weights forms a ``(P, P)`` matrix: use it for small networks only).
        predictive: ``"glm"`` (linearised, one Gaussian) or ``"sample"`` (sampled weights).
        activation: hidden activation (ReLU, as the protocol's other networks).
        prior_precision: ``δ₀`` of the training loss's weight decay.
        grid_min, grid_max, grid_size: the log grid of prior precisions searched by the
            marginal likelihood in ``finalize``.

    The same arguments return the same object, so jitted protocol calls are not recompiled.
    """
    check_choice(subset, "subset", ("last_layer", "all"))
    check_choice(structure, "structure", ("full", "diag", "kron"))
    check_choice(predictive, "predictive", ("glm", "sample"))
    check_choice(activation, "activation", tuple(ACTIVATIONS))
    prior_precision = check_positive(prior_precision, "prior_precision")
    lo, hi = check_positive(grid_min, "grid_min"), check_positive(grid_max, "grid_max")
    if not lo < hi:
        raise ValueError(f"grid_min must be below grid_max, got {lo} and {hi}")
    if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 1:
        raise ValueError(f"grid_size must be a positive int, got {grid_size!r}")
    grid = tuple(np.geomspace(lo, hi, grid_size).tolist())
    return UCIMethod(
        name=f"laplace_{subset}_{structure}_{predictive}",
        init=_init,
        loss=functools.partial(_loss, activation=activation, prior_precision=prior_precision),
        predict=functools.partial(_predict, activation=activation, predictive=predictive),
        grid=_grid,
        standardize=_standardize,
        finalize=functools.partial(_finalize, activation=activation, structure=structure,
                                   subset=subset, grid=np.asarray(grid)),
    )
