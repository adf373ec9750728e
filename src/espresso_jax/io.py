"""Save and load fitted parameters (any pytree of arrays: NamedTuples, dicts, flax params)
with flax's msgpack serializer, a standard, portable format, guarded by a checksum.

Each file ``P`` gets a sidecar ``P.sha256`` holding the SHA-256 of ``P``'s bytes in the format
of ``sha256sum`` (``sha256sum -c P.sha256`` checks it too). Loading verifies it: a file whose
bytes changed after it was saved (a damaged copy, an edit) raises ``ValueError`` naming the
file. A file without a sidecar (saved before espresso_jax wrote checksums, or copied without
it) still loads, with a ``UserWarning`` saying it was not verified; saving it again adds one.

Loading needs a template of the same structure (``like``), as flax's ``from_bytes`` does:
e.g. the params of a fit of the same model and shapes, or ``jax.eval_shape`` of the fit. The
msgpack file holds only nested dicts of arrays, so without a template the saved types
(NamedTuples, flax ``FrozenDict`` ...) cannot be rebuilt faithfully: ``like=None`` is a
``TypeError`` rather than a silently different structure. (A fit folder written by
``espresso-jax fit`` carries its structure in ``params.json``:
:func:`espresso_jax.apps.fitting.load_fitted` needs no template.)

:func:`save_params` / :func:`load_params` are for model parameters; training states (typed PRNG
keys, optimiser state) go through :func:`espresso_jax.train.save_state`, which shares the same
writer and checksum (:func:`save_tree` / :func:`load_tree`).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np
from flax import serialization

__all__ = ["save_params", "load_params", "save_tree", "load_tree", "checksum_path"]

T = TypeVar("T")


def checksum_path(path: str | os.PathLike) -> Path:
    """The checksum sidecar of ``path``: ``path`` with ``.sha256`` appended."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _is_train_state(tree: Any) -> bool:
    from espresso_jax.train import TrainState  # lazy: train imports this module

    return isinstance(tree, TrainState)


def _reject_typed_keys(tree: Any, name: str) -> None:
    for keypath, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if isinstance(leaf, jax.Array) and jax.numpy.issubdtype(leaf.dtype,
                                                                jax.dtypes.prng_key):
            raise TypeError(
                f"{name} holds a typed PRNG key at {name}{jax.tree_util.keystr(keypath)}; "
                "save training states with espresso_jax.train.save_state (it stores keys as "
                "key data), or store jax.random.key_data(key)")


