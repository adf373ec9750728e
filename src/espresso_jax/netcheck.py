"""Host-side checks that a network, its parameters, its data and its optimiser fit together.

Every neural function (the fits of :mod:`espresso_jax.nn` and :mod:`espresso_jax.bnn`, their
predictives and the engine :mod:`espresso_jax.train`) runs these before anything compiles, so
that a mistake comes back as a one-line ``TypeError``/``ValueError`` naming the argument the
user passed (``X``, ``y``, ``params``, ``optimizer``) with both sizes, not as a flax
``ScopeParamShapeError``, a JAX broadcasting error or a diverged training run.

Shapes come from ``jax.eval_shape`` of the module's ``init`` and ``apply``: abstract tracing,
no compilation and no arithmetic. The module sits beside :mod:`espresso_jax.validation` (below
the engine and the model packages), so the engine and every model family share it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import optax

from espresso_jax.validation import check_forward

__all__ = [
    "check_optimizer",
    "check_variables",
    "param_mismatches",
    "check_params",
    "check_network",
    "check_outputs",
]

PyTree = Any


def check_optimizer(optimizer: Any, name: str = "optimizer") -> optax.GradientTransformation:
    """Check ``optimizer`` is an optax ``GradientTransformation`` (e.g. ``optax.adam(1e-3)``).

    Raises:
        TypeError: naming ``name``; a string such as ``"adam"`` or an optimiser factory
            (``optax.adam`` itself, not called) gets a hint.
    """
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    if isinstance(optimizer, str):
        got = (f"the string {optimizer!r}; pass an optimiser object, e.g. "
               f"optax.{optimizer.lower()}(1e-3)" if hasattr(optax, optimizer.lower())
               else f"the string {optimizer!r}")
    elif callable(optimizer) and not hasattr(optimizer, "update"):
        fn = getattr(optimizer, "__name__", "it")
        if str(getattr(optimizer, "__module__", "")).startswith("optax"):
            fn = f"optax.{fn}"
        got = f"the function {fn}; call it, e.g. {fn}(1e-3)"
    else:
        got = type(optimizer).__name__
    raise TypeError(f"{name} must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
                    f"got {got}")


def check_variables(params: Any, name: str = "params") -> Mapping[str, Any]:
    """Check ``params`` looks like flax variables: a dict (``{"params": ...}`` from
    ``module.init``) whose leaves are real arrays, at least one of them.

    Raises:
        TypeError: not a dict, or a leaf that is not a real-valued array.
        ValueError: no arrays at all.
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"{name} must be the network's variables, a dict such as "
                        f"{{'params': ...}} from module.init, got {type(params).__name__}")
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    if not leaves:
        raise ValueError(f"{name} holds no arrays (an empty dict); pass the variables of "
                         "module.init or of a fit")
    for path, leaf in leaves:
        dtype = getattr(leaf, "dtype", None)
        if not hasattr(leaf, "shape") or dtype is None or np.dtype(dtype).kind not in "biuf":
            raise TypeError(f"{name}{jax.tree_util.keystr(path)} must be a real array, got "
                            f"{type(leaf).__name__}")
    return params


