"""Thin helpers around NumPyro's NUTS and SVI, plus MCMC diagnostics.

NumPyro does its own jitting (the whole warm-up and sampling loop is one compiled
``lax.scan``/``fori_loop``), so these helpers only validate, pick a chain method that works
on the available devices, and shield NumPyro from the caller's dtype/rank promotion mode.

References:
    M. D. Hoffman and A. Gelman, "The No-U-Turn Sampler", JMLR 15, 2014.
    D. Phan, N. Pradhan, M. Jankowiak, "Composable effects for flexible and accelerated
    probabilistic programming in NumPyro", 2019.
    A. Gelman et al., *Bayesian Data Analysis* (3rd ed.), §11.4–11.5 (R-hat, effective sample
    size).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import diagnostics
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO

from espresso_jax import validation as V
from espresso_jax.interop import standard_promotion

__all__ = ["SVIResult", "SiteSummary", "run_nuts", "run_nuts_samples", "run_svi", "summarize"]

_CHAIN_METHODS = ("sequential", "parallel", "vectorized")


class SVIResult(NamedTuple):
    """Result of :func:`run_svi`.

    Attributes:
        params: dict of optimised (constrained) ``numpyro.param`` values of model and guide.
        history: ``(num_steps,)`` ELBO loss (negative ELBO estimate) at every step.
        n_iter: ``()`` int32 number of steps run (``num_steps``).
        converged: ``()`` bool, always False: SVI runs a fixed budget of steps and has no
            convergence test.
    """

    params: dict[str, jax.Array]
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array


class SiteSummary(NamedTuple):
    """Posterior summary of one sample site (arrays have the site's event shape).

    Attributes:
        mean, sd: posterior mean and standard deviation over all draws.
        ess: effective sample size over all chains (Geyer's initial monotone sequence).
        r_hat: split Gelman–Rubin statistic (NaN-free; 1 means well mixed).
    """

    mean: np.ndarray
    sd: np.ndarray
    ess: np.ndarray
    r_hat: np.ndarray


def _check_callable(fn: Any, name: str) -> Callable:
    if not callable(fn):
        raise TypeError(f"{name} must be callable (a NumPyro model/guide function), "
                        f"got {type(fn).__name__}")
    return fn


def _chain_method(chain_method: str | None, num_chains: int) -> str:
    if chain_method is not None:
        return V.check_choice(chain_method, "chain_method", _CHAIN_METHODS)
    # "parallel" needs one device per chain; on a default CPU host there is one device
    # (more only with XLA_FLAGS=--xla_force_host_platform_device_count=N), so use
    # "sequential" there.
    if num_chains > 1 and jax.local_device_count() >= num_chains:
        return "parallel"
    return "sequential"


def run_nuts_samples(
    key: jax.Array,
    model: Callable,
    model_args: tuple,
    model_kwargs: dict,
    *,
    num_warmup: int,
    num_samples: int,
    num_chains: int,
    progress_bar: bool,
    target_accept_prob: float,
    dense_mass: bool,
    max_tree_depth: int,
    chain_method: str | None,
    init_strategy: Callable | None = None,
) -> tuple[dict[str, jax.Array], jax.Array]:
    """Validate, run NUTS and return ``(samples grouped by chain, number of divergences)``.

    The shared core of :func:`run_nuts` and the model-specific ``fit_nuts`` functions: samples
    are a dict of ``(num_chains, num_samples, ...)`` arrays.
    """
    key = V.check_key(key)
    _check_callable(model, "model")
    num_warmup = V.check_int(num_warmup, "num_warmup", min_value=0)
    num_samples = V.check_int(num_samples, "num_samples", min_value=1)
    num_chains = V.check_int(num_chains, "num_chains", min_value=1)
    max_tree_depth = V.check_int(max_tree_depth, "max_tree_depth", min_value=1)
    target_accept_prob = V.check_probability(target_accept_prob, "target_accept_prob",
                                             open_interval=True)
    method = _chain_method(chain_method, num_chains)
    extra = {} if init_strategy is None else {"init_strategy": init_strategy}
    kernel = NUTS(model, target_accept_prob=target_accept_prob, dense_mass=bool(dense_mass),
                  max_tree_depth=max_tree_depth, **extra)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples,
                num_chains=num_chains, chain_method=method, progress_bar=bool(progress_bar))
    with standard_promotion():
        mcmc.run(key, *model_args, extra_fields=("diverging",), **model_kwargs)
        samples = mcmc.get_samples(group_by_chain=True)
        diverging = mcmc.get_extra_fields()["diverging"]
        n_div = jnp.sum(diverging.astype(jnp.int32))
    return samples, n_div


def run_nuts(
    key: jax.Array,
    model: Callable,
    *model_args: Any,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 1,
    progress_bar: bool = False,
    target_accept_prob: float = 0.8,
    dense_mass: bool = False,
    max_tree_depth: int = 10,
    chain_method: str | None = None,
    group_by_chain: bool = False,
    **model_kwargs: Any,
) -> dict[str, jax.Array]:
    """Sample a NumPyro model's posterior with NUTS.

    Args:
        key: PRNG key.
        model: NumPyro model function, called as ``model(*model_args, **model_kwargs)``.
        *model_args: positional arguments of the model (data).
        num_warmup: adaptation steps per chain (step size and mass matrix).
        num_samples: kept draws per chain.
        num_chains: number of chains.
        progress_bar: show NumPyro's progress bar.
        target_accept_prob: NUTS target acceptance probability in (0, 1).
        dense_mass: adapt a dense (instead of diagonal) mass matrix.
        max_tree_depth: maximum NUTS tree depth.
        chain_method: ``"sequential"``, ``"parallel"`` or ``"vectorized"``; by default
            ``"parallel"`` when there is one device per chain, else ``"sequential"`` (a CPU host
            exposes one device unless ``XLA_FLAGS=--xla_force_host_platform_device_count``).
        group_by_chain: return draws shaped ``(num_chains, num_samples, ...)`` instead of
            ``(num_chains * num_samples, ...)``.
        **model_kwargs: keyword arguments of the model.

    Returns:
        dict from sample-site name to its draws.

    References:
        Hoffman and Gelman (2014); NumPyro's ``MCMC``/``NUTS``.
    """
    samples, _ = run_nuts_samples(key, model, model_args, model_kwargs, num_warmup=num_warmup,
                           num_samples=num_samples, num_chains=num_chains,
                           progress_bar=progress_bar, target_accept_prob=target_accept_prob,
                           dense_mass=dense_mass, max_tree_depth=max_tree_depth,
                           chain_method=chain_method)
    if group_by_chain:
        return samples
    return {k: v.reshape((-1,) + v.shape[2:]) for k, v in samples.items()}


def run_svi(
    key: jax.Array,
    model: Callable,
    guide: Callable,
    *model_args: Any,
    optimizer: Any,
    num_steps: int,
    loss: Any = None,
    progress_bar: bool = False,
    stable_update: bool = False,
    **model_kwargs: Any,
) -> SVIResult:
    """Fit a guide to a NumPyro model by stochastic variational inference.

    Args:
        key: PRNG key.
        model: NumPyro model function.
        guide: NumPyro guide, e.g. ``numpyro.infer.autoguide.AutoNormal(model)``.
        *model_args: positional arguments of model and guide.
        optimizer: an ``optax.GradientTransformation`` or a ``numpyro.optim`` optimiser
            (required: no default optimiser).
        num_steps: optimisation steps (run as one compiled loop when ``progress_bar`` is off).
        loss: ELBO estimator; ``numpyro.infer.Trace_ELBO()`` when ``None``.
        progress_bar: show NumPyro's progress bar.
        stable_update: skip updates whose loss or gradient is not finite.
        **model_kwargs: keyword arguments of model and guide.

    Returns:
        :class:`SVIResult` with the optimised params and the loss trace ``history``.

    References:
        M. D. Hoffman et al., "Stochastic variational inference", JMLR 14, 2013;
        D. P. Kingma and M. Welling, "Auto-encoding variational Bayes", ICLR 2014.
    """
    key = V.check_key(key)
    _check_callable(model, "model")
    _check_callable(guide, "guide")
    num_steps = V.check_int(num_steps, "num_steps", min_value=1)
    if optimizer is None:
        raise TypeError("optimizer must be an optax GradientTransformation or a numpyro.optim "
                        "optimiser, got None")
    loss = Trace_ELBO() if loss is None else loss
    with standard_promotion():
        svi = SVI(model, guide, optimizer, loss=loss)
        result = svi.run(key, num_steps, *model_args, progress_bar=bool(progress_bar),
                         stable_update=bool(stable_update), **model_kwargs)
    return SVIResult(result.params, result.losses, jnp.asarray(num_steps, jnp.int32),
                     jnp.zeros((), bool))


def summarize(
    samples: dict[str, Any], *, group_by_chain: bool = False
) -> dict[str, SiteSummary]:
    """Mean, sd, effective sample size and split R-hat of every sample site (host side).

    Args:
        samples: dict of draws as returned by :func:`run_nuts`; each value is
            ``(num_draws, ...)``, or ``(num_chains, num_draws, ...)`` with ``group_by_chain``.
        group_by_chain: whether the draws carry a leading chain axis.

    Returns:
        dict from site name to :class:`SiteSummary`.

    References:
        Gelman et al., *Bayesian Data Analysis* (3rd ed.), §11.4–11.5; Stan reference manual
        (effective sample size).
    """
    if not isinstance(samples, dict):
        raise TypeError(f"samples must be a dict of draws, got {type(samples).__name__}")
    out = {}
    for name, value in samples.items():
        x = np.asarray(value, dtype=np.float64)
        x = x if group_by_chain else x[None]
        if x.ndim < 2 or x.shape[1] < 2:
            raise ValueError(f"samples[{name!r}] needs at least 2 draws per chain, "
                             f"got shape {np.shape(value)}")
        flat = x.reshape((-1,) + x.shape[2:])
        r_hat = (diagnostics.split_gelman_rubin(x) if x.shape[1] >= 4
                 else np.full(x.shape[2:], np.nan))
        out[name] = SiteSummary(flat.mean(0), flat.std(0, ddof=1),
                                np.asarray(diagnostics.effective_sample_size(x)),
                                np.asarray(r_hat))
    return out

