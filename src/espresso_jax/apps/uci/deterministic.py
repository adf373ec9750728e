"""A deterministic network (MAP weights, one Gaussian per input) as a
:class:`~espresso_jax.apps.uci.method.UCIMethod` for the UCI regression protocol: the
no-uncertainty-over-weights baseline of the leaderboard (:mod:`espresso_jax.apps.leaderboard`).

Network: :class:`espresso_jax.bnn.dropout.DropoutMLP` with one hidden layer, always called with
``deterministic=True`` (no dropout). Loss: the MAP objective of a Gaussian likelihood with noise
precision ``tau`` and a Gaussian weight prior, divided by ``N tau``: ``mean((y - f(x))^2) +
weight_decay(l, 0, N, tau) * kernel_l2(params)`` (:func:`espresso_jax.bnn.dropout.weight_decay`
at rate 0, the decay MC dropout uses, so the two differ only by the dropout). Grid: the data
folder's tau values (noise precisions in original units, standardised as ``tau * y_std^2``);
the validation log-likelihood picks ``tau``. Predict: ``T = 1`` mean with precision ``tau``
(``n_samples`` is ignored: every pass would be the same), i.e. one Gaussian per test input.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.apps.uci.method import UCIMethod
from espresso_jax.bnn import dropout
from espresso_jax.datasets.uci import UCIDataset
from espresso_jax.validation import check_positive, float_dtype

__all__ = ["DeterministicHParams", "deterministic_method"]


class DeterministicHParams(NamedTuple):
    """One grid point: the noise precision ``tau``."""

    tau: jax.Array


def _init(key, n_features, n_hidden):
    module = dropout.DropoutMLP(hidden=(n_hidden,), n_outputs=1)
    return module.init(key, jnp.zeros((1, n_features), float_dtype()), 0.0, deterministic=True)


def _forward(params, X) -> jax.Array:
    module = dropout.DropoutMLP.from_params(params)
    out = cast(jax.Array, module.apply(params, X, 0.0, deterministic=True))
    return out[..., 0]


def _loss(params, batch, key, hparams, n_train, *, length_scale):
    del key  # deterministic
    X, y = batch
    pred = _forward(params, X)
    decay = dropout.weight_decay(length_scale, 0.0, n_train, hparams.tau).astype(pred.dtype)
    return jnp.mean((y - pred) ** 2) + decay * dropout.kernel_l2(params)


def _predict(key, params, X, hparams, n_samples):
    del key, n_samples  # one Gaussian per input
    means = _forward(params, X)[None, :]
    return means, jnp.asarray(hparams.tau, means.dtype)


def _grid(ds: UCIDataset) -> DeterministicHParams:
    return DeterministicHParams(tau=jnp.asarray(np.asarray(ds.tau_values), float_dtype()))


def _standardize(hparams: DeterministicHParams, y_std: jax.Array) -> DeterministicHParams:
    return hparams._replace(tau=hparams.tau * y_std ** 2)


@functools.lru_cache(maxsize=16)
def deterministic_method(length_scale: float = 1e-2) -> UCIMethod:
    """The MAP network with a noise-precision grid (see the module docstring).

    Args:
        length_scale: prior length-scale ``l`` of the weight decay (Gal's UCI code: 1e-2).

    The same arguments return the same object, so jitted protocol calls are not recompiled.
    """
    length_scale = check_positive(length_scale, "length_scale")
    return UCIMethod(
        name="deterministic",
        init=_init,
        loss=functools.partial(_loss, length_scale=length_scale),
        predict=_predict,
        grid=_grid,
        standardize=_standardize,
    )
