"""VQ-VAE (van den Oord et al. 2017): an MLP auto-encoder with a discrete bottleneck, trained
with the SGD engine :mod:`espresso_jax.train`.

The encoder maps a flat input ``x: (D_x,)`` to ``L`` vectors ``z_e: (L, D)``; each is replaced
by its nearest code of a learnt codebook ``e: (K, D)`` and the decoder reconstructs ``x`` from
the quantised ``z_q: (L, D)``. The loss of one example (Eq. 3 of the paper) is

    ‖x − x̂‖² + Σ_l ‖sg[z_e,l] − e_k(l)‖² + β Σ_l ‖z_e,l − sg[e_k(l)]‖²

(squared reconstruction error summed over pixels, ``β = 0.25`` as in the paper), averaged
over the minibatch; gradients pass the bottleneck by the straight-through estimator. With
``ema_decay`` given, the codebook term is dropped and the codes are exponential moving
averages of the encoder outputs assigned to them (Appendix A.1), updated after every step;
see :mod:`espresso_jax.nn.vqvae_quantize` for the quantisation maths.

References:
    A. van den Oord, O. Vinyals and K. Kavukcuoglu, "Neural discrete representation
    learning", NeurIPS 2017.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from espresso_jax import train
from espresso_jax.netcheck import check_optimizer
from espresso_jax.nn import vqvae_quantize as vq
from espresso_jax.nn.modules import MLP, check_params_on_rows, init_on_rows
from espresso_jax.validation import (
    as_float_array,
    check_int,
    check_key,
    check_positive,
    float_dtype,
)

__all__ = [
    "VQVAE",
    "VQState",
    "check_module",
    "init",
    "codebook",
    "make_loss",
    "make_ema_step",
    "init_ema_state",
    "fit",
    "reconstruct",
    "encode_indices",
    "evaluate",
]

PyTree = Any


class VQVAE(nn.Module):
    """MLP VQ-VAE on flat inputs.

    Attributes:
        data_dim: input size ``D_x`` (784 for MNIST).
        hidden: encoder hidden widths; the decoder mirrors them.
        n_latents: ``L``, discrete latent variables per example.
        embedding_dim: ``D``, width of each code vector.
        codebook_size: ``K``, number of codes.
        activation: hidden non-linearity.

    Shapes: ``encode: (..., D_x) -> (..., L, D)``, ``decode: (..., L, D) -> (..., D_x)``,
    ``__call__: (..., D_x) -> (x̂ (..., D_x), z_e (..., L, D), z_q (..., L, D),
    indices (..., L))``. The codebook is the parameter ``variables["params"]["codebook"]:
    (K, D)`` (see :func:`codebook`).
    """

    data_dim: int = 784
    hidden: Sequence[int] = (512, 256)
    n_latents: int = 8
    embedding_dim: int = 16
    codebook_size: int = 64
    activation: Callable[[jax.Array], jax.Array] = nn.relu

    def setup(self) -> None:
        self.encoder = MLP(tuple(self.hidden) + (self.n_latents * self.embedding_dim,),
                           activation=self.activation)
        self.decoder = MLP(tuple(reversed(tuple(self.hidden))) + (self.data_dim,),
                           activation=self.activation)
        self.codebook = self.param("codebook", nn.initializers.normal(1.0),
                                   (self.codebook_size, self.embedding_dim))

    def encode(self, x: jax.Array) -> jax.Array:
        z = self.encoder(x)
        return z.reshape(z.shape[:-1] + (self.n_latents, self.embedding_dim))

    def decode(self, z_q: jax.Array) -> jax.Array:
        return self.decoder(z_q.reshape(z_q.shape[:-2] + (-1,)))

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        z_e = self.encode(x)
        z_q, idx = vq.quantize(z_e, self.codebook)
        return self.decode(z_q), z_e, z_q, idx


def check_module(module: Any) -> VQVAE:
    """Validate a :class:`VQVAE` configuration on the host (errors name the field)."""
    if not isinstance(module, VQVAE):
        raise TypeError(f"module must be a VQVAE, got {type(module).__name__}")
    for field in ("data_dim", "n_latents", "embedding_dim", "codebook_size"):
        check_int(getattr(module, field), f"module.{field}", min_value=1)
    for width in module.hidden:
        check_int(width, "module.hidden", min_value=1)
    return module


def _check_beta(beta: Any) -> float:
    return check_positive(beta, "beta", allow_zero=True)


def _check_ema(ema_decay: Any, epsilon: Any) -> tuple[float, float]:
    decay = check_positive(ema_decay, "ema_decay", allow_zero=True)
    if decay >= 1.0:
        raise ValueError(f"ema_decay must lie in [0, 1), got {decay}")
    return decay, check_positive(epsilon, "epsilon", allow_zero=True)


def init(key: jax.Array, module: VQVAE) -> PyTree:
    """Initial variables of ``module`` (``{"params": ...}``) in the working float dtype."""
    key = check_key(key)
    module = check_module(module)
    params = init_on_rows(key, module)
    return jax.tree.map(lambda a: a.astype(float_dtype()), params)


def codebook(params: PyTree) -> jax.Array:
    """The codebook ``(K, D)`` of a VQ-VAE's variables."""
    return params["params"]["codebook"]


