"""The SGD engine: steps, shuffled epochs, chunked fits, early stopping, vmapped runs, state I/O."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from espresso_jax import train
from espresso_jax.nn.modules import MLP


@functools.partial(jax.jit, static_argnames=("n", "d", "noise"))  # one program per size
def _linear_data(key, n=256, d=3, noise=0.1):
    kx, kn = jax.random.split(key)
    X = jax.random.normal(kx, (n, d))
    w = jnp.arange(1.0, d + 1.0)
    return X, X @ w + noise * jax.random.normal(kn, (n,)), w


def _mse(params, batch, key):
    del key
    X, y = batch
    return jnp.mean((X @ params["w"] + params["b"] - y) ** 2)


def test_fit_reaches_least_squares_solution():
    """Adam on the mean squared error converges to numpy's least-squares solution."""
    X, y, _ = _linear_data(jax.random.key(0))
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    res = train.fit(jax.random.key(1), _mse, params, (X, y), optimizer=optax.adam(0.05),
                    batch_size=32, n_epochs=60, progress=False)
    A = np.c_[np.asarray(X), np.ones(len(X))]
    coef = np.linalg.lstsq(A, np.asarray(y), rcond=None)[0]
    # minibatch Adam noise at lr 0.05 after 480 steps: parameters within 2e-2 of the optimum
    np.testing.assert_allclose(res.state.params["w"], coef[:3], atol=2e-2)
    np.testing.assert_allclose(res.state.params["b"], coef[3], atol=2e-2)
    assert res.history["loss"].shape == (60,)
    assert res.history["loss"][-1] < 0.1 * res.history["loss"][0]
    assert int(res.state.step) == 60 * (256 // 32)
    assert res.n_iter == 60 and not res.converged


def test_epoch_visits_every_row_once():
    """One epoch is a permutation: every row appears once when batch_size divides N."""
    index = train.epoch_batches(jax.random.key(3), 40, 8)
    assert index.shape == (5, 8)
    np.testing.assert_array_equal(np.sort(np.asarray(index).ravel()), np.arange(40))
    dropped = train.epoch_batches(jax.random.key(3), 42, 8)
    assert dropped.shape == (5, 8) and len(np.unique(np.asarray(dropped))) == 40


def test_run_epochs_cuts_batches_from_the_given_permutation():
    """``permutation=`` replaces jax.random.permutation: with the reversed order the batches
    are consecutive rows from the end (the step records each batch's first row)."""
    def reverse(key, n):
        return jnp.arange(n - 1, -1, -1)

    index = train.epoch_batches(jax.random.key(0), 10, 3, permutation=reverse)
    np.testing.assert_array_equal(index, [[9, 8, 7], [6, 5, 4], [3, 2, 1]])

    def step(state, batch):
        return state, {"first": batch[0].astype(jnp.float32)}

    _, metrics = jax.jit(lambda k: train.run_epochs(
        k, step, jnp.zeros(()), jnp.arange(10), batch_size=5, n_epochs=2,
        permutation=reverse))(jax.random.key(1))
    np.testing.assert_array_equal(metrics["first"], [6.5, 6.5])   # mean of rows 9 and 4


def test_step_matches_manual_sgd_update():
    """make_step applies exactly one optimiser update of the loss gradient."""
    X, y, _ = _linear_data(jax.random.key(0), n=16)
    params = {"w": jnp.ones(3), "b": jnp.zeros(())}
    opt = optax.sgd(0.1)
    state = train.init_state(jax.random.key(1), params, opt)
    step = train.make_step(_mse, opt)
    new, metrics = jax.jit(step)(state, (X, y))  # jitted as in the engine: not eager ops
    # the manual gradient and loss, jitted too
    loss, grads = jax.jit(jax.value_and_grad(_mse))(params, (X, y), None)
    np.testing.assert_allclose(new.params["w"], params["w"] - 0.1 * grads["w"], rtol=1e-6)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-6)
    assert int(new.step) == 1
    assert not np.array_equal(jax.random.key_data(new.key), jax.random.key_data(state.key))
    assert train.make_step(_mse, opt) is step  # cached: jitted loops are not rebuilt


