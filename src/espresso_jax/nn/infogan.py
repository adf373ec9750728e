"""InfoGAN (Chen et al. 2016): a GAN whose generator input holds, besides the noise, a
categorical code and continuous codes that an auxiliary head ``Q`` must recover from the
generated example, a variational lower bound on the mutual information ``I(c; G(z, c))``.

The generator input is ``[z, one_hot(c_cat), c_cont]`` with ``z ~ N(0, I)``, ``c_cat``
uniform over ``n_categories`` classes and ``c_cont ~ U(-1, 1)^n_continuous``. The
discriminator :class:`InfoGANDiscriminator` has one body and two heads: the real/fake logit
and ``Q(c | x)``, a categorical distribution for ``c_cat`` and a factorised Gaussian (mean and
log standard deviation) for ``c_cont``. The information term of one example (minimised, see
:func:`information_term`) is

    λ_cat · (−log Q(c_cat | x)) + λ_cont · Σ_j (−log N(c_cont,j; μ_j(x), σ_j(x)²)),

so ``H(c_cat) − E[−log Q(c_cat | x)]`` is the lower bound ``L_I`` of the paper (Eq. 4) for
the categorical code. It is added to the discriminator's loss (training the body and both
heads) and to the generator's non-saturating loss.

The players and the state are those of :mod:`espresso_jax.nn.gan` (a :class:`GANModel` of an
MLP generator and this discriminator, :class:`~espresso_jax.nn.gan.GANState`,
:func:`~espresso_jax.nn.gan.init_state`, the losses of :mod:`espresso_jax.nn.gan_losses`),
and training runs on :func:`espresso_jax.train.fit_loop`; only the step differs (one
discriminator update, then one generator update, per minibatch). The code read by ``Q`` is
scored against labels by :mod:`espresso_jax.nn.infogan_eval` (re-exported here).

References:
    X. Chen, Y. Duan, R. Houthooft, J. Schulman, I. Sutskever and P. Abbeel, "InfoGAN:
    interpretable representation learning by information maximizing generative adversarial
    nets", NeurIPS 2016.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from espresso_jax import train
from espresso_jax.interop import standard_promotion
from espresso_jax.nn import gan
from espresso_jax.nn import gan_losses as L
from espresso_jax.nn.conv import PatchConv, check_image_shape
from espresso_jax.nn.gan_modules import (
    GANModel,
    GANOptimizers,
    MLPGenerator,
    UpsampleConvGenerator,
    gan_optimizers,
)
from espresso_jax.nn.infogan_eval import majority_mapping, matched_error
from espresso_jax.nn.modules import MLP
from espresso_jax.validation import (
    as_float_array,
    as_int_array,
    check_int,
    check_key,
    check_positive,
)

__all__ = [
    "InfoGANDiscriminator",
    "InfoGANModel",
    "Latent",
    "mlp_infogan",
    "information_term",
    "sample_latent",
    "make_losses",
    "make_step",
    "fit",
    "generate",
    "predict_codes",
    "code_recovery",
    "matched_error",
    "majority_mapping",
]

PyTree = Any
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class InfoGANDiscriminator(nn.Module):
    """Discriminator with a ``Q`` head on the shared body.

    ``x -> [stride-2 4×4 convolutions + LeakyReLU(0.2)] -> body (Dense + LeakyReLU(0.2)
    layers) -> logit`` and ``body -> Dense(q_hidden) -> LeakyReLU -> [category logits, means,
    log standard deviations]``. The convolutions (:class:`~espresso_jax.nn.conv.PatchConv`)
    are there only when ``conv_features`` is not empty.

    Attributes:
        hidden: widths of the shared body.
        n_categories: classes of the categorical code.
        n_continuous: number of continuous codes.
        q_hidden: width of the ``Q`` head's hidden layer.
        conv_features: channels of each convolution (e.g. ``(32, 64)``: 28×28 -> 14×14×32 ->
            7×7×64), ``()`` for an MLP.
        image_shape: ``(H, W, C)`` each example is reshaped to before the convolutions.

    Shapes: ``x (n, *sample_shape) -> (logit (n,), cat_logits (n, n_categories),
    mean (n, n_continuous), log_std (n, n_continuous))``.
    """

    hidden: Sequence[int] = (512, 256)
    n_categories: int = 10
    n_continuous: int = 2
    q_hidden: int = 128
    conv_features: Sequence[int] = ()
    image_shape: Sequence[int] = (28, 28, 1)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True
                 ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        del train  # no BatchNorm or dropout
        act = functools.partial(nn.leaky_relu, negative_slope=0.2)
        h = x
        if self.conv_features:
            h = h.reshape((x.shape[0],) + tuple(self.image_shape))
            for i, width in enumerate(self.conv_features):
                h = act(PatchConv(width, 4, 2, name=f"conv_{i}")(h))
        h = MLP(tuple(self.hidden), activation=act, final_activation=act,
                name="body")(h.reshape((x.shape[0], -1)))
        logit = nn.Dense(1, name="logit")(h)[:, 0]
        c, k = self.n_categories, self.n_continuous
        q = MLP((self.q_hidden, c + 2 * k), activation=act, name="q")(h)
        return logit, q[:, :c], q[:, c:c + k], q[:, c + k:]


class InfoGANModel(NamedTuple):
    """An InfoGAN architecture (static, hashable).

    Attributes:
        gan: the :class:`~espresso_jax.nn.gan_modules.GANModel` (generator input width
            ``noise_dim + n_categories + n_continuous``, an :class:`InfoGANDiscriminator`).
        noise_dim: width of the incompressible noise ``z``.
        n_categories: classes of the categorical code.
        n_continuous: number of continuous codes.
    """

    gan: GANModel
    noise_dim: int
    n_categories: int
    n_continuous: int


def mlp_infogan(sample_shape: int | Sequence[int] = 784, *, noise_dim: int = 62,
                n_categories: int = 10, n_continuous: int = 2,
                g_hidden: Sequence[int] = (256, 512), d_hidden: Sequence[int] = (512, 256),
                q_hidden: int = 128, g_batch_norm: bool = False,
                d_conv: Sequence[int] = (), g_conv: Sequence[int] = (),
                image_shape: Sequence[int] = (28, 28, 1)) -> InfoGANModel:
    """InfoGAN players, MLPs unless convolutions are asked for (the paper's MNIST model has 62
    noise variables, one 10-way code and two continuous codes, a convolutional pair).

    The generator ends in tanh (data in [-1, 1]); it is the library's
    :class:`~espresso_jax.nn.gan_modules.MLPGenerator` with hidden widths ``g_hidden``, or,
    when ``g_conv`` is not empty, an
    :class:`~espresso_jax.nn.gan_modules.UpsampleConvGenerator` with Dense layers
    ``g_hidden``, a first feature map of ``g_conv[0]`` channels and one 2× nearest upsampling
    + 3×3 convolution per entry of ``g_conv`` (the others' channels, then the image's), e.g.
    ``g_hidden=(256,), g_conv=(16, 8)``: ``74 -> 256 -> 7×7×16 -> 14×14×8 -> 28×28×1``.
    ``g_batch_norm``: BatchNorm in the generator's hidden layers (as the paper's generator).
    ``d_conv``: channels of stride-2 4×4 convolutions in front of the discriminator's body
    (``()``: none). Convolutions work on each example reshaped to ``image_shape``
    (``(H, W, C)``, as many values as ``sample_shape``, H and W divisible by
    ``2 ** len(d_conv)`` and ``2 ** len(g_conv)``).

    Shapes: the generator maps ``(n, noise_dim + n_categories + n_continuous)`` to
    ``(n, *sample_shape)``; the discriminator, see :class:`InfoGANDiscriminator`.
    """
    shape = (sample_shape,) if isinstance(sample_shape, (int, np.integer)) else sample_shape
    shape = tuple(check_int(s, "sample_shape", min_value=1) for s in shape)
    noise_dim = check_int(noise_dim, "noise_dim", min_value=0)
    n_categories = check_int(n_categories, "n_categories", min_value=2)
    n_continuous = check_int(n_continuous, "n_continuous", min_value=0)
    g_hidden = tuple(check_int(w, "g_hidden", min_value=1) for w in g_hidden)
    d_hidden = tuple(check_int(w, "d_hidden", min_value=1) for w in d_hidden)
    q_hidden = check_int(q_hidden, "q_hidden", min_value=1)
    d_conv = tuple(check_int(w, "d_conv", min_value=1) for w in d_conv)
    g_conv = tuple(check_int(w, "g_conv", min_value=1) for w in g_conv)
    n_halvings = max(len(d_conv), len(g_conv))
    image = check_image_shape(image_shape, n_halvings) if n_halvings else (28, 28, 1)
    if n_halvings and math.prod(image) != math.prod(shape):
        raise ValueError(f"image_shape {image} must hold the {math.prod(shape)} values of "
                         f"sample_shape {shape}")
    latent = noise_dim + n_categories + n_continuous
    generator: nn.Module
    if g_conv:
        generator = UpsampleConvGenerator(shape, image, g_hidden, g_conv,
                                          batch_norm=bool(g_batch_norm))
    else:
        generator = MLPGenerator(shape, g_hidden, final_activation=jnp.tanh,
                                 batch_norm=bool(g_batch_norm))
    module = GANModel(generator,
                      InfoGANDiscriminator(d_hidden, n_categories, n_continuous, q_hidden,
                                           d_conv, image),
                      latent, shape)
    return InfoGANModel(module, noise_dim, n_categories, n_continuous)


def _check_model(module: Any) -> InfoGANModel:
    if not isinstance(module, InfoGANModel):
        raise TypeError(f"module must be an InfoGANModel (see mlp_infogan), got "
                        f"{type(module).__name__}")
    return module


# ----------------------------------------------------------------------------- codes
class Latent(NamedTuple):
    """One draw of the generator input.

    Attributes:
        z: ``(n, noise_dim + n_categories + n_continuous)`` the full generator input.
        category: ``(n,)`` int32 categorical codes.
        continuous: ``(n, n_continuous)`` continuous codes in [-1, 1].
    """

    z: jax.Array
    category: jax.Array
    continuous: jax.Array


def _assemble(noise: jax.Array, category: jax.Array, continuous: jax.Array,
              n_categories: int) -> jax.Array:
    one_hot = jax.nn.one_hot(category, n_categories, dtype=noise.dtype)
    return jnp.concatenate([noise, one_hot, continuous.astype(noise.dtype)], axis=-1)


def sample_latent(key: jax.Array, n: int, module: InfoGANModel, dtype: Any = jnp.float32
                  ) -> Latent:
    """Draw ``n`` generator inputs: ``z ~ N(0, I)``, a uniform category, ``U(-1, 1)`` codes."""
    k_z, k_cat, k_cont = jax.random.split(key, 3)
    noise = jax.random.normal(k_z, (n, module.noise_dim), dtype=dtype)
    category = jax.random.randint(k_cat, (n,), 0, module.n_categories, dtype=jnp.int32)
    continuous = jax.random.uniform(k_cont, (n, module.n_continuous), dtype=dtype,
                                    minval=-1.0, maxval=1.0)
    return Latent(_assemble(noise, category, continuous, module.n_categories), category,
                  continuous)


def information_term(cat_logits: jax.Array, mean: jax.Array, log_std: jax.Array,
                     category: jax.Array, continuous: jax.Array, *,
                     lambda_cat: float = 1.0, lambda_cont: float = 1.0) -> jax.Array:
    """Per-example information term ``λ_cat · CE + λ_cont · Gaussian NLL`` (minimised).

    Args:
        cat_logits: ``(n, C)`` logits of ``Q(c_cat | x)``.
        mean: ``(n, k)`` means of ``Q(c_cont | x)``.
        log_std: ``(n, k)`` log standard deviations.
        category: ``(n,)`` the categorical codes fed to the generator.
        continuous: ``(n, k)`` the continuous codes fed to the generator.
        lambda_cat: weight of the categorical cross-entropy.
        lambda_cont: weight of the Gaussian negative log-likelihood (summed over ``k``).

    Returns:
        ``(n,)`` values; ``log C − mean(CE)`` lower-bounds the categorical code's mutual
        information with the generated example.
    """
    log_q = jax.nn.log_softmax(cat_logits, axis=-1)
    ce = -jnp.take_along_axis(log_q, category[:, None], axis=-1)[:, 0]
    zsq = ((continuous - mean) * jnp.exp(-log_std)) ** 2
    nll = jnp.sum(_HALF_LOG_2PI + log_std + 0.5 * zsq, axis=-1)
    return lambda_cat * ce + lambda_cont * nll


# ----------------------------------------------------------------------------- losses, step
def _disc(module: InfoGANModel, params: PyTree, x: jax.Array):
    return module.gan.discriminator.apply({"params": params}, x, train=True)


def _gen(module: InfoGANModel, params: PyTree, batch_stats: PyTree, z: jax.Array, *,
         train: bool = True) -> tuple[jax.Array, PyTree]:
    """``G(z)`` and the generator's new BatchNorm statistics (unchanged without BatchNorm)."""
    return gan.apply_player(module.gan.generator, params, batch_stats, z, train=train)


