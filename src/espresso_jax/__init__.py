"""espresso_jax: Bayesian machine learning and Bayesian deep learning as composable JAX
functions.

Layers (dependencies point downward): applications (:mod:`espresso_jax.apps`: cli, tour,
report, viz, experiments, the UCI protocol; imported on demand) → models (``linear``,
``mixture``, ``nn``, ``bnn``, ``fully_bayes``) → engines (``em``, ``train``) → probability
and metrics (``prob``, ``metrics``) → numpyro.distributions, flax, optax, jax. Every public
function validates its input on the host (:mod:`espresso_jax.validation`) before any jit;
:mod:`espresso_jax.interop` runs third-party calls under standard promotion.
"""

from importlib import metadata as _metadata

from espresso_jax import (
    bnn,
    conformal,
    cpu_cache,
    datasets,
    em,
    fully_bayes,
    hmm,
    interop,
    io,
    linear,
    metrics,
    mixture,
    netcheck,
    nn,
    parallel,
    prob,
    scaling,
    train,
    validation,
)

try:
    # One home for the version: pyproject.toml's [project] version, read from the installed
    # distribution's metadata (a wheel, or `pip install -e .`).
    __version__ = _metadata.version("espresso_jax")
except _metadata.PackageNotFoundError:  # the source tree on sys.path, never installed
    __version__ = "0+unknown"
__all__ = ["bnn", "conformal", "cpu_cache", "datasets", "em", "fully_bayes", "hmm", "interop",
           "io", "linear", "metrics", "mixture", "netcheck", "nn", "parallel", "prob", "scaling",
           "train", "validation", "__version__"]
