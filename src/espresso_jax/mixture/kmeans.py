"""k-means clustering: greedy k-means++ seeding and Lloyd iterations on the EM engine.

Lloyd's algorithm is EM with hard assignments (PRML §9.1): the E-step assigns every row to its
nearest centre, the M-step moves each centre to the weighted mean of its rows. Here it runs on
:func:`espresso_jax.em.fit_em`, so chunked E-steps (``chunk_size``), row-sharded data and
vmapped restarts (``n_init``) come from the engine. The statistics of a block are additive:
weighted counts ``n_k = Σ w_n [l_n = k]``, shifted sums ``s_k = Σ w_n [l_n = k] (x_n − shift_k)``
(``shift`` = the initial centres, fixed during a fit) and the inertia ``Σ w_n ‖x_n − c_{l_n}‖²``
of the current centres.

Conventions (differences from scikit-learn's ``KMeans`` are deliberate and documented):

- **Empty clusters keep their centre.** A cluster that receives no row (or only rows of weight
  0) is left where it is; scikit-learn instead relocates it to the rows farthest from their
  centres. With k-means++ seeding this is rare; it never produces NaN.
- **Tolerance on the inertia.** The fit stops when the inertia changes by less than
  ``tol · W · v̄`` between iterations, where ``W = Σ w`` and ``v̄`` is the mean over features of
  the weighted variance of the data (scikit-learn compares the squared centre shift with
  ``tol · v̄``; both are relative to the data variance). ``tol=0`` runs ``max_iter`` iterations
  (a fixed point is reached and kept once assignments stop changing).
- ``history[i]`` is the inertia of the centres entering iteration ``i`` (never increasing);
  ``inertia`` is that of the returned centres, with rows re-assigned to them (as scikit-learn's
  ``inertia_``).
- Restarts: run ``i`` is seeded with ``jax.random.split(key, n_init)[i]``; the run with the
  smallest final inertia is returned (chosen on device).
- The data are centred on their weighted mean and divided by ``2**e``, the power of two
  nearest to their RMS spread (:func:`espresso_jax.scaling.spread_exponent`), inside the fit
  (k-means is translation and scale equivariant; dividing by a power of two is exact), so
  squared distances ``‖x‖² − 2xᵀc + ‖c‖²`` keep their digits in float32 and data scaled by
  ``c`` give the same labels, centres times ``c`` and inertia times ``c²``. Data whose squared
  spread leaves the dtype's range (float32: spread beyond about ``1e±17``) are rejected with
  a ``ValueError`` (the inertia could not be represented).
- Random choices (seeding) are drawn in float32 whatever the data's dtype, so float32 and
  float64 data pick the same seeds (up to ties that rounding decides).

References:
    S. Lloyd, "Least squares quantization in PCM", IEEE Trans. Inf. Theory 28(2), 1982.
    D. Arthur and S. Vassilvitskii, "k-means++: the advantages of careful seeding", SODA 2007
    (greedy variant with ``2 + ⌊log K⌋`` candidates per step as in scikit-learn).
    C. M. Bishop, *Pattern Recognition and Machine Learning*, 2006, §9.1.
"""

from __future__ import annotations

import functools
import math
import warnings
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from espresso_jax import em
from espresso_jax.prob.moments import MomentStats, centred_moments, data_moments, moment_stats
from espresso_jax.scaling import checked_exponent, pow2, spread_exponent
from espresso_jax.validation import (
    as_float_array,
    as_sample_weight,
    check_choice,
    check_int,
    check_key,
    check_positive,
    is_traced,
)

__all__ = ["KMeansParams", "KMeansResult", "fit", "kmeans_plusplus", "predict", "transform"]

INITS = ("kmeans++", "random")
"""The ``init`` strings of :func:`fit`."""


class KMeansParams(NamedTuple):
    """Fitted k-means (what :func:`predict` and :func:`transform` take).

    Attributes:
        centres: ``(n_clusters, n_features)`` cluster centres.
    """

    centres: jax.Array


class KMeansResult(NamedTuple):
    """Result of :func:`fit`.

    Attributes:
        params: :class:`KMeansParams`.
        history: ``(max_iter,)`` inertia of the centres entering each iteration, NaN after
            ``n_iter``.
        n_iter: ``()`` int32 number of Lloyd iterations run.
        converged: ``()`` bool, the inertia changed by less than the tolerance.
        inertia: ``()`` weighted sum of squared distances of the rows to their closest centre.
    """

    params: KMeansParams
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    inertia: jax.Array


