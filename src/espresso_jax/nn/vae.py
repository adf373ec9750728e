"""Variational auto-encoders: auto-encoding variational Bayes (Kingma & Welling 2014).

Model: ``z ~ N(0, I_k)``, ``x | z ~ p_θ(x | z)`` with a Bernoulli decoder (logits) or a
Gaussian decoder (mean, with a fixed, shared or per-feature learned log-variance).
Recognition module: ``q_φ(z | x) = N(μ_φ(x), diag σ²_φ(x))``; the encoder outputs ``μ`` and
``log σ²`` and samples are reparameterised, ``z = μ + σ ⊙ ε``, ``ε ~ N(0, I)``.

Per-example ELBO, ``L`` samples ``z_l`` (the two SGVB estimators of the paper):

* ``"A"``: ``(1/L) Σ_l [log p(x, z_l) − log q(z_l | x)]`` (eq. 6);
* ``"B"``: ``−KL(q(z|x) ‖ p(z)) + (1/L) Σ_l log p(x | z_l)`` with the Gaussian KL in closed
  form, ``½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)`` (eqs. 7 and 10); lower variance.

Both are unbiased for the same per-example ELBO. The minibatch loss (:func:`make_loss`) is
``−(N/M) Σ_{m∈batch} ELBO_m``: minibatches are drawn uniformly, so it is an unbiased estimate of
minus the full-data ELBO ``Σ_{n=1}^N ELBO_n`` (eq. 8), and its gradient of the full-data one.
With ``binarize=True`` each minibatch is dynamically binarised inside the loss: ``x ~
Bernoulli(pixel intensity)`` drawn with the step's key (a fresh binary data set every epoch).

Evaluation: :func:`elbo` and the importance-weighted bound (Burda et al. 2016)
``IWAE_k = log (1/k) Σ_i p(x, z_i)/q(z_i | x)`` (:func:`iwae`), ``ELBO ≤ IWAE_k ≤ IWAE_{k+1}
→ log p(x)`` in expectation. The ``k`` samples are processed in chunks with a running
log-sum-exp (``lax.scan``), and examples in batches (``lax.map``), so memory stays bounded for
``k`` in the thousands; the noise of all ``k`` samples is drawn at once (``k × latent_dim``
numbers), so the value does not depend on the chunk size.

Numerics: log-variances are clipped to ``[-30, 30]`` before exponentiation; the Bernoulli
log-likelihood uses ``log_sigmoid`` (no ``log(0)``). For intensities in ``[0, 1]`` that are not
binary the Bernoulli "log-likelihood" is the negative cross-entropy (not a normalised density).

References:
    D. P. Kingma and M. Welling, "Auto-encoding variational Bayes", ICLR 2014.
    Y. Burda, R. Grosse and R. Salakhutdinov, "Importance weighted autoencoders", ICLR 2016.
    J. Lucas, G. Tucker, R. Grosse and M. Norouzi, "Don't blame the ELBO! A linear VAE
    perspective on posterior collapse", NeurIPS 2019 (a linear VAE reaches the PPCA maximum).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.scipy.special import ndtri
from jax.typing import ArrayLike

from espresso_jax import train
from espresso_jax.nn.autoencoder import (
    check_data,
    check_module,
    decoder_net,
    encoder_body,
    to_flat,
    to_images,
)
from espresso_jax.prob.gaussian import gaussian_log_density
from espresso_jax.prob.info import normal_kl
from espresso_jax.validation import (
    check_choice,
    check_int,
    check_key,
    float_dtype,
    is_traced,
)

__all__ = [
    "VAE",
    "elbo",
    "elbo_per_example",
    "encode",
    "fit",
    "generate",
    "init",
    "iwae",
    "iwae_per_example",
    "kl_divergence",
    "make_loss",
    "manifold",
    "reconstruct",
]

ESTIMATORS = ("A", "B")
LIKELIHOODS = ("bernoulli", "gaussian")
VARIANCES = ("shared", "per_feature", "fixed")
_LOGVAR_MIN, _LOGVAR_MAX = -30.0, 30.0


def _clip_logvar(logvar: jax.Array) -> jax.Array:
    return jnp.clip(logvar, _LOGVAR_MIN, _LOGVAR_MAX)


class VAE(nn.Module):
    """Gaussian-encoder VAE on flat inputs (a configuration; use it with the functions below).

    Attributes:
        data_dim: input size ``D`` (784 for MNIST).
        latent_dim: ``k``.
        hidden: encoder hidden widths (default ``(500, 500)``: the 784-500-500-20 encoder and
            its mirror decoder); ``()`` makes encoder heads and decoder affine (linear VAE).
        architecture: ``"mlp"`` or ``"conv"`` (see :mod:`espresso_jax.nn.conv`).
        likelihood: ``"bernoulli"`` (decoder outputs logits) or ``"gaussian"`` (means).
        variance: Gaussian decoder variance: ``"shared"`` (one learned ``log s²``),
            ``"per_feature"`` (``D`` learned values) or ``"fixed"`` (``init_logvar``).
        init_logvar: initial (or fixed) Gaussian decoder log-variance.
        activation: hidden non-linearity.
        image_shape: ``(H, W, C)`` for ``"conv"`` (``H*W*C == data_dim``).
        conv_features: encoder convolution channels for ``"conv"``.

    Methods (via ``module.apply(params, ..., method=VAE.encode)``):
        ``encode: (..., D) -> (μ, log σ²)`` each ``(..., k)``; ``decode: (..., k) -> (..., D)``
        logits or means; ``log_likelihood(x (D,), z (..., k)) -> (...)`` ``log p(x | z)``.
    """

    data_dim: int = 784
    latent_dim: int = 20
    hidden: Sequence[int] = (500, 500)
    architecture: str = "mlp"
    likelihood: str = "bernoulli"
    variance: str = "shared"
    init_logvar: float = 0.0
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    image_shape: Sequence[int] = (28, 28, 1)
    conv_features: Sequence[int] = (32, 64)

    def setup(self) -> None:
        self.body = encoder_body(self.architecture, self.hidden, self.activation,
                                 self.conv_features)
        self.enc_mean = nn.Dense(self.latent_dim)
        self.enc_logvar = nn.Dense(self.latent_dim)
        self.decoder = decoder_net(self.architecture, self.hidden, self.data_dim,
                                   self.activation, self.image_shape, self.conv_features)
        if self.likelihood == "gaussian" and self.variance != "fixed":
            shape = () if self.variance == "shared" else (self.data_dim,)
            self.dec_logvar = self.param("dec_logvar",
                                         nn.initializers.constant(self.init_logvar, jnp.float32),
                                         shape)

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = to_images(x, self.architecture, self.image_shape)
        h = h if self.body is None else self.body(h)
        return self.enc_mean(h), _clip_logvar(self.enc_logvar(h))

    def decode(self, z: jax.Array) -> jax.Array:
        return to_flat(self.decoder(z), self.architecture)

    def decoder_logvar(self, dtype: Any) -> jax.Array:
        """Gaussian decoder log-variance, ``()`` or ``(D,)``."""
        if self.variance == "fixed":
            return jnp.asarray(self.init_logvar, dtype=dtype)
        return _clip_logvar(self.dec_logvar)

    def log_likelihood(self, x: jax.Array, z: jax.Array) -> jax.Array:
        loc = self.decode(z)
        x = jnp.broadcast_to(x, loc.shape)
        if self.likelihood == "bernoulli":
            ll = x * jax.nn.log_sigmoid(loc) + (1.0 - x) * jax.nn.log_sigmoid(-loc)
        else:
            logvar = jnp.broadcast_to(self.decoder_logvar(loc.dtype), loc.shape)
            ll = gaussian_log_density((x - loc) ** 2 * jnp.exp(-logvar), logvar)
        return jnp.sum(ll, axis=-1)

    def __call__(self, x: jax.Array) -> jax.Array:
        mu, _ = self.encode(x)
        return self.log_likelihood(x, mu)


def _check_vae(module: Any) -> VAE:
    module = check_module(module, VAE)
    check_choice(module.likelihood, "module.likelihood", LIKELIHOODS)
    check_choice(module.variance, "module.variance", VARIANCES)
    if not math.isfinite(float(module.init_logvar)):
        raise ValueError(f"module.init_logvar must be finite, got {module.init_logvar}")
    return module


def init(key: jax.Array, module: VAE) -> Any:
    """Initial parameters of ``module`` in the working float dtype (float64 under x64)."""
    key = check_key(key)
    module = _check_vae(module)
    # flax creates float32 parameters; trace in float32, then cast to the working dtype
    params = jax.jit(module.init)(key, jnp.zeros((1, module.data_dim), dtype=jnp.float32))
    return jax.tree.map(lambda a: a.astype(float_dtype()), params)


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


def _kl(mu: jax.Array, logvar: jax.Array) -> jax.Array:
    """``KL(N(μ, diag σ²) ‖ N(0, I))`` over the last axis."""
    return jnp.sum(normal_kl(mu, jnp.exp(logvar), logvar), axis=-1)


def _elbo_and_kl_one(module: VAE, params: Any, x: jax.Array, key: jax.Array, estimator: str,
                     n_samples: int) -> tuple[jax.Array, jax.Array]:
    """SGVB estimate of one example's ELBO and its analytic ``KL(q(z|x) ‖ p(z))``,
    ``x: (D,)`` → ``((), ())`` (one encoder pass for both)."""
    mu, logvar = cast(tuple[jax.Array, jax.Array], module.apply(params, x, method=VAE.encode))
    eps = jax.random.normal(key, (n_samples, module.latent_dim), dtype=mu.dtype)
    log_w, log_px = _log_weights(module, params, x, mu, logvar, eps)
    kl = _kl(mu, logvar)
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
    eps = jax.random.normal(key, (k, module.latent_dim), dtype=mu.dtype)
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
# Training
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
    module = _check_vae(module)
    n_data = check_int(n_data, "n_data", min_value=1)
    check_choice(estimator, "estimator", ESTIMATORS)
    n_samples = check_int(n_samples, "n_samples", min_value=1)

    def loss(params: Any, batch: jax.Array, key: jax.Array):
        bin_key, eps_key = jax.random.split(key)
        if binarize:
            batch = jax.random.bernoulli(bin_key, batch).astype(batch.dtype)
        keys = jax.random.split(eps_key, batch.shape[0])
        elbos, kls = jax.vmap(
            lambda x, k: _elbo_and_kl_one(module, params, x, k, estimator, n_samples))(batch, keys)
        scale = n_data / batch.shape[0]
        return -scale * jnp.sum(elbos), {"elbo": jnp.mean(elbos), "kl": jnp.mean(kls)}

    return loss


def _check_inputs(module: Any, X: ArrayLike, binary_range: bool) -> tuple[VAE, jax.Array]:
    module = _check_vae(module)
    X = check_data(module, X)
    if binary_range and not is_traced(X):
        low, high = float(jnp.min(X)), float(jnp.max(X))
        if low < 0.0 or high > 1.0:
            raise ValueError(f"X must lie in [0, 1] for a Bernoulli decoder or binarisation, "
                             f"got values in [{low:g}, {high:g}]")
    return module, X


def fit(key: jax.Array, X: ArrayLike, *, module: VAE, optimizer: optax.GradientTransformation,
        batch_size: int, n_epochs: int, estimator: str = "B", n_samples: int = 1,
        binarize: bool = False, params: Any = None, **loop_options: Any) -> train.FitResult:
    """Train a VAE by SGVB with :func:`espresso_jax.train.fit` (jitted chunks, progress bar).

    Args:
        key: PRNG key (initialisation when ``params`` is None, shuffling, ε, binarisation).
        X: ``(n_samples, data_dim)`` training data (in ``[0, 1]`` for a Bernoulli decoder).
        module: the :class:`VAE` (a flax module and the module's configuration).
        optimizer: optax optimiser (e.g. ``optax.adam(1e-3)``).
        batch_size: minibatch size ``M``.
        n_epochs: epochs.
        estimator: ``"A"`` or ``"B"`` (see the module docstring).
        n_samples: ``L``, samples of ``z`` per example and step.
        binarize: dynamic binarisation of each minibatch.
        params: initial parameters (default :func:`init`).
        **loop_options: forwarded to :func:`espresso_jax.train.fit_loop` (``progress``,
            ``eval_fn``, ``patience``, ``callbacks``, ...).

    Returns:
        :class:`espresso_jax.train.FitResult`: trained parameters in ``best_params`` (the final
        ones without an ``eval_fn``); ``history`` holds per-epoch ``"loss"`` (``−(N/M) Σ``
        ELBO), ``"elbo"`` (mean per-example ELBO estimate) and ``"kl"``.
    """
    key = check_key(key)
    check_choice(estimator, "estimator", ESTIMATORS)
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    module = _check_vae(module)
    module, X = _check_inputs(module, X, module.likelihood == "bernoulli" or bool(binarize))
    init_key, fit_key = jax.random.split(key)
    if params is None:
        params = init(init_key, module)
    loss = make_loss(module, int(X.shape[0]), estimator=estimator, n_samples=n_samples,
                     binarize=bool(binarize))
    loop_options.setdefault("desc", "vae")
    return train.fit(fit_key, loss, params, X, optimizer=optimizer, batch_size=batch_size,
                     n_epochs=n_epochs, has_aux=True, **loop_options)


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
    module, X = _check_inputs(module, X, False)
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
    module, X = _check_inputs(module, X, False)
    return _iwae_impl(key, module, params, X, k, chunk_size,
                      _check_batch(batch_size, X.shape[0]))


def iwae(key: jax.Array, module: VAE, params: Any, X: ArrayLike, *, k: int,
         **options: Any) -> jax.Array:
    """Mean per-example IWAE bound, ``()``; options as :func:`iwae_per_example`."""
    return jnp.mean(iwae_per_example(key, module, params, X, k=k, **options))


@functools.partial(jax.jit, static_argnames=("module", "what"))
def _deterministic(module, params, X, what):
    mu, logvar = module.apply(params, X, method=VAE.encode)
    if what == "encode":
        return mu, logvar
    if what == "kl":
        return _kl(mu, logvar)
    return _mean_of(module, module.apply(params, mu, method=VAE.decode))


def _mean_of(module: VAE, loc: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(loc) if module.likelihood == "bernoulli" else loc


def encode(module: VAE, params: Any, X: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Posterior parameters ``(μ, log σ²)`` of ``q(z | x)``, each ``(n, latent_dim)``."""
    module, X = _check_inputs(module, X, False)
    return _deterministic(module, params, X, "encode")


def kl_divergence(module: VAE, params: Any, X: ArrayLike) -> jax.Array:
    """Analytic ``KL(q(z | x_n) ‖ N(0, I))`` per example, ``(n,)``."""
    module, X = _check_inputs(module, X, False)
    return _deterministic(module, params, X, "kl")


def reconstruct(module: VAE, params: Any, X: ArrayLike) -> jax.Array:
    """Decoder means at the posterior means, ``E[x | z = μ(x)]``: ``(n, data_dim)``
    (pixel probabilities for a Bernoulli decoder)."""
    module, X = _check_inputs(module, X, False)
    return _deterministic(module, params, X, "reconstruct")


@functools.partial(jax.jit, static_argnames=("module", "n", "sample"))
def _generate_impl(key, module, params, n, sample):
    z_key, x_key = jax.random.split(key)
    z = jax.random.normal(z_key, (n, module.latent_dim), dtype=float_dtype())
    loc = module.apply(params, z, method=VAE.decode)
    if not sample:
        return _mean_of(module, loc)
    if module.likelihood == "bernoulli":
        return jax.random.bernoulli(x_key, jax.nn.sigmoid(loc)).astype(loc.dtype)
    std = jnp.exp(0.5 * module.apply(params, loc.dtype, method=VAE.decoder_logvar))
    return loc + jnp.broadcast_to(std, loc.shape) * jax.random.normal(x_key, loc.shape,
                                                                       dtype=loc.dtype)


def generate(key: jax.Array, module: VAE, params: Any, n: int, *,
             sample: bool = False) -> jax.Array:
    """Ancestral samples: ``z ~ N(0, I)``, then the decoder mean (default) or ``x ~ p(x | z)``
    (``sample=True``). Returns ``(n, data_dim)``."""
    key = check_key(key)
    module = _check_vae(module)
    n = check_int(n, "n", min_value=1)
    return _generate_impl(key, module, params, n, bool(sample))


@functools.partial(jax.jit, static_argnames=("module", "n_grid", "dims"))
def _manifold_impl(module, params, n_grid, dims):
    dtype = float_dtype()
    p = (jnp.arange(n_grid, dtype=dtype) + 0.5) / n_grid
    coords = ndtri(p)                                       # (n_grid,) Gaussian quantiles
    z = jnp.zeros((n_grid, n_grid, module.latent_dim), dtype=dtype)
    # row i (top to bottom) has decreasing z[dims[1]]; column j increasing z[dims[0]]
    z = z.at[:, :, dims[0]].set(jnp.broadcast_to(coords[None, :], (n_grid, n_grid)))
    z = z.at[:, :, dims[1]].set(jnp.broadcast_to(coords[::-1, None], (n_grid, n_grid)))
    return _mean_of(module, module.apply(params, z, method=VAE.decode))


def manifold(module: VAE, params: Any, n_grid: int, *, dims: Sequence[int] = (0, 1)
             ) -> jax.Array:
    """Decoder means on a 2-D latent grid (Kingma & Welling 2014, Fig. 4).

    Equally spaced points ``(i + ½)/n_grid`` of the unit square are mapped through the Gaussian
    inverse CDF (``ndtri``), so the grid covers the prior's quantiles; the other latent
    coordinates are 0.

    Args:
        module, params: the VAE.
        n_grid: points per axis.
        dims: the two latent coordinates varied (horizontal, vertical).

    Returns:
        ``(n_grid, n_grid, data_dim)``; entry ``[i, j]`` has ``z[dims[0]]`` increasing with the
        column ``j`` and ``z[dims[1]]`` decreasing with the row ``i`` (image orientation).
    """
    module = _check_vae(module)
    n_grid = check_int(n_grid, "n_grid", min_value=1)
    dims = tuple(check_int(d, "dims", min_value=0, max_value=module.latent_dim - 1)
                 for d in dims)
    if len(dims) != 2 or dims[0] == dims[1]:
        raise ValueError(f"dims must name two different latent coordinates, got {dims}")
    return _manifold_impl(module, params, n_grid, dims)
