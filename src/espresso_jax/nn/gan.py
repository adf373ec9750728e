"""Generative adversarial networks: MLP and DCGAN players, a pure two-player step, training
with :func:`espresso_jax.train.fit_loop` and sampling; the ring-of-Gaussians benchmark and its
mode-coverage metrics live in :mod:`espresso_jax.nn.gan_metrics` (re-exported here).

A GAN is described by a :class:`GANModel` (two flax modules, the latent width and the shape
of one example), built by :func:`mlp_gan` or :func:`dcgan` (defined in
:mod:`espresso_jax.nn.gan_modules`, re-exported here). Its training state
:class:`GANState` holds one :class:`PlayerState` per network (parameters, BatchNorm
``batch_stats`` and optimiser state), the key and the step count; BatchNorm statistics are
threaded functionally (``mutable=["batch_stats"]``) and kept in the state.

Each step of :func:`make_step` takes a minibatch of ``k_disc * m`` data rows, runs ``k_disc``
discriminator updates (``lax.scan``, each on its own ``m`` data rows and fresh noise) and then
one generator update on ``m`` fresh noise draws: Algorithm 1 of Goodfellow et al. (2014).
During a discriminator update the generator runs in training mode but its BatchNorm
statistics are not updated; during a generator update the discriminator's are not either.
Real and generated batches go through the discriminator separately (DCGAN practice).

Losses (``loss=``): ``"minimax"`` (generator minimises ``log(1 - D(G(z)))``),
``"non_saturating"`` (generator minimises ``-log D(G(z))``) and ``"wgan_gp"`` (critic with
gradient penalty). See :mod:`espresso_jax.nn.gan_losses`.

References:
    Goodfellow et al. (2014), Generative adversarial nets, NeurIPS.
    Radford, Metz and Chintala (2016), Unsupervised representation learning with deep
    convolutional generative adversarial networks, ICLR (DCGAN).
    Gulrajani et al. (2017), Improved training of Wasserstein GANs, NeurIPS (WGAN-GP).
    Metz et al. (2017), Unrolled generative adversarial networks, ICLR, and Srivastava et al.
    (2017), VEEGAN, NeurIPS (the ring of 8 Gaussians and its mode-coverage metrics).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from espresso_jax import train
from espresso_jax.interop import standard_promotion
from espresso_jax.nn import gan_losses as L
from espresso_jax.nn.gan_metrics import ModeCoverage, mode_coverage, ring_of_gaussians
from espresso_jax.nn.gan_modules import (
    DCGANDiscriminator,
    DCGANGenerator,
    GANModel,
    GANOptimizers,
    MLPDiscriminator,
    MLPGenerator,
    dcgan,
    gan_optimizers,
    mlp_gan,
)
from espresso_jax.validation import (
    as_float_array,
    check_choice,
    check_int,
    check_key,
    check_positive,
    float_dtype,
)

__all__ = [
    "LOSSES",
    "MLPGenerator",
    "MLPDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "GANModel",
    "GANOptimizers",
    "mlp_gan",
    "dcgan",
    "PlayerState",
    "GANState",
    "init_state",
    "apply_player",
    "make_step",
    "fit",
    "sample",
    "discriminator_logits",
    "ring_of_gaussians",
    "ModeCoverage",
    "mode_coverage",
]

LOSSES = ("minimax", "non_saturating", "wgan_gp")

PyTree = Any


# ----------------------------------------------------------------------------- state
class PlayerState(NamedTuple):
    """One player's part of the state.

    Attributes:
        params: the module's ``"params"`` collection.
        batch_stats: its ``"batch_stats"`` collection (``{}`` without BatchNorm).
        opt_state: its optax state.
    """

    params: PyTree
    batch_stats: PyTree
    opt_state: PyTree


class GANState(NamedTuple):
    """Two-player training state.

    Attributes:
        gen: generator :class:`PlayerState`.
        disc: discriminator :class:`PlayerState`.
        key: PRNG key split by every step (noise, interpolation weights).
        step: generator steps taken, int32 scalar.
    """

    gen: PlayerState
    disc: PlayerState
    key: jax.Array
    step: jax.Array


def _check_module(module: Any) -> GANModel:
    if not isinstance(module, GANModel):
        raise TypeError("module must be a GANModel (see mlp_gan / dcgan), got "
                        f"{type(module).__name__}")
    return module


def init_state(key: jax.Array, module: GANModel, *,
               optimizer: optax.GradientTransformation | GANOptimizers,
               dtype: Any = None) -> GANState:
    """Initialise both players (flax default initialisers) and their optimisers.

    Args:
        key: PRNG key (split into generator, discriminator and step keys).
        module: a :class:`GANModel`.
        optimizer: one optax optimiser for both players (each gets its own state of it) or a
            :class:`GANOptimizers` ``(generator, discriminator)``.
        dtype: parameter dtype (default: float32, float64 under x64).
    """
    key = check_key(key)
    module = _check_module(module)
    opts = gan_optimizers(optimizer)
    dtype = float_dtype() if dtype is None else np.dtype(dtype)
    return _init_state(key, module, opts, dtype.name)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _init_state(key, module, opts, dtype):
    # One compiled program: flax's eager initialisation dispatches hundreds of small ops.
    gkey, dkey, skey = jax.random.split(key, 3)

    def player(net, k, x, optimizer):
        variables = net.init(k, x, train=False)
        variables = jax.tree.map(lambda a: a.astype(dtype), dict(variables))
        params = variables["params"]
        with standard_promotion():
            opt_state = optimizer.init(params)
        return PlayerState(params, variables.get("batch_stats", {}), opt_state)

    # flax creates float32 parameters: trace the initialisation in float32, then cast.
    z = jnp.zeros((2, module.latent_dim), jnp.float32)
    x = jnp.zeros((2,) + tuple(module.sample_shape), jnp.float32)
    return GANState(player(module.generator, gkey, z, opts.generator),
                    player(module.discriminator, dkey, x, opts.discriminator), skey,
                    jnp.zeros((), jnp.int32))


def apply_player(module: nn.Module, params: PyTree, batch_stats: PyTree, x: jax.Array, *,
                 train: bool) -> tuple[jax.Array, PyTree]:
    """``module(x)`` with one player's variables, BatchNorm statistics threaded functionally.

    Args:
        module: a player (flax module called as ``module.apply(variables, x, train=...)``).
        params: its ``"params"``; batch_stats: its ``"batch_stats"`` (``{}`` without
            BatchNorm).
        x: ``(n, ...)`` inputs.
        train: batch statistics (and updated running averages) or the running averages.

    Returns:
        ``(output, batch_stats)``: the new running averages when ``train`` and the module has
        BatchNorm, else ``batch_stats`` unchanged.
    """
    variables = {"params": params}
    if batch_stats:
        variables["batch_stats"] = batch_stats
    if not train or not batch_stats:
        return cast(jax.Array, module.apply(variables, x, train=train)), batch_stats
    out, mutated = module.apply(variables, x, train=True, mutable=["batch_stats"])
    return out, mutated["batch_stats"]


# ----------------------------------------------------------------------------- step
def make_step(module: GANModel, loss: str, k_disc: int,
              optimizer: optax.GradientTransformation | GANOptimizers, gp_weight: float = 10.0,
              real_label: float = 1.0
              ) -> Callable[[GANState, jax.Array], tuple[GANState, dict[str, jax.Array]]]:
    """The pure two-player step ``(state, batch (k_disc * m, *sample_shape)) -> (state,
    metrics)``.

    The batch is split into ``k_disc`` discriminator minibatches of ``m`` rows. Metrics
    (scalars): ``d_loss`` and ``d_real`` / ``d_fake`` (mean ``D(x)`` and ``D(G(z))``; raw critic
    scores for WGAN-GP, plus ``gp``) averaged over the ``k_disc`` discriminator updates, and
    ``g_loss``. ``optimizer`` is as in :func:`init_state`; ``real_label`` as in :func:`fit`.
    The same arguments give the same step object (no recompilation).
    """
    module = _check_module(module)
    check_choice(loss, "loss", LOSSES)
    k_disc = check_int(k_disc, "k_disc", min_value=1)
    opts = gan_optimizers(optimizer)
    gp_weight = check_positive(gp_weight, "gp_weight", allow_zero=True)
    real_label = _check_real_label(real_label, loss)
    return _make_step(module, loss, k_disc, opts, gp_weight, real_label)


def _check_real_label(real_label: Any, loss: str) -> float:
    real_label = check_positive(real_label, "real_label")
    if not 0.5 < real_label <= 1.0:
        raise ValueError(f"real_label must be in (0.5, 1], got {real_label}")
    if loss == "wgan_gp" and real_label != 1.0:
        raise ValueError("real_label (label smoothing) applies to the cross-entropy losses, "
                         "not to loss='wgan_gp'")
    return real_label


@functools.lru_cache(maxsize=64)
def _make_step(module, loss, k_disc, opts, gp_weight, real_label=1.0):
    G, D, latent_dim = module.generator, module.discriminator, module.latent_dim
    wgan = loss == "wgan_gp"
    g_loss_one = {"minimax": L.generator_loss_minimax,
                  "non_saturating": L.generator_loss_non_saturating,
                  "wgan_gp": L.generator_loss_wgan}[loss]

    def d_loss_fn(d_params, batch_stats, real, fake, key):
        r, batch_stats = apply_player(D, d_params, batch_stats, real, train=True)
        f, batch_stats = apply_player(D, d_params, batch_stats, fake, train=True)
        if wgan:
            x_hat = L.interpolate(key, real, fake)

            def critic(x):
                return apply_player(D, d_params, batch_stats, x[None], train=True)[0][0]

            gp = jnp.mean(L.gradient_penalty(critic, x_hat))
            value = jnp.mean(jax.vmap(L.critic_loss_wgan)(r, f)) + gp_weight * gp
            metrics = {"d_real": jnp.mean(r), "d_fake": jnp.mean(f), "gp": gp}
        else:
            bce = (L.discriminator_loss if real_label == 1.0 else
                   functools.partial(L.discriminator_loss, real_label=real_label))
            value = jnp.mean(jax.vmap(bce)(r, f))
            metrics = {"d_real": jnp.mean(jax.nn.sigmoid(r)),
                       "d_fake": jnp.mean(jax.nn.sigmoid(f))}
        return value, (batch_stats, metrics)

    d_grad = jax.value_and_grad(d_loss_fn, has_aux=True)

    def g_loss_fn(g_params, gen, disc, z):
        fake, batch_stats = apply_player(G, g_params, gen.batch_stats, z, train=True)
        f, _ = apply_player(D, disc.params, disc.batch_stats, fake, train=True)
        return jnp.mean(jax.vmap(g_loss_one)(f)), batch_stats

    g_grad = jax.value_and_grad(g_loss_fn, has_aux=True)

    def step(state: GANState, batch: jax.Array) -> tuple[GANState, dict[str, jax.Array]]:
        m = batch.shape[0] // k_disc
        real = batch.reshape((k_disc, m) + batch.shape[1:])
        key, d_key, g_key = jax.random.split(state.key, 3)
        gen = state.gen

        def d_update(disc, inputs):
            x, k = inputs
            z_key, i_key = jax.random.split(k)
            z = jax.random.normal(z_key, (m, latent_dim), dtype=x.dtype)
            fake, _ = apply_player(G, gen.params, gen.batch_stats, z, train=True)
            fake = jax.lax.stop_gradient(fake)
            (value, (stats, metrics)), grads = d_grad(disc.params, disc.batch_stats, x, fake,
                                                      i_key)
            with standard_promotion():  # optax mixes int32 step counts with floats
                updates, opt_state = opts.discriminator.update(grads, disc.opt_state,
                                                                  disc.params)
                params = optax.apply_updates(disc.params, updates)
            return PlayerState(params, stats, opt_state), {"d_loss": value, **metrics}

        disc, d_metrics = jax.lax.scan(d_update, state.disc,
                                       (real, jax.random.split(d_key, k_disc)))
        z = jax.random.normal(g_key, (m, latent_dim), dtype=batch.dtype)
        (g_value, g_stats), grads = g_grad(gen.params, gen, disc, z)
        with standard_promotion():
            updates, opt_state = opts.generator.update(grads, gen.opt_state, gen.params)
            g_params = optax.apply_updates(gen.params, updates)
        gen = PlayerState(g_params, g_stats, opt_state)
        metrics = {k: jnp.mean(v) for k, v in d_metrics.items()}
        metrics["g_loss"] = g_value
        return GANState(gen, disc, key, state.step + 1), metrics

    return step


# ----------------------------------------------------------------------------- fit
def _check_data(data: Any, module: GANModel, name: str) -> jax.Array:
    shape = tuple(module.sample_shape)
    hint = "(n_samples, " + ", ".join(str(s) for s in shape) + ")"
    data = as_float_array(data, name, ndim=1 + len(shape), shape_hint=hint)
    if tuple(data.shape[1:]) != shape:
        raise ValueError(f"{name} must have shape {hint} for this module, got "
                         f"{tuple(data.shape)}")
    return data


def fit(key: jax.Array, X: Any, *, module: GANModel, loss: str, k_disc: int,
        optimizer: optax.GradientTransformation | GANOptimizers, batch_size: int, n_epochs: int,
        gp_weight: float = 10.0, real_label: float = 1.0, state: GANState | None = None,
        **loop_options: Any) -> train.FitResult:
    """Train a GAN with :func:`espresso_jax.train.fit_loop` (progress bar, history, chunks).

    One epoch shuffles ``X`` and runs ``n // (k_disc * batch_size)`` two-player steps,
    so the discriminator sees each row about once per epoch.

    Args:
        key: PRNG key (initialisation, shuffling and the step key).
        X: ``(n, *module.sample_shape)`` training examples (e.g. scaled to [-1, 1] for a
            tanh generator).
        module: a :class:`GANModel`, the generator and discriminator modules
            (:func:`mlp_gan`, :func:`dcgan`).
        loss: one of :data:`LOSSES`.
        k_disc: discriminator updates per generator update (>= 1).
        optimizer: one optax optimiser for both players, each with its own state of it (e.g.
            ``optax.adam(2e-4, b1=0.5)``), or a :class:`GANOptimizers`
            ``(generator=..., discriminator=...)``; anything else is a ``TypeError``.
        batch_size: ``m``, rows per discriminator update and noise draws per generator update.
        n_epochs: epochs to run.
        gp_weight: gradient-penalty weight lambda (``"wgan_gp"`` only).
        real_label: the real examples' target in the discriminator's cross-entropy, in
            (0.5, 1]; 0.9 is one-sided label smoothing (Salimans et al. 2016), 1 none.
        state: a :class:`GANState` to continue from (default: a fresh :func:`init_state`).
        **loop_options: passed to :func:`espresso_jax.train.fit_loop` (``callbacks``,
            ``progress``, ``epochs_per_chunk``, ``eval_fn`` on the generator's
            :class:`PlayerState``, ...).

    Returns:
        :class:`espresso_jax.train.FitResult`; ``state`` is a :class:`GANState`,
        ``best_params`` the generator's :class:`PlayerState`, ``history`` holds ``d_loss``,
        ``g_loss``, ``d_real``, ``d_fake`` (and ``gp``) per epoch.
    """
    key = check_key(key)
    module = _check_module(module)
    check_choice(loss, "loss", LOSSES)
    k_disc = check_int(k_disc, "k_disc", min_value=1)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    gp_weight = check_positive(gp_weight, "gp_weight", allow_zero=True)
    real_label = _check_real_label(real_label, loss)
    opts = gan_optimizers(optimizer)
    data = _check_data(X, module, "X")
    if k_disc * batch_size > data.shape[0]:
        raise ValueError(f"k_disc * batch_size ({k_disc * batch_size}) exceeds the number of "
                         f"rows of X ({data.shape[0]})")
    if state is not None and not isinstance(state, GANState):
        raise TypeError(f"state must be a GANState, got {type(state).__name__}")
    if loss == "wgan_gp" and _has_batch_norm(module):
        raise ValueError("loss='wgan_gp' needs a per-example critic: the discriminator has "
                         "BatchNorm (use dcgan(d_norm='layer') or d_norm='none')")
    init_key, shuffle_key = jax.random.split(key)
    if state is None:
        state = init_state(init_key, module, optimizer=opts, dtype=data.dtype)
    step = make_step(module, loss, k_disc, opts, gp_weight, real_label)
    loop_options.setdefault("params_of", _generator_of)
    loop_options.setdefault("desc", f"gan[{loss}]")
    return train.fit_loop(shuffle_key, step, state, data, batch_size=k_disc * batch_size,
                          n_epochs=n_epochs, **loop_options)


def _has_batch_norm(module: GANModel) -> bool:
    """Whether the discriminator keeps BatchNorm statistics (shapes only, nothing compiled)."""
    x = jax.ShapeDtypeStruct((2,) + tuple(module.sample_shape), jnp.float32)
    shapes = jax.eval_shape(functools.partial(module.discriminator.init, train=False),
                            jax.random.key(0), x)
    return bool(jax.tree.leaves(shapes.get("batch_stats", {})))


def _generator_of(state: GANState) -> PlayerState:
    return state.gen


def _player(state: Any, part: str) -> PlayerState:
    if isinstance(state, GANState):
        return getattr(state, part)
    if isinstance(state, PlayerState):
        return state
    raise TypeError(f"state must be a GANState or a PlayerState, got {type(state).__name__}")


@functools.partial(jax.jit, static_argnames=("module", "train"))
def _forward(module, params, batch_stats, x, train):
    return apply_player(module, params, batch_stats, x, train=train)[0]


def sample(key: jax.Array, state: GANState | PlayerState, n: int, *, module: GANModel,
           train: bool = False) -> jax.Array:
    """Draw ``n`` examples ``G(z)``, ``z ~ N(0, I)``.

    Args:
        key: PRNG key for the noise.
        state: a :class:`GANState`, or the generator's :class:`PlayerState` (e.g.
            ``FitResult.best_params``).
        n: number of samples.
        module: the :class:`GANModel` the state was trained with.
        train: normalise with the batch's own BatchNorm statistics instead of the running
            averages (no effect without BatchNorm).

    Returns:
        ``(n, *module.sample_shape)`` samples.
    """
    key = check_key(key)
    module = _check_module(module)
    n = check_int(n, "n", min_value=1)
    gen = _player(state, "gen")
    dtype = jax.tree.leaves(gen.params)[0].dtype
    z = jax.random.normal(key, (n, module.latent_dim), dtype=dtype)
    return _forward(module.generator, gen.params, gen.batch_stats, z, bool(train))


def discriminator_logits(state: GANState | PlayerState, X: Any, *, module: GANModel
                         ) -> jax.Array:
    """Discriminator logits ``logit D(x)`` of the rows ``x`` of ``X``, in evaluation mode
    (running BatchNorm averages).

    Args:
        state: a :class:`GANState` or the discriminator's :class:`PlayerState`.
        X: ``(n, *module.sample_shape)`` inputs.

    Returns:
        ``(n,)`` logits; ``jax.nn.sigmoid`` gives ``D(x)`` (raw scores for a WGAN critic).
    """
    module = _check_module(module)
    disc = _player(state, "disc")
    X = _check_data(X, module, "X").astype(jax.tree.leaves(disc.params)[0].dtype)
    return _forward(module.discriminator, disc.params, disc.batch_stats, X, False)
