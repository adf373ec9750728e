"""Deep ensembles (Lakshminarayanan, Pritzel & Blundell 2017): ``M`` independently initialised
networks trained with a proper scoring rule (the Gaussian negative log-likelihood of a
heteroscedastic head, or softmax cross-entropy), optionally with adversarial training, and
combined as an equal-weight mixture.

Layout. The ``M`` members' parameters are one pytree whose leaves carry a leading member axis
``(M, ...)`` (:func:`init_members`: ``vmap`` of an initialiser over ``M`` keys).

Training (:func:`train_members`, one compiled call). The members are trained by a ``vmap`` over
member keys of :func:`espresso_jax.train.run_epochs`, not by one optimiser on the summed loss:
each member gets its own key, split into its step key and its shuffling key, so members see
independent minibatch orders, as in the paper ("random initialization of the NN parameters,
along with random shuffling of the data points"), and member ``m`` equals the same engine run
on member ``m`` alone. (With an element-wise optimiser such as Adam, one optimiser on the sum
of the member losses would also update each member by its own gradient, but every member would
see the same minibatches; the UCI protocol's interface, which hands one batch to one loss, is
where that form is used: :mod:`espresso_jax.apps.uci.ensemble`.)

Regression loss: the members are :class:`espresso_jax.bnn.heteroscedastic.HeteroscedasticHead`
networks and the loss is :func:`espresso_jax.bnn.heteroscedastic.make_regression_loss`, the
Gaussian negative log-likelihood without its constant, with a log-variance output (the paper
used ``softplus + 1e-6`` for the variance; the library's head predicts ``log sigma^2``).

Adversarial training (:func:`adversarial_loss`, optional): the fast gradient sign example
``x' = x + eps * sign(grad_x loss(x, y))`` (Goodfellow et al. 2015) with ``eps`` per input
dimension (the paper: 1 % of the training range of each dimension, :func:`input_range_epsilon`),
treated as data (no gradient through ``x'``); the objective is ``loss(x, y) + loss(x', y)``.

Prediction: :func:`member_outputs` gives the members' means and variances ``(M, n)``;
:func:`mixture_predictive` the mixture's mean and variance (mean of the variances plus variance
of the means, :func:`espresso_jax.metrics.decompose_regression`); :func:`mixture_log_density`
the mixture's log-density (:func:`espresso_jax.metrics.mc_log_likelihood`). Classification
members (softmax): :func:`classification_predictive` averages their probabilities.

References:
    B. Lakshminarayanan, A. Pritzel and C. Blundell. Simple and scalable predictive uncertainty
    estimation using deep ensembles. NeurIPS 2017.
    I. Goodfellow, J. Shlens and C. Szegedy. Explaining and harnessing adversarial examples.
    ICLR 2015.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from espresso_jax import metrics, train
from espresso_jax import validation as V
from espresso_jax.bnn.heteroscedastic import (
    HeteroscedasticHead,
    heteroscedastic_loss,
    make_regression_loss,
)

__all__ = [
    "init_members",
    "input_range_epsilon",
    "fgsm_example",
    "adversarial_loss",
    "run_members",
    "train_members",
    "MIN_VARIANCE",
    "log_variance",
    "make_member_loss",
    "apply_members",
    "member_outputs",
    "mixture_predictive",
    "mixture_log_density",
    "classification_predictive",
    "fit_regression",
    "CLIP_NORM",
    "clipped_adam",
]

PyTree = Any

MIN_VARIANCE = 1e-6
"""Floor added to the softplus variance (the paper's footnote 2)."""

LINKS = ("softplus", "exp")

CLIP_NORM = 10.0
"""Default global gradient-norm bound of :func:`clipped_adam` (see there)."""


def clipped_adam(learning_rate: float = 0.1,
                 clip_norm: float | None = CLIP_NORM) -> optax.GradientTransformation:
    """Adam after clipping the minibatch gradient's global norm to ``clip_norm`` (None: plain
    Adam); the defaults are the paper's fixed rate 0.1 with the bound that makes it train.

    Why the clipping. Without it, some members trained at rate 0.1 end far from the data (boston,
    20 splits, adversarial training: ensemble test RMSE 8.72 against the paper's 3.28). Their
    failure follows rare gradient spikes: the heteroscedastic loss's gradient grows like
    ``r^2 / sigma^2`` on a point the member is over-confident about, and one spike 10-1000x the
    usual norm puts Adam's first moment far from its second moment's square root, so the next
    ~10 steps each move the weights by up to ~3x the rate in the spike's direction. Measured on
    boston split 0, 20 members trained alone (200 steps): the 7 members that failed (final loss
    > 0.5, test RMSE 0.5-23 target sds) had a largest gradient norm of 102-3,075 and 5-12 steps
    above 10x their median norm; the 9 that trained well (final loss < -1.2) at most 99 and 2;
    with the bound of 10 all 20 train well (final loss -1.19 to -1.57, test RMSE 0.22-0.33 sd).
    The bound rarely binds (median norms are 3-5). The same arguments return the same object,
    so jitted training is not recompiled.

    With the bound, rate 0.1 no longer fails, but on the UCI Table 1 protocol it is still worse
    than plain Adam at 0.01 on six of the nine sets (``benchmarks/RESULTS.md``), so
    :func:`fit_regression` and :func:`espresso_jax.apps.uci.ensemble.run_table1` default to
    ``clipped_adam(0.01, None)``, plain Adam at 0.01.
    """
    learning_rate = V.check_positive(learning_rate, "learning_rate")
    if clip_norm is not None:
        clip_norm = V.check_positive(clip_norm, "clip_norm")
    return _clipped_adam(learning_rate, clip_norm)


@functools.lru_cache(maxsize=16)
def _clipped_adam(learning_rate, clip_norm):
    adam = optax.adam(learning_rate)
    if clip_norm is None:
        return adam
    return optax.chain(optax.clip_by_global_norm(clip_norm), adam)


def log_variance(raw: jax.Array, link: str) -> jax.Array:
    """The log-variance of a head's second output ``raw``: ``log(softplus(raw) + 1e-6)`` for
    ``link="softplus"`` (the paper's positivity constraint), ``raw`` itself for ``"exp"`` (the
    head's own log-variance output, :mod:`espresso_jax.bnn.heteroscedastic`). Pure, any shape.

    The softplus link is the stabler one at large learning rates: a member whose ``raw`` runs
    high keeps a ``1 / (2 raw)`` gradient pulling its variance back, where the ``exp`` link's
    clipped log-variance (``LOG_VAR_BOUND``) has none once past the bound, and that member
    stops learning its mean. Measured with plain Adam at the paper's rate 0.1 on boston (20
    splits, adversarial training): test RMSE 33.4 with ``"exp"``, 8.7 with ``"softplus"``; the
    cause of the remaining failures is gradient spikes, which :func:`clipped_adam` clips.
    """
    if link == "softplus":
        return jnp.log(jax.nn.softplus(raw) + MIN_VARIANCE)
    return raw


def make_member_loss(module: HeteroscedasticHead,
                     link: str = "softplus") -> Callable[..., jax.Array]:
    """``loss_fn(params, (x (m, d), y (m,)), key)`` of ONE member: the mean heteroscedastic
    Gaussian loss (:func:`espresso_jax.bnn.heteroscedastic.heteroscedastic_loss`, i.e. the
    negative log-likelihood without its constant) of a one-output head whose log-variance is
    :func:`log_variance` of its second output. ``link="exp"`` is
    :func:`~espresso_jax.bnn.heteroscedastic.make_regression_loss` itself."""
    if not isinstance(module, HeteroscedasticHead) or module.out_features != 1:
        raise TypeError("module must be a HeteroscedasticHead with out_features == 1")
    V.check_choice(link, "link", LINKS)
    if link == "exp":
        return make_regression_loss(module)
    return _softplus_loss(module)


@functools.lru_cache(maxsize=64)
def _softplus_loss(module):
    def loss_fn(params, batch, key):
        x, y = batch
        mean, raw = module.apply(params, x, rngs={"dropout": key})
        return heteroscedastic_loss(y.reshape(mean.shape), mean, log_variance(raw, "softplus"))

    return loss_fn


def _n_members(params: PyTree, name: str = "params") -> int:
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError(f"{name} has no array leaves")
    sizes = {int(np.shape(a)[0]) if np.ndim(a) else -1 for a in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"every leaf of {name} needs the same leading member axis (M, ...), "
                         f"got leading sizes {sorted(sizes)}")
    return sizes.pop()


def init_members(key: jax.Array, init_fn: Callable[[jax.Array], PyTree],
                 n_members: int) -> PyTree:
    """Independently initialise ``M`` members: ``vmap(init_fn)`` over ``split(key, M)``.

    Args:
        key: PRNG key. init_fn: ``key -> params`` of one member (pure).
        n_members: ``M >= 1``.

    Returns:
        The members' parameters, every leaf ``(M, ...)``.
    """
    key = V.check_key(key)
    n_members = V.check_int(n_members, "n_members", min_value=1)
    if not callable(init_fn):
        raise TypeError(f"init_fn must be callable, got {type(init_fn).__name__}")
    return jax.vmap(init_fn)(jax.random.split(key, n_members))


def input_range_epsilon(X: ArrayLike, fraction: float = 0.01) -> jax.Array:
    """The paper's FGSM step per input dimension: ``fraction * (max - min)`` of each column of
    the training inputs ``X (N, d)``; returns ``(d,)``."""
    fraction = V.check_positive(fraction, "fraction", allow_zero=True)
    X = V.as_float_array(X, "X", ndim=2, shape_hint="(N, d)")
    return fraction * (jnp.max(X, axis=0) - jnp.min(X, axis=0))


def fgsm_example(loss_fn: Callable[..., jax.Array], params: PyTree, batch: tuple[Any, Any],
                 key: jax.Array, epsilon: ArrayLike) -> jax.Array:
    """Fast gradient sign example ``x' = x + eps * sign(grad_x loss_fn(params, (x, y), key))``.

    Pure and jittable (no checks: see :func:`adversarial_loss`). ``batch = (x (m, d), y)``;
    ``epsilon`` a scalar or ``(d,)``. The result carries no gradient (it is treated as data).
    """
    x, y = batch
    grad_x = jax.grad(lambda z: loss_fn(params, (z, y), key))(x)
    step = jnp.broadcast_to(jnp.asarray(epsilon, x.dtype), x.shape)
    return jax.lax.stop_gradient(x + step * jnp.sign(grad_x))


def adversarial_loss(loss_fn: Callable[..., jax.Array],
                     epsilon: ArrayLike) -> Callable[..., jax.Array]:
    """``loss_fn(params, (x, y), key) + loss_fn(params, (x', y), key)`` with ``x'`` the
    :func:`fgsm_example` (the paper's adversarial training objective).

    Args:
        loss_fn: ``(params, batch, key) -> scalar``, ``batch = (x (m, d), y)``.
        epsilon: FGSM step, a scalar or ``(d,)`` (e.g. :func:`input_range_epsilon`), ``>= 0``
            (checked when concrete; a traced value, e.g. one per vmapped data split, is not).

    Returns:
        A loss with the signature of ``loss_fn``.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    if not V.is_traced(epsilon):
        eps = np.asarray(epsilon, dtype=np.float64)
        if eps.ndim > 1:
            raise ValueError(f"epsilon must be a scalar or (d,), got shape {eps.shape}")
        if not np.all(np.isfinite(eps)) or np.any(eps < 0):
            raise ValueError(f"epsilon must be finite and >= 0, got {epsilon}")
        epsilon = jnp.asarray(eps, V.float_dtype())

    def loss(params, batch, key):
        x_adv = fgsm_example(loss_fn, params, batch, key, epsilon)
        return loss_fn(params, batch, key) + loss_fn(params, (x_adv, batch[1]), key)

    return loss


def run_members(keys: jax.Array, loss_fn: Callable[..., jax.Array], params: PyTree,
                data: PyTree, *, optimizer: optax.GradientTransformation, batch_size: int,
                n_epochs: int) -> tuple[PyTree, jax.Array]:
    """Unvalidated, jittable core of :func:`train_members` (for callers inside ``jit``/``vmap``,
    e.g. a ``vmap`` over data splits).

    Member ``m`` splits ``keys[m]`` into ``(step_key, shuffle_key)`` and runs
    ``train.run_epochs(shuffle_key, train.make_step(loss_fn, optimizer), train.init_state(
    step_key, params[m], optimizer), data, ...)``; the members are a ``vmap`` of that.

    Args:
        keys: ``(M,)`` member keys. params: leaves ``(M, ...)``.
        data: pytree of arrays with a leading row axis (shared by the members).

    Returns:
        ``(params, loss_history)``: leaves ``(M, ...)`` and ``(M, n_epochs)``.
    """
    step = train.make_step(loss_fn, optimizer)

    def one(key, p):
        step_key, shuffle_key = jax.random.split(key)
        state = train.init_state(step_key, p, optimizer)
        state, hist = train.run_epochs(shuffle_key, step, state, data, batch_size=batch_size,
                                       n_epochs=n_epochs)
        return state.params, hist["loss"]

    return jax.vmap(one)(keys, params)


_run_members_jit = jax.jit(run_members, static_argnames=("loss_fn", "optimizer", "batch_size",
                                                          "n_epochs"))


def train_members(key: jax.Array, loss_fn: Callable[..., jax.Array], params: PyTree,
                  data: PyTree, *, optimizer: optax.GradientTransformation, batch_size: int,
                  n_epochs: int) -> tuple[PyTree, jax.Array]:
    """Train every member in one compiled call (``vmap`` over member keys, see the module
    docstring): independent minibatch orders, independent optimiser states.

    Args:
        key: PRNG key, split into one key per member (see :func:`run_members`).
        loss_fn: ``(params, batch, key) -> scalar`` of ONE member (e.g.
            :func:`~espresso_jax.bnn.heteroscedastic.make_regression_loss`, optionally wrapped
            by :func:`adversarial_loss`); pass the same object to reuse the compiled call.
        params: members' parameters, leaves ``(M, ...)`` (:func:`init_members`).
        data: pytree of ``(N, ...)`` arrays, e.g. ``(X (N, d), y (N,))``.
        optimizer: optax optimiser (e.g. ``optax.adam(0.01)``).
        batch_size: rows per minibatch (``<= N``). n_epochs: epochs.

    Returns:
        ``(params, loss_history)``: leaves ``(M, ...)``, history ``(M, n_epochs)``.
    """
    key = V.check_key(key)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax.GradientTransformation, got "
                        f"{type(optimizer).__name__}")
    n_members = _n_members(params)
    n_rows = int(np.shape(jax.tree.leaves(data)[0])[0])
    batch_size = V.check_int(batch_size, "batch_size", min_value=1, max_value=n_rows)
    n_epochs = V.check_int(n_epochs, "n_epochs", min_value=1)
    keys = jax.random.split(key, n_members)
    return _run_members_jit(keys, loss_fn, params, data, optimizer=optimizer,
                            batch_size=batch_size, n_epochs=n_epochs)


def apply_members(module: HeteroscedasticHead, params: PyTree, X: jax.Array,
                  link: str = "softplus") -> tuple[jax.Array, jax.Array]:
    """Unvalidated, jittable core of :func:`member_outputs`: means and log-variances
    ``(M, n)``."""
    def one(p):
        mean, raw = module.apply(p, X, deterministic=True)  # (n, 1) each
        return jnp.asarray(mean)[:, 0], log_variance(jnp.asarray(raw)[:, 0], link)

    return jax.vmap(one)(params)


@functools.partial(jax.jit, static_argnames=("module", "link"))
def _member_outputs(module, params, X, link):
    means, log_var = apply_members(module, params, X, link)
    return means, jnp.exp(log_var)


def member_outputs(module: HeteroscedasticHead, params: PyTree, X: ArrayLike,
                   link: str = "softplus") -> tuple[jax.Array, jax.Array]:
    """Per-member predictive means and variances ``sigma_m^2(x)``, ``(M, n)`` each, of one-output
    heteroscedastic members ``params`` (leaves ``(M, ...)``) on ``X (n, d)``; ``link`` as in
    :func:`log_variance`."""
    if not isinstance(module, HeteroscedasticHead) or module.out_features != 1:
        raise TypeError("module must be a HeteroscedasticHead with out_features == 1")
    V.check_choice(link, "link", LINKS)
    _n_members(params)
    X = V.as_float_array(X, "X", ndim=2, shape_hint="(n, d)")
    return _member_outputs(module, params, X, link)


def mixture_predictive(means: ArrayLike, variances: ArrayLike) -> metrics.RegressionUncertainty:
    """Mean and variance of the equal-weight mixture ``1/M sum_m N(mu_m, sigma_m^2)``.

    ``means, variances: (M, n)``. Returns :class:`espresso_jax.metrics.RegressionUncertainty`:
    ``mean = E_m[mu_m]``, ``total = E_m[sigma_m^2] + Var_m[mu_m]`` (divisor ``M``), with its
    aleatoric and epistemic parts, ``(n,)`` each.
    """
    return metrics.decompose_regression(means, variances)


def mixture_log_density(y: ArrayLike, means: ArrayLike, variances: ArrayLike, *,
                        reduction: str = "none") -> jax.Array:
    """``log 1/M sum_m N(y; mu_m, sigma_m^2)`` per target ``y (n,)`` (``reduction="none"``,
    ``(n,)``) or reduced; ``means, variances: (M, n)``."""
    return metrics.mc_log_likelihood(y, means, variances, reduction=reduction)


def classification_predictive(logits: ArrayLike) -> jax.Array:
    """Averaged class probabilities ``1/M sum_m softmax(logits_m)``, ``(n, C)``, from the
    members' ``(M, n, C)`` logits."""
    logits = V.as_float_array(logits, "logits", ndim=3, shape_hint="(M, n, C)")
    return metrics.predictive_probs(logits, from_logits=True)


def fit_regression(key: jax.Array, X: ArrayLike, y: ArrayLike, *, n_members: int = 5,
                   n_hidden: int = 50, optimizer: optax.GradientTransformation | None = None,
                   batch_size: int = 100, n_epochs: int = 40,
                   epsilon_fraction: float = 0.0) -> tuple[HeteroscedasticHead, PyTree]:
    """A deep ensemble of one-hidden-layer heteroscedastic regressors (the paper's UCI setup).

    Args:
        key: PRNG key (split into the init and training keys).
        X: ``(N, d)`` inputs. y: ``(N,)`` targets (standardise both first).
        n_members: ``M``. n_hidden: ReLU units.
        optimizer: default ``clipped_adam(0.01, None)``, plain Adam at 0.01 (the paper's
            0.1 with clipping: ``clipped_adam()``; see there).
        batch_size, n_epochs: the paper's 100 and 40.
        epsilon_fraction: adversarial training with ``eps = fraction * range`` of each column
            of ``X`` (the paper: 0.01); 0 (default) trains on the clean loss only.

    Returns:
        ``(module, params)``: the member network and the trained members' parameters
        (leaves ``(M, ...)``); predict with :func:`member_outputs`.
    """
    key = V.check_key(key)
    n_members = V.check_int(n_members, "n_members", min_value=1)
    n_hidden = V.check_int(n_hidden, "n_hidden", min_value=1)
    epsilon_fraction = V.check_positive(epsilon_fraction, "epsilon_fraction", allow_zero=True)
    X = V.as_float_array(X, "X", ndim=2, shape_hint="(N, d)")
    y = V.check_targets(y, X.shape[0], ndim=1)
    optimizer = clipped_adam(0.01, None) if optimizer is None else optimizer
    module = HeteroscedasticHead(out_features=1, hidden=(n_hidden,))
    loss = make_member_loss(module)
    if epsilon_fraction > 0:
        loss = adversarial_loss(loss, input_range_epsilon(X, epsilon_fraction))
    init_key, train_key = jax.random.split(key)
    x0 = X[:1]
    params = init_members(init_key, lambda k: module.init(k, x0, deterministic=True),
                          n_members)
    params, _ = train_members(train_key, loss, params, (X, y), optimizer=optimizer,
                              batch_size=batch_size, n_epochs=n_epochs)
    return module, params
