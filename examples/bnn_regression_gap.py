"""1-D regression with a gap in the data: where do Bayesian nets admit ignorance?

Fits 1-50-50-1 ReLU nets to ``y = sin(3x) + 0.1 eps`` observed on ``[-1, -0.3] U [0.3, 1]``:
a deterministic net, Bayes by Backprop (Gaussian prior) and MC dropout; plots the median and
interquartile range of their predictive samples and compares the epistemic std inside the gap
with the one on the data. Then fits a heteroscedastic head with MC dropout to data whose noise
grows with ``x`` and splits its predictive variance into epistemic and aleatoric parts.
Writes PNG figures and ``metrics.json`` to ``--out``.

    python examples/bnn_regression_gap.py            # full run
    python examples/bnn_regression_gap.py --quick    # fewer predictive samples / epochs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax

from espresso_jax.apps.experiments import bnn_toys as er
from espresso_jax.apps.viz import bnn as viz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--out", default="bnn_regression_gap", help="folder for figures/JSON")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    k_gap, k_het = jax.random.split(jax.random.key(args.seed))

    gap = er.gap_regression(k_gap, quick=args.quick)
    print(f"gap toy: {len(gap.x)} points, no data in {er.GAP}; epistemic std of f(x)")
    print(f"{'model':<14} {'in gap':>8} {'on data':>8} {'ratio':>6} {'RMSE':>7}")
    for name in gap.samples:
        ratio = gap.gap_std[name] / gap.data_std[name] if gap.data_std[name] > 0 else float("nan")
        print(f"{name:<14} {gap.gap_std[name]:8.4f} {gap.data_std[name]:8.4f} {ratio:6.2f} "
              f"{gap.rmse[name]:7.4f}")
        viz.plot_regression_band(gap.x, gap.y, gap.x_grid, samples=gap.samples[name],
                                 gap=er.GAP, truth=gap.truth,
                                 title=f"{name}: predictive median and quartiles").savefig(
            out / f"gap_{name}.png", dpi=110)

    het = er.heteroscedastic_regression(k_het, quick=args.quick)
    print("\nheteroscedastic head + MC dropout (noise std 0.02 at x=-1 to 0.32 at x=1)")
    print(f"aleatoric std vs true noise std on the data: corr {het.aleatoric_corr:.3f}, "
          f"mean abs error {het.aleatoric_mae:.4f}")
    print(f"epistemic std: in gap {het.gap_epistemic_std:.4f}, on data "
          f"{het.data_epistemic_std:.4f}")
    viz.plot_regression_band(het.x, het.y, het.x_grid, het.mean, het.epistemic, het.aleatoric,
                             gap=er.GAP, title="heteroscedastic MC dropout").savefig(
        out / "heteroscedastic_band.png", dpi=110)
    viz.plot_uncertainty_decomposition(het.x_grid, het.epistemic, het.aleatoric, gap=er.GAP,
                                       title="epistemic vs aleatoric variance").savefig(
        out / "heteroscedastic_decomposition.png", dpi=110)

    metrics = {
        "gap": {name: {"gap_epistemic_std": gap.gap_std[name],
                       "data_epistemic_std": gap.data_std[name], "rmse": gap.rmse[name]}
                for name in gap.samples},
        "heteroscedastic": {"aleatoric_corr": het.aleatoric_corr,
                            "aleatoric_mae": het.aleatoric_mae,
                            "gap_epistemic_std": het.gap_epistemic_std,
                            "data_epistemic_std": het.data_epistemic_std},
        "quick": args.quick, "seed": args.seed,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"\nfigures and metrics.json written to {out.resolve()}")


if __name__ == "__main__":
    main()
