"""Uncertainty metrics of espresso_jax.metrics against independent references:
numpy moments and sampled mixtures, scipy (norm.logpdf, entropy, logsumexp), sklearn
(log_loss, brier_score_loss, accuracy_score) and hand-constructed calibration cases."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss

from espresso_jax import metrics as U
from espresso_jax.metrics import classification


def _samples(seed, T=20, n=6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(T, n)), np.exp(rng.normal(size=(T, n)))


def _dirichlet(seed, shape, C):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(C), size=shape)


# --------------------------------------------------------------------------- regression
def test_variance_decomposition_identity(both_precisions):
    mean_t, var_t = _samples(0)
    out = U.decompose_regression(mean_t, var_t)
    assert out.total.dtype == np.dtype(both_precisions)
    # total is defined as epistemic + aleatoric: the identity holds bit for bit.
    np.testing.assert_array_equal(out.total, out.epistemic + out.aleatoric)
    rtol = 1e-5 if both_precisions == "float32" else 1e-12
    np.testing.assert_allclose(out.mean, mean_t.mean(0), rtol=rtol)
    np.testing.assert_allclose(out.epistemic, np.var(mean_t, axis=0), rtol=rtol)
    np.testing.assert_allclose(out.aleatoric, var_t.mean(0), rtol=rtol)
    # Kendall & Gal's form E[yhat^2] - E[yhat]^2 + E[sigma^2].
    total = (mean_t ** 2).mean(0) - mean_t.mean(0) ** 2 + var_t.mean(0)
    np.testing.assert_allclose(out.total, total, rtol=rtol * 10)


def test_total_variance_matches_sampled_mixture():
    mean_t, var_t = _samples(1, T=5, n=4)
    out = U.decompose_regression(mean_t, var_t)
    rng = np.random.default_rng(2)
    N = 200_000
    comp = rng.integers(0, 5, size=(N, 4))
    cols = np.arange(4)
    y = mean_t[comp, cols] + np.sqrt(var_t[comp, cols]) * rng.standard_normal((N, 4))
    sq = (y - y.mean(0)) ** 2
    se = sq.std(0) / math.sqrt(N)          # standard error of the sample variance
    # 6 standard errors: a false failure has probability ~1e-9 per input.
    assert np.all(np.abs(np.var(y, axis=0) - np.asarray(out.total)) < 6 * se)


def test_scalar_noise_variance_broadcasts():
    mean_t, _ = _samples(3)
    out = U.decompose_regression(mean_t, 0.25)
    np.testing.assert_allclose(out.aleatoric, np.full(6, 0.25))
    np.testing.assert_array_equal(U.decompose_regression(mean_t, 0.0).aleatoric, np.zeros(6))


def test_gaussian_nll_rmse_and_mixture_ll_match_scipy(x64):
    mean_t, var_t = _samples(4, T=30, n=8)
    y = np.random.default_rng(5).normal(size=8)
    np.testing.assert_allclose(
        U.gaussian_nll(y, mean_t[0], var_t[0], reduction="none"),
        -stats.norm.logpdf(y, mean_t[0], np.sqrt(var_t[0])), rtol=1e-12)
    np.testing.assert_allclose(U.gaussian_nll(y, mean_t[0], var_t[0], reduction="sum"),
                               -stats.norm.logpdf(y, mean_t[0], np.sqrt(var_t[0])).sum(),
                               rtol=1e-12)
    logp = stats.norm.logpdf(y, mean_t, np.sqrt(var_t))                     # (T, n)
    ref = special.logsumexp(logp, axis=0) - math.log(30)
    np.testing.assert_allclose(U.mc_log_likelihood(y, mean_t, var_t, reduction="none"), ref,
                               rtol=1e-12)
    np.testing.assert_allclose(U.mc_log_likelihood(y, mean_t, var_t), ref.mean(), rtol=1e-12)
    np.testing.assert_allclose(U.rmse(y, mean_t.mean(0)),
                               np.sqrt(np.mean((y - mean_t.mean(0)) ** 2)), rtol=1e-12)


def test_mixture_ll_is_stable_far_from_every_component():
    # every component density underflows in float32 (log p ~ -5e5); log-sum-exp keeps it finite
    ll = U.mc_log_likelihood(np.array([1000.0]), np.zeros((4, 1)), np.ones((4, 1)))
    np.testing.assert_allclose(ll, -0.5 * 1000.0 ** 2 - 0.5 * math.log(2 * math.pi), rtol=1e-6)


# ----------------------------------------------------------------------- classification
def test_bald_zero_when_samples_agree_positive_otherwise():
    p = _dirichlet(6, 5, 4)
    agree = U.decompose_classification(np.tile(p, (10, 1, 1)))
    np.testing.assert_allclose(agree.mutual_information, 0.0, atol=1e-6)
    np.testing.assert_allclose(agree.entropy, agree.expected_entropy, atol=1e-6)
    # two confident samples that disagree: H[p] = log 2, E H[p_t] = 0, MI = log 2.
    split = U.decompose_classification(np.array([[[1.0, 0.0]], [[0.0, 1.0]]]))
    np.testing.assert_allclose(split.entropy, [math.log(2)], rtol=1e-6)
    np.testing.assert_allclose(split.expected_entropy, [0.0], atol=1e-7)
    np.testing.assert_allclose(split.mutual_information, [math.log(2)], rtol=1e-6)
    varied = U.decompose_classification(_dirichlet(7, (10, 5), 4))
    assert np.all(np.asarray(varied.mutual_information) > 1e-3)


def test_entropy_matches_scipy_and_lies_in_bounds(both_precisions):
    C = 5
    p_t = _dirichlet(8, (12, 40), C)
    out = U.decompose_classification(p_t)
    rtol = 1e-5 if both_precisions == "float32" else 1e-12
    np.testing.assert_allclose(out.probs, p_t.mean(0), rtol=rtol)
    np.testing.assert_allclose(out.entropy, stats.entropy(p_t.mean(0), axis=1), rtol=rtol)
    np.testing.assert_allclose(out.expected_entropy, stats.entropy(p_t, axis=2).mean(0),
                               rtol=rtol)
    ent = np.asarray(out.entropy)
    assert np.all(ent >= 0) and np.all(ent <= math.log(C) + 1e-6)
    extremes = U.entropy(np.array([[0.2] * 5, [0.0, 0.0, 1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(extremes, [math.log(5), 0.0], atol=1e-6)


def test_logits_and_probabilities_agree():
    logits = np.random.default_rng(9).normal(size=(7, 11, 3)) * 3
    probs = np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1))
    a = U.decompose_classification(logits, from_logits=True)
    b = U.decompose_classification(probs / probs.sum(-1, keepdims=True))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    labels = np.arange(11) % 3
    np.testing.assert_allclose(U.negative_log_likelihood(labels, logits, from_logits=True),
                               U.negative_log_likelihood(labels, probs), rtol=1e-5)


def test_nll_brier_accuracy_match_sklearn(x64):
    C = 4
    probs = _dirichlet(10, 300, C)
    labels = np.random.default_rng(11).integers(0, C, 300)
    np.testing.assert_allclose(U.negative_log_likelihood(labels, probs),
                               log_loss(labels, probs, labels=range(C)), rtol=1e-10)
    np.testing.assert_allclose(U.brier_score(labels, probs),
                               brier_score_loss(labels, probs, labels=range(C)), rtol=1e-10)
    np.testing.assert_allclose(U.accuracy(labels, probs),
                               accuracy_score(labels, probs.argmax(1)), rtol=1e-12)
    # (T, n, C) samples are averaged first
    p_t = _dirichlet(12, (6, 300), C)
    np.testing.assert_allclose(U.negative_log_likelihood(labels, p_t),
                               log_loss(labels, p_t.mean(0), labels=range(C)), rtol=1e-10)
    # binary: sklearn scores the positive class only, i.e. half the two-class sum
    p2 = _dirichlet(13, 200, 2)
    y2 = np.random.default_rng(14).integers(0, 2, 200)
    np.testing.assert_allclose(U.brier_score(y2, p2), 2 * brier_score_loss(y2, p2[:, 1]),
                               rtol=1e-10)


def _binary(conf, correct):
    """Two-class predictions with top-1 confidence ``conf`` on class 0 and labels that make
    the prediction right where ``correct``."""
    conf = np.asarray(conf, np.float64)
    return np.stack([conf, 1 - conf], 1), np.where(correct, 0, 1)


def test_ece_and_reliability_on_a_constructed_case():
    # 10 at confidence 0.95 (bin (14/15, 1]) with 8 right; 10 at 0.55 (bin (8/15, 9/15]) with 5
    # right: ECE = (10 * |0.8 - 0.95| + 10 * |0.5 - 0.55|) / 20 = 0.1 exactly.
    conf = [0.95] * 10 + [0.55] * 10
    correct = [True] * 8 + [False] * 2 + [True] * 5 + [False] * 5
    probs, labels = _binary(conf, correct)
    np.testing.assert_allclose(U.expected_calibration_error(labels, probs), 0.1, atol=1e-6)
    rd = U.reliability_diagram(labels, probs)
    assert rd.bin_edges.shape == (16,) and rd.counts.dtype == np.int32
    expect_count = np.zeros(15, int)
    expect_count[[8, 14]] = 10
    np.testing.assert_array_equal(rd.counts, expect_count)
    np.testing.assert_allclose(np.asarray(rd.confidence)[[8, 14]], [0.55, 0.95], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(rd.accuracy)[[8, 14]], [0.5, 0.8], rtol=1e-6)
    ece_from_bins = np.sum(np.asarray(rd.counts) * np.abs(np.asarray(rd.accuracy)
                                                       - np.asarray(rd.confidence))) / 20
    np.testing.assert_allclose(ece_from_bins, 0.1, atol=1e-6)
    # one bin pools both groups: |13/20 - 15/20| = 0.1 as well (pooled accuracy vs confidence)
    np.testing.assert_allclose(U.expected_calibration_error(labels, probs, n_bins=1), 0.1,
                               atol=1e-6)


def test_ece_of_calibrated_predictions_is_within_mc_bound():
    rng = np.random.default_rng(15)
    n = 20_000
    conf = rng.uniform(0.5, 1.0, n)
    probs, labels = _binary(conf, rng.uniform(size=n) < conf)   # right with probability conf
    rd = U.reliability_diagram(labels, probs)
    ece = float(U.expected_calibration_error(labels, probs))
    # Per bin, acc_b - conf_b has mean 0 and sd se_b = sqrt(mean conf(1-conf) / n_b), so each
    # |.| is half-normal: ECE has mean sum w_b se_b sqrt(2/pi) and variance
    # sum w_b^2 se_b^2 (1 - 2/pi). Bound: mean + 6 sd.
    cnt = np.asarray(rd.counts, float)
    full = cnt > 0
    c = np.asarray(rd.confidence)[full]
    se = np.sqrt(c * (1 - c) / cnt[full])
    w = cnt[full] / n
    mean = np.sum(w * se) * math.sqrt(2 / math.pi)
    sd = math.sqrt(np.sum(w ** 2 * se ** 2) * (1 - 2 / math.pi))
    assert ece < mean + 6 * sd
    # the same test rejects predictions 0.1 overconfident (ECE is then about 0.1)
    probs_over, _ = _binary(np.minimum(conf + 0.1, 1.0), np.zeros(n, bool))
    ece_over = float(U.expected_calibration_error(labels, probs_over))
    assert ece_over > mean + 6 * sd and abs(ece_over - 0.1) < 0.02


def test_jit_composes_and_second_call_does_not_recompile():
    probs = _dirichlet(16, 50, 3)
    labels = np.arange(50) % 3
    f = jax.jit(lambda lab, p: U.negative_log_likelihood(lab, p))
    np.testing.assert_allclose(f(labels, probs), U.negative_log_likelihood(labels, probs),
                               rtol=1e-6)
    U.brier_score(labels, probs)
    size = classification._brier._cache_size()
    U.brier_score(labels, _dirichlet(17, 50, 3))
    assert classification._brier._cache_size() == size


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, exc, match", [
    (lambda: U.decompose_regression(np.zeros(5), np.ones(5)), ValueError, "mean_t"),
    (lambda: U.decompose_regression(np.zeros((3, 5)), -np.ones((3, 5))), ValueError, "var_t"),
    (lambda: U.decompose_regression(np.zeros((3, 5)), np.ones((3, 4))), ValueError, "var_t"),
    (lambda: U.mc_log_likelihood(np.zeros(4), np.zeros((3, 5)), 1.0), ValueError, "y"),
    (lambda: U.mc_log_likelihood(np.zeros(5), np.zeros((3, 5)), 0.0), ValueError, "var_t"),
    (lambda: U.gaussian_nll(np.zeros(5), np.zeros(5), 1.0, reduction="avg"), ValueError,
     "reduction"),
    (lambda: U.rmse(np.zeros(5), np.full(5, np.nan)), ValueError, "mean"),
    (lambda: U.decompose_classification(np.full((4, 3), 0.5)), ValueError, "sum to 1"),
    (lambda: U.decompose_classification(np.array([[1.5, -0.5]])), ValueError, "probs"),
    (lambda: U.decompose_classification(np.ones((2, 3)), from_logits=1), TypeError,
     "from_logits"),
    (lambda: U.entropy(np.ones((4, 1))), ValueError, "2 classes"),
    (lambda: U.negative_log_likelihood(np.array([0, 3]), np.full((2, 3), 1 / 3)), ValueError,
     "labels"),
    (lambda: U.accuracy(np.array([0, 1, 2]), np.full((2, 3), 1 / 3)), ValueError, "labels"),
    (lambda: U.brier_score(np.array([0.5, 1]), np.full((2, 3), 1 / 3)), TypeError, "labels"),
    (lambda: U.expected_calibration_error(np.array([0, 1]), np.full((2, 3), 1 / 3), n_bins=0),
     ValueError, "n_bins"),
    (lambda: U.reliability_diagram(np.array([0, 1]), "probs"), TypeError, "probs"),
])
def test_bad_input_raises(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------------- plots
def test_plots_return_figures():
    import matplotlib.pyplot as plt

    from espresso_jax.apps.viz import bnn as vb

    probs, labels = _binary([0.95] * 10 + [0.55] * 10, [True] * 13 + [False] * 7)
    rd = U.reliability_diagram(labels, probs)
    fig = vb.plot_reliability_diagram(*rd, ece=float(U.expected_calibration_error(labels,
                                                                                 probs)))
    # two non-empty bins -> two accuracy bars and two gap bars on the top axes
    assert len(fig.axes[0].patches) == 4 and "ECE" in fig.axes[0].get_title()
    plt.close(fig)
    xg = np.linspace(-1, 1, 30)
    fig = vb.plot_regression_band(xg, np.sin(xg), xg, np.sin(xg), np.full(30, 0.01),
                                  np.full(30, 0.04), gap=(-0.2, 0.2), truth=np.sin(xg))
    plt.close(fig)
    fig = vb.plot_regression_band(xg, np.sin(xg), xg, samples=np.random.default_rng(0)
                                  .normal(size=(50, 30)))
    plt.close(fig)
    logits = np.random.default_rng(1).normal(size=(6, 100, 10))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    fig = vb.plot_rotated_digits(np.linspace(0, 75, 6), logits, p, top_k=3,
                                 images=np.zeros((6, 28, 28)))
    assert len(fig.axes[1].collections) == 3        # one scatter per top class
    plt.close(fig)
    fig = vb.plot_uncertainty_decomposition(xg, np.full(30, 0.01), np.full(30, 0.04))
    plt.close(fig)
    ones = np.ones(3)
    fig = vb.plot_uci_comparison(["a", "b", "naval"], [2.0, 1.0, 0.01], 0.1 * ones,
                                 [-2.0, -1.0, 4.0], 0.05 * ones, [1.0, 1.0, 0.0],
                                 [0.1, np.nan, np.nan], [-1.5, -1.0, 4.5], [0.01, 0.0, np.nan])
    # RMSE panel: +100% for "a", 0 for "b", naval (reference 0) left out; LL: -0.5, 0, -0.5
    rmse_x, ll_x = (ax.lines[1].get_xdata() for ax in fig.axes[:2])
    np.testing.assert_allclose(rmse_x, [1.0, 0.0, np.nan])
    np.testing.assert_allclose(ll_x, [-0.5, 0.0, -0.5])
    plt.close(fig)
    with pytest.raises(ValueError, match="one entry per name"):
        vb.plot_uci_comparison(["a"], *([ones] * 8))
    with pytest.raises(ValueError, match="samples"):
        vb.plot_regression_band(xg, xg, xg, samples=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="logits"):
        vb.plot_rotated_digits(np.zeros(3), np.zeros((3, 4, 2)), np.zeros((2, 4, 2)))
