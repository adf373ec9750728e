"""Bayes by Backprop: Bayesian dense and convolutional layers with a diagonal Gaussian posterior.

Every weight has a Gaussian posterior ``q(w) = N(mu, sigma^2)`` with ``sigma = softplus(rho)``
and is sampled by reparameterisation, ``w = mu + sigma * eps``, from an explicit flax rng stream
called ``"weights"`` (callers pass ``rngs={"weights": key}``). A layer draws one weight sample
per call, shared by the whole minibatch (Blundell et al. 2015), or, with ``local_reparam=True``,
samples the pre-activations independently per example (Kingma et al. 2015).

Each layer computes ``KL(q || p)`` of its weights against its prior and *sows* it into the
``"kl"`` collection, so a loss cannot forget it: :func:`apply` runs a module and returns its
output together with the summed KL of every Bayesian layer inside it.

Priors are small NamedTuples of Python floats (hashable, so they are static layer attributes):
:class:`GaussianPrior` ``N(0, s^2)`` (closed-form KL) and :class:`ScaleMixturePrior`
``pi N(0, s1^2) + (1 - pi) N(0, s2^2)`` (Monte-Carlo KL ``log q(w) - log p(w)`` at the sampled
``w``, with log-sum-exp for the mixture).

Parameter names: a posterior tensor ``name`` is stored as ``name_mu`` and ``name_rho``
(``kernel_mu``, ``kernel_rho``, ``bias_mu``, ``bias_rho``); :mod:`espresso_jax.bnn.bbb_prune`
relies on that convention.

References:
    Blundell, Cornebise, Kavukcuoglu, Wierstra (2015). Weight Uncertainty in Neural Networks.
    ICML.
    Kingma, Salimans, Welling (2015). Variational Dropout and the Local Reparameterization
    Trick. NeurIPS.
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

from espresso_jax.bnn.bbb_sample import sample_gaussian_closed
from espresso_jax.prob.draws import KERNEL_INIT
from espresso_jax.prob.gaussian import gaussian_log_density
from espresso_jax.prob.info import normal_kl
from espresso_jax.prob.threefry_normal import standard_normal
from espresso_jax.validation import (
    check_choice,
    check_key,
    check_positive,
    check_probability,
    float_dtype,
)

__all__ = [
    "GaussianPrior",
    "ScaleMixturePrior",
    "Prior",
    "gaussian_prior",
    "scale_mixture_prior",
    "check_prior",
    "check_layer_options",
    "default_param_dtype",
    "broadcast_last_axis",
    "sow_kl",
    "log_prior",
    "softplus_inverse",
    "posterior_std",
    "gaussian_kl",
    "gaussian_kl_tree",
    "weight_kl",
    "sample_weight",
    "BayesDense",
    "BayesConv",
    "BayesMLP",
    "collected_kl",
    "init",
    "apply",
    "KL_METHODS",
    "PRUNED_RHO",
]

KL_METHODS = ("auto", "closed", "mc")
# rho of a pruned weight: softplus(-1e4) is exactly 0 in float32 and float64, so a pruned weight
# with mu = 0 is a deterministic zero, while log sigma (= rho below -20) stays finite.
PRUNED_RHO = -1.0e4


# ----------------------------------------------------------------------------- priors


class GaussianPrior(NamedTuple):
    """Zero-mean Gaussian prior ``N(0, scale^2)`` on every weight."""

    scale: float


class ScaleMixturePrior(NamedTuple):
    """Scale-mixture prior ``pi N(0, scale1^2) + (1 - pi) N(0, scale2^2)`` (Blundell et al.
    2015, eq. 7; their grid: ``pi`` in {1/4, 1/2, 3/4}, ``-log scale1`` in {0, 1, 2},
    ``-log scale2`` in {6, 7, 8})."""

    pi: float
    scale1: float
    scale2: float


Prior = GaussianPrior | ScaleMixturePrior


def gaussian_prior(scale: float) -> GaussianPrior:
    """A validated :class:`GaussianPrior` (``scale > 0``)."""
    return GaussianPrior(check_positive(scale, "scale"))


def scale_mixture_prior(pi: float, scale1: float, scale2: float) -> ScaleMixturePrior:
    """A validated :class:`ScaleMixturePrior` (``0 < pi < 1``, both scales ``> 0``)."""
    return ScaleMixturePrior(check_probability(pi, "pi", open_interval=True),
                             check_positive(scale1, "scale1"), check_positive(scale2, "scale2"))


def check_prior(prior: Any, name: str = "prior") -> Prior:
    """Check a prior built directly from its NamedTuple and return it."""
    if isinstance(prior, GaussianPrior):
        check_positive(prior.scale, f"{name}.scale")
    elif isinstance(prior, ScaleMixturePrior):
        check_probability(prior.pi, f"{name}.pi", open_interval=True)
        check_positive(prior.scale1, f"{name}.scale1")
        check_positive(prior.scale2, f"{name}.scale2")
    else:
        raise TypeError(f"{name} must be a GaussianPrior or ScaleMixturePrior, "
                        f"got {type(prior).__name__}")
    return prior


def _normal_logpdf(w: jax.Array, scale: float) -> jax.Array:
    return gaussian_log_density(jnp.square(w / scale), 2.0 * math.log(scale))


def log_prior(prior: Prior, w: jax.Array) -> jax.Array:
    """Elementwise prior log-density ``log p(w)``, same shape as ``w``.

    The scale mixture is evaluated as ``logaddexp(log pi + log N(w; 0, s1^2),
    log(1 - pi) + log N(w; 0, s2^2))``, stable for weights far in either component's tail.
    """
    if isinstance(prior, GaussianPrior):
        return _normal_logpdf(w, prior.scale)
    check_prior(prior)
    return jnp.logaddexp(math.log(prior.pi) + _normal_logpdf(w, prior.scale1),
                         math.log1p(-prior.pi) + _normal_logpdf(w, prior.scale2))


# ----------------------------------------------------------------------------- posterior and KL


def softplus_inverse(sigma: float) -> float:
    """``rho`` with ``softplus(rho) = sigma`` (host float), e.g. to initialise ``rho``."""
    sigma = check_positive(sigma, "sigma")
    return float(sigma + np.log(-np.expm1(-sigma)))


def posterior_std(rho: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(sigma, log sigma)`` with ``sigma = softplus(rho)``.

    ``log sigma`` is ``rho`` itself below ``rho = -20`` (where ``log softplus(rho) = rho`` to
    ``1e-9``), so it stays finite and differentiable when ``sigma`` underflows to 0 (a pruned
    weight has ``rho = PRUNED_RHO``).
    """
    sigma = jax.nn.softplus(rho)
    small = rho < -20.0
    log_sigma = jnp.where(small, rho, jnp.log(jnp.where(small, 1.0, sigma)))
    return sigma, log_sigma


