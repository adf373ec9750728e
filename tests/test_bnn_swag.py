"""SWAG / MultiSWAG (espresso_jax.bnn.swag, swag_fit): moments against numpy over the same
iterates, the sampling covariance against its formula, the SGD stationary covariance against
the Bayesian linear-regression posterior (Mandt et al. 2017), the MultiSWAG mixture, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from jax.flatten_util import ravel_pytree
from scipy.special import logsumexp, softmax

from espresso_jax import metrics, train
from espresso_jax.bnn import swag, swag_fit
from espresso_jax.linear import bayes

T_COLLECT, RANK = 7, 3  # 7 iterates into 3 columns: the ring buffer wraps twice


def _linear(p, x):
    return x @ p["w"] + p["b"][None]


def _sq_loss(p, batch, key):
    x, t = batch
    return 0.5 * jnp.mean(jnp.sum(jnp.square(t - _linear(p, x)), axis=-1))


@pytest.fixture(scope="module")
def recorded():
    """A SWAG collection on a two-output linear model (P = 3*2 + 2 = 8), float64, with the
    iterates it collected."""
    with jax.enable_x64(True), jax.numpy_dtype_promotion("strict"), \
            jax.numpy_rank_promotion("raise"):
        rng = np.random.default_rng(0)
        X = jnp.asarray(rng.normal(size=(40, 3)))
        Y = jnp.asarray(X @ rng.normal(size=(3, 2)) + 0.5 * rng.normal(size=(40, 2)))
        params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}
        opt = optax.sgd(0.1)
        state = train.init_state(jax.random.key(1), params, opt)
        step = train.make_step(_sq_loss, opt)
        run = jax.jit(lambda k, s: swag.collect(k, step, s, (X, Y), batch_size=8,
                                                n_collect=T_COLLECT, rank=RANK,
                                                epochs_per_collect=2, return_iterates=True))
        final, moments, losses, iterates = run(jax.random.key(2), state)
        # the same rounds replayed with the engine alone: the iterates are SGD's
        rounds = jax.jit(lambda k, s: train.run_epochs(k, step, s, (X, Y), batch_size=8,
                                                        n_epochs=2)[0])
        replay, s = [], state
        for k in jax.random.split(jax.random.key(2), T_COLLECT):
            s = rounds(k, s)
            replay.append(s.params)
    return dict(final=final, moments=moments, losses=losses, iterates=iterates, replay=replay)


def _numpy_moments(iterates):
    """Mean, mean square and the ring buffer of the last RANK deviation columns
    theta_i - mean(theta_0..theta_i), computed from the flat iterates (T, P) in numpy."""
    theta = np.asarray(iterates, np.float64)
    mean = theta.mean(0)
    var = theta.var(0)  # numpy's two-pass variance
    buffer = np.zeros((RANK, theta.shape[1]))
    for i in range(theta.shape[0]):
        buffer[i % RANK] = theta[i] - theta[: i + 1].mean(0)
    return mean, var, buffer


def _flat_iterates(iterates):
    return np.stack([ravel_pytree(jax.tree.map(lambda a, i=i: a[i], iterates))[0]
                     for i in range(T_COLLECT)])


def test_moments_equal_numpy_over_the_recorded_iterates(recorded, x64):
    it = recorded["iterates"]
    flat = _flat_iterates(it)
    # the collected iterates are the engine's own, and the last is the final state
    for i, p in enumerate(recorded["replay"]):
        np.testing.assert_allclose(flat[i], ravel_pytree(p)[0], rtol=1e-12)
    np.testing.assert_array_equal(flat[-1],
                                  ravel_pytree(recorded["final"].params)[0])
    assert len({tuple(r) for r in flat}) == T_COLLECT  # SGD moved between collections
    mean, var, buffer = _numpy_moments(flat)
    m = recorded["moments"]
    assert int(m.n) == T_COLLECT and recorded["losses"]["loss"].shape == (T_COLLECT,)
    # float64: the running-mean recursion and numpy's batch mean differ by rounding only;
    # 1e-6 is the tolerance (atol for entries near zero)
    np.testing.assert_allclose(ravel_pytree(swag.swa_params(m))[0], mean,
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ravel_pytree(m.var)[0], var, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ravel_pytree(swag.second_moment(m))[0], np.square(flat).mean(0),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(swag.deviation_matrix(m).T, buffer, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(swag.diagonal_variance(m), var, rtol=1e-6, atol=1e-12)


def _formula(var, buffer, n_cols):
    # Maddox et al. (2019) eq. (1): (Sigma_diag + D D^T / (K - 1)) / 2; the reference code
    # writes it as scale=0.5 times (var + D D^T / (K - 1)): the same
    return 0.5 * (np.diag(var) + buffer.T @ buffer / max(n_cols - 1, 1))


def test_sampling_covariance_equals_the_formula(recorded, x64):
    m = recorded["moments"]
    mean, var, buffer = _numpy_moments(_flat_iterates(recorded["iterates"]))
    cov = _formula(var, buffer, RANK)
    np.testing.assert_allclose(swag.covariance(m), cov, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(swag.covariance(m, scale=2.0, diagonal_only=True),
                               2.0 * np.diag(var), rtol=1e-6, atol=1e-12)
    n_draws = 40_000
    keys = jax.random.split(jax.random.key(3), n_draws)
    cases = [(kw, target, many) for kw, target in
             (({}, cov), ({"scale": 2.0, "diagonal_only": True}, 2.0 * np.diag(var)))
             for many in (False, True)]
    for kw, target, many in cases:
        # sample vmapped over keys, and sample_many's batched draws (same distribution)
        draws = (swag.sample_many(jax.random.key(4), m, n_draws, **kw) if many else
                 jax.vmap(lambda k, kw=kw: swag.sample(k, m, **kw))(keys))
        flat = np.asarray(jax.vmap(lambda p: ravel_pytree(p)[0])(draws))
        emp = np.cov(flat.T)
        # normal-theory standard error of a sample covariance entry:
        # sqrt((S_ii S_jj + S_ij^2) / n); 5 of them over the 64 entries (key 3: at most 2.8;
        # sample_many, key 4: at most 3.2)
        se = np.sqrt((np.outer(np.diag(target), np.diag(target)) + target ** 2) / n_draws)
        z = np.max(np.abs(emp - target) / np.where(se > 0, se, np.inf))
        assert np.all(np.abs(emp - target) <= 5 * se + 1e-15), z
        assert np.all(np.abs(flat.mean(0) - mean) <= 5 * np.sqrt(np.diag(target) / n_draws))
    # fewer iterates than columns: K' = n columns (here 2, divisor 1), the rest are zero
    partial = swag.init({"w": jnp.zeros(3)}, 5)
    thetas = np.random.default_rng(1).normal(size=(2, 3))
    for t in thetas:
        partial = swag.update(partial, {"w": jnp.asarray(t)})
    dev = np.stack([thetas[0] - thetas[:1].mean(0), thetas[1] - thetas.mean(0)])  # first: 0
    np.testing.assert_allclose(
        swag.covariance(partial),
        _formula(thetas.var(0), dev, 2), rtol=1e-10)


def test_float32_variance_of_a_large_weight():
    # a weight at 1000 moving by 1e-2: the mean of squares minus the squared mean keeps no
    # digit of the variance in float32 (the same running means in numpy float32 gave 0, 0.31,
    # -0.19, 0 for the true 1.2e-4, 1.0e-4, 0.8e-4, 1.0e-4);
    # the centred (Welford) moment keeps it to float32's resolution of the deviations
    theta = (1000.0 + 0.01 * np.random.default_rng(2).normal(size=(200, 4))).astype(np.float32)
    state = swag.init({"w": jnp.zeros(4, jnp.float32)}, 2)
    state = jax.lax.fori_loop(0, 200, lambda i, s: swag.update(s, {"w": jnp.asarray(theta)[i]}),
                              state)
    # rounding: each deviation carries ~ulp(1000)/2 = 3e-5 of error against a 1e-2 spread
    np.testing.assert_allclose(swag.diagonal_variance(state), theta.astype(np.float64).var(0),
                               rtol=0.02)


# Mandt, Hoffman & Blei (2017): constant-rate SGD on a quadratic loss U(theta) / N with
# Hessian A and per-example gradient covariance C is stationary at N(theta*, Sigma) with
# A Sigma + Sigma A = (eps / B) C. Bayesian linear regression with a whitened design
# (X^T X = N I) and well-specified noise has A = (beta + alpha / N) I and C ~ beta I, so
# Sigma = eps / (2 B) I, which is the posterior covariance (alpha + beta N)^{-1} I at Mandt's
# optimal rate eps* = 2 B / (N beta) (their Theorem 1 with D / Tr(C) = 1 / beta).
N_ROWS, BATCH, BETA, ALPHA = 512, 8, 4.0, 1.0


@pytest.fixture(scope="module")
def mandt():
    with jax.enable_x64(True), jax.numpy_dtype_promotion("strict"), \
            jax.numpy_rank_promotion("raise"):
        rng = np.random.default_rng(0)
        X = np.sqrt(N_ROWS) * np.linalg.qr(rng.normal(size=(N_ROWS, 2)))[0]
        y = X @ np.array([0.7, -1.2]) + rng.normal(size=N_ROWS) / np.sqrt(BETA)
        post = bayes.posterior(X, y, alpha=ALPHA, beta=BETA)
        Xj, yj = jnp.asarray(X), jnp.asarray(y)

        def loss(theta, batch, key):
            # Mandt et al.'s minibatches: B rows drawn with replacement (from the step's key)
            del batch
            rows = jax.random.randint(key, (BATCH,), 0, N_ROWS)
            r = yj[rows] - Xj[rows] @ theta
            return 0.5 * BETA * jnp.mean(r ** 2) + 0.5 * ALPHA / N_ROWS * jnp.sum(theta ** 2)

        steps = jnp.zeros((N_ROWS // BATCH, 1))  # one engine epoch = N / B steps

        @jax.jit
        def one(key, eps):
            opt = optax.sgd(eps)
            step = train.make_step(loss, opt)
            st = train.init_state(key, post.mean, opt)
            st, _ = train.run_epochs(jax.random.fold_in(key, 1), step, st, steps, batch_size=1,
                                     n_epochs=20)  # burn-in: contraction e^-40
            _, sw, _, _ = swag.collect(jax.random.fold_in(key, 2), step, st, steps,
                                       batch_size=1, n_collect=1600, rank=50)
            return swag.covariance(sw), swag.diagonal_variance(sw), swag.swa_params(sw)

        eps_star = 2.0 * BATCH / (N_ROWS * BETA)
        rates = jnp.asarray([eps_star, 2.0 * eps_star])
        covs, diags, swa = jax.vmap(one, in_axes=(None, 0))(jax.random.key(0), rates)
        # the discrete-time stationary covariance with the exact C at theta* (scipy)
        m = np.asarray(post.mean)
        A = (BETA * X.T @ X + ALPHA * np.eye(2)) / N_ROWS
        g = -BETA * (y - X @ m)[:, None] * X + ALPHA * m / N_ROWS
        C = np.cov(g.T, bias=True)
        lyap = [scipy.linalg.solve_discrete_lyapunov(np.eye(2) - e * A, e ** 2 * C / BATCH)
                for e in np.asarray(rates)]
    return dict(S_N=np.asarray(post.cov), m_N=m, covs=np.asarray(covs),
                diags=np.asarray(diags), swa=np.asarray(swa), lyap=lyap)


def _whitened_eigs(cov, S_N):
    L = np.linalg.cholesky(np.linalg.inv(S_N))
    return np.linalg.eigvalsh(L.T @ cov @ L)


def test_constant_rate_swag_covariance_matches_the_posterior(mandt):
    S_N = mandt["S_N"]
    np.testing.assert_allclose(S_N, np.eye(2) / (ALPHA + BETA * N_ROWS), rtol=1e-10,
                               atol=1e-15)
    # the theory's own error at eps*: the Lyapunov covariance is 0.97-0.99 x S_N
    np.testing.assert_allclose(np.diag(mandt["lyap"][0]) / np.diag(S_N), 1.0, atol=0.04)
    # diagonal moments vs the Lyapunov prediction: over 30 keys the ratio was
    # 1.000 +- 0.033 (sd), range 0.92-1.08; bound 4 sd
    for diag, lyap in zip(mandt["diags"], mandt["lyap"], strict=True):
        np.testing.assert_allclose(diag / np.diag(lyap), 1.0, atol=0.13)
    # the full SWAG covariance (diag + rank-50 part) / 2 within a factor 1.4 of the posterior
    # in every direction: over 30 keys its whitened eigenvalues spanned 0.84-1.30
    eigs = _whitened_eigs(mandt["covs"][0], S_N)
    assert np.all((eigs > 1 / 1.4) & (eigs < 1.4)), eigs
    # SWA is the posterior mean: over 30 keys at most 0.077 posterior sd away (1,600
    # near-independent iterates: sd 0.025); bound 0.15
    z = np.abs(mandt["swa"][0] - mandt["m_N"]) / np.sqrt(np.diag(S_N))
    assert np.all(z < 0.15), z
    # twice the rate doubles the stationary covariance: outside the factor (30 keys: 1.61-2.66)
    eigs2 = _whitened_eigs(mandt["covs"][1], S_N)
    assert np.all(eigs2 > 1.4), eigs2


def _init_lin(key):
    return {"w": jax.random.normal(key, (3,)), "b": jnp.zeros(())}


def _lin_loss(p, batch, key):
    x, t = batch
    return 0.5 * jnp.mean(jnp.square(t - x @ p["w"] - p["b"]))


MULTI = dict(batch_size=16, n_epochs=5, n_collect=6, rank=3)


@pytest.fixture(scope="module")
def multi():
    with jax.enable_x64(True), jax.numpy_dtype_promotion("strict"), \
            jax.numpy_rank_promotion("raise"):
        rng = np.random.default_rng(4)
        X = jnp.asarray(rng.normal(size=(64, 3)))
        y = jnp.asarray(X @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=64))
        opts = dict(optimizer=optax.adam(0.05), swag_optimizer=optax.sgd(0.05))
        fit = swag_fit.fit(jax.random.key(5), _lin_loss, _init_lin, (X, y), n_models=3,
                           **opts, **MULTI)
        single = jax.jit(lambda k: swag_fit.run(k, _lin_loss, _init_lin, (X, y), **opts,
                                                **MULTI))
        singles = [single(k) for k in jax.random.split(jax.random.key(5), 3)]
        draws = jax.jit(lambda k: swag_fit.sample_models(k, fit.params, 500))(jax.random.key(6))
        means, precisions = jax.jit(lambda d: swag_fit.predict_regression(
            lambda p, x: (x @ p["w"] + p["b"], 4.0), d, X[:10], chunk_size=128))(draws)

        def logits(p, x):
            f = x @ p["w"]
            return jnp.stack([f, 0.5 * f + p["b"], jnp.zeros_like(f)], axis=-1)

        proba = jax.jit(lambda d: swag_fit.predict_proba(logits, d, X[:10]))(draws)
    return dict(X=np.asarray(X), y=np.asarray(y), data=(X, y), opts=opts, fit=fit,
                singles=singles, draws=draws, means=means, precisions=precisions, proba=proba)


def test_multiswag_is_a_vmap_of_independent_runs(multi, x64):
    fit = multi["fit"]
    assert fit.history["loss"].shape == (3, 5) and fit.history["swag_loss"].shape == (3, 6)
    assert fit.n_iter == 11 and not fit.converged
    for i, (_, moments, pre, _) in enumerate(multi["singles"]):
        # vmapped and single runs: the same arithmetic up to float64 rounding
        for a, b in zip(jax.tree.leaves(jax.tree.map(lambda a, i=i: a[i], fit.params)),
                        jax.tree.leaves(moments), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(fit.history["loss"][i], pre, rtol=1e-9)
    w = np.asarray(fit.params.mean["w"])
    assert np.min(np.abs(w[:, None] - w[None, :]) + np.eye(3)[..., None]) > 0  # distinct runs
    # a second fit with another key reuses the compiled call
    size = swag_fit._fit_impl._cache_size()
    again = swag_fit.fit(jax.random.key(7), _lin_loss, _init_lin, multi["data"], n_models=3,
                         **multi["opts"], **MULTI)
    assert swag_fit._fit_impl._cache_size() == size
    assert not np.allclose(np.asarray(again.params.mean["w"]), w)


def test_multiswag_mixture_weighs_models_equally(multi, x64):
    fit, draws = multi["fit"], multi["draws"]
    w = np.asarray(draws["w"]).reshape(3, 500, 3)  # model-major
    for m in range(3):
        st = jax.tree.map(lambda a, m=m: a[m], fit.params)
        sd = np.sqrt(np.diag(np.asarray(swag.covariance(st)))[1:])  # ravel order: b, w
        np.testing.assert_array_less(np.abs(w[m].mean(0) - np.asarray(st.mean["w"])),
                                     5 * sd / np.sqrt(500) + 1e-12)
    X, y = multi["X"][:10], multi["y"][:10]
    b = np.asarray(draws["b"]).reshape(3, 500)
    mu = np.einsum("nd,msd->msn", X, w) + b[..., None]  # (models, draws, n)
    np.testing.assert_allclose(multi["means"], mu.reshape(1500, 10), rtol=1e-10)
    np.testing.assert_array_equal(multi["precisions"], 4.0)
    # the mixture log-likelihood of all draws is the log of the equal average of the models'
    # own SWAG mixtures
    log_n = -0.5 * np.log(2 * np.pi / 4.0) - 0.5 * 4.0 * (y - mu) ** 2
    per_model = logsumexp(log_n, axis=1) - np.log(500)
    expected = logsumexp(per_model, axis=0) - np.log(3)
    got = metrics.mixture_log_likelihood(jnp.asarray(y), multi["means"], 1.0 / multi["precisions"])
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    f = np.einsum("nd,msd->msn", X, w)
    logits = np.stack([f, 0.5 * f + b[..., None], np.zeros_like(f)], axis=-1)
    np.testing.assert_allclose(multi["proba"], softmax(logits, axis=-1).mean((0, 1)),
                               rtol=1e-10)


def test_bad_input_raises_naming_the_argument():
    X, y = np.zeros((8, 3)), np.zeros(8)
    opts = dict(optimizer=optax.adam(0.05), swag_optimizer=optax.sgd(0.05), batch_size=4,
                n_epochs=1, n_collect=2, rank=2)

    def fit(**kw):
        args = {**opts, **kw}
        data = args.pop("data", (X, y))
        return swag_fit.fit(args.pop("key", jax.random.key(0)), _lin_loss, _init_lin, data,
                            **args)

    with pytest.raises(ValueError, match="rank"):
        swag.init({"w": jnp.zeros(3)}, 0)
    with pytest.raises(TypeError, match="rank"):
        swag.init({"w": jnp.zeros(3)}, 2.0)
    for name, bad in (("rank", 0), ("n_collect", 0), ("epochs_per_collect", 0),
                      ("n_models", 0), ("n_epochs", -1), ("batch_size", 9)):
        with pytest.raises(ValueError, match=name):
            fit(**{name: bad})
    with pytest.raises(TypeError, match="swag_optimizer"):
        fit(swag_optimizer="sgd")
    with pytest.raises(TypeError, match="key"):
        fit(key=0)
    with pytest.raises(ValueError, match="NaN"):
        fit(data=(np.full((8, 3), np.nan), y))
    with pytest.raises(ValueError, match="leading axis"):
        fit(data=(X, y[:5]))
    step = train.make_step(_lin_loss, optax.sgd(0.1))
    ts = train.init_state(jax.random.key(0), _init_lin(jax.random.key(1)), optax.sgd(0.1))
    for name, kw in (("batch_size", dict(batch_size=9)), ("n_collect", dict(n_collect=0)),
                     ("epochs_per_collect", dict(epochs_per_collect=0)),
                     ("rank", dict(rank=0))):
        args = {"batch_size": 4, "n_collect": 2, "rank": 2, **kw}
        with pytest.raises(ValueError, match=name):
            swag.collect(jax.random.key(0), step, ts, (X, y), **args)
    state = swag.init({"w": jnp.zeros(3)}, 2)
    with pytest.raises(ValueError, match="scale"):
        swag.sample(jax.random.key(0), state, scale=-1.0)
    with pytest.raises(ValueError, match="n_samples"):
        swag.sample_many(jax.random.key(0), state, 0)
    with pytest.raises(ValueError, match="scale"):
        swag.sample_many(jax.random.key(0), state, 2, scale=0.0)
    with pytest.raises(ValueError, match="states"):
        swag_fit.sample_models(jax.random.key(0), state, 4)
    with pytest.raises(ValueError, match="n_samples"):
        swag_fit.sample_models(jax.random.key(0), jax.tree.map(lambda a: a[None], state), 0)
