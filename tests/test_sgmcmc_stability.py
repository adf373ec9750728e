"""The SG-MCMC UCI method's step cap (apps.uci.sgmcmc.stable_step_size) and the matrix-free
largest Gauss-Newton eigenvalue it reads (bnn.laplace.curvature.largest_ggn_eigenvalue),
against an explicit Jacobian and LAPACK, and a stiff data set where the uncapped chain
diverges."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from espresso_jax.apps.uci import protocol as uci
from espresso_jax.apps.uci.sgmcmc import SGMCMCHParams, sgmcmc_method, stable_step_size
from espresso_jax.bnn.laplace.curvature import largest_ggn_eigenvalue
from espresso_jax.nn.modules import MLP


def _stiff_data(n=128, copies=40):
    # one feature repeated in 40 columns (plus a little noise): a very stiff direction, like
    # naval-propulsion-plant's correlated columns
    x = jax.random.normal(jax.random.key(0), (n, 1))
    X = jnp.tile(x, (1, copies)) + 0.01 * jax.random.normal(jax.random.key(1), (n, copies))
    return X, jnp.sin(2.0 * x[:, 0])


def _explicit_lambda_max(apply_fn, params, X):
    flat, unravel = ravel_pytree(params)
    J = jax.jacfwd(lambda v: apply_fn(unravel(v), X))(flat)          # (n, P)
    J = np.asarray(J, np.float64).reshape(X.shape[0], -1)
    return np.linalg.eigvalsh(J.T @ J / X.shape[0]).max()


def test_linear_model_eigenvalue_is_lapacks():
    X = jax.random.normal(jax.random.key(2), (64, 5)) * jnp.array([[3.0, 1.0, 0.5, 0.3, 0.1]])
    lam = largest_ggn_eigenvalue(lambda w, X: X @ w, jnp.zeros(5), X, n_iter=100)
    ref = np.linalg.eigvalsh(np.asarray(X, np.float64).T @ np.asarray(X, np.float64) / 64)
    # float32 products; the ratio of the two largest eigenvalues is ~0.1, so 100 iterations
    # leave no power-iteration error at this tolerance
    assert float(lam) == pytest.approx(ref.max(), rel=1e-4)


def test_mlp_eigenvalue_equals_the_explicit_jacobians():
    X, _ = _stiff_data()
    module = MLP((16, 1))
    params = module.init(jax.random.key(3), X[:1])

    def apply_fn(p, X):
        return module.apply(p, X)[:, 0]

    lam = largest_ggn_eigenvalue(apply_fn, params, X, n_iter=100)
    assert float(lam) == pytest.approx(_explicit_lambda_max(apply_fn, params, X), rel=1e-3)


def test_stiff_chain_diverges_without_the_cap_and_not_with_it():
    X, y = _stiff_data()
    X = 4.0 * X    # the MAP net's lambda_max: ~25 at scale 1 (step x lambda 2.5), ~16x here
    hp = SGMCMCHParams(jnp.float32(1.0), jnp.float32(25.0))
    opt = optax.adam(1e-2)
    kept = {}
    for cap in (None, 1.0):
        method = sgmcmc_method(kernel="sgld", step_size=0.1, n_chains=1, n_epochs=10,
                               max_step_curvature=cap)
        train = jax.jit(functools.partial(uci.train_config, method=method, optimizer=opt,
                                          n_hidden=16, batch_size=32, n_epochs=20))
        samples, _ = train(jax.random.key(4), X=X, y=y, hparams=hp)
        kept[cap] = np.asarray(ravel_pytree(samples)[0])
    assert not np.all(np.isfinite(kept[None]))     # step x lambda_max >> 2: diverges
    assert np.all(np.isfinite(kept[1.0]))
    assert np.abs(kept[1.0]).max() < 100.0


def test_step_is_capped_only_when_stiff():
    X, _ = _stiff_data()
    module = MLP((16, 1))
    params = module.init(jax.random.key(5), X[:1])
    lam = _explicit_lambda_max(lambda p, X: module.apply(p, X)[:, 0], params, X)
    assert lam > 10.0                                   # the data are stiff
    step = float(stable_step_size(params, X, 0.1, 1.0))
    assert step == pytest.approx(1.0 / lam, rel=1e-3)
    gentle = float(stable_step_size(params, X / 100.0, 0.1, 1.0))
    assert gentle == pytest.approx(0.1)                 # not stiff: the step is unchanged


def test_bad_cap():
    with pytest.raises(ValueError, match="max_step_curvature"):
        sgmcmc_method(max_step_curvature=0.0)
