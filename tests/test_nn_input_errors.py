"""Neural-net mistakes are caught on the host, before anything compiles, in the user's words.

Every case below is a mistake a user makes with the neural functions (issue 13, section 2): a
label the network has no output for, a feature count other than the one the parameters were
made for, parameters of another network, targets of another shape than the outputs, an
optimiser given by name, Python lists as data, two distributions on different spaces, a
weight decay with ``N = 0``. Each must raise a ``TypeError``/``ValueError`` whose message
starts with the argument the user passed (the patterns are anchored with ``^``) and gives both
sizes, and must do so before anything of the model compiles (conftest's
``raises_before_compiling``: JAX's caches cleared, compilations logged).

Data and parameters are NumPy arrays (parameters shaped by ``jax.eval_shape`` of the network's
init), so building them compiles nothing. Nothing in this module compiles a model (a case that
did would fail), so JAX's caches are cleared once for the module rather than before every case
(which would cost 0.5 s of CPU per case): a model function compiled by another test module
cannot hide a compilation here.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optax
import pytest

from espresso_jax import netcheck, train
from espresso_jax.bnn import bbb, bbb_elbo, dropout, heteroscedastic
from espresso_jax.nn import autoencoder, supervised, vae
from espresso_jax.nn.modules import MLP
from espresso_jax.prob import info

N, D, C = 16, 4, 3
OPT = optax.adam(1e-2)
KEY = jax.random.key(0)
_RNG = np.random.default_rng(0)
X = _RNG.uniform(size=(N, D)).astype(np.float32)  # in [0, 1]: fits the Bernoulli VAE too
LABELS = np.arange(N) % C
TARGET = np.sin(3.0 * X[:, 0]).astype(np.float32)

_BBB = bbb.BayesMLP((8, C))
_DROP = dropout.DropoutMLP((8,), n_outputs=C)
_HEAD = heteroscedastic.HeteroscedasticHead(out_features=C, hidden=(8,), dropout_rate=0.1)
_MLP = MLP(features=(8, C))
_VAE = vae.VAE(data_dim=D, latent_dim=2, hidden=(8,))
_AE = autoencoder.AutoEncoder(data_dim=D, latent_dim=2, hidden=(8,))
_FIT = dict(batch_size=4, n_epochs=1, progress=False)


def _arrays(shapes):
    """Concrete NumPy arrays of the given shapes: the checks read shapes only, and NumPy
    builds them without compiling anything."""
    return jax.tree.map(lambda s: np.full(s.shape, 0.1, s.dtype), shapes)


@functools.cache
def _params(name: str, width: int = D, other: bool = False):
    """Parameters of a family's network for inputs of ``width`` (``other``: of a network with
    another hidden width), shaped by ``jax.eval_shape`` of its init (nothing compiles)."""
    x = jax.ShapeDtypeStruct((1, width), jnp.float32)
    hidden = 5 if other else 8
    if name == "bbb":
        module = bbb.BayesMLP((hidden, C))
        return bbb_elbo.BBBParams(_arrays(jax.eval_shape(lambda a: bbb.init(KEY, module, a),
                                                         x)))
    if name == "dropout":
        net = dropout.DropoutMLP((hidden,), n_outputs=C)
        return _arrays(jax.eval_shape(lambda a: net.init(KEY, a, 0.1, deterministic=True), x))
    if name == "heteroscedastic":
        head = heteroscedastic.HeteroscedasticHead(out_features=C, hidden=(hidden,),
                                                   dropout_rate=0.1)
        return _arrays(jax.eval_shape(lambda a: head.init(KEY, a, deterministic=True), x))
    if name == "supervised":
        return _arrays(jax.eval_shape(lambda a: MLP(features=(hidden, C)).init(KEY, a), x))
    if name == "vae":
        return _arrays(jax.eval_shape(lambda: vae.init(KEY, vae.VAE(
            data_dim=width, latent_dim=3 if other else 2, hidden=(hidden,)))))
    if name == "autoencoder":
        return _arrays(jax.eval_shape(lambda: autoencoder.init(KEY, autoencoder.AutoEncoder(
            data_dim=width, latent_dim=2, hidden=(hidden,)))))
    raise KeyError(name)


def _fit(name: str, X, y, **extra):
    """One classification (or, with ``task`` in ``extra``, regression) fit."""
    if name == "bbb":
        kw = dict(module=_BBB, optimizer=OPT, task="classification")
        return bbb_elbo.fit(KEY, X, y, **{**kw, **_FIT, **extra})
    if name == "dropout":
        kw = dict(module=_DROP, optimizer=OPT, task="classification", rate=0.1)
        return dropout.fit(KEY, X, y, **{**kw, **_FIT, **extra})
    if name == "heteroscedastic":
        kw = dict(module=_HEAD, optimizer=OPT, task="classification")
        return heteroscedastic.fit(KEY, X, y, **{**kw, **_FIT, **extra})
    if name == "supervised":
        kw = dict(module=_MLP, optimizer=OPT, task="classification")
        return supervised.fit(KEY, X, y, **{**kw, **_FIT, **extra})
    if name == "vae":
        return vae.fit(KEY, X, **{**dict(module=_VAE, optimizer=OPT), **_FIT, **extra})
    if name == "autoencoder":
        return autoencoder.fit(KEY, X, **{**dict(module=_AE, optimizer=OPT), **_FIT, **extra})
    raise KeyError(name)


@pytest.fixture(scope="module", autouse=True)
def _fresh_caches():
    jax.clear_caches()


@pytest.fixture
def raises_before_compiling(raises_before_compiling):
    """conftest's check without clearing the caches before each case (see the docstring)."""
    return functools.partial(raises_before_compiling, clear=False)


