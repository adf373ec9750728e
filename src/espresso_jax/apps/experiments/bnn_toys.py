"""1-D regression experiments: uncertainty in a gap without data, epistemic vs aleatoric.

* :func:`gap_regression`: ``y = sin(3x) + noise`` observed on ``[-1, -0.3] U [0.3, 1]`` only;
  predictive samples of a deterministic net, Bayes by Backprop (Gaussian prior) and MC
  dropout, and their epistemic std in the gap vs on the data (Blundell et al. 2015, Fig. 5;
  Foong et al. 2019 show that *in-between* uncertainty is not guaranteed for mean-field or
  dropout posteriors, so the comparison is a real check).
* :func:`heteroscedastic_regression`: MC dropout with a mean/log-variance head (Kendall & Gal
  2017) on data with input-dependent noise, split into epistemic and aleatoric variance.

The MC-dropout net of the gap toy drops hidden units only
(:class:`espresso_jax.bnn.dropout.DropoutMLP` with ``input_dropout=False``): with a single
input, dropping the input (as Gal's UCI nets do) turns a share of the passes into the constant
``f(0)``, which inflates the spread on the data far from ``x = 0`` and hides the gap.

References:
    Blundell, Cornebise, Kavukcuoglu, Wierstra (2015). Weight Uncertainty in Neural Networks.
    ICML.
    Gal and Ghahramani (2016). Dropout as a Bayesian Approximation. ICML.
    Kendall and Gal (2017). What Uncertainties Do We Need in Bayesian Deep Learning for
    Computer Vision? NeurIPS.
    Foong, Li, Hernandez-Lobato, Turner (2019). 'In-Between' Uncertainty in Bayesian Neural
    Networks. ICML workshop on Uncertainty and Robustness in Deep Learning.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from espresso_jax.apps.experiments.bnn_training import ModelSpec, sample_outputs, train_models
from espresso_jax.bnn import bbb, bbb_elbo, dropout, heteroscedastic
from espresso_jax.nn import supervised
from espresso_jax.nn.modules import MLP
from espresso_jax.validation import (
    check_int,
    check_key,
    check_positive,
    check_probability,
    float_dtype,
)

__all__ = [
    "GAP",
    "GAP_MODELS",
    "GapRegression",
    "HeteroscedasticRegression",
    "gap_data",
    "gap_regression",
    "heteroscedastic_data",
    "heteroscedastic_regression",
]

GAP = (-0.3, 0.3)
"""Input interval without training data."""
GAP_MODELS = ("deterministic", "bbb", "mc_dropout")


def _two_intervals(key, n, gap):
    """``n`` sorted inputs uniform on ``[-1, gap[0]] U [gap[1], 1]`` (half on each side)."""
    k1, k2 = jax.random.split(key)
    left = jax.random.uniform(k1, (n // 2,), float_dtype(), -1.0, gap[0])
    right = jax.random.uniform(k2, (n - n // 2,), float_dtype(), gap[1], 1.0)
    return jnp.sort(jnp.concatenate([left, right]))


def _truth(x):
    return jnp.sin(3.0 * x)


def _regions(x_grid):
    """Boolean masks of the grid points in the gap and on the data intervals."""
    x = np.asarray(x_grid)
    return (x > GAP[0]) & (x < GAP[1]), (np.abs(x) >= GAP[1]) & (np.abs(x) <= 1.0)


def gap_data(key: jax.Array, n: int, *, noise_std: float = 0.1) -> tuple[jax.Array, jax.Array]:
    """``y = sin(3x) + noise_std * eps`` at ``n`` inputs uniform on ``[-1, 1]`` minus
    :data:`GAP`.

    Returns:
        ``x, y``: ``(n,)`` each, sorted by ``x``.
    """
    key = check_key(key)
    n = check_int(n, "n", min_value=2)
    noise_std = check_positive(noise_std, "noise_std")
    k_x, k_e = jax.random.split(key)
    x = _two_intervals(k_x, n, GAP)
    return x, _truth(x) + noise_std * jax.random.normal(k_e, x.shape, x.dtype)


class GapRegression(NamedTuple):
    """Output of :func:`gap_regression` (per model name, see :data:`GAP_MODELS`).

    Attributes:
        x, y: ``(N,)`` training data. x_grid: ``(G,)`` evaluation grid on ``[-1.5, 1.5]``.
        truth: ``(G,)`` ``sin(3x)``.
        samples: ``name -> (T, G)`` predictive samples ``f_t(x) + noise_std * eps`` (for the
            median / interquartile band plot).
        epistemic_std: ``name -> (G,)`` std over ``t`` of the function samples ``f_t(x)``.
        gap_std, data_std: ``name -> float``, mean epistemic std over the grid points in the
            gap / on the data intervals ``0.3 <= |x| <= 1``.
        rmse: ``name -> float``, RMSE of the mean of ``f_t`` against ``sin(3x)`` on the data
            intervals.
    """

    x: np.ndarray
    y: np.ndarray
    x_grid: np.ndarray
    truth: np.ndarray
    samples: dict[str, np.ndarray]
    epistemic_std: dict[str, np.ndarray]
    gap_std: dict[str, float]
    data_std: dict[str, float]
    rmse: dict[str, float]


def gap_regression(key: jax.Array, *, quick: bool = False, n: int = 80,
                   noise_std: float = 0.1, hidden: Sequence[int] = (50, 50),
                   n_epochs: int | None = None, batch_size: int = 20,
                   learning_rate: float = 1e-2, dropout_rate: float = 0.1,
                   bbb_prior_scale: float = 3.0, n_samples: int | None = None,
                   models: Sequence[str] = GAP_MODELS, progress: bool = False
                   ) -> GapRegression:
    """Deterministic net, BBB (Gaussian prior) and MC dropout on the 1-D gap toy.

    All are ``1 - hidden - 1`` ReLU nets fit with Adam (``learning_rate``, minibatches of
    ``batch_size``): the deterministic one by squared error; BBB by its ELBO with the Gaussian
    likelihood at the true ``noise_std`` and an ``N(0, bbb_prior_scale^2)`` prior (with 600
    epochs, scale 3 gave a gap/data epistemic-std ratio of 1.25-1.5 over five keys; scale 2
    0.9-1.5, scale 0.5-1 0.9-1.2: the mean-field posterior's in-between uncertainty is fragile);
    MC dropout (:class:`~espresso_jax.bnn.dropout.DropoutMLP` without input dropout, rate
    ``dropout_rate``, LeCun-normal kernels) by Gal's objective with
    ``tau = 1 / noise_std^2`` and length-scale 1e-2.

    Args:
        key: PRNG key (data, training, predictive samples).
        quick: 100 predictive samples instead of 200 (training takes about a second once
            compiled, so the epochs stay at 600 unless ``n_epochs`` is given).
        n: training points. noise_std: observation noise std.
        hidden: hidden widths. n_samples: predictive samples per grid point.
        models: which of :data:`GAP_MODELS` to fit.
        progress: show tqdm bars.

    Returns:
        :class:`GapRegression`.
    """
    key = check_key(key)
    n_epochs = check_int(n_epochs or 600, "n_epochs", min_value=1)
    hidden = tuple(check_int(h, "hidden", min_value=1) for h in hidden)
    noise_std = check_positive(noise_std, "noise_std")
    rate = check_probability(dropout_rate, "dropout_rate")
    n_samples = check_int(n_samples or (100 if quick else 200), "n_samples", min_value=2)
    for name in models:
        if name not in GAP_MODELS:
            raise ValueError(f"models must be a subset of {GAP_MODELS}, got {name!r}")
    k_data, k_fit, k_pred, k_noise = jax.random.split(key, 4)
    x, y = gap_data(k_data, n, noise_std=noise_std)
    X = x[:, None]
    opts: dict[str, Any] = dict(
        learning_rate=check_positive(learning_rate, "learning_rate"),
        batch_size=check_int(batch_size, "batch_size", min_value=1, max_value=n),
        n_epochs=n_epochs, progress=progress)
    specs: dict[str, ModelSpec] = {
        "deterministic": ("deterministic", supervised.fit,
                          dict(module=MLP(features=(*hidden, 1)), task="regression")),
        "bbb": ("bbb", bbb_elbo.fit,
                dict(module=bbb.BayesMLP((*hidden, 1), prior=bbb.gaussian_prior(bbb_prior_scale)),
                     task="regression", noise_std=noise_std, normalize=True)),
        "mc_dropout": ("dropout", dropout.fit,
                       dict(module=dropout.DropoutMLP(
                           hidden, kernel_init=nn.initializers.lecun_normal(),
                           input_dropout=False),
                           task="regression", rate=rate, tau=1.0 / noise_std ** 2)),
    }
    fitted = train_models(k_fit, models, X, y, specs, **opts)
    x_grid = jnp.linspace(-1.5, 1.5, 301, dtype=float_dtype())
    in_gap, on_data = _regions(x_grid)
    truth = np.asarray(_truth(x_grid))
    noise = noise_std * np.asarray(jax.random.normal(k_noise, (n_samples, x_grid.shape[0])))
    samples, ep_std, gap_std, data_std, rmse = {}, {}, {}, {}, {}
    for name, model in fitted.items():
        f = np.asarray(sample_outputs(k_pred, model, x_grid[:, None],
                                      n_samples=n_samples)[..., 0], np.float64)
        samples[name] = np.broadcast_to(f, noise.shape) + noise
        ep_std[name] = f.std(axis=0)
        gap_std[name] = float(ep_std[name][in_gap].mean())
        data_std[name] = float(ep_std[name][on_data].mean())
        rmse[name] = float(np.sqrt(np.mean((f.mean(axis=0) - truth)[on_data] ** 2)))
    return GapRegression(np.asarray(x), np.asarray(y), np.asarray(x_grid), truth, samples,
                         ep_std, gap_std, data_std, rmse)


def _noise_std_of(x):
    """Input-dependent noise std of :func:`heteroscedastic_data`."""
    return 0.02 + 0.15 * (x + 1.0)


def heteroscedastic_data(key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """``y = sin(3x) + s(x) eps`` with ``s(x) = 0.02 + 0.15 (x + 1)`` (0.02 at ``x = -1``,
    0.32 at ``x = 1``), ``x`` uniform on ``[-1, 1]`` minus :data:`GAP`; sorted ``(n,)`` each."""
    key = check_key(key)
    n = check_int(n, "n", min_value=2)
    k_x, k_e = jax.random.split(key)
    x = _two_intervals(k_x, n, GAP)
    return x, _truth(x) + _noise_std_of(x) * jax.random.normal(k_e, x.shape, x.dtype)


class HeteroscedasticRegression(NamedTuple):
    """Output of :func:`heteroscedastic_regression`.

    Attributes:
        x, y: ``(N,)`` data. x_grid: ``(G,)`` grid. true_noise_std: ``(G,)`` ``s(x)``.
        mean, epistemic, aleatoric: ``(G,)`` predictive mean and variances.
        aleatoric_corr: correlation of ``sqrt(aleatoric)`` with ``s(x)`` on the data intervals.
        aleatoric_mae: mean absolute error of ``sqrt(aleatoric)`` against ``s(x)`` there.
        gap_epistemic_std, data_epistemic_std: mean epistemic std in the gap / on the data.
    """

    x: np.ndarray
    y: np.ndarray
    x_grid: np.ndarray
    true_noise_std: np.ndarray
    mean: np.ndarray
    epistemic: np.ndarray
    aleatoric: np.ndarray
    aleatoric_corr: float
    aleatoric_mae: float
    gap_epistemic_std: float
    data_epistemic_std: float


@functools.lru_cache(maxsize=16)
def _decayed_adam(learning_rate: float, weight_decay: float) -> optax.GradientTransformation:
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))


def heteroscedastic_regression(key: jax.Array, *, quick: bool = False, n: int = 400,
                               hidden: Sequence[int] = (50, 50), dropout_rate: float = 0.1,
                               weight_decay: float = 1e-4, n_epochs: int | None = None,
                               batch_size: int = 50, learning_rate: float = 5e-3,
                               n_samples: int = 200, progress: bool = False
                               ) -> HeteroscedasticRegression:
    """Heteroscedastic head + MC dropout (Kendall & Gal 2017) on :func:`heteroscedastic_data`.

    The head ``1 - hidden - (mean, log variance)`` (:class:`~espresso_jax.bnn.heteroscedastic.
    HeteroscedasticHead`) has dropout ``dropout_rate`` before every Dense layer but the first,
    is trained on the Gaussian NLL (eq. 8) by Adam with decoupled decay ``weight_decay``
    (``optax.add_decayed_weights``), and its predictive over ``n_samples`` masks is split by
    :func:`espresso_jax.metrics.decompose_regression`.

    Args:
        key: PRNG key. quick: 100 epochs instead of 300 (unless ``n_epochs`` is given).
        n: training points. Other arguments: network and optimiser settings.

    Returns:
        :class:`HeteroscedasticRegression`.
    """
    key = check_key(key)
    n_epochs = check_int(n_epochs or (100 if quick else 300), "n_epochs", min_value=1)
    k_data, k_init, k_fit, k_pred = jax.random.split(key, 4)
    x, y = heteroscedastic_data(k_data, n)
    module = heteroscedastic.HeteroscedasticHead(
        out_features=1, hidden=tuple(check_int(h, "hidden", min_value=1) for h in hidden),
        dropout_rate=check_probability(dropout_rate, "dropout_rate"))
    params = module.init(k_init, x[:1, None], deterministic=True)
    optimizer = _decayed_adam(check_positive(learning_rate, "learning_rate"),
                              check_positive(weight_decay, "weight_decay", allow_zero=True))
    res = heteroscedastic.fit(
        k_fit, x[:, None], y, module=module, optimizer=optimizer, params=params,
        batch_size=check_int(batch_size, "batch_size", min_value=1, max_value=n),
        n_epochs=n_epochs, epochs_per_chunk=None if progress else n_epochs, progress=progress)
    x_grid = jnp.linspace(-1.5, 1.5, 301, dtype=float_dtype())
    dec = heteroscedastic.predict_regression(k_pred, module, res.params, x_grid[:, None],
                                             n_samples=check_int(n_samples, "n_samples",
                                                                 min_value=2))
    true_std = np.asarray(_noise_std_of(x_grid))
    in_gap, on_data = _regions(x_grid)
    ale_std = np.sqrt(np.asarray(dec.aleatoric, np.float64))
    ep_std = np.sqrt(np.asarray(dec.epistemic, np.float64))
    return HeteroscedasticRegression(
        np.asarray(x), np.asarray(y), np.asarray(x_grid), true_std, np.asarray(dec.mean),
        np.asarray(dec.epistemic), np.asarray(dec.aleatoric),
        float(np.corrcoef(ale_std[on_data], true_std[on_data])[0, 1]),
        float(np.mean(np.abs(ale_std[on_data] - true_std[on_data]))),
        float(ep_std[in_gap].mean()), float(ep_std[on_data].mean()))
