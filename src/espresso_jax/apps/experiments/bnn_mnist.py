"""Bayesian-network experiments on MNIST: model comparison, SNR pruning, rotated digit.

Each experiment is a function ``fn(key, ..., quick=...)`` returning a NamedTuple of numbers
and of the arrays its figures need (:mod:`espresso_jax.apps.viz.bnn` draws them;
``examples/bnn_mnist.py`` is a thin wrapper). The networks are fit by the model packages
(:func:`espresso_jax.nn.supervised.fit`, :func:`espresso_jax.bnn.dropout.fit`,
:func:`espresso_jax.bnn.bbb_elbo.fit`) through
:func:`espresso_jax.apps.experiments.bnn_training.train_models` and sampled with its
:func:`~espresso_jax.apps.experiments.bnn_training.sample_outputs`, shared with the 1-D
regression experiments of :mod:`espresso_jax.apps.experiments.bnn_toys` (those names, and the
rest of ``bnn_training``'s, stay importable from here).

* :func:`train_mnist_models` / :func:`mnist_comparison`: a deterministic MLP, MC dropout,
  Bayes by Backprop (BBB) with a Gaussian prior and BBB with a scale-mixture prior, all
  784-400-400-10 ReLU nets trained with Adam on the bundled 8k/2k MNIST split; test error,
  NLL, ECE (15 bins), Brier score and reliability diagrams (Blundell et al. 2015, Table 1 and
  Gal & Ghahramani 2016 style, on a smaller training set).
* :func:`mnist_pruning`: test error of the scale-mixture BBB net after removing the weights of
  lowest signal-to-noise ratio (Blundell et al. 2015, Table 2), and the SNR histogram (Fig. 3).
* :func:`rotated_digit`: a test '1' rotated from 0 to 180 degrees, 100 stochastic passes per
  angle; softmax inputs and outputs, predictive entropy and BALD per angle (Gal & Ghahramani
  2016, Fig. 4).

References:
    Blundell, Cornebise, Kavukcuoglu, Wierstra (2015). Weight Uncertainty in Neural Networks.
    ICML.
    Gal and Ghahramani (2016). Dropout as a Bayesian Approximation: Representing Model
    Uncertainty in Deep Learning. ICML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax import metrics
from espresso_jax.apps.experiments.bnn_training import (
    LR_SCHEDULES,
    ModelSpec,
    TrainedModel,
    loop_options,
    sample_outputs,
    train_model,
    train_models,
)
from espresso_jax.bnn import bbb, bbb_elbo, bbb_prune, dropout
from espresso_jax.datasets.bundled import load_mnist
from espresso_jax.nn import supervised
from espresso_jax.nn.modules import MLP
from espresso_jax.validation import (
    as_float_array,
    check_choice,
    check_int,
    check_key,
    check_positive,
    check_probability,
    float_dtype,
)

__all__ = [
    "TrainedModel",
    "ModelSpec",
    "train_models",
    "MNISTModels",
    "ClassificationMetrics",
    "MNISTComparison",
    "PruningResult",
    "RotatedDigit",
    "MNIST_MODELS",
    "QUICK_SETTINGS",
    "FULL_SETTINGS",
    "MNIST_MIXTURE_PRIOR",
    "MNIST_GAUSSIAN_PRIOR",
    "LR_SCHEDULES",
    "sample_outputs",
    "loop_options",
    "train_model",
    "classification_metrics",
    "train_mnist_models",
    "mnist_comparison",
    "mnist_pruning",
    "rotate_images",
    "rotated_digit",
]

MNIST_MODELS = ("deterministic", "mc_dropout", "bbb_gaussian", "bbb_mixture")
# Priors of the MNIST BBB nets: the mixture is Blundell et al.'s (pi = 1/4, -log s1 = 0,
# -log s2 = 6); the Gaussian scale exp(-1) is from their grid -log s in {0, 1, 2}: a unit
# scale drowns the 784-wide first layer in prior noise on an 8k training set, and exp(-2)
# acts as a weight decay strong enough to hold the test error at 4.5-5 % (quick and full runs,
# benchmarks/RESULTS.md).
MNIST_MIXTURE_PRIOR = bbb.ScaleMixturePrior(0.25, 1.0, math.exp(-6.0))
MNIST_GAUSSIAN_PRIOR = bbb.GaussianPrior(math.exp(-1.0))


# ----------------------------------------------------------------------------- MNIST


class ClassificationMetrics(NamedTuple):
    """Test scores of a predictive ``p = E_t softmax(logits_t)`` (floats).

    Attributes:
        error: top-1 error in percent. nll: mean negative log-likelihood (nats).
        ece: expected calibration error (15 equal-width bins). brier: multi-class Brier score.
    """

    error: float
    nll: float
    ece: float
    brier: float


def classification_metrics(labels: Any, logits: Any, *, n_bins: int = 15
                           ) -> tuple[ClassificationMetrics, metrics.ReliabilityDiagram]:
    """Error %, NLL, ECE and Brier of ``(T, n, C)`` per-sample logits, and the reliability
    diagram data (the average over ``T`` is taken in probability space)."""
    acc = float(metrics.accuracy(labels, logits, from_logits=True))
    scores = ClassificationMetrics(
        error=100.0 * (1.0 - acc),
        nll=float(metrics.negative_log_likelihood(labels, logits, from_logits=True)),
        ece=float(metrics.expected_calibration_error(labels, logits, n_bins=n_bins,
                                                     from_logits=True)),
        brier=float(metrics.brier_score(labels, logits, from_logits=True)))
    return scores, metrics.reliability_diagram(labels, logits, n_bins=n_bins, from_logits=True)


class MNISTModels(NamedTuple):
    """The four trained MNIST networks (:data:`MNIST_MODELS` order) and their data sizes.

    Attributes:
        models: ``name -> TrainedModel``.
        n_train, n_epochs: training-set size and epochs run.
        hidden: hidden widths (``(400, 400)``: a 784-400-400-10 net).
        batch_size, learning_rate, lr_schedule: the Adam settings every net was trained with.
    """

    models: dict[str, TrainedModel]
    n_train: int
    n_epochs: int
    hidden: tuple[int, ...]
    batch_size: int = 100
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"


class MNISTComparison(NamedTuple):
    """Output of :func:`mnist_comparison`.

    Attributes:
        metrics: ``name -> ClassificationMetrics`` on the test set.
        reliability: ``name -> ReliabilityDiagram`` (15 bins).
        seconds_per_epoch: ``name -> float`` (training wall time / epochs, compilation
            included).
        trained: the :class:`MNISTModels` (for pruning and the rotated digit).
        n_test: test images used. n_samples: stochastic passes per test prediction.
    """

    metrics: dict[str, ClassificationMetrics]
    reliability: dict[str, metrics.ReliabilityDiagram]
    seconds_per_epoch: dict[str, float]
    trained: MNISTModels
    n_test: int
    n_samples: int


# Quick mode (the tour's `make demo`): all 8k training digits, 5 epochs of 40 minibatches of
# 200 at Adam 6e-3 decayed to 0 along a cosine; every net ends below 5 % test error (measured
# spread in tests/test_tour_deep_sections.py). Full mode: 20 epochs of 80 minibatches of 100
# at a constant Adam 1e-3 (the run of benchmarks/RESULTS.md).
QUICK_SETTINGS = dict(n_train=None, n_epochs=5, batch_size=200, learning_rate=6e-3,
                      lr_schedule="cosine", n_test=None, n_samples=10)
FULL_SETTINGS = dict(n_train=None, n_epochs=20, batch_size=100, learning_rate=1e-3,
                     lr_schedule="constant", n_test=None, n_samples=100)


def _mnist_settings(quick: bool, **given: Any) -> dict[str, Any]:
    """The quick or full settings, overridden by the ``given`` values that are not None."""
    base = QUICK_SETTINGS if quick else FULL_SETTINGS
    return {k: base[k] if given.get(k) is None else given[k] for k in base}


def train_mnist_models(key: jax.Array, *, quick: bool = False, n_train: int | None = None,
                       n_epochs: int | None = None, hidden: Sequence[int] = (400, 400),
                       batch_size: int | None = None, learning_rate: float | None = None,
                       lr_schedule: str | None = None, dropout_rate: float = 0.25,
                       models: Sequence[str] = MNIST_MODELS,
                       progress: bool = False) -> MNISTModels:
    """Train the MNIST networks on the first ``n_train`` images of the 8k training split.

    Every net is ``784 - hidden - 10`` with ReLU units and is trained by Adam
    (``learning_rate`` with ``lr_schedule``, minibatches of ``batch_size``) for ``n_epochs``:
    ``"deterministic"`` (cross-entropy), ``"mc_dropout"`` (dropout ``dropout_rate`` on the
    input and hidden units, Gal's weight decay with length-scale 1e-2), ``"bbb_gaussian"``
    (:data:`MNIST_GAUSSIAN_PRIOR`) and ``"bbb_mixture"`` (:data:`MNIST_MIXTURE_PRIOR`), both
    with ``sigma_init = 0.01``, uniform KL weights and one weight sample per minibatch.

    Args:
        key: PRNG key (one subkey per model).
        quick: the settings of :data:`QUICK_SETTINGS` (8000 images, 5 epochs, batch 200, Adam
            6e-3 with a cosine decay) where not given; else :data:`FULL_SETTINGS` (8000
            images, 20 epochs, batch 100, constant Adam 1e-3).
        n_train, n_epochs: override the sizes.
        hidden: hidden widths. batch_size, learning_rate, lr_schedule: Adam settings
            (``lr_schedule``: ``"constant"`` or ``"cosine"``, see
            :func:`~espresso_jax.apps.experiments.bnn_training.train_model`).
        dropout_rate: MC dropout rate.
        models: which of :data:`MNIST_MODELS` to train.
        progress: show tqdm bars.
    """
    key = check_key(key)
    s = _mnist_settings(quick, n_train=n_train, n_epochs=n_epochs, batch_size=batch_size,
                        learning_rate=learning_rate, lr_schedule=lr_schedule)
    n_epochs = check_int(s["n_epochs"], "n_epochs", min_value=1)
    hidden = tuple(check_int(h, "hidden", min_value=1) for h in hidden)
    dropout_rate = check_probability(dropout_rate, "dropout_rate")
    learning_rate = check_positive(s["learning_rate"], "learning_rate")
    lr_schedule = check_choice(s["lr_schedule"], "lr_schedule", LR_SCHEDULES)
    for name in models:
        if name not in MNIST_MODELS:
            raise ValueError(f"models must be a subset of {MNIST_MODELS}, got {name!r}")
    x_np, y_np = load_mnist("train")
    if s["n_train"] is not None:
        n_keep = check_int(s["n_train"], "n_train", min_value=1)
        x_np, y_np = x_np[:n_keep], y_np[:n_keep]
    x, y = jnp.asarray(x_np, float_dtype()), jnp.asarray(y_np)
    batch_size = check_int(s["batch_size"], "batch_size", min_value=1,
                           max_value=int(x.shape[0]))
    opts: dict[str, Any] = dict(learning_rate=learning_rate, batch_size=batch_size,
                                n_epochs=n_epochs, progress=progress, lr_schedule=lr_schedule)
    bbb_options = dict(task="classification", normalize=True)
    specs: dict[str, ModelSpec] = {
        "deterministic": ("deterministic", supervised.fit,
                          dict(module=MLP(features=(*hidden, 10)), task="classification")),
        "mc_dropout": ("dropout", dropout.fit,
                       dict(module=dropout.DropoutMLP(hidden, n_outputs=10),
                            task="classification", rate=dropout_rate)),
        "bbb_gaussian": ("bbb", bbb_elbo.fit,
                         dict(module=bbb.BayesMLP((*hidden, 10), prior=MNIST_GAUSSIAN_PRIOR),
                              **bbb_options)),
        "bbb_mixture": ("bbb", bbb_elbo.fit,
                        dict(module=bbb.BayesMLP((*hidden, 10), prior=MNIST_MIXTURE_PRIOR),
                             **bbb_options)),
    }
    out = train_models(key, models, x, y, specs, **opts)
    return MNISTModels(out, int(x.shape[0]), n_epochs, hidden, batch_size, learning_rate,
                       lr_schedule)


def _mnist_test(n_test):
    x, y = load_mnist("test")
    if n_test is not None:
        x, y = x[:n_test], y[:n_test]
    return jnp.asarray(x, float_dtype()), jnp.asarray(y)


def mnist_comparison(key: jax.Array, *, quick: bool = False, trained: MNISTModels | None = None,
                     n_test: int | None = None, n_samples: int | None = None,
                     **train_options: Any) -> MNISTComparison:
    """Train (unless ``trained`` is given) and score the MNIST networks on the test split.

    Args:
        key: PRNG key (training and the test-time samples).
        quick: short training (see :func:`train_mnist_models`) and 10 stochastic passes.
        trained: already trained models (skips training).
        n_test: test images (default all 2000). n_samples: stochastic passes (default 100,
            quick 10).
        **train_options: passed to :func:`train_mnist_models`.

    Returns:
        :class:`MNISTComparison`.
    """
    key = check_key(key)
    k_train, k_eval = jax.random.split(key)
    s = _mnist_settings(quick, n_test=n_test, n_samples=n_samples)
    if trained is None:
        trained = train_mnist_models(k_train, quick=quick, **train_options)
    x, y = _mnist_test(s["n_test"])
    scores, reliability, speed = {}, {}, {}
    for name, model in trained.models.items():
        logits = sample_outputs(k_eval, model, x, n_samples=s["n_samples"])
        scores[name], reliability[name] = classification_metrics(y, logits)
        speed[name] = model.seconds / trained.n_epochs
    return MNISTComparison(scores, reliability, speed, trained, int(x.shape[0]),
                           s["n_samples"])


class PruningResult(NamedTuple):
    """Output of :func:`mnist_pruning`.

    Attributes:
        table: :class:`espresso_jax.bnn.bbb_prune.PruningTable` (fraction, n_kept, error
            rate).
        snr_db: ``(n_weights,)`` signal-to-noise ratio of every weight in decibels.
    """

    table: bbb_prune.PruningTable
    snr_db: np.ndarray


def mnist_pruning(key: jax.Array, model: TrainedModel, *, quick: bool = False,
                  fractions: Sequence[float] = (0.0, 0.5, 0.75, 0.95, 0.98),
                  n_test: int | None = None, n_samples: int = 10) -> PruningResult:
    """Test error of a BBB net after removing each fraction of weights by SNR.

    Args:
        key: PRNG key for the weight samples (the same for every fraction).
        model: a trained BBB :class:`TrainedModel` (e.g. ``trained.models["bbb_mixture"]``).
        quick: 500 test images unless ``n_test`` is given.
        fractions: pruned fractions. n_test: test images. n_samples: weight samples.
    """
    key = check_key(key)
    if model.kind != "bbb":
        raise ValueError(f"model must be a BBB model, got kind {model.kind!r}")
    x, y = _mnist_test(n_test or (500 if quick else None))
    table = bbb_prune.pruning_table(key, model.module, model.params, x, y, fractions=fractions,
                                    n_samples=n_samples)
    snr = bbb_prune.signal_to_noise(model.params, decibels=True)
    return PruningResult(table, np.concatenate([np.ravel(np.asarray(v))
                                                for v in snr.values()]))


# ----------------------------------------------------------------------------- rotated digit


def rotate_images(image: Any, angles: Any) -> np.ndarray:
    """Rotate one ``(784,)`` or ``(28, 28)`` image by each angle (degrees, anticlockwise,
    bilinear, zero fill, same size) -> ``(A, 28, 28)`` float32 clipped to ``[0, 1]``."""
    from scipy import ndimage

    img = np.asarray(as_float_array(image, "image", ndim=(1, 2)), np.float64).reshape(28, 28)
    angles = np.asarray(as_float_array(angles, "angles", ndim=1))
    out = [ndimage.rotate(img, float(a), reshape=False, order=1, mode="constant", cval=0.0)
           for a in angles]
    return np.clip(np.stack(out), 0.0, 1.0).astype(np.float32)


class RotatedDigit(NamedTuple):
    """Output of :func:`rotated_digit`; per model name, arrays over the ``A`` angles.

    Attributes:
        angles: ``(A,)`` degrees. images: ``(A, 28, 28)`` rotated inputs.
        logits, probs: ``name -> (A, T, 10)`` softmax inputs and outputs per pass.
        entropy: ``name -> (A,)`` predictive entropy (nats).
        bald: ``name -> (A,)`` mutual information between prediction and weights.
        predicted: ``name -> (A,)`` argmax of the predictive.
    """

    angles: np.ndarray
    images: np.ndarray
    logits: dict[str, np.ndarray]
    probs: dict[str, np.ndarray]
    entropy: dict[str, np.ndarray]
    bald: dict[str, np.ndarray]
    predicted: dict[str, np.ndarray]


def rotated_digit(key: jax.Array, models: dict[str, TrainedModel], *, image: Any = None,
                  angles: Any = None, n_samples: int = 100) -> RotatedDigit:
    """Gal & Ghahramani's rotated-'1' experiment for each stochastic model.

    Args:
        key: PRNG key (the same passes' key for every model).
        models: ``name -> TrainedModel`` (e.g. MC dropout and BBB).
        image: ``(784,)`` digit (default: the first '1' of the test split).
        angles: ``(A,)`` degrees (default ``0, 15, ..., 180``).
        n_samples: stochastic passes per angle.
    """
    key = check_key(key)
    if image is None:
        x, y = load_mnist("test")
        image = x[np.flatnonzero(y == 1)[0]]
    angles = np.linspace(0.0, 180.0, 13) if angles is None else np.asarray(angles, np.float64)
    images = rotate_images(image, angles)
    xs = images.reshape(len(angles), 784)
    out: dict[str, dict[str, np.ndarray]] = {k: {} for k in
                                              ("logits", "probs", "entropy", "bald", "pred")}
    for name, model in models.items():
        logits = sample_outputs(key, model, xs, n_samples=n_samples)          # (T, A, C)
        dec = metrics.decompose_classification(logits, from_logits=True)
        out["logits"][name] = np.asarray(jnp.swapaxes(logits, 0, 1))
        out["probs"][name] = np.asarray(jax.nn.softmax(jnp.swapaxes(logits, 0, 1), axis=-1))
        out["entropy"][name] = np.asarray(dec.entropy)
        out["bald"][name] = np.asarray(dec.mutual_information)
        out["pred"][name] = np.asarray(jnp.argmax(dec.probs, axis=-1))
    return RotatedDigit(np.asarray(angles), images, out["logits"], out["probs"],
                        out["entropy"], out["bald"], out["pred"])