CLASSIFIERS = ("bbb", "dropout", "heteroscedastic", "supervised")
SUPERVISED = CLASSIFIERS
ALL_FITS = (*CLASSIFIERS, "vae", "autoencoder")


# ----------------------------------------------------------------------------- labels

def _labels(case: str) -> np.ndarray:
    y = LABELS.astype(np.float64 if case == "non-integer" else np.int64)
    y[5] = {"too large": C + 9, "negative": -1, "non-integer": 1.5}[case]
    return y


_LABEL_MATCH = {
    "too large": (ValueError, rf"^y has largest label {C + 9} but the network has {C} "
                              rf"outputs: labels must lie in \[0, {C - 1}\]$"),
    "negative": (ValueError, r"^y must be >= 0, got minimum -1$"),
    "non-integer": (TypeError, r"^y must hold integers"),
}


@pytest.mark.parametrize("case", _LABEL_MATCH)
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_bad_labels(name, case, raises_before_compiling):
    exc, match = _LABEL_MATCH[case]
    y = _labels(case)
    raises_before_compiling(lambda: _fit(name, X, y), match, exc)


# ------------------------------------------------------------- feature count, foreign params

def test_fit_on_another_feature_count_names_X(raises_before_compiling):
    params = _params("bbb", width=D + 2)
    raises_before_compiling(
        lambda: _fit("bbb", X, LABELS, params=params),
        rf"^X has {D} features \(last axis\) but params\.net take {D + 2}: "
        rf"params\.net\['params'\]\['dense_0'\]\['kernel_(mu|rho)'\] has shape \({D + 2}, 8\)$")


@pytest.mark.parametrize("name", SUPERVISED)
def test_fit_with_params_of_another_network_names_params(name, raises_before_compiling):
    params = _params(name, other=True)
    prefix = r"params\.net" if name == "bbb" else "params"
    raises_before_compiling(
        lambda: _fit(name, X, LABELS, params=params),
        rf"^{prefix} do not fit the network: {prefix}\['params'\]\[.*\] has shape \((5,|\d, 5)\) "
        r"where the network needs \((8,|\d, 8)\) \(\d arrays differ\); were they made for "
        r"another network\?$")


@pytest.mark.parametrize("name", ("vae", "autoencoder"))
def test_generative_fit_with_foreign_params_names_params(name, raises_before_compiling):
    params = _params(name, other=True)
    raises_before_compiling(lambda: _fit(name, X, None, params=params),
                            r"^params do not fit the network: params\['params'\].* has shape "
                            r"\(.*\) where the network needs")


