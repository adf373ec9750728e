"""A user's numeric table from a ``.csv``/``.txt``/``.tsv`` or ``.npy`` file, validated on the
host: the reader behind ``espresso-jax fit``. Errors name the file and the line or row."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["Table", "load_table"]

_TEXT_SUFFIXES = (".csv", ".txt", ".tsv")


class Table(NamedTuple):
    """A numeric table read by :func:`load_table`.

    Attributes:
        data: ``(n_rows, n_columns)`` float64, every entry finite.
        columns: the header names, or ``col0, col1, ...`` without a header.
    """

    data: np.ndarray
    columns: tuple[str, ...]



def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _read_text(path: Path) -> tuple[np.ndarray, tuple[str, ...] | None, list[int]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"DATA {path} is not UTF-8 text (a CSV file was expected)") from None
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines())
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"DATA {path} has no rows")
    first = lines[0][1]
    delim = "," if "," in first else ";" if ";" in first else "\t" if "\t" in first else ","
    try:
        rows = list(csv.reader([ln for _, ln in lines], delimiter=delim, strict=True))
    except csv.Error as err:
        raise ValueError(f"DATA {path} is not a well-formed CSV file: {err}") from None
    header = None
    cells0 = [c.strip() for c in rows[0]]
    if any(c and _number(c) is None for c in cells0):
        header = tuple(c or f"col{j}" for j, c in enumerate(cells0))
        lines, rows = lines[1:], rows[1:]
    if not rows:
        raise ValueError(f"DATA {path} has a header but no data rows")
    width = len(header) if header is not None else len(rows[0])
    data = np.empty((len(rows), width))
    for r, ((lineno, _), row) in enumerate(zip(lines, rows, strict=True)):
        if len(row) != width:
            raise ValueError(f"DATA {path} line {lineno} has {len(row)} fields, expected "
                             f"{width}")
        for j, cell in enumerate(row):
            cell = cell.strip()
            value = math.nan if cell == "" else _number(cell)
            if value is None:
                raise ValueError(f"DATA {path} line {lineno}, column {j}: {cell[:30]!r} is "
                                 "not a number")
            data[r, j] = value
    return data, header, [ln for ln, _ in lines]


def load_table(path: str | os.PathLike) -> Table:
    """Read a numeric table from a ``.csv`` (``.txt``/``.tsv``) or ``.npy`` file.

    CSV: comma-separated (``;`` or tab when the first line has no comma), blank lines and
    ``#`` comments skipped; the first row is a header when any cell is not a number.

    Args:
        path: the file.

    Returns:
        :class:`Table` with ``data (n_rows, n_columns)`` float64.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable or malformed file, ragged rows, non-numeric cells, empty cells,
            NaN or inf values (the message gives the line numbers or row indices).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"DATA {path}: no such file")
    if path.is_dir():
        raise ValueError(f"DATA {path} is a directory, not a .csv or .npy file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"DATA {path} is not a readable .npy array: {err}") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf":
            raise ValueError(f"DATA {path} must hold a real numeric array, got dtype "
                             f"{getattr(arr, 'dtype', type(arr).__name__)}")
        if arr.ndim not in (1, 2):
            raise ValueError(f"DATA {path} must be a 1-D or 2-D array (n_rows, n_columns), got "
                             f"shape {arr.shape}")
        if arr.size == 0:
            raise ValueError(f"DATA {path} is empty (shape {arr.shape})")
        data = np.asarray(arr, np.float64).reshape(arr.shape[0], -1)
        header, where = None, [f"row {i}" for i in range(data.shape[0])]
    elif suffix in _TEXT_SUFFIXES:
        data, header, linenos = _read_text(path)
        where = [f"line {n}" for n in linenos]
    else:
        raise ValueError(f"DATA {path} must be a .csv or .npy file, got {suffix or 'no'} "
                         "extension")
    if data.size == 0:
        raise ValueError(f"DATA {path} is empty (shape {data.shape})")
    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if bad.size:
        shown = ", ".join(where[i] for i in bad[:5]) + (", ..." if bad.size > 5 else "")
        raise ValueError(f"DATA {path} has {bad.size} row(s) with missing, NaN or inf values "
                         f"({shown}); remove or impute them first")
    columns = header or tuple(f"col{j}" for j in range(data.shape[1]))
    return Table(data, tuple(columns))
