"""Deep Bayesian active learning with MC dropout (Gal, Islam & Ghahramani 2017).

Acquisition functions score pool points from MC predictive probabilities ``(T, n, C)``
(``T`` stochastic passes); all take ``(key, probs)`` and return ``(n,)`` scores, higher is
more informative:

* :func:`bald`: mutual information ``H[E_t p_t] − E_t H[p_t]`` (Houlsby et al. 2011), the
  epistemic part of :func:`espresso_jax.metrics.decompose_classification`;
* :func:`max_entropy`: predictive entropy ``H[E_t p_t]`` (same decomposition);
* :func:`variation_ratios`: ``1 − max_c (#{t: argmax p_t = c}) / T`` (Freeman 1965);
* :func:`random_acquisition`: i.i.d. uniform scores from ``key`` (the baseline).

:func:`active_learning_loop` is the compiled loop: each of ``n_rounds + 1`` rounds trains an
MC dropout network **from scratch** (as Gal et al.; re-initialised from the round's key) on the
labelled set, records its test accuracy, scores the pool and acquires the ``n_acquire`` best
un-acquired points (no acquisition after the last training). The labelled set is a
fixed-shape buffer of pool indices of the final size with a weight per row (1 acquired, 0 not
yet), so one round compiles once and ``lax.scan`` runs the rounds; :func:`run_active_learning`
vmaps the loop over seeds and acquisition functions (``lax.switch`` on the function's index).

Training minimises Gal's dropout objective on the weighted rows: the mean cross-entropy over
the ``N`` labelled rows plus ``weight_decay(l, p, N) · Σ‖W‖²``
(:func:`espresso_jax.bnn.dropout.weight_decay`, :func:`~espresso_jax.bnn.dropout.kernel_l2`),
full batch, by Adam through :func:`espresso_jax.train.make_step`. The network is a
:class:`~espresso_jax.bnn.dropout.DropoutMLP` (Gal et al. used a small conv net; an MLP keeps
the loop affordable on a CPU). Test accuracy is that of the MC predictive (``T`` passes,
:func:`espresso_jax.metrics.accuracy`).

References:
    Y. Gal, R. Islam, Z. Ghahramani, "Deep Bayesian active learning with image data",
    ICML 2017.
    N. Houlsby, F. Huszár, Z. Ghahramani, M. Lengyel, "Bayesian active learning for
    classification and preference learning", 2011.
    L. C. Freeman, "Elementary applied statistics", 1965 (variation ratio).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from espresso_jax import metrics, train
from espresso_jax.bnn.dropout import DropoutMLP, kernel_l2, weight_decay
from espresso_jax.validation import (
    as_float_array,
    as_int_array,
    check_int,
    check_key,
    check_positive,
    check_probability,
)

__all__ = [
    "ACQUISITIONS",
    "bald",
    "max_entropy",
    "variation_ratios",
    "random_acquisition",
    "ActiveConfig",
    "ActiveResult",
    "balanced_initial",
    "active_learning_loop",
    "run_active_learning",
]


def bald(key: jax.Array, probs: jax.Array) -> jax.Array:
    """BALD: mutual information between label and weights, ``(n,)`` from ``(T, n, C)``."""
    del key
    return metrics.decompose_classification(probs).mutual_information


def max_entropy(key: jax.Array, probs: jax.Array) -> jax.Array:
    """Predictive entropy ``H[E_t p_t]`` (nats), ``(n,)`` from ``(T, n, C)``."""
    del key
    return metrics.decompose_classification(probs).entropy


def variation_ratios(key: jax.Array, probs: jax.Array) -> jax.Array:
    """Variation ratio ``1 − (count of the modal predicted class over T passes) / T``."""
    del key
    n_classes = probs.shape[-1]
    votes = jax.nn.one_hot(jnp.argmax(probs, axis=-1), n_classes, dtype=probs.dtype)
    return 1.0 - jnp.max(jnp.sum(votes, axis=0), axis=-1) / probs.shape[0]


def random_acquisition(key: jax.Array, probs: jax.Array) -> jax.Array:
    """Uniform random scores ``(n,)`` (the baseline; ``probs`` gives the shape only)."""
    return jax.random.uniform(key, probs.shape[1:2], probs.dtype)


ACQUISITIONS = {"bald": bald, "max_entropy": max_entropy,
                "variation_ratios": variation_ratios, "random": random_acquisition}
"""Acquisition functions by name, in the order of their ``lax.switch`` index."""


class ActiveConfig(NamedTuple):
    """Static settings of the loop (hashable: it is a static argument of the compiled loop).

    Attributes:
        n_rounds: acquisition rounds ``R``; the loop trains ``R + 1`` times.
        n_acquire: points acquired per round ``k``.
        hidden: hidden widths of the :class:`DropoutMLP`.
        n_classes: number of classes ``C``.
        rate: dropout rate ``p``.
        n_mc: stochastic passes ``T`` for scoring and for the test predictive.
        n_steps: full-batch Adam steps per training.
        learning_rate: Adam's step size.
        length_scale: prior length-scale ``l`` of the weight decay.
        n_candidates: pool points scored per round: a random subset of the un-acquired pool
            (Gal et al. scored a random subset too), or 0 for the whole pool.
        acquisitions: names from :data:`ACQUISITIONS`, in the order of the output's first axis.
        input_dropout: drop input pixels too (:class:`DropoutMLP`); off by default, as Gal et
            al.'s conv net drops hidden units only.
    """

    n_rounds: int
    n_acquire: int
    hidden: tuple[int, ...] = (128,)
    n_classes: int = 10
    rate: float = 0.5
    n_mc: int = 20
    n_steps: int = 300
    learning_rate: float = 1e-3
    length_scale: float = 1.0
    n_candidates: int = 0
    acquisitions: tuple[str, ...] = ("bald", "random")
    input_dropout: bool = False


class ActiveResult(NamedTuple):
    """Outcome of the loop (leading axes ``(A, S)`` from :func:`run_active_learning`).

    Attributes:
        acquired: ``(..., n_initial + R k)`` pool indices in acquisition order (initial first).
        accuracy: ``(..., R + 1)`` test accuracy after each training.
        n_labelled: ``(R + 1,)`` labelled points of each training (host numpy).
    """

    acquired: jax.Array
    accuracy: jax.Array
    n_labelled: np.ndarray


def balanced_initial(key: jax.Array, y: jax.Array, n_per_class: int,
                     n_classes: int) -> jax.Array:
    """``n_per_class`` random pool indices of each class, ``(n_classes * n_per_class,)``."""
    u = jax.random.uniform(key, y.shape)
    picks = [jax.lax.top_k(jnp.where(y == c, u, -1.0), n_per_class)[1]
             for c in range(n_classes)]
    return jnp.concatenate(picks)


def _weighted_loss(params, batch, key, *, module, rate, length_scale):
    X, y, w = batch
    logits = module.apply(params, X, rate, deterministic=False, rngs={"dropout": key})
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    n = jnp.sum(w)
    # weight_decay is linear in 1/N: lambda(N) = lambda(1) / N for the traced count N.
    decay = weight_decay(length_scale, rate, 1, 1.0).astype(logits.dtype) / n
    return jnp.sum(w * nll) / n + decay * kernel_l2(params)


@functools.lru_cache(maxsize=16)
def _loss_for(module: DropoutMLP, rate: float, length_scale: float):
    return functools.partial(_weighted_loss, module=module, rate=rate,
                             length_scale=length_scale)


def _module(config: ActiveConfig) -> DropoutMLP:
    return DropoutMLP(hidden=config.hidden, n_outputs=config.n_classes,
                      input_dropout=config.input_dropout)


def _probs(key, params, X, config):
    """``(T, n, C)`` softmax outputs of ``T = config.n_mc`` dropout passes, in chunks of 10
    (as :func:`espresso_jax.bnn.dropout.mc_passes`, for either input-dropout setting)."""
    module = _module(config)

    def one(k):
        return module.apply(params, X, config.rate, deterministic=False, rngs={"dropout": k})

    logits = jax.lax.map(one, jax.random.split(key, config.n_mc),
                         batch_size=min(10, config.n_mc))
    return jax.nn.softmax(logits, axis=-1)


def active_learning_loop(key: jax.Array, acquisition: jax.Array, initial: jax.Array,
                         X_pool: jax.Array, y_pool: jax.Array, X_test: jax.Array,
                         y_test: jax.Array, config: ActiveConfig) -> tuple[jax.Array, jax.Array]:
    """One active-learning run (pure, unvalidated; jit and vmap it).

    Args:
        key: PRNG key of the run (initialisation, dropout, scores, candidate subsets).
        acquisition: int index into ``config.acquisitions``.
        initial: ``(n0,)`` distinct pool indices labelled at the start.
        X_pool: ``(N, d)``, y_pool: ``(N,)`` pool inputs and labels (labels are read only at
            acquired indices). X_test: ``(m, d)``, y_test: ``(m,)``.
        config: :class:`ActiveConfig`.

    Returns:
        ``(acquired (n0 + R k,), accuracy (R + 1,))``.
    """
    n0, k, rounds = initial.shape[0], config.n_acquire, config.n_rounds
    size = n0 + rounds * k
    module = _module(config)
    optimizer = optax.adam(config.learning_rate)
    step = train.make_step(_loss_for(module, config.rate, config.length_scale), optimizer)
    fns = [ACQUISITIONS[name] for name in config.acquisitions]
    n_pool = X_pool.shape[0]
    buffer = jnp.zeros((size,), jnp.int32).at[:n0].set(initial.astype(jnp.int32))
    taken = jnp.zeros((n_pool,), bool).at[initial].set(True)

    def one_round(carry, r):
        buffer, taken = carry
        k_init, k_train, k_test, k_pool, k_score, k_cand = jax.random.split(
            jax.random.fold_in(key, r), 6)
        n_now = n0 + r * k
        weights = (jnp.arange(size) < n_now).astype(X_pool.dtype)
        batch = (X_pool[buffer], y_pool[buffer], weights)
        params = module.init(k_init, X_pool[:1], config.rate, deterministic=True)
        state = train.init_state(k_train, params, optimizer)
        state, _ = jax.lax.scan(lambda s, _: step(s, batch), state, None,
                                length=config.n_steps)
        acc = metrics.accuracy(y_test, _probs(k_test, state.params, X_test, config))

        def acquire(carry):
            buffer, taken = carry
            if config.n_candidates:
                u = jax.random.uniform(k_cand, (n_pool,))
                cand = jax.lax.top_k(jnp.where(taken, -1.0, u), config.n_candidates)[1]
            else:
                cand = jnp.arange(n_pool)
            probs = _probs(k_pool, state.params, X_pool[cand], config)
            scores = jax.lax.switch(acquisition, fns, k_score, probs)
            scores = jnp.where(taken[cand], -jnp.inf, scores)
            new = cand[jax.lax.top_k(scores, k)[1]]
            return (jax.lax.dynamic_update_slice(buffer, new.astype(jnp.int32), (n_now,)),
                    taken.at[new].set(True))

        carry = jax.lax.cond(r < rounds, acquire, lambda c: c, (buffer, taken))
        return carry, acc

    (buffer, _), accuracy = jax.lax.scan(one_round, (buffer, taken), jnp.arange(rounds + 1))
    return buffer, accuracy


@functools.partial(jax.jit, static_argnames=("n_per_class", "config"))
def _run(keys, acq_index, X_pool, y_pool, X_test, y_test, n_per_class, config):
    def one(key, a):
        k_init, k_loop = jax.random.split(key)
        initial = balanced_initial(k_init, y_pool, n_per_class, config.n_classes)
        return active_learning_loop(k_loop, a, initial, X_pool, y_pool, X_test, y_test,
                                    config)

    over_seeds = jax.vmap(one, in_axes=(0, None))
    return jax.vmap(over_seeds, in_axes=(None, 0))(keys, acq_index)


def run_active_learning(key: jax.Array, X_pool: ArrayLike, y_pool: ArrayLike,
                        X_test: ArrayLike, y_test: ArrayLike, *, n_seeds: int, n_rounds: int,
                        n_acquire: int, n_initial_per_class: int = 2,
                        acquisitions: Sequence[str] = ("bald", "random"),
                        **options: Any) -> ActiveResult:
    """Active learning from a balanced start, vmapped over seeds and acquisition functions.

    Seed ``s`` uses ``jax.random.split(key, n_seeds)[s]`` for every acquisition function (the
    same initial set and network initialisations), so the functions are compared paired.

    Args:
        key: PRNG key. X_pool: ``(N, d)``. y_pool: ``(N,)`` labels in ``[0, C)``.
        X_test: ``(m, d)``. y_test: ``(m,)``.
        n_seeds: independent runs ``S``. n_rounds: acquisition rounds ``R``.
        n_acquire: points per round ``k``. n_initial_per_class: initial points per class.
        acquisitions: names from :data:`ACQUISITIONS`.
        **options: the other fields of :class:`ActiveConfig` (``hidden``, ``rate``, ``n_mc``,
            ``n_steps``, ``learning_rate``, ``length_scale``, ``n_candidates``,
            ``n_classes`` (default: ``max(y_pool) + 1``)).

    Returns:
        :class:`ActiveResult` with leading axes ``(A, S)``.

    Raises:
        ValueError: naming the argument (shapes, NaN, labels, sizes: the pool must hold more
            than ``n_initial + n_rounds * n_acquire`` points, each class ``n_initial_per_class``
            of them, and ``n_candidates`` must be at least ``n_acquire``).
    """
    key = check_key(key)
    X_pool = as_float_array(X_pool, "X_pool", ndim=2, shape_hint="(N, d)")
    X_test = as_float_array(X_test, "X_test", ndim=2, shape_hint="(m, d)")
    y_pool = as_int_array(y_pool, "y_pool", ndim=1, min_value=0)
    y_test = as_int_array(y_test, "y_test", ndim=1, min_value=0)
    if y_pool.shape[0] != X_pool.shape[0]:
        raise ValueError(f"y_pool has {y_pool.shape[0]} labels for {X_pool.shape[0]} rows of "
                         "X_pool")
    if y_test.shape[0] != X_test.shape[0]:
        raise ValueError(f"y_test has {y_test.shape[0]} labels for {X_test.shape[0]} rows of "
                         "X_test")
    if X_test.shape[1] != X_pool.shape[1]:
        raise ValueError(f"X_test has {X_test.shape[1]} features, X_pool {X_pool.shape[1]}")
    n_seeds = check_int(n_seeds, "n_seeds", min_value=1)
    n_rounds = check_int(n_rounds, "n_rounds", min_value=0)
    n_acquire = check_int(n_acquire, "n_acquire", min_value=1)
    n_per_class = check_int(n_initial_per_class, "n_initial_per_class", min_value=1)
    acquisitions = tuple(acquisitions)
    unknown = [a for a in acquisitions if a not in ACQUISITIONS]
    if not acquisitions or unknown:
        raise ValueError(f"acquisitions must be names from {list(ACQUISITIONS)}, got "
                         f"{list(acquisitions)}")
    n_classes = check_int(options.pop("n_classes", int(np.max(y_pool)) + 1), "n_classes",
                          min_value=2)
    if int(np.max(y_test)) >= n_classes:
        raise ValueError(f"y_test has a label >= n_classes ({n_classes})")
    counts = np.bincount(np.asarray(y_pool), minlength=n_classes)
    if np.any(counts < n_per_class):
        raise ValueError(f"y_pool needs n_initial_per_class={n_per_class} points of every "
                         f"class, got class counts {counts.tolist()}")
    n0 = n_per_class * n_classes
    if n0 + n_rounds * n_acquire > X_pool.shape[0]:
        raise ValueError(f"the pool (X_pool: {X_pool.shape[0]} rows) is smaller than the final "
                         f"labelled set n_initial + n_rounds * n_acquire = "
                         f"{n0 + n_rounds * n_acquire}")
    unknown_opts = set(options) - set(ActiveConfig._fields)
    if unknown_opts:
        raise TypeError(f"unknown options {sorted(unknown_opts)}")
    config = ActiveConfig(n_rounds=n_rounds, n_acquire=n_acquire, n_classes=n_classes,
                          acquisitions=acquisitions, **options)
    config = _check_config(config, X_pool.shape[0])
    keys = jax.random.split(key, n_seeds)
    acquired, accuracy = _run(keys, jnp.arange(len(acquisitions)), X_pool, y_pool, X_test,
                              y_test, n_per_class, config)
    return ActiveResult(acquired, accuracy, n0 + n_acquire * np.arange(n_rounds + 1))


def _check_config(config: ActiveConfig, n_pool: int) -> ActiveConfig:
    rate = check_probability(config.rate, "rate")
    if rate >= 1.0:
        raise ValueError(f"rate must be < 1, got {rate}")
    n_candidates = check_int(config.n_candidates, "n_candidates", min_value=0)
    if n_candidates and not config.n_acquire <= n_candidates <= n_pool:
        raise ValueError(f"n_candidates must be 0 (the whole pool) or between n_acquire "
                         f"({config.n_acquire}) and the pool size ({n_pool}), got {n_candidates}")
    if not isinstance(config.input_dropout, (bool, np.bool_)):
        raise TypeError(f"input_dropout must be a bool, got {type(config.input_dropout).__name__}")
    return config._replace(
        hidden=tuple(check_int(h, "hidden", min_value=1) for h in config.hidden),
        rate=rate, n_mc=check_int(config.n_mc, "n_mc", min_value=1),
        n_steps=check_int(config.n_steps, "n_steps", min_value=1),
        learning_rate=check_positive(config.learning_rate, "learning_rate"),
        length_scale=check_positive(config.length_scale, "length_scale"),
        n_candidates=n_candidates)
