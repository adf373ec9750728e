"""espresso_jax: Bayesian machine learning and Bayesian deep learning as composable JAX
functions.

Layers (dependencies point downward): ``cli``/``tour``/``report``/``viz`` → models (``linear``,
``fully_bayes``) → probability (``prob``) → numpyro.distributions, flax, optax, jax. Every
public function validates its input on the host (:mod:`espresso_jax.validation`) before any jit.
"""

from espresso_jax import datasets, fully_bayes, linear, prob, validation

__version__ = "0.1.0"
__all__ = ["datasets", "fully_bayes", "linear", "prob", "validation", "__version__"]
