"""The engines' documented arithmetic term by term (espresso_jax.em, espresso_jax.train),
against NumPy reimplementations of the formulas in their docstrings: the stepwise-EM
recursion ``s <- (1 - rho_t) s + rho_t (N / B) e_step``, ``rho_t = (t + t0)^(-kappa)``; the
strided row blocks of ``sum_blocks``; ``pad_rows``; and the host loop of ``fit_loop`` (chunks,
evaluation epochs, ``minimize=False``). Added for the mutation score of issue 12.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from espresso_jax import em, train

# ----------------------------------------------------------------------------- em


def _shift_model(n_rows: int) -> em.EMModel:
    """A scalar "model" whose statistic depends on the parameter: ``s = Σ w (x + p)``,
    ``p <- s / (2 N)``; the objective reports the new parameter."""
    return em.EMModel(e_step=lambda p, X, w: jnp.sum(w * (X[:, 0] + p)),
                      m_step=lambda p, s: s / (2.0 * n_rows),
                      objective=lambda p, new, s: new)


@pytest.mark.parametrize(("batch_size", "kappa", "t0"), [(4, None, None), (12, 0.9, 0.5)])
def test_stepwise_em_follows_the_step_size_recursion(batch_size, kappa, t0):
    """Constant rows make every minibatch's statistic ``B (c + p)`` whatever the shuffle, so
    the run must equal the documented recursion iterated in NumPy, step by step (``None``:
    the documented defaults ``kappa = 0.6``, ``t0 = 2``)."""
    n, c, p0, n_epochs = 12, 3.0, 1.0, 2
    X = jnp.full((n, 1), c, jnp.float32)
    options = {} if kappa is None else {"kappa": kappa, "t0": t0}
    res = em.fit_stepwise_em(jax.random.key(0), _shift_model(n), jnp.float32(p0), X,
                             batch_size=batch_size, n_epochs=n_epochs, **options)
    kappa, t0 = (0.6, 2.0) if kappa is None else (kappa, t0)
    s = (n / batch_size) * batch_size * (c + p0)            # stats0 from the first batch
    p = s / (2 * n)
    history = []
    for t in range(1, n_epochs * (n // batch_size) + 1):
        rho = (t + t0) ** (-kappa)
        s = (1 - rho) * s + rho * (n / batch_size) * batch_size * (c + p)
        p = s / (2 * n)
        history.append(p)
    np.testing.assert_allclose(np.asarray(res.history), history, rtol=1e-5)
    np.testing.assert_allclose(float(res.params), p, rtol=1e-5)
    np.testing.assert_allclose(float(res.stats), s, rtol=1e-5)
    assert int(res.n_iter) == len(history) and not bool(res.converged)


def test_stepwise_em_step_size_exponent_is_checked():
    X = jnp.zeros((4, 1), jnp.float32)
    for kappa in (0.5, 1.01):
        with pytest.raises(ValueError, match="kappa must lie in"):
            em.fit_stepwise_em(jax.random.key(0), _shift_model(4), jnp.float32(0.0), X,
                               batch_size=2, n_epochs=1, kappa=kappa)
    with pytest.raises(ValueError, match="n_epochs"):
        em.fit_stepwise_em(jax.random.key(0), _shift_model(4), jnp.float32(0.0), X,
                           batch_size=2, n_epochs=0)


def test_sum_blocks_sums_strided_blocks():
    """Chunk ``j`` holds rows ``j, j + n_chunks, ...``: a non-additive ``fn`` (the first row of
    its block) shows which rows each block got; an additive one gives the full sum."""
    X = jnp.arange(12.0, dtype=jnp.float32)[:, None] * jnp.ones((1, 2), jnp.float32)
    first = em.sum_blocks(lambda b: b[0], (X,), 4)                 # 3 chunks of 4 rows
    np.testing.assert_allclose(np.asarray(first), [0 + 1 + 2] * 2)
    total = em.sum_blocks(lambda b: jnp.sum(b ** 2, axis=0), (X,), 3)
    np.testing.assert_allclose(np.asarray(total), [np.sum(np.arange(12.0) ** 2)] * 2)
    whole = em.sum_blocks(lambda b: b[0], (X,), 12)                # one block: fn(X)
    np.testing.assert_allclose(np.asarray(whole), [0.0, 0.0])
    stats = em.sum_stats(lambda p, Xb, wb: jnp.sum(wb * Xb[:, 0]) + p, jnp.float32(1.0), X,
                         jnp.ones(12, jnp.float32), 4)          # p counted once per block
    np.testing.assert_allclose(float(stats), 66.0 + 3.0)


def test_pad_rows_appends_zero_rows_of_weight_zero():
    X = jnp.ones((10, 2), jnp.float32)
    w = jnp.full((10,), 2.0, jnp.float32)
    Xp, wp = em.pad_rows(X, w, 4)
    assert Xp.shape == (12, 2) and wp.shape == (12,)
    np.testing.assert_array_equal(np.asarray(Xp[10:]), 0.0)
    np.testing.assert_array_equal(np.asarray(wp), [2.0] * 10 + [0.0, 0.0])
    for chunk in (None, 5, 10, 20):                                # nothing to pad
        Xs, ws = em.pad_rows(X, w, chunk)
        assert Xs.shape == (10, 2) and ws.shape == (10,)


def test_select_best_takes_the_highest_final_objective():
    nan = float("nan")
    res = em.EMResult(params=jnp.array([10.0, 20.0, 30.0]),
                      history=jnp.array([[1.0, 5.0, nan], [2.0, 3.0, 4.0], [9.0, nan, nan]]),
                      n_iter=jnp.array([2, 3, 2], jnp.int32),
                      converged=jnp.array([True, False, True]))
    best = em.select_best(res)     # finals: 5, 4, NaN (NaN never wins)
    assert float(best.params) == 10.0 and int(best.n_iter) == 2


# ----------------------------------------------------------------------------- train


def _mean_loss(params, batch, key):
    del key
    return 0.5 * jnp.mean((batch - params) ** 2)


def test_fit_loop_chunks_evaluations_and_maximisation():
    """Evaluations happen every ``eval_every`` epochs and at the last one; with
    ``minimize=False`` the best parameters are those of the highest evaluation."""
    data = jnp.linspace(0.0, 2.0, 8, dtype=jnp.float32)
    calls = []
    res = train.fit(jax.random.key(0), _mean_loss, jnp.float32(0.0), data,
                    optimizer=optax.sgd(0.5), batch_size=8, n_epochs=7, eval_every=3,
                    eval_fn=lambda p: -((p - 0.5) ** 2), minimize=False, progress=False,
                    callbacks=[lambda epoch, state, last: calls.append((epoch, last["eval"]))])
    # full-batch SGD on 0.5 (p - 1)^2: p_t = 1 - 0.5^t, evaluated after epochs 3, 6, 7
    p = {t: 1.0 - 0.5 ** t for t in (3, 6, 7)}
    assert [e for e, _ in calls] == [3, 6, 7] and res.n_iter == 7
    np.testing.assert_allclose([v for _, v in calls], [-((p[t] - 0.5) ** 2) for t in p],
                               rtol=1e-5)
    np.testing.assert_allclose(float(res.best_params), p[3], rtol=1e-6)   # highest eval
    np.testing.assert_allclose(float(res.params), p[7], rtol=1e-6)
    np.testing.assert_allclose(res.history["loss"], [0.5 * np.mean(
        (np.linspace(0, 2, 8) - (1 - 0.5 ** t)) ** 2) for t in range(7)], rtol=1e-5)
    assert not res.converged and res.eval_history.shape == (3,)


def test_fit_loop_default_chunks_give_about_twenty_updates():
    data = jnp.zeros((4,), jnp.float32)
    for n_epochs in (1, 20, 45):
        seen: list[int] = []
        train.fit(jax.random.key(1), _mean_loss, jnp.float32(1.0), data,
                  optimizer=optax.sgd(0.1), batch_size=2, n_epochs=n_epochs, progress=False,
                  callbacks=[lambda epoch, state, last, seen=seen: seen.append(epoch)])
        chunk = max(1, math.ceil(n_epochs / 20))
        assert seen == [min(n_epochs, k) for k in range(chunk, n_epochs + chunk, chunk)]


def test_fit_loop_minimize_keeps_the_lowest_evaluation_and_stops_after_patience():
    """Minimising a validation metric that improves and then worsens: the best parameters are
    those of the lowest evaluation (not the first), and the loop stops after ``patience``
    evaluations without improvement."""
    data = jnp.linspace(0.0, 2.0, 8, dtype=jnp.float32)
    res = train.fit(jax.random.key(0), _mean_loss, jnp.float32(0.0), data,
                    optimizer=optax.sgd(0.5), batch_size=8, n_epochs=20, eval_every=1,
                    eval_fn=lambda p: (p - 0.75) ** 2, patience=2, progress=False)
    # p_t = 1 - 0.5^t = 0.5, 0.75, 0.875, 0.9375: lowest at epoch 2, two worse ones, stop at 4.
    p = [1.0 - 0.5 ** t for t in (1, 2, 3, 4)]
    np.testing.assert_allclose(res.eval_history, [(q - 0.75) ** 2 for q in p], rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(float(res.best_params), p[1], rtol=1e-6)
    assert res.converged and res.n_iter == 4


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_fit_loop_counts_every_evaluation_without_improvement(patience):
    """A validation metric that never improves on +inf (a diverged model) stops the loop after
    exactly ``patience`` evaluations, and the best parameters fall back to the last ones."""
    data = jnp.linspace(0.0, 2.0, 8, dtype=jnp.float32)
    res = train.fit(jax.random.key(0), _mean_loss, jnp.float32(0.0), data,
                    optimizer=optax.sgd(0.5), batch_size=8, n_epochs=10, eval_every=1,
                    eval_fn=lambda p: math.inf, patience=patience, progress=False)
    assert res.converged and res.n_iter == patience and len(res.eval_history) == patience
    np.testing.assert_allclose(float(res.best_params), 1.0 - 0.5 ** patience, rtol=1e-6)