class _LloydParams(NamedTuple):
    """Internal EM state: current centres, the fixed statistics frame, the objective scale."""

    centres: jax.Array   # (K, D)
    shift: jax.Array     # (K, D) fixed during a fit (the initial centres)
    scale: jax.Array     # () 1 / (W · mean variance), makes the objective dimensionless


class _LloydStats(NamedTuple):
    counts: jax.Array    # (K,)
    sums: jax.Array      # (K, D) Σ w (x − shift_k) over the rows of cluster k
    inertia: jax.Array   # () Σ w ‖x − c_l‖² for the centres the rows were assigned to


def _sq_dists(X: jax.Array, C: jax.Array) -> jax.Array:
    """``(N, D), (K, D) -> (N, K)`` squared Euclidean distances (clipped at 0)."""
    xx = jnp.sum(X * X, axis=1)
    cc = jnp.sum(C * C, axis=1)
    cross = jnp.matmul(X, C.T, precision=lax.Precision.HIGHEST)
    return jnp.maximum(xx[:, None] - 2.0 * cross + cc[None, :], 0.0)


def _labels(X: jax.Array, C: jax.Array) -> jax.Array:
    """Index of the nearest centre for every row (ties: the lowest index)."""
    cc = jnp.sum(C * C, axis=1)
    cross = jnp.matmul(X, C.T, precision=lax.Precision.HIGHEST)
    return jnp.argmin(cc[None, :] - 2.0 * cross, axis=1)


def _e_step(params: _LloydParams, X: jax.Array, w: jax.Array) -> _LloydStats:
    labels = _labels(X, params.centres)
    resid = X - params.centres[labels]
    inertia = jnp.sum(w * jnp.sum(resid * resid, axis=1))
    moments = moment_stats(X, w, labels, params.shift, diagonal=True)   # sxx unused (DCE)
    return _LloydStats(counts=moments.nk, sums=moments.sx, inertia=inertia)


def _m_step(params: _LloydParams, stats: _LloydStats) -> _LloydParams:
    moments = MomentStats(stats.counts, stats.sums, jnp.zeros_like(stats.sums))
    means = centred_moments(moments, params.shift).means
    return params._replace(centres=jnp.where((stats.counts > 0)[:, None], means, params.centres))


def _objective(params: _LloydParams, new: _LloydParams, stats: _LloydStats) -> jax.Array:
    return -stats.inertia * params.scale


@functools.cache
def _model() -> em.EMModel:
    """The Lloyd EM model (one object, so the engine's jit cache is reused)."""
    return em.EMModel(e_step=_e_step, m_step=_m_step, objective=_objective)


# --------------------------------------------------------------------------------------------
# Seeding
# --------------------------------------------------------------------------------------------

def _kmeanspp_indices(key: jax.Array, X: jax.Array, w: jax.Array, n_clusters: int) -> jax.Array:
    """Greedy k-means++ row indices ``(n_clusters,)`` (traceable; X should be centred)."""
    n_trials = 2 + int(math.log(n_clusters))
    # the draws use float32 logits whatever X's dtype: the same seeds in float32 and float64
    log_w = jnp.log(w).astype(jnp.float32)
    key_first, key_rest = jax.random.split(key)
    first = jax.random.categorical(key_first, log_w)
    closest = _sq_dists(X, X[first][None, :])[:, 0]                       # (N,)
    idx0 = jnp.zeros((n_clusters,), jnp.int32).at[0].set(first.astype(jnp.int32))

    def body(c, carry):
        idx, closest, key = carry
        key, sub = jax.random.split(key)
        mass = w * closest
        # D² sampling; when every row sits on a centre already, fall back to the weights.
        logits = jnp.where(jnp.sum(mass) > 0, jnp.log(mass).astype(jnp.float32), log_w)
        cand = jax.random.categorical(sub, logits, shape=(n_trials,))
        dist = jnp.minimum(closest[None, :], _sq_dists(X[cand], X))       # (T, N)
        best = jnp.argmin(dist @ w)
        return idx.at[c].set(cand[best].astype(jnp.int32)), dist[best], key

    idx, _, _ = lax.fori_loop(1, n_clusters, body, (idx0, closest, key_rest))
    return idx


