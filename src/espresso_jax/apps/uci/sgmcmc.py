"""SG-MCMC (SGLD / SGHMC, cyclical or constant step size) as a
:class:`~espresso_jax.apps.uci.method.UCIMethod` for the UCI regression protocol.

Network: :class:`espresso_jax.nn.modules.MLP` with one hidden layer of ``n_hidden`` ReLU units
and one output; prior ``N(0, s^2)`` on every weight and bias; Gaussian likelihood with noise
precision ``tau``. The grid is prior scales x the data folder's tau values (Gal's, original
units, standardised as ``tau * y_std^2`` like MC dropout's).

* ``loss``: the negative log posterior per training point on a minibatch,
  ``-(1/B) sum_batch log N(y | f(x), 1/tau) - log p(w) / N``: the protocol's Adam epochs find
  the MAP network, the warm start of the chains.
* ``finalize``: ``n_chains`` chains (vmapped over keys) of
  :func:`espresso_jax.bnn.sgmcmc_sampler.run_chain` from the MAP weights on the same training
  rows (minibatches of about ``batch_size`` rows balanced as the protocol's, shuffled by the
  engine), with the gradient estimator of :func:`espresso_jax.bnn.sgmcmc.grad_estimator`; it
  returns the collected weight samples of all chains, ``(n_chains * n_kept, ...)`` leaves.
  The step size is given per training point and noise precision: the kernel's ``h`` is
  ``step_size / (N tau)``, so ``h`` times the curvature of the log posterior is about
  ``step_size`` times that of the mean squared error whatever ``N`` and ``tau``.
* ``predict``: the mean of each kept sample (at most ``n_samples`` of them, evenly spaced)
  with precision ``tau``; the protocol scores the equal-weight mixture.

References:
    R. Zhang, C. Li, J. Zhang, C. Chen and A. G. Wilson. Cyclical stochastic gradient MCMC for
    Bayesian deep learning. ICLR 2020.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.apps.uci.grid_search import balanced_batch_size
from espresso_jax.apps.uci.method import UCIMethod
from espresso_jax.bnn import sgmcmc, sgmcmc_sampler
from espresso_jax.bnn.laplace.curvature import largest_ggn_eigenvalue
from espresso_jax.datasets.uci import UCIDataset
from espresso_jax.nn.modules import MLP
from espresso_jax.prob.gaussian import gaussian_log_density
from espresso_jax.validation import check_choice, check_int, check_positive, float_dtype

__all__ = ["MAX_KEPT", "SGMCMCHParams", "sgmcmc_method", "stable_step_size"]

MAX_KEPT = 100
"""Samples kept per chain when ``thinning`` is None."""


class SGMCMCHParams(NamedTuple):
    """One grid point: weight-prior std ``prior_scale`` and noise precision ``tau``."""

    prior_scale: jax.Array
    tau: jax.Array


def _module(n_hidden: int) -> MLP:
    return MLP((n_hidden, 1))


def _n_hidden(params) -> int:
    return int(params["params"]["dense_0"]["kernel"].shape[-1])


def _apply(params, X) -> jax.Array:
    out = cast(jax.Array, _module(_n_hidden(params)).apply(params, X))
    return out[..., 0]


def _init(key, n_features, n_hidden):
    return _module(n_hidden).init(key, jnp.zeros((1, n_features), float_dtype()))


def _log_prior(params, prior_scale):
    sq = sum(jnp.sum(jnp.square(w)) for w in jax.tree.leaves(params))
    return -0.5 * sq / jnp.square(prior_scale)


def _log_likelihood(params, example, tau):
    x, y = example
    z2 = tau * jnp.square(y - _apply(params, x[None])[0])
    return gaussian_log_density(z2, -jnp.log(tau))


def _loss(params, batch, key, hparams, n_train):
    del key
    ll = jax.vmap(_log_likelihood, in_axes=(None, 0, None))(params, batch, hparams.tau)
    return -jnp.mean(ll) - _log_prior(params, hparams.prior_scale) / n_train


def stable_step_size(params, X, step_size, max_step_curvature):
    """``min(step_size, max_step_curvature / λ_max)`` with ``λ_max`` the largest eigenvalue of
    the squared error's Gauss-Newton matrix at ``params`` on the rows ``X`` (``()``)."""
    lam = largest_ggn_eigenvalue(_apply, params, X)
    return jnp.minimum(jnp.asarray(step_size, lam.dtype), max_step_curvature / lam)


