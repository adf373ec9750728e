"""Outputs of a leaderboard run (:func:`espresso_jax.apps.leaderboard.runner.run_leaderboard`):
a Markdown table, the JSON of every number and one figure (per data set, each method's test NLL
against its W1 distance to the NUTS predictive; where NUTS did not run, each method's NLL ± its
standard error on a row of its own).

With ``published=True`` (what :func:`write_outputs` writes) the table also carries, after each
data set's rows, the published results of the methods in the run
(:mod:`espresso_jax.apps.leaderboard.published`): RMSE and NLL (= -test log-likelihood) with
the source's ``±`` (a standard error, marked ``(sd)`` where the source prints a standard
deviation), the method cell marked ``published:`` with the source's label and citation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from espresso_jax.apps.leaderboard.published import PublishedRow, n_splits_of, published_rows

__all__ = ["COLUMNS", "markdown_table", "published_line", "write_outputs"]

COLUMNS = (("rmse", "RMSE"), ("nll", "NLL"), ("calibration", "cal. err."),
           ("coverage_90", "cov. 90 %"), ("coverage_95", "cov. 95 %"),
           ("mean_rmse_vs_nuts", "mean gap vs NUTS"), ("w1_vs_nuts", "W1 vs NUTS"),
           ("tv_vs_nuts", "TV vs NUTS"))


def _cell(row: dict[str, Any], key: str) -> str:
    if key not in row:
        return "–"
    return f"{row[key]:.3f} ± {row[key + '_se']:.3f}"


def published_line(p: PublishedRow) -> str:
    """One published row as a line of :func:`markdown_table` (RMSE and NLL = -LL, as printed:
    two decimals; the other columns empty)."""
    mark = " (sd)" if p.spread == "sd" else ""
    cells = [p.dataset, f"published: {p.label} ({p.citation})", str(n_splits_of(p.dataset))]
    for key, _ in COLUMNS:
        if key == "rmse":
            cells.append(f"{p.rmse:.2f} ± {p.rmse_pm:.2f}{mark}")
        elif key == "nll":
            cells.append(f"{p.nll:.2f} ± {p.ll_pm:.2f}{mark}")
        else:
            cells.append("–")
    return "| " + " | ".join(cells + ["–"]) + " |"


def markdown_table(rows: list[dict[str, Any]], *, published: bool = False) -> str:
    """The rows as one Markdown table (mean ± standard error over splits; wall time in s,
    the whole protocol of the method on the set, NUTS: the sum of its sampling runs).

    ``published=True``: after the last row of each data set, the published rows
    (:func:`~espresso_jax.apps.leaderboard.published.published_rows`) of the methods that
    data set's rows contain (see the module docstring), once per data set."""
    head = ["data set", "method", "splits"] + [label for _, label in COLUMNS] + ["wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    done: set[str] = set()
    for i, r in enumerate(rows):
        cells = [r["dataset"], r["method"], str(r["n_splits"])]
        cells += [_cell(r, k) for k, _ in COLUMNS] + [f"{r['wall_time_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
        last_of_set = i + 1 == len(rows) or rows[i + 1]["dataset"] != r["dataset"]
        if published and last_of_set and r["dataset"] not in done:
            done.add(r["dataset"])
            ours = [q["method"] for q in rows if q["dataset"] == r["dataset"]]
            lines += [published_line(p) for p in published_rows(r["dataset"], ours)]
    return "\n".join(lines) + "\n"


def _figure(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib.pyplot as plt

    sets = sorted({r["dataset"] for r in rows})
    if not sets:   # every method failed (or none finished yet): say so instead of plotting
        fig, ax = plt.subplots(figsize=(4.0, 1.5))
        ax.text(0.5, 0.5, "no finished method", ha="center", va="center")
        ax.set_axis_off()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    fig, axes = plt.subplots(1, len(sets), figsize=(3.2 * len(sets), 3.0), squeeze=False)
    for ax, name in zip(axes[0], sets, strict=True):
        rs = [r for r in rows if r["dataset"] == name]
        with_w1 = [r for r in rs if "w1_vs_nuts" in r]
        if with_w1:
            for r in with_w1:
                ax.errorbar(r["w1_vs_nuts"], r["nll"], xerr=r["w1_vs_nuts_se"],
                            yerr=r["nll_se"], fmt="o", label=r["method"])
            nuts = [r for r in rs if r["method"] == "nuts"]
            if nuts:
                ax.axhline(nuts[0]["nll"], color="k", ls="--", lw=1, label="nuts")
            ax.set_xlabel("W1 to NUTS predictive")
            ax.set_ylabel("test NLL")
        else:   # no NUTS: each method's NLL ± SE on a row, on an axis fitted to the values
            ax.errorbar([r["nll"] for r in rs], range(len(rs)),
                        xerr=[r["nll_se"] for r in rs], fmt="o", capsize=2)
            ax.set_yticks(range(len(rs)), [r["method"] for r in rs], fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel("test NLL")
        ax.set_title(name)
    if axes[0][0].get_legend_handles_labels()[0]:   # the rows plots (no NUTS) carry no labels
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``leaderboard.md`` (with the published rows), ``leaderboard.json`` (the result
    plus ``"published"``: those rows as dicts) and ``leaderboard.png`` under ``out_dir``
    (created); returns it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.md").write_text(markdown_table(result["rows"], published=True))
    pub = [p._asdict() | {"nll": p.nll, "citation": p.citation}
           for name in dict.fromkeys(r["dataset"] for r in result["rows"])
           for p in published_rows(name, [r["method"] for r in result["rows"]
                                          if r["dataset"] == name])]
    (out / "leaderboard.json").write_text(json.dumps({**result, "published": pub}, indent=2))
    _figure(result["rows"], out / "leaderboard.png")
    return out
