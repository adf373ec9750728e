"""MC dropout (Gal & Ghahramani 2016) as a :class:`~espresso_jax.apps.uci.method.UCIMethod`
for the UCI regression protocol.

Network: :class:`espresso_jax.bnn.dropout.DropoutMLP` with one hidden layer; loss:
:func:`espresso_jax.bnn.dropout.regression_loss`; grid: the data folder's dropout rates x tau
values (Gal's, noise precisions in original units, standardised as ``tau * y_std^2``: see the
units note of :mod:`espresso_jax.apps.uci.protocol`); predict: ``T`` dropout passes with
precision ``tau``.

References:
    Y. Gal and Z. Ghahramani. Dropout as a Bayesian approximation: representing model
    uncertainty in deep learning. ICML 2016.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.apps.uci.method import UCIMethod
from espresso_jax.bnn import dropout
from espresso_jax.datasets.uci import UCIDataset
from espresso_jax.validation import check_int, check_positive, float_dtype

__all__ = ["DropoutHParams", "dropout_method"]


class DropoutHParams(NamedTuple):
    """One MC-dropout grid point: dropout ``rate`` and model precision ``tau``."""

    rate: jax.Array
    tau: jax.Array


def _dropout_init(key, n_features, n_hidden):
    module = dropout.DropoutMLP(hidden=(n_hidden,), n_outputs=1)
    x = jnp.zeros((1, n_features), float_dtype())
    return module.init(key, x, 0.0, deterministic=True)


def _dropout_loss(params, batch, key, hparams, n_train, *, length_scale):
    return dropout.regression_loss(params, batch, key, rate=hparams.rate, tau=hparams.tau,
                                   n_train=n_train, length_scale=length_scale)


def _dropout_predict(key, params, X, hparams, n_samples, *, chunk_size):
    means = dropout.mc_passes(key, params, X, hparams.rate, n_samples, chunk_size)[..., 0]
    return means, jnp.asarray(hparams.tau, means.dtype)


def _dropout_grid(ds: UCIDataset) -> DropoutHParams:
    rates, taus = np.meshgrid(ds.dropout_rates, ds.tau_values, indexing="ij")
    dtype = float_dtype()
    return DropoutHParams(rate=jnp.asarray(rates.ravel(), dtype),
                          tau=jnp.asarray(taus.ravel(), dtype))


def _dropout_standardize(hparams: DropoutHParams, y_std: jax.Array) -> DropoutHParams:
    return hparams._replace(tau=hparams.tau * y_std ** 2)


@functools.lru_cache(maxsize=16)
def dropout_method(length_scale: float = 1e-2, chunk_size: int = 256) -> UCIMethod:
    """MC dropout (Gal & Ghahramani 2016) as a :class:`UCIMethod`.

    Network: :class:`espresso_jax.bnn.dropout.DropoutMLP` with one hidden layer; loss:
    :func:`espresso_jax.bnn.dropout.regression_loss` (MSE + ``l^2 (1-p) / (2 N tau)`` times
    the squared kernels); grid: dropout rates x tau values of the data folder (rate-major);
    predict: ``T`` dropout passes with precision ``tau``.

    Args:
        length_scale: prior length-scale ``l`` (Gal's UCI code: 1e-2).
        chunk_size: MC passes per vmapped chunk in prediction (memory bound).

    The same arguments return the same object, so jitted protocol calls are not recompiled.
    """
    length_scale = check_positive(length_scale, "length_scale")
    chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
    return UCIMethod(
        name="mc_dropout",
        init=_dropout_init,
        loss=functools.partial(_dropout_loss, length_scale=length_scale),
        predict=functools.partial(_dropout_predict, chunk_size=chunk_size),
        grid=_dropout_grid,
        standardize=_dropout_standardize,
    )