def _with_codebook(params: PyTree, new: jax.Array) -> PyTree:
    inner = dict(params["params"])
    inner["codebook"] = new.astype(inner["codebook"].dtype)
    return {**params, "params": inner}


@functools.lru_cache(maxsize=64)
def make_loss(module: VQVAE, beta: float = 0.25, ema: bool = False
              ) -> Callable[[PyTree, jax.Array, jax.Array], tuple[jax.Array, dict]]:
    """The VQ-VAE loss ``(params, batch (M, D_x), key) -> (loss, aux)`` for
    :func:`espresso_jax.train.fit` with ``has_aux=True``.

    ``loss`` is the minibatch mean of reconstruction + codebook term + β · commitment (the
    codebook term is left out with ``ema=True``: the codes then get no gradient). ``aux``
    holds the scalars ``reconstruction``, ``commitment``, ``perplexity`` and, with ``ema``,
    the arrays ``z_e (M, L, D)`` and ``indices (M, L)`` that :func:`make_ema_step` consumes.
    The key is unused. The same arguments return the same function (no recompilation).
    """
    K = module.codebook_size

    def loss(params: PyTree, batch: jax.Array, key: jax.Array) -> tuple[jax.Array, dict]:
        del key
        x_hat, z_e, _, idx = cast(tuple[jax.Array, ...], module.apply(params, batch))
        recon = jnp.sum((batch - x_hat) ** 2, axis=-1)
        codebook_term, commitment = vq.vq_terms(z_e, codebook(params), idx)
        value = recon + beta * jnp.sum(commitment, axis=-1)
        if not ema:
            value = value + jnp.sum(codebook_term, axis=-1)
        aux = {"reconstruction": jnp.mean(recon),
               "commitment": jnp.mean(jnp.sum(commitment, axis=-1)),
               "perplexity": vq.perplexity(idx, K)}
        if ema:
            aux["z_e"], aux["indices"] = z_e, idx
        return jnp.mean(value), aux

    return loss


class VQState(NamedTuple):
    """Training state of the EMA variant.

    Attributes:
        train: the :class:`espresso_jax.train.TrainState` of the network parameters.
        ema: the codebook's :class:`~espresso_jax.nn.vqvae_quantize.EMAState`.
    """

    train: train.TrainState
    ema: vq.EMAState


def init_ema_state(key: jax.Array, params: PyTree, optimizer: optax.GradientTransformation
                   ) -> VQState:
    """A fresh :class:`VQState` for :func:`make_ema_step` (EMA statistics equal to the
    current codebook with unit counts)."""
    return VQState(train.init_state(check_key(key), params, check_optimizer(optimizer)),
                   vq.init_ema(codebook(params)))


def make_ema_step(module: VQVAE, optimizer: optax.GradientTransformation, beta: float,
                  decay: float, epsilon: float
                  ) -> Callable[[VQState, jax.Array], tuple[VQState, dict[str, jax.Array]]]:
    """The EMA training step ``(VQState, batch) -> (VQState, metrics)``.

    A gradient step of :func:`espresso_jax.train.make_step` on the loss without the codebook
    term, then the codebook becomes the EMA update
    (:func:`~espresso_jax.nn.vqvae_quantize.ema_update`) of the batch's encoder outputs
    under the parameters the step started from.
    """
    module = check_module(module)
    beta = _check_beta(beta)
    decay, epsilon = _check_ema(decay, epsilon)
    return _make_ema_step(module, check_optimizer(optimizer), beta, decay, epsilon)


@functools.lru_cache(maxsize=64)
def _make_ema_step(module, optimizer, beta, decay, epsilon):
    inner = train.make_step(make_loss(module, beta, True), optimizer, has_aux=True)
    D = module.embedding_dim

    def step(state: VQState, batch: jax.Array) -> tuple[VQState, dict[str, jax.Array]]:
        ts, metrics = inner(state.train, batch)
        metrics = dict(metrics)
        z_e, idx = metrics.pop("z_e"), metrics.pop("indices")
        ema, new = vq.ema_update(state.ema, z_e.reshape(-1, D), idx.reshape(-1), decay,
                                 epsilon)
        return VQState(ts._replace(params=_with_codebook(ts.params, new)), ema), metrics

    return step


