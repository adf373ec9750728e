"""OOD metrics (espresso_jax.metrics.ood) against sklearn.metrics (roc_auc_score,
average_precision_score, roc_curve), ties and float32 inputs included; the OOD scores against
the classification metrics; and the OOD-with-temperature pipeline of examples/ood_mnist.py on
synthetic logits (the MNIST run itself is a slow example)."""

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from espresso_jax import metrics as M


def _fpr_ref(y, s, tpr=0.95, drop_intermediate=False):
    fpr, tpr_curve, _ = roc_curve(y, s, drop_intermediate=drop_intermediate)
    return fpr[np.argmax(tpr_curve >= tpr)]


def _data(seed, n, p_pos, tie_step):
    """Labels with positive fraction ``p_pos``, scores shifted by the label; rounded to
    ``tie_step`` (0: continuous) to create tie groups mixing both classes."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < p_pos).astype(np.int32)
    s = rng.normal(size=n) + 1.2 * y
    if tie_step:
        s = np.round(s / tie_step) * tie_step
    return y, s.astype(np.float32)


@pytest.mark.parametrize("p_pos, tie_step", [(0.5, 0.0), (0.1, 0.0), (0.5, 0.25), (0.8, 1.0)],
                         ids=["balanced", "rare-positive", "ties", "coarse-ties"])
def test_ranking_metrics_match_sklearn(p_pos, tie_step, both_precisions):
    y, s = _data(0, 3000, p_pos, tie_step)        # float32 scores, as sklearn gets them
    if tie_step:
        assert len(np.unique(s)) < 100             # many ties, both classes in each group
    # measured |diff| <= 8e-8 in float32, <= 2e-16 in float64.
    atol = 1e-6 if both_precisions == "float32" else 1e-12
    auc = M.auroc(y, s)
    assert auc.dtype == np.dtype(both_precisions)
    np.testing.assert_allclose(float(auc), roc_auc_score(y, s), rtol=0, atol=atol)
    np.testing.assert_allclose(float(M.aupr(y, s)), average_precision_score(y, s), rtol=0,
                               atol=atol)
    for tpr in (0.95, 0.5, 1.0):
        np.testing.assert_allclose(float(M.fpr_at_tpr(y, s, tpr=tpr)), _fpr_ref(y, s, tpr),
                                   rtol=0, atol=atol)
    if not tie_step:   # without ties the default (pruned) ROC curve gives the same point
        assert float(M.fpr_at_tpr(y, s)) == pytest.approx(
            _fpr_ref(y, s, drop_intermediate=True), abs=atol)


def test_tied_groups_on_hand_computed_case():
    # 20 tie groups of one positive and one negative: AUC 1/2 would be wrong, the groups are
    # ordered, so a positive beats the negatives of every lower group and ties its own.
    s = np.repeat(np.arange(20.0), 2)
    y = np.tile([1, 0], 20)
    assert float(M.auroc(y, s)) == pytest.approx((190 + 0.5 * 20) / 400, abs=1e-7)
    # AP: the positive of group k (from the top) sees precision k / (2k) = 1/2.
    assert float(M.aupr(y, s)) == pytest.approx(0.5, abs=1e-7)
    # TPR 0.95 is first reached after 19 groups, with 19 of 20 negatives accepted ...
    assert float(M.fpr_at_tpr(y, s)) == pytest.approx(0.95, abs=1e-7)
    assert _fpr_ref(y, s) == pytest.approx(0.95)
    # ... a point the pruned ROC curve (collinear equal steps) skips: it jumps to (1, 1).
    assert _fpr_ref(y, s, drop_intermediate=True) == 1.0
    # bool labels read as 0/1
    assert float(M.auroc(y.astype(bool), s)) == float(M.auroc(y, s))


def test_ood_metrics_conventions(x64):
    rng = np.random.default_rng(1)
    s_in, s_out = rng.normal(size=700), rng.normal(size=300) + 1.0
    s_in[:50] = s_out[:50]                      # ties across the two sets
    out = M.ood_metrics(s_in, s_out)
    s = np.concatenate([s_in, s_out])
    is_out = np.r_[np.zeros(700, int), np.ones(300, int)]
    np.testing.assert_allclose(out.auroc, roc_auc_score(is_out, s), atol=1e-12)
    np.testing.assert_allclose(out.auroc, roc_auc_score(1 - is_out, -s), atol=1e-12)
    np.testing.assert_allclose(out.aupr_in, average_precision_score(1 - is_out, -s),
                               atol=1e-12)
    np.testing.assert_allclose(out.aupr_out, average_precision_score(is_out, s), atol=1e-12)
    np.testing.assert_allclose(out.fpr_at_tpr, _fpr_ref(1 - is_out, -s), atol=1e-12)
    # FPR at 95% TPR by its definition: OOD scores at or below the 95% in-distribution cut.
    cut = np.sort(s_in)[int(np.ceil(0.95 * 700)) - 1]
    np.testing.assert_allclose(out.fpr_at_tpr, np.mean(s_out <= cut), atol=1e-12)


def test_ood_scores_match_the_classification_metrics():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(8, 50, 4)) * 2.0
    probs = M.predictive_probs(logits, from_logits=True)
    np.testing.assert_allclose(M.ood_score(logits, from_logits=True), -np.max(probs, -1),
                               rtol=1e-6)
    np.testing.assert_allclose(M.ood_score(probs, score="entropy"), M.entropy(probs),
                               rtol=1e-6)
    dec = M.decompose_classification(logits, from_logits=True)
    mi = M.ood_score(logits, score="mutual_information", from_logits=True)
    np.testing.assert_allclose(mi, dec.mutual_information, rtol=1e-6)
    assert float(jnp.min(mi)) > 0.0


def test_jit_composes():
    y, s = _data(3, 500, 0.5, 0.5)
    for f in (M.auroc, M.aupr, M.fpr_at_tpr):
        np.testing.assert_allclose(jax.jit(f)(jnp.asarray(y), jnp.asarray(s)), f(y, s),
                                   rtol=1e-6)


_Y, _S = np.array([0, 1, 0, 1]), np.array([0.1, 0.4, 0.35, 0.8])


@pytest.mark.parametrize("call, match", [
    (lambda: M.auroc(_Y, _S[:3]), "labels and scores must have the same length"),
    (lambda: M.aupr(_Y, np.r_[_S[:3], np.nan]), "scores contains NaN"),
    (lambda: M.fpr_at_tpr(_Y, np.r_[_S[:3], np.inf]), "scores contains inf"),
    (lambda: M.auroc(np.ones(4, int), _S), "labels must hold both classes"),
    (lambda: M.aupr(np.zeros(4, int), _S), "labels must hold both classes"),
    (lambda: M.auroc(_Y + 1, _S), "labels must be <= 1"),
    (lambda: M.auroc(_Y, _S[:, None]), "scores must be 1-D"),
    (lambda: M.fpr_at_tpr(_Y, _S, tpr=0.0), "tpr must lie in"),
    (lambda: M.fpr_at_tpr(_Y, _S, tpr=1.5), "tpr must lie in"),
    (lambda: M.ood_metrics(_S, np.r_[np.nan, 1.0]), "scores_out contains NaN"),
    (lambda: M.ood_metrics(_S[:, None], _S), "scores_in must be 1-D"),
    (lambda: M.ood_score(np.full((3, 2), 0.5), score="max_logit"), "score must be one of"),
    (lambda: M.ood_score(np.full((3, 2), 0.5), score="mutual_information"),
     "needs \\(T, n, C\\) samples"),
])
def test_bad_input_raises_before_compiling(call, match, raises_before_compiling):
    raises_before_compiling(call, match, forbid=("_auroc", "_aupr", "_fpr_at_tpr",
                                                 "_decompose"))


# ----------------------------------------------------------------------------- example

def _example():
    path = Path(__file__).parent.parent / "examples" / "ood_mnist.py"
    spec = importlib.util.spec_from_file_location("ood_mnist_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_report_on_synthetic_logits():
    # an over-confident 10-class "network" (logits 8x too large): in-distribution logits
    # favour the label, the shifted inputs' logits barely do.
    rng = np.random.default_rng(4)

    def logits(n, signal):
        y = rng.integers(0, 10, n)
        z = rng.normal(size=(n, 10))
        z[np.arange(n), y] += signal
        return 8.0 * z, y

    z_val, y_val = logits(1000, 3.0)
    z_test, y_test = logits(1000, 3.0)
    shifted = {"noise": logits(1000, 0.5)[0]}
    rep = _example().calibration_ood_report(z_val, y_val, z_test, y_test, shifted)
    assert set(rep["shifted"]) == {"noise"}
    # Over seeds 0-9 of this generator (mean +- sd, range): T 2.67 +- 0.12 (2.50-2.89);
    # ECE 0.062 +- 0.007 (0.053-0.075) before, 0.018 +- 0.003 (0.012-0.022) after; AUROC of
    # both scores 0.82-0.875; FPR at 95% TPR 0.73-0.80. Bounds about 5 sd out.
    assert 2.0 < rep["temperature"] < 3.4
    assert rep["before"]["ece"] > 0.035 > rep["after"]["ece"]
    assert rep["after"]["nll"] < rep["before"]["nll"]
    assert rep["after"]["error"] == rep["before"]["error"]      # T keeps the argmax
    for stage in ("before", "after"):
        assert set(rep["shifted"]["noise"][stage]) == {"max_prob", "entropy"}
        for r in rep["shifted"]["noise"][stage].values():
            assert 0.78 < r["auroc"] < 0.92 and 0.6 < r["fpr_at_tpr"] < 0.9
