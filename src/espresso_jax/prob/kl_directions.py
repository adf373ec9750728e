"""Fitting a Gaussian to a target by either direction of the KL divergence.

A diagonal Gaussian ``q = N(m, diag(s²))`` with parameters ``(mean, log_std)`` is fitted to a
target ``p`` (any numpyro distribution with event shape ``(D,)``, e.g. a Gaussian mixture from
:func:`gaussian_mixture`) by minimising one of

* ``KL(q || p) = E_q[log q − log p]`` ("reverse", exclusive, mode-seeking): estimated by
  :func:`espresso_jax.prob.info.kl_mc` with fresh draws ``z = m + s ε`` each step
  (reparameterised, so the estimate is differentiable in ``(m, log s)``). Where ``p`` puts
  almost no mass, ``log p`` is very negative, so ``q`` avoids the gap between modes and
  settles on one of them;
* ``KL(p || q) = E_p[log p − log q]`` ("forward", inclusive, mass-covering): estimated by
  the same :func:`~espresso_jax.prob.info.kl_mc` on one fixed set of draws from ``p`` (one
  key for every step). Its minimiser over Gaussians is moment matching: the mean and the
  (diagonal of the) covariance of ``p`` (Bishop, PRML §10.7); on a fixed sample, the sample
  mean and the biased sample variance. :func:`mixture_moments` gives the exact moments of a
  Gaussian mixture, and :func:`fit_forward_kl` with ``exact=True`` minimises the exact
  expectation ``−E_p[log q]`` (closed form for a Gaussian mixture) instead of the MC one.

Both fits run on the :mod:`espresso_jax.train` engine (:func:`~espresso_jax.train.make_step`
with an optax Adam) in one compiled ``lax.scan``.

References:
    C. M. Bishop, "Pattern Recognition and Machine Learning" (2006), §10.1.2 and Fig. 10.3
    (the two directions of KL on a bimodal target), §10.7 (moment matching).
    T. Minka, "Divergence measures and message passing", MSR-TR-2005-173 (2005).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optax
from jax.typing import ArrayLike

from espresso_jax import train
from espresso_jax.prob.info import kl_mc
from espresso_jax.validation import (
    as_float_array,
    check_distribution,
    check_int,
    check_key,
    check_positive,
)

__all__ = [
    "GaussianFit",
    "gaussian_mixture",
    "mixture_moments",
    "diag_gaussian",
    "reverse_kl_loss",
    "forward_kl_loss",
    "forward_kl_exact_loss",
    "fit_reverse_kl",
    "fit_forward_kl",
]


class GaussianFit(NamedTuple):
    """A fitted diagonal Gaussian.

    Attributes:
        mean: ``(D,)`` mean ``m``.
        std: ``(D,)`` standard deviations ``s``.
        loss: ``(n_steps,)`` objective per step (the MC KL estimate, or ``−E_p[log q]`` for
            the exact forward fit).
    """

    mean: jax.Array
    std: jax.Array
    loss: jax.Array


def gaussian_mixture(weights: ArrayLike, means: ArrayLike, stds: ArrayLike
                     ) -> dist.MixtureSameFamily:
    """A mixture of ``K`` diagonal Gaussians in ``D`` dimensions as a numpyro distribution.

    Args:
        weights: ``(K,)`` positive mixing weights summing to 1.
        means: ``(K, D)`` component means.
        stds: ``(K, D)`` positive component standard deviations.

    Returns:
        ``MixtureSameFamily`` with event shape ``(D,)``.

    Raises:
        ValueError: naming ``weights``, ``means`` or ``stds`` (shape, sign, NaN, sum).
    """
    means = as_float_array(means, "means", ndim=2, shape_hint="(K, D)")
    k = means.shape[0]
    weights = as_float_array(weights, "weights", ndim=1, shape_hint="(K,)")
    stds = as_float_array(stds, "stds", ndim=2, shape_hint="(K, D)")
    if weights.shape[0] != k:
        raise ValueError(f"weights must have one entry per component ({k}), got "
                         f"{weights.shape[0]}")
    if stds.shape != means.shape:
        raise ValueError(f"stds must have the shape of means {means.shape}, got {stds.shape}")
    w = np.asarray(weights)
    if np.any(w <= 0) or abs(float(w.sum()) - 1.0) > 1e-5:
        raise ValueError(f"weights must be positive and sum to 1, got {w}")
    if np.any(np.asarray(stds) <= 0):
        raise ValueError("stds must be positive")
    return dist.MixtureSameFamily(dist.Categorical(probs=weights),
                                  dist.Normal(means, stds).to_event(1))


def _mixture_parts(p: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(weights (K,), means (K, D), stds (K, D)) of a :func:`gaussian_mixture`."""
    comp = getattr(p, "component_distribution", None)
    base = getattr(comp, "base_dist", None)
    if not (isinstance(p, dist.MixtureSameFamily) and isinstance(base, dist.Normal)
            and len(p.event_shape) == 1):
        raise TypeError(f"p must be a mixture of diagonal Gaussians (gaussian_mixture), got "
                        f"{type(p).__name__}")
    w = p.mixing_distribution.probs
    loc, scale = jnp.broadcast_arrays(base.loc, base.scale)
    return jnp.asarray(w), loc, scale


