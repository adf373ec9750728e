"""Property-based inputs (issue 13 section 6): the SGD engine and the neural families.

``train.fit``, the VAE, auto-encoder and GAN fits, Bayes by Backprop, MC dropout and the
heteroscedastic head get generated bad or unusual data, labels, keys and batch sizes at tiny
sizes (16 rows of 4 features, one epoch) under the rule of ``property_harness``; predictions
(``dropout.mc_forward``, ``vae.elbo``) also get a wrong feature count and parameters of
another network. Fewer examples per case than the classical families: each new shape or
dtype that reaches a fit compiles a training chunk.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import note
from hypothesis import strategies as st
from property_harness import EXAMPLES, Target, finite, fit_result, kinds, run_property

from espresso_jax import train
from espresso_jax.bnn import bbb, bbb_elbo, dropout, heteroscedastic
from espresso_jax.nn import autoencoder, gan, vae

N, D, C = 16, 4, 3
KEY = jax.random.key(0)
OPT = optax.adam(1e-2)   # one object: the compiled chunk is keyed on the optimiser
_rng = np.random.default_rng(0)
X = _rng.uniform(0.0, 1.0, (N, D)).astype(np.float32)   # in [0, 1]: the Bernoulli VAE's data
Y = np.sin(3.0 * X[:, 0]).astype(np.float32)
LABELS = np.arange(N, dtype=np.int32) % C
FIT = dict(batch_size=8, n_epochs=1, progress=False)
VAE = vae.VAE(data_dim=D, latent_dim=2, hidden=(8,))
AE = autoencoder.AutoEncoder(data_dim=D, latent_dim=2, hidden=(8,))
GAN = gan.mlp_gan(D, latent_dim=2, g_hidden=(8,), d_hidden=(8,))
BBB = bbb.BayesMLP((8, C))
DROP = dropout.DropoutMLP((8,), n_outputs=C)
HEAD = heteroscedastic.HeteroscedasticHead(hidden=(8,), dropout_rate=0.1)


def _mse(params: Any, batch: tuple, key: jax.Array) -> jax.Array:
    x, y = batch   # a user's loss that takes any numeric data (the engine passes it as given)
    return ((jnp.real(x).astype(np.float32) @ params["w"] - y) ** 2).mean()


def _engine(res: Any, d: dict) -> None:
    fit_result(res)


@functools.cache
def fitted(name: str) -> Any:
    """Good parameters for the prediction-time targets (and another network's, ``*_other``)."""
    return {
        "dropout": lambda: DROP.init(KEY, X[:1], 0.1, deterministic=True),
        "dropout_other": lambda: DROP.init(KEY, np.zeros((1, D + 1), np.float32), 0.1,
                                           deterministic=True),
        "vae": lambda: vae.init(KEY, VAE),
        "vae_other": lambda: vae.init(KEY, vae.VAE(data_dim=D + 1, latent_dim=2,
                                                   hidden=(8,))),
    }[name]()


TARGETS: dict[str, Target] = {
    "train.fit": Target(
        lambda d: train.fit(d["key"], _mse, {"w": np.zeros(D, np.float32)}, (d["data"], Y),
                            optimizer=d["optimizer"], batch_size=d["batch_size"], n_epochs=1,
                            progress=False),
        _engine, {"key": KEY, "data": X, "optimizer": OPT, "batch_size": 8},
        # data's shape is left to the user's loss (the engine cannot know what it takes)
        {"key": "key", "data": "data", "batch_size": "count", "optimizer": "optimizer"}),
    "vae.fit": Target(
        lambda d: vae.fit(KEY, d["X"], module=VAE, optimizer=OPT, **FIT),
        lambda r, d: (fit_result(r), finite(vae.elbo(KEY, VAE, r.params, d["X"]))),
        {"X": X}, {"X": "matrix"}),   # (bad keys: train.fit, one shared check_key)
    "vae.elbo": Target(lambda d: vae.elbo(KEY, VAE, d["params"], d["X"]),
                       lambda r, d: finite(r), {"X": X, "params": None},
                       {"X": "predict", "params": "params:vae"}),
    "autoencoder.fit": Target(
        lambda d: autoencoder.fit(KEY, d["X"], module=AE, optimizer=OPT, **FIT),
        lambda r, d: (fit_result(r), finite(autoencoder.reconstruction_error(AE, r.params,
                                                                             d["X"]))),
        {"X": X}, {"X": "matrix"}),
    "gan.fit": Target(
        lambda d: gan.fit(KEY, d["X"], module=GAN, loss="non_saturating", k_disc=1,
                          optimizer=OPT, **FIT),
        lambda r, d: (fit_result(r), finite(gan.sample(KEY, r.params, 4, module=GAN))),
        {"X": X}, {"X": "matrix"}),
    "bbb_elbo.fit": Target(
        lambda d: bbb_elbo.fit(KEY, d["X"], d["y"], module=BBB, optimizer=OPT,
                               task="classification", **FIT),
        lambda r, d: (fit_result(r), finite(bbb_elbo.classification_predictive(
            KEY, BBB, r.params, d["X"], n_samples=2))),
        {"X": X, "y": LABELS}, {"X": "matrix", "y": "labels3"}),
    "dropout.fit": Target(
        lambda d: dropout.fit(KEY, d["X"], d["y"], module=DROP, optimizer=OPT,
                              task="classification", rate=0.1, **FIT),
        lambda r, d: (fit_result(r), finite(dropout.predict_proba(KEY, r.params, d["X"], 0.1,
                                                                  n_samples=2))),
        {"X": X, "y": LABELS}, {"X": "matrix", "y": "labels3"}),
    "dropout.mc_forward": Target(
        lambda d: dropout.mc_forward(KEY, d["params"], d["X"], 0.1, n_samples=2),
        lambda r, d: finite(r), {"X": X, "params": None},
        {"X": "predict", "params": "params:dropout"}),
    "heteroscedastic.fit": Target(
        lambda d: heteroscedastic.fit(KEY, d["X"], d["y"], module=HEAD, optimizer=OPT, **FIT),
        lambda r, d: (fit_result(r), finite(heteroscedastic.predict_regression(
            KEY, HEAD, r.params, d["X"], n_samples=2))),
        {"X": X, "y": Y}, {"X": "matrix", "y": "vector"}),
}

CASES = [(t, a, k) for t, target in TARGETS.items() for a, at in target.args.items()
         for k in kinds(at)]




def _params(data: Any, good: Any, other: str) -> Any:
    """Parameters of another network (one more input feature), None, an empty dict, a list."""
    which = data.draw(st.sampled_from(("another network", "None", "empty dict", "list")))
    note(f"params: {which}")
    return {"another network": fitted(other), "None": None, "empty dict": {}, "list": [good]}[which]


def _optimizer(data: Any, good: Any) -> Any:
    """An optimiser's name, None, optax's factory itself, a learning rate."""
    which = data.draw(st.sampled_from(("adam", None, "factory", 1e-3)))
    note(f"optimizer: {which}")
    return optax.adam if which == "factory" else which


@pytest.mark.parametrize("target,arg,kind", CASES, ids=["-".join(c) for c in CASES])
def test_property(target, arg, kind):
    t = TARGETS[target]
    inputs = {k: fitted(t.args[k].split(":")[1]) if v is None else v
              for k, v in t.inputs.items()}
    run_property({target: t._replace(inputs=inputs)}, target, arg, kind, N,
                 examples=max(2, EXAMPLES.get(kind, 4) // 2),
                 own_kinds={"optimizer": _optimizer, "params": lambda data, good: _params(
                     data, good, t.args[arg].split(":")[-1] + "_other")})
