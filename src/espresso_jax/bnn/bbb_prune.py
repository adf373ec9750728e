"""Signal-to-noise pruning of a Bayes-by-Backprop posterior (Blundell et al. 2015, sec. 5.1).

The signal-to-noise ratio of a weight is ``|mu| / sigma``; :func:`signal_to_noise` returns it
plain or in decibels, ``10 log10(|mu| / sigma)`` (the paper's Fig. 3 unit; the ranking is the
same). Pruning removes the fraction ``p`` of weights with the lowest SNR, ranked globally over
every posterior tensor (kernels and biases of all layers): a pruned weight gets ``mu = 0`` and
``rho = PRUNED_RHO`` (``sigma = softplus(rho) = 0`` exactly), i.e. it becomes a deterministic
zero. Exactly ``round(p * n_weights)`` weights are pruned (ties broken by position).

References:
    Blundell, Cornebise, Kavukcuoglu, Wierstra (2015). Weight Uncertainty in Neural Networks.
    ICML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from espresso_jax.bnn.bbb import PRUNED_RHO, posterior_std
from espresso_jax.bnn.bbb_elbo import BBBParams, classification_predictive, regression_predictive
from espresso_jax.validation import (
    as_float_array,
    as_int_array,
    check_choice,
    check_key,
    check_probability,
)

__all__ = ["signal_to_noise", "prune", "PruningTable", "pruning_table"]


def _pairs(net: Any) -> tuple[dict, list[tuple]]:
    """Flattened params and the ``(mu_path, rho_path)`` pairs of every posterior tensor."""
    flat = traverse_util.flatten_dict(nn.unbox(net["params"]) if "params" in net else net)
    pairs = []
    for path in flat:
        if path[-1].endswith("_mu"):
            rho = path[:-1] + (path[-1][:-3] + "_rho",)
            if rho in flat:
                pairs.append((path, rho))
    if not pairs:
        raise ValueError("params has no posterior (name_mu, name_rho) pairs")
    return flat, pairs


def _net(params: Any) -> Any:
    return params.net if isinstance(params, BBBParams) else params


def signal_to_noise(params: Any, *, decibels: bool = True) -> dict[str, jax.Array]:
    """SNR of every posterior weight.

    Args:
        params: :class:`~espresso_jax.bnn.bbb_elbo.BBBParams` or flax variables.
        decibels: ``10 log10(|mu| / sigma)`` (default) or the plain ratio ``|mu| / sigma``.

    Returns:
        ``{"layer/name": snr}``, each with the shape of its ``name_mu`` tensor.
    """
    flat, pairs = _pairs(_net(params))
    out = {}
    for mu_path, rho_path in pairs:
        mu, rho = flat[mu_path], flat[rho_path]
        _, log_sigma = posterior_std(rho)
        log_snr = jnp.log(jnp.abs(mu)) - log_sigma  # -inf at mu = 0 ranks it first
        name = "/".join((*mu_path[:-1], mu_path[-1][:-3]))
        out[name] = (10.0 / math.log(10.0)) * log_snr if decibels else jnp.exp(log_snr)
    return out


def prune(params: Any, fraction: float) -> tuple[Any, int]:
    """Prune the ``fraction`` of weights with the lowest SNR (global ranking).

    Args:
        params: :class:`~espresso_jax.bnn.bbb_elbo.BBBParams` or flax variables.
        fraction: share of posterior weights to remove, ``0 <= fraction < 1``.

    Returns:
        ``(pruned_params, n_pruned)``: same structure as ``params``; pruned weights have
        ``mu = 0`` and ``rho = PRUNED_RHO`` (a deterministic zero). ``fraction = 0`` returns the
        parameters unchanged.
    """
    fraction = check_probability(fraction, "fraction")
    if fraction >= 1.0:
        raise ValueError(f"fraction must be < 1, got {fraction}")
    net = _net(params)
    flat, pairs = _pairs(net)
    snr = [np.ravel(np.asarray(v)) for v in signal_to_noise(net, decibels=False).values()]
    sizes = [s.size for s in snr]
    n_total = int(sum(sizes))
    n_prune = int(round(fraction * n_total))
    mask = np.zeros(n_total, bool)
    mask[np.argsort(np.concatenate(snr), kind="stable")[:n_prune]] = True
    offsets = np.cumsum([0] + sizes)
    for (mu_path, rho_path), start, stop in zip(pairs, offsets[:-1], offsets[1:], strict=True):
        mu, rho = flat[mu_path], flat[rho_path]
        m = jnp.asarray(mask[start:stop].reshape(mu.shape))
        flat[mu_path] = jnp.where(m, jnp.zeros_like(mu), mu)
        flat[rho_path] = jnp.where(m, jnp.full_like(rho, PRUNED_RHO), rho)
    new_net = {**net, "params": traverse_util.unflatten_dict(flat)}
    if isinstance(params, BBBParams):
        return params._replace(net=new_net), n_prune
    return new_net, n_prune


class PruningTable(NamedTuple):
    """Test error after pruning, one row per fraction.

    Attributes:
        fraction: ``(k,)`` pruned fractions. n_kept: ``(k,)`` weights left.
        error: ``(k,)`` classification error rate of the averaged predictive probabilities, or
            RMSE of the predictive mean for regression.
    """

    fraction: np.ndarray
    n_kept: np.ndarray
    error: np.ndarray


def pruning_table(key: jax.Array, module: nn.Module, params: Any, x: Any, y: Any, *,
                  fractions: Sequence[float] = (0.0, 0.5, 0.75, 0.95, 0.98),
                  n_samples: int = 10, task: str = "classification") -> PruningTable:
    """Test error of the posterior predictive after pruning each fraction of the weights.

    The same ``key`` (hence the same noise) is used for every fraction, so the differences
    between rows come from the pruning alone.

    Args:
        key: PRNG key for the weight samples.
        module: the flax module; params: its :class:`BBBParams` (or flax variables).
        x: ``(n, ...)`` test inputs. y: ``(n,)`` labels (classification) or targets.
        fractions: fractions to prune, each in ``[0, 1)``.
        n_samples: posterior samples per prediction.
        task: ``"classification"`` (error rate) or ``"regression"`` (RMSE, noise ignored).
    """
    key = check_key(key)
    check_choice(task, "task", ("classification", "regression"))
    x = jax.tree.map(lambda a: as_float_array(a, "x"), x)
    if task == "classification":
        y = np.asarray(as_int_array(y, "y", ndim=1, shape_hint="(n,)", min_value=0))
    else:
        y = np.asarray(as_float_array(y, "y", ndim=1, shape_hint="(n,)"))
    rows = []
    for fraction in fractions:
        pruned, n_pruned = prune(params, fraction)
        n_total = sum(int(np.size(v)) for v in signal_to_noise(pruned).values())
        if task == "classification":
            probs = classification_predictive(key, module, pruned, x, n_samples=n_samples)
            err = float(np.mean(np.argmax(np.asarray(probs), axis=-1) != y))
        else:
            mean, _ = regression_predictive(key, module, pruned, x, n_samples=n_samples,
                                            noise_std=0.0)
            err = float(np.sqrt(np.mean((np.asarray(mean) - y) ** 2)))
        rows.append((float(fraction), n_total - n_pruned, err))
    fr, kept, errors = (np.asarray(c) for c in zip(*rows, strict=True))
    return PruningTable(fr, kept.astype(np.int64), errors)
