"""Gaussian mixtures on Old Faithful: EM (with restarts), the variational GMM with a
Dirichlet-process prior, k-means; fitted parameters saved and loaded back.

    python examples/mixtures.py
"""

import jax
import numpy as np

import espresso_jax as ej


def main() -> None:
    X = ej.datasets.load_faithful()
    key = jax.random.key(0)

    em_fit = ej.mixture.gmm.fit(key, X, 2, covariance_type="full", n_init=4)
    print(f"GMM by EM: {int(em_fit.n_iter)} iterations, mean log-likelihood "
          f"{float(em_fit.history[int(em_fit.n_iter) - 1]):.4f}, weights "
          f"{np.round(np.asarray(em_fit.params.weights), 3)}, BIC "
          f"{float(ej.mixture.gmm.bic(em_fit.params, X)):.1f}")

    vb = ej.mixture.vbgmm.fit(key, X, 10, weight_prior="dirichlet_process",
                              weight_concentration=1e-3, max_iter=500)
    weights = np.asarray(ej.mixture.vbgmm.expected_weights(vb.params))
    print(f"variational DP-GMM: {int((weights > 1e-2).sum())} of 10 components keep weight "
          f"> 0.01: {np.round(np.sort(weights)[::-1][:3], 3)}")

    km = ej.mixture.kmeans.fit(key, X, 2, n_init=4)
    print(f"k-means: inertia {float(km.inertia):.1f}")

    path = ej.io.save_params("gmm_faithful.msgpack", em_fit.params)
    back = ej.io.load_params(path, em_fit.params)
    same = np.allclose(ej.mixture.gmm.score_samples(back, X),
                       ej.mixture.gmm.score_samples(em_fit.params, X))
    print(f"saved to {path}; reloaded parameters give the same scores: {same}")


if __name__ == "__main__":
    main()
