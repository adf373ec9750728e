"""The stochastic-gradient engine: minibatch SGD / SGVB / Bayes-by-Backprop loops.

A loss is a function of one minibatch, ``loss_fn(params, batch, key) -> loss`` (or
``(loss, aux)`` with ``has_aux=True``, ``aux`` a dict of scalars to log). The engine does the
rest the same way for every model:

* :func:`init_state` builds a :class:`TrainState` ``(params, opt_state, key, step)``;
* :func:`make_step` turns ``loss_fn`` and an optax optimiser into a pure step
  ``(state, batch) -> (state, metrics)`` that splits the state's key each step;
* :func:`run_epochs` is a pure, jittable and vmappable loop: each epoch draws a permutation of
  the data from a key and ``lax.scan``-s the step over its minibatches (the remainder that does
  not fill a batch is left out of that epoch). Vmapping it over keys, data splits or
  hyper-parameters trains many networks in one compiled call;
* data parallelism: pass ``data`` sharded over its rows (every leaf put with
  ``NamedSharding(mesh, P("batch"))``, e.g. by :func:`espresso_jax.parallel.shard_rows`);
  :func:`fit_loop` then replicates the state over the mesh and keeps every gathered minibatch
  sharded the same way, so each device computes the loss terms of its rows and the compiler
  reduces the gradient. Every neural fit built on the engine inherits it;
* :func:`fit_loop` runs any step (a GAN's two-player step included) in jitted chunks of epochs
  and, between chunks, updates a progress bar, the loss history, evaluation callbacks and early
  stopping; :func:`fit` is ``init_state`` + ``make_step`` + ``fit_loop``.

States save and load with flax's msgpack serializer and a checksum sidecar (:func:`save_state`,
:func:`load_state`; see :mod:`espresso_jax.io`).
"""

from __future__ import annotations

import functools
import math
import os
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding

from espresso_jax import io
from espresso_jax.interop import standard_promotion
from espresso_jax.netcheck import check_network, check_optimizer
from espresso_jax.parallel import batch_sharding, place_on_rows
from espresso_jax.validation import check_int, check_key

__all__ = [
    "TrainState",
    "FitResult",
    "init_state",
    "make_step",
    "epoch_batches",
    "step_keys",
    "run_epochs",
    "fit_loop",
    "fit",
    "check_init",
    "COMPILER_OPTIONS",
    "save_state",
    "load_state",
]

PyTree = Any
StepFn = Callable[[Any, PyTree], tuple[Any, Mapping[str, jax.Array]]]


class TrainState(NamedTuple):
    """State of one optimisation run.

    Attributes:
        params: model parameters (any pytree of arrays).
        opt_state: the optax optimiser state.
        key: PRNG key split by every step (dropout masks, reparameterisation noise, ...).
        step: number of steps taken, int32 scalar.
    """

    params: PyTree
    opt_state: PyTree
    key: jax.Array
    step: jax.Array


class FitResult(NamedTuple):
    """Outcome of :func:`fit_loop` / :func:`fit` and of every neural fit built on them.

    The first four fields are the library's shared result shape (``params``, ``history``,
    ``n_iter``, ``converged``, as :class:`espresso_jax.em.EMResult`).

    Attributes:
        params: the final parameters (``params_of(state)``).
        history: per-epoch means of every metric the step returns, ``name -> (n_iter,)``.
        n_iter: epochs actually run.
        converged: True when the early-stopping criterion (``patience`` evaluations without
            improvement) ended the run; False after all ``n_epochs`` (an SGD run without
            ``eval_fn``/``patience`` has no convergence test).
        state: the final state (after the last epoch run).
        best_params: the parameters with the best evaluation metric when ``eval_fn`` is given,
            else the final parameters.
        eval_history: ``(n_evaluations,)`` values of ``eval_fn`` (empty without one).
    """

    params: PyTree
    history: dict[str, np.ndarray]
    n_iter: int
    converged: bool
    state: Any
    best_params: PyTree
    eval_history: np.ndarray


