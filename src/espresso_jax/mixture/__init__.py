"""Latent-variable models fitted by the EM engine (:mod:`espresso_jax.em`): k-means, Gaussian
mixtures (four covariance types), variational Bayesian GMM (Dirichlet and Dirichlet-process
weight priors), PCA and probabilistic PCA (closed form and EM, with missing values)."""

from espresso_jax.mixture import gaussian, gmm, gmm_online, kmeans, pca, ppca, vbgmm

__all__ = ["gaussian", "gmm", "gmm_online", "kmeans", "pca", "ppca", "vbgmm"]
