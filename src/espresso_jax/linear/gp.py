"""Gaussian-process regression with an RBF kernel and Gaussian noise: posterior and evidence.

Model (Bishop PRML §6.4.2; Rasmussen & Williams, ch. 2):

    f ~ GP(m, k),   k(x, x') = σ_f² exp(−½ Σ_d (x_d − x'_d)² / ℓ_d²),   y_i = f(x_i) + ε_i,
    ε_i ~ N(0, σ_n²).

The kernel and the hyper-parameters θ (:class:`GPParams`, :func:`make_params`,
:func:`rbf_kernel`) live in :mod:`espresso_jax.linear.gp_kernel` and are re-exported here. This
module conditions the GP on data (:func:`fit`), predicts and draws from the posterior
(:func:`predict`, :func:`sample_posterior`), and evaluates and maximises the log marginal
likelihood over θ (:func:`log_marginal_likelihood`, :func:`fit_hyperparameters`).

Mean function: zero by default. With ``center=True`` a constant mean is handled by centring:
the empirical mean ȳ of the training targets is subtracted before the zero-mean GP is applied and
added back to predictions. ȳ is a plug-in estimate (not the generalised-least-squares estimate
``1ᵀK⁻¹y / 1ᵀK⁻¹1`` of R&W §2.7), and the marginal likelihood is that of the centred targets.

Numerics: ``K + σ_n² I`` is factorised by :func:`espresso_jax.prob.linalg.cholesky_with_jitter`,
the library's jitter policy: when the plain factorisation fails (e.g. duplicated inputs with a
tiny σ_n² in float32), a jitter ``j`` is added to the diagonal, starting at
``sqrt(eps) · mean(diag)`` and growing ×10 until it succeeds or exceeds ``1e-2 · mean(diag)``.
The jitter used is stored in :attr:`GPPosterior.jitter` (NaN when even
the largest failed, which :func:`fit` reports as an error). The jitter is a constant for
differentiation. The log marginal likelihood has a custom derivative, R&W eq. 5.9
``½ tr((ααᵀ − A⁻¹) dA) − αᵀ dr`` (one extra O(n³) solve per gradient, no differentiation through
the factorisation); :func:`fit`/:func:`predict` differentiate through the Cholesky factor with the
rule of Murray (2016).

References:
    C. M. Bishop, *Pattern Recognition and Machine Learning*, 2006, §6.4.2–6.4.4.
    C. E. Rasmussen and C. K. I. Williams, *Gaussian Processes for Machine Learning*, 2006,
    Algorithm 2.1, eqs. 2.23–2.26 and 2.30, ch. 5 (marginal likelihood, eq. 5.9).
    I. Murray, "Differentiation of the Cholesky decomposition", arXiv:1602.07527, 2016.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.scipy.linalg import solve_triangular
from jax.typing import ArrayLike

from espresso_jax import em
from espresso_jax.interop import standard_promotion
from espresso_jax.linear.gp_kernel import (
    GPParams,
    check_params,
    kernel_matrix,
    make_params,
    noisy_kernel_matrix,
    rbf_kernel,
)
from espresso_jax.netcheck import check_optimizer
from espresso_jax.prob.gaussian import gaussian_log_density
from espresso_jax.prob.linalg import cholesky_with_jitter
from espresso_jax.scaling import checked_exponent
from espresso_jax.validation import (
    as_float_array,
    check_int,
    check_key,
    check_positive,
    check_same_length,
    is_traced,
)

__all__ = [
    "GPParams",
    "GPPosterior",
    "GPResult",
    "GPHyperResult",
    "make_params",
    "rbf_kernel",
    "fit",
    "predict",
    "log_marginal_likelihood",
    "sample_posterior",
    "fit_hyperparameters",
]

_MAX_REL_JITTER = 1e-2  # largest jitter tried, relative to the mean of the diagonal


class GPPosterior(NamedTuple):
    """A GP conditioned on training data (R&W Algorithm 2.1).

    Attributes:
        X: ``(n_samples, n_features)`` training inputs.
        chol: ``(n_samples, n_samples)`` lower Cholesky factor L of ``K + (σ_n² + jitter) I``.
        alpha: ``(n_samples,)`` α = (K + σ_n² I)⁻¹ (y − ȳ).
        params: the :class:`GPParams` used.
        y_mean: ``()`` ȳ added back to predictions (0 when not centring).
        jitter: ``()`` diagonal jitter added on top of σ_n² (0 when none was needed).
    """

    X: jax.Array
    chol: jax.Array
    alpha: jax.Array
    params: GPParams
    y_mean: jax.Array
    jitter: jax.Array


class GPResult(NamedTuple):
    """Result of :func:`fit` (conditioning is closed form: ``history``, ``n_iter`` and
    ``converged`` hold :func:`espresso_jax.em.closed_form`'s values).

    Attributes:
        params: the :class:`GPPosterior` that :func:`predict` and :func:`sample_posterior`
            take.
        history: ``(0,)``; n_iter: ``()`` 0; converged: ``()`` True.
    """

    params: GPPosterior
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array


class GPHyperResult(NamedTuple):
    """Result of :func:`fit_hyperparameters`.

    Attributes:
        params: fitted :class:`GPParams` (the iterate after the last step).
        history: ``(max_iter + 1,)`` negative log marginal likelihood after 0, 1, …,
            ``n_iter`` updates, NaN after.
        n_iter: ``()`` int32 optimiser steps run.
        converged: ``()`` bool, the loss changed by less than ``tol`` in the last step (never
            with ``tol=0``).
        n_skipped: ``()`` int, steps skipped because the loss or its gradient was not finite.
    """

    params: GPParams
    history: jax.Array
    n_iter: jax.Array
    converged: jax.Array
    n_skipped: jax.Array


# ----------------------------------------------------------------------------- validation


def _check_xy(X: ArrayLike, y: ArrayLike) -> tuple[jax.Array, jax.Array]:
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, n_features)")
    y = as_float_array(y, "y", ndim=1, shape_hint="(n_samples,)")
    check_same_length(X=X, y=y)
    # the kernel takes squared distances between rows of X: their spread must square in range
    checked_exponent(X, "X", what="the kernel's squared distances")
    return X, y


def _check_posterior(post: GPPosterior, X_new: ArrayLike) -> jax.Array:
    if not isinstance(post, GPPosterior):
        raise TypeError(f"post must be a GPPosterior (gp.fit(...).params), got "
                        f"{type(post).__name__}")
    X_new = as_float_array(X_new, "X_new", ndim=2, shape_hint="(n_new, n_features)",
                           n_columns=post.X.shape[1])
    return X_new.astype(post.X.dtype)


# ----------------------------------------------------------------------------- numerics


def _cholesky_jitter(A: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(L, jitter)`` of ``A`` by the library's jitter policy, at most ``_MAX_REL_JITTER``."""
    return cholesky_with_jitter(A, _MAX_REL_JITTER)


def _centre(y: jax.Array, center: bool) -> tuple[jax.Array, jax.Array]:
    y_mean = jnp.mean(y) if center else jnp.zeros((), y.dtype)
    return y - y_mean, y_mean


def _cho_solve(L: jax.Array, b: jax.Array) -> jax.Array:
    return solve_triangular(L.T, solve_triangular(L, b, lower=True), lower=False)


def _condition(params: GPParams, X: jax.Array, y: jax.Array, center: bool):
    """Cholesky, α and ȳ (R&W Algorithm 2.1, lines 2–3)."""
    r, y_mean = _centre(y, center)
    L, jitter = _cholesky_jitter(noisy_kernel_matrix(params, X))
    return L, _cho_solve(L, r), y_mean, jitter


def _gaussian_lml_parts(A: jax.Array, r: jax.Array):
    L, _ = _cholesky_jitter(A)
    alpha = _cho_solve(L, r)
    lml = gaussian_log_density(jnp.dot(r, alpha, precision=lax.Precision.HIGHEST),
                               2.0 * jnp.sum(jnp.log(jnp.diag(L))), r.shape[0])
    return lml, L, alpha


@jax.custom_jvp
def _gaussian_lml(A: jax.Array, r: jax.Array) -> jax.Array:
    """log N(r | 0, A) = −½ rᵀα − Σ log L_ii − (n/2) log 2π, α = A⁻¹r (R&W eq. 2.30)."""
    return _gaussian_lml_parts(A, r)[0]


@_gaussian_lml.defjvp
def _gaussian_lml_jvp(primals, tangents):
    # d log N = ½ tr((ααᵀ − A⁻¹) dA) − αᵀ dr (R&W eq. 5.9). A⁻¹ costs one O(n³) solve and the
    # tangent is then an elementwise product, so reverse mode through K(θ) is O(n² d) on top:
    # cheaper than differentiating the Cholesky factorisation itself.
    (A, r), (dA, dr) = primals, tangents
    out, L, alpha = _gaussian_lml_parts(A, r)
    A_inv = _cho_solve(L, jnp.eye(A.shape[0], dtype=A.dtype))
    W = 0.5 * (alpha[:, None] * alpha[None, :] - A_inv)
    d_out = jnp.sum(W * dA) - jnp.dot(alpha, dr, precision=lax.Precision.HIGHEST)
    return out, d_out


def _lml(params: GPParams, X: jax.Array, y: jax.Array, center: bool) -> jax.Array:
    """log p(y | X, θ) (R&W eq. 2.30), differentiable in ``params`` via eq. 5.9."""
    r, _ = _centre(y, center)
    return _gaussian_lml(noisy_kernel_matrix(params, X), r)


@functools.partial(jax.jit, static_argnames=("center",))
def _lml_impl(params, X, y, center):
    return _lml(params, X, y, center)


@functools.partial(jax.jit, static_argnames=("center",))
def _fit_impl(params, X, y, center):
    L, alpha, y_mean, jitter = _condition(params, X, y, center)
    post = GPPosterior(X=X, chol=L, alpha=alpha, params=params, y_mean=y_mean, jitter=jitter)
    return GPResult(params=post, **em.closed_form(X.dtype))


def _predict(post: GPPosterior, X_new: jax.Array, full_cov: bool, include_noise: bool):
    p = post.params
    Ks = kernel_matrix(p, X_new, post.X)  # (m, n)
    mean = jnp.matmul(Ks, post.alpha, precision=lax.Precision.HIGHEST) + post.y_mean
    V = solve_triangular(post.chol, Ks.T, lower=True)  # (n, m)
    noise = jnp.exp(p.log_noise_var) if include_noise else jnp.zeros((), X_new.dtype)
    if full_cov:
        cov = kernel_matrix(p, X_new, X_new) - jnp.matmul(V.T, V, precision=lax.Precision.HIGHEST)
        cov = 0.5 * (cov + cov.T) + noise * jnp.eye(X_new.shape[0], dtype=X_new.dtype)
        return mean, cov
    var = jnp.exp(p.log_signal_var) - jnp.sum(V * V, axis=0)
    return mean, jnp.maximum(var, 0.0) + noise  # clip rounding below 0 (R&W eq. 2.26)


@functools.partial(jax.jit, static_argnames=("full_cov", "include_noise"))
def _predict_impl(post, X_new, full_cov, include_noise):
    return _predict(post, X_new, full_cov, include_noise)


@functools.partial(jax.jit, static_argnames=("n_samples", "include_noise"))
def _sample_impl(key, post, X_new, n_samples, include_noise):
    mean, cov = _predict(post, X_new, True, include_noise)
    # Symmetric square root by eigh with clipped eigenvalues: exact for the (often singular)
    # posterior covariance, where a Cholesky would need jitter.
    evals, evecs = jnp.linalg.eigh(cov)
    root = evecs * jnp.sqrt(jnp.maximum(evals, 0.0))[None, :]
    z = jax.random.normal(key, (n_samples, X_new.shape[0]), dtype=X_new.dtype)
    return mean[None, :] + jnp.matmul(z, root.T, precision=lax.Precision.HIGHEST)


@functools.partial(jax.jit, static_argnames=("optimizer", "max_iter", "center"))
def _fit_hyper_impl(params0, X, y, tol, optimizer, max_iter, center):
    def loss_fn(params):
        return -_lml(params, X, y, center)

    value_and_grad = jax.value_and_grad(loss_fn)

    def step(carry):
        params, opt_state, n_skipped, previous = carry
        loss, grads = value_and_grad(params)
        ok = jnp.isfinite(loss) & jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        grads = jax.tree.map(lambda g: jnp.where(ok, g, jnp.zeros_like(g)), grads)
        with standard_promotion():
            updates, new_state = optimizer.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
        # A non-finite loss or gradient leaves parameters and optimiser state unchanged.
        keep = functools.partial(jnp.where, ok)
        params = jax.tree.map(keep, new_params, params)
        opt_state = jax.tree.map(keep, new_state, opt_state)
        carry = (params, opt_state, n_skipped + (~ok).astype(jnp.int32), loss)
        return carry, loss, jnp.abs(loss - previous) < tol

    with standard_promotion():
        opt_state0 = optimizer.init(params0)
    init = (params0, opt_state0, jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, X.dtype))
    run = em.iterate(step, init, max_iter=max_iter, dtype=X.dtype)
    params, _, n_skipped, _ = run.params
    history = jnp.concatenate([run.history, jnp.full((1,), jnp.nan, X.dtype)])
    history = history.at[run.n_iter].set(loss_fn(params))
    return GPHyperResult(params=params, history=history, n_iter=run.n_iter,
                         converged=run.converged, n_skipped=n_skipped)