def init_state(key: jax.Array, params: PyTree, optimizer: optax.GradientTransformation
               ) -> TrainState:
    """A fresh :class:`TrainState`: ``optimizer.init(params)``, step 0, ``key`` for the steps.

    Raises:
        TypeError: ``optimizer`` is not an optax ``GradientTransformation`` (e.g. ``"adam"``).
    """
    optimizer = check_optimizer(optimizer)
    with standard_promotion():
        opt_state = optimizer.init(params)
    return TrainState(params=params, opt_state=opt_state, key=key,
                      step=jnp.zeros((), jnp.int32))


def make_step(loss_fn: Callable[..., Any], optimizer: optax.GradientTransformation, *,
              has_aux: bool = False) -> StepFn:
    """A pure training step for ``loss_fn(params, batch, key)``.

    The step splits ``state.key``, takes the gradient of the loss at ``state.params`` with the
    subkey, applies the optimiser update and returns ``(new_state, metrics)`` where ``metrics``
    holds ``"loss"`` and, with ``has_aux``, the entries of the aux dict.

    The same ``(loss_fn, optimizer, has_aux)`` gives the same step object, so jitted loops over
    it are compiled once per shape (a second :func:`fit` call does not recompile).

    Raises:
        TypeError: ``loss_fn`` is not callable, or ``optimizer`` is not an optax
            ``GradientTransformation``.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function (params, batch, key) -> loss, got "
                        f"{type(loss_fn).__name__}")
    return _make_step(loss_fn, check_optimizer(optimizer), has_aux)


@functools.lru_cache(maxsize=128)
def _make_step(loss_fn, optimizer, has_aux):
    value_and_grad = jax.value_and_grad(loss_fn, has_aux=has_aux)

    def step(state: TrainState, batch: PyTree) -> tuple[TrainState, dict[str, jax.Array]]:
        key, subkey = _split_step_key(state.key)
        value, grads = value_and_grad(state.params, batch, subkey)
        loss, aux = value if has_aux else (value, {})
        with standard_promotion():  # optax mixes int32 step counts with floats
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, **aux}
        return TrainState(params, opt_state, key, state.step + 1), metrics

    return step


def _split_step_key(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The step's key convention: ``(next state key, the loss's subkey)``."""
    key, subkey = jax.random.split(key)
    return key, subkey


def step_keys(key: jax.Array, n_steps: int) -> jax.Array:
    """The loss keys of the next ``n_steps`` steps of a :func:`make_step` step whose state
    holds ``key``: ``(n_steps,)`` keys, entry ``i`` the subkey that step ``i`` hands the loss
    (``n_steps`` static)."""
    return jax.lax.scan(lambda k, _: _split_step_key(k), key, None, length=int(n_steps))[1]