def _params_of(state: VQState) -> PyTree:
    return state.train.params


def fit(key: jax.Array, X: ArrayLike, *, module: VQVAE, optimizer: optax.GradientTransformation,
        batch_size: int, n_epochs: int, beta: float = 0.25, ema_decay: float | None = None,
        epsilon: float = 1e-5, params: PyTree = None, **loop_options: Any) -> train.FitResult:
    """Train a VQ-VAE on ``X: (n_samples, data_dim)``.

    Args:
        key: PRNG key (initialisation when ``params`` is None, shuffling).
        X: ``(n_samples, data_dim)`` training data.
        module: the :class:`VQVAE`.
        optimizer: optax optimiser of the network (and, without EMA, of the codebook).
        batch_size: minibatch size.
        n_epochs: epochs.
        beta: commitment weight ``β >= 0`` (0.25 in the paper).
        ema_decay: ``None`` learns the codebook by its loss term; ``γ`` in ``[0, 1)`` uses EMA
            updates with decay ``γ`` (0.99 in the paper).
        epsilon: Laplace smoothing ``ε >= 0`` of the EMA counts.
        params: initial variables (default: :func:`init`).
        **loop_options: forwarded to :func:`espresso_jax.train.fit_loop`.

    Returns:
        :class:`espresso_jax.train.FitResult`; ``history`` holds ``loss``,
        ``reconstruction``, ``commitment`` and ``perplexity`` per epoch; with EMA the state is
        a :class:`VQState`.
    """
    key = check_key(key)
    module = check_module(module)
    beta = _check_beta(beta)
    if ema_decay is not None:
        ema_decay, epsilon = _check_ema(ema_decay, epsilon)
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, data_dim)",
                       n_columns=module.data_dim)
    optimizer = check_optimizer(optimizer)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    n_epochs = check_int(n_epochs, "n_epochs", min_value=1)
    if batch_size > X.shape[0]:
        raise ValueError(f"batch_size ({batch_size}) is larger than the number of rows of X "
                         f"({X.shape[0]})")
    init_key, fit_key = jax.random.split(key)
    params = init(init_key, module) if params is None else check_params_on_rows(module, params)
    loop_options.setdefault("desc", "vqvae")
    if ema_decay is None:
        return train.fit(fit_key, make_loss(module, beta, False), params, X,
                         optimizer=optimizer, batch_size=batch_size, n_epochs=n_epochs,
                         has_aux=True, **loop_options)
    shuffle_key, step_key = jax.random.split(fit_key)
    state = init_ema_state(step_key, params, optimizer)
    step = _make_ema_step(module, optimizer, beta, ema_decay, epsilon)
    loop_options.setdefault("params_of", _params_of)
    return train.fit_loop(shuffle_key, step, state, X, batch_size=batch_size,
                          n_epochs=n_epochs, **loop_options)


@functools.partial(jax.jit, static_argnames=("module",))
def _forward(module, params, X):
    return module.apply(params, X)


def _checked(module: Any, params: PyTree, X: ArrayLike) -> tuple[VQVAE, PyTree, jax.Array]:
    module = check_module(module)
    params = check_params_on_rows(module, params)
    X = as_float_array(X, "X", ndim=2, shape_hint="(n_samples, data_dim)",
                       n_columns=module.data_dim)
    return module, params, X


def reconstruct(module: VQVAE, params: PyTree, X: ArrayLike) -> jax.Array:
    """Reconstructions ``decode(quantize(encode(X)))``, ``(n, data_dim)``."""
    module, params, X = _checked(module, params, X)
    return _forward(module, params, X)[0]


def encode_indices(module: VQVAE, params: PyTree, X: ArrayLike) -> jax.Array:
    """The discrete codes of ``X``: ``(n, n_latents)`` int32 indices into the codebook."""
    module, params, X = _checked(module, params, X)
    return _forward(module, params, X)[3]


def evaluate(module: VQVAE, params: PyTree, X: ArrayLike) -> dict[str, Any]:
    """Reconstruction error and codebook statistics on ``X``.

    Returns:
        ``reconstruction`` (mean ``‖x − x̂‖²``), ``mse`` (per pixel), ``perplexity``,
        ``codes_used`` (codes assigned at least once) and ``usage`` ``(K,)`` fractions.
    """
    module, params, X = _checked(module, params, X)
    x_hat, _, _, idx = _forward(module, params, X)
    recon = jnp.sum((X - x_hat) ** 2, axis=-1)
    usage = vq.codebook_usage(idx, module.codebook_size)
    return {"reconstruction": float(jnp.mean(recon)),
            "mse": float(jnp.mean(recon) / module.data_dim),
            "perplexity": float(vq.perplexity(idx, module.codebook_size)),
            "codes_used": int(jnp.sum(usage > 0)), "usage": usage}