def _weighted_centre(X: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Weighted mean ``(D,)`` and mean (over features) weighted variance ``()``."""
    cm = data_moments(X, w, diagonal=True)
    return cm.means[0], jnp.mean(cm.scatter[0]) / cm.nk[0]


@partial(jax.jit, static_argnames=("n_clusters",))
def _kmeanspp_impl(key, X, w, n_clusters: int):
    mean, _ = _weighted_centre(X, w)
    inv = pow2(-spread_exponent(X, w), X.dtype)
    return X[_kmeanspp_indices(key, (X - mean[None, :]) * inv, w, n_clusters)]


def kmeans_plusplus(key: jax.Array, X: ArrayLike, n_clusters: int, *,
                    sample_weight: ArrayLike | None = None) -> jax.Array:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, as in scikit-learn).

    The first centre is a row drawn with probability ∝ ``sample_weight``; each further centre
    is the best of ``2 + ⌊log K⌋`` candidates drawn with probability ∝ ``w_n D(x_n)²``
    (``D`` = distance to the closest centre so far), "best" meaning the smallest resulting
    weighted potential ``Σ w_n min_k ‖x_n − c_k‖²``. Rows of weight 0 are never chosen (unless
    every row of positive weight already coincides with a centre).

    Args:
        key: PRNG key.
        X: ``(n_samples, n_features)`` data.
        n_clusters: number of centres ``K`` (``1 ≤ K ≤ n_samples``).
        sample_weight: ``(n_samples,)`` non-negative row weights (``None``: ones).

    Returns:
        ``(n_clusters, n_features)`` centres (rows of ``X``).

    References:
        Arthur & Vassilvitskii (2007), "k-means++: the advantages of careful seeding".
    """
    key = check_key(key)
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    n_clusters = _check_n_clusters(n_clusters, X.shape[0])
    w = as_sample_weight(sample_weight, X.shape[0]).astype(X.dtype)
    return _kmeanspp_impl(key, X, w, n_clusters)


def _check_n_clusters(n_clusters: Any, n_samples: int) -> int:
    n_clusters = check_int(n_clusters, "n_clusters", min_value=1)
    if n_clusters > n_samples:
        raise ValueError(f"n_clusters={n_clusters} must be <= n_samples={n_samples}")
    return n_clusters


# --------------------------------------------------------------------------------------------
# Fit
# --------------------------------------------------------------------------------------------

@partial(jax.jit, static_argnames=("n_clusters", "init"))
def _prepare(keys, X, w, e, n_clusters: int, init: str | None):
    """Centre the data and divide them by ``2**e``; seed ``len(keys)`` runs (``init=None``:
    no seeding)."""
    mean, _ = _weighted_centre(X, w)
    Xc = (X - mean[None, :]) * pow2(-e, X.dtype)
    _, var = _weighted_centre(Xc, w)
    scale = 1.0 / (jnp.sum(w) * jnp.where(var > 0, var, 1.0))
    if init == "kmeans++":
        idx = jax.vmap(lambda k: _kmeanspp_indices(k, Xc, w, n_clusters))(keys)
        centres0 = Xc[idx]
    elif init == "random":
        p = (w / jnp.sum(w)).astype(jnp.float32)     # float32 draws whatever the dtype
        idx = jax.vmap(lambda k: jax.random.choice(k, X.shape[0], (n_clusters,),
                                                   replace=False, p=p))(keys)
        centres0 = Xc[idx]
    else:
        centres0 = None
    return Xc, mean, scale, centres0


@partial(jax.jit, static_argnames=("chunk_size",))
def _finish(runs: em.EMResult, Xc, w, mean, e, chunk_size):
    Xp, wp = em.pad_rows(Xc, w, chunk_size)
    final = jax.vmap(lambda p: em.sum_stats(_e_step, p, Xp, wp, chunk_size).inertia)(runs.params)
    best = jnp.argmin(jnp.where(jnp.isnan(final), jnp.inf, final))
    scale = runs.params.scale[best]
    s = pow2(e, Xc.dtype)
    return KMeansResult(
        params=KMeansParams(centres=runs.params.centres[best] * s + mean[None, :]),
        history=-runs.history[best] / scale * (s * s),
        n_iter=runs.n_iter[best],
        converged=runs.converged[best],
        inertia=final[best] * (s * s),
    )


def fit(key: jax.Array, X: ArrayLike, n_clusters: int, *, n_init: int = 1,
        max_iter: int = 300, tol: float = 1e-4, init: str | ArrayLike = "kmeans++",
        sample_weight: ArrayLike | None = None, chunk_size: int | None = None) -> KMeansResult:
    """k-means by Lloyd iterations (one compiled EM loop, restarts vmapped).

    Args:
        key: PRNG key (seeds the ``n_init`` runs; unused with an explicit ``init`` array).
        X: ``(n_samples, n_features)`` data.
        n_clusters: number of clusters ``K`` (``1 ≤ K ≤ n_samples``).
        n_init: number of seeded runs; the one with the smallest final inertia is returned.
        max_iter: maximum Lloyd iterations per run (also the length of ``history``).
        tol: stop when the inertia changes by less than ``tol · Σw · v̄`` (``v̄``: mean
            per-feature weighted variance of ``X``); ``0`` runs ``max_iter`` iterations.
        init: ``"kmeans++"`` (greedy k-means++), ``"random"`` (``K`` distinct rows drawn
            ∝ ``sample_weight``) or an array ``(n_clusters, n_features)`` of initial centres
            (then a single run is made, as scikit-learn does).
        sample_weight: ``(n_samples,)`` non-negative row weights; an integer weight is the
            same as repeating the row.
        chunk_size: rows per E-step block (bounds memory to O(chunk_size · K)).

    Returns:
        :class:`KMeansResult`.

    Raises:
        ValueError: non-finite or wrongly shaped ``X``/``init``/``sample_weight``, ``X``
            whose squared spread its dtype cannot hold (rescale ``X`` or enable float64),
            ``n_clusters > n_samples``, unknown ``init``, bad ``n_init``/``max_iter``/``tol``.

    References:
        Lloyd (1982); Arthur & Vassilvitskii (2007); Bishop, PRML (2006), §9.1.
    """
    key = check_key(key)
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    n, d = X.shape
    n_clusters = _check_n_clusters(n_clusters, n)
    n_init = check_int(n_init, "n_init", min_value=1)
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol", allow_zero=True)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
    w = as_sample_weight(sample_weight, n).astype(X.dtype)
    e = jnp.asarray(checked_exponent(X, "X", w=w, what="the inertia"), jnp.int32)

    if isinstance(init, str):
        init_kind: str | None = check_choice(init, "init", INITS)
        centres_init = None
    else:
        init_kind = None
        centres_init = as_float_array(init, "init", ndim=2,
                                      shape_hint="(n_clusters, n_features)").astype(X.dtype)
        if tuple(centres_init.shape) != (n_clusters, d):
            raise ValueError(f"init must have shape (n_clusters, n_features) = "
                             f"({n_clusters}, {d}), got {tuple(centres_init.shape)}")
        if n_init != 1 and not is_traced(X):
            warnings.warn("explicit initial centres given: performing a single run "
                          f"instead of n_init={n_init}", stacklevel=2)
        n_init = 1

    keys = jax.random.split(key, n_init)
    Xc, mean, scale, centres0 = _prepare(keys, X, w, e, n_clusters, init_kind)
    if centres0 is None:
        centres0 = ((centres_init - mean[None, :]) * pow2(-e, X.dtype))[None]

    def one_run(c):
        params0 = _LloydParams(centres=c, shift=c, scale=scale)
        return em.fit_em(_model(), params0, Xc, w, tol=tol, max_iter=max_iter,
                         chunk_size=chunk_size)

    runs = jax.vmap(one_run)(centres0)
    return _finish(runs, Xc, w, mean, e, chunk_size)


# --------------------------------------------------------------------------------------------
# Using fitted centres
# --------------------------------------------------------------------------------------------

def _check_params_and_X(params: KMeansParams, X: ArrayLike) -> tuple[jax.Array, jax.Array]:
    if not isinstance(params, KMeansParams):
        raise TypeError(f"params must be a KMeansParams (fit(...).params), got "
                        f"{type(params).__name__}")
    centres = as_float_array(params.centres, "params.centres", ndim=2,
                             shape_hint="(n_clusters, n_features)")
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    if X.shape[1] != centres.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features but centres have {centres.shape[1]}")
    return centres, X


@jax.jit
def _predict_impl(centres, X):
    ref = jnp.mean(centres, axis=0, keepdims=True)
    return _labels(X - ref, centres - ref).astype(jnp.int32)


@jax.jit
def _transform_impl(centres, X):
    ref = jnp.mean(centres, axis=0, keepdims=True)
    return jnp.sqrt(_sq_dists(X - ref, centres - ref))


def predict(params: KMeansParams, X: ArrayLike) -> jax.Array:
    """Index of the closest centre for each row.

    Args:
        params: :class:`KMeansParams` (``fit(...).params``).
        X: ``(n_samples, n_features)``.

    Returns:
        ``(n_samples,)`` int32 labels.
    """
    return _predict_impl(*_check_params_and_X(params, X))


def transform(params: KMeansParams, X: ArrayLike) -> jax.Array:
    """Euclidean distances of each row to each centre (scikit-learn's ``KMeans.transform``).

    Args:
        params: :class:`KMeansParams`.
        X: ``(n_samples, n_features)``.

    Returns:
        ``(n_samples, n_clusters)`` distances.
    """
    return _transform_impl(*_check_params_and_X(params, X))