# ----------------------------------------------------------------------------- public API


def log_marginal_likelihood(params: GPParams, X: ArrayLike, y: ArrayLike, *,
                            center: bool = False) -> jax.Array:
    """Log marginal likelihood log p(y | X, θ) (R&W eq. 2.30; PRML eq. 6.69).

    Differentiable in ``params`` (``jax.grad(log_marginal_likelihood)(params, X, y)`` gives the
    gradient in log space, R&W eq. 5.9).

    Args:
        params: :class:`GPParams`.
        X: ``(n_samples, n_features)`` inputs.
        y: ``(n_samples,)`` targets.
        center: subtract the mean of ``y`` first (constant mean by centring, module doc).

    Returns:
        ``()`` scalar.

    Raises:
        ValueError: bad shapes or non-finite input; or (outside a trace) the kernel matrix could
            not be factorised even with jitter.
    """
    X, y = _check_xy(X, y)
    params = check_params(params, X.shape[1], X.dtype)
    out = _lml_impl(params, X, y, center=bool(center))
    if not is_traced(out) and not bool(jnp.isfinite(out)):
        raise ValueError("log marginal likelihood is not finite: K + noise_var*I could not be "
                         "factorised even with jitter; increase the noise variance")
    return out


def fit(X: ArrayLike, y: ArrayLike, params: GPParams, *, center: bool = False) -> GPResult:
    """Condition the GP on data: Cholesky of ``K + σ_n² I`` and α (R&W Algorithm 2.1).

    Args:
        X: ``(n_samples, n_features)`` training inputs.
        y: ``(n_samples,)`` training targets.
        params: :class:`GPParams` (see :func:`make_params`).
        center: model a constant mean by centring ``y`` on its empirical mean (module doc).

    Returns:
        :class:`GPResult` whose ``params`` is the :class:`GPPosterior` (its ``jitter`` field
        reports any diagonal jitter that was needed).

    Raises:
        ValueError: bad shapes, non-finite input, ARD length-scales not matching the feature
            count, or (outside a trace) a kernel matrix that is not positive definite even with
            the largest jitter.
    """
    X, y = _check_xy(X, y)
    params = check_params(params, X.shape[1], X.dtype)
    res = _fit_impl(params, X, y, center=bool(center))
    jitter = res.params.jitter
    if not is_traced(jitter) and bool(jnp.isnan(jitter)):
        raise ValueError("K + noise_var*I is not positive definite even with a jitter of "
                         f"{_MAX_REL_JITTER} x its mean diagonal; increase the noise variance")
    return res


