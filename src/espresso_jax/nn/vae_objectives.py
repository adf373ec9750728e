"""The VAE objectives: SGVB estimates of the per-example ELBO, the minibatch training loss
(:func:`make_loss`) and the ELBO and importance-weighted (IWAE) bounds of a trained VAE.

Per-example ELBO, ``L`` samples ``z_l`` (the two SGVB estimators of the paper):

* ``"A"``: ``(1/L) Σ_l [log p(x, z_l) − log q(z_l | x)]`` (eq. 6);
* ``"B"``: ``−KL(q(z|x) ‖ p(z)) + (1/L) Σ_l log p(x | z_l)`` with the Gaussian KL in closed
  form, ``½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)`` (eqs. 7 and 10); lower variance.

Both are unbiased for the same per-example ELBO. The minibatch loss (:func:`make_loss`) is
``−(N/M) Σ_{m∈batch} ELBO_m``: minibatches are drawn uniformly, so it is an unbiased estimate of
minus the full-data ELBO ``Σ_{n=1}^N ELBO_n`` (eq. 8), and its gradient of the full-data one.
With ``binarize=True`` each minibatch is dynamically binarised inside the loss: ``x ~
Bernoulli(pixel intensity)`` drawn with the step's key (a fresh binary data set every epoch;
:func:`espresso_jax.nn.vae_binarize.binarize`, the draws of ``jax.random.bernoulli``).

Evaluation: :func:`elbo` and the importance-weighted bound (Burda et al. 2016)
``IWAE_k = log (1/k) Σ_i p(x, z_i)/q(z_i | x)`` (:func:`iwae`), ``ELBO ≤ IWAE_k ≤ IWAE_{k+1}
→ log p(x)`` in expectation. The ``k`` samples are processed in chunks with a running
log-sum-exp (``lax.scan``), and examples in batches (``lax.map``), so memory stays bounded for
``k`` in the thousands; the noise of all ``k`` samples is drawn at once (``k × latent_dim``
numbers), so the value does not depend on the chunk size.

References:
    D. P. Kingma and M. Welling, "Auto-encoding variational Bayes", ICLR 2014.
    Y. Burda, R. Grosse and R. Salakhutdinov, "Importance weighted autoencoders", ICLR 2016.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from espresso_jax.nn.modules import check_params_on_rows
from espresso_jax.nn.vae_binarize import binarize as binarize_batch
from espresso_jax.nn.vae_model import VAE, check_vae, check_vae_data
from espresso_jax.prob.draws import draw_flat
from espresso_jax.prob.gaussian import gaussian_log_density
from espresso_jax.prob.info import normal_kl
from espresso_jax.validation import check_choice, check_int, check_key

__all__ = [
    "ESTIMATORS",
    "elbo",
    "elbo_per_example",
    "iwae",
    "iwae_per_example",
    "kl_to_prior",
    "make_loss",
]

ESTIMATORS = ("A", "B")


# --------------------------------------------------------------------------------------------
# Per-example estimators
# --------------------------------------------------------------------------------------------

def _log_std_normal(z: jax.Array) -> jax.Array:
    return gaussian_log_density(jnp.sum(z * z, axis=-1), 0.0, z.shape[-1])


def _log_weights(module: VAE, params: Any, x: jax.Array, mu: jax.Array, logvar: jax.Array,
                 eps: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``log p(x, z) − log q(z | x)`` and ``log p(x | z)`` for ``z = μ + σ ε``, ``eps: (L, k)``.

    ``log q(z | x) = log N(ε; 0, I) − ½ Σ log σ²`` (change of variables), exact for the
    reparameterised sample and its gradient."""
    z = mu[None, :] + jnp.exp(0.5 * logvar)[None, :] * eps
    log_px = cast(jax.Array, module.apply(params, x, z, method=VAE.log_likelihood))   # (L,)
    log_q = _log_std_normal(eps) - 0.5 * jnp.sum(logvar)
    return log_px + _log_std_normal(z) - log_q, log_px


def kl_to_prior(mu: jax.Array, logvar: jax.Array) -> jax.Array:
    """``KL(N(μ, diag σ²) ‖ N(0, I))`` over the last axis: ``(..., k), (..., k) -> (...)``."""
    return jnp.sum(normal_kl(mu, jnp.exp(logvar), logvar), axis=-1)


