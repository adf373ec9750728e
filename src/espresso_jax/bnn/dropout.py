"""MC dropout: a dropout network read as a variational Bayesian approximation.

A network trained with dropout and weight decay approximately minimises the KL divergence
from a Bernoulli variational distribution over its weights to the posterior of a deep Gaussian
process; keeping dropout on at test time and averaging ``T`` stochastic forward passes is Monte
Carlo integration over that approximate posterior (Gal & Ghahramani, 2016).

The network (:class:`DropoutMLP`) follows Gal's UCI experiments: dropout on the input and after
every hidden layer, ReLU hidden units, a linear head (one output for regression, ``n_classes``
logits for classification). The dropout rate is a *call argument* (an array is fine), so that
rates can be vmapped over in a hyper-parameter grid; masks come from the flax rng stream
``"dropout"`` (``deterministic=True`` turns dropout off) and are inverted-dropout masks (kept
units are scaled by ``1 / (1 - p)``).

Weight decay. With prior length-scale ``l``, dropout rate ``p`` (keep probability ``1 - p``),
``N`` training points and model precision ``tau`` (regression noise precision; ``tau = 1`` for
classification), the per-minibatch objective is

    mean_batch((y - yhat)^2) + lambda * sum_layers ||W||_F^2,
    lambda = l^2 (1 - p) / (2 N tau),

with the decay on the **kernels (weight matrices) only, not on the biases**, as in Gal's UCI
code (a Keras ``W_regularizer=l2(lambda)`` on every Dense layer). For classification the data
term is the mean softmax cross-entropy and ``tau = 1``.

Training. :func:`fit` minimises that objective with :func:`espresso_jax.train.fit` (the
neural fit signature ``fit(key, X, y, *, module, optimizer, batch_size, n_epochs, ...)``);
:func:`make_loss` gives the engine's loss for custom loops.

Predictive (regression). ``T`` stochastic passes give samples ``yhat_t``, ``(T, n)``:

* mean ``E[y] ~= mean_t yhat_t``; variance ``Var[y] ~= var_t(yhat_t) + 1 / tau`` (the
  biased, ``1/T``, sample variance: the second moment of the MC mixture);
* test log-likelihood of the mixture of ``T`` Gaussians,
  ``log p(y) ~= logsumexp_t(-tau/2 (y - yhat_t)^2) - log T - 0.5 log(2 pi) + 0.5 log tau``:
  :func:`espresso_jax.metrics.mc_log_likelihood` with ``var_t = 1 / tau``.

Units. Networks train on a standardised target ``(y - y_mean) / y_std``. A prediction and a
precision in those units map to the original units by ``yhat * y_std + y_mean`` and
``tau / y_std^2`` (:func:`to_original_units`); the log-likelihood in original units is the
standardised one minus ``log y_std``.

References:
    Y. Gal and Z. Ghahramani. Dropout as a Bayesian approximation: representing model
    uncertainty in deep learning. ICML 2016.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from espresso_jax import train
from espresso_jax.netcheck import (
    check_network,
    check_optimizer,
    check_outputs,
    check_variables,
)
from espresso_jax.nn.supervised import TASKS
from espresso_jax.prob.draws import draw_flat
from espresso_jax.validation import (
    as_float_array,
    as_positive_array,
    check_choice,
    check_int,
    check_key,
    check_positive,
    check_probability,
    check_targets,
    is_traced,
)

__all__ = [
    "apply_dropout",
    "DropoutMLP",
    "weight_decay",
    "kernel_l2",
    "regression_loss",
    "classification_loss",
    "TASKS",
    "make_loss",
    "fit",
    "mc_forward",
    "mc_passes",
    "CPU_PASS_CHUNK",
    "pass_chunk",
    "predictive_moments",
    "to_original_units",
    "predict_proba",
]

PyTree = Any


def apply_dropout(x: jax.Array, uniform: jax.Array, rate: ArrayLike) -> jax.Array:
    """Inverted dropout of ``x`` given uniform draws: keep an entry when ``uniform >= rate``
    (probability ``1 - rate``) and scale it by ``1 / (1 - rate)``, else 0.

    Args:
        x: ``(..., d)`` activations. uniform: ``(..., d)`` U(0, 1) draws.
        rate: dropout rate in ``[0, 1)`` (a float or a traced array, e.g. vmapped over a grid).
    """
    rate = jnp.asarray(rate, x.dtype)
    keep = 1.0 - rate
    # Rates are validated to lie in [0, 1) on the host; the max keeps a traced 1 finite.
    return jnp.where(uniform >= rate, x / jnp.maximum(keep, jnp.finfo(x.dtype).tiny),
                     jnp.zeros_like(x))


class DropoutMLP(nn.Module):
    """Gal's UCI network: dropout -> [Dense(h) -> ReLU -> dropout] per hidden layer -> Dense.

    Attributes:
        hidden: widths of the hidden layers, e.g. ``(50,)``.
        n_outputs: 1 for regression, the number of classes for classification.
        activation: hidden non-linearity.
        kernel_init: Dense kernel initialiser (Glorot uniform, the Keras default of Gal's
            code; biases start at zero).
        input_dropout: drop input features too (Gal's nets). With ``False`` only hidden units
            are dropped: with one or two inputs, dropping an input turns a share of the passes
            into a function of the other inputs alone (the constant ``f(0)`` for one input),
            which inflates the spread far from the origin.

    Call: ``apply(params, x, rate, deterministic=False, rngs={"dropout": key})``,
    ``x: (..., n_features) -> (..., n_outputs)``. Layers are named ``dense_0 ... dense_L``;
    parameters are created in the dtype of ``x`` (float64 under x64).
    The dropout rate is a call argument (an array is fine, so a grid of rates can be vmapped
    over; flax's ``nn.Dropout`` takes it as a static attribute). With input dropout the masks
    of all layers come from one ``"dropout"`` key and one uniform draw of width
    ``d + sum(hidden)`` (independent entries; one draw keeps the compiled program small).
    Without it each hidden layer draws its own mask from the ``"dropout"`` stream, as the
    hidden-only network of the 1-D gap experiment always did, so that its recorded results
    (benchmarks/RESULTS.md) reproduce exactly.
    """

    hidden: Sequence[int]
    n_outputs: int = 1
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    kernel_init: Callable[..., jax.Array] = nn.initializers.glorot_uniform()
    input_dropout: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, rate: ArrayLike, *, deterministic: bool) -> jax.Array:
        widths = (x.shape[-1], *self.hidden)
        if not deterministic and self.input_dropout:
            u = draw_flat(jax.random.uniform, self.make_rng("dropout"),
                          x.shape[:-1] + (sum(widths),), x.dtype)
            offsets = np.cumsum((0, *widths))

        def drop(h, i):
            if deterministic or (i == 0 and not self.input_dropout):
                return h
            if not self.input_dropout:
                return apply_dropout(h, draw_flat(jax.random.uniform, self.make_rng("dropout"),
                                                  h.shape, h.dtype), rate)
            return apply_dropout(h, u[..., offsets[i]:offsets[i + 1]], rate)

        x = drop(x, 0)
        for i, width in enumerate(self.hidden):
            x = self.activation(nn.Dense(width, kernel_init=self.kernel_init,
                                         param_dtype=x.dtype, name=f"dense_{i}")(x))
            x = drop(x, i + 1)
        return nn.Dense(self.n_outputs, kernel_init=self.kernel_init, param_dtype=x.dtype,
                        name=f"dense_{len(self.hidden)}")(x)

    @staticmethod
    def from_params(params: PyTree, activation: Callable[[jax.Array], jax.Array] = nn.relu,
                    input_dropout: bool = True) -> DropoutMLP:
        """The module whose layer widths match ``params`` (static shapes; works under vmap).

        Raises:
            TypeError, ValueError: naming ``params`` when it is not a DropoutMLP's variables
                (``{"params": {"dense_0": {"kernel", "bias"}, ...}}``).
        """
        layers = check_variables(params).get("params")
        if not isinstance(layers, Mapping):
            raise ValueError("params are not DropoutMLP variables: they have no 'params' "
                             f"collection (got {sorted(params)})")
        names = [f"dense_{i}" for i in range(len(layers))]
        if any(not isinstance(layers.get(n), Mapping) or np.ndim(layers[n].get("kernel")) != 2
               for n in names):
            raise ValueError("params are not DropoutMLP variables: they need "
                             "params['params']['dense_0' ... 'dense_L']['kernel'] (2-D), got "
                             f"layers {sorted(layers)}")
        widths = [int(layers[n]["kernel"].shape[-1]) for n in names]
        return DropoutMLP(hidden=tuple(widths[:-1]), n_outputs=widths[-1],
                          activation=activation, input_dropout=input_dropout)


def weight_decay(length_scale: ArrayLike, rate: ArrayLike, n_train: int,
                 tau: ArrayLike = 1.0) -> jax.Array:
    """``lambda = l^2 (1 - p) / (2 N tau)``, the L2 coefficient on the kernels.

    Args:
        length_scale: prior length-scale ``l`` (Gal's UCI code: ``1e-2``).
        rate: dropout rate ``p`` (the keep probability is ``1 - p``).
        n_train: number of training points ``N``.
        tau: model precision (regression noise precision in the units the network is trained
            in; 1 for classification).

    Returns:
        scalar (or the broadcast shape of the array arguments).

    Raises:
        ValueError: naming ``n_train`` (< 1), ``tau`` or ``length_scale`` (<= 0) or ``rate``
            (outside ``[0, 1)``); traced arguments (inside jit/vmap) are checked for dtype only.
    """
    n_train = check_int(n_train, "n_train", min_value=1)
    tau = as_positive_array(tau, "tau")
    length_scale = as_positive_array(length_scale, "length_scale")
    rate = as_float_array(rate, "rate")
    if not is_traced(rate) and not bool(np.all((np.asarray(rate) >= 0)
                                               & (np.asarray(rate) < 1))):
        raise ValueError(f"rate must lie in [0, 1), got {np.asarray(rate)}")
    return length_scale ** 2 * (1.0 - rate) / (2.0 * n_train * tau)


def kernel_l2(params: PyTree) -> jax.Array:
    """Sum of squared entries of every Dense ``kernel`` in ``params`` (biases excluded)."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    terms = [jnp.sum(leaf ** 2) for path, leaf in flat
             if getattr(path[-1], "key", None) == "kernel"]
    if not terms:
        raise ValueError("params has no Dense 'kernel' leaves")
    return sum(terms[1:], terms[0])


def regression_loss(params: PyTree, batch: tuple[jax.Array, jax.Array], key: jax.Array, *,
                    rate: ArrayLike, tau: ArrayLike, n_train: int,
                    length_scale: float = 1e-2, module: nn.Module | None = None
                    ) -> jax.Array:
    """Dropout regression objective for one minibatch (usable with :mod:`espresso_jax.train`).

    ``mean((y - f(x))^2) + weight_decay(l, rate, N, tau) * kernel_l2(params)`` with one dropout
    mask per example drawn from ``key``. Bind the keywords (``functools.partial``) to get the
    ``loss_fn(params, batch, key)`` the engine expects.

    Args:
        params: :class:`DropoutMLP` parameters with one output.
        batch: ``(X, y)`` with ``X: (m, d)`` and ``y: (m,)`` (standardised target).
        key: dropout key.
        rate: dropout rate ``p``.
        tau: model precision in the units of ``y``.
        n_train: size of the whole training set ``N`` (static).
        length_scale: prior length-scale ``l``.
        module: the network, any module called as ``apply(params, X, rate,
            deterministic=False, rngs={"dropout": key})`` with output ``(m, 1)`` (default: the
            :class:`DropoutMLP` matching ``params``).
    """
    X, y = batch
    module = DropoutMLP.from_params(params) if module is None else module
    out = cast(jax.Array, module.apply(params, X, rate, deterministic=False,
                                       rngs={"dropout": key}))
    pred = out[..., 0]
    decay = weight_decay(length_scale, rate, n_train, tau).astype(pred.dtype)
    return jnp.mean((y - pred) ** 2) + decay * kernel_l2(params)


def classification_loss(params: PyTree, batch: tuple[jax.Array, jax.Array], key: jax.Array,
                        *, rate: ArrayLike, n_train: int, length_scale: float = 1e-2,
                        module: nn.Module | None = None) -> jax.Array:
    """Dropout classification objective: mean softmax cross-entropy plus
    ``weight_decay(l, rate, N, tau=1) * kernel_l2(params)``. The other arguments are those of
    :func:`regression_loss`.

    Args:
        batch: ``(X, labels)`` with ``X: (m, d)`` and integer ``labels: (m,)``.
    """
    X, labels = batch
    module = DropoutMLP.from_params(params) if module is None else module
    logits = cast(jax.Array, module.apply(params, X, rate, deterministic=False,
                                          rngs={"dropout": key}))
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    decay = weight_decay(length_scale, rate, n_train, 1.0).astype(logits.dtype)
    return jnp.mean(nll) + decay * kernel_l2(params)



@functools.lru_cache(maxsize=32)
def make_loss(module: nn.Module, task: str, rate: float, n_train: int, tau: float = 1.0,
              length_scale: float = 1e-2) -> Callable[..., jax.Array]:
    """Gal's objective for ``task`` (:func:`regression_loss` or :func:`classification_loss`)
    bound to ``module`` and the hyper-parameters: the engine's ``loss(params, (X, y), key)``.
    Cached, so the same arguments give the same function and a second fit reuses its step.
    ``tau`` is the regression precision (unused for classification)."""
    check_choice(task, "task", TASKS)
    if task == "classification":
        return functools.partial(classification_loss, module=module, rate=rate,
                                 n_train=n_train, length_scale=length_scale)
    return functools.partial(regression_loss, module=module, rate=rate, tau=tau,
                             n_train=n_train, length_scale=length_scale)


def fit(key: jax.Array, X: ArrayLike, y: ArrayLike, *, module: nn.Module,
        optimizer: optax.GradientTransformation, batch_size: int, n_epochs: int, task: str,
        rate: float, tau: float = 1.0, length_scale: float = 1e-2, params: PyTree = None,
        **loop_options: Any) -> train.FitResult:
    """Fit a dropout network by Gal's objective (data term + the length-scale weight decay).

    Args:
        key: PRNG key. Without ``params`` it splits into the initialisation key and the
            training key (dropout masks and shuffling); with ``params`` all of it trains.
        X: ``(n_samples, n_features)`` inputs.
        y: ``(n_samples,)`` standardised targets (regression) or integer labels in
            ``[0, n_outputs)`` (classification).
        module: :class:`DropoutMLP` or any module with its call signature
            ``apply(params, X, rate, deterministic=..., rngs={"dropout": key})``.
        optimizer: optax optimiser (no default: it is part of the experiment).
        batch_size: rows per minibatch. n_epochs: epochs to run.
        task: ``"regression"`` or ``"classification"``.
        rate: dropout rate ``p`` in ``[0, 1)``.
        tau: model precision in the units of ``y`` (regression; 1 for classification).
        length_scale: prior length-scale ``l`` of the weight decay.
        params: initial parameters (default ``module.init(init_key, X[:1], rate,
            deterministic=True)``).
        **loop_options: passed to :func:`espresso_jax.train.fit_loop`.

    Returns:
        :class:`espresso_jax.train.FitResult`; ``history["loss"]`` is the per-epoch mean
        objective.

    Raises:
        ValueError: naming ``X`` (NaN, rank, a width the network does not take), ``y`` (NaN,
            a label out of range, a length other than ``X``'s, a regression network with more
            than one output), ``params`` (another network's), ``rate``, ``tau`` or
            ``length_scale``.
        TypeError: ``optimizer`` is not an optax ``GradientTransformation``.
    """
    key = check_key(key)
    check_choice(task, "task", TASKS)
    optimizer = check_optimizer(optimizer)
    rate = check_probability(rate, "rate")
    if rate >= 1.0:
        raise ValueError(f"rate must be < 1, got {rate}")
    tau = check_positive(tau, "tau")
    length_scale = check_positive(length_scale, "length_scale")
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")

    def init(k, x):
        return module.init(k, x, rate, deterministic=True)

    def forward(p, x):
        return module.apply(p, x, rate, deterministic=True)

    key, init_key, out = train.check_init(key, init, forward, params, X[:1])
    y = check_targets(y, X.shape[0],
                      n_classes=out.shape[-1] if task == "classification" else None)
    if task == "regression":
        check_outputs(y, out)
    if init_key is not None:
        params = init(init_key, X[:1])
    loss = make_loss(module, task, float(rate), int(X.shape[0]), float(tau),
                     float(length_scale))
    loop_options.setdefault("desc", "mc_dropout")
    return train.fit(key, loss, params, (X, y), optimizer=optimizer, batch_size=batch_size,
                     n_epochs=n_epochs, **loop_options)


def mc_passes(key: jax.Array, params: PyTree, X: jax.Array, rate: ArrayLike, n_samples: int,
              chunk_size: int) -> jax.Array:
    """Unvalidated, jittable core of :func:`mc_forward` (for callers that are already inside
    ``jit``/``vmap``, e.g. a vmapped hyper-parameter grid): the same ``(T, n, n_outputs)``
    passes for ``X: (n, d)``, with ``n_samples`` and ``chunk_size`` static Python ints."""
    module = DropoutMLP.from_params(params)

    def one(k):
        return module.apply(params, X, rate, deterministic=False, rngs={"dropout": k})

    keys = jax.random.split(key, n_samples)
    return jax.lax.map(one, keys, batch_size=min(chunk_size, n_samples))


CPU_PASS_CHUNK = 10
"""Passes per vmapped chunk under ``chunk_size="auto"`` on CPU: measured fastest on a 2-core
CPU (benchmarks/bench_mc_dropout.py: 2.7x the sequential loop for a UCI net, 0.8x with all
100 passes in one vmap: one huge mask draw is slower per number there)."""


def pass_chunk(chunk_size: int | str, n_samples: int) -> int:
    """Validate ``chunk_size`` and resolve ``"auto"``: :data:`CPU_PASS_CHUNK` passes per chunk
    on CPU (cache-sized), all ``n_samples`` passes in one vmap on an accelerator (GPU/TPU
    parallelism wants the whole batch; memory ``n_samples * n * width`` activations)."""
    if isinstance(chunk_size, str):
        if chunk_size != "auto":
            raise ValueError(f"chunk_size must be a positive int or 'auto', got {chunk_size!r}")
        return CPU_PASS_CHUNK if jax.default_backend() == "cpu" else n_samples
    return check_int(chunk_size, "chunk_size", min_value=1)


def mc_forward(key: jax.Array, params: PyTree, X: ArrayLike, rate: ArrayLike, *,
               n_samples: int, chunk_size: int | str = "auto") -> jax.Array:
    """``T = n_samples`` stochastic forward passes (dropout on), vmapped over keys.

    Passes run in vmapped chunks of ``chunk_size`` (``lax.map``) to bound memory at
    ``chunk_size * n * width`` activations. The chunking never changes the passes (pass ``t``
    always uses the ``t``-th split of ``key``), only speed and memory.

    Args:
        key: PRNG key, split into one key per pass.
        params: :class:`DropoutMLP` parameters.
        X: ``(n, d)`` inputs.
        rate: dropout rate.
        n_samples: number of passes ``T`` (static).
        chunk_size: passes per vmapped chunk (static), or ``"auto"``: :func:`pass_chunk`
            (10 on CPU, all passes on an accelerator).

    Returns:
        ``(T, n, n_outputs)`` outputs (regression: predictions; classification: logits).

    Raises:
        TypeError: ``params`` is not a dict of arrays. ValueError: naming ``X`` (a feature
            count other than the one ``params`` take) or ``params`` (not a DropoutMLP's).
    """
    key = check_key(key)
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    chunk_size = pass_chunk(chunk_size, n_samples)
    rate = check_probability(rate, "rate")
    if rate >= 1.0:
        raise ValueError(f"rate must be < 1, got {rate}")
    module = DropoutMLP.from_params(params)
    check_network(lambda x: module.init(jax.random.key(0), x, rate, deterministic=True),
                  lambda p, x: module.apply(p, x, rate, deterministic=True), params, X[:1])
    return _mc_forward_jit(key, params, X, rate, n_samples, chunk_size)


_mc_forward_jit = jax.jit(mc_passes, static_argnums=(4, 5))


def predictive_moments(samples: ArrayLike, tau: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """MC dropout predictive mean and variance.

    Args:
        samples: ``(T, n)`` stochastic predictions ``yhat_t``.
        tau: model precision (scalar, in the units of ``samples``).

    Returns:
        ``(mean (n,), variance (n,))`` with ``variance = var_t(yhat_t) + 1 / tau`` (the
        ``1/T`` sample variance).
    """
    samples = as_float_array(samples, "samples", ndim=2, shape_hint="(T, n)")
    tau = check_positive(tau, "tau")
    return jnp.mean(samples, axis=0), jnp.var(samples, axis=0) + 1.0 / tau


def to_original_units(samples: ArrayLike, tau: ArrayLike, y_mean: float, y_std: float
                      ) -> tuple[jax.Array, jax.Array]:
    """Map standardised predictions and precision to the target's original units:
    ``samples * y_std + y_mean`` and ``tau / y_std^2``."""
    y_std = check_positive(y_std, "y_std")
    samples = as_float_array(samples, "samples")
    return samples * y_std + y_mean, jnp.asarray(tau, samples.dtype) / y_std ** 2


def predict_proba(key: jax.Array, params: PyTree, X: ArrayLike, rate: ArrayLike, *,
                  n_samples: int, chunk_size: int | str = "auto") -> jax.Array:
    """MC dropout class probabilities: the softmax averaged over ``T`` stochastic passes.

    Args:
        key: PRNG key. params: classifier :class:`DropoutMLP` parameters.
        X: ``(n, d)`` inputs. rate: dropout rate. n_samples: ``T``.
        chunk_size: passes per vmapped chunk, or ``"auto"`` (:func:`pass_chunk`).

    Returns:
        ``(n, n_classes)`` probabilities.
    """
    logits = mc_forward(key, params, X, rate, n_samples=n_samples, chunk_size=chunk_size)
    return jnp.mean(jax.nn.softmax(logits, axis=-1), axis=0)