def _shapes(tree: PyTree) -> dict[str, tuple[int, ...]]:
    return {jax.tree_util.keystr(path): tuple(np.shape(leaf))
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def param_mismatches(params: PyTree, expected: PyTree
                     ) -> tuple[list[str], list[str], list[tuple[str, tuple, tuple]]]:
    """Compare a parameter tree with the shapes a network needs (e.g. ``jax.eval_shape`` of
    ``module.init``).

    Returns:
        ``(missing, extra, wrong)``: paths (``"['params']['dense_0']['kernel']"``) the network
        needs that ``params`` lacks, paths of ``params`` the network does not have, and
        ``(path, shape in params, shape needed)`` for arrays of the wrong shape. All empty
        when they fit.
    """
    got, want = _shapes(params), _shapes(expected)
    missing = [p for p in want if p not in got]
    extra = [p for p in got if p not in want]
    wrong = [(p, got[p], want[p]) for p in want if p in got and got[p] != want[p]]
    return missing, extra, wrong


def _mismatch_text(name: str, missing: list[str], extra: list[str],
                   wrong: list[tuple[str, tuple, tuple]]) -> str:
    if wrong:
        path, got, want = wrong[0]
        more = f" ({len(wrong)} arrays differ)" if len(wrong) > 1 else ""
        return (f"{name} do not fit the network: {name}{path} has shape {got} where the "
                f"network needs {want}{more}; were they made for another network?")
    if missing:
        return (f"{name} do not fit the network: {name} lacks {', '.join(missing[:3])}"
                f"{' ...' if len(missing) > 3 else ''} ({len(missing)} arrays missing)")
    return (f"{name} do not fit the network: {name} has {', '.join(extra[:3])}"
            f"{' ...' if len(extra) > 3 else ''} that the network does not have")


def check_params(params: Any, expected: PyTree, name: str = "params") -> Mapping[str, Any]:
    """Check ``params`` (flax variables) against ``expected``, the shapes the network needs.

    Raises:
        TypeError: ``params`` is not a dict of arrays (:func:`check_variables`).
        ValueError: naming ``name``, with the first differing path and both shapes (a wrong
            width, a missing or an extra layer: parameters of another network).
    """
    params = check_variables(params, name)
    missing, extra, wrong = param_mismatches(params, expected)
    if missing or extra or wrong:
        raise ValueError(_mismatch_text(name, missing, extra, wrong))
    return params


def _input_width_blame(init: Callable[[Any], PyTree], params: PyTree, x: Any,
                       wrong: list[tuple[str, tuple, tuple]]) -> tuple[int, str, tuple] | None:
    """``(width params take, path, shape)`` when every wrong array differs only in its
    input axis (``-2``, kernels are ``(..., in, out)``) where the network wants ``x``'s width,
    and ``init`` at that other width gives exactly ``params``' shapes: then ``x`` is wrong."""
    if not isinstance(x, (jax.Array, np.ndarray, jax.ShapeDtypeStruct)) or x.ndim < 1:
        return None
    width = x.shape[-1]
    in_axis = [got[-2] for _, got, want in wrong
               if len(got) == len(want) >= 2 and want[-2] == width
               and got[:-2] + got[-1:] == want[:-2] + want[-1:]]
    if len(in_axis) != len(wrong) or len(set(in_axis)) != 1:
        return None
    w = in_axis[0]
    try:
        shapes = jax.eval_shape(init, jax.ShapeDtypeStruct(x.shape[:-1] + (w,), x.dtype))
    except Exception:  # the network cannot take that width either
        return None
    if any(param_mismatches(params, shapes)):
        return None
    return w, wrong[0][0], wrong[0][1]


def check_network(init: Callable[[Any], PyTree], forward: Callable[[PyTree, Any], Any],
                  params: Any, x: Any, *, name: str = "X",
                  params_name: str = "params") -> Any:
    """Check that a network takes the input ``x`` (with ``params`` when given), on the host.

    Args:
        init: ``x -> variables`` (close over a key; it is traced abstractly, never run).
        forward: ``(variables, x) -> outputs``.
        params: the user's variables, or None when the fit initialises them.
        x: an example input, e.g. ``X[:1]`` (an array or a pytree of arrays).
        name, params_name: the arguments named in errors.

    Returns:
        The ``ShapeDtypeStruct`` pytree of ``forward``'s outputs (e.g. its last axis is the
        number of classes).

    Raises:
        ValueError: naming ``name`` when ``x`` has a width (last axis) other than the one the
            parameters were made for ("X has 100 features but params take 784"), or a shape
            the network cannot take; naming ``params_name`` when the parameters belong to
            another network (the first differing array and both shapes).
        TypeError: ``params`` is not a dict of arrays.
    """
    needed = check_forward(init, x, name=name)
    if params is None:
        return check_forward(forward, needed, x, name=name)
    params = check_variables(params, params_name)
    missing, extra, wrong = param_mismatches(params, needed)
    if missing or extra or wrong:
        blame = None if (missing or extra) else _input_width_blame(init, params, x, wrong)
        if blame is not None:
            w, path, shape = blame
            raise ValueError(f"{name} has {x.shape[-1]} features (last axis) but "
                             f"{params_name} take {w}: {params_name}{path} has shape {shape}")
        raise ValueError(_mismatch_text(params_name, missing, extra, wrong))
    return check_forward(forward, params, x, name=name)


def check_outputs(y: Any, outputs: Any, name: str = "y") -> None:
    """Check real targets ``y`` against a network's outputs (shapes only).

    ``y: (n,)`` needs one output per row (``(n,)`` or ``(n, 1)`` outputs); ``y: (n, k)``
    needs ``(n, k)`` outputs. ``outputs`` may be the ``ShapeDtypeStruct`` of a forward pass on
    a single row; only its trailing axes are compared.

    Raises:
        ValueError: naming ``name``, with ``y``'s shape and the network's output width.
    """
    out = tuple(outputs.shape[1:])
    want = tuple(np.shape(y)[1:])
    if out == want or (not want and out == (1,)):
        return
    got = tuple(np.shape(y))
    raise ValueError(f"{name} has shape {got} but the network gives {_per_row(out)} per row: "
                     f"pass {name} of shape (n, {', '.join(map(str, out))}) or use a network "
                     f"with {_per_row(want or (1,))} per row")


def _per_row(shape: tuple[int, ...]) -> str:
    if len(shape) == 1:
        return f"{shape[0]} output{'' if shape[0] == 1 else 's'}"
    return f"outputs of shape {shape}"
