"""Fit a hidden Markov model by Baum–Welch (EM or MAP-EM), and score, decode and sample it.

Sequences are given either as hmmlearn does, concatenated rows with their ``lengths``
(``X (n_steps, D)``; categorical: ``(n_steps,)`` symbols), or as a padded batch
(``X (N, T, D)``; categorical ``(N, T)``) with ``lengths (N,)`` (default: every sequence has
``T`` steps). Either way the host packs them into a padded batch with zero-weight steps, so
a padded batch and the concatenated sequences with their lengths give the same fit. The fit
itself is one jitted call of :func:`espresso_jax.em.fit_em` with the model of
:func:`espresso_jax.hmm.model.em_model`; ``n_init`` restarts are ``vmap``-ed over keys and
the best final objective wins (:func:`espresso_jax.em.select_best`).

Initialisation from ``key``: uniform start and transition probabilities; Gaussian emissions
from k-means++ seeds of all steps (``K·M`` components, as
:func:`espresso_jax.mixture.gmm_em.initial_em_state`), categorical emissions drawn from a flat
Dirichlet. ``init_params`` (an :class:`~espresso_jax.hmm.model.HMMParams`) starts from given
values instead (hmmlearn's ``init_params=""``).

The initialisation from ``key`` sees the padded rows (with weight 0), so the same key can
start differently for another padded layout of the same sequences; ``chunk_size`` never changes
it. Unlike the mixtures, the data are not rescaled by a power of two: ``reg_covar`` is in the units
of ``X`` and float32 fits want data of moderate scale.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from espresso_jax import em
from espresso_jax.hmm import emissions
from espresso_jax.hmm.emissions import CategoricalEmission, GaussianEmission
from espresso_jax.hmm.model import (
    HMMParams,
    HMMState,
    batch_posteriors,
    batch_viterbi,
    em_model,
    sample_sequence,
)
from espresso_jax.mixture.gaussian import precision_cholesky
from espresso_jax.mixture.gmm_em import initial_em_state
from espresso_jax.validation import (
    as_float_array,
    as_int_array,
    check_choice,
    check_int,
    check_key,
    check_positive,
    float_dtype,
)

__all__ = ["EMISSIONS", "METHODS", "HMMResult", "Packed", "check_params", "fit", "pack", "predict",
           "predict_proba", "sample", "score"]

EMISSIONS = ("gaussian", "categorical")
METHODS = ("scan", "associative")


class HMMResult(NamedTuple):
    """Result of :func:`fit` (the best of the ``n_init`` restarts).

    Attributes:
        params: fitted :class:`~espresso_jax.hmm.model.HMMParams`.
        history: ``(max_iter,)`` ``(log p(X) + log prior) / n_steps`` before each M-step,
            NaN after ``n_iter``.
        n_iter: ``()`` number of EM iterations run.
        converged: ``()`` whether the objective changed by less than ``tol``.
    """

    params: HMMParams
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array


class Packed(NamedTuple):
    """A padded batch: ``X (N, T, F)``, step weights ``w (N, T)`` (1 or 0), ``lengths (N,)``
    (host ints) and whether the input was concatenated rows."""

    X: jax.Array
    w: jax.Array
    lengths: np.ndarray
    concatenated: bool


def _lengths(lengths: Any, n: int | None, total: int | None, t_max: int | None) -> np.ndarray:
    arr = np.asarray(as_int_array(lengths, "lengths", ndim=1, min_value=0))
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"lengths must have one entry per sequence ({n}), got {arr.shape[0]}")
    if total is not None and int(arr.sum()) != total:
        raise ValueError(f"lengths must sum to the number of rows of X ({total}), "
                         f"got {int(arr.sum())}")
    if t_max is not None and int(arr.max()) > t_max:
        raise ValueError(f"lengths must be at most the padded length {t_max}, got {arr.max()}")
    if int(arr.max()) < 1:
        raise ValueError("lengths must include at least one non-empty sequence")
    return arr


def pack(X: ArrayLike, lengths: ArrayLike | None = None, *, emission: str = "gaussian",
         n_symbols: int | None = None) -> Packed:
    """Validate sequences and pack them into a padded batch (host side, before any jit).

    Args:
        X: Gaussian: ``(n_steps, D)`` concatenated or ``(N, T, D)`` padded; categorical:
            ``(n_steps,)`` concatenated or ``(N, T)`` padded integer symbols.
        lengths: ``(N,)`` sequence lengths (concatenated: they sum to ``n_steps``, default one
            sequence; padded: at most ``T``, default ``T``).
        emission: "gaussian" or "categorical".
        n_symbols: categorical alphabet size ``M`` (default: largest symbol + 1).

    Returns:
        :class:`Packed` (categorical symbols become one-hot rows, ``F = M``).
    """
    emission = check_choice(emission, "emission", EMISSIONS)
    if emission == "categorical":
        sym = np.asarray(as_int_array(X, "X", ndim=(1, 2), min_value=0,
                                      shape_hint="(n_steps,) or (n_sequences, T)"))
        m = int(sym.max()) + 1 if n_symbols is None else check_int(n_symbols, "n_symbols",
                                                                   min_value=1)
        if sym.max() >= m:
            raise ValueError(f"X holds symbol {sym.max()} but n_symbols is {m}")
        concatenated = sym.ndim == 1
        data = np.eye(m, dtype=float_dtype())[sym]
    else:
        data = np.asarray(as_float_array(X, "X", ndim=(2, 3),
                                         shape_hint="(n_steps, D) or (n_sequences, T, D)"))
        concatenated = data.ndim == 2
    if concatenated:
        total = data.shape[0]
        lens = (np.array([total]) if lengths is None
                else _lengths(lengths, None, total, None))
        t = int(lens.max())
        out = np.zeros((lens.shape[0], t) + data.shape[1:], data.dtype)
        ends = np.cumsum(lens)
        for i, (a, b) in enumerate(zip(ends - lens, ends, strict=True)):
            out[i, : b - a] = data[a:b]
        data = out
    else:
        n, t = data.shape[:2]
        lens = (np.full(n, t) if lengths is None else _lengths(lengths, n, None, t))
        data = np.where((np.arange(t)[None, :] < lens[:, None])[..., None], data, 0.0)
    w = (np.arange(data.shape[1])[None, :] < lens[:, None]).astype(data.dtype)
    return Packed(jnp.asarray(data), jnp.asarray(w), lens, concatenated)


def check_params(params: Any, name: str = "params") -> HMMParams:
    """Validate an :class:`HMMParams` (shapes consistent, probabilities in [0, 1] summing
    to 1 per row); errors name ``name`` and the field."""
    if not all(hasattr(params, f) for f in HMMParams._fields):
        raise TypeError(f"{name} must be an HMMParams, got {type(params).__name__}")
    start = as_float_array(params.start, f"{name}.start", ndim=1)
    k = start.shape[0]
    trans = as_float_array(params.trans, f"{name}.trans", ndim=2)
    if trans.shape != (k, k):
        raise ValueError(f"{name}.trans must have shape ({k}, {k}), got {tuple(trans.shape)}")
    em_ = params.emission
    if isinstance(em_, CategoricalEmission):
        probs = as_float_array(em_.probs, f"{name}.emission.probs", ndim=2)
        rows = {"start": start[None], "trans": trans, "emission.probs": probs}
        emission: GaussianEmission | CategoricalEmission = CategoricalEmission(probs)
        if probs.shape[0] != k:
            raise ValueError(f"{name}.emission.probs must have {k} rows, got {probs.shape[0]}")
    elif isinstance(em_, GaussianEmission):
        wts = as_float_array(em_.weights, f"{name}.emission.weights", ndim=2)
        means = as_float_array(em_.means, f"{name}.emission.means", ndim=3)
        cov = as_float_array(em_.covariances, f"{name}.emission.covariances", ndim=(3, 4))
        kk, m, d = means.shape
        want = (k, m, d, d) if cov.ndim == 4 else (k, m, d)
        if kk != k or wts.shape != (k, m) or cov.shape != want:
            raise ValueError(f"{name}.emission: weights {tuple(wts.shape)}, means "
                             f"{tuple(means.shape)} and covariances {tuple(cov.shape)} are "
                             f"inconsistent with {k} states (want (K, M), (K, M, D), {want})")
        ctype = "full" if cov.ndim == 4 else "diag"
        cov_used, prec = precision_cholesky(cov.reshape((k * m,) + cov.shape[2:]), ctype)
        emission = GaussianEmission(wts, means, cov_used.reshape(cov.shape),
                                    prec.reshape(cov.shape))
        rows = {"start": start[None], "trans": trans, "emission.weights": wts}
    else:
        raise TypeError(f"{name}.emission must be a GaussianEmission or CategoricalEmission, "
                        f"got {type(em_).__name__}")
    for field, a in rows.items():
        a_np = np.asarray(a, np.float64)
        if (a_np < 0).any() or np.abs(a_np.sum(-1) - 1.0).max() > 1e-5:
            raise ValueError(f"{name}.{field} must hold probabilities summing to 1 per row")
    return HMMParams(start, trans, emission)


@functools.partial(jax.jit, static_argnames=("k", "m", "ctype", "kind", "n_init", "max_iter",
                                             "chunk_size", "method"))
def _fit_impl(key, X, w, tol, reg_covar, start_prior, trans_prior, init: HMMParams | None, *,
              k: int, m: int, ctype: str, kind: str, n_init: int, max_iter: int, chunk_size,
              method: str) -> HMMResult:
    dtype = X.dtype
    n, t, f = X.shape
    rows, wrows = X.reshape(n * t, f), w.reshape(-1)

    def init_one(key):
        if init is not None:
            params = init
        elif kind == "categorical":
            probs = jax.random.dirichlet(key, jnp.ones((f,), dtype), (k,)).astype(dtype)
            params = HMMParams(jnp.full((k,), 1.0 / k, dtype), jnp.full((k, k), 1.0 / k, dtype),
                               CategoricalEmission(probs))
        else:
            st = initial_em_state(key, rows, wrows, reg_covar, n_components=k * m, ctype=ctype,
                                  init="kmeans++")
            cshape = (k, m) + st.covariances.shape[1:]
            params = HMMParams(
                jnp.full((k,), 1.0 / k, dtype), jnp.full((k, k), 1.0 / k, dtype),
                GaussianEmission(jnp.full((k, m), 1.0 / m, dtype),
                                 (st.shift + st.delta).reshape(k, m, f),
                                 st.covariances.reshape(cshape), st.prec_chol.reshape(cshape)))
        emission = params.emission
        shift = (emission.means.reshape(k * m, f) if isinstance(emission, GaussianEmission)
                 else jnp.zeros((0, 0), dtype))
        return HMMState(params, shift, reg_covar, start_prior, trans_prior)

    model = em_model(method)
    extra = 0 if chunk_size is None else -n % chunk_size
    # whole blocks of sequences: zero-weight sequences appended after the initialisation saw
    # the data, so chunk_size never changes the starting point
    Xp = jnp.concatenate([X, jnp.zeros((extra, t, f), dtype)])
    wp = jnp.concatenate([w, jnp.zeros((extra, t), dtype)])

    def run(state):
        return em.fit_em(model, state, Xp, wp, tol=tol, max_iter=max_iter,
                         chunk_size=chunk_size)

    if n_init == 1:
        best = run(init_one(key))
    else:
        best = em.select_best(jax.vmap(lambda kk: run(init_one(kk)))(jax.random.split(key,
                                                                                     n_init)))
    return HMMResult(params=best.params.params, history=best.history, n_iter=best.n_iter,
                     converged=best.converged)


def _prior(value: Any, name: str, shape: tuple[int, ...], dtype) -> jax.Array:
    a = as_float_array(value, name, ndim=(0, len(shape)))
    if a.ndim and a.shape != shape:
        raise ValueError(f"{name} must be a scalar or have shape {shape}, got {tuple(a.shape)}")
    if (np.asarray(a) <= 0).any():
        raise ValueError(f"{name} must be positive (Dirichlet concentrations)")
    return jnp.broadcast_to(a, shape).astype(dtype)


def fit(key: jax.Array, X: ArrayLike, n_components: int, *, lengths: ArrayLike | None = None,
        emission: str = "gaussian", covariance_type: str = "diag", n_mix: int = 1,
        n_symbols: int | None = None, n_init: int = 1, max_iter: int = 100, tol: float = 1e-4,
        reg_covar: float = 1e-6, start_prior: ArrayLike = 1.0, trans_prior: ArrayLike = 1.0,
        sticky: float = 0.0, init_params: HMMParams | None = None,
        chunk_size: int | None = None, method: str = "scan") -> HMMResult:
    """Fit an HMM by Baum–Welch (maximum likelihood, or MAP with Dirichlet priors).

    Args:
        key: PRNG key (initialisation; split over restarts).
        X: sequences, concatenated or padded (see :func:`pack`).
        n_components: number of hidden states ``K``.
        lengths: ``(N,)`` sequence lengths (see :func:`pack`).
        emission: "gaussian" (``n_mix`` Gaussians per state) or "categorical".
        covariance_type: "diag" or "full" (Gaussian emissions).
        n_mix: Gaussians per state ``M`` (``> 1``: GMM emissions).
        n_symbols: categorical alphabet size (default: largest symbol + 1).
        n_init: vmapped restarts (ignored values: must be 1 with ``init_params``).
        max_iter, tol: EM budget and convergence threshold on the per-step objective.
        reg_covar: added to the covariance diagonals (units of ``X`` squared).
        start_prior: Dirichlet concentration of the start probabilities, scalar or ``(K,)``.
        trans_prior: Dirichlet concentration of the transition rows, scalar or ``(K, K)``.
        sticky: ``κ ≥ 0`` added to the self-transition concentrations.
        init_params: start from these parameters (:class:`HMMParams`) instead of ``key``.
        chunk_size: sequences per E-step block (``None``: all at once).
        method: forward–backward by "scan" or "associative" scan.

    Returns:
        :class:`HMMResult`.
    """
    check_key(key)
    k = check_int(n_components, "n_components", min_value=1)
    emission = check_choice(emission, "emission", EMISSIONS)
    ctype = check_choice(covariance_type, "covariance_type", ("diag", "full"))
    m = check_int(n_mix, "n_mix", min_value=1)
    n_init = check_int(n_init, "n_init", min_value=1)
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol", allow_zero=True)
    reg = check_positive(reg_covar, "reg_covar", allow_zero=True)
    kappa = check_positive(sticky, "sticky", allow_zero=True)
    method = check_choice(method, "method", METHODS)
    packed = pack(X, lengths, emission=emission, n_symbols=n_symbols)
    data, w = packed.X, packed.w
    dtype = data.dtype
    if emission == "categorical":
        m, ctype = 1, "diag"
    elif k * m > int(packed.lengths.sum()):
        raise ValueError(f"n_components * n_mix ({k * m}) exceeds the number of steps "
                         f"({int(packed.lengths.sum())})")
    init = None
    if init_params is not None:
        init = check_params(init_params, "init_params")
        if init.start.shape[0] != k:
            raise ValueError(f"init_params has {init.start.shape[0]} states, n_components={k}")
        if n_init != 1:
            raise ValueError("n_init must be 1 when init_params is given")
        if (isinstance(init.emission, CategoricalEmission)) != (emission == "categorical"):
            raise ValueError(f"init_params.emission does not match emission={emission!r}")
        if isinstance(init.emission, GaussianEmission):
            m, ctype = init.emission.weights.shape[1], emissions.covariance_type(init.emission)
            if init.emission.means.shape[2] != data.shape[2]:
                raise ValueError("init_params.emission.means has "
                                 f"{init.emission.means.shape[2]} features, X has "
                                 f"{data.shape[2]}")
        elif init.emission.probs.shape[1] != data.shape[2]:
            raise ValueError(f"init_params.emission.probs has {init.emission.probs.shape[1]} "
                             f"symbols, X has {data.shape[2]}")
        init = jax.tree.map(lambda a: a.astype(dtype), init)
    s_prior = _prior(start_prior, "start_prior", (k,), dtype)
    t_prior = _prior(trans_prior, "trans_prior", (k, k), dtype) + kappa * jnp.eye(k, dtype=dtype)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
        if chunk_size >= data.shape[0]:
            chunk_size = None
    return _fit_impl(key, data, w, jnp.asarray(tol, dtype), jnp.asarray(reg, dtype), s_prior,
                     t_prior, init, k=k, m=m, ctype=ctype, kind=emission, n_init=n_init,
                     max_iter=max_iter, chunk_size=chunk_size, method=method)


@functools.partial(jax.jit, static_argnames=("method",))
def _posteriors(params, X, w, method):
    return batch_posteriors(params, X, w > 0, method=method)


def _unpack(a: jax.Array, packed: Packed) -> jax.Array:
    """Back to the input's layout: concatenated rows, or the padded batch."""
    if not packed.concatenated:
        return a
    keep = np.arange(a.shape[1])[None, :] < packed.lengths[:, None]
    return a[jnp.asarray(np.nonzero(keep)[0]), jnp.asarray(np.nonzero(keep)[1])]


