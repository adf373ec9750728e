"""Bayesian recurrent layer: a GRU whose weights are sampled once per sequence batch.

Following Fortunato et al. (2017), the weights of the recurrent layer are drawn once per
forward pass (one minibatch of sequences, "once per sequence" rather than once per time step),
then the same sampled cell is scanned over time with :func:`jax.lax.scan`. Each weight tensor
has a diagonal Gaussian posterior and its KL is sown into the ``"kl"`` collection like the
layers of :mod:`espresso_jax.bnn.bbb`, so :func:`espresso_jax.bnn.bbb.apply` returns it.

References:
    Fortunato, Blundell, Vinyals (2017). Bayesian Recurrent Neural Networks. arXiv:1704.02798.
    Cho et al. (2014). Learning Phrase Representations using RNN Encoder-Decoder for
    Statistical Machine Translation (the GRU cell).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from espresso_jax.bnn.bbb import (
    GaussianPrior,
    Prior,
    broadcast_last_axis,
    check_layer_options,
    default_param_dtype,
    sample_weight,
    sow_kl,
)

__all__ = ["BayesGRU", "gru_step"]


def gru_step(weights: dict[str, jax.Array], h: jax.Array, x_proj: jax.Array) -> jax.Array:
    """One GRU update with already-sampled weights.

    Args:
        weights: ``recurrent_kernel`` ``(hidden, 3 hidden)`` (columns: update, reset, candidate).
        h: ``(batch, hidden)`` previous state.
        x_proj: ``(batch, 3 hidden)`` input projection ``x W + b`` of this time step.

    Returns:
        ``(batch, hidden)``: ``z = s(xz + h Uz)``, ``r = s(xr + h Ur)``,
        ``n = tanh(xn + r * (h Un))``, ``h' = (1 - z) n + z h``.
    """
    hidden = h.shape[-1]
    hu = jnp.matmul(h, weights["recurrent_kernel"])
    z = jax.nn.sigmoid(x_proj[:, :hidden] + hu[:, :hidden])
    r = jax.nn.sigmoid(x_proj[:, hidden:2 * hidden] + hu[:, hidden:2 * hidden])
    n = jnp.tanh(x_proj[:, 2 * hidden:] + r * hu[:, 2 * hidden:])
    return (1.0 - z) * n + z * h


class BayesGRU(nn.Module):
    """GRU layer with Bayesian weights, sampled once per call and shared by all time steps.

    Attributes:
        hidden: state width.
        prior: :class:`~espresso_jax.bnn.bbb.GaussianPrior` or ``ScaleMixturePrior``.
        sigma_init: initial posterior std of every weight.
        kernel_init, recurrent_init, bias_init: initialisers of the posterior means.
        kl_method: ``"auto"``, ``"closed"`` or ``"mc"``.
        return_sequences: return every state ``(batch, T, hidden)`` (default) or only the last
            ``(batch, hidden)``.
        param_dtype: parameter dtype (default: float64 under x64, else float32).

    Shapes: ``x: (batch, T, in_features)``; the initial state is zero. Needs
    ``rngs={"weights": key}``.
    """

    hidden: int
    prior: Prior = GaussianPrior(1.0)
    sigma_init: float = 0.01
    kernel_init: Callable[..., jax.Array] = nn.initializers.lecun_normal()
    recurrent_init: Callable[..., jax.Array] = nn.initializers.orthogonal()
    bias_init: Callable[..., jax.Array] = nn.initializers.zeros
    kl_method: str = "auto"
    return_sequences: bool = True
    param_dtype: Any = None

    def __post_init__(self) -> None:
        check_layer_options(self.prior, self.sigma_init, self.kl_method)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if jnp.ndim(x) != 3:
            raise ValueError(f"x must be 3-D (batch, T, in_features), got shape {jnp.shape(x)}")
        dtype = default_param_dtype(self.param_dtype)
        x = jnp.asarray(x).astype(dtype)
        h3 = 3 * self.hidden
        common = dict(sigma_init=self.sigma_init, prior=self.prior, kl_method=self.kl_method,
                      dtype=dtype)
        w_in, kl_in = sample_weight(self, "input_kernel", (x.shape[-1], h3),
                                    mu_init=self.kernel_init, **common)
        w_rec, kl_rec = sample_weight(self, "recurrent_kernel", (self.hidden, h3),
                                      mu_init=self.recurrent_init, **common)
        bias, kl_b = sample_weight(self, "bias", (h3,), mu_init=self.bias_init, **common)
        sow_kl(self, kl_in + kl_rec + kl_b)
        weights = {"recurrent_kernel": w_rec}
        x_proj = jnp.matmul(x, w_in) + broadcast_last_axis(bias, 3)  # (batch, T, 3 hidden)

        def body(h, xp):
            h = gru_step(weights, h, xp)
            return h, h

        h0 = jnp.zeros((x.shape[0], self.hidden), dtype)
        h_last, hs = jax.lax.scan(body, h0, jnp.swapaxes(x_proj, 0, 1))
        return jnp.swapaxes(hs, 0, 1) if self.return_sequences else h_last