def gaussian_kl(mu: jax.Array, rho: jax.Array, scale: float | jax.Array) -> jax.Array:
    """Elementwise closed-form ``KL(N(mu, sigma^2) || N(0, scale^2))``, ``sigma = softplus(rho)``:
    ``log(scale / sigma) + (sigma^2 + mu^2) / (2 scale^2) - 1/2``. ``scale`` may be a traced
    scalar (e.g. a vmapped hyper-parameter)."""
    sigma, log_sigma = posterior_std(rho)
    log_scale = math.log(scale) if isinstance(scale, (int, float)) else jnp.log(scale)
    return normal_kl(mu, jnp.square(sigma), 2.0 * log_sigma, scale * scale, 2.0 * log_scale)


def weight_kl(prior: Prior, mu: jax.Array, rho: jax.Array, eps: jax.Array,
              method: str = "auto") -> jax.Array:
    """KL contribution of one posterior tensor, summed over its entries (a scalar).

    Args:
        prior: the weight prior.
        mu, rho: posterior parameters, any shape.
        eps: the standard-normal noise of the weight sample ``w = mu + sigma * eps``.
        method: ``"closed"`` (Gaussian prior only), ``"mc"`` (one-sample
            ``log q(w) - log p(w)``) or ``"auto"`` (closed for a Gaussian prior, else MC).

    Returns:
        Scalar: the exact KL, or an unbiased one-sample estimate of it. The MC term writes
        ``log q(w) = -log sigma - eps^2/2 - log(2 pi)/2`` (an identity in ``(mu, rho)`` for fixed
        ``eps``, so its gradient is Blundell's ``df/dw dw/dtheta + df/dtheta``).
    """
    method = check_choice(method, "kl_method", KL_METHODS)
    if method == "closed" and not isinstance(prior, GaussianPrior):
        raise ValueError("kl_method='closed' needs a GaussianPrior; use 'mc' for a mixture")
    if method != "mc" and isinstance(prior, GaussianPrior):     # "closed", or "auto"
        return jnp.sum(gaussian_kl(mu, rho, prior.scale))
    sigma, log_sigma = posterior_std(rho)
    w = mu + sigma * eps
    log_q = gaussian_log_density(jnp.square(eps), 2.0 * log_sigma)
    return jnp.sum(log_q - log_prior(prior, w))


