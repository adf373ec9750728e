"""A self-contained report folder: ``index.html`` with PNG figures and numbers, plus
``metrics.json``.

The report is assembled in a temporary folder beside the destination and moved into place only
when complete, so an interrupted run never leaves a half-written report.
"""

from __future__ import annotations

import html
import json
import math
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["Report", "to_jsonable", "make_staging_dir"]


def make_staging_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new, uniquely named folder ``parent/<prefix><random hex>`` made with the user's umask,
    as ``mkdir`` makes folders (``tempfile.mkdtemp`` makes them private, mode 0700, and a
    staging folder renamed into place would keep that mode)."""
    parent = Path(parent)
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(6)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free staging folder name {prefix}* in {parent}")


def to_jsonable(value: Any) -> Any:
    """Convert numpy/JAX scalars and arrays to plain JSON values (NaN/inf become None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    arr = np.asarray(value)
    if arr.dtype.kind in "biuf":
        if arr.ndim == 0:
            out = arr.item()
            return None if isinstance(out, float) and not math.isfinite(out) else out
        return [to_jsonable(v) for v in arr.tolist()]
    return str(value)


def _format(value: Any) -> str:
    value = to_jsonable(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list) and len(value) <= 12:
        return "[" + ", ".join(_format(v) for v in value) + "]"
    return html.escape(str(value))


class Report:
    """Collects sections of figures and metrics and writes them as one folder.

    Example:
        >>> report = Report("report", title="espresso_jax tour")
        >>> report.section("Linear models", "Bayesian linear regression on sin(2πx) data.")
        >>> report.figure(fig, "blr_band", "Predictive mean ± 2 sd")
        >>> report.metrics({"alpha": 2.1, "beta": 11.0})
        >>> report.write()
    """

    def __init__(self, out_dir: str | os.PathLike, *, title: str) -> None:
        self.out_dir = Path(out_dir)
        self.title = title
        self._sections: list[dict[str, Any]] = []
        self._staging = make_staging_dir(self._parent(), ".report-")
        self._figures: set[str] = set()

    def _parent(self) -> Path:
        parent = self.out_dir.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        return parent

    def section(self, name: str, text: str = "") -> None:
        """Start a new section; later figures and metrics go into it."""
        self._sections.append({"name": name, "text": text, "figures": [], "metrics": {}})

    def _current(self) -> dict[str, Any]:
        if not self._sections:
            self.section("Results")
        return self._sections[-1]

    def figure(self, fig: plt.Figure, name: str, caption: str) -> str:
        """Save ``fig`` as ``<name>.png`` (closing it) and attach it to the current section."""
        if name in self._figures:
            raise ValueError(f"figure name {name!r} is used twice in this report")
        self._figures.add(name)
        filename = f"{name}.png"
        fig.savefig(self._staging / filename, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self._current()["figures"].append({"file": filename, "caption": caption})
        return filename

    def metrics(self, values: dict[str, Any]) -> None:
        """Add named numbers to the current section (merged with earlier ones)."""
        self._current()["metrics"].update(to_jsonable(values))

    def _html(self) -> str:
        parts = [
            "<!doctype html>", "<html lang='en'><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title>",
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "figure{display:inline-block;margin:0.5em;vertical-align:top;max-width:520px}"
            "img{max-width:100%}table{border-collapse:collapse;margin:0.5em 0}"
            "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}</style>",
            "</head><body>", f"<h1>{html.escape(self.title)}</h1>",
        ]
        for sec in self._sections:
            parts.append(f"<h2>{html.escape(sec['name'])}</h2>")
            if sec["text"]:
                parts.append(f"<p>{html.escape(sec['text'])}</p>")
            if sec["metrics"]:
                rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_format(v)}</td></tr>"
                               for k, v in sec["metrics"].items())
                parts.append(f"<table>{rows}</table>")
            for fig in sec["figures"]:
                parts.append(
                    f"<figure><img src='{html.escape(fig['file'])}' "
                    f"alt='{html.escape(fig['caption'])}'>"
                    f"<figcaption>{html.escape(fig['caption'])}</figcaption></figure>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self) -> Path:
        """Write ``index.html`` and ``metrics.json`` and move the folder into place."""
        metrics = {sec["name"]: sec["metrics"] for sec in self._sections}
        (self._staging / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False))
        (self._staging / "index.html").write_text(self._html(), encoding="utf-8")
        if self.out_dir.exists():
            shutil.rmtree(self.out_dir)
        os.replace(self._staging, self.out_dir)
        return self.out_dir

    def discard(self) -> None:
        """Remove the staging folder (on error); the destination is left untouched."""
        shutil.rmtree(self._staging, ignore_errors=True)