def _elbo_and_kl_one(module: VAE, params: Any, x: jax.Array, key: jax.Array, estimator: str,
                     n_samples: int) -> tuple[jax.Array, jax.Array]:
    """SGVB estimate of one example's ELBO and its analytic ``KL(q(z|x) ‖ p(z))``,
    ``x: (D,)`` → ``((), ())`` (one encoder pass for both)."""
    mu, logvar = cast(tuple[jax.Array, jax.Array], module.apply(params, x, method=VAE.encode))
    eps = draw_flat(jax.random.normal, key, (n_samples, module.latent_dim), dtype=mu.dtype)
    log_w, log_px = _log_weights(module, params, x, mu, logvar, eps)
    kl = kl_to_prior(mu, logvar)
    if estimator == "A":
        return jnp.mean(log_w), kl
    return jnp.mean(log_px) - kl, kl


def _elbo_one(module: VAE, params: Any, x: jax.Array, key: jax.Array, estimator: str,
              n_samples: int) -> jax.Array:
    """SGVB estimate of one example's ELBO, ``x: (D,)`` → ``()``."""
    return _elbo_and_kl_one(module, params, x, key, estimator, n_samples)[0]


def _iwae_one(module: VAE, params: Any, x: jax.Array, key: jax.Array, k: int,
              chunk_size: int) -> jax.Array:
    """``log (1/k) Σ_i w_i`` for one example with a running log-sum-exp over sample chunks.

    The ``k`` noise vectors are drawn at once (``k × latent_dim`` numbers, so the value does
    not depend on ``chunk_size``); the decoder sees ``chunk_size`` of them at a time."""
    mu, logvar = cast(tuple[jax.Array, jax.Array], module.apply(params, x, method=VAE.encode))
    n_chunks = -(-k // chunk_size)
    eps = draw_flat(jax.random.normal, key, (k, module.latent_dim), dtype=mu.dtype)
    eps = jnp.pad(eps, ((0, n_chunks * chunk_size - k), (0, 0)))
    eps = eps.reshape(n_chunks, chunk_size, module.latent_dim)

    def body(carry, chunk):
        run_max, run_sum = carry
        index, eps_chunk = chunk
        log_w, _ = _log_weights(module, params, x, mu, logvar, eps_chunk)
        valid = index * chunk_size + jnp.arange(chunk_size) < k           # padding rows
        log_w = jnp.where(valid, log_w, -jnp.inf)
        new_max = jnp.maximum(run_max, jnp.max(log_w))
        run_sum = run_sum * jnp.exp(run_max - new_max) + jnp.sum(jnp.exp(log_w - new_max))
        return (new_max, run_sum), None

    start = (jnp.full((), -jnp.inf, dtype=mu.dtype), jnp.zeros((), dtype=mu.dtype))
    (run_max, run_sum), _ = jax.lax.scan(body, start, (jnp.arange(n_chunks), eps))
    return run_max + jnp.log(run_sum) - math.log(k)


def _map_examples(fn: Callable[[jax.Array, jax.Array], jax.Array], key: jax.Array,
                  X: jax.Array, batch_size: int) -> jax.Array:
    """``fn(x_n, key_n)`` for every row, ``batch_size`` rows at a time (``lax.map`` over
    vmapped batches; the rows are padded to a multiple of ``batch_size``, one traced body)."""
    n = X.shape[0]
    n_batches = -(-n // batch_size)
    pad = n_batches * batch_size - n
    keys = jax.random.split(key, n)
    keys = jnp.concatenate([keys, keys[:1].repeat(pad, axis=0)]) if pad else keys
    Xp = jnp.pad(X, ((0, pad), (0, 0)))
    out = jax.lax.map(lambda a: jax.vmap(fn)(*a), (Xp.reshape(n_batches, batch_size, -1),
                                     keys.reshape((n_batches, batch_size) + keys.shape[1:])))
    return out.reshape(-1)[:n]


# --------------------------------------------------------------------------------------------
# The minibatch training loss
# --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def make_loss(module: VAE, n_data: int, *, estimator: str = "B", n_samples: int = 1,
              binarize: bool = False) -> Callable[..., tuple[jax.Array, dict[str, jax.Array]]]:
    """Minibatch loss ``(params, batch (M, D), key) -> (loss, {"elbo", "kl"})`` for the engine.

    ``loss = −(N/M) Σ_m ELBO_m`` (``N = n_data``): an unbiased estimate of minus the full-data
    ELBO. ``aux["elbo"]`` is the mean per-example ELBO estimate of the batch and ``aux["kl"]``
    the mean analytic ``KL(q(z|x) ‖ p(z))``. With ``binarize`` the batch (intensities in
    ``[0, 1]``) is replaced by a Bernoulli sample drawn from the step key. Use with
    ``has_aux=True``; equal arguments return the same function object (no recompilation).
    """
    module = check_vae(module)
    n_data = check_int(n_data, "n_data", min_value=1)
    check_choice(estimator, "estimator", ESTIMATORS)
    n_samples = check_int(n_samples, "n_samples", min_value=1)

    def loss(params: Any, batch: jax.Array, key: jax.Array):
        bin_key, eps_key = jax.random.split(key)
        if binarize:
            batch = binarize_batch(bin_key, batch)  # the bits of jax.random.bernoulli
        keys = jax.random.split(eps_key, batch.shape[0])
        elbos, kls = jax.vmap(
            lambda x, k: _elbo_and_kl_one(module, params, x, k, estimator, n_samples))(batch, keys)
        scale = n_data / batch.shape[0]
        return -scale * jnp.sum(elbos), {"elbo": jnp.mean(elbos), "kl": jnp.mean(kls)}

    return loss


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("module", "estimator", "n_samples", "batch_size"))
def _elbo_impl(key, module, params, X, estimator, n_samples, batch_size):
    return _map_examples(lambda x, k: _elbo_one(module, params, x, k, estimator, n_samples),
                         key, X, batch_size)