def _n_rows(data: PyTree) -> int:
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError("data has no array leaves")
    for path, leaf in jax.tree_util.tree_flatten_with_path(data)[0]:
        if not hasattr(leaf, "shape"):  # a Python list is a pytree node: its numbers are leaves
            raise TypeError(f"data must be a pytree of arrays sharing the leading axis, but "
                            f"data{jax.tree_util.keystr(path)} is a {type(leaf).__name__}: "
                            "convert Python lists first, e.g. (np.asarray(X), np.asarray(y))")
    sizes = {int(np.shape(leaf)[0]) if np.ndim(leaf) else -1 for leaf in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError("every array in data must share the leading (example) axis, got "
                         f"leading sizes {sorted(sizes)}")
    return sizes.pop()


def epoch_batches(key: jax.Array, n_rows: int, batch_size: int,
                  permutation: Callable[[jax.Array, int], jax.Array] | None = None
                  ) -> jax.Array:
    """Row indices of one shuffled epoch, ``(n_rows // batch_size, batch_size)``, cut from
    ``permutation(key, n_rows)`` (default ``jax.random.permutation``)."""
    n_batches = n_rows // batch_size
    perm = (jax.random.permutation if permutation is None else permutation)(key, n_rows)
    return perm[: n_batches * batch_size].reshape(n_batches, batch_size)


def run_epochs(key: jax.Array, step_fn: StepFn, state: Any, data: PyTree, *, batch_size: int,
               n_epochs: int, on_epoch: Callable[[jax.Array], None] | None = None,
               batch_sharding: NamedSharding | None = None,
               permutation: Callable[[jax.Array, int], jax.Array] | None = None,
               step_noise: Callable[[jax.Array], PyTree] | None = None
               ) -> tuple[Any, dict[str, jax.Array]]:
    """Run ``n_epochs`` shuffled epochs of ``step_fn`` (pure; jit and vmap it freely).

    Args:
        key: shuffling key, split into one permutation key per epoch.
        step_fn: ``(state, batch) -> (state, metrics)``; ``metrics`` a dict of scalars.
        state: the training state (any pytree).
        data: pytree of arrays sharing the leading axis ``(n_rows, ...)``.
        batch_size: rows per minibatch (static).
        n_epochs: epochs to run (static).
        on_epoch: optional host function called as ``on_epoch(epoch_index)`` after each epoch
            through ``jax.debug.callback`` (a progress hook inside one compiled call; it sees
            no traced values but the index, is called once per epoch under ``vmap``, and does
            not change the results).
        batch_sharding: optional sharding of the rows of each gathered minibatch (e.g.
            ``NamedSharding(mesh, P("batch"))``, see
            :func:`espresso_jax.parallel.batch_sharding`): every leaf of the batch is
            constrained to it, so a gather from row-sharded data stays sharded and the step
            runs data-parallel. None: the compiler's choice (one device: none).
        permutation: ``(key, n_rows) -> (n_rows,)`` random permutation drawing each epoch's
            order (default ``jax.random.permutation``; e.g.
            :func:`espresso_jax.prob.fast_draws.permutation`, the same distribution at a
            third of the CPU cost).
        step_noise: optional ``loss key -> noise`` (any pytree of arrays): the randomness of
            one step drawn *before* the epoch's steps. Each epoch then computes
            ``vmap(step_noise)(step_keys(state.key, n_batches))`` (the loss keys that the
            epoch's :func:`make_step` steps will split off, so ``state`` must carry the
            :class:`TrainState` key) as arrays in memory, and ``step_fn`` receives
            ``(batch, noise_i)`` as its batch. A loss that reads ``noise_i`` in place of
            drawing from its key computes the same numbers; what changes is where the draws
            are computed: once per epoch outside the step loop, where the compiler cannot
            fuse (and so duplicate) them into the step, e.g. one draw shared by networks
            vmapped with the same key. None (default): batches as they are.

    Returns:
        ``(state, metrics)`` with each metric averaged per epoch, ``(n_epochs,)``.
    """
    n_rows = jax.tree.leaves(data)[0].shape[0]

    def one_epoch(state, epoch_key):
        index = epoch_batches(epoch_key, n_rows, batch_size, permutation)
        n_batches = index.shape[0]
        noise = (None if step_noise is None
                 else jax.vmap(step_noise)(step_keys(state.key, n_batches)))

        def one_batch(state, xs):
            rows, i = xs
            batch = jax.tree.map(lambda a: jnp.take(a, rows, axis=0), data)
            if batch_sharding is not None:
                batch = jax.tree.map(
                    lambda a: jax.lax.with_sharding_constraint(a, batch_sharding), batch)
            if step_noise is None:
                return step_fn(state, batch)
            # read in place: as scan inputs, a vmapped noise array (batch axis first) would be
            # transposed to put the step axis first, a copy of every draw each epoch
            draws = jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, i, 0, False), noise)
            return step_fn(state, (batch, draws))

        xs = (index, None if step_noise is None else jnp.arange(n_batches))
        state, metrics = jax.lax.scan(one_batch, state, xs)
        return state, jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)

    keys = jax.random.split(key, n_epochs)
    if on_epoch is None:
        return jax.lax.scan(one_epoch, state, keys)

    def one_epoch_reported(state, xs):
        epoch_key, epoch = xs
        state, metrics = one_epoch(state, epoch_key)
        jax.debug.callback(on_epoch, epoch)
        return state, metrics

    return jax.lax.scan(one_epoch_reported, state, (keys, jnp.arange(n_epochs)))


