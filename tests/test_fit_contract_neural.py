"""The shared contract of the neural fits (DESIGN.md conventions 2, 4, 6 and 11), one table.

Every family is fit as ``fit(key, data..., *, module, optimizer, batch_size, n_epochs, ...)``
on tiny data for 2 epochs and must

* return a result with ``params``, ``history`` (per-epoch ``"loss"`` or the GAN's
  ``"d_loss"``/``"g_loss"``), ``n_iter`` and ``converged``;
* take ``key`` first, and so must every public function of the neural packages that takes a
  key (the engine's ``loss_fn(params, batch, key)`` convention excepted);
* not recompile on a second call with the same shapes: checked on the cache of the engine's
  jitted chunk ``train._run_chunk`` (every neural fit trains through it), which grows by one
  entry per compilation;
* reject bad input (NaN in ``X``, a label outside the network's classes, an input width the
  network does not take) with a ``ValueError`` naming the argument before anything of the
  model compiles: checked (conftest's ``raises_before_compiling``) by clearing JAX's caches
  and recording, with ``jax.log_compiles``,
  the names of the functions compiled during the failing call (host validation compiles at
  most small reductions, slices and key splits; never the training chunk, a jitted init or
  step, or a matmul of the network).
"""

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from espresso_jax import train
from espresso_jax.bnn import bbb, bbb_elbo, dropout, heteroscedastic
from espresso_jax.nn import autoencoder, gan, supervised, vae
from espresso_jax.nn.modules import MLP

N, D, C = 32, 4, 3
OPT = optax.adam(1e-2)  # one object: the compiled chunk is keyed on the optimiser


class Family(NamedTuple):
    """One neural family: ``fit(key, *data, **kwargs)``, its data, and whether ``fit`` takes
    ``params`` that fix the input width (else the width is fixed by the module)."""

    fit: Callable[..., Any]
    labels: bool  # y holds class labels (else real targets, or no y)
    has_y: bool
    kwargs: dict
    takes_params: bool


_DROP = dropout.DropoutMLP((8,), n_outputs=C)
_HEAD = heteroscedastic.HeteroscedasticHead(hidden=(8,), dropout_rate=0.1)
_BBB = bbb.BayesMLP((8, C))
_MLP = MLP(features=(8, C))

FAMILIES = {
    "vae": Family(vae.fit, False, False,
                  dict(module=vae.VAE(data_dim=D, latent_dim=2, hidden=(8,)), optimizer=OPT),
                  False),
    "autoencoder": Family(autoencoder.fit, False, False,
                          dict(module=autoencoder.AutoEncoder(data_dim=D, latent_dim=2,
                                                              hidden=(8,)), optimizer=OPT),
                          False),
    "gan": Family(gan.fit, False, False,
                  dict(module=gan.mlp_gan(D, latent_dim=2, g_hidden=(8,), d_hidden=(8,)),
                       loss="non_saturating", k_disc=1, optimizer=OPT),
                  False),
    "deterministic": Family(supervised.fit, True, True,
                            dict(module=_MLP, optimizer=OPT, task="classification"), True),
    "bbb": Family(bbb_elbo.fit, True, True,
                  dict(module=_BBB, optimizer=OPT, task="classification"), True),
    "mc_dropout": Family(dropout.fit, True, True,
                         dict(module=_DROP, optimizer=OPT, task="classification", rate=0.1),
                         True),
    "heteroscedastic": Family(heteroscedastic.fit, False, True,
                              dict(module=_HEAD, optimizer=OPT), True),
}


@functools.cache
def _data(name: str, seed: int = 0) -> tuple[jax.Array, ...]:
    family = FAMILIES[name]
    kx, ky = jax.random.split(jax.random.key(seed))
    X = jax.random.uniform(kx, (N, D))  # in [0, 1]: fits the Bernoulli VAE too
    if not family.has_y:
        return (X,)
    if family.labels:
        return X, jax.random.randint(ky, (N,), 0, C)
    return X, jnp.sin(3.0 * X[:, 0])


def _fit(name: str, *data: Any, seed: int = 0, **extra: Any) -> Any:
    family = FAMILIES[name]
    return family.fit(jax.random.key(seed), *data, batch_size=8, n_epochs=2, progress=False,
                      **family.kwargs, **extra)


@functools.cache
def _first_fit(name: str) -> Any:
    """The first fit of a family on ``_data(name)``; its parameters also serve the bad-width
    case (parameters for inputs of width D)."""
    return _fit(name, *_data(name))


