"""The tour's HMM section (quick mode, ``-m slow``: ~10 s CPU) against hmmlearn's Viterbi
decoding of the same series under the TRUE parameters (an oracle)."""

import json

import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest
from hmmlearn import hmm as hl

from espresso_jax import hmm
from espresso_jax.apps import tour_hmm
from espresso_jax.apps.report import Report
from espresso_jax.apps.tour import SECTIONS, run_tour


@pytest.mark.slow
def test_hmm_section_decodes_as_well_as_the_true_model(tmp_path, monkeypatch):
    monkeypatch.setattr(Report, "figure", lambda self, fig, name, caption: plt.close(fig))
    out = run_tour(0, tmp_path / "r", quick=True, sections=["hmm"])
    (m,) = json.loads((out / "metrics.json").read_text()).values()
    key = jax.random.fold_in(jax.random.key(0), list(SECTIONS).index("hmm"))
    x, z = hmm.sample(jax.random.split(key)[0], tour_hmm.true_params(), 800)
    x, z = np.asarray(x, np.float64), np.asarray(z)
    oracle = hl.GaussianHMM(3, covariance_type="diag", init_params="")
    oracle.startprob_, oracle.transmat_ = np.full(3, 1 / 3), tour_hmm.TRUE_TRANS
    oracle.means_ = tour_hmm.TRUE_MEANS[:, None]
    oracle.covars_ = np.square(tour_hmm.TRUE_SD)[:, None]
    oracle_acc = float(np.mean(oracle.predict(x) == z))
    assert m["switches_true"] == int(np.sum(np.diff(z) != 0))
    # accuracy of 800 decoded steps near 0.95 has a binomial sd of sqrt(.05 * .95 / 800) =
    # 0.008: the fitted model may trail the oracle by 4 sd (measured, seed 0: 0.954, oracle
    # 0.955)
    assert m["decoding_accuracy_sticky"] >= oracle_acc - 0.032, (m, oracle_acc)
    # fitted regime means against the sample means of the TRUE regimes, within 3 standard
    # errors sd / sqrt(n_k) (measured, seed 0: 0.3, 0.6 and 0.3 standard errors)
    for k in range(3):
        se = tour_hmm.TRUE_SD[k] / np.sqrt(np.sum(z == k))
        assert abs(m["fitted_means"][k] - x[z == k, 0].mean()) <= 3 * se, (k, m)
