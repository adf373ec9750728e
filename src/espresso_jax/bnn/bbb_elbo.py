"""Bayes by Backprop training: the minibatch ELBO, KL re-weighting schedules and predictives.

Loss convention. An epoch over ``N`` training points has ``M = N // B`` minibatches of size
``B`` (the engine drops the remainder). Minibatch ``i`` (0-based, ``i = step % M``) gets

    loss_i = M * pi_i * KL(q || p) - (N / B) * sum_{(x, y) in batch i} log p(y | x, w_i)

with ``w_i ~ q`` and KL re-weights ``pi_i`` that sum to one over the epoch: ``"uniform"``
``pi_i = 1 / M`` and ``"blundell"`` ``pi_i = 2^(M-i-1) / (2^M - 1)`` (Blundell et al. 2015, eq. 9,
with their 1-based index). Each ``loss_i`` is on the scale of the full-data negative ELBO
``KL - sum_n log p(y_n | x_n, w)``, and the *mean* of the ``loss_i`` over an epoch equals it
(exactly for a fixed weight sample when ``N = M B``; in expectation otherwise), so learning
rates do not depend on the batch size. ``normalize=True`` divides everything by ``N``.

The schedule needs the minibatch index, which a loss ``(params, batch, key)`` does not see:
:func:`make_step` wraps :func:`espresso_jax.train.make_step` and adds ``batch["kl_weight"] =
pi_{step % M}`` from the train state's step counter before calling it. ``run_epochs`` runs
exactly ``M`` steps per epoch from step 0, so ``step % M`` is the index within the epoch.

References:
    Blundell, Cornebise, Kavukcuoglu, Wierstra (2015). Weight Uncertainty in Neural Networks.
    ICML.
    Graves (2011). Practical Variational Inference for Neural Networks. NeurIPS.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from espresso_jax import train
from espresso_jax.bnn import bbb
from espresso_jax.netcheck import check_network, check_optimizer, check_outputs
from espresso_jax.nn.supervised import TASKS
from espresso_jax.prob.gaussian import gaussian_log_density
from espresso_jax.validation import (
    as_float_array,
    check_choice,
    check_int,
    check_key,
    check_positive,
    check_same_length,
    check_targets,
    float_dtype,
)

__all__ = [
    "SCHEDULES",
    "LIKELIHOODS",
    "LIKELIHOOD_OF_TASK",
    "BBBParams",
    "init_params",
    "kl_weight",
    "kl_weights",
    "log_likelihood",
    "ELBOLoss",
    "make_step",
    "fit",
    "sample_outputs",
    "regression_predictive",
    "classification_predictive",
]

SCHEDULES = ("uniform", "blundell")
LIKELIHOODS = ("gaussian", "categorical")
# the likelihood of each supervised task, as every neural fit names it (``task=``)
LIKELIHOOD_OF_TASK = {"regression": "gaussian", "classification": "categorical"}


class BBBParams(NamedTuple):
    """Trainable parameters of a Bayes-by-Backprop model.

    Attributes:
        net: flax variables ``{"params": ...}`` of the module (posterior ``*_mu``/``*_rho``).
        log_noise_std: scalar log of the Gaussian noise std when it is learned (a point
            estimate), else None.
    """

    net: Any
    log_noise_std: jax.Array | None = None


def init_params(key: jax.Array, module: nn.Module, x: Any, *,
                noise_std: float | None = None) -> BBBParams:
    """Initialise a module's posterior; ``noise_std`` (if given) starts a learned noise std.

    Args:
        key: PRNG key.
        module: flax module built from Bayesian layers.
        x: example input ``(batch, ...)`` fixing the shapes.
        noise_std: initial Gaussian noise std to learn (regression with learned noise); None
            for classification or a fixed noise.
    """
    key = check_key(key)
    x = jax.tree.map(lambda a: as_float_array(a, "x"), x)
    log_noise = None
    if noise_std is not None:
        log_noise = jnp.asarray(math.log(check_positive(noise_std, "noise_std")), float_dtype())
    return BBBParams(bbb.init(key, module, x), log_noise)


def kl_weight(index: jax.Array, n_batches: int, schedule: str) -> jax.Array:
    """KL weight ``pi_i`` of minibatch ``index`` (0-based) in an epoch of ``n_batches``.

    ``"uniform"``: ``1 / M``. ``"blundell"``: ``2^(M-i-1) / (2^M - 1)``, evaluated as
    ``2^-(i+1) / (1 - 2^-M)`` so that large ``M`` does not overflow (late weights underflow to
    0, as they should). Jittable in ``index``.
    """
    check_choice(schedule, "schedule", SCHEDULES)
    dtype = float_dtype()
    if schedule == "uniform":
        return jnp.full((), 1.0 / n_batches, dtype)
    i = jnp.asarray(index).astype(dtype)
    return jnp.exp2(-(i + 1.0)) / (-math.expm1(-n_batches * math.log(2.0)))


def kl_weights(n_batches: int, schedule: str) -> jax.Array:
    """All ``(n_batches,)`` KL weights of one epoch (they sum to 1)."""
    n_batches = check_int(n_batches, "n_batches", min_value=1)
    check_choice(schedule, "schedule", SCHEDULES)
    return jax.vmap(lambda i: kl_weight(i, n_batches, schedule))(jnp.arange(n_batches))


def log_likelihood(likelihood: str, outputs: jax.Array, y: jax.Array,
                   log_noise_std: jax.Array | None = None) -> jax.Array:
    """Per-example ``log p(y | outputs)``, shape ``(batch,)``.

    Args:
        likelihood: ``"gaussian"`` (``outputs`` ``(batch,)`` or ``(batch, 1)`` means, or
            ``(batch, k)`` for a ``(batch, k)`` target; ``log_noise_std`` scalar) or
            ``"categorical"`` (``outputs`` ``(batch, classes)`` logits, ``y`` int labels).
    """
    if likelihood == "categorical":
        logp = jax.nn.log_softmax(outputs, axis=-1)
        return jnp.take_along_axis(logp, y.astype(jnp.int32)[:, None], axis=-1)[:, 0]
    if outputs.ndim == y.ndim + 1 and outputs.shape[-1] == 1:
        outputs = outputs[..., 0]
    if log_noise_std is None:
        raise ValueError("the Gaussian likelihood needs a noise std: pass noise_std to ELBOLoss "
                         "or learn it (init_params(..., noise_std=...))")
    z = (y - outputs) * jnp.exp(-log_noise_std)
    per = gaussian_log_density(jnp.square(z), 2.0 * log_noise_std)
    return per.reshape(per.shape[0], -1).sum(axis=1)


@dataclasses.dataclass(frozen=True)
class ELBOLoss:
    """Minibatch negative ELBO ``loss(params, batch, key) -> (loss, aux)`` for the engine.

    ``batch`` is a dict with ``"x"`` and ``"y"`` and, optionally, ``"kl_weight"`` (``pi_i``; the
    uniform ``1 / M`` when absent) that :func:`make_step` fills in. See the module docstring for
    the scaling. ``aux`` holds ``"nll"`` (the scaled data term), ``"kl"`` and ``"kl_weight"``.
    Frozen and hashable, so the engine compiles its step once.

    Attributes:
        module: flax module of Bayesian layers.
        n_data: ``N``, the size of the training set.
        likelihood: ``"gaussian"`` or ``"categorical"``.
        noise_std: fixed Gaussian noise std; None learns ``params.log_noise_std``.
        normalize: divide the loss by ``N`` (per-example scale).
    """

    module: nn.Module
    n_data: int
    likelihood: str
    noise_std: float | None = None
    normalize: bool = False

    def __post_init__(self) -> None:
        check_int(self.n_data, "n_data", min_value=1)
        check_choice(self.likelihood, "likelihood", LIKELIHOODS)
        if self.noise_std is not None:
            check_positive(self.noise_std, "noise_std")

    def __call__(self, params: BBBParams, batch: dict[str, jax.Array], key: jax.Array
                 ) -> tuple[jax.Array, dict[str, jax.Array]]:
        x, y = batch["x"], batch["y"]
        n_batch = y.shape[0]
        n_batches = max(1, self.n_data // n_batch)
        weight = batch.get("kl_weight")
        if weight is None:
            weight = jnp.full((), 1.0 / n_batches, float_dtype())
        outputs, kl = bbb.apply(key, self.module, params.net, x)
        log_noise = params.log_noise_std
        if self.noise_std is not None:
            log_noise = jnp.asarray(math.log(self.noise_std), outputs.dtype)
        ll = log_likelihood(self.likelihood, outputs, y, log_noise)
        nll = -(self.n_data / n_batch) * jnp.sum(ll)
        kl_term = (n_batches * weight) * kl
        loss = kl_term + nll
        if self.normalize:
            loss, nll, kl_term = loss / self.n_data, nll / self.n_data, kl_term / self.n_data
        return loss, {"nll": nll, "kl": kl_term, "kl_weight": weight}


def make_step(loss_fn: Any, optimizer: optax.GradientTransformation, *, n_batches: int,
              schedule: str) -> train.StepFn:
    """A training step that feeds the scheduled KL weight to ``loss_fn``.

    The step computes ``pi_{state.step % n_batches}`` and calls the engine's step
    (:func:`espresso_jax.train.make_step` with ``has_aux=True``) on ``{**batch, "kl_weight":
    pi}``. Cached on its arguments, so repeated fits compile once.

    Args:
        loss_fn: e.g. an :class:`ELBOLoss`, returning ``(loss, aux)``.
        optimizer: optax optimiser.
        n_batches: minibatches per epoch ``M = n_rows // batch_size``.
        schedule: ``"uniform"`` or ``"blundell"``.
    """
    n_batches = check_int(n_batches, "n_batches", min_value=1)
    check_choice(schedule, "schedule", SCHEDULES)
    return _make_step(loss_fn, optimizer, n_batches, schedule)


@functools.lru_cache(maxsize=64)
def _make_step(loss_fn, optimizer, n_batches, schedule):
    inner = train.make_step(loss_fn, optimizer, has_aux=True)

    def step(state: train.TrainState, batch: dict[str, jax.Array]):
        weight = kl_weight(state.step % n_batches, n_batches, schedule)
        return inner(state, {**batch, "kl_weight": weight})

    return step


def fit(key: jax.Array, X: Any, y: Any, *, module: nn.Module,
        optimizer: optax.GradientTransformation, batch_size: int, n_epochs: int,
        task: str, params: BBBParams | None = None, noise_std: float | None = None,
        schedule: str = "uniform", normalize: bool = False,
        **loop_options: Any) -> train.FitResult:
    """Fit a Bayes-by-Backprop model with the engine's :func:`~espresso_jax.train.fit_loop`.

    Args:
        key: PRNG key. Without ``params`` it splits into the initialisation key and the
            training key; the training key splits into the shuffling key and the state's step
            key.
        X: ``(n, ...)`` inputs (or a pytree of them for a multi-input module).
        y: ``(n,)`` or ``(n, k)`` targets (``"regression"``) or ``(n,)`` integer labels in
            ``[0, n_classes)`` (``"classification"``).
        module: flax module of Bayesian layers.
        optimizer: optax optimiser. batch_size, n_epochs: as in the engine.
        task: ``"regression"`` (Gaussian likelihood) or ``"classification"`` (categorical),
            as in every neural fit of the library (:data:`LIKELIHOOD_OF_TASK`).
        params: initial :class:`BBBParams` (default :func:`init_params` without a learned
            noise; pass ``init_params(..., noise_std=...)`` to learn the noise std).
        noise_std: fixed noise std (Gaussian); None learns ``params.log_noise_std``.
        schedule: KL re-weighting, ``"uniform"`` or ``"blundell"``.
        normalize: per-example loss scale (divide by ``n``).
        **loop_options: passed to :func:`espresso_jax.train.fit_loop`.

    Returns:
        :class:`espresso_jax.train.FitResult`; its history holds ``loss``, ``nll``, ``kl``.

    Raises:
        ValueError: naming ``X`` (NaN, rank, a shape the module does not take), ``y`` (NaN, a
            label out of range, a length other than ``X``'s, a shape other than the
            network's outputs), ``params.net`` (another network's) or ``noise_std``.
        TypeError: ``optimizer`` is not an optax ``GradientTransformation``.
    """
    key = check_key(key)
    likelihood = LIKELIHOOD_OF_TASK[check_choice(task, "task", TASKS)]
    check_choice(schedule, "schedule", SCHEDULES)
    optimizer = check_optimizer(optimizer)
    X = jax.tree.map(lambda a: as_float_array(a, "X", ndim=(2, 3, 4, 5),
                                              shape_hint="(n, ...)"), X)
    if params is not None and not isinstance(params, BBBParams):
        raise TypeError(f"params must be BBBParams (init_params), got {type(params).__name__}")
    if likelihood == "gaussian" and noise_std is None and (params is None
                                                            or params.log_noise_std is None):
        raise ValueError("noise_std is None but there is no learned noise: pass a fixed "
                         "noise_std or params=init_params(..., noise_std=...) to learn it")
    x1 = jax.tree.map(lambda a: a[:1], X)

    def forward(p, x):
        return bbb.apply(jax.random.key(0), module, p, x)[0]

    key, init_key, out = train.check_init(key, lambda k, x: bbb.init(k, module, x), forward,
                                          None if params is None else params.net, x1,
                                          params_name="params.net")
    n = check_same_length(**{f"X[{i}]": a for i, a in enumerate(jax.tree.leaves(X))})
    if likelihood == "categorical":
        if len(out.shape) != 2:   # e.g. a dense net applied to the last axis of a 3-D X
            raise ValueError(
                f"X has rows of shape {tuple(jax.tree.leaves(x1)[0].shape[1:])} and the network "
                f"gives outputs of shape {tuple(out.shape[1:])} per row; the categorical "
                f"likelihood needs one vector of class logits per row: pass X of the shape "
                f"the network takes (a BayesMLP: (n, n_features))")
        y = check_targets(y, n, n_classes=out.shape[-1])
    else:
        y = check_targets(y, n, ndim=(1, 2))
        check_outputs(y, out)
    if init_key is not None:
        params = init_params(init_key, module, x1)
    batch_size = check_int(batch_size, "batch_size", min_value=1, max_value=n)
    loss = ELBOLoss(module, n, likelihood, noise_std, normalize)
    shuffle_key, step_key = jax.random.split(key)
    state = train.init_state(step_key, params, optimizer)
    step = make_step(loss, optimizer, n_batches=n // batch_size, schedule=schedule)
    return train.fit_loop(shuffle_key, step, state, {"x": X, "y": y}, batch_size=batch_size,
                          n_epochs=n_epochs, **loop_options)


# ----------------------------------------------------------------------------- predictive


@functools.partial(jax.jit, static_argnames=("module", "n_samples"))
def _sample_outputs(key, module, net, x, n_samples):
    def one(k):
        return bbb.apply(k, module, net, x)[0]
    return jax.vmap(one)(jax.random.split(key, n_samples))


def sample_outputs(key: jax.Array, module: nn.Module, params: BBBParams | Any, x: Any, *,
                   n_samples: int) -> jax.Array:
    """Network outputs under ``n_samples`` posterior weight samples, ``(S, n, ...)`` (jitted,
    vmapped over the sample keys). ``params`` is :class:`BBBParams` or flax variables; ``x``
    an array ``(n, ...)`` or a pytree of arrays for a multi-input module."""
    key = check_key(key)
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    x = jax.tree.map(lambda a: as_float_array(a, "x"), x)
    net = params.net if isinstance(params, BBBParams) else params
    x1 = jax.tree.map(lambda a: a[:1], x)
    check_network(lambda a: bbb.init(jax.random.key(0), module, a),
                  lambda p, a: bbb.apply(jax.random.key(0), module, p, a)[0], net, x1,
                  name="x")
    return _sample_outputs(key, module, net, x, n_samples)


def regression_predictive(key: jax.Array, module: nn.Module, params: BBBParams, x: Any, *,
                          n_samples: int, noise_std: float | None = None
                          ) -> tuple[jax.Array, jax.Array]:
    """Predictive mean and variance of a Gaussian-likelihood model, each ``(n,)`` (or
    ``(n, k)``): ``mean = E_w f(x, w)``, ``var = Var_w f(x, w) + noise_std^2`` (the epistemic
    variance over the ``S`` samples, divisor ``S``, plus the aleatoric noise; ``noise_std=0``
    gives the epistemic part alone). ``noise_std=None`` uses the learned
    ``params.log_noise_std``."""
    out = sample_outputs(key, module, params, x, n_samples=n_samples)
    if out.ndim == 3 and out.shape[-1] == 1:
        out = out[..., 0]
    if noise_std is None:
        if params.log_noise_std is None:
            raise ValueError("noise_std is None and params.log_noise_std is None")
        noise_var = jnp.exp(2.0 * params.log_noise_std)
    else:
        noise_var = jnp.asarray(check_positive(noise_std, "noise_std", allow_zero=True) ** 2)
    return jnp.mean(out, axis=0), jnp.var(out, axis=0) + noise_var


def classification_predictive(key: jax.Array, module: nn.Module, params: BBBParams | Any,
                              x: Any, *, n_samples: int) -> jax.Array:
    """Posterior predictive class probabilities ``(n, classes)``: the softmax of the logits
    averaged over ``n_samples`` weight samples."""
    logits = sample_outputs(key, module, params, x, n_samples=n_samples)
    return jnp.mean(jax.nn.softmax(logits, axis=-1), axis=0)
