"""Bayesian-network experiments on MNIST: model comparison, SNR pruning, rotated digit.

Each experiment is a function ``fn(key, ..., quick=...)`` returning a NamedTuple of numbers
and of the arrays its figures need (:mod:`espresso_jax.apps.viz.bnn` draws them;
``examples/bnn_mnist.py`` is a thin wrapper). The networks are fit by the model packages
(:func:`espresso_jax.nn.supervised.fit`, :func:`espresso_jax.bnn.dropout.fit`,
:func:`espresso_jax.bnn.bbb_elbo.fit`) through :func:`train_model`, which, with
:func:`sample_outputs`, is shared with the 1-D regression experiments of
:mod:`espresso_jax.apps.experiments.bnn_toys`.

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

import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from espresso_jax import metrics, train
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
LR_SCHEDULES = ("constant", "cosine")


# ----------------------------------------------------------------------------- models


class TrainedModel(NamedTuple):
    """A trained network and how to sample it (host-side record, not a pytree to jit).

    Attributes:
        kind: ``"deterministic"`` (flax :class:`MLP`), ``"dropout"`` (:class:`DropoutMLP`,
            dropout kept on at test time) or ``"bbb"`` (:class:`espresso_jax.bnn.bbb.BayesMLP`).
        module: the flax module. params: its variables (``BBBParams`` for BBB).
        rate: dropout rate (``"dropout"`` only, else 0).
        seconds: wall-clock training time, compilation included.
        final_loss: training loss of the last epoch.
    """

    kind: str
    module: Any
    params: Any
    rate: float = 0.0
    seconds: float = 0.0
    final_loss: float = math.nan


@functools.lru_cache(maxsize=16)
def _adam(learning_rate: float, decay_steps: int | None = None) -> optax.GradientTransformation:
    """One Adam object per setting, so repeated fits reuse the compiled step; with
    ``decay_steps`` the rate follows a cosine from ``learning_rate`` to 0 over that many steps."""
    if decay_steps is None:
        return optax.adam(learning_rate)
    return optax.adam(optax.cosine_decay_schedule(learning_rate, decay_steps))


def loop_options(n_epochs: int, progress: bool, desc: str) -> dict[str, Any]:
    """Options of :func:`espresso_jax.train.fit_loop` for the experiments: one jitted chunk
    without a progress bar (one compilation); about 10 equal chunks with one (a ragged last
    chunk would compile a second time)."""
    if not progress:
        return dict(epochs_per_chunk=n_epochs, progress=False, desc=desc)
    chunk = max(d for d in range(1, -(-n_epochs // 10) + 1) if n_epochs % d == 0)
    return dict(epochs_per_chunk=chunk, progress=True, desc=desc)


def train_model(kind: str, fit: Callable[..., train.FitResult], key: jax.Array, x: Any,
                y: Any, *, module: nn.Module, learning_rate: float, batch_size: int,
                n_epochs: int, progress: bool = False, rate: float = 0.0,
                lr_schedule: str = "constant", **fit_options: Any) -> TrainedModel:
    """Train ``module`` with a model package's fit and record it as a :class:`TrainedModel`.

    Calls ``fit(key, x, y, module=module, optimizer=Adam(learning_rate), batch_size=...,
    n_epochs=..., **fit_options)`` (e.g. :func:`espresso_jax.nn.supervised.fit`,
    :func:`espresso_jax.bnn.dropout.fit` with ``rate=rate``,
    :func:`espresso_jax.bnn.bbb_elbo.fit`) and times it (compilation included).

    Args:
        kind: the :class:`TrainedModel` kind (``"deterministic"``, ``"dropout"``, ``"bbb"``).
        fit: the model fit. key: PRNG key. x, y: training data.
        module: the flax module. learning_rate, batch_size, n_epochs: Adam and loop settings.
        progress: show a tqdm bar.
        rate: dropout rate (kind ``"dropout"``: passed to ``fit`` and recorded).
        lr_schedule: ``"constant"`` or ``"cosine"`` (Adam's rate decays from
            ``learning_rate`` to 0 along a half cosine over the ``n_epochs * (n // batch_size)``
            steps of the run).
        **fit_options: the fit's own keywords (``task``, ``likelihood``, ``tau``, ...).
    """
    check_choice(lr_schedule, "lr_schedule", LR_SCHEDULES)
    if kind == "dropout":
        fit_options["rate"] = rate
    decay_steps = None
    if lr_schedule == "cosine":
        decay_steps = n_epochs * (int(np.shape(x)[0]) // batch_size)
    start = time.perf_counter()
    res = fit(key, x, y, module=module, optimizer=_adam(learning_rate, decay_steps),
              batch_size=batch_size,
              n_epochs=n_epochs, **fit_options, **loop_options(n_epochs, progress, kind))
    return TrainedModel(kind, module, res.params, float(rate), time.perf_counter() - start,
                        float(res.history["loss"][-1]))


ModelSpec = tuple[str, Callable[..., train.FitResult], dict[str, Any]]
"""``(kind, fit, fit_options)`` of one model for :func:`train_models`."""


def train_models(key: jax.Array, models: Sequence[str], x: Any, y: Any,
                 specs: dict[str, ModelSpec], **options: Any) -> dict[str, TrainedModel]:
    """Train the ``models`` named in ``specs`` with :func:`train_model`.

    Each name in ``specs`` owns one key of ``jax.random.split(key, len(specs))`` (in the order
    of ``specs``), so a model's result does not depend on which others are trained.

    Args:
        key: PRNG key. models: names to train (a subset of ``specs``). x, y: training data.
        specs: name -> ``(kind, fit, fit_options)`` (``fit_options`` holds ``module`` and the
            fit's own keywords).
        **options: :func:`train_model`'s shared settings (learning rate, batch size, ...).
    """
    keys = dict(zip(specs, jax.random.split(key, len(specs)), strict=True))
    return {name: train_model(specs[name][0], specs[name][1], keys[name], x, y,
                              **specs[name][2], **options) for name in models}


@functools.partial(jax.jit, static_argnames="module")
def _det_forward(module, params, x):
    return module.apply(params, x)


@functools.partial(jax.jit, static_argnames=("module", "chunk_size"))
def _dropout_forward(module, params, x, rate, keys, chunk_size):
    def one(k):
        return module.apply(params, x, rate, deterministic=False, rngs={"dropout": k})
    return jax.lax.map(one, keys, batch_size=chunk_size)


def sample_outputs(key: jax.Array, model: TrainedModel, x: Any, *, n_samples: int,
                   chunk_size: int = 10) -> jax.Array:
    """Network outputs under ``n_samples`` draws of the (approximate) posterior.

    Args:
        key: PRNG key for dropout masks / weight samples.
        model: a :class:`TrainedModel`.
        x: ``(n, d)`` inputs.
        n_samples: ``T`` stochastic passes (a deterministic model returns one).
        chunk_size: passes evaluated at once (bounds memory at ``chunk_size * n * width``).

    Returns:
        ``(T, n, n_outputs)`` outputs, logits for a classifier (``T = 1`` when
        deterministic).
    """
    key = check_key(key)
    x = as_float_array(x, "x", ndim=2, shape_hint="(n, d)")
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
    if model.kind == "deterministic":
        return _det_forward(model.module, model.params, x)[None]
    if model.kind == "dropout":
        return _dropout_forward(model.module, model.params, x, model.rate,
                                jax.random.split(key, n_samples), min(chunk_size, n_samples))
    if model.kind != "bbb":
        raise ValueError(f"model.kind must be deterministic, dropout or bbb, got {model.kind!r}")
    chunks, done = [], 0
    for k in jax.random.split(key, -(-n_samples // chunk_size)):
        m = min(chunk_size, n_samples - done)
        chunks.append(bbb_elbo.sample_outputs(k, model.module, model.params, x, n_samples=m))
        done += m
    return jnp.concatenate(chunks, axis=0)


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
            (``lr_schedule``: ``"constant"`` or ``"cosine"``, see :func:`train_model`).
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
