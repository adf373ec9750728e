"""Checks that kill the surviving mutants of issue 12 section 4 in the VAE modules, the SGD
engine (``train``) and the EM engine (``em``): documented claims against hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.stats import norm

from espresso_jax import em, train
from espresso_jax.nn import vae

# ------------------------------------------------------------------------------------- VAE

TINY = vae.VAE(data_dim=3, latent_dim=2, hidden=(4,), likelihood="gaussian",
               variance="per_feature", activation=jax.nn.tanh)


def test_gaussian_log_likelihood_matches_scipy_with_clipped_logvar_any_batch_shape():
    """``log_likelihood(x (D,), z (..., k)) -> (...)`` is ``Σ_d log N(x_d; loc_d, s_d²)`` with
    the decoder log-variance clipped to ``[-30, 30]``: raw values -40 and 40 act as -30 and 30;
    an unbatched ``z (k,)`` gives a scalar and ``z (2, 3, k)`` a ``(2, 3)`` array."""
    params0 = vae.init(jax.random.key(0), TINY)
    x = np.array([0.2, -0.4, 0.7])
    # one raw vector per clip bound, so the huge -30 term does not hide the +30 one
    for raw, effective in [([-40.0, 0.3, -1.0], [-30.0, 0.3, -1.0]),
                           ([0.5, 0.3, 40.0], [0.5, 0.3, 30.0])]:
        logvar = jnp.array(raw, dtype=params0["params"]["dec_logvar"].dtype)
        params = {"params": {**params0["params"], "dec_logvar": logvar}}
        for shape in [(2,), (2, 3, 2)]:
            z = jax.random.normal(jax.random.key(1), shape)
            ll = TINY.apply(params, jnp.asarray(x, z.dtype), z, method=vae.VAE.log_likelihood)
            loc = np.asarray(TINY.apply(params, z, method=vae.VAE.decode), np.float64)
            want = norm.logpdf(x, loc, np.exp(0.5 * np.array(effective))).sum(axis=-1)
            assert ll.shape == shape[:-1]
            np.testing.assert_allclose(np.asarray(ll, np.float64), want, rtol=1e-5)


def test_conv_encoder_default_channels_are_32_then_64():
    """The default ``conv_features = (32, 64)``: the encoder's two convolutions output 32 and
    64 channels."""
    module = vae.VAE(data_dim=16, latent_dim=2, hidden=(8,), architecture="conv",
                     image_shape=(4, 4, 1))
    params = vae.init(jax.random.key(0), module)
    kernels = [np.shape(leaf) for leaf in jax.tree.leaves(params["params"]["body"])
               if np.ndim(leaf) == 4]
    assert [k[-1] for k in kernels] == [32, 64]


def test_vae_counts_must_be_positive():
    """``n_samples=0`` (fit), ``n=0`` (generate) and ``batch_size=0`` (elbo) raise a
    ValueError naming the argument, before any work."""
    params = vae.init(jax.random.key(0), TINY)
    X = np.zeros((4, 3))
    with pytest.raises(ValueError, match="n_samples"):
        vae.fit(jax.random.key(0), X, module=TINY, optimizer=optax.sgd(1e-3), batch_size=2,
                n_epochs=1, n_samples=0, progress=False)
    with pytest.raises(ValueError, match="^n must be"):
        vae.generate(jax.random.key(0), TINY, params, 0)
    with pytest.raises(ValueError, match="batch_size"):
        vae.elbo_per_example(jax.random.key(0), TINY, params, X, batch_size=0)


# ----------------------------------------------------------------------------- SGD engine

def _sq(params, batch, key):
    del key
    return jnp.mean((batch - params["w"]) ** 2)


def test_make_step_default_is_a_scalar_loss_sgd_step():
    """``make_step(loss, sgd(lr))`` (default ``has_aux=False``: the loss returns a scalar)
    reports the loss at the old parameters and moves ``w`` by ``-lr · ∂loss/∂w``."""
    batch = jnp.array([1.0, 2.0, 4.0])
    state = train.init_state(jax.random.key(0), {"w": jnp.asarray(0.5)}, optax.sgd(0.1))
    new, metrics = train.make_step(_sq, optax.sgd(0.1))(state, batch)
    # loss = mean((x - w)²) = (0.25 + 2.25 + 12.25) / 3; grad = -2 mean(x - w) = -2 · 5.5/3
    np.testing.assert_allclose(float(metrics["loss"]), 14.75 / 3, rtol=1e-6)
    np.testing.assert_allclose(float(new.params["w"]), 0.5 + 0.1 * 2 * 5.5 / 3, rtol=1e-6)


def test_fit_loop_runs_exactly_n_epochs_with_a_short_last_chunk():
    """``n_epochs=5`` in chunks of 2 runs 2 + 2 + 1 epochs: ``n_iter == 5`` and 5 losses."""
    data = jnp.arange(4.0)
    res = train.fit(jax.random.key(0), _sq, {"w": jnp.asarray(0.0)}, data,
                    optimizer=optax.sgd(0.1), batch_size=2, n_epochs=5, epochs_per_chunk=2,
                    progress=False)
    assert res.n_iter == 5
    assert res.history["loss"].shape == (5,)


def test_fit_loop_maximize_keeps_the_highest_evaluation():
    """With ``minimize=False`` ``best_params`` are those of the largest ``eval_fn`` value: SGD
    from ``w = 0`` toward the data mean 1.5 raises ``eval_fn = w`` every epoch, so the best is
    the last epoch's, not the first."""
    data = jnp.array([1.0, 2.0])
    res = train.fit(jax.random.key(0), _sq, {"w": jnp.asarray(0.0)}, data,
                    optimizer=optax.sgd(0.1), batch_size=2, n_epochs=3,
                    eval_fn=lambda p: p["w"], minimize=False, progress=False)
    values = res.eval_history
    assert values.shape == (3,) and np.all(np.diff(values) > 0)
    assert float(res.best_params["w"]) == pytest.approx(values.max(), rel=1e-6)


