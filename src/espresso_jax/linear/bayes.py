"""Bayesian linear regression: the evidence, its maximisation and model comparison by evidence.

The model is that of :mod:`espresso_jax.linear.bayes_posterior` (PRML §3.3): ``y = X w + eps``,
``eps ~ N(0, 1/beta)``, ``w ~ N(0, I / alpha)``. This module holds the log marginal likelihood
``ln p(y | alpha, beta)`` (PRML eq. 3.86), its maximisation over ``alpha, beta`` (type-II
maximum likelihood, MacKay's fixed point, §3.5.2) and the evidence of polynomial models of
several orders (§3.4). It re-exports the posterior and predictive of
:mod:`~espresso_jax.linear.bayes_posterior` (:func:`posterior`, :func:`predict`, ...), so
``espresso_jax.linear.bayes`` is the one entry point to Bayesian linear regression.

Numerics:
  * evidence maximisation (§3.5.2) uses ONE eigendecomposition of ``X^T X``
    (``lambda_i``; the eigenvalues of ``beta X^T X`` are ``beta lambda_i``) and the rotated
    ``V^T X^T y``: each iteration is O(n_basis), independent of ``n_samples``;
  * the residual ``||y - X m_N||^2`` is never formed as ``||y||^2 - 2 m^T X^T y +
    m^T X^T X m`` (that cancels catastrophically in float32 at high signal-to-noise).
    It is split exactly as ``||y - X w_LS||^2 + sum_i lambda_i (z_LS,i k / (lambda_i + k))^2``
    with ``k = alpha / beta`` and ``z_LS = V^T w_LS``: the first term is ONE exact residual pass
    over the rows, done once; the second is a sum of non-negative terms.

References:
    Bishop, *Pattern Recognition and Machine Learning* (2006), §3.3-3.5.
    MacKay, "Bayesian interpolation", Neural Computation 4(3), 1992.
    Tipping, "Sparse Bayesian learning and the relevance vector machine", JMLR 2001
    (gamma hyperpriors on the precisions, as in scikit-learn's ``BayesianRidge``).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.linalg import cho_solve
from jax.typing import ArrayLike

from espresso_jax import em
from espresso_jax.linear.basis import polynomial
from espresso_jax.linear.bayes_posterior import (
    BayesParams,
    Posterior,
    Predictive,
    check_regression_data,
    gram,
    posterior,
    posterior_general,
    predict,
    sample_functions,
)
from espresso_jax.prob.gaussian import gaussian_log_density
from espresso_jax.scaling import checked_exponent
from espresso_jax.validation import (
    as_float_array,
    as_positive_array,
    check_int,
    check_positive,
    check_same_length,
    is_traced,
)

__all__ = [
    "Posterior", "Predictive", "BayesParams", "EvidenceResult", "OrderEvidence",
    "posterior", "posterior_general", "predict", "sample_functions", "log_evidence",
    "fit_evidence", "evidence_by_order",
]

_HI = lax.Precision.HIGHEST  # full-precision GEMMs also on accelerators (no TF32/bf16 passes)
_mm = partial(jnp.matmul, precision=_HI)


class EvidenceResult(NamedTuple):
    """Result of :func:`fit_evidence` (evidence / type-II maximum likelihood); the fields of
    :class:`espresso_jax.linear.logistic.EvidenceResult` (whose ``alpha`` is here
    ``params.alpha``)

    Attributes:
        params: :class:`BayesParams` at the final ``alpha, beta``.
        history: ``(max_iter,)`` log evidence ``ln p(y | alpha, beta)`` of the
            hyper-parameters entering each update, NaN after ``n_iter``.
        n_iter: ``()`` int32 number of hyper-parameter updates performed.
        converged: ``()`` bool, relative changes of ``alpha`` and ``beta`` fell below ``tol``.
        gamma: ``()`` effective number of parameters ``sum_i beta l_i / (alpha + beta l_i)``.
        log_evidence: ``()`` ``ln p(y | alpha, beta)`` at the final values (PRML eq. 3.86,
            without hyperpriors).
    """

    params: BayesParams
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    gamma: jax.Array
    log_evidence: jax.Array


class OrderEvidence(NamedTuple):
    """Result of :func:`evidence_by_order`.

    Attributes:
        orders: ``(n_orders,)`` int32 polynomial degrees ``M``.
        log_evidence: ``(n_orders,)`` ``ln p(y | alpha, beta, M)``.
        rms_ml: ``(n_orders,)`` training RMS error ``sqrt(||y - X w_ML||^2 / N)`` of the
            least-squares fit (PRML Fig. 1.5): non-increasing in ``M`` (nested models).
        rms_map: ``(n_orders,)`` training RMS error of the posterior-mean fit ``m_N`` at the
            given ``alpha, beta`` (usually, but not necessarily, decreasing in ``M``: the
            penalty ``alpha ||w||^2`` can trade fit for smaller weights).
    """

    orders: jax.Array
    log_evidence: jax.Array
    rms_ml: jax.Array
    rms_map: jax.Array


# --------------------------------------------------------------------------- evidence

class _Eigen(NamedTuple):
    """Sufficient statistics for the evidence in the eigenbasis of ``X^T X = V L V^T``."""

    lam: jax.Array      # (D,) eigenvalues, >= 0
    vecs: jax.Array     # (D, D) eigenvectors V
    r: jax.Array        # (D,) V^T X^T y, zero on the numerical null space
    z_ls: jax.Array     # (D,) V^T w_LS (minimum-norm least squares)
    sse_ls: jax.Array   # () exact ||y - X w_LS||^2
    n: int              # n_samples (static)


def _eigen(X: jax.Array, y: jax.Array) -> _Eigen:
    n, d = X.shape
    G, b = gram(X, y)
    lam, vecs = jnp.linalg.eigh(G)
    lam = jnp.maximum(lam, 0.0)
    eps = float(jnp.finfo(X.dtype).eps)
    keep = lam > eps * max(n, d) * jnp.max(lam)             # lstsq-style rank cut-off
    r = jnp.where(keep, _mm(vecs.T, b), 0.0)
    z_ls = jnp.where(keep, r / jnp.where(keep, lam, 1.0), 0.0)
    resid = y - _mm(X, _mm(vecs, z_ls))                   # the one exact residual pass
    return _Eigen(lam=lam, vecs=vecs, r=r, z_ls=z_ls, sse_ls=jnp.sum(resid * resid), n=n)


class _Terms(NamedTuple):
    log_ev: jax.Array
    z: jax.Array        # V^T m_N
    sse: jax.Array      # ||y - X m_N||^2
    mm: jax.Array       # m_N^T m_N
    gamma: jax.Array


def _log_evidence(alpha, beta, sse, mm, logdet_a, d, n) -> jax.Array:
    """PRML eq. 3.86 as the Gaussian log-density of ``y`` under ``N(0, β⁻¹I + α⁻¹XXᵀ)``:
    squared distance ``β·sse + α·mᵀm`` and ``ln|C| = ln|A| − d ln α − n ln β``."""
    log_det_c = logdet_a - d * jnp.log(alpha) - n * jnp.log(beta)
    return gaussian_log_density(beta * sse + alpha * mm, log_det_c, n)


def _terms(e: _Eigen, alpha: jax.Array, beta: jax.Array) -> _Terms:
    """Everything eq. 3.86 and the re-estimation equations need, in O(D)."""
    k = alpha / beta
    denom = e.lam + k
    z = e.r / denom                                          # m_N = beta S_N X^T y, rotated
    shrink = e.z_ls * (k / denom)                            # z_LS - z on the kept subspace
    sse = e.sse_ls + jnp.sum(e.lam * shrink * shrink)
    mm = jnp.sum(z * z)
    gamma = jnp.sum(e.lam / denom)                           # sum beta l / (alpha + beta l)
    logdet_a = jnp.sum(jnp.log(alpha + beta * e.lam))        # ln |A|, A = S_N^{-1}
    d, n = e.lam.shape[0], e.n
    log_ev = _log_evidence(alpha, beta, sse, mm, logdet_a, d, n)
    return _Terms(log_ev=log_ev, z=z, sse=sse, mm=mm, gamma=gamma)


@jax.jit
def _log_evidence_impl(X, y, alpha, beta):
    e = _eigen(X, y)
    alpha, beta = jnp.broadcast_arrays(alpha, beta)
    flat = jax.vmap(lambda a, b: _terms(e, a, b).log_ev)(alpha.ravel(), beta.ravel())
    return flat.reshape(alpha.shape)


def log_evidence(X: ArrayLike, y: ArrayLike, alpha: ArrayLike, beta: ArrayLike
                 ) -> jax.Array:
    """Log marginal likelihood ``ln p(y | alpha, beta)`` (PRML eq. 3.86), vectorised.

    ``alpha`` and ``beta`` broadcast against each other (e.g. ``alpha[:, None]`` and
    ``beta[None, :]`` give a grid); ``X^T X`` is decomposed once for all of them.

    Args:
        X: ``(n_samples, n_basis)`` design matrix, rows ``phi(x_n)``.
        y: ``(n_samples,)`` targets.
        alpha: prior precision(s) ``> 0``, any shape.
        beta: noise precision(s) ``> 0``, any shape broadcastable with ``alpha``.

    Returns:
        Log evidence with the broadcast shape of ``alpha`` and ``beta``.

    References:
        Bishop, PRML (2006), §3.5.1, eq. 3.86.
    """
    X, y = check_regression_data(X, y)
    alpha = as_positive_array(alpha, "alpha")
    beta = as_positive_array(beta, "beta")
    try:
        np.broadcast_shapes(alpha.shape, beta.shape)
    except ValueError:
        raise ValueError(f"alpha {tuple(alpha.shape)} and beta {tuple(beta.shape)} do not "
                         "broadcast") from None
    if alpha.ndim != beta.ndim:   # explicit, so strict rank promotion is never relied on
        nd = max(alpha.ndim, beta.ndim)
        alpha = alpha.reshape((1,) * (nd - alpha.ndim) + alpha.shape)
        beta = beta.reshape((1,) * (nd - beta.ndim) + beta.shape)
    return _log_evidence_impl(X, y, alpha, beta)


@partial(jax.jit, static_argnames=("max_iter",))
def _fit_evidence_impl(X, y, alpha0, beta0, tol, a_alpha, b_alpha, a_beta, b_beta, *,
                       max_iter: int):
    e = _eigen(X, y)
    tiny = float(jnp.finfo(X.dtype).tiny)

    def step(state):
        # MacKay's fixed point (PRML 3.92, 3.95) with Gamma(a, b) hyperpriors entering as in
        # scikit-learn's BayesianRidge: alpha = (gamma + 2 a) / (m^T m + 2 b), etc.
        alpha, beta = state
        tm = _terms(e, alpha, beta)
        alpha_new = (tm.gamma + 2.0 * a_alpha) / jnp.maximum(tm.mm + 2.0 * b_alpha, tiny)
        beta_new = (e.n - tm.gamma + 2.0 * a_beta) / jnp.maximum(tm.sse + 2.0 * b_beta, tiny)
        done = ((jnp.abs(alpha_new - alpha) <= tol * alpha_new)
                & (jnp.abs(beta_new - beta) <= tol * beta_new))
        return (alpha_new, beta_new), tm.log_ev, done

    run = em.iterate(step, (alpha0, beta0), max_iter=max_iter, dtype=X.dtype)
    alpha, beta = run.params
    tm = _terms(e, alpha, beta)
    mean = _mm(e.vecs, tm.z)
    cov = _mm(e.vecs / (alpha + beta * e.lam)[None, :], e.vecs.T)
    params = BayesParams(mean=mean, cov=0.5 * (cov + cov.T), alpha=alpha, beta=beta)
    return EvidenceResult(params=params, history=run.history, n_iter=run.n_iter,
                          converged=run.converged, gamma=tm.gamma, log_evidence=tm.log_ev)


def fit_evidence(X: ArrayLike, y: ArrayLike, *, alpha0: float = 1.0,
                 beta0: float | None = None, max_iter: int = 300, tol: float = 1e-6,
                 alpha_shape: float = 1e-6, alpha_rate: float = 1e-6,
                 beta_shape: float = 1e-6, beta_rate: float = 1e-6) -> EvidenceResult:
    """Maximise the evidence over ``alpha`` and ``beta`` by MacKay's re-estimation.

    Iterates ``gamma = sum_i lambda_i / (alpha + lambda_i)`` (``lambda_i`` the eigenvalues of
    ``beta X^T X``), ``alpha = gamma / m_N^T m_N``, ``1/beta = ||y - X m_N||^2 /
    (N - gamma)`` (PRML eqs. 3.87-3.95) in one jitted loop (:func:`espresso_jax.em.iterate`).
    ``X^T X`` and
    ``X^T y`` are formed once and ``X^T X`` is eigendecomposed once; an iteration costs
    O(n_basis). Optional ``Gamma(shape, rate)`` hyperpriors on ``alpha`` and ``beta`` enter the
    updates as in scikit-learn's ``BayesianRidge`` (``alpha_shape, alpha_rate`` are its
    ``lambda_1, lambda_2``; ``beta_shape, beta_rate`` its ``alpha_1, alpha_2``); set all four
    to 0 for the book's plain evidence maximisation.

    Args:
        X: ``(n_samples, n_basis)`` design matrix, rows ``phi(x_n)``.
        y: ``(n_samples,)`` targets.
        alpha0: initial prior precision ``> 0`` (1, as scikit-learn).
        beta0: initial noise precision ``> 0``; default ``1 / var(y)`` (as scikit-learn).
        max_iter: maximum number of updates (static: the length of ``history``).
        tol: stop when the relative changes of both ``alpha`` and ``beta`` are ``<= tol``.
        alpha_shape, alpha_rate, beta_shape, beta_rate: hyperprior parameters ``>= 0``.

    Returns:
        :class:`EvidenceResult`; ``params``, ``gamma`` and ``log_evidence`` are evaluated at
        the returned ``alpha, beta``.

    References:
        Bishop, PRML (2006), §3.5.2; MacKay (1992); Tipping (2001).
    """
    X, y = check_regression_data(X, y)
    # the default beta0 = 1 / var(y) and the fitted 1 / beta scale with the square of y
    checked_exponent(y[:, None], "y", what="its variance (1 / beta)")
    checked_exponent(X, "X", kind="magnitude", what="XᵀX")
    alpha0_arr = as_positive_array(alpha0, "alpha0", ndim=0)
    if beta0 is None:
        var = float(np.var(np.asarray(y, dtype=np.float64))) if not is_traced(y) else None
        if var is not None and var <= 0:
            raise ValueError("y is constant: pass beta0 explicitly (default is 1 / var(y))")
        beta0_arr = as_positive_array(1.0 / var if var is not None else 1.0 / jnp.var(y),
                                      "beta0", ndim=0)
    else:
        beta0_arr = as_positive_array(beta0, "beta0", ndim=0)
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol", allow_zero=True)
    hyper = [check_positive(v, name, allow_zero=True) for v, name in (
        (alpha_shape, "alpha_shape"), (alpha_rate, "alpha_rate"),
        (beta_shape, "beta_shape"), (beta_rate, "beta_rate"))]
    dtype = X.dtype
    scalars = [jnp.asarray(v, dtype) for v in (tol, *hyper)]
    return _fit_evidence_impl(X, y, alpha0_arr.astype(dtype), beta0_arr.astype(dtype),
                              *scalars, max_iter=max_iter)


# --------------------------------------------------------------------------- model order

def _masked_evidence(X, y, alpha, beta, mask):
    """Log evidence and training RMS of the model using only the columns where ``mask``.

    Masked-out columns are zero, so ``A = alpha I + beta X^T X`` is block diagonal, their
    posterior mean is exactly 0 and their ``alpha`` terms are left out of eq. 3.86: the result
    equals the evidence of the smaller model (unused weights integrate out)."""
    n, d = X.shape
    P = X * mask.astype(X.dtype)[None, :]
    G, b = gram(P, y)
    L = jnp.linalg.cholesky(alpha * jnp.eye(d, dtype=X.dtype) + beta * G)
    m = cho_solve((L, True), beta * b)
    resid = y - _mm(P, m)
    sse = jnp.sum(resid * resid)
    logdet_a = 2.0 * jnp.sum(jnp.where(mask, jnp.log(jnp.diagonal(L)), 0.0))
    d_used = jnp.sum(mask).astype(X.dtype)
    log_ev = _log_evidence(alpha, beta, sse, jnp.sum(m * m), logdet_a, d_used, n)
    return log_ev, jnp.sqrt(sse / n)


def _nested_ls_rms(X, y, orders):
    """Training RMS of the least-squares fits on the first ``M + 1`` columns, for each order.

    With the thin QR ``X = Q R`` and ``c = Q^T y``, the residual of the fit on the first
    ``M + 1`` columns is ``sum_{j > M} c_j^2 + ||y - Q c||^2``: a tail sum of non-negative
    terms, so it is non-increasing in ``M`` by construction (also in floating point) and free
    of the cancellation in ``||y||^2 - sum_{j <= M} c_j^2``."""
    n, d = X.shape
    q, _ = jnp.linalg.qr(X)                                 # (n, min(n, d))
    c = _mm(q.T, y)
    resid = y - _mm(q, c)
    c = jnp.zeros(d, dtype=X.dtype).at[: c.shape[0]].set(c)
    suffix = jnp.cumsum((c * c)[::-1])[::-1]                  # sum_{j >= M} c_j^2
    tail = jnp.concatenate([suffix[1:], jnp.zeros(1, dtype=c.dtype)])   # sum_{j > M}
    return jnp.sqrt((tail[orders] + jnp.sum(resid * resid)) / n)


@partial(jax.jit, static_argnames=("max_degree",))
def _by_order_impl(x, y, orders, alpha, beta, max_degree):
    X = polynomial(x, max_degree)
    masks = jnp.arange(max_degree + 1, dtype=orders.dtype)[None, :] <= orders[:, None]
    log_ev, rms_map = jax.vmap(lambda mk: _masked_evidence(X, y, alpha, beta, mk))(masks)
    return log_ev, _nested_ls_rms(X, y, orders), rms_map


def evidence_by_order(x: ArrayLike, y: ArrayLike, orders: ArrayLike, *, alpha: float,
                      beta: float) -> OrderEvidence:
    """Log evidence and training error of polynomial models of several orders (PRML Fig. 3.14).

    All orders are evaluated in ONE jitted ``vmap``: the design matrix is built for the
    highest order and each model masks the columns above its degree (which leaves its
    evidence unchanged, see :func:`_masked_evidence`), so the shapes agree across orders.

    Args:
        x: ``(n_samples,)`` 1-D inputs.
        y: ``(n_samples,)`` targets.
        orders: ``(n_orders,)`` non-negative polynomial degrees ``M``.
        alpha: prior precision ``> 0`` (PRML uses 5e-3).
        beta: noise precision ``> 0`` (PRML uses 11.1 = 1 / 0.3^2).

    Returns:
        :class:`OrderEvidence` ``(orders, log_evidence, rms_ml, rms_map)``.

    References:
        Bishop, PRML (2006), §3.4-3.5.1, Fig. 3.14.
    """
    x = as_float_array(x, "x", ndim=1, shape_hint="(n_samples,)")
    y = as_float_array(y, "y", ndim=1, shape_hint="(n_samples,)")
    check_same_length(x=x, y=y)
    orders_np = np.asarray(orders)
    if orders_np.ndim != 1 or orders_np.size == 0:
        raise ValueError(f"orders must be a non-empty 1-D sequence of degrees, got {orders!r}")
    if orders_np.dtype.kind not in "iu":
        raise TypeError(f"orders must hold integers, got dtype {orders_np.dtype}")
    orders_arr = [check_int(int(o), "orders", min_value=0) for o in orders_np]
    orders_j = jnp.asarray(orders_arr, dtype=jnp.int32)
    log_ev, rms_ml, rms_map = _by_order_impl(x, y, orders_j,
                                             as_positive_array(alpha, "alpha", ndim=0),
                                             as_positive_array(beta, "beta", ndim=0),
                                             max(orders_arr))
    return OrderEvidence(orders=orders_j, log_evidence=log_ev, rms_ml=rms_ml,
                         rms_map=rms_map)
