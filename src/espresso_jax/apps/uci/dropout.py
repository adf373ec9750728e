"""MC dropout (Gal & Ghahramani 2016) as a :class:`~espresso_jax.apps.uci.method.UCIMethod`
for the UCI regression protocol.

Network: :class:`espresso_jax.bnn.dropout.DropoutMLP` with one hidden layer; loss:
:func:`espresso_jax.bnn.dropout.regression_loss`; grid: the data folder's dropout rates x tau
values (Gal's, noise precisions in original units, standardised as ``tau * y_std^2``: see the
units note of :mod:`espresso_jax.apps.uci.protocol`); predict: ``T`` dropout passes with
precision ``tau``.

Masks. Training and prediction run the network's stochastic pass as plain array code
(:func:`dropout_pass`, the same math as ``DropoutMLP.apply(..., deterministic=False)``) with the
masks of :func:`espresso_jax.prob.fast_draws.keep_masks` (a 32-bit hash word per entry
compared with ``round(rate * 2**32)``, fused by XLA into the masked multiply) instead of a
float32 uniform per entry: the same independent Bernoulli masks from another random stream,
at a fraction of the CPU cost on the protocol's 240-network grid (``benchmarks/RESULTS.md``).

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

from espresso_jax.apps.uci.method import PyTree, UCIMethod
from espresso_jax.bnn import dropout
from espresso_jax.datasets.uci import UCIDataset
from espresso_jax.prob import fast_draws
from espresso_jax.validation import check_int, check_positive, float_dtype

__all__ = ["DropoutHParams", "dropout_method", "dropout_pass", "dropout_step_noise"]


class DropoutHParams(NamedTuple):
    """One MC-dropout grid point: dropout ``rate`` and model precision ``tau``."""

    rate: jax.Array
    tau: jax.Array


def _dropout_init(key, n_features, n_hidden):
    module = dropout.DropoutMLP(hidden=(n_hidden,), n_outputs=1)
    x = jnp.zeros((1, n_features), float_dtype())
    return module.init(key, x, 0.0, deterministic=True)


def dropout_pass(key: jax.Array, params: PyTree, X: jax.Array, rate: jax.Array) -> jax.Array:
    """One stochastic pass of a :class:`~espresso_jax.bnn.dropout.DropoutMLP` (input dropout,
    ReLU hidden layers each followed by dropout, linear head) with
    :func:`~espresso_jax.prob.fast_draws.keep_masks` masks, one mask row per input row.

    Args:
        key: mask key, or the masks' words drawn in advance: the ``(m, sum of the layers'
            input widths)`` ``uint32`` array ``fast_draws.mask_words(key, ...)`` (the same
            pass; see :func:`dropout_step_noise`).
        params: DropoutMLP variables (``dense_0 ... dense_L``).
        X: ``(m, d)`` inputs. rate: dropout rate (scalar, may be traced).

    Returns:
        ``(m, n_outputs)`` outputs.

    Raises:
        ValueError: pre-drawn words of the wrong shape.
    """
    layers = params["params"]
    n_layers = len(layers)
    dense = [layers[f"dense_{i}"] for i in range(n_layers)]
    widths = [int(layer["kernel"].shape[0]) for layer in dense]
    shape = (X.shape[0], sum(widths))
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.ndim < 2:  # a key
        words = fast_draws.mask_words(key, shape)
    elif tuple(key.shape) != shape or key.dtype != jnp.uint32:
        raise ValueError(f"pre-drawn mask words must be {shape} uint32 (rows x summed input "
                         f"widths), got {tuple(key.shape)} {key.dtype}")
    else:
        words = key
    masks = fast_draws.masks_from_words(words, rate, X.dtype)
    offsets = np.cumsum((0, *widths))
    h = X
    for i, layer in enumerate(dense):
        h = (h * masks[:, offsets[i]:offsets[i + 1]]) @ layer["kernel"] + layer["bias"][None, :]
        if i < n_layers - 1:
            h = jax.nn.relu(h)
    return h


def dropout_step_noise(key: jax.Array, batch_size: int, n_features: int, n_hidden: int
                       ) -> jax.Array:
    """The mask words one training step of the one-hidden-layer network draws from its key,
    ``fast_draws.mask_words(key, (batch_size, n_features + n_hidden))`` (``uint32``): what
    :func:`dropout_pass` computes from the key, drawn in advance (the method's
    ``step_noise``)."""
    return fast_draws.mask_words(key, (batch_size, n_features + n_hidden))


def _dropout_loss(params, batch, key, hparams, n_train, *, length_scale):
    X, y = batch
    pred = dropout_pass(key, params, X, hparams.rate)[:, 0]
    decay = dropout.weight_decay(length_scale, hparams.rate, n_train,
                                 hparams.tau).astype(pred.dtype)
    return jnp.mean((y - pred) ** 2) + decay * dropout.kernel_l2(params)


def _dropout_predict(key, params, X, hparams, n_samples, *, chunk_size):
    def one(k):
        return dropout_pass(k, params, X, hparams.rate)[:, 0]

    keys = jax.random.split(key, n_samples)
    means = jax.lax.map(one, keys, batch_size=min(chunk_size, n_samples))
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

    Network: :class:`espresso_jax.bnn.dropout.DropoutMLP` with one hidden layer; loss: the
    objective of :func:`espresso_jax.bnn.dropout.regression_loss` (MSE + ``l^2 (1-p) / (2 N
    tau)`` times the squared kernels) on a :func:`dropout_pass`; grid: dropout rates x tau
    values of the data folder (rate-major); predict: ``T`` :func:`dropout_pass` passes with
    precision ``tau``.

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
        step_noise=dropout_step_noise,
    )
