"""The method interface of the UCI protocol (:mod:`espresso_jax.apps.uci.protocol`): a
:class:`UCIMethod` is a NamedTuple of pure functions; ``hparams`` is any pytree of scalars (one
grid point):

* ``init(key, n_features, n_hidden) -> params``;
* ``loss(params, batch, key, hparams, n_train) -> scalar``: the minibatch objective, ``batch =
  (X (m, d), y (m,))`` with a standardised target, ``n_train`` the (static) training-set size
  for likelihood/KL scaling; it is handed to :func:`espresso_jax.train.make_step`;
* ``predict(key, params, X, hparams, n_samples) -> (means, precisions)``: ``means (T, n)`` are
  per-sample predictive means and ``precisions`` (broadcastable to ``(T, n)``) per-sample
  noise precisions, both in standardised-target units; the predictive is the equal-weight
  mixture of the ``T`` Gaussians;
* ``grid(ds: UCIDataset) -> hparams`` whose leaves are ``(n_grid,)`` arrays in the target's
  original units (what is reported);
* ``standardize(hparams, y_std) -> hparams``: the same point in standardised-target units
  (elementwise; vmapped over splits and grid points);
* ``finalize(key, params, X (N, d), y (N,), hparams, n_train) -> params`` (optional, default
  None): a post-training step on the same training rows, run inside the compiled call after
  the last epoch, whose output is what ``predict`` receives: e.g. a Laplace fit around the
  trained weights, SWAG moments from further epochs or an SG-MCMC chain started there.
  Its key is ``fold_in(network key, 3)``, so methods without it train exactly as before.
* ``step_noise(key, batch_size, n_features, n_hidden) -> noise`` (optional, default None):
  the randomness the loss draws from its step key, as arrays (e.g. dropout masks' hash
  words). When set, ``train_config`` draws every step's noise of an epoch before the
  epoch's steps (:func:`espresso_jax.train.run_epochs`' ``step_noise``) and hands the loss
  ``noise`` in place of ``key``; ``loss(params, batch, step_noise(key, ...), hparams,
  n_train)`` must equal ``loss(params, batch, key, hparams, n_train)``, so the results do not
  depend on it. It pays when networks share keys (``train_grid(...,
  common_random_numbers=True)``): the noise is drawn once per key instead of once per network
  inside the fused step; ``train_grid`` with a key per network leaves it unused.

MC dropout (:func:`espresso_jax.apps.uci.dropout.dropout_method`) and Bayes by Backprop
(:func:`espresso_jax.apps.uci.bbb.bbb_method`) implement it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from espresso_jax.datasets.uci import UCIDataset

__all__ = ["UCIMethod"]

PyTree = Any  # parameters and hyper-parameters: any pytree of arrays


class UCIMethod(NamedTuple):
    """A Bayesian regression network for the protocol (see the module docstring).

    Attributes:
        name: label for reports.
        init: ``(key, n_features, n_hidden) -> params``.
        loss: ``(params, batch, key, hparams, n_train) -> scalar``.
        predict: ``(key, params, X, hparams, n_samples) -> (means (T, n), precisions)``.
        grid: ``(ds) -> hparams`` with ``(n_grid,)`` leaves, original units.
        standardize: ``(hparams, y_std) -> hparams`` in standardised-target units.
        finalize: optional ``(key, params, X, y, hparams, n_train) -> params`` run after
            training; None (the default) skips it.
        step_noise: optional ``(key, batch_size, n_features, n_hidden) -> noise``, the loss's
            draws made in advance (see the module docstring); None: the loss draws from its
            key.
    """

    name: str
    init: Callable[..., PyTree]
    loss: Callable[..., jax.Array]
    predict: Callable[..., tuple[jax.Array, jax.Array]]
    grid: Callable[[UCIDataset], PyTree]
    standardize: Callable[[PyTree, jax.Array], PyTree]
    finalize: Callable[..., PyTree] | None = None
    step_noise: Callable[..., PyTree] | None = None