def _checked(params: Any, X: ArrayLike, lengths: ArrayLike | None) -> tuple[HMMParams, Packed]:
    params = check_params(params)
    if isinstance(params.emission, CategoricalEmission):
        packed = pack(X, lengths, emission="categorical", n_symbols=params.emission.probs.shape[1])
    elif isinstance(params.emission, GaussianEmission):
        packed = pack(X, lengths)
        if packed.X.shape[2] != params.emission.means.shape[2]:
            raise ValueError(f"X has {packed.X.shape[2]} features but the model has "
                             f"{params.emission.means.shape[2]}")
    return params, packed


def score(params: HMMParams, X: ArrayLike, lengths: ArrayLike | None = None) -> jax.Array:
    """Total log-likelihood ``Σ_n log p(x_n)`` of the sequences (hmmlearn's ``score``)."""
    params, packed = _checked(params, X, lengths)
    return jnp.sum(_posteriors(params, packed.X, packed.w, "scan").loglik)


def predict_proba(params: HMMParams, X: ArrayLike, lengths: ArrayLike | None = None,
                  *, method: str = "scan") -> jax.Array:
    """Posterior state marginals: ``(n_steps, K)`` for concatenated input, ``(N, T, K)``
    (zero on padding) for a padded batch."""
    method = check_choice(method, "method", METHODS)
    params, packed = _checked(params, X, lengths)
    return _unpack(_posteriors(params, packed.X, packed.w, method).gamma, packed)


@jax.jit
def _viterbi(params, X, w):
    return batch_viterbi(params, X, w > 0)


def predict(params: HMMParams, X: ArrayLike, lengths: ArrayLike | None = None) -> jax.Array:
    """Viterbi state paths: ``(n_steps,)`` int32 for concatenated input, ``(N, T)`` for a
    padded batch (a padded step repeats the last real state)."""
    params, packed = _checked(params, X, lengths)
    return _unpack(_viterbi(params, packed.X, packed.w)[0], packed)


def sample(key: jax.Array, params: HMMParams, n_steps: int) -> tuple[jax.Array, jax.Array]:
    """Draw one sequence: observations (``(n_steps, D)`` or ``(n_steps,)`` int32 symbols) and
    ``(n_steps,)`` int32 states."""
    check_key(key)
    params = check_params(params)
    n_steps = check_int(n_steps, "n_steps", min_value=1)
    return _sample_jit(key, params, n_steps)


_sample_jit = jax.jit(sample_sequence, static_argnames=("n_steps",))