def _predict(name: str, params, X):
    if name == "dropout.mc_forward":
        return dropout.mc_forward(KEY, params, X, 0.1, n_samples=2)
    if name == "dropout.predict_proba":
        return dropout.predict_proba(KEY, params, X, 0.1, n_samples=2)
    if name == "heteroscedastic.mc_predict":
        return heteroscedastic.mc_predict(KEY, _HEAD, params, X, n_samples=2)
    if name == "bbb_elbo.sample_outputs":
        return bbb_elbo.sample_outputs(KEY, _BBB, params, X, n_samples=2)
    if name == "bbb_elbo.classification_predictive":
        return bbb_elbo.classification_predictive(KEY, _BBB, params, X, n_samples=2)
    raise KeyError(name)


_PREDICTORS = {"dropout.mc_forward": "dropout", "dropout.predict_proba": "dropout",
               "heteroscedastic.mc_predict": "heteroscedastic",
               "bbb_elbo.sample_outputs": "bbb", "bbb_elbo.classification_predictive": "bbb"}


@pytest.mark.parametrize("fn", _PREDICTORS)
def test_predictive_on_another_feature_count_names_X(fn, raises_before_compiling):
    params = _params(_PREDICTORS[fn])
    arg = "x" if fn.startswith("bbb") else "X"
    raises_before_compiling(lambda: _predict(fn, params, X[:, :2]),
                            rf"^{arg} has 2 features \(last axis\) but params take {D}: "
                            rf"params\['params'\]\[.*\] has shape \({D}, 8\)$")


@pytest.mark.parametrize("fn", _PREDICTORS)
def test_predictive_with_foreign_params_names_params(fn, raises_before_compiling):
    params = _params(_PREDICTORS[fn], other=True)
    if fn.startswith("dropout"):  # the net is read off params: another width is not an error
        params = {"params": {**params["params"], "extra": {"kernel": np.ones((2, 2))}}}
        match = r"^params are not DropoutMLP variables: they need"
    else:
        match = r"^params do not fit the network: params\['params'\].* where the network needs"
    raises_before_compiling(lambda: _predict(fn, params, X), match)


@pytest.mark.parametrize("params,exc,match", [
    ([1, 2], TypeError, r"^params must be the network's variables, a dict .* got list$"),
    (None, TypeError, r"^params must be the network's variables, a dict .* got NoneType$"),
    ({}, ValueError, r"^params holds no arrays"),
    ({"params": {"dense_0": {"kernel": "w"}}}, TypeError,
     r"^params\['params'\]\['dense_0'\]\['kernel'\] must be a real array, got str$"),
    ({"weights": {"dense_0": {"kernel": np.ones((4, 3))}}}, ValueError,
     r"^params are not DropoutMLP variables: they have no 'params' collection"),
])
def test_mc_forward_with_a_non_network_params_names_params(params, exc, match,
                                                           raises_before_compiling):
    raises_before_compiling(lambda: dropout.mc_forward(KEY, params, X, 0.1, n_samples=2),
                            match, exc)


def test_params_missing_a_layer_names_params(raises_before_compiling):
    full = _params("supervised")
    params = {"params": {"dense_0": full["params"]["dense_0"]}}
    raises_before_compiling(lambda: _fit("supervised", X, LABELS, params=params),
                            r"^params do not fit the network: params lacks "
                            r"\['params'\]\['dense_1'\]\['bias'\], .* \(2 arrays missing\)$")


@pytest.mark.parametrize("fn,which", [("elbo", "other hidden"), ("iwae", "other hidden"),
                                      ("iwae", "other data_dim"), ("encode", "other data_dim"),
                                      ("generate", "other hidden"),
                                      ("reconstruct", "other data_dim")])
