"""PCA and probabilistic PCA on MNIST digits: closed form, EM, and EM with missing pixels.

    python examples/pca_ppca.py
"""

import jax
import numpy as np

import espresso_jax as ej


def main() -> None:
    images, labels = ej.datasets.load_mnist("train")
    X = images[labels == 7][:500]
    pca = ej.mixture.pca.fit(X, 10)
    print(f"PCA: the first 10 components explain "
          f"{float(np.sum(pca.explained_variance_ratio)):.1%} of the variance")

    closed = ej.mixture.ppca.fit(X, 10).params
    em_fit = ej.mixture.ppca.fit_em(jax.random.key(0), X, 10, max_iter=300, tol=1e-6)
    print(f"PPCA log-likelihood per image: closed form "
          f"{float(ej.mixture.ppca.log_likelihood(closed, X)):.2f}, EM "
          f"{float(ej.mixture.ppca.log_likelihood(em_fit.params, X)):.2f} "
          f"after {int(em_fit.n_iter)} iterations")

    rng = np.random.default_rng(0)
    holed = np.where(rng.random(X.shape) < 0.1, np.nan, X)
    missing = ej.mixture.ppca.fit_em(jax.random.key(1), holed, 10, max_iter=300, missing=True)
    print(f"PPCA by EM with 10% of pixels missing: sigma^2 = "
          f"{float(missing.params.sigma2):.4f} (complete data: {float(closed.sigma2):.4f})")


if __name__ == "__main__":
    main()
