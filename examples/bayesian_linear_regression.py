"""Bayesian linear regression on sin(2πx) data: posterior, predictive band, evidence fit.

    python examples/bayesian_linear_regression.py [--out blr.png]
"""

import argparse

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import espresso_jax as ej


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--out", default="blr.png")
    args = parser.parse_args()

    x, y = ej.datasets.sinusoidal(jax.random.key(0), 25, noise_std=0.2)

    def design(u):
        return ej.linear.basis.design_matrix(u, "gaussian", centres=jnp.linspace(0, 1, 9),
                                             width=0.1, bias=True)

    fit = ej.linear.bayes.fit_evidence(design(x), y, tol=1e-6, max_iter=300)
    p = fit.params
    print(f"evidence maximisation: alpha = {float(p.alpha):.3f}, beta = {float(p.beta):.2f} "
          f"(true beta = 25), gamma = {float(fit.gamma):.2f}, {int(fit.n_iter)} iterations")

    grid = jnp.linspace(0, 1, 200)
    pred = ej.linear.bayes.predict(fit.params, design(grid))
    samples = ej.linear.bayes.sample_functions(jax.random.key(1), fit.params, design(grid), 5)
    sd = jnp.sqrt(pred.var)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.fill_between(grid, pred.mean - 2 * sd, pred.mean + 2 * sd, alpha=0.2, label="± 2 sd")
    ax.plot(grid, pred.mean, label="predictive mean")
    ax.plot(grid, samples.T, lw=0.7, color="tab:orange")
    ax.scatter(x, y, s=15, color="k", label="data")
    ax.legend()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