def test_vae_with_another_models_params_names_params(fn, which, raises_before_compiling):
    family = "autoencoder" if fn == "reconstruct" else "vae"
    params = (_params(family, other=True) if which == "other hidden"
              else _params(family, width=D + 2))
    call = {
        "elbo": lambda: vae.elbo(KEY, _VAE, params, X),
        "iwae": lambda: vae.iwae(KEY, _VAE, params, X, k=3),
        "encode": lambda: vae.encode(_VAE, params, X),
        "generate": lambda: vae.generate(KEY, _VAE, params, 3),
        "reconstruct": lambda: autoencoder.reconstruct(_AE, params, X),
    }[fn]
    raises_before_compiling(call, r"^params do not fit the network: params\['params'\]\[.*\] "
                                  r"has shape \(\d+, ?\d*\) where the network needs "
                                  r"\(\d+, ?\d*\)")


# ------------------------------------------------------------------ targets against outputs

@pytest.mark.parametrize("name", SUPERVISED)
def test_regression_target_of_another_shape_than_the_outputs_names_y(name,
                                                                     raises_before_compiling):
    extra = {"task": "regression", **({"noise_std": 1.0} if name == "bbb" else {})}
    raises_before_compiling(lambda: _fit(name, X, TARGET, **extra),
                            rf"^y has shape \({N},\) but the network gives {C} outputs per "
                            rf"row: pass y of shape \(n, {C}\) or use a network with 1 output "
                            r"per row$")


# ------------------------------------------------------------------- engine and optimiser

def _loss(params, batch, key):
    del key
    x, y = batch
    return jnp.mean((_MLP.apply(params, x)[:, 0] - y) ** 2)


@pytest.mark.parametrize("optimizer,match", [
    ("adam", r"^optimizer must be an optax\.GradientTransformation \(e\.g\. optax\.adam\(1e-3\)"
             r"\), got the string 'adam'; pass an optimiser object, e\.g\. optax\.adam\(1e-3\)$"),
    (optax.sgd, r"^optimizer must be .* got the function optax\.sgd; call it"),
    (None, r"^optimizer must be an optax\.GradientTransformation .* got NoneType$"),
])
def test_train_fit_with_an_optimizer_that_is_not_one_names_optimizer(optimizer, match,
                                                                     raises_before_compiling):
    params = _params("supervised")
    raises_before_compiling(
        lambda: train.fit(KEY, _loss, params, (X, TARGET), optimizer=optimizer, **_FIT),
        match, TypeError)
    with pytest.raises(TypeError, match=match):
        train.init_state(KEY, params, optimizer)
    with pytest.raises(TypeError, match=match):
        train.make_step(_loss, optimizer)


@pytest.mark.parametrize("name", ALL_FITS)
def test_every_neural_fit_names_a_bad_optimizer(name, raises_before_compiling):
    y = None if name in ("vae", "autoencoder") else LABELS
    raises_before_compiling(lambda: _fit(name, X, y, optimizer="adam"),
                            r"^optimizer must be an optax\.GradientTransformation", TypeError)


def test_train_fit_on_python_lists_names_data(raises_before_compiling):
    params = _params("supervised")
    raises_before_compiling(
        lambda: train.fit(KEY, _loss, params, (X.tolist(), TARGET.tolist()), optimizer=OPT,
                          **_FIT),
        r"^data must be a pytree of arrays sharing the leading axis, but data\[0\]\[0\]\[0\] "
        r"is a float: convert Python lists first", TypeError)
    with pytest.raises(TypeError, match=r"^loss_fn must be a function"):
        train.fit(KEY, "mse", params, (X, TARGET), optimizer=OPT, **_FIT)


# --------------------------------------------------------------- KL of mismatched pairs

_CAT3, _CAT2 = dist.Categorical(probs=jnp.ones(3) / 3), dist.Categorical(logits=jnp.zeros(2))
_N3, _N2 = dist.Normal(jnp.zeros(3), 1.0), dist.Normal(jnp.zeros(2), 1.0)
_CATEGORIES = r"^p and q must have the same number of categories, got p with 3 and q with 2$"
_BATCH = (r"^p and q must have broadcastable batch shapes, got p with batch shape \(3,\) and "
          r"q with \(2,\)$")