def make_losses(module: InfoGANModel, lambda_cat: float = 1.0, lambda_cont: float = 1.0
                ) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The two players' objectives (minibatch means, minimised).

    Returns:
        ``(d_loss, g_loss)``: ``d_loss(d_params, real, fake, latent) -> (value, metrics)`` is
        the discriminator's binary cross-entropy plus the information term on ``fake``;
        ``g_loss(g_params, d_params, latent, g_batch_stats={}) -> (value, metrics)`` is the
        non-saturating generator loss plus the information term of ``G(latent.z)`` (the
        generator in training mode: BatchNorm on the batch's statistics). ``latent`` is a
        :class:`Latent`; metrics hold ``info`` (the weighted term), ``ce`` and ``mi_cat``
        (``log C − CE``).
    """
    module = _check_model(module)
    lambda_cat = check_positive(lambda_cat, "lambda_cat", allow_zero=True)
    lambda_cont = check_positive(lambda_cont, "lambda_cont", allow_zero=True)
    d_loss, g_objective = _make_losses(module, lambda_cat, lambda_cont)

    def g_loss(g_params: PyTree, d_params: PyTree, latent: Latent,
               g_batch_stats: PyTree = None) -> tuple[jax.Array, dict[str, jax.Array]]:
        value, (metrics, _) = g_objective(g_params, d_params, latent,
                                          {} if g_batch_stats is None else g_batch_stats)
        return value, metrics

    return d_loss, g_loss


@functools.lru_cache(maxsize=64)
def _make_losses(module, lambda_cat, lambda_cont):
    """``(d_loss, g_objective)``; ``g_objective(g_params, d_params, latent, g_batch_stats) ->
    (value, (metrics, new g_batch_stats))``."""
    log_c = math.log(module.n_categories)

    def info(out, latent):
        _, cat_logits, mean, log_std = out
        value = jnp.mean(information_term(cat_logits, mean, log_std, latent.category,
                                          latent.continuous, lambda_cat=lambda_cat,
                                          lambda_cont=lambda_cont))
        ce = jnp.mean(information_term(cat_logits, mean, log_std, latent.category,
                                       latent.continuous, lambda_cat=1.0, lambda_cont=0.0))
        return value, {"info": value, "ce": ce, "mi_cat": log_c - ce}

    def d_loss(d_params, real, fake, latent):
        r = _disc(module, d_params, real)[0]
        out = _disc(module, d_params, fake)
        adv = jnp.mean(jax.vmap(L.discriminator_loss)(r, out[0]))
        value, metrics = info(out, latent)
        return adv + value, {"d_loss": adv, "d_real": jnp.mean(jax.nn.sigmoid(r)),
                             "d_fake": jnp.mean(jax.nn.sigmoid(out[0])), **metrics}

    def g_objective(g_params, d_params, latent, g_batch_stats):
        fake, g_batch_stats = _gen(module, g_params, g_batch_stats, latent.z)
        out = _disc(module, d_params, fake)
        adv = jnp.mean(jax.vmap(L.generator_loss_non_saturating)(out[0]))
        value, metrics = info(out, latent)
        return adv + value, ({"g_loss": adv, **{f"g_{k}": v for k, v in metrics.items()}},
                             g_batch_stats)

    return d_loss, g_objective


def make_step(module: InfoGANModel, optimizer: optax.GradientTransformation | GANOptimizers,
              lambda_cat: float = 1.0, lambda_cont: float = 1.0
              ) -> Callable[[gan.GANState, jax.Array], tuple[gan.GANState, dict]]:
    """The pure step ``(GANState, batch (m, *sample_shape)) -> (GANState, metrics)``: one
    discriminator/Q update on the batch and ``m`` generated examples, then one generator
    update on ``m`` fresh latent draws (see :func:`make_losses` for the objectives)."""
    module = _check_model(module)
    opts = gan_optimizers(optimizer)
    lambda_cat = check_positive(lambda_cat, "lambda_cat", allow_zero=True)
    lambda_cont = check_positive(lambda_cont, "lambda_cont", allow_zero=True)
    d_loss, g_objective = _make_losses(module, lambda_cat, lambda_cont)
    return _make_step(module, opts, d_loss, g_objective)


def _update(opt: optax.GradientTransformation, player: gan.PlayerState, grads: PyTree,
            batch_stats: PyTree) -> gan.PlayerState:
    with standard_promotion():  # optax mixes int32 step counts with floats
        updates, opt_state = opt.update(grads, player.opt_state, player.params)
        params = optax.apply_updates(player.params, updates)
    return gan.PlayerState(params, batch_stats, opt_state)


@functools.lru_cache(maxsize=64)
def _make_step(module, opts, d_loss, g_objective):
    d_grad = jax.grad(d_loss, has_aux=True)
    g_grad = jax.grad(g_objective, has_aux=True)

    def step(state: gan.GANState, batch: jax.Array) -> tuple[gan.GANState, dict]:
        key, d_key, g_key = jax.random.split(state.key, 3)
        m = batch.shape[0]
        latent = sample_latent(d_key, m, module, batch.dtype)
        # the generator in training mode; its BatchNorm averages move only in its own update
        fake = jax.lax.stop_gradient(_gen(module, state.gen.params, state.gen.batch_stats,
                                          latent.z)[0])
        grads, d_metrics = d_grad(state.disc.params, batch, fake, latent)
        disc = _update(opts.discriminator, state.disc, grads, state.disc.batch_stats)
        latent = sample_latent(g_key, m, module, batch.dtype)
        grads, (g_metrics, g_stats) = g_grad(state.gen.params, disc.params, latent,
                                             state.gen.batch_stats)
        gen = _update(opts.generator, state.gen, grads, g_stats)
        return gan.GANState(gen, disc, key, state.step + 1), {**d_metrics, **g_metrics}

    return step


def _check_data(X: Any, module: InfoGANModel) -> jax.Array:
    shape = tuple(module.gan.sample_shape)
    hint = "(n_samples, " + ", ".join(map(str, shape)) + ")"
    data = as_float_array(X, "X", ndim=1 + len(shape), shape_hint=hint)
    if tuple(data.shape[1:]) != shape:
        raise ValueError(f"X must have shape {hint} for this module, got {tuple(data.shape)}")
    return data


def _generator_of(state: gan.GANState) -> gan.PlayerState:
    return state.gen


def fit(key: jax.Array, X: Any, *, module: InfoGANModel,
        optimizer: optax.GradientTransformation | GANOptimizers, batch_size: int,
        n_epochs: int, lambda_cat: float = 1.0, lambda_cont: float = 1.0,
        state: gan.GANState | None = None, **loop_options: Any) -> train.FitResult:
    """Train an InfoGAN with :func:`espresso_jax.train.fit_loop`.

    Args:
        key: PRNG key (initialisation, shuffling and the step key).
        X: ``(n, *sample_shape)`` training examples in [-1, 1] (the generator ends in tanh).
        module: an :class:`InfoGANModel` (:func:`mlp_infogan`).
        optimizer: one optax optimiser or :class:`GANOptimizers` (the paper: Adam, 2e-4 for
            the discriminator and 1e-3 for the generator).
        batch_size: examples per step.
        n_epochs: epochs (``n // batch_size`` steps each).
        lambda_cat, lambda_cont: weights of the information term's two parts (>= 0).
        state: a :class:`~espresso_jax.nn.gan.GANState` to continue from.
        **loop_options: forwarded to :func:`espresso_jax.train.fit_loop`.

    Returns:
        :class:`espresso_jax.train.FitResult` (``state`` a ``GANState``); ``history`` holds
        ``d_loss``, ``g_loss``, ``d_real``, ``d_fake`` and the information metrics ``info``,
        ``ce``, ``mi_cat`` (discriminator side) and ``g_info``, ``g_ce``, ``g_mi_cat``.
    """
    key = check_key(key)
    module = _check_model(module)
    opts = gan_optimizers(optimizer)
    data = _check_data(X, module)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    n_epochs = check_int(n_epochs, "n_epochs", min_value=1)
    if batch_size > data.shape[0]:
        raise ValueError(f"batch_size ({batch_size}) exceeds the number of rows of X "
                         f"({data.shape[0]})")
    step = make_step(module, opts, lambda_cat, lambda_cont)
    init_key, shuffle_key = jax.random.split(key)
    if state is None:
        state = gan.init_state(init_key, module.gan, optimizer=opts, dtype=data.dtype)
    elif not isinstance(state, gan.GANState):
        raise TypeError(f"state must be a GANState, got {type(state).__name__}")
    loop_options.setdefault("params_of", _generator_of)
    loop_options.setdefault("desc", "infogan")
    return train.fit_loop(shuffle_key, step, state, data, batch_size=batch_size,
                          n_epochs=n_epochs, **loop_options)


# ----------------------------------------------------------------------------- use
@functools.partial(jax.jit, static_argnames=("module",))
def _generate(module, params, batch_stats, noise, category, continuous):
    z = _assemble(noise, category, continuous, module.n_categories)
    return _gen(module, params, batch_stats, z, train=False)[0]


def generate(state: gan.GANState | gan.PlayerState, module: InfoGANModel, noise: Any,
             category: Any, continuous: Any) -> jax.Array:
    """``G([noise, one_hot(category), continuous])`` for chosen codes (latent traversals), in
    evaluation mode (BatchNorm's running averages).

    Args:
        state: a ``GANState`` or the generator's ``PlayerState``.
        module: the :class:`InfoGANModel`.
        noise: ``(n, noise_dim)``; category: ``(n,)`` ints; continuous: ``(n, n_continuous)``.

    Returns:
        ``(n, *sample_shape)`` examples.
    """
    module = _check_model(module)
    if not isinstance(state, (gan.GANState, gan.PlayerState)):
        raise TypeError(f"state must be a GANState or a PlayerState, got "
                        f"{type(state).__name__}")
    gen = state.gen if isinstance(state, gan.GANState) else state
    noise = as_float_array(noise, "noise", ndim=2, n_columns=module.noise_dim)
    category = as_int_array(category, "category", ndim=1)
    continuous = as_float_array(continuous, "continuous", ndim=2,
                                n_columns=module.n_continuous)
    return _generate(module, gen.params, gen.batch_stats, noise, category, continuous)


@functools.partial(jax.jit, static_argnames=("module",))
def _q_categories(module, params, X):
    return jnp.argmax(_disc(module, params, X)[1], axis=-1)


def predict_codes(state: gan.GANState, module: InfoGANModel, X: Any) -> jax.Array:
    """The most probable categorical code ``argmax Q(c_cat | x)`` of each row, ``(n,)``."""
    module = _check_model(module)
    if not isinstance(state, gan.GANState):
        raise TypeError(f"state must be a GANState, got {type(state).__name__}")
    return _q_categories(module, state.disc.params, _check_data(X, module))


def code_recovery(key: jax.Array, state: gan.GANState, module: InfoGANModel, n: int = 2000
                  ) -> float:
    """Fraction of ``n`` generated examples whose category ``Q`` recovers: draws
    :func:`sample_latent`, generates in evaluation mode (BatchNorm's running averages) and
    compares ``argmax Q(c_cat | G(z))`` with the category fed in (no matching needed: the
    codes are Q's own)."""
    key = check_key(key)
    module = _check_model(module)
    if not isinstance(state, gan.GANState):
        raise TypeError(f"state must be a GANState, got {type(state).__name__}")
    n = check_int(n, "n", min_value=1)
    latent = sample_latent(key, n, module)
    fake = _generate(module, state.gen.params, state.gen.batch_stats,
                     latent.z[:, :module.noise_dim], latent.category, latent.continuous)
    codes = _q_categories(module, state.disc.params, fake)
    return float(jnp.mean(codes == latent.category))
