"""Hidden Markov models: log-space forward–backward (sequential and associative scans),
Viterbi, sampling, and Baum–Welch on the EM engine with Gaussian (full/diag), Gaussian-mixture
and categorical emissions, MAP with Dirichlet and sticky priors, padded batches of
variable-length sequences."""

from espresso_jax.hmm import emissions, fitting, inference, model
from espresso_jax.hmm.emissions import CategoricalEmission, GaussianEmission
from espresso_jax.hmm.fitting import HMMResult, fit, pack, predict, predict_proba, sample, score
from espresso_jax.hmm.model import HMMParams

__all__ = ["CategoricalEmission", "GaussianEmission", "HMMParams", "HMMResult", "emissions",
           "fit", "fitting", "inference", "model", "pack", "predict", "predict_proba", "sample",
           "score"]