def _finalize(key, params, X, y, hparams, n_train, *, kernel, step_size, n_chains, n_epochs,
              batch_size, n_cycles, exploration, thinning, friction, max_step_curvature):
    def log_prior(p):
        return _log_prior(p, hparams.prior_scale)

    def log_likelihood(p, example):
        return _log_likelihood(p, example, hparams.tau)

    grad_fn = sgmcmc.grad_estimator(log_prior, log_likelihood, n_train)
    if max_step_curvature is not None:
        step_size = stable_step_size(params, X, step_size, max_step_curvature)
    h = step_size / (n_train * hparams.tau)
    batch = balanced_batch_size(n_train, batch_size)
    if thinning is None:   # about MAX_KEPT samples per chain, evenly spaced
        n_steps = n_epochs * (n_train // batch)
        every = sgmcmc_sampler.n_collected(n_steps, n_cycles=n_cycles,
                                           exploration=exploration, burn_in=0, thinning=1)
        thinning = max(1, every // MAX_KEPT)

    def chain(k):
        samples, _ = sgmcmc_sampler.run_chain(
            k, grad_fn, params, (X, y), kernel=kernel, step_size=h, batch_size=batch,
            n_epochs=n_epochs, n_cycles=n_cycles, exploration=exploration, thinning=thinning,
            friction=friction)
        return samples

    return sgmcmc_sampler.flatten_chains(jax.vmap(chain)(jax.random.split(key, n_chains)))


def _predict(key, params, X, hparams, n_samples):
    del key
    n_kept = jax.tree.leaves(params)[0].shape[0]
    every = max(1, n_kept // n_samples)
    kept = jax.tree.map(lambda a: a[::every][:n_samples], params)
    means, tau = sgmcmc_sampler.predict_regression(_apply, kept, X, hparams.tau)
    return means, tau


def _grid(ds: UCIDataset, *, prior_scales):
    s, t = np.meshgrid(np.asarray(prior_scales, np.float64),
                       np.asarray(ds.tau_values, np.float64), indexing="ij")
    dtype = float_dtype()
    return SGMCMCHParams(jnp.asarray(s.ravel(), dtype), jnp.asarray(t.ravel(), dtype))


def _standardize(hparams: SGMCMCHParams, y_std: jax.Array) -> SGMCMCHParams:
    # the prior acts on a network of standardised inputs and target: unitless
    return hparams._replace(tau=hparams.tau * y_std ** 2)


@functools.lru_cache(maxsize=16)
def sgmcmc_method(kernel: str = "sgld", step_size: float = 0.1, n_chains: int = 2,
                  n_epochs: int = 160, n_cycles: int | None = None, exploration: float = 0.75,
                  thinning: int | None = None, friction: float = 0.1, batch_size: int = 128,
                  prior_scales: tuple[float, ...] = (1.0,),
                  max_step_curvature: float | None = 1.0) -> UCIMethod:
    """SG-MCMC from the MAP network as a :class:`UCIMethod` (see the module docstring).

    Args:
        kernel: ``"sgld"`` or ``"sghmc"``.
        step_size: ``h_0`` per training point and noise precision (the kernel's step is
            ``step_size / (N tau)`` in the standardised units).
        n_chains: chains per network, vmapped over keys, all started at the MAP weights.
        n_epochs: epochs of each chain (after the protocol's training epochs).
        n_cycles: cycles of Zhang et al.'s cosine schedule (must divide ``n_epochs``);
            None: constant step size, every ``thinning``-th step of the whole chain kept.
        exploration: exploration share of each cycle (no noise, no samples).
        thinning: keep every ``thinning``-th step of the sampling stage; None: about
            :data:`MAX_KEPT` samples per chain, evenly spaced (the thinning follows the
            number of steps, so memory does not grow with the data set).
        friction: SGHMC's ``alpha`` (ignored by SGLD).
        batch_size: target minibatch size of the chains, balanced as the protocol's.
        prior_scales: weight-prior std grid (standardised units).
        max_step_curvature: cap on ``step_size × λ_max`` (see below); None: no cap.

    Defaults: constant-step SGLD, ``step_size`` 0.1, 160 epochs. The first defaults (cyclical,
    4 cycles, 75 % noiseless exploration, ``step_size`` 1e-3, 40 epochs) left the chains at
    the MAP: started there, the exploration stage's gradient steps stay there, and the
    sampling stage runs at the cosine schedule's tail (at most 15 % of the peak step), so on
    the tour's 80-point gap toy (one full-batch step per epoch: 40 steps) the sd of the
    samples' means was ~0.001 (target units). In a direction of log-posterior curvature
    ``lambda`` a chain needs about ``1 / (h lambda)`` steps to spread; with the kernel step
    ``h = step_size / (N tau)`` that is ``1 / (step_size lambda_mse)`` steps: step 0.1 and
    160 epochs give ~0.03 on the toy (0.5 diverged there), and on bostonHousing (2 splits,
    seed 0) test RMSE 2.68 and NLL 2.43 with no divergence. Cyclical SG-MCMC remains
    ``n_cycles=M`` (start it away from the MAP, or with a short exploration, to explore).

    Stability: in a direction of curvature ``λ`` of the squared error the kernel step times
    the log posterior's curvature is ``step_size λ``, and the chain diverges beyond 2 (on a
    quadratic). The step is therefore ``min(step_size, max_step_curvature / λ_max)``, with
    ``λ_max`` of the MAP net's Gauss-Newton matrix on the chain's rows
    (:func:`~espresso_jax.bnn.laplace.curvature.largest_ggn_eigenvalue`, 50 power iterations).
    Without the cap step 0.1 diverged on naval-propulsion-plant, whose 16 correlated inputs
    give ``λ_max`` 200-261 (step × λ_max 20-26); boston's 9-16 are capped to 0.06-0.1.

    The same arguments return the same object (cached), so protocol calls do not recompile.
    """
    if max_step_curvature is not None:
        max_step_curvature = check_positive(max_step_curvature, "max_step_curvature")
    kernel = check_choice(kernel, "kernel", ("sgld", "sghmc"))
    step_size = check_positive(step_size, "step_size")
    n_chains = check_int(n_chains, "n_chains", min_value=1)
    n_epochs = check_int(n_epochs, "n_epochs", min_value=1)
    if n_cycles is not None:
        n_cycles = check_int(n_cycles, "n_cycles", min_value=1)
        if n_epochs % n_cycles:
            raise ValueError(f"n_cycles ({n_cycles}) must divide n_epochs ({n_epochs})")
    exploration = check_positive(exploration, "exploration", allow_zero=True)
    if exploration >= 1:
        raise ValueError(f"exploration must lie in [0, 1), got {exploration}")
    if thinning is not None:
        thinning = check_int(thinning, "thinning", min_value=1)
    friction = check_positive(friction, "friction")
    if friction > 1:
        raise ValueError(f"friction must lie in (0, 1], got {friction}")
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    prior_scales = tuple(check_positive(s, "prior_scales") for s in prior_scales)
    if not prior_scales:
        raise ValueError("prior_scales must not be empty")
    return UCIMethod(
        name=f"{'c' if n_cycles else ''}{kernel}",
        init=_init,
        loss=_loss,
        predict=_predict,
        grid=functools.partial(_grid, prior_scales=prior_scales),
        standardize=_standardize,
        finalize=functools.partial(
            _finalize, kernel=kernel, step_size=step_size, n_chains=n_chains,
            n_epochs=n_epochs, batch_size=batch_size, n_cycles=n_cycles,
            exploration=exploration, thinning=thinning, friction=friction,
            max_step_curvature=max_step_curvature),
    )
