"""Dense MLPs as pure functions of a parameter pytree (what the Laplace curvatures take).

``params`` is a tuple of layers ``(W (d_in, d_out), b (d_out,))``; layer ``l`` maps its input
``a_l`` to the pre-activation ``s_l = a_l W_l + b_l`` and every layer but the last applies the
activation. Flattened with :func:`jax.flatten_util.ravel_pytree`, a layer's parameters are
``[W; b]`` in row-major order (input unit major, output unit minor), the order in which the
Kronecker factors of :mod:`espresso_jax.bnn.laplace.curvature` are written.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from espresso_jax.validation import check_choice, float_dtype

__all__ = ["ACTIVATIONS", "Layer", "init_mlp", "mlp_apply", "mlp_trace", "check_mlp",
           "split_last_layer"]

#: One dense layer ``(W (d_in, d_out), b (d_out,))``.
Layer = tuple[jax.Array, jax.Array]

#: Hidden-layer activations by name.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "gelu": jax.nn.gelu,
    "identity": lambda x: x,
}


def check_mlp(params, activation: str = "tanh") -> tuple[Layer, ...]:
    """Validate an MLP pytree and the activation's name (host side, before any ``jit``).

    Args:
        params: sequence of layers ``(W (d_in, d_out), b (d_out,))``.
        activation: a key of :data:`ACTIVATIONS`.

    Returns:
        ``params`` as a tuple of tuples.

    Raises:
        ValueError: a layer that is not a ``(W, b)`` pair of matching shapes, or an unknown
            activation.
    """
    check_choice(activation, "activation", tuple(ACTIVATIONS))
    if not isinstance(params, (tuple, list)) or len(params) == 0:
        raise ValueError("params must be a non-empty sequence of (W, b) layers")
    out = []
    d_prev = None
    for i, layer in enumerate(params):
        if not isinstance(layer, (tuple, list)) or len(layer) != 2:
            raise ValueError(f"params[{i}] must be a (W, b) pair")
        W, b = layer
        if jnp.ndim(W) != 2 or jnp.ndim(b) != 1 or jnp.shape(W)[1] != jnp.shape(b)[0]:
            raise ValueError(f"params[{i}] must be (W (d_in, d_out), b (d_out,)), got shapes "
                             f"{jnp.shape(W)} and {jnp.shape(b)}")
        if d_prev is not None and jnp.shape(W)[0] != d_prev:
            raise ValueError(f"params[{i}] takes {jnp.shape(W)[0]} inputs but the layer "
                             f"before gives {d_prev}")
        d_prev = jnp.shape(W)[1]
        out.append((W, b))
    return tuple(out)


def init_mlp(key: jax.Array, sizes: tuple[int, ...]) -> tuple[Layer, ...]:
    """Glorot-uniform weights, zero biases.

    Args:
        key: PRNG key.
        sizes: ``(d_in, h_1, ..., d_out)`` widths.

    Returns:
        ``len(sizes) - 1`` layers ``(W (sizes[l], sizes[l+1]), b (sizes[l+1],))``.
    """
    dtype = float_dtype()
    keys = jax.random.split(key, len(sizes) - 1)
    layers = []
    for k, d_in, d_out in zip(keys, sizes[:-1], sizes[1:], strict=True):
        lim = jnp.sqrt(6.0 / (d_in + d_out))
        W = jax.random.uniform(k, (d_in, d_out), dtype, -lim, lim)
        layers.append((W, jnp.zeros((d_out,), dtype)))
    return tuple(layers)


def mlp_trace(params, X: jax.Array, activation: str = "tanh"
              ) -> tuple[list[jax.Array], list[jax.Array]]:
    """Each layer's input and pre-activation.

    Args:
        params: layers ``(W, b)``.
        X: ``(n, d_in)`` inputs.
        activation: name in :data:`ACTIVATIONS`.

    Returns:
        ``inputs`` (``a_l (n, d_in_l)``) and ``pre`` (``s_l (n, d_out_l)``), one per layer; the
        network's output is ``pre[-1]``.
    """
    act = ACTIVATIONS[activation]
    a = X
    inputs, pre = [], []
    for i, (W, b) in enumerate(params):
        s = a @ W + b[None, :]
        inputs.append(a)
        pre.append(s)
        if i + 1 < len(params):
            a = act(s)
    return inputs, pre


def mlp_apply(params, X: jax.Array, activation: str = "tanh") -> jax.Array:
    """Network output ``(n, d_out)`` at inputs ``X (n, d_in)``."""
    return mlp_trace(params, X, activation)[1][-1]


def split_last_layer(params, X: jax.Array, activation: str = "tanh"
                     ) -> tuple[jax.Array, tuple[Layer]]:
    """The frozen features of the last layer and the last layer itself (last-layer Laplace:
    the network is then the one-layer MLP ``features @ W + b``).

    Returns:
        ``features (n, d_hidden)`` and ``(params[-1],)``.
    """
    return mlp_trace(params, X, activation)[0][-1], (params[-1],)