def test_loss_key_changes_every_step():
    """The loss receives a fresh subkey each step (stochastic losses are not frozen)."""
    def noisy(params, batch, key):
        del batch
        draw = jax.random.normal(key, ())
        return jnp.sum(params) * 0.0 + draw, {"draw": draw}

    res = train.fit(jax.random.key(0), noisy, jnp.zeros(2), jnp.zeros((10, 1)),
                    optimizer=optax.sgd(0.0), batch_size=1, n_epochs=5, has_aux=True,
                    progress=False)
    draws = res.history["draw"]
    assert len(np.unique(draws)) == 5
    # per-epoch means of 10 standard-normal draws: |mean| < 6/sqrt(10) (6 standard errors)
    assert np.all(np.abs(draws) < 6 / np.sqrt(10))


def test_second_fit_does_not_recompile():
    X, y, _ = _linear_data(jax.random.key(0), n=64)
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    opt = optax.adam(1e-2)
    kwargs = dict(optimizer=opt, batch_size=16, n_epochs=4, epochs_per_chunk=2, progress=False)
    train.fit(jax.random.key(0), _mse, params, (X, y), **kwargs)
    before = train._run_chunk._cache_size()
    res = train.fit(jax.random.key(5), _mse, params, (X, y), **kwargs)
    assert train._run_chunk._cache_size() == before
    assert res.n_iter == 4


def test_early_stopping_keeps_best_params():
    """With a validation metric that gets worse, the run stops after `patience` evaluations
    and returns the parameters of the best evaluation."""
    X, y, _ = _linear_data(jax.random.key(0), n=64)
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    target = {"w": jnp.zeros(3), "b": jnp.zeros(())}  # validation prefers the initial params

    def distance(p):
        return float(sum(jnp.sum((a - b) ** 2)
                         for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(target),
                                         strict=True)))

    seen = []
    res = train.fit(jax.random.key(0), _mse, params, (X, y), optimizer=optax.adam(0.05),
                    batch_size=16, n_epochs=50, eval_fn=distance, patience=3, progress=False,
                    callbacks=[lambda epoch, state, m: seen.append((epoch, m["eval"]))])
    assert res.converged and res.n_iter == 4
    assert len(res.eval_history) == 4 and np.all(np.diff(res.eval_history) > 0)
    np.testing.assert_allclose(distance(res.best_params), res.eval_history[0], rtol=1e-6)
    assert [e for e, _ in seen] == [1, 2, 3, 4]