@pytest.mark.parametrize("name", FAMILIES)
def test_result_fields_and_no_recompile(name):
    first = _first_fit(name)
    assert isinstance(first, train.FitResult)
    assert first.n_iter == 2 and first.converged is False  # no early-stopping criterion
    losses = [k for k in first.history if k in ("loss", "d_loss", "g_loss")]
    assert losses, sorted(first.history)
    for k in losses:
        assert first.history[k].shape == (2,) and np.all(np.isfinite(first.history[k]))
    assert jax.tree.leaves(first.params)
    size = train._run_chunk._cache_size()
    second = _fit(name, *_data(name, seed=1), seed=1)
    assert train._run_chunk._cache_size() == size, "a second fit with the same shapes compiled"
    assert second.n_iter == 2


_NEURAL_MODULES = ("nn.autoencoder", "nn.vae", "nn.gan", "nn.gan_losses", "nn.supervised",
                   "bnn.bbb", "bnn.bbb_elbo", "bnn.bbb_prune", "bnn.bbb_recurrent",
                   "bnn.dropout", "bnn.heteroscedastic", "train")
# The engine's loss convention is loss_fn(params, batch, key): these are such losses.
_LOSS_CONVENTION = {("bnn.dropout", "regression_loss"), ("bnn.dropout", "classification_loss")}


def test_key_is_the_first_parameter():
    for name in FAMILIES:
        assert next(iter(inspect.signature(FAMILIES[name].fit).parameters)) == "key", name
    checked = 0
    for mod_name in _NEURAL_MODULES:
        mod = importlib.import_module(f"espresso_jax.{mod_name}")
        for fn_name in mod.__all__:
            fn = getattr(mod, fn_name)
            if not inspect.isfunction(fn) or (mod_name, fn_name) in _LOSS_CONVENTION:
                continue
            params = list(inspect.signature(fn).parameters)
            if "key" in params:
                assert params[0] == "key", f"{mod_name}.{fn_name}{tuple(params)}"
                checked += 1
    assert checked >= 20  # fits, inits, applies, samplers, predictives



def test_one_signature_shape_and_vocabulary():
    # fit(key, data..., *, module, optimizer, batch_size, n_epochs, ...); a supervised family
    # names what it does `task` with the same two values (bbb_elbo said `likelihood=` before).
    for name, family in FAMILIES.items():
        sig = inspect.signature(family.fit).parameters
        keyword_only = [p for p, v in sig.items() if v.kind is inspect.Parameter.KEYWORD_ONLY]
        assert {"module", "optimizer", "batch_size", "n_epochs"} <= set(keyword_only), name
        positional = [p for p, v in sig.items()
                      if v.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
        assert positional == (["key", "X", "y"] if family.has_y else ["key", "X"]), name
        if family.has_y:
            assert "task" in sig and "likelihood" not in sig, name
    for name in ("deterministic", "bbb", "mc_dropout", "heteroscedastic"):
        kwargs = {**FAMILIES[name].kwargs, "task": "gaussian"}
        with pytest.raises(ValueError, match=r"^task must be one of \['classification', "
                                             r"'regression'\], got 'gaussian'"):
            FAMILIES[name].fit(jax.random.key(0), *_data(name), batch_size=8, n_epochs=1,
                               **kwargs)

_BAD_CASES = [(name, case) for name, family in FAMILIES.items()
              for case in ("nan", *(("label", "negative label") if family.labels else ()),
                           "width")]


def _bad_call(name: str, case: str) -> tuple[tuple[jax.Array, ...], dict, str]:
    """The data, extra fit arguments and the argument the error must name for one bad case.
    Built when the test runs (not at collection) from the cached good data, edited in NumPy,
    so no eager op has to compile after the previous case cleared the caches."""
    family = FAMILIES[name]
    data = [np.array(a) for a in _data(name)]
    extra, match = {}, "X"
    if case == "nan":
        data[0][3, 1] = np.nan
    elif case in ("label", "negative label"):
        data[1][0] = C if case == "label" else -1
        match = "y"
    else:  # "width": one column too many
        if family.takes_params:  # the width is fixed by given parameters
            extra = {"params": _first_fit(name).params}
        data[0] = np.concatenate([data[0], data[0][:, :1]], axis=1)
    return tuple(jnp.asarray(a) for a in data), extra, match


@pytest.mark.parametrize("name,case", _BAD_CASES, ids=[f"{n}-{c}" for n, c in _BAD_CASES])
def test_bad_input_raises_before_compiling(name, case, raises_before_compiling):
    data, extra, match = _bad_call(name, case)
    raises_before_compiling(lambda: _fit(name, *data, **extra), match)