def mixture_moments(p: dist.MixtureSameFamily) -> tuple[jax.Array, jax.Array]:
    """Exact mean and covariance of a Gaussian mixture (:func:`gaussian_mixture`):
    ``μ = Σ_k w_k μ_k`` and ``Σ = Σ_k w_k (diag(s_k²) + μ_k μ_kᵀ) − μ μᵀ``.

    Returns:
        ``(mean (D,), covariance (D, D))``; its diagonal is the optimum of
        :func:`fit_forward_kl` (moment matching).

    Raises:
        TypeError: ``p`` is not a mixture of diagonal Gaussians.
    """
    w, loc, scale = _mixture_parts(p)
    mean = w @ loc
    centred = loc - mean[None, :]
    cov = (jnp.einsum("k,kd,ke->de", w, centred, centred)
           + jnp.diag(w @ jnp.square(scale)))
    return mean, cov


def diag_gaussian(params: tuple[jax.Array, jax.Array]) -> dist.Distribution:
    """``N(mean, diag(exp(log_std)²))`` with event shape ``(D,)`` from ``(mean, log_std)``."""
    mean, log_std = params
    return dist.Normal(mean, jnp.exp(log_std)).to_event(1)


def reverse_kl_loss(params: tuple[jax.Array, jax.Array], p: dist.Distribution,
                    key: jax.Array, n_samples: int) -> jax.Array:
    """Reparameterised MC estimate of ``KL(q || p)`` with ``q = diag_gaussian(params)``:
    ``mean_i [log q(z_i) − log p(z_i)]``, ``z_i = m + s ε_i`` (differentiable in params)."""
    return kl_mc(key, diag_gaussian(params), p, n_samples)[0]


def forward_kl_loss(params: tuple[jax.Array, jax.Array], p: dist.Distribution,
                    key: jax.Array, n_samples: int) -> jax.Array:
    """MC estimate of ``KL(p || q)``: ``mean_i [log p(x_i) − log q(x_i)]``, ``x_i ~ p`` drawn
    from ``key`` (a fixed key gives a fixed sample, whose minimiser is its moments)."""
    return kl_mc(key, p, diag_gaussian(params), n_samples)[0]


def forward_kl_exact_loss(params: tuple[jax.Array, jax.Array],
                          p: dist.MixtureSameFamily) -> jax.Array:
    """``−E_p[log q]`` in closed form for a Gaussian mixture ``p`` (``KL(p || q)`` minus the
    entropy of ``p``, a constant in ``q``):
    ``Σ_k w_k Σ_d [((μ_kd − m_d)² + s_kd²) / (2 σ_d²) + log σ_d + ½ log 2π]``."""
    mean, log_std = params
    w, loc, scale = _mixture_parts(p)
    var = jnp.exp(2.0 * log_std)
    per_comp = jnp.sum((jnp.square(loc - mean[None, :]) + jnp.square(scale))
                       / (2.0 * var[None, :]) + log_std[None, :]
                       + 0.5 * math.log(2.0 * math.pi), axis=-1)
    return jnp.sum(w * per_comp)


@functools.partial(jax.jit, static_argnames=("loss", "n_steps", "learning_rate"))
def _fit(key, batch, mean0, log_std0, loss, n_steps, learning_rate):
    optimizer = optax.adam(learning_rate)
    step = train.make_step(loss, optimizer)
    state = train.init_state(key, (mean0, log_std0), optimizer)
    state, metrics = jax.lax.scan(lambda s, _: step(s, batch), state, None, length=n_steps)
    mean, log_std = state.params
    return GaussianFit(mean, jnp.exp(log_std), metrics["loss"])


def _reverse_step_loss(params, p, key, n_samples):
    return reverse_kl_loss(params, p, key, n_samples)


def _forward_step_loss(params, batch, key, n_samples):
    del key  # the same draws from p (from the batch's sample key) at every step
    p, sample_key = batch
    return forward_kl_loss(params, p, sample_key, n_samples)


def _exact_step_loss(params, p, key):
    del key
    return forward_kl_exact_loss(params, p)