def predict(post: GPPosterior, X_new: ArrayLike, *, full_cov: bool = False,
            include_noise: bool = True) -> tuple[jax.Array, jax.Array]:
    """Predictive mean and variance (or covariance) at new inputs (R&W eqs. 2.25–2.26).

    Args:
        post: :class:`GPPosterior` (``fit(...).params``).
        X_new: ``(n_new, n_features)``.
        full_cov: return the ``(n_new, n_new)`` covariance instead of the ``(n_new,)`` variances.
        include_noise: add σ_n² (predictive distribution of a new target y*); False gives the
            posterior of the latent function f*.

    Returns:
        ``mean (n_new,)`` and ``var (n_new,)`` or ``cov (n_new, n_new)``.
    """
    X_new = _check_posterior(post, X_new)
    return _predict_impl(post, X_new, full_cov=bool(full_cov), include_noise=bool(include_noise))


def sample_posterior(key: jax.Array, post: GPPosterior, X_new: ArrayLike, n_samples: int, *,
                     include_noise: bool = False) -> jax.Array:
    """Joint draws of the posterior process at new inputs (R&W §2.2, eq. 2.24).

    Args:
        key: PRNG key.
        post: :class:`GPPosterior` (``fit(...).params``).
        X_new: ``(n_new, n_features)``.
        n_samples: number of joint draws.
        include_noise: draw noisy targets y* instead of latent function values f*.

    Returns:
        ``(n_samples, n_new)`` draws from ``N(mean, cov)`` of :func:`predict` with
        ``full_cov=True``.
    """
    key = check_key(key)
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    X_new = _check_posterior(post, X_new)
    return _sample_impl(key, post, X_new, n_samples=n_samples, include_noise=bool(include_noise))