@functools.partial(jax.jit, static_argnames=("module", "k", "chunk_size", "batch_size"))
def _iwae_impl(key, module, params, X, k, chunk_size, batch_size):
    return _map_examples(lambda x, kk: _iwae_one(module, params, x, kk, k, chunk_size),
                         key, X, batch_size)


def _check_batch(batch_size: int, n: int) -> int:
    return min(check_int(batch_size, "batch_size", min_value=1), n)


def elbo_per_example(key: jax.Array, module: VAE, params: Any, X: ArrayLike, *,
                     estimator: str = "B", n_samples: int = 1,
                     batch_size: int = 256) -> jax.Array:
    """SGVB estimates of each example's ELBO, ``X: (n, D) -> (n,)``.

    Args:
        key: PRNG key; example ``n`` uses the ``n``-th key of ``split(key, n)``.
        module, params: the VAE.
        X: ``(n, data_dim)`` data (binarise it first for a binary-data evaluation).
        estimator: ``"A"`` or ``"B"``.
        n_samples: ``L`` samples per example.
        batch_size: examples evaluated at once (memory).
    """
    key = check_key(key)
    check_choice(estimator, "estimator", ESTIMATORS)
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    module = check_vae(module)   # a Bernoulli decoder's likelihood needs X in [0, 1]
    module, X = check_vae_data(module, X, module.likelihood == "bernoulli")
    params = check_params_on_rows(module, params)
    return _elbo_impl(key, module, params, X, estimator, n_samples,
                      _check_batch(batch_size, X.shape[0]))


def elbo(key: jax.Array, module: VAE, params: Any, X: ArrayLike, **options: Any) -> jax.Array:
    """Mean per-example ELBO estimate, ``()``; options as :func:`elbo_per_example`."""
    return jnp.mean(elbo_per_example(key, module, params, X, **options))


def iwae_per_example(key: jax.Array, module: VAE, params: Any, X: ArrayLike, *, k: int,
                     chunk_size: int = 100, batch_size: int = 64) -> jax.Array:
    """Importance-weighted bound ``log (1/k) Σ_{i≤k} p(x, z_i)/q(z_i | x)`` per example.

    Args:
        key: PRNG key; example ``n`` uses ``split(key, n)[n]`` to draw its ``k`` noise
            vectors at once, so the value does not depend on ``chunk_size``.
        module, params: the VAE.
        X: ``(n, data_dim)``.
        k: importance samples (``k = 1`` is a one-sample estimator-A ELBO).
        chunk_size: samples evaluated at once (memory ``~ batch_size · chunk_size · D``).
        batch_size: examples evaluated at once.

    Returns:
        ``(n,)`` bounds (each ≤ ``log p(x)`` in expectation, increasing with ``k``).

    References:
        Burda, Grosse & Salakhutdinov (2016), eq. 8.
    """
    key = check_key(key)
    k = check_int(k, "k", min_value=1)
    chunk_size = min(check_int(chunk_size, "chunk_size", min_value=1), k)
    module = check_vae(module)   # a Bernoulli decoder's likelihood needs X in [0, 1]
    module, X = check_vae_data(module, X, module.likelihood == "bernoulli")
    params = check_params_on_rows(module, params)
    return _iwae_impl(key, module, params, X, k, chunk_size,
                      _check_batch(batch_size, X.shape[0]))


def iwae(key: jax.Array, module: VAE, params: Any, X: ArrayLike, *, k: int,
         **options: Any) -> jax.Array:
    """Mean per-example IWAE bound, ``()``; options as :func:`iwae_per_example`."""
    return jnp.mean(iwae_per_example(key, module, params, X, k=k, **options))
