"""Bayes by Backprop as a :class:`espresso_jax.apps.uci.protocol.UCIMethod` for the UCI regression
protocol (Hernández-Lobato & Adams 2015; Gal & Ghahramani 2016).

Network: :class:`espresso_jax.bnn.bbb.BayesMLP` with one hidden layer of ``n_hidden`` ReLU units
and a diagonal Gaussian posterior on every weight; prior ``N(0, s^2)`` (closed-form KL) with
the scale ``s`` a grid hyper-parameter. Likelihood: Gaussian with noise precision ``tau``,
either *learned* (a point estimate ``log sigma_noise`` trained with the weights, the default)
or *grid*-searched over the data folder's tau values (Gal's, original units).

Loss (the protocol's interface has no step index, so the KL re-weighting is uniform): per
minibatch of ``B`` rows out of ``N``, the negative ELBO per training point,
``KL(q || p) / N - (1 / B) sum_batch log N(y | f(x, w), 1 / tau)`` with ``n_train_samples``
weight samples ``w ~ q`` averaged (the ``normalize=True`` scale of
:class:`espresso_jax.bnn.bbb_elbo.ELBOLoss`: its epoch mean is the full-data negative ELBO over
``N``).

Prediction: ``T`` weight samples give ``T`` predictive means; the precision is the learned or
grid ``tau``; the protocol scores the equal-weight Gaussian mixture.

References:
    Blundell, Cornebise, Kavukcuoglu, Wierstra (2015). Weight Uncertainty in Neural Networks.
    ICML.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.apps.uci.protocol import UCIMethod
from espresso_jax.bnn import bbb
from espresso_jax.bnn.bbb_elbo import BBBParams
from espresso_jax.datasets.uci import UCIDataset
from espresso_jax.prob.gaussian import gaussian_log_density
from espresso_jax.validation import check_choice, check_int, check_positive, float_dtype

__all__ = ["BBBHParams", "bbb_method"]


class BBBHParams(NamedTuple):
    """One grid point: weight-prior std ``prior_scale`` and noise precision ``tau`` (ignored,
    set to 1, when the noise is learned)."""

    prior_scale: jax.Array
    tau: jax.Array


def _module(n_hidden: int, sigma_init: float) -> bbb.BayesMLP:
    return bbb.BayesMLP((n_hidden, 1), sigma_init=sigma_init)


def _init(key, n_features, n_hidden, *, sigma_init, noise_std_init):
    x = jnp.zeros((1, n_features), float_dtype())
    k_params, k_weights = jax.random.split(key)
    variables = _module(n_hidden, sigma_init).init(
        {"params": k_params, "weights": k_weights}, x)
    log_noise = jnp.asarray(math.log(noise_std_init), float_dtype())
    return BBBParams({"params": variables["params"]}, log_noise)


def _n_hidden(params: BBBParams) -> int:
    return params.net["params"]["dense_0"]["kernel_mu"].shape[-1]


def _log_noise(params: BBBParams, hparams: BBBHParams, learned: bool) -> jax.Array:
    if not learned:
        return -0.5 * jnp.log(hparams.tau)
    if params.log_noise_std is None:
        raise ValueError("a learned noise level needs params.log_noise_std")
    return params.log_noise_std


def _loss(params, batch, key, hparams, n_train, *, sigma_init, learned, n_train_samples):
    x, y = batch
    module = _module(_n_hidden(params), sigma_init)
    log_noise = _log_noise(params, hparams, learned)

    def data_term(k):
        out = bbb.apply(k, module, params.net, x)[0][:, 0]
        z = (y - out) * jnp.exp(-log_noise)
        return jnp.mean(gaussian_log_density(jnp.square(z), 2.0 * log_noise))

    ll = jnp.mean(jax.vmap(data_term)(jax.random.split(key, n_train_samples)))
    kl = bbb.gaussian_kl_tree(params.net, hparams.prior_scale)
    return kl / n_train - ll


def _predict(key, params, X, hparams, n_samples, *, sigma_init, learned, chunk_size):
    module = _module(_n_hidden(params), sigma_init)

    def one(k):
        return bbb.apply(k, module, params.net, X)[0][:, 0]

    keys = jax.random.split(key, n_samples)
    means = jax.lax.map(one, keys, batch_size=min(chunk_size, n_samples))
    precision = jnp.exp(-2.0 * _log_noise(params, hparams, learned))
    return means, jnp.asarray(precision, means.dtype)


def _grid(ds: UCIDataset, *, prior_scales, learned):
    dtype = float_dtype()
    taus = np.ones(1) if learned else np.asarray(ds.tau_values, np.float64)
    s, t = np.meshgrid(np.asarray(prior_scales, np.float64), taus, indexing="ij")
    return BBBHParams(jnp.asarray(s.ravel(), dtype), jnp.asarray(t.ravel(), dtype))


def _standardize(hparams: BBBHParams, y_std: jax.Array, *, learned) -> BBBHParams:
    # The prior acts on weights of a network with standardised inputs and target: unitless.
    return hparams if learned else hparams._replace(tau=hparams.tau * y_std ** 2)


@functools.lru_cache(maxsize=16)
def bbb_method(noise: str = "learned", prior_scales: tuple[float, ...] = (0.5, 1.0),
               sigma_init: float = 0.01, noise_std_init: float = 0.5,
               n_train_samples: int = 1, chunk_size: int = 256) -> UCIMethod:
    """Bayes by Backprop (Gaussian prior, diagonal Gaussian posterior) as a UCIMethod.

    Args:
        noise: ``"learned"`` (point-estimated noise std, grid = prior scales) or ``"grid"``
            (noise precision from the data folder's tau values, grid = prior scales x taus).
        prior_scales: weight-prior std grid (standardised units; the same in both).
        sigma_init: initial posterior std of every weight.
        noise_std_init: initial noise std (standardised target units) when learned.
        n_train_samples: weight samples per minibatch in the loss.
        chunk_size: MC passes evaluated together in prediction (memory bound).

    The same arguments return the same object (cached), so protocol calls do not recompile.
    """
    check_choice(noise, "noise", ("learned", "grid"))
    prior_scales = tuple(check_positive(s, "prior_scales") for s in prior_scales)
    if not prior_scales:
        raise ValueError("prior_scales must not be empty")
    sigma_init = check_positive(sigma_init, "sigma_init")
    noise_std_init = check_positive(noise_std_init, "noise_std_init")
    n_train_samples = check_int(n_train_samples, "n_train_samples", min_value=1)
    chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
    learned = noise == "learned"
    return UCIMethod(
        name=f"bbb_{noise}_noise",
        init=functools.partial(_init, sigma_init=sigma_init, noise_std_init=noise_std_init),
        loss=functools.partial(_loss, sigma_init=sigma_init, learned=learned,
                               n_train_samples=n_train_samples),
        predict=functools.partial(_predict, sigma_init=sigma_init, learned=learned,
                                  chunk_size=chunk_size),
        grid=functools.partial(_grid, prior_scales=prior_scales, learned=learned),
        standardize=functools.partial(_standardize, learned=learned),
    )
