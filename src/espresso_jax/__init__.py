"""espresso_jax: Bayesian machine learning and Bayesian deep learning as composable JAX
functions.

Layers (dependencies point downward): applications (:mod:`espresso_jax.apps`: cli, tour,
report, viz, experiments, the UCI protocol; imported on demand) → models (``linear``,
``mixture``, ``nn``, ``bnn``, ``fully_bayes``) → engines (``em``, ``train``) → probability
and metrics (``prob``, ``metrics``) → numpyro.distributions, flax, optax, jax. Every public
function validates its input on the host (:mod:`espresso_jax.validation`) before any jit;
:mod:`espresso_jax.interop` runs third-party calls under standard promotion.
"""

from espresso_jax import (
    bnn,
    datasets,
    em,
    fully_bayes,
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

__version__ = "0.1.0"
__all__ = ["bnn", "datasets", "em", "fully_bayes", "interop", "io", "linear", "metrics", "mixture",
           "netcheck", "nn", "parallel", "prob", "scaling", "train", "validation", "__version__"]
