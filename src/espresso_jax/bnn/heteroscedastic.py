"""Aleatoric (heteroscedastic) uncertainty heads and losses, combined with MC dropout.

A network predicts, for each input, a mean ``f(x)`` and a log variance ``s(x) = log
sigma^2(x)`` (Kendall & Gal 2017, §3):

* regression (eq. 8): ``loss = 1/(2 sigma^2) ||y - f||^2 + 1/2 log sigma^2`` per example. It is
  the Gaussian negative log-likelihood without its constant:
  ``loss = -log N(y; f, sigma^2) - (D/2) log 2 pi``. Predicting ``s`` rather than ``sigma^2``
  keeps the loss finite and its gradient bounded away from division by zero.
* classification (eq. 12): the logits are corrupted by Gaussian noise ``u ~ N(f, diag
  sigma^2(x))`` and the loss is the MC-integrated likelihood
  ``-log 1/T sum_t softmax(u_t)_y`` (computed with log-sum-exp). As ``sigma -> 0`` it is the
  cross-entropy of ``f``.

Epistemic uncertainty comes from MC dropout (Gal & Ghahramani 2016): the head applies flax
``Dropout`` (rng stream ``"dropout"``) to the input of each of its Dense layers, at training and
at test time; :func:`mc_predict` draws ``T`` masks. Gal's weight-decay term of the dropout
objective is the optimiser's job (e.g. ``optax.add_decayed_weights``).

The losses returned by :func:`make_regression_loss` / :func:`make_classification_loss` have the
``loss_fn(params, batch, key)`` signature of :mod:`espresso_jax.train`, with ``batch = (x, y)``.

References:
    A. Kendall and Y. Gal, "What uncertainties do we need in Bayesian deep learning for
    computer vision?", NeurIPS 2017.
    D. A. Nix and A. S. Weigend, "Estimating the mean and variance of the target probability
    distribution", ICNN 1994.
    Y. Gal and Z. Ghahramani, "Dropout as a Bayesian approximation", ICML 2016.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike

from espresso_jax import metrics, train
from espresso_jax import validation as V
from espresso_jax.netcheck import check_network, check_optimizer, check_outputs
from espresso_jax.nn.supervised import TASKS
from espresso_jax.prob.draws import draw_flat
from espresso_jax.scaling import checked_exponent

__all__ = [
    "LOG_VAR_BOUND",
    "HeteroscedasticHead",
    "heteroscedastic_loss",
    "logit_noise_loss",
    "make_regression_loss",
    "make_classification_loss",
    "fit",
    "mc_predict",
    "logit_noise_probs",
    "predict_regression",
    "predict_classification",
]

LOG_VAR_BOUND = 30.0
"""The losses clip ``log sigma^2`` to ``[-30, 30]`` so ``exp(-s) * r^2`` cannot overflow float32
(an untrained head starts near ``s = 0``; a useful one never gets near the bound)."""


class HeteroscedasticHead(nn.Module):
    """Mean and log-variance head, with MC dropout, on top of an optional feature network.

    ``x -> body(x) -> [Dropout -> Dense(w) -> activation] for w in hidden -> Dropout ->
    Dense(2 * out_features) -> (mean, log_var)``. Dropout acts on the output of ``body`` and of
    every hidden layer, i.e. on the input of every Dense layer of the head except on the raw
    ``x`` when there is no ``body``.

    Attributes:
        out_features: ``D``, the number of regression outputs or classes.
        hidden: widths of the head's own hidden layers (e.g. ``(50,)``); may be empty.
        body: optional feature network (e.g. :class:`espresso_jax.nn.modules.MLP` with a
            ``final_activation``, or a conv net), called as ``body(x)``.
        activation: non-linearity of the hidden layers.
        dropout_rate: drop probability in ``[0, 1)`` (0 turns MC dropout off).

    Call: ``module.apply(params, x, rngs={"dropout": key})`` with ``x: (..., d)`` returns
    ``mean, log_var: (..., D)``; ``deterministic=True`` switches dropout off.
    """

    out_features: int = 1
    hidden: Sequence[int] = ()
    body: nn.Module | None = None
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = False
                 ) -> tuple[jax.Array, jax.Array]:
        h = x
        drop_first = self.body is not None
        if self.body is not None:
            h = self.body(h)
        for i, width in enumerate(self.hidden):
            if drop_first or i > 0:
                h = nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
            h = self.activation(nn.Dense(width, name=f"hidden_{i}")(h))
        if drop_first or self.hidden:
            h = nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
        out = nn.Dense(2 * self.out_features, name="out")(h)
        return out[..., : self.out_features], out[..., self.out_features:]


def _check_head(module: Any) -> HeteroscedasticHead:
    if not isinstance(module, HeteroscedasticHead):
        raise TypeError(f"module must be a HeteroscedasticHead, got {type(module).__name__}")
    V.check_int(module.out_features, "module.out_features", min_value=1)
    rate = V.check_probability(module.dropout_rate, "module.dropout_rate")
    if rate >= 1.0:
        raise ValueError(f"module.dropout_rate must be < 1, got {rate}")
    return module


# ----------------------------------------------------------------------- per-example losses
def _regression_loss_one(y: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """One example, ``y, mean, log_var (D,)``: ``sum_d exp(-s_d) r_d^2 / 2 + s_d / 2``."""
    s = jnp.clip(log_var, -LOG_VAR_BOUND, LOG_VAR_BOUND)
    return jnp.sum(0.5 * jnp.exp(-s) * jnp.square(y - mean) + 0.5 * s)


def _logit_noise_loss_one(key: jax.Array, label: jax.Array, mean: jax.Array,
                          log_var: jax.Array, n_samples: int) -> jax.Array:
    """One example, ``mean, log_var (C,)``: ``-log 1/T sum_t softmax(f + sigma eps_t)_y``."""
    s = jnp.clip(log_var, -LOG_VAR_BOUND, LOG_VAR_BOUND)
    eps = draw_flat(jax.random.normal, key, (n_samples,) + mean.shape, mean.dtype)
    u = mean[None, :] + jnp.exp(0.5 * s)[None, :] * eps                  # (T, C)
    log_p_y = jax.nn.log_softmax(u, axis=-1)[:, label]                   # (T,)
    return -(logsumexp(log_p_y) - math.log(n_samples))


@functools.partial(jax.jit, static_argnames="reduction")
def _heteroscedastic_loss(y, mean, log_var, reduction):
    return metrics.apply_reduction(jax.vmap(_regression_loss_one)(y, mean, log_var), reduction)


def _outputs(mean: Any, log_var: Any) -> tuple[jax.Array, jax.Array]:
    mean = V.as_float_array(mean, "mean", ndim=2, shape_hint="(n, D)")
    log_var = V.as_float_array(log_var, "log_var", ndim=2, shape_hint="(n, D)")
    if log_var.shape != mean.shape:
        raise ValueError(f"log_var must have the shape of mean {mean.shape}, got "
                         f"{log_var.shape}")
    return mean, log_var


def heteroscedastic_loss(y: ArrayLike, mean: ArrayLike, log_var: ArrayLike, *,
                         reduction: str = "mean") -> jax.Array:
    """Kendall & Gal's heteroscedastic regression loss (eq. 8) per example, reduced.

    ``loss_i = sum_d [exp(-s_id) (y_id - f_id)^2 / 2 + s_id / 2]``, which equals
    ``-log N(y_i; f_i, diag exp(s_i)) - (D/2) log 2 pi``.

    Args:
        y: ``(n, D)`` targets, or ``(n,)`` when ``D = 1``.
        mean: ``(n, D)`` predicted means ``f``.
        log_var: ``(n, D)`` predicted log variances ``s = log sigma^2`` (clipped to
            ``±LOG_VAR_BOUND``).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    """
    reduction = metrics.check_reduction(reduction)
    mean, log_var = _outputs(mean, log_var)
    y = V.as_float_array(y, "y", ndim=(1, 2), shape_hint="(n, D) or (n,)")
    if y.ndim == 1 and mean.shape[1] == 1:
        y = y[:, None]
    if y.shape != mean.shape:
        raise ValueError(f"y must have the shape of mean {mean.shape}, got {y.shape}")
    return _heteroscedastic_loss(y, mean, log_var, reduction)


@functools.partial(jax.jit, static_argnames=("n_samples", "reduction"))
def _logit_noise_loss(key, labels, mean, log_var, n_samples, reduction):
    keys = jax.random.split(key, labels.shape[0])
    values = jax.vmap(_logit_noise_loss_one, in_axes=(0, 0, 0, 0, None))(
        keys, labels, mean, log_var, n_samples)
    return metrics.apply_reduction(values, reduction)


def logit_noise_loss(key: jax.Array, labels: ArrayLike, mean: ArrayLike, log_var: ArrayLike,
                     *, n_samples: int, reduction: str = "mean") -> jax.Array:
    """Heteroscedastic classification loss (Kendall & Gal eq. 12), MC over logit noise.

    ``u_t = f + sigma * eps_t`` with ``eps_t ~ N(0, I)``, ``t = 1..T``, and
    ``loss_i = -log (1/T sum_t softmax(u_t)_{y_i})`` by log-sum-exp. With ``sigma -> 0`` it is
    the cross-entropy ``-log softmax(f)_y``.

    Args:
        key: PRNG key for the noise (one subkey per example).
        labels: ``(n,)`` integer classes in ``[0, C)``.
        mean: ``(n, C)`` logits ``f``.
        log_var: ``(n, C)`` log variances of the logit noise.
        n_samples: ``T`` noise draws per example.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    """
    key = V.check_key(key)
    n_samples = V.check_int(n_samples, "n_samples", min_value=1)
    reduction = metrics.check_reduction(reduction)
    mean, log_var = _outputs(mean, log_var)
    if mean.shape[1] < 2:
        raise ValueError(f"mean needs at least 2 classes (columns), got {mean.shape[1]}")
    labels = V.as_int_array(labels, "labels", ndim=1, shape_hint="(n,)", min_value=0,
                            max_value=mean.shape[1] - 1)
    V.check_same_length(labels=labels, mean=mean)
    return _logit_noise_loss(key, labels, mean, log_var, n_samples, reduction)


# -------------------------------------------------------------- loss_fn(params, batch, key)
def make_regression_loss(module: HeteroscedasticHead) -> Callable[..., jax.Array]:
    """``loss_fn(params, batch, key)`` for :mod:`espresso_jax.train`: the mean over the batch
    ``(x (M, d), y (M, D))`` of :func:`heteroscedastic_loss`, one dropout mask per example
    drawn from ``key``. The same module gives the same function (no recompilation)."""
    return _make_regression_loss(_check_head(module))


@functools.lru_cache(maxsize=64)
def _make_regression_loss(module):
    def loss_fn(params, batch, key):
        x, y = batch
        mean, log_var = module.apply(params, x, rngs={"dropout": key})
        y = y.reshape(mean.shape)
        return jnp.mean(jax.vmap(_regression_loss_one)(y, mean, log_var))

    return loss_fn


def make_classification_loss(module: HeteroscedasticHead, *,
                             n_samples: int) -> Callable[..., jax.Array]:
    """``loss_fn(params, batch, key)`` for :mod:`espresso_jax.train`: the mean over the batch
    ``(x (M, d), labels (M,) int)`` of :func:`logit_noise_loss` with ``n_samples`` logit-noise
    draws, under one dropout mask per example. ``key`` is split into dropout and noise keys."""
    module = _check_head(module)
    if module.out_features < 2:
        raise ValueError("module.out_features must be the number of classes (>= 2), got "
                         f"{module.out_features}")
    return _make_classification_loss(module, V.check_int(n_samples, "n_samples", min_value=1))


@functools.lru_cache(maxsize=64)
def _make_classification_loss(module, n_samples):
    def loss_fn(params, batch, key):
        x, labels = batch
        drop_key, noise_key = jax.random.split(key)
        mean, log_var = module.apply(params, x, rngs={"dropout": drop_key})
        keys = jax.random.split(noise_key, labels.shape[0])
        values = jax.vmap(_logit_noise_loss_one, in_axes=(0, 0, 0, 0, None))(
            keys, labels, mean, log_var, n_samples)
        return jnp.mean(values)

    return loss_fn


def fit(key: jax.Array, X: ArrayLike, y: ArrayLike, *, module: HeteroscedasticHead,
        optimizer: optax.GradientTransformation, batch_size: int, n_epochs: int,
        task: str = "regression", n_samples: int = 10, params: Any = None,
        **loop_options: Any) -> train.FitResult:
    """Fit a heteroscedastic head with :func:`espresso_jax.train.fit`.

    Args:
        key: PRNG key. Without ``params`` it splits into the initialisation key and the
            training key (dropout masks, logit noise, shuffling); with ``params`` all of it
            trains.
        X: ``(n_samples, d)`` inputs.
        y: ``(n_samples,)`` or ``(n_samples, D)`` targets (``"regression"``, the loss of
            :func:`make_regression_loss`) or ``(n_samples,)`` integer labels in ``[0, D)``
            (``"classification"``, :func:`make_classification_loss`).
        module: the :class:`HeteroscedasticHead`.
        optimizer: optax optimiser (no default: it is part of the experiment).
        batch_size: rows per minibatch. n_epochs: epochs to run.
        task: ``"regression"`` or ``"classification"``.
        n_samples: logit-noise draws per example and step (classification only).
        params: initial parameters (default ``module.init(init_key, X[:1],
            deterministic=True)``).
        **loop_options: passed to :func:`espresso_jax.train.fit_loop`.

    Returns:
        :class:`espresso_jax.train.FitResult`; ``history["loss"]`` is the per-epoch mean loss.

    Raises:
        ValueError: naming ``X`` (NaN, rank, a width the head does not take), ``y`` (NaN, a
            label out of range, a length other than ``X``'s, a shape other than the head's
            outputs) or ``params`` (another network's).
        TypeError: ``optimizer`` is not an optax ``GradientTransformation``.
    """
    key = V.check_key(key)
    V.check_choice(task, "task", TASKS)
    module = _check_head(module)
    optimizer = check_optimizer(optimizer)
    if task == "classification":
        loss = make_classification_loss(module, n_samples=n_samples)
    else:
        loss = make_regression_loss(module)
    X = V.as_float_array(X, "X", ndim=2, shape_hint="(n_samples, d)")
    # a magnitude of X whose square leaves the dtype ends in "training diverged": say instead
    # how to rescale X (and y below, whose squared residuals the Gaussian loss takes)
    checked_exponent(X, "X", kind="magnitude", what="the network's squared activations")

    def init(k, x):
        return module.init(k, x, deterministic=True)

    def forward(p, x):
        return module.apply(p, x, deterministic=True)[0]

    key, init_key, out = train.check_init(key, init, forward, params, X[:1])
    if task == "classification":
        y = V.check_targets(y, X.shape[0], n_classes=out.shape[-1])
    else:
        y = V.check_targets(y, X.shape[0], ndim=(1, 2))
        check_outputs(y, out)
        checked_exponent(y.reshape(y.shape[0], -1), "y", kind="magnitude",
                         what="the squared residuals of the Gaussian loss")
    if init_key is not None:
        params = init(init_key, X[:1])
    loop_options.setdefault("desc", "heteroscedastic")
    return train.fit(key, loss, params, (X, y), optimizer=optimizer, batch_size=batch_size,
                     n_epochs=n_epochs, **loop_options)


# ------------------------------------------------------------------------------ prediction
@functools.partial(jax.jit, static_argnames=("module", "n_samples"))
def _mc_predict(key, module, params, x, n_samples):
    def one(k):
        deterministic = module.dropout_rate == 0.0
        return module.apply(params, x, rngs={"dropout": k}, deterministic=deterministic)

    return jax.vmap(one)(jax.random.split(key, n_samples))


def mc_predict(key: jax.Array, module: HeteroscedasticHead, params: Any, X: ArrayLike, *,
               n_samples: int) -> tuple[jax.Array, jax.Array]:
    """``T`` stochastic forward passes (MC dropout), vmapped over dropout keys.

    Args:
        key: PRNG key (split into ``n_samples`` dropout keys).
        module: the trained :class:`HeteroscedasticHead`.
        params: its parameters.
        X: ``(n, d)`` inputs (or whatever ``module.body`` takes, with a leading ``n`` axis).
        n_samples: ``T`` dropout masks.

    Returns:
        ``mean_t, log_var_t``: ``(T, n, D)`` each.
    """
    key = V.check_key(key)
    module = _check_head(module)
    n_samples = V.check_int(n_samples, "n_samples", min_value=1)
    X = V.as_float_array(X, "X", ndim=(2, 3, 4), shape_hint="(n, ...)")
    check_network(lambda x: module.init(jax.random.key(0), x, deterministic=True),
                  lambda p, x: module.apply(p, x, deterministic=True), params, X[:1])
    return _mc_predict(key, module, params, X, n_samples)


@functools.partial(jax.jit, static_argnames="n_samples")
def _logit_noise_probs(key, mean, log_var, n_samples):
    s = jnp.clip(log_var, -LOG_VAR_BOUND, LOG_VAR_BOUND)
    eps = draw_flat(jax.random.normal, key, (n_samples,) + mean.shape, mean.dtype)
    u = mean[None] + jnp.exp(0.5 * s)[None] * eps
    return jnp.mean(jax.nn.softmax(u, axis=-1), axis=0)


def logit_noise_probs(key: jax.Array, mean: ArrayLike, log_var: ArrayLike, *,
                      n_samples: int) -> jax.Array:
    """MC estimate of ``E_eps[softmax(f + sigma * eps)]`` over ``n_samples`` logit-noise draws.

    Args:
        key: PRNG key.
        mean: ``(..., C)`` logits ``f`` (e.g. ``(T, n, C)`` from :func:`mc_predict`).
        log_var: ``(..., C)`` logit-noise log variances, same shape.
        n_samples: noise draws.

    Returns:
        ``(..., C)`` class probabilities.
    """
    key = V.check_key(key)
    n_samples = V.check_int(n_samples, "n_samples", min_value=1)
    mean = V.as_float_array(mean, "mean", ndim=(1, 2, 3), shape_hint="(..., C)")
    log_var = V.as_float_array(log_var, "log_var", ndim=mean.ndim, shape_hint="(..., C)")
    if log_var.shape != mean.shape:
        raise ValueError(f"log_var must have the shape of mean {mean.shape}, got "
                         f"{log_var.shape}")
    return _logit_noise_probs(key, mean, log_var, n_samples)


def predict_regression(key: jax.Array, module: HeteroscedasticHead, params: Any, X: ArrayLike,
                       *, n_samples: int) -> metrics.RegressionUncertainty:
    """MC-dropout predictive of a one-output regression head, split into epistemic (variance
    of the dropout means) and aleatoric (mean of ``sigma^2(x)``) variances, ``(n,)`` each."""
    if isinstance(module, HeteroscedasticHead) and module.out_features != 1:
        raise ValueError("predict_regression needs module.out_features == 1, got "
                         f"{module.out_features}; decompose each output of mc_predict instead")
    mean_t, log_var_t = mc_predict(key, module, params, X, n_samples=n_samples)
    return metrics.decompose_regression(mean_t[..., 0], jnp.exp(log_var_t[..., 0]))


def predict_classification(key: jax.Array, module: HeteroscedasticHead, params: Any,
                           X: ArrayLike, *, n_samples: int, n_logit_samples: int) -> jax.Array:
    """Per-dropout-sample class probabilities ``(T, n, C)``, each averaged over
    ``n_logit_samples`` logit-noise draws; pass them to
    :func:`espresso_jax.metrics.decompose_classification` (its mutual information is
    then the epistemic part, its expected entropy the aleatoric part)."""
    key = V.check_key(key)
    drop_key, noise_key = jax.random.split(key)
    mean_t, log_var_t = mc_predict(drop_key, module, params, X, n_samples=n_samples)
    return logit_noise_probs(noise_key, mean_t, log_var_t, n_samples=n_logit_samples)