def gaussian_kl_tree(variables: Any, scale: float | jax.Array) -> jax.Array:
    """Closed-form KL against ``N(0, scale^2)`` summed over every ``name_mu``/``name_rho`` pair
    of a flax variables tree (``{"params": ...}`` or the params dict itself); for a prior
    scale that is a traced hyper-parameter, where a layer's static prior cannot be used."""
    from flax import traverse_util

    tree = variables.get("params", variables) if hasattr(variables, "get") else variables
    flat = traverse_util.flatten_dict(nn.unbox(tree))
    total = None
    for path, mu in flat.items():
        rho_path = path[:-1] + (path[-1][:-3] + "_rho",) if path[-1].endswith("_mu") else None
        if rho_path is not None and rho_path in flat:
            term = jnp.sum(gaussian_kl(mu, flat[rho_path], scale))
            total = term if total is None else total + term
    if total is None:
        raise ValueError("variables has no posterior (name_mu, name_rho) pairs")
    return total


def check_layer_options(prior: Any, sigma_init: Any, kl_method: Any) -> None:
    """Validate a Bayesian layer's ``prior``, ``sigma_init`` and ``kl_method`` (shared by the
    layers here and :mod:`espresso_jax.bnn.bbb_recurrent`); raises ``ValueError``/``TypeError``
    naming the field."""
    check_prior(prior)
    check_positive(sigma_init, "sigma_init")
    check_choice(kl_method, "kl_method", KL_METHODS)
    if kl_method == "closed" and not isinstance(prior, GaussianPrior):
        raise ValueError("kl_method='closed' needs a GaussianPrior; use 'mc' for a mixture")


def default_param_dtype(param_dtype: Any) -> Any:
    """``param_dtype`` or, when ``None``, the default float dtype (float64 under x64)."""
    return float_dtype() if param_dtype is None else param_dtype


def _posterior_params(module: nn.Module, name: str, shape: Sequence[int],
                      mu_init: Callable[..., jax.Array], sigma_init: float, dtype: Any
                      ) -> tuple[jax.Array, jax.Array]:
    mu = module.param(f"{name}_mu", mu_init, tuple(shape), dtype)
    rho = module.param(f"{name}_rho", nn.initializers.constant(softplus_inverse(sigma_init)),
                       tuple(shape), dtype)
    return mu, rho


def sample_weight(module: nn.Module, name: str, shape: Sequence[int], *,
                  mu_init: Callable[..., jax.Array], sigma_init: float, prior: Prior,
                  kl_method: str = "auto", dtype: Any = None) -> tuple[jax.Array, jax.Array]:
    """Declare ``name_mu``/``name_rho`` in ``module`` and draw one weight sample.

    For use inside a flax ``@nn.compact`` method; the noise comes from the ``"weights"`` rng.

    Returns:
        ``(w, kl)``: the sample ``w = mu + softplus(rho) * eps`` of shape ``shape`` and the
        scalar KL of this tensor (see :func:`weight_kl`).
    """
    dtype = default_param_dtype(dtype)
    mu, rho = _posterior_params(module, name, shape, mu_init, sigma_init, dtype)
    # materialised: the sample, its gradient and an MC KL all read the noise
    eps = standard_normal(module.make_rng("weights"), mu.shape, dtype, materialize=True,
                          exact=False)
    if isinstance(prior, GaussianPrior) and check_choice(kl_method, "kl_method",
                                                         KL_METHODS) != "mc":
        return sample_gaussian_closed(mu, rho, eps, float(prior.scale))
    sigma, _ = posterior_std(rho)
    return mu + sigma * eps, weight_kl(prior, mu, rho, eps, kl_method)


def broadcast_last_axis(v: jax.Array, ndim: int) -> jax.Array:
    """Reshape a ``(features,)`` vector to broadcast explicitly against an ``ndim`` array."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def sow_kl(module: nn.Module, kl: jax.Array) -> None:
    """Add a layer's ``()`` KL term to the ``"kl"`` collection, summed over the layers."""
    module.sow("kl", "kl", kl, reduce_fn=lambda a, b: a + b, init_fn=lambda: 0.0)


# ----------------------------------------------------------------------------- layers


