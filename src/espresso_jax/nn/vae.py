"""Variational auto-encoders: auto-encoding variational Bayes (Kingma & Welling 2014).

Model: ``z ~ N(0, I_k)``, ``x | z ~ p_θ(x | z)`` with a Bernoulli decoder (logits) or a
Gaussian decoder (mean, with a fixed, shared or per-feature learned log-variance).
Recognition module: ``q_φ(z | x) = N(μ_φ(x), diag σ²_φ(x))``; the encoder outputs ``μ`` and
``log σ²`` and samples are reparameterised, ``z = μ + σ ⊙ ε``, ``ε ~ N(0, I)``.

The model (:class:`VAE`, :func:`init`) is defined in :mod:`espresso_jax.nn.vae_model`; the
SGVB estimators of the per-example ELBO, the minibatch loss (:func:`make_loss`) and the ELBO and
IWAE bounds (:func:`elbo`, :func:`iwae`) in :mod:`espresso_jax.nn.vae_objectives`; both are
re-exported here. This module trains a VAE by SGVB (:func:`fit`) and uses a trained one: the
recognition model (:func:`encode`, :func:`kl_divergence`), reconstructions, ancestral samples
(:func:`generate`) and the latent manifold (:func:`manifold`).

References:
    D. P. Kingma and M. Welling, "Auto-encoding variational Bayes", ICLR 2014.
    Y. Burda, R. Grosse and R. Salakhutdinov, "Importance weighted autoencoders", ICLR 2016.
    J. Lucas, G. Tucker, R. Grosse and M. Norouzi, "Don't blame the ELBO! A linear VAE
    perspective on posterior collapse", NeurIPS 2019 (a linear VAE reaches the PPCA maximum).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.scipy.special import ndtri
from jax.typing import ArrayLike

from espresso_jax import train
from espresso_jax.netcheck import check_optimizer
from espresso_jax.nn.modules import check_params_on_rows
from espresso_jax.nn.vae_model import LIKELIHOODS as LIKELIHOODS  # the option tuples, importable
from espresso_jax.nn.vae_model import VAE, check_vae, check_vae_data, init
from espresso_jax.nn.vae_model import VARIANCES as VARIANCES  # from here as before the split
from espresso_jax.nn.vae_objectives import (
    ESTIMATORS,
    elbo,
    elbo_per_example,
    iwae,
    iwae_per_example,
    kl_to_prior,
    make_loss,
)
from espresso_jax.validation import check_choice, check_int, check_key, float_dtype

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
        estimator: ``"A"`` or ``"B"`` (see :mod:`espresso_jax.nn.vae_objectives`).
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
    module = check_vae(module)
    module, X = check_vae_data(module, X, module.likelihood == "bernoulli" or bool(binarize))
    optimizer = check_optimizer(optimizer)
    if params is not None:
        params = check_params_on_rows(module, params)
    init_key, fit_key = jax.random.split(key)
    if params is None:
        params = init(init_key, module)
    loss = make_loss(module, int(X.shape[0]), estimator=estimator, n_samples=n_samples,
                     binarize=bool(binarize))
    loop_options.setdefault("desc", "vae")
    return train.fit(fit_key, loss, params, X, optimizer=optimizer, batch_size=batch_size,
                     n_epochs=n_epochs, has_aux=True, **loop_options)


# --------------------------------------------------------------------------------------------
# Using a trained VAE: recognition model, reconstructions, samples, latent manifold
# --------------------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("module", "what"))
def _deterministic(module, params, X, what):
    mu, logvar = module.apply(params, X, method=VAE.encode)
    if what == "encode":
        return mu, logvar
    if what == "kl":
        return kl_to_prior(mu, logvar)
    return _mean_of(module, module.apply(params, mu, method=VAE.decode))


def _mean_of(module: VAE, loc: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(loc) if module.likelihood == "bernoulli" else loc


def encode(module: VAE, params: Any, X: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Posterior parameters ``(μ, log σ²)`` of ``q(z | x)``, each ``(n, latent_dim)``."""
    module, X = check_vae_data(module, X, False)
    return _deterministic(module, check_params_on_rows(module, params), X, "encode")


def kl_divergence(module: VAE, params: Any, X: ArrayLike) -> jax.Array:
    """Analytic ``KL(q(z | x_n) ‖ N(0, I))`` per example, ``(n,)``."""
    module, X = check_vae_data(module, X, False)
    return _deterministic(module, check_params_on_rows(module, params), X, "kl")


def reconstruct(module: VAE, params: Any, X: ArrayLike) -> jax.Array:
    """Decoder means at the posterior means, ``E[x | z = μ(x)]``: ``(n, data_dim)``
    (pixel probabilities for a Bernoulli decoder)."""
    module, X = check_vae_data(module, X, False)
    return _deterministic(module, check_params_on_rows(module, params), X, "reconstruct")


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
    module = check_vae(module)
    n = check_int(n, "n", min_value=1)
    params = check_params_on_rows(module, params)
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
    module = check_vae(module)
    n_grid = check_int(n_grid, "n_grid", min_value=1)
    dims = tuple(check_int(d, "dims", min_value=0, max_value=module.latent_dim - 1)
                 for d in dims)
    if len(dims) != 2 or dims[0] == dims[1]:
        raise ValueError(f"dims must name two different latent coordinates, got {dims}")
    return _manifold_impl(module, check_params_on_rows(module, params), n_grid, dims)