# XLA options of the engine's compiled chunk. ``xla_cpu_copy_insertion_use_region_analysis``:
# without it, XLA CPU copies loop-carried parameters at the top of every step, e.g. kernels that
# a backward-pass product reads and that nothing orders before their optimiser update (for the
# 784-500-500-20 VAE, nine kernels and biases, 3.7 MB per step, ~6 % of the step); with it,
# copy insertion proves the copies unneeded and drops them. It changes buffer assignment only:
# the trained parameters are the same bit for bit (tests/test_train_compile.py). XLA backends
# other than the CPU are expected to ignore ``xla_cpu_*`` options (not checked on a GPU here).
COMPILER_OPTIONS: Mapping[str, Any] = types.MappingProxyType(
    {"xla_cpu_copy_insertion_use_region_analysis": True})


@functools.partial(jax.jit, static_argnames=("step_fn", "batch_size", "n_epochs", "sharding"),
                   compiler_options=dict(COMPILER_OPTIONS))
def _run_chunk(step_fn, state, data, key, batch_size, n_epochs, sharding):
    return run_epochs(key, step_fn, state, data, batch_size=batch_size, n_epochs=n_epochs,
                      batch_sharding=sharding)


def fit_loop(key: jax.Array, step_fn: StepFn, state: Any, data: PyTree, *, batch_size: int,
             n_epochs: int, epochs_per_chunk: int | None = None,
             eval_fn: Callable[[Any], Any] | None = None, eval_every: int = 1,
             patience: int | None = None, minimize: bool = True,
             params_of: Callable[[Any], PyTree] = lambda s: s.params,
             callbacks: Sequence[Callable[[int, Any, dict[str, float]], None]] = (),
             progress: bool = True, desc: str = "train") -> FitResult:
    """Train with any step function in jitted chunks of epochs.

    Between chunks (never inside them) the host updates a tqdm progress bar, evaluates
    ``eval_fn`` every ``eval_every`` epochs, keeps the best parameters, stops early after
    ``patience`` evaluations without improvement and calls each callback as
    ``callback(epoch, state, last_metrics)``.

    Args:
        key: shuffling key (the state carries its own key for the steps).
        step_fn: ``(state, batch) -> (state, metrics)``, e.g. from :func:`make_step`.
        state: initial state.
        data: pytree of arrays with a shared leading axis ``(n_rows, ...)``.
        batch_size: minibatch size, ``1 <= batch_size <= n_rows``.
        n_epochs: maximum number of epochs.
        epochs_per_chunk: epochs per jitted call (default: ``eval_every`` with an ``eval_fn``,
            else enough for about 20 progress updates).
        eval_fn: ``params -> scalar`` validation metric (lower is better unless
            ``minimize=False``).
        eval_every: epochs between evaluations; must divide into chunks (it sets the chunk).
        patience: evaluations without improvement before stopping (None: never stop early).
        params_of: how to read the parameters out of the state (for custom states).
        callbacks: host functions called after every chunk.
        progress: show a tqdm progress bar (only on process 0 under ``jax.distributed``).

    Data parallelism: when ``data`` is sharded over its rows
    (:func:`espresso_jax.parallel.batch_sharding`), the
    state is replicated over the same mesh, unsharded leaves of ``data`` are put on the row
    sharding (one process only; with several, pass every leaf as a global array), and every
    minibatch is constrained to the row sharding. The results equal those on one device up
    to float rounding (the gradient's sums are reduced in another order).

    Returns:
        :class:`FitResult`.
    """
    key = check_key(key)
    n_rows = _n_rows(data)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    n_epochs = check_int(n_epochs, "n_epochs", min_value=1)
    if batch_size > n_rows:
        raise ValueError(f"batch_size ({batch_size}) is larger than the number of rows "
                         f"({n_rows})")
    eval_every = check_int(eval_every, "eval_every", min_value=1)
    if patience is not None:
        patience = check_int(patience, "patience", min_value=1)
        if eval_fn is None:
            raise ValueError("patience needs an eval_fn to watch")
    if epochs_per_chunk is None:
        epochs_per_chunk = eval_every if eval_fn is not None else max(1, math.ceil(n_epochs / 20))
    epochs_per_chunk = check_int(epochs_per_chunk, "epochs_per_chunk", min_value=1)
    for leaf in jax.tree.leaves(data):
        arr = np.asarray(leaf) if not isinstance(leaf, jax.Array) else leaf
        if jnp.issubdtype(arr.dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(arr))):
            raise ValueError("data contains NaN or inf")
    sharding = batch_sharding(data)
    if sharding is not None:
        state, data = place_on_rows(state, data, sharding)

    from tqdm.auto import tqdm

    history: dict[str, list[np.ndarray]] = {}
    eval_history: list[float] = []
    best_value, best_params, bad_evals = math.inf, None, 0
    sign = 1.0 if minimize else -1.0
    done, stopped_early = 0, False
    bar = tqdm(total=n_epochs, desc=desc, disable=not progress or jax.process_index() != 0,
               unit="epoch", leave=False)
    try:
        while done < n_epochs:
            todo = min(epochs_per_chunk, n_epochs - done)
            key, chunk_key = jax.random.split(key)
            state, metrics = _run_chunk(step_fn, state, data, chunk_key, batch_size, todo,
                                        sharding)
            metrics = {k: np.asarray(v) for k, v in metrics.items()}
            for name, values in metrics.items():
                history.setdefault(name, []).append(values)
            done += todo
            last = {k: float(v[-1]) for k, v in metrics.items()}
            if not all(math.isfinite(v) for v in last.values()):
                bad = [k for k, v in last.items() if not math.isfinite(v)]
                raise FloatingPointError(
                    f"training diverged at epoch {done}: {', '.join(bad)} is not finite "
                    "(lower the learning rate or check the loss)")
            if eval_fn is not None and (done % eval_every == 0 or done == n_epochs):
                value = float(eval_fn(params_of(state)))
                eval_history.append(value)
                last["eval"] = value
                if sign * value < best_value:
                    best_value, bad_evals = sign * value, 0
                    best_params = jax.tree.map(jnp.copy, params_of(state))
                else:
                    bad_evals += 1
            for callback in callbacks:
                callback(done, state, last)
            bar.update(todo)
            bar.set_postfix({k: f"{v:.4g}" for k, v in last.items()}, refresh=False)
            if patience is not None and bad_evals >= patience:
                stopped_early = True
                break
    finally:
        bar.close()
    if best_params is None:
        best_params = params_of(state)
    return FitResult(params=params_of(state),
                     history={k: np.concatenate(v) for k, v in history.items()},
                     n_iter=done, converged=stopped_early, state=state,
                     best_params=best_params, eval_history=np.asarray(eval_history))