@pytest.mark.parametrize("fn", ["kl_divergence", "kl_mc", "js_divergence", "js_divergence_mc"])
@pytest.mark.parametrize("pair,match", [((_CAT3, _CAT2), _CATEGORIES), ((_N3, _N2), _BATCH)])
def test_divergence_of_distributions_on_different_spaces(fn, pair, match,
                                                        raises_before_compiling):
    if fn == "js_divergence" and pair[0] is _N3:
        pytest.skip("the exact JS divergence is for Bernoulli/Categorical only")
    call = {"kl_divergence": lambda: info.kl_divergence(*pair),
            "kl_mc": lambda: info.kl_mc(KEY, *pair, 10),
            "js_divergence": lambda: info.js_divergence(*pair),
            "js_divergence_mc": lambda: info.js_divergence_mc(KEY, *pair, 10)}[fn]
    raises_before_compiling(call, match, forbid=("_kl_impl", "_js_impl", "_mc_impl"))


def test_divergence_still_broadcasts_batch_shapes():
    kl = info.kl_divergence(_N3, dist.Normal(jnp.zeros(1), 2.0))
    np.testing.assert_allclose(np.asarray(kl), np.full(3, np.log(2.0) + 0.125 - 0.5),
                               rtol=1e-6)


# ------------------------------------------------------------------------- weight decay

@pytest.mark.parametrize("args,match", [
    ((1e-2, 0.1, 0, 1.0), r"^n_train must be >= 1, got 0$"),
    ((1e-2, 0.1, 10, -1.0), r"^tau must be > 0, got -1$"),
    ((1e-2, 0.1, 10, 0.0), r"^tau must be > 0, got 0$"),
    ((0.0, 0.1, 10, 1.0), r"^length_scale must be > 0, got 0$"),
    ((1e-2, 1.0, 10, 1.0), r"^rate must lie in \[0, 1\), got 1\.0$"),
    ((1e-2, np.array([0.1, -0.2]), 10, 1.0), r"^rate must lie in \[0, 1\)"),
])
def test_weight_decay_rejects_bad_arguments(args, match, raises_before_compiling):
    raises_before_compiling(lambda: dropout.weight_decay(*args), match)


def test_weight_decay_under_jit_and_vmap():
    """Traced rates and precisions (a vmapped grid) are checked for dtype only."""
    rates, taus = jnp.array([0.05, 0.5]), jnp.array([0.5, 2.0])
    got = jax.jit(jax.vmap(lambda r, t: dropout.weight_decay(0.1, r, 10, t)))(rates, taus)
    want = 0.1 ** 2 * (1.0 - np.array([0.05, 0.5])) / (2.0 * 10 * np.array([0.5, 2.0]))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


# ---------------------------------------------------------------- who is to blame: X or params

def test_check_network_blames_X_only_when_params_fit_another_width():
    """A hidden width equal to the feature count must not confuse the two mistakes."""
    net = MLP(features=(8, C))

    def init(x):
        return net.init(KEY, x)

    x8 = jax.ShapeDtypeStruct((1, 8), jnp.float32)
    for_six = jax.eval_shape(init, jax.ShapeDtypeStruct((1, 6), jnp.float32))
    with pytest.raises(ValueError, match=r"^X has 8 features \(last axis\) but params take 6: "
                                         r"params\['params'\]\['dense_0'\]\['kernel'\] has "
                                         r"shape \(6, 8\)$"):
        netcheck.check_network(init, net.apply, for_six, x8)
    narrow = jax.eval_shape(lambda x: MLP(features=(5, C)).init(KEY, x), x8)
    with pytest.raises(ValueError, match=r"^params do not fit the network: params\['params'\]"
                                         r"\['dense_0'\]\['bias'\] has shape \(5,\) where the "
                                         r"network needs \(8,\) \(3 arrays differ\)"):
        netcheck.check_network(init, net.apply, narrow, x8)
    out = netcheck.check_network(init, net.apply, jax.eval_shape(init, x8), x8)
    assert out.shape == (1, C)
