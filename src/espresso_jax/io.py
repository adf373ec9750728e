"""Save and load fitted parameters (any pytree of arrays: NamedTuples, dicts, flax params)
with flax's msgpack serializer, a standard, portable format.

Loading needs a template of the same structure (``like``), as flax's ``from_bytes`` does:
e.g. the params of a fit of the same model and shapes, or ``jax.eval_shape`` of the fit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np
from flax import serialization

__all__ = ["save_params", "load_params"]

T = TypeVar("T")


def save_params(path: str | os.PathLike, params: Any) -> Path:
    """Write ``params`` to ``path`` (msgpack); the file is replaced atomically.

    Args:
        path: destination file (conventionally ``*.msgpack``).
        params: a pytree of arrays (device arrays are fetched to the host).

    Returns:
        The path written.
    """
    path = Path(path)
    if not jax.tree.leaves(params):
        raise ValueError("params has no array leaves to save")
    host = jax.tree.map(np.asarray, params)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(serialization.to_bytes(host))
    os.replace(tmp, path)
    return path


def load_params(path: str | os.PathLike, like: T) -> T:
    """Read parameters saved by :func:`save_params` into the structure of ``like``.

    Args:
        path: file written by :func:`save_params`.
        like: a pytree with the same structure (values are ignored; shapes must match).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file does not match the structure or shapes of ``like``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no parameter file at {path}")
    try:
        loaded = serialization.from_bytes(like, path.read_bytes())
    except Exception as err:  # msgpack/structure errors come in many types
        raise ValueError(f"{path} does not hold parameters shaped like `like`: {err}") from None
    for got, want in zip(jax.tree.leaves(loaded), jax.tree.leaves(like), strict=True):
        if np.shape(got) != np.shape(want):
            raise ValueError(f"{path}: array of shape {np.shape(got)} where `like` has "
                             f"{np.shape(want)}")
    return jax.tree.map(jax.numpy.asarray, loaded)