def fit_hyperparameters(X: ArrayLike, y: ArrayLike, params0: GPParams, *,
                        optimizer: optax.GradientTransformation, max_iter: int,
                        tol: float = 0.0, center: bool = False) -> GPHyperResult:
    """Maximise the log marginal likelihood over log hyper-parameters (type-II ML, R&W §5.4.1).

    Runs up to ``max_iter`` gradient steps of ``optimizer`` on the loss ``−log p(y | X, θ)`` in
    one jitted loop (:func:`espresso_jax.em.iterate`, the engine of the other fixed-point fits:
    a full-batch optimiser step is one more fixed-point iteration, so it needs no minibatch
    machinery from :mod:`espresso_jax.train`). A step whose loss or gradient is not finite is
    skipped (parameters and optimiser state kept) and counted in ``n_skipped``. The compiled
    loop is cached per ``optimizer`` object, ``max_iter`` and ``center``: reuse the same
    optimizer object to avoid recompiling.

    Args:
        X: ``(n_samples, n_features)`` inputs.
        y: ``(n_samples,)`` targets.
        params0: initial :class:`GPParams` (an ARD ``log_length_scale`` fits one per feature).
        optimizer: an optax gradient transformation, e.g. ``optax.adam(0.05)``.
        max_iter: maximum number of optimiser steps (>= 1).
        tol: stop when the loss changes by less than ``tol`` between steps (``0``: run
            ``max_iter`` steps).
        center: constant mean by centring (module doc).

    Returns:
        :class:`GPHyperResult` ``(params, history, n_iter, converged, n_skipped)``.

    Example:
        Restarts from several starting points are a ``vmap`` over stacked parameters::

            starts = jax.tree.map(lambda *a: jnp.stack(a), p0, p1, p2)
            fits = jax.vmap(lambda p: fit_hyperparameters(X, y, p, optimizer=opt,
                                                          max_iter=200))(starts)
            best = jnp.argmin(fits.history[:, -1])
    """
    X, y = _check_xy(X, y)
    params0 = check_params(params0, X.shape[1], X.dtype)
    optimizer = check_optimizer(optimizer)
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol", allow_zero=True)
    return _fit_hyper_impl(params0, X, y, jnp.asarray(tol, X.dtype), optimizer=optimizer,
                           max_iter=max_iter, center=bool(center))