def test_run_epochs_vmaps_over_keys_and_hyperparameters():
    """Many trainings in one compiled call equal the same trainings run one by one."""
    X, y, _ = _linear_data(jax.random.key(0), n=64)
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    opt = optax.sgd(0.05)

    def run(key, scale):
        def loss(p, batch, k):
            return scale * _mse(p, batch, k)
        state = train.init_state(key, params, opt)
        state, metrics = train.run_epochs(key, train.make_step(loss, opt), state, (X, y),
                                          batch_size=16, n_epochs=3)
        return state.params["w"], metrics["loss"]

    keys = jax.random.split(jax.random.key(1), 3)
    scales = jnp.array([0.5, 1.0, 2.0])
    w_batched, loss_batched = jax.jit(jax.vmap(run))(keys, scales)
    for i in range(3):
        w_i, loss_i = jax.jit(run)(keys[i], scales[i])
        np.testing.assert_allclose(w_batched[i], w_i, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(loss_batched[i], loss_i, rtol=1e-5)


def test_run_epochs_on_epoch_hook_is_called_once_per_epoch_and_changes_nothing():
    """The progress hook runs on the host once per epoch, also under vmap, and the trained
    parameters and losses are bit-for-bit those of a run without it."""
    X, y, _ = _linear_data(jax.random.key(0), n=64)
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    opt = optax.adam(0.05)
    step = train.make_step(_mse, opt)
    seen = []

    def run(key, hook):
        state = train.init_state(key, params, opt)
        state, metrics = train.run_epochs(key, step, state, (X, y), batch_size=16, n_epochs=4,
                                          on_epoch=hook)
        return state.params, metrics["loss"]

    keys = jax.random.split(jax.random.key(1), 3)
    with_hook = jax.jit(jax.vmap(lambda k: run(k, lambda e: seen.append(int(e)))))(keys)
    jax.block_until_ready(with_hook)
    without = jax.jit(jax.vmap(lambda k: run(k, None)))(keys)
    assert seen == [0, 1, 2, 3]
    for a, b in zip(jax.tree.leaves(with_hook), jax.tree.leaves(without), strict=True):
        np.testing.assert_array_equal(a, b)


def test_step_noise_is_each_steps_loss_key_drawn_before_the_epoch():
    """run_epochs(step_noise=...) hands step i the noise of the key that step i's loss
    receives (step_keys follows make_step's split), so a loss that reads the noise trains
    exactly as one that draws from its key."""
    X, y, _ = _linear_data(jax.random.key(0), n=48)
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    opt = optax.adam(0.05)

    def draw(k):
        return jax.random.normal(k, (16,))

    def noisy_mse(p, batch, noise):
        X, y = batch
        return jnp.mean((X @ p["w"] + p["b"] + 0.3 * noise - y) ** 2)

    def from_key(p, batch, k):
        return noisy_mse(p, batch, draw(k))

    def from_noise(p, batch_and_noise, k):
        batch, noise = batch_and_noise
        gap = jnp.max(jnp.abs(noise - draw(k)))  # 0 when the noise is this step's draw
        return noisy_mse(p, batch, noise), {"gap": gap}

    def run(key, predraw):
        state = train.init_state(jax.random.fold_in(key, 1), params, opt)
        step = train.make_step(from_noise if predraw else from_key, opt, has_aux=predraw)
        return train.run_epochs(key, step, state, (X, y), batch_size=16, n_epochs=3,
                                step_noise=draw if predraw else None)

    key = jax.random.key(2)
    (state_a, metrics_a), (state_b, metrics_b) = jax.jit(run, static_argnums=1)(key, True), \
        jax.jit(run, static_argnums=1)(key, False)
    np.testing.assert_array_equal(metrics_a["gap"], np.zeros(3))
    np.testing.assert_array_equal(metrics_a["loss"], metrics_b["loss"])
    for a, b in zip(jax.tree.leaves(state_a.params), jax.tree.leaves(state_b.params),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    # step_keys is the chain of make_step's splits
    k0, sub0 = jax.random.split(key)
    _, sub1 = jax.random.split(k0)
    np.testing.assert_array_equal(jax.random.key_data(train.step_keys(key, 2)),
                                  jax.random.key_data(jnp.stack([sub0, sub1])))


def test_save_and_load_state_round_trip(tmp_path):
    net = MLP((8, 1))
    X = jnp.ones((4, 2))
    opt = optax.adam(1e-3)
    init = jax.jit(net.init)  # one compile for both inits, not op by op
    state = train.init_state(jax.random.key(2), init(jax.random.key(0), X), opt)
    # jitted as in the engine (one program for both steps, not eager ops)
    step = jax.jit(train.make_step(lambda p, b, k: jnp.mean(net.apply(p, b) ** 2), opt))
    state, _ = step(state, X)
    path = train.save_state(tmp_path / "state.msgpack", state)
    like = train.init_state(jax.random.key(9), init(jax.random.key(1), X), opt)
    loaded = train.load_state(path, like)
    assert isinstance(loaded, train.TrainState)
    np.testing.assert_array_equal(jax.random.key_data(loaded.key), jax.random.key_data(state.key))
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(loaded.step) == 1
    continued, _ = step(loaded, X)  # a loaded state trains on
    assert int(continued.step) == 2


def test_divergence_is_reported_not_silent():
    def quadratic(params, batch, key):
        del batch, key
        return jnp.sum(params ** 2)

    # gradient descent with step 1e3 on x^2 multiplies x by -1999 per step: overflow to inf
    with pytest.raises(FloatingPointError, match="diverged"):
        train.fit(jax.random.key(0), quadratic, jnp.array([80.0]), jnp.zeros((8, 1)),
                  optimizer=optax.sgd(1e3), batch_size=4, n_epochs=6, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=100), "batch_size"),
    (dict(n_epochs=0), "n_epochs"),
    (dict(patience=2), "patience"),
])
def test_bad_options_raise(kwargs, match):
    X, y, _ = _linear_data(jax.random.key(0), n=32)
    options = dict(optimizer=optax.sgd(0.1), batch_size=8, n_epochs=2, progress=False)
    options.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train.fit(jax.random.key(0), _mse, {"w": jnp.zeros(3), "b": jnp.zeros(())}, (X, y),
                  **options)


def test_bad_data_raises():
    X, y, _ = _linear_data(jax.random.key(0), n=32)
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    options = dict(optimizer=optax.sgd(0.1), batch_size=8, n_epochs=2, progress=False)
    with pytest.raises(ValueError, match="leading"):
        train.fit(jax.random.key(0), _mse, params, (X, y[:10]), **options)
    with pytest.raises(ValueError, match="NaN"):
        train.fit(jax.random.key(0), _mse, params, (X.at[0, 0].set(jnp.nan), y), **options)
    with pytest.raises(TypeError, match="key"):
        train.fit(0, _mse, params, (X, y), **options)