def _write_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` and its SHA-256 to the sidecar; both files are replaced
    by renames, and the temporary files are removed whatever happens."""
    if path.is_dir():
        raise IsADirectoryError(f"path {path} is a folder; give a file name inside it, e.g. "
                                f"{path / 'params.msgpack'}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path {path}: the folder {path.parent} does not exist")
    sidecar = checksum_path(path)
    if sidecar.is_dir():
        raise IsADirectoryError(f"path {path}: its checksum file {sidecar} is a folder")
    digest = hashlib.sha256(payload).hexdigest()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp_sum = path.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(payload)
        tmp_sum.write_text(f"{digest}  {path.name}\n")
        # Data first: an interruption between the renames leaves a new file beside an old
        # checksum, which load_tree reports as a mismatch (never a silent wrong load).
        os.replace(tmp, path)
        os.replace(tmp_sum, sidecar)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_sum.unlink(missing_ok=True)


def _read_verified(path: Path) -> bytes:
    if not path.exists():
        raise FileNotFoundError(f"no parameter file at {path}")
    if not path.is_file():
        raise IsADirectoryError(f"path {path} is a folder, not a parameter file")
    payload = path.read_bytes()
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        warnings.warn(f"{path} has no checksum file {sidecar.name}; loaded without "
                      "verification (save it again to add one)", UserWarning, stacklevel=4)
        return payload
    expected = sidecar.read_text(errors="replace").split()
    if not expected or len(expected[0]) != 64:
        raise ValueError(f"{sidecar} is not a SHA-256 checksum file")
    if hashlib.sha256(payload).hexdigest() != expected[0].lower():
        raise ValueError(f"{path} does not match its checksum in {sidecar.name}: the file was "
                         "changed or damaged after it was saved")
    return payload


def save_tree(path: str | os.PathLike, tree: Any) -> Path:
    """Write any pytree of arrays to ``path`` (msgpack) and its checksum to ``path.sha256``.

    The writer behind :func:`save_params` and :func:`espresso_jax.train.save_state`. Both files
    are replaced atomically; nothing is left behind on error.

    Args:
        path: destination file (conventionally ``*.msgpack``); its folder must exist.
        tree: a pytree of arrays (device arrays are fetched to the host). Typed PRNG keys are
            refused (``TypeError``): store ``jax.random.key_data(key)``. Under
            ``jax.distributed`` every process must call it (a sharded global array is gathered
            by a collective) and only process 0 writes.

    Returns:
        The path written.

    Raises:
        IsADirectoryError: ``path`` is a folder. FileNotFoundError: its folder does not exist.
        ValueError: ``tree`` has no array leaves. TypeError: it holds typed PRNG keys.
    """
    path = Path(path)
    if not jax.tree.leaves(tree):
        raise ValueError("params has no array leaves to save")
    _reject_typed_keys(tree, "params")
    host = jax.tree.map(_to_host, tree)
    if jax.process_index() == 0:
        _write_atomic(path, serialization.to_bytes(host))
    return path


def _to_host(leaf: Any) -> np.ndarray:
    """A leaf as a NumPy array; a global array of several processes is read from the local
    copy when replicated, else all-gathered (a collective: every process must call this)."""
    if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
        return np.asarray(leaf)
    if leaf.is_fully_replicated:
        return np.asarray(leaf.addressable_data(0))
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))


def load_tree(path: str | os.PathLike, like: T) -> T:
    """Read a file written by :func:`save_tree` into the structure of ``like``, after checking
    its checksum (see the module docstring for files without one).

    Args:
        path: the file.
        like: a pytree with the same structure (values are ignored; shapes must match).

    Raises:
        FileNotFoundError: ``path`` does not exist. TypeError: ``like`` is None.
        ValueError: the checksum does not match, or the file does not match the structure or
            shapes of ``like``.
    """
    path = Path(path)
    if like is None:
        raise TypeError("like is None: loading needs a template of the saved structure (e.g. "
                        "the params of a fit of the same model, or jax.eval_shape of the fit); "
                        "for an espresso-jax fit folder use "
                        "espresso_jax.apps.fitting.load_fitted")
    payload = _read_verified(path)
    try:
        loaded = serialization.from_bytes(like, payload)
    except Exception as err:  # msgpack/structure errors come in many types
        raise ValueError(f"{path} does not hold parameters shaped like `like`: {err}") from None
    for got, want in zip(jax.tree.leaves(loaded), jax.tree.leaves(like), strict=True):
        if np.shape(got) != np.shape(want):
            raise ValueError(f"{path}: array of shape {np.shape(got)} where `like` has "
                             f"{np.shape(want)}")
    return jax.tree.map(jax.numpy.asarray, loaded)


def save_params(path: str | os.PathLike, params: Any) -> Path:
    """Write ``params`` to ``path`` (msgpack) and its checksum to ``path.sha256``; both files
    are replaced atomically and nothing is left behind on error.

    Args:
        path: destination file (conventionally ``*.msgpack``); its folder must exist.
        params: a pytree of arrays (device arrays are fetched to the host).

    Returns:
        The path written.

    Raises:
        IsADirectoryError: ``path`` is a folder. FileNotFoundError: its folder does not exist.
        TypeError: ``params`` is a :class:`espresso_jax.train.TrainState` or holds typed PRNG
            keys (use :func:`espresso_jax.train.save_state`).
        ValueError: ``params`` has no array leaves.
    """
    if _is_train_state(params):
        raise TypeError("params is a train.TrainState: save training states with "
                        "espresso_jax.train.save_state (and load them with train.load_state), "
                        "or save state.params")
    return save_tree(path, params)


def load_params(path: str | os.PathLike, like: T) -> T:
    """Read parameters saved by :func:`save_params` into the structure of ``like``.

    Args:
        path: file written by :func:`save_params` (its ``.sha256`` sidecar is verified).
        like: a pytree with the same structure (values are ignored; shapes must match);
            required: None is a ``TypeError`` (see the module docstring).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        TypeError: ``like`` is None, or a :class:`espresso_jax.train.TrainState` (use
            :func:`espresso_jax.train.load_state`).
        ValueError: the checksum does not match, or the file does not match the structure or
            shapes of ``like``.
    """
    if like is not None and _is_train_state(like):
        raise TypeError("like is a train.TrainState: load training states with "
                        "espresso_jax.train.load_state")
    return load_tree(path, like)
