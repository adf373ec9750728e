"""Metrics of predictive uncertainty: decompositions and scoring rules for every model family.

This package sits below the model packages (it imports only :mod:`espresso_jax.validation`
and :mod:`espresso_jax.prob.gaussian`), so
linear, mixture, neural and Bayesian-network models score their predictives with the same code.

A stochastic network (MC dropout, Bayes by Backprop, an ensemble, posterior draws from NUTS)
gives ``T`` predictions per input. This package turns them into the quantities of Kendall & Gal
(2017):

Regression, from per-sample means ``mean_t (T, n)`` and aleatoric variances ``var_t (T, n)``
(the model's predictive is the mixture ``1/T sum_t N(y; mean_t, var_t)``)::

    total     = E_t[yhat_t^2] - E_t[yhat_t]^2 + E_t[sigma_t^2]
              = Var_t[yhat_t]   (epistemic)   + E_t[sigma_t^2]   (aleatoric)

and the scores RMSE of the predictive mean, the Gaussian NLL of the moment-matched predictive,
and the MC mixture log-likelihood ``log 1/T sum_t N(y; mean_t, var_t)`` (the "test LL" of the
UCI benchmark).

Classification, from per-sample probabilities ``(T, n, C)`` (or logits with
``from_logits=True``)::

    predictive probabilities  p = E_t[p_t]
    predictive entropy        H[p]                    (total uncertainty)
    expected entropy          E_t[H[p_t]]             (aleatoric)
    mutual information        H[p] - E_t[H[p_t]]      (epistemic, BALD)

and the scores NLL, Brier score, accuracy, expected calibration error and the data of a
reliability diagram. The scoring functions take either the per-sample ``(T, n, C)`` array
(averaged over ``T`` first; in log space when given logits) or predictive ``(n, C)``.

Every quantity is written for one example and vmapped over examples.

References:
    A. Kendall and Y. Gal, "What uncertainties do we need in Bayesian deep learning for
    computer vision?", NeurIPS 2017.
    N. Houlsby, F. Huszár, Z. Ghahramani, M. Lengyel, "Bayesian active learning for
    classification and preference learning", 2011 (BALD).
    G. W. Brier, "Verification of forecasts expressed in terms of probability", Monthly Weather
    Review 78, 1950.
    M. P. Naeini, G. Cooper, M. Hauskrecht, "Obtaining well calibrated probabilities using
    Bayesian binning", AAAI 2015 (ECE); C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On
    calibration of modern neural networks", ICML 2017 (reliability diagrams).
    Y. Gal and Z. Ghahramani, "Dropout as a Bayesian approximation", ICML 2016 (MC test LL).

Modules: :mod:`~espresso_jax.metrics.regression`, :mod:`~espresso_jax.metrics.classification`
(decomposition and scores of each task), :mod:`~espresso_jax.metrics.calibration` (ECE and
reliability diagram), :mod:`~espresso_jax.metrics.temperature` (temperature scaling),
:mod:`~espresso_jax.metrics.ood` (AUROC, AUPR, FPR at a TPR and the OOD scores of a predictive),
:mod:`~espresso_jax.metrics.class_predictive` (the categorical predictive and its input
checks) and :mod:`~espresso_jax.metrics.reductions`.
"""

from espresso_jax.metrics.calibration import (
    DEFAULT_N_BINS,
    ReliabilityDiagram,
    expected_calibration_error,
    reliability_diagram,
)
from espresso_jax.metrics.class_predictive import predictive_probs
from espresso_jax.metrics.classification import (
    ClassificationUncertainty,
    accuracy,
    brier_score,
    decompose_classification,
    entropy,
    negative_log_likelihood,
)
from espresso_jax.metrics.ood import (
    OOD_SCORES,
    OODMetrics,
    aupr,
    auroc,
    fpr_at_tpr,
    ood_metrics,
    ood_score,
)
from espresso_jax.metrics.reductions import REDUCTIONS, apply_reduction, check_reduction
from espresso_jax.metrics.regression import (
    RegressionUncertainty,
    decompose_regression,
    gaussian_nll,
    mc_log_likelihood,
    mixture_log_likelihood,
    rmse,
)
from espresso_jax.metrics.temperature import (
    DEFAULT_T_BOUNDS,
    TemperatureFit,
    apply_temperature,
    fit_temperature,
)

__all__ = [
    "RegressionUncertainty",
    "ClassificationUncertainty",
    "ReliabilityDiagram",
    "DEFAULT_N_BINS",
    "decompose_regression",
    "gaussian_nll",
    "mc_log_likelihood",
    "mixture_log_likelihood",
    "rmse",
    "decompose_classification",
    "predictive_probs",
    "entropy",
    "negative_log_likelihood",
    "brier_score",
    "accuracy",
    "expected_calibration_error",
    "reliability_diagram",
    "REDUCTIONS",
    "check_reduction",
    "apply_reduction",
    "TemperatureFit",
    "DEFAULT_T_BOUNDS",
    "fit_temperature",
    "apply_temperature",
    "OODMetrics",
    "OOD_SCORES",
    "auroc",
    "aupr",
    "fpr_at_tpr",
    "ood_metrics",
    "ood_score",
]