def fit(key: jax.Array, loss_fn: Callable[..., Any], params: PyTree, data: PyTree, *,
        optimizer: optax.GradientTransformation, batch_size: int, n_epochs: int,
        has_aux: bool = False, **loop_options: Any) -> FitResult:
    """Minimise ``loss_fn(params, batch, key)`` over shuffled minibatches of ``data``.

    Args:
        key: PRNG key; split into the shuffling key and the state's step key.
        loss_fn: loss of one minibatch; returns a scalar, or ``(scalar, aux_dict)`` with
            ``has_aux=True``. Scale it yourself (e.g. by N/M for an ELBO).
        params: initial parameters.
        data: pytree of arrays sharing the leading axis ``(n_rows, ...)``.
        optimizer: an optax optimiser (no default: the choice is part of the experiment).
        batch_size: rows per minibatch.
        n_epochs: epochs to run (at most, with early stopping).
        **loop_options: see :func:`fit_loop` (``eval_fn``, ``patience``, ``callbacks``, ...).

    Returns:
        :class:`FitResult` whose ``state`` is a :class:`TrainState`.
    """
    key = check_key(key)
    shuffle_key, step_key = jax.random.split(key)
    state = init_state(step_key, params, optimizer)
    step_fn = make_step(loss_fn, optimizer, has_aux=has_aux)
    return fit_loop(shuffle_key, step_fn, state, data, batch_size=batch_size,
                    n_epochs=n_epochs, **loop_options)