@functools.lru_cache(maxsize=32)
def _step_loss(kind: str, n_samples: int):
    """One loss object per (kind, n_samples), so repeated fits reuse the compiled scan."""
    if kind == "exact":
        return _exact_step_loss
    fn = _reverse_step_loss if kind == "reverse" else _forward_step_loss
    return functools.partial(fn, n_samples=n_samples)


def _check_fit(key: Any, p: Any, init_mean: Any, init_log_std: Any, n_steps: Any,
               n_samples: Any, learning_rate: Any):
    key = check_key(key)
    check_distribution(p, "p")
    if len(p.event_shape) != 1 or p.batch_shape != ():
        raise ValueError(f"p must have event shape (D,) and no batch shape, got event shape "
                         f"{p.event_shape} and batch shape {p.batch_shape}")
    d = p.event_shape[0]
    mean0 = as_float_array(init_mean, "init_mean", ndim=1, shape_hint="(D,)")
    if mean0.shape != (d,):
        raise ValueError(f"init_mean must have shape ({d},) (p's event shape), got "
                         f"{mean0.shape}")
    log_std0 = as_float_array(init_log_std, "init_log_std", ndim=(0, 1))
    if log_std0.shape not in ((), (d,)):
        raise ValueError(f"init_log_std must be a scalar or have shape ({d},), got shape "
                         f"{log_std0.shape}")
    log_std0 = jnp.broadcast_to(log_std0, (d,))
    n_steps = check_int(n_steps, "n_steps", min_value=1)
    n_samples = check_int(n_samples, "n_samples", min_value=2)
    learning_rate = check_positive(learning_rate, "learning_rate")
    return key, mean0, log_std0.astype(mean0.dtype), n_steps, n_samples, learning_rate


def fit_reverse_kl(key: jax.Array, p: dist.Distribution, init_mean: ArrayLike,
                   init_log_std: ArrayLike = 0.0, *, n_steps: int = 1000,
                   n_samples: int = 64, learning_rate: float = 0.05) -> GaussianFit:
    """Fit a diagonal Gaussian ``q`` to ``p`` by minimising ``KL(q || p)`` (mode-seeking).

    Args:
        key: PRNG key of the draws ``ε`` (fresh ones every step).
        p: target with event shape ``(D,)`` and a ``log_prob`` (e.g. :func:`gaussian_mixture`).
        init_mean: ``(D,)`` starting mean (which mode ``q`` ends on depends on it).
        init_log_std: starting ``log s``, scalar or ``(D,)``.
        n_steps: Adam steps. n_samples: draws per step (>= 2). learning_rate: Adam's.

    Returns:
        :class:`GaussianFit`.

    Raises:
        ValueError: naming ``p``, ``init_mean``, ``init_log_std``, ``n_steps``, ``n_samples``
            or ``learning_rate``. TypeError: ``p`` is not a numpyro distribution.
    """
    key, mean0, log_std0, n_steps, n_samples, lr = _check_fit(
        key, p, init_mean, init_log_std, n_steps, n_samples, learning_rate)
    return _fit(key, p, mean0, log_std0, _step_loss("reverse", n_samples), n_steps, lr)


def fit_forward_kl(key: jax.Array, p: dist.Distribution, init_mean: ArrayLike,
                   init_log_std: ArrayLike = 0.0, *, n_steps: int = 1000,
                   n_samples: int = 4096, learning_rate: float = 0.05,
                   exact: bool = False) -> GaussianFit:
    """Fit a diagonal Gaussian ``q`` to ``p`` by minimising ``KL(p || q)`` (mass-covering).

    The MC objective uses one fixed sample of ``n_samples`` draws from ``p`` (drawn from
    ``key``), so the fit converges to that sample's mean and biased variance; these differ
    from :func:`mixture_moments` by the MC error ``~ std / sqrt(n_samples)``. With
    ``exact=True`` (``p`` a :func:`gaussian_mixture`) the objective is the exact
    :func:`forward_kl_exact_loss` and the fit converges to the mixture's moments.

    Args: as :func:`fit_reverse_kl`; ``n_samples`` is the size of the fixed sample.

    Returns:
        :class:`GaussianFit`.
    """
    key, mean0, log_std0, n_steps, n_samples, lr = _check_fit(
        key, p, init_mean, init_log_std, n_steps, n_samples, learning_rate)
    if not isinstance(exact, (bool, np.bool_)):
        raise TypeError(f"exact must be a bool, got {type(exact).__name__}")
    if exact:
        try:
            _mixture_parts(p)
        except TypeError as err:
            raise ValueError(f"exact=True needs p from gaussian_mixture: {err}") from None
        return _fit(key, p, mean0, log_std0, _step_loss("exact", 0), n_steps, lr)
    sample_key, key = jax.random.split(key)
    return _fit(key, (p, sample_key), mean0, log_std0, _step_loss("forward", n_samples),
                n_steps, lr)