def test_fit_loop_eval_every_must_be_positive():
    with pytest.raises(ValueError, match="eval_every"):
        train.fit(jax.random.key(0), _sq, {"w": jnp.asarray(0.0)}, jnp.arange(4.0),
                  optimizer=optax.sgd(0.1), batch_size=2, n_epochs=1, eval_every=0,
                  progress=False)


# ------------------------------------------------------------------------------ EM engine

def test_auto_chunk_targets_4_mib_and_one_block_when_it_fits(monkeypatch):
    """On CPU ``chunk_size="auto"`` aims at 4 MiB blocks (``AUTO_CHUNK_BYTES = 4 << 20``)
    where the platform reports no cache sizes: 1024 bytes a row gives 4096-row blocks;
    balanced blocks for 10,000 rows are 3 x 3334; with exactly 4096 rows one block (``None``)
    covers them. (The rule from the CPU's caches: ``tests/test_em.py``.)"""
    if jax.default_backend() != "cpu":
        pytest.skip("auto chunking is CPU only")
    monkeypatch.setattr(em, "cache_sizes", dict)          # a platform that reports no caches
    assert em.AUTO_CHUNK_BYTES == 4 * 1024 * 1024
    assert em.auto_chunk_bytes() == em.AUTO_CHUNK_BYTES
    assert em.resolve_chunk_size("auto", 10_000, 1024) == 3334
    assert em.resolve_chunk_size("auto", 4096, 1024) is None
    assert em.resolve_chunk_size("auto", 4097, 1024) == 2049


def _constant_model(value):
    return em.EMModel(e_step=lambda p, X, w: jnp.sum(w),
                      m_step=lambda p, s: p,
                      objective=lambda p, new, s: jnp.asarray(value))


CONST = _constant_model(1.5)


def test_fit_em_tol_of_exactly_half_an_ulp_resolves():
    """A ``tol`` equal to half a unit in the last place of the objective is resolvable (the
    documented bound is ``tol >=`` half an ulp): a constant objective 1.5 then converges at the
    second iteration; half of that tol cannot, and runs ``max_iter``."""
    X = jnp.ones((3, 1))
    half_ulp = 0.5 * float(np.spacing(np.asarray(1.5, np.dtype(X.dtype))))
    res = em.fit_em(CONST, jnp.zeros(()), X, tol=half_ulp, max_iter=6)
    assert int(res.n_iter) == 2 and bool(res.converged)
    res = em.fit_em(CONST, jnp.zeros(()), X, tol=half_ulp / 2, max_iter=6)
    assert int(res.n_iter) == 6 and not bool(res.converged)


def test_select_best_reads_each_runs_last_recorded_value():
    """The final objective of run ``r`` is ``history[r, n_iter[r] - 1]`` (NaN after it): run 1
    ends at 5, above runs 0 (2) and 2 (4), although run 2 recorded a 9 earlier."""
    nan = np.nan
    results = em.EMResult(params=jnp.arange(3.0),
                          history=jnp.array([[1.0, 2.0, nan, nan],
                                             [0.0, 1.0, 5.0, nan],
                                             [7.0, 8.0, 9.0, 4.0]]),
                          n_iter=jnp.array([2, 3, 4], jnp.int32),
                          converged=jnp.array([True, True, False]))
    best = em.select_best(results)
    assert float(best.params) == 1.0 and int(best.n_iter) == 3