class _BayesLayer(nn.Module):
    """Shared attributes and the local-reparameterisation path of dense and conv layers."""

    features: int
    prior: Prior = GaussianPrior(1.0)
    use_bias: bool = True
    sigma_init: float = 0.01
    kernel_init: Callable[..., jax.Array] = KERNEL_INIT   # LeCun normal, drawn as a matrix
    bias_init: Callable[..., jax.Array] = nn.initializers.zeros
    local_reparam: bool = False
    kl_method: str = "auto"
    param_dtype: Any = None

    def __post_init__(self) -> None:
        check_layer_options(self.prior, self.sigma_init, self.kl_method)
        super().__post_init__()

    def _linear(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        raise NotImplementedError

    def _forward(self, x: jax.Array, kernel_shape: Sequence[int]) -> jax.Array:
        dtype = default_param_dtype(self.param_dtype)
        x = jnp.asarray(x).astype(dtype)
        args = dict(sigma_init=self.sigma_init, dtype=dtype)
        if not self.local_reparam:
            kernel, kl = sample_weight(self, "kernel", kernel_shape, mu_init=self.kernel_init,
                                       prior=self.prior, kl_method=self.kl_method, **args)
            y = self._linear(x, kernel)
            if self.use_bias:
                bias, kl_b = sample_weight(self, "bias", (self.features,), mu_init=self.bias_init,
                                           prior=self.prior, kl_method=self.kl_method, **args)
                y, kl = y + broadcast_last_axis(bias, y.ndim), kl + kl_b
            sow_kl(self, kl)
            return y
        # Local reparameterisation: pre-activations are Gaussian given x, with mean x * mu and
        # variance x^2 * sigma^2 (one independent draw per example and output unit).
        names = ["kernel"] + (["bias"] if self.use_bias else [])
        shapes = {"kernel": tuple(kernel_shape), "bias": (self.features,)}
        inits = {"kernel": self.kernel_init, "bias": self.bias_init}
        post = {n: _posterior_params(self, n, shapes[n], inits[n], self.sigma_init, dtype)
                for n in names}
        mu_k, rho_k = post["kernel"]
        mean = self._linear(x, mu_k)
        var = self._linear(jnp.square(x), jnp.square(posterior_std(rho_k)[0]))
        if self.use_bias:
            mu_b, rho_b = post["bias"]
            mean = mean + broadcast_last_axis(mu_b, mean.ndim)
            var = var + broadcast_last_axis(jnp.square(posterior_std(rho_b)[0]), var.ndim)
        eps = standard_normal(self.make_rng("weights"), mean.shape, dtype, materialize=True)
        y = mean + jnp.sqrt(var + jnp.finfo(dtype).tiny) * eps
        # The KL still enters: closed form, or MC from one weight sample drawn for it alone.
        kl = jnp.zeros((), dtype)
        for n in names:
            mu, rho = post[n]
            noise = standard_normal(self.make_rng("weights"), mu.shape, dtype)
            kl = kl + weight_kl(self.prior, mu, rho, noise, self.kl_method)
        sow_kl(self, kl)
        return y


class BayesDense(_BayesLayer):
    """Dense layer with a diagonal Gaussian posterior over kernel and bias.

    Attributes:
        features: output width.
        prior: :class:`GaussianPrior` or :class:`ScaleMixturePrior`.
        use_bias: whether to add a (Bayesian) bias.
        sigma_init: initial posterior std of every weight (``rho`` starts at
            ``softplus_inverse(sigma_init)``).
        kernel_init, bias_init: initialisers of the posterior means.
        local_reparam: sample pre-activations per example instead of one weight sample per call.
        kl_method: ``"auto"``, ``"closed"`` or ``"mc"`` (see :func:`weight_kl`).
        param_dtype: parameter dtype (default: float64 under x64, else float32); the input is
            cast to it.

    Shapes: ``x: (..., in_features) -> (..., features)``. Needs ``rngs={"weights": key}``.
    """

    def _linear(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        return jnp.matmul(x, kernel)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return self._forward(x, (jnp.shape(x)[-1], self.features))


_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


class BayesConv(_BayesLayer):
    """Convolution with a diagonal Gaussian posterior over kernel and bias (channels last).

    Attributes (besides those of :class:`BayesDense`):
        kernel_size: spatial window, e.g. ``(3, 3)`` (1 to 3 spatial dimensions).
        strides: stride per spatial dimension (an int applies to all).
        padding: ``"SAME"``, ``"VALID"`` or explicit ``[(low, high), ...]``.

    Shapes: ``x: (batch, *spatial, in_channels) -> (batch, *spatial_out, features)``; the kernel
    is ``(*kernel_size, in_channels, features)``. With ``local_reparam`` the pre-activations
    are sampled independently per example, position and channel (mean ``conv(x, mu)``, variance
    ``conv(x^2, sigma^2)``). Needs ``rngs={"weights": key}``.
    """

    kernel_size: Sequence[int] = (3, 3)
    strides: int | Sequence[int] = 1
    padding: str | Sequence[tuple[int, int]] = "SAME"

    def _linear(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        nd = len(self.kernel_size)
        strides = ((self.strides,) * nd if isinstance(self.strides, int)
                   else tuple(self.strides))
        s = _SPATIAL[nd]
        numbers = jax.lax.conv_dimension_numbers(x.shape, kernel.shape,
                                                 (f"N{s}C", f"{s}IO", f"N{s}C"))
        padding = self.padding if isinstance(self.padding, str) else tuple(self.padding)
        return jax.lax.conv_general_dilated(x, kernel, strides, padding,
                                            dimension_numbers=numbers)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        nd = len(self.kernel_size)
        if nd not in _SPATIAL:
            raise ValueError(f"kernel_size must have 1 to 3 entries, got {self.kernel_size}")
        if jnp.ndim(x) != nd + 2:
            raise ValueError(f"x must be {nd + 2}-D (batch, *spatial, channels) for a "
                             f"{nd}-D kernel, got shape {jnp.shape(x)}")
        return self._forward(x, (*self.kernel_size, jnp.shape(x)[-1], self.features))


class BayesMLP(nn.Module):
    """Multi-layer perceptron of :class:`BayesDense` layers (the Bayesian twin of
    :class:`espresso_jax.nn.modules.MLP`).

    Attributes:
        features: output width of each layer, e.g. ``(400, 400, 10)``.
        activation: non-linearity between layers.
        prior, sigma_init, local_reparam, kl_method: passed to every layer.

    Shapes: ``x: (..., in_features) -> (..., features[-1])``.
    """

    features: Sequence[int]
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    prior: Prior = GaussianPrior(1.0)
    sigma_init: float = 0.01
    local_reparam: bool = False
    kl_method: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, width in enumerate(self.features):
            x = BayesDense(width, prior=self.prior, sigma_init=self.sigma_init,
                           local_reparam=self.local_reparam, kl_method=self.kl_method,
                           name=f"dense_{i}")(x)
            if i < len(self.features) - 1:
                x = self.activation(x)
        return x


# ----------------------------------------------------------------------------- functional use


def collected_kl(variables: Any) -> jax.Array:
    """Sum of the KL terms sown into the ``"kl"`` collection (0 when there are none)."""
    leaves = jax.tree.leaves(variables.get("kl", {}) if hasattr(variables, "get") else variables)
    if not leaves:
        return jnp.zeros((), float_dtype())
    return functools.reduce(jnp.add, leaves)


def init(key: jax.Array, module: nn.Module, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``{"params": ...}`` of a module holding Bayesian layers (the ``"kl"`` collection that
    ``module.init`` also returns is dropped, so it cannot accumulate across calls).

    Jitted with the module static; ``args``/``kwargs`` are traced, so they must be arrays (or
    pytrees of arrays): put static options in the module's attributes.
    """
    key = check_key(key)
    return _init(module, key, args, kwargs)


@functools.partial(jax.jit, static_argnums=0)
def _init(module, key, args, kwargs):
    k_params, k_weights = jax.random.split(key)
    variables = module.init({"params": k_params, "weights": k_weights}, *args, **kwargs)
    return {name: value for name, value in variables.items() if name != "kl"}


def apply(key: jax.Array, module: nn.Module, variables: Any, *args: Any,
          rngs: dict[str, jax.Array] | None = None, **kwargs: Any) -> tuple[Any, jax.Array]:
    """Run ``module`` with one weight sample drawn from ``key``; returns ``(output, kl)``.

    ``key`` comes first, as in every function of the library that draws randomness;
    ``args``/``kwargs`` are the module's call arguments.

    ``kl`` is the sum over every Bayesian layer of its KL (closed form or one-sample MC).
    A layer called twice in one forward pass (weight sharing) contributes its KL twice.
    Extra rng streams (e.g. ``"dropout"``) go in ``rngs``.
    """
    variables = {name: value for name, value in variables.items() if name != "kl"}
    out, state = module.apply(variables, *args, rngs={**(rngs or {}), "weights": key},
                              mutable=["kl"], **kwargs)
    return out, collected_kl(state)
