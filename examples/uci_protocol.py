"""MC dropout on the UCI regression benchmark (Gal & Ghahramani 2016 protocol): per split, a
grid search over dropout rate x tau by validation log-likelihood, a refit, and test RMSE / test
log-likelihood in original units, next to the published grid-search numbers.

    python examples/uci_protocol.py                       # all nine data sets, full protocol
    python examples/uci_protocol.py --datasets yacht boston
    python examples/uci_protocol.py --quick               # yacht + boston, 2 splits, 20 epochs
    python examples/uci_protocol.py --datasets yacht --epochs-multiplier 100
    python examples/uci_protocol.py --method bbb --datasets power   # Bayes by Backprop
    python examples/uci_protocol.py --datasets kin8nm --common-random-numbers   # cheaper grid

Every (split, grid point) network of a data set is trained in one compiled, vmapped call.
With --common-random-numbers the grid points of a split share one key (same initial weights,
epoch orders and dropout-mask words), which makes the grid's training cheaper (see
``run_protocol``); the default is a key per network, as the recorded results. The default is
the protocol's 10x epochs; the published boston, concrete, energy, kin8nm,
wine and yacht rows need longer training: run those with --epochs-multiplier 100 (see
espresso_jax.apps.uci.protocol).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import numpy as np
import optax

from espresso_jax.apps.leaderboard.published import published_rows
from espresso_jax.apps.uci import bbb as bbb_uci
from espresso_jax.apps.uci import protocol as uci
from espresso_jax.datasets.uci import load_uci

ALIASES = {
    "boston": "bostonHousing", "concrete": "concrete", "energy": "energy", "kin8nm": "kin8nm",
    "naval": "naval-propulsion-plant", "power": "power-plant",
    "protein": "protein-tertiary-structure", "wine": "wine-quality-red", "yacht": "yacht",
}


def published(folder: str) -> tuple[float, float, float, float]:
    """Gal's grid-search re-run of MC dropout (10x epochs) on ``folder``: (RMSE, SE, LL, SE),
    from the one table of published rows (``apps.leaderboard.published``)."""
    row = next(r for r in published_rows(folder, ["mc_dropout"]) if r.source == "gal_grid2018")
    return row.rmse, row.rmse_pm, row.ll, row.ll_pm


# Method name -> (UCIMethod factory, default Adam learning rate). BBB needs the larger rate to
# move its posterior standard deviations within the protocol's epochs.
METHODS = {"dropout": (uci.dropout_method, 1e-3), "bbb": (bbb_uci.bbb_method, 1e-2)}
METHOD_LABELS = {"dropout": "MC dropout (ours)", "bbb": "Bayes by Backprop (ours)"}
ORDER = ("yacht", "boston", "energy", "concrete", "wine", "power", "kin8nm", "naval", "protein")


def _pm(mean: float, se: float | None, digits: int) -> str:
    return f"{mean:.{digits}f}" + ("" if se is None else f" ± {se:.{digits}f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=None, choices=list(ORDER),
                        help="default: all nine (yacht and boston with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="2 splits, 20 epochs, 500/200 MC samples (smoke run)")
    parser.add_argument("--n-splits", type=int, default=None)
    parser.add_argument("--n-epochs", type=int, default=None,
                        help="default: --epochs-multiplier x the data folder's n_epochs")
    parser.add_argument("--epochs-multiplier", type=int, default=10,
                        help="Gal's --epochx (default 10, the protocol's 10x epochs)")
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--n-samples-val", type=int, default=1_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--method", choices=sorted(METHODS), default="dropout",
                        help="MC dropout (default) or Bayes by Backprop")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="Adam step size (default: 1e-3 dropout, 1e-2 bbb)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--common-random-numbers", action="store_true",
                        help="one key per split shared by its grid points (cheaper grid)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="uci_protocol.json")
    parser.add_argument("--figure", default=None,
                        help="comparison plot (default: --out with .png; 'none' to skip)")
    args = parser.parse_args(argv)
    if args.datasets is None:
        args.datasets = ["yacht", "boston"] if args.quick else list(ORDER)
    if args.quick:
        args.n_splits = args.n_splits or 2
        args.n_epochs = args.n_epochs or 20
        args.n_samples, args.n_samples_val = 500, 200

    make_method, default_rate = METHODS[args.method]
    method = make_method()
    if args.learning_rate is None:
        args.learning_rate = default_rate
    optimizer = optax.adam(args.learning_rate)
    header = (f"{'data set':10s} {'S':>3s} {'RMSE':>15s} {'published':>13s} "
              f"{'test LL':>15s} {'published':>13s} {'time':>8s}")
    print(header)
    print("-" * len(header))
    records = []
    for short in sorted(args.datasets, key=ORDER.index):
        ds = load_uci(ALIASES[short], args.data_dir)
        n_epochs = args.n_epochs or args.epochs_multiplier * ds.n_epochs
        res = uci.run_protocol(jax.random.key(args.seed), ds, method, optimizer=optimizer,
                               n_splits=args.n_splits, n_epochs=n_epochs,
                               batch_size=args.batch_size, n_samples=args.n_samples,
                               n_samples_val=args.n_samples_val,
                               common_random_numbers=args.common_random_numbers)
        digits = 4 if short in ("naval", "kin8nm") else 2
        pub = published(ds.name)
        print(f"{short:10s} {res.settings['n_splits']:3d} "
              f"{_pm(res.rmse_mean, res.rmse_se, digits):>15s} {_pm(pub[0], pub[1], 2):>13s} "
              f"{_pm(res.ll_mean, res.ll_se, 2):>15s} {_pm(pub[2], pub[3], 2):>13s} "
              f"{res.wall_time:7.0f}s", flush=True)
        records.append({
            "dataset": short, "folder": ds.name, "method": res.method,
            "rmse": res.rmse.tolist(), "log_likelihood": res.log_likelihood.tolist(),
            "rmse_mean": res.rmse_mean, "rmse_se": res.rmse_se,
            "ll_mean": res.ll_mean, "ll_se": res.ll_se,
            "chosen": {name: np.asarray(value).tolist()
                       for name, value in res.chosen._asdict().items()},
            "val_log_likelihood": res.val_log_likelihood.tolist(),
            "published": dict(zip(("rmse", "rmse_se", "ll", "ll_se"), pub, strict=True)),
            "wall_time_s": res.wall_time, "settings": res.settings,
        })
        with open(args.out, "w") as fh:  # rewritten after every data set
            json.dump({"seed": args.seed, "method": args.method,
                       "common_random_numbers": args.common_random_numbers,
                       "learning_rate": args.learning_rate,
                       "written": time.strftime("%Y-%m-%d %H:%M:%S"), "results": records},
                      fh, indent=1)
    print(f"results written to {args.out}")
    figure = args.figure or str(pathlib.Path(args.out).with_suffix(".png"))
    if figure.lower() != "none":
        save_comparison(records, args.method, figure)
        print(f"figure written to {figure}")


def save_comparison(records: list[dict], method: str, path: str) -> None:
    """Ours against the published MC-dropout rows (viz.plot_uci_comparison)."""
    import matplotlib.pyplot as plt

    from espresso_jax.apps.viz import plot_uci_comparison

    def column(key, published=False):  # None (no published SE) -> NaN
        rows = [r["published"] if published else r for r in records]
        return [np.nan if row[key] is None else row[key] for row in rows]

    fig = plot_uci_comparison(
        [r["dataset"] for r in records], column("rmse_mean"), column("rmse_se"),
        column("ll_mean"), column("ll_se"), *(column(k, published=True)
                                              for k in ("rmse", "rmse_se", "ll", "ll_se")),
        label=METHOD_LABELS[method],
        ref_label="published MC dropout")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
