"""Laplace for networks against laplace-torch 0.3 (float64, weights copied into a torch
``nn.Sequential``; all weights, GGN by its default curvlinops backend).

Conventions that had to match: laplace-torch sums the loss over the rows (``MSELoss`` /
``CrossEntropyLoss`` with ``reduction="sum"``) and multiplies the GGN by ``1 / (σ² T)``; our
GGN carries ``β = 1/σ²`` in ``Λ`` and ``noise_precision = 1 / sigma_noise²``; temperature
``T = 1``; one scalar prior precision on every weight and bias (its ``prior_precision_diag``),
prior mean 0; its regression log-likelihood is ``−SSE/(2σ²) − N C ln(σ√(2π))``, ours the same
Gaussian density. Tolerance 1e-4 relative (the brief's): the two compute the same float64
algebra, so agreement is ~1e-14 in practice.

Marked slow (CI's slow suite runs it; laplace-torch is a test dependency, installed by the
Makefile): importing torch and laplace-torch costs ~3.5 s of CPU, so they are imported in the
test, not at collection, and the default suite does not pay for them.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from espresso_jax.bnn import laplace as L

PRIOR = 2.0


def _torch_net(torch, params):
    layers = []
    for i, (W, b) in enumerate(params):
        lin = torch.nn.Linear(*W.shape, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(W.T))
            lin.bias.copy_(torch.tensor(b))
        layers.append(lin)
        if i + 1 < len(params):
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def _problem(likelihood):
    rng = np.random.default_rng(0 if likelihood == "regression" else 1)
    sizes = (3, 5, 1) if likelihood == "regression" else (3, 5, 3)
    params = tuple((0.8 * rng.normal(size=(a, b)), 0.3 * rng.normal(size=b))
                   for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    X, X_new = rng.normal(size=(30, 3)), rng.normal(size=(7, 3))
    if likelihood == "regression":
        y = np.sin(X.sum(1, keepdims=True)) + 0.1 * rng.normal(size=(30, 1))
    else:
        y = rng.integers(0, 3, size=30)
    return params, X, y, X_new


@pytest.mark.slow
@pytest.mark.parametrize("likelihood", ["regression", "classification"])
@pytest.mark.parametrize("structure", ["full", "diag"])
def test_marglik_and_glm_variance_match_laplace_torch(likelihood, structure):
    import torch
    from laplace import Laplace
    from torch.utils.data import DataLoader, TensorDataset

    params, X, y, X_new = _problem(likelihood)
    sigma = 0.7 if likelihood == "regression" else 1.0
    la = Laplace(_torch_net(torch, params), likelihood, subset_of_weights="all",
                 hessian_structure=structure, sigma_noise=sigma, prior_precision=PRIOR,
                 temperature=1.0)
    y_t = torch.tensor(y) if likelihood == "regression" else torch.tensor(y, dtype=torch.long)
    la.fit(DataLoader(TensorDataset(torch.tensor(X), y_t), batch_size=len(X)))
    lml_ref = la.log_marginal_likelihood(prior_precision=torch.tensor(PRIOR)).item()
    mu_ref, var_ref = (t.detach().numpy()
                       for t in la._glm_predictive_distribution(torch.tensor(X_new)))

    with jax.enable_x64(True):
        fit = L.fit_laplace(params, X, y, likelihood=likelihood, structure=structure,
                            noise_precision=1 / sigma ** 2)
        lml = float(L.log_marginal_likelihood(fit, PRIOR))
        mu, var = (np.asarray(a) for a in L.glm_predictive(fit, PRIOR, X_new))
    np.testing.assert_allclose(lml, lml_ref, rtol=1e-4)
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-4, atol=1e-10)
    np.testing.assert_allclose(var, var_ref, rtol=1e-4, atol=1e-10)
    n_out = params[-1][1].shape[0]
    assert var.shape == (7, n_out, n_out)
