"""One engine for EM and variational EM over additive sufficient statistics.

An EM model is three pure functions (an :class:`EMModel`):

- ``e_step(params, X, w) -> stats``: sufficient statistics of a block of rows ``X (B, D)``
  with per-row weights ``w (B,)``. Statistics are a pytree that is ADDITIVE over rows (and
  zero for rows of weight 0), so blocks, minibatches and devices combine by summation.
- ``m_step(params, stats) -> params``: the new parameters from the summed statistics (the old
  parameters are given for models whose statistics live in a frame the parameters fix, e.g.
  rows shifted by reference means for numerically stable covariances, and for ECM variants).
- ``objective(params, new_params, stats) -> ()``: the quantity that must not decrease,
  e.g. the mean log-likelihood of ``params`` (EM) or the ELBO after the update (VB).

Because the statistics add, the same loop gives:

- chunked E-steps (``chunk_size``): rows are processed in blocks by ``lax.scan``, so memory is
  O(chunk_size · K · D) whatever N is;
- data-parallel EM: pass ``X`` sharded over rows (``jax.sharding``); the row sums become
  all-reduces inserted by the compiler (chunks are strided over rows so each chunk keeps the
  row sharding);
- stepwise (online) EM (:func:`fit_stepwise_em`): running statistics updated from minibatches.

The loop itself, :func:`iterate` (``state -> (state, value, done)`` until ``done`` or
``max_iter``, recording ``history``), is shared by every fixed-point fit of the library: EM,
k-means, evidence maximisation (linear and logistic), Newton's method for the Laplace mode and
full-batch optimiser steps on GP hyper-parameters. So all of them return the same
``params, history, n_iter, converged`` (:class:`EMResult`); closed-form fits splat
:func:`closed_form` into their results.

References:
    Dempster, Laird & Rubin (1977); Neal & Hinton (1998), "A view of the EM algorithm that
    justifies incremental, sparse, and other variants"; Cappé & Moulines (2009), "Online EM";
    Liang & Klein (2009), "Online EM for unsupervised models"; Bishop, PRML (2006), §9.4, §10.2.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from espresso_jax.cpu_cache import cache_sizes
from espresso_jax.validation import check_int, check_key, check_positive, is_traced

__all__ = ["EMModel", "EMResult", "StepwiseResult", "auto_chunk_bytes", "closed_form", "fit_em",
           "fit_stepwise_em", "iterate",
           "pad_rows", "resolve_chunk_size", "select_best", "sum_blocks", "sum_stats"]

AUTO_CHUNK_BYTES = 4 << 20
"""Fallback target size of one block's largest temporary under ``chunk_size="auto"`` on CPU,
used where the platform reports no L2 cache size (see :func:`auto_chunk_bytes`). It was the
fixed target before, tuned on a 2-core AMD EPYC (N = 100,000, D = 8, K = 16 GMM: 72 ms per
iteration with one block, 32 ms with blocks of 2,000–10,000 rows, 1–5 MiB temporaries)."""


AUTO_CHUNK_MIN_BYTES = 1 << 20
"""Lower bound of :func:`auto_chunk_bytes`: a guard against thousands of tiny blocks (each pays
the scan's per-block overhead) on a CPU with a small L2; on the Xeon blocks of 0.25–4 MiB cost
the same CPU time."""

AUTO_CHUNK_MAX_BYTES = 8 << 20
"""Upper bound of :func:`auto_chunk_bytes`: a larger block fits no core's private cache."""


def auto_chunk_bytes() -> int:
    """Target size in bytes of one E-step block's largest temporary under ``chunk_size="auto"``
    on CPU: the size of the running CPU's L2 cache (private to a core on current x86 and ARM
    servers; :func:`espresso_jax.cpu_cache.cache_sizes`, read once per process), clipped to
    ``[AUTO_CHUNK_MIN_BYTES, AUTO_CHUNK_MAX_BYTES]`` (1 to 8 MiB); :data:`AUTO_CHUNK_BYTES`
    (4 MiB) where the platform reports no L2 size.

    Why the L2: an E-step block is bound by memory traffic over its ``(B, K, D)`` temporaries
    (rows in each component's frame), and XLA splits each block's rows between the cores, so
    a block whose largest temporary is one L2 leaves each core half its L2 for that temporary
    and the rest for the block's other arrays. Measured on a 2-core Intel Xeon (L2 2 MiB per
    core) with ``benchmarks/gmm_chunk_sweep.py``: see ``benchmarks/RESULTS.md``.
    """
    l2 = cache_sizes().get(2, 0)
    if l2 <= 0:
        return AUTO_CHUNK_BYTES
    return min(max(l2, AUTO_CHUNK_MIN_BYTES), AUTO_CHUNK_MAX_BYTES)


Params = Any
Stats = Any


class EMModel(NamedTuple):
    """The three pure functions of an EM model (see the module docstring).

    Build one per configuration and reuse it (e.g. from a factory under ``functools.cache``): the
    functions are static arguments of the jitted loops, so a new object means a new compile.
    """

    e_step: Callable[[Params, jax.Array, jax.Array], Stats]
    m_step: Callable[[Params, Stats], Params]
    objective: Callable[[Params, Params, Stats], jax.Array]


class EMResult(NamedTuple):
    """Result of :func:`fit_em`.

    Attributes:
        params: the final parameters (after the last M-step).
        history: ``(max_iter,)`` objective at every iteration, NaN after ``n_iter``.
        n_iter: ``()`` int32 number of EM iterations run.
        converged: ``()`` bool, the (finite) objective changed by less than a ``tol`` that
            the dtype resolves (see :func:`fit_em`).
    """

    params: Params
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array


def _strided_chunks(a: jax.Array, n_chunks: int) -> jax.Array:
    """``(N, ...) -> (n_chunks, N // n_chunks, ...)`` with chunk ``j`` = rows ``j, j + n_chunks,
    ...``: the row axis stays the (sharded) second axis, so each chunk spans all devices."""
    rows = a.shape[0] // n_chunks
    return jnp.swapaxes(a.reshape((rows, n_chunks) + a.shape[1:]), 0, 1)


def sum_blocks(fn: Callable[..., Stats], arrays: tuple[jax.Array, ...],
               chunk_size: int | None) -> Stats:
    """``Σ_blocks fn(*blocks)`` over row blocks of ``chunk_size`` rows of every array in
    ``arrays`` (``None``: one block), with the strided chunking that keeps row sharding.
    The arrays must have a multiple of ``chunk_size`` rows (see :func:`pad_rows`)."""
    n = arrays[0].shape[0]
    if chunk_size is None or chunk_size >= n:
        return fn(*arrays)
    n_chunks = n // chunk_size
    blocks = tuple(_strided_chunks(a, n_chunks) for a in arrays)
    first = fn(*(b[0] for b in blocks))

    def body(total, block):
        return jax.tree.map(jnp.add, total, fn(*block)), None

    total, _ = lax.scan(body, first, tuple(b[1:] for b in blocks))
    return total


def sum_stats(e_step: Callable, params: Params, X: jax.Array, w: jax.Array,
              chunk_size: int | None) -> Stats:
    """Sufficient statistics of all rows, in chunks of ``chunk_size`` rows (``None``: one
    block). ``X`` must have a multiple of ``chunk_size`` rows (pad with weight-0 rows)."""
    return sum_blocks(lambda Xb, wb: e_step(params, Xb, wb), (X, w), chunk_size)


def resolve_chunk_size(chunk_size: int | str | None, n_rows: int,
                       bytes_per_row: int) -> int | None:
    """Validate a model's ``chunk_size`` argument and resolve ``"auto"``.

    Args:
        chunk_size: rows per E-step block, ``None`` (all rows in one block) or ``"auto"``:
            on CPU, blocks whose largest temporary is about :func:`auto_chunk_bytes` (the
            CPU's L2 cache: a cache-sized block is faster than one huge pass, which is
            memory-bound); on an accelerator, one block (its parallelism wants the whole
            batch).
        n_rows: number of data rows.
        bytes_per_row: bytes of the largest per-row temporary (e.g. ``K · D · itemsize``).

    Returns:
        An ``int`` block size, or ``None`` for a single block. Auto blocks are balanced so the
        padding (weight-0 rows) is less than one row per block.
    """
    if chunk_size is None:
        return None
    if isinstance(chunk_size, str):
        if chunk_size != "auto":
            raise ValueError(f"chunk_size must be a positive int, None or 'auto', got "
                             f"{chunk_size!r}")
        if jax.default_backend() != "cpu":
            return None
        rows = max(256, auto_chunk_bytes() // max(1, bytes_per_row))
        if rows >= n_rows:
            return None
        n_chunks = -(-n_rows // rows)
        return -(-n_rows // n_chunks)
    return check_int(chunk_size, "chunk_size", min_value=1)


def pad_rows(X: jax.Array, w: jax.Array, chunk_size: int | None) -> tuple[jax.Array, jax.Array]:
    """Pad ``X`` and ``w`` with zero rows of weight 0 up to a multiple of ``chunk_size``."""
    n = X.shape[0]
    if chunk_size is None or chunk_size >= n or n % chunk_size == 0:
        return X, w
    extra = chunk_size - n % chunk_size
    X = jnp.concatenate([X, jnp.zeros((extra,) + X.shape[1:], X.dtype)])
    return X, jnp.concatenate([w, jnp.zeros((extra,), w.dtype)])


def iterate(step: Callable[[Any], tuple[Any, jax.Array, jax.Array]], state0: Any, *,
            max_iter: int, dtype) -> EMResult:
    """The shared fixed-point loop (traceable; call it inside a jitted fit).

    Runs ``state, value, done = step(state)`` in one ``lax.while_loop`` until ``done`` or
    ``max_iter`` iterations, recording ``history[i] = value`` of iteration ``i``. EM
    (:func:`fit_em`), k-means, evidence maximisation and optimiser loops over
    hyper-parameters all run on it, so they share one result shape.

    Args:
        step: one iteration, ``state -> (new_state, value (), done ())``; ``value`` is the
            objective recorded for the iteration and ``done`` its convergence test.
        state0: initial state (a pytree).
        max_iter: maximum number of iterations (static; the length of ``history``).
        dtype: dtype of ``history``.

    Returns:
        :class:`EMResult` with ``params`` the final state, ``history`` ``(max_iter,)`` padded
        with NaN after ``n_iter``, and ``converged`` the last ``done`` (False whenever the last
        ``value`` is not finite: a non-finite objective never stops the loop as converged).
    """
    history0 = jnp.full((max_iter,), jnp.nan, dtype=dtype)

    def cond(carry):
        _, _, i, done = carry
        return (i < max_iter) & ~done

    def body(carry):
        state, history, i, _ = carry
        state, value, done = step(state)
        value = jnp.asarray(value, dtype)
        # a non-finite objective never counts as converged
        return state, history.at[i].set(value), i + 1, done & jnp.isfinite(value)

    init = (state0, history0, jnp.zeros((), jnp.int32), jnp.zeros((), bool))
    state, history, n_iter, converged = lax.while_loop(cond, body, init)
    return EMResult(params=state, history=history, n_iter=n_iter, converged=converged)


def closed_form(dtype) -> dict[str, jax.Array]:
    """The loop fields of a closed-form fit, to splat into its result: ``history`` ``(0,)``,
    ``n_iter = 0`` and ``converged = True`` (traceable)."""
    return {"history": jnp.zeros((0,), dtype), "n_iter": jnp.zeros((), jnp.int32),
            "converged": jnp.ones((), bool)}


@partial(jax.jit, static_argnames=("model", "max_iter", "chunk_size"))
def _fit_em_impl(model: EMModel, params0, X, w, tol, max_iter: int, chunk_size):
    def step(state):
        params, previous = state
        stats = sum_stats(model.e_step, params, X, w, chunk_size)
        new = model.m_step(params, stats)
        value = model.objective(params, new, stats).astype(X.dtype)
        # a change below tol is only evidence when tol is at least the objective's own
        # rounding error (half a unit in its last place)
        resolved = tol >= 0.5 * jnp.abs(jnp.spacing(value))
        return (new, value), value, (jnp.abs(value - previous) < tol) & resolved

    first = jnp.asarray(-jnp.inf, X.dtype)
    res = iterate(step, (params0, first), max_iter=max_iter, dtype=X.dtype)
    return res._replace(params=res.params[0])


def fit_em(model: EMModel, params0: Params, X: jax.Array, w: jax.Array | None = None, *,
           tol: float, max_iter: int, chunk_size: int | None = None) -> EMResult:
    """Run EM (or variational EM) to convergence in one jitted ``lax.while_loop``.

    Each iteration: ``stats = Σ_blocks e_step(params, X_b, w_b)``,
    ``new = m_step(params, stats)``,
    ``history[i] = objective(params, new, stats)``; it stops when
    ``|history[i] − history[i−1]| < tol`` or after ``max_iter`` iterations. ``converged``
    means that test was met with a finite objective and a ``tol`` the dtype can resolve: a
    ``tol`` below the objective's own rounding error, half a unit in its last place (float32:
    about ``6e-8 · |objective|``), cannot tell convergence from rounding, so the loop then
    runs ``max_iter`` iterations and reports ``converged = False``.

    Model code validates user input before calling this; here only the engine's own
    arguments are checked. ``vmap`` this function over ``params0`` for restarts (see
    :func:`select_best`); pass ``X`` sharded over rows for data-parallel EM.

    Args:
        model: the :class:`EMModel` (a static argument: reuse the same object).
        params0: initial parameters (a pytree).
        X: ``(n_samples, n_features)`` data (already validated).
        w: ``(n_samples,)`` non-negative row weights; ``None`` means ones.
        tol: convergence threshold on the change of the objective (``0`` runs ``max_iter``);
            may be a traced scalar when called from inside a model's jitted fit.
        max_iter: maximum number of iterations (also the length of ``history``).
        chunk_size: rows per E-step block (``None``: all rows at once).

    Returns:
        :class:`EMResult`.
    """
    if not is_traced(tol):   # a traced tol (fit_em called inside a model's own jit) passes
        tol = check_positive(tol, "tol", allow_zero=True)
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
    if w is None:
        w = jnp.ones(X.shape[:1], X.dtype)
    X, w = pad_rows(X, w, chunk_size)
    return _fit_em_impl(model, params0, X, w, jnp.asarray(tol, X.dtype), max_iter, chunk_size)


def select_best(results: EMResult) -> EMResult:
    """Pick the run with the highest final objective from a vmapped batch of results
    (on device; NaN runs never win)."""
    final = jnp.take_along_axis(results.history, (results.n_iter - 1)[:, None], axis=1)[:, 0]
    best = jnp.argmax(jnp.where(jnp.isnan(final), -jnp.inf, final))
    return jax.tree.map(lambda leaf: leaf[best], results)


class StepwiseResult(NamedTuple):
    """Result of :func:`fit_stepwise_em`.

    Attributes:
        params: final parameters.
        stats: final running statistics (scaled to the full data size).
        history: ``(n_steps,)`` objective of each minibatch step (noisy; per-step estimate).
        n_iter: ``()`` int32 number of minibatch steps run (``n_epochs · n_batches``).
        converged: ``()`` bool, always False: a stepwise run has a fixed budget and no
            convergence test.
    """

    params: Params
    stats: Stats
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array


@partial(jax.jit, static_argnames=("model", "batch_size", "n_epochs"))
def _stepwise_impl(model: EMModel, key, params0, X, w, batch_size: int, n_epochs: int,
                   kappa, t0):
    n = X.shape[0]
    n_batches = n // batch_size
    scale = jnp.asarray(n / batch_size, X.dtype)
    stats0 = jax.tree.map(lambda s: s * scale,
                          model.e_step(params0, X[:batch_size], w[:batch_size]))

    def epoch(carry, epoch_key):
        order = jax.random.permutation(epoch_key, n)[: n_batches * batch_size]
        batches = order.reshape(n_batches, batch_size)

        def step(carry, idx):
            params, stats, t = carry
            batch = jax.tree.map(lambda s: s * scale, model.e_step(params, X[idx], w[idx]))
            rho = (t + t0) ** (-kappa)
            stats_new = jax.tree.map(lambda a, b: (1 - rho) * a + rho * b, stats, batch)
            new = model.m_step(params, stats_new)
            value = model.objective(params, new, batch).astype(X.dtype)
            return (new, stats_new, t + 1), value

        return lax.scan(step, carry, batches)

    carry0 = (model.m_step(params0, stats0), stats0, jnp.ones((), X.dtype))
    (params, stats, _), history = lax.scan(epoch, carry0, jax.random.split(key, n_epochs))
    history = history.reshape(-1)
    return StepwiseResult(params=params, stats=stats, history=history,
                          n_iter=jnp.asarray(history.shape[0], jnp.int32),
                          converged=jnp.zeros((), bool))


def fit_stepwise_em(key: jax.Array, model: EMModel, params0: Params, X: jax.Array,
                    w: jax.Array | None = None, *, batch_size: int, n_epochs: int,
                    kappa: float = 0.6, t0: float = 2.0) -> StepwiseResult:
    """Stepwise (online) EM over shuffled minibatches.

    Running statistics ``s ← (1 − ρ_t) s + ρ_t (N / B) e_step(params, batch)`` with step size
    ``ρ_t = (t + t0)^(−κ)``, ``0.5 < κ ≤ 1``, then ``params = m_step(params, s)``; epochs are
    permutations drawn from ``key``. Statistics of different steps are averaged, so they must
    live in a frame that does not change during the fit (a shift fixed in ``params0`` is fine).

    Args:
        key: PRNG key for the minibatch order.
        model: the :class:`EMModel`.
        params0: initial parameters.
        X: ``(n_samples, n_features)`` data (already validated).
        w: ``(n_samples,)`` row weights or ``None``.
        batch_size: rows per minibatch.
        n_epochs: passes over the data.
        kappa: step-size decay exponent in (0.5, 1].
        t0: step-size offset (> 0).

    Returns:
        :class:`StepwiseResult`.

    References:
        Cappé & Moulines (2009); Liang & Klein (2009).
    """
    check_key(key)
    n = X.shape[0]
    batch_size = check_int(batch_size, "batch_size", min_value=1, max_value=n)
    n_epochs = check_int(n_epochs, "n_epochs", min_value=1)
    kappa = check_positive(kappa, "kappa")
    if not 0.5 < kappa <= 1.0:
        raise ValueError(f"kappa must lie in (0.5, 1], got {kappa}")
    t0 = check_positive(t0, "t0")
    if w is None:
        w = jnp.ones((n,), X.dtype)
    return _stepwise_impl(model, key, params0, X, w, batch_size, n_epochs,
                          jnp.asarray(kappa, X.dtype), jnp.asarray(t0, X.dtype))