def check_init(key: jax.Array, init: Callable[[jax.Array, Any], PyTree],
               forward: Callable[[PyTree, Any], Any], params: PyTree | None, x: Any, *,
               name: str = "X", params_name: str = "params"
               ) -> tuple[jax.Array, jax.Array | None, Any]:
    """Check on the host, before anything compiles, that a network takes the input ``x``.

    The neural fits share this step: without ``params``, ``key`` splits into an
    initialisation key and a training key. ``init(key, x)`` and ``forward(params, x)`` are
    traced abstractly (:func:`espresso_jax.netcheck.check_network`): a wrong input width
    raises a ``ValueError`` naming ``name``, parameters of another network one naming
    ``params_name``.

    Args:
        key: the fit's PRNG key.
        init: ``(init_key, x) -> params``. forward: ``(params, x) -> outputs``.
        params: given initial parameters, or None to initialise.
        x: an example input, e.g. ``X[:1]``.
        name, params_name: the arguments named in errors.

    Returns:
        ``(train_key, init_key, outputs)``: ``init_key`` is None when ``params`` was given
        (then ``train_key`` is ``key``); ``outputs`` is the ``ShapeDtypeStruct`` of the
        forward pass (e.g. its last axis is the number of classes).
    """
    init_key = None
    if params is None:
        init_key, key = jax.random.split(key)
    trace_key = key if init_key is None else init_key
    out = check_network(lambda a: init(trace_key, a), forward, params, x, name=name,
                        params_name=params_name)
    return key, init_key, out


def _key_to_data(tree: PyTree) -> PyTree:
    def convert(leaf):
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(leaf)
        return leaf
    return jax.tree.map(convert, tree)


def save_state(path: str | os.PathLike, state: Any) -> Path:
    """Save a training state (or any pytree with typed keys) with flax's msgpack serializer.

    Typed PRNG keys are stored as their raw key data. The file gets the same ``.sha256``
    checksum sidecar as :func:`espresso_jax.io.save_params` (one writer: :func:`io.save_tree`),
    verified by :func:`load_state`.
    """
    return io.save_tree(path, _key_to_data(state))


def load_state(path: str | os.PathLike, like: Any) -> Any:
    """Load a state written by :func:`save_state` into the structure of ``like``.

    ``like`` is a state of the same model and optimiser (e.g. a freshly initialised one);
    typed keys in ``like`` come back as typed keys of the same implementation.
    """
    loaded = io.load_tree(path, _key_to_data(like))

    def restore(template, leaf):
        if isinstance(template, jax.Array) and jnp.issubdtype(template.dtype,
                                                              jax.dtypes.prng_key):
            return jax.random.wrap_key_data(leaf, impl=jax.random.key_impl(template))
        return jnp.asarray(leaf, dtype=getattr(template, "dtype", None))

    return jax.tree.map(restore, like, loaded)
