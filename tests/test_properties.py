"""Property-based inputs (issue 13 section 6): the probability, linear and mixture families.

Every public fit and prediction of these families gets generated bad or unusual inputs (scale
x1e-30 .. x1e30 on float32, empty / 1-D / 3-D / scalar shapes, int, bool, float16, float64,
complex, object, list and string data, NaN/inf in one cell, a row or a column, equal or
duplicated rows, a constant column, bad labels, bad component counts, bad keys, a wrong
feature count at prediction time) and must follow the rule of ``property_harness``: a finite
result the library's own functions accept, or a ValueError/TypeError from the library, before
anything of it is traced, naming the argument. No case is expected to fail: a failure is a
bug of the library (or of the rule), never marked xfail. Data are tiny and of one shape per
family, so XLA compiles each fit once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import numpyro.distributions as dist
import pytest
from property_harness import (
    Target,
    as_float64,
    check,
    finite,
    fit_result,
    kinds,
    log_density,
    run_property,
)

from espresso_jax.linear import bayes, gp, logistic, regression
from espresso_jax.mixture import gmm, kmeans, pca, ppca, vbgmm
from espresso_jax.prob import conjugate, estimate, info

_rng = np.random.default_rng(0)
N, D, K = 12, 3, 2
X = np.concatenate([_rng.normal(0.0, 0.5, (6, D)), _rng.normal(3.0, 0.5, (6, D))]
                   ).astype(np.float32)
_x = np.linspace(-1.0, 1.0, N, dtype=np.float32)
PHI = np.stack([np.ones_like(_x), _x, _x ** 2], axis=1)
T = (PHI @ np.array([0.5, -1.0, 2.0], np.float32) + 0.1 * _rng.normal(size=N)).astype(
    np.float32)
LABELS = np.array([0, 1] * (N // 2), np.int32)
LABELS3 = np.arange(N, dtype=np.int32) % 3
GP0 = gp.make_params(1.0, 1.0, 0.1)
NG0 = conjugate.NormalGamma(*(np.float32(v) for v in (0.0, 1.0, 2.0, 2.0)))
KEY = jax.random.key(0)


def _dist_ok(d: Any, data: Any) -> None:
    finite(d.mean, d.variance, info.entropy(d))


def _mixture(score: Callable[[Any, Any], Any]) -> Callable[[Any, dict], None]:
    def accept(res: Any, d: dict) -> None:
        fit_result(res)
        if bool(res.converged):
            finite(res.history[int(res.n_iter) - 1])
        finite(score(res.params, d["X"]))
    return accept


def _density(score: Callable[[Any, Any], Any], name: str) -> Callable[[Any, dict], None]:
    """A log-density at the generated X: finite, or -inf where float64 says it is below
    float32's range (``property_harness.log_density``)."""
    return lambda r, d: log_density(r, lambda: score(*as_float64(fitted(name), d["X"])))


@functools.cache
def fitted(name: str) -> Any:
    """Good parameters for the prediction-time targets."""
    return FITTED[name]()


FITTED: dict[str, Callable[[], Any]] = {
    "gmm": lambda: gmm.fit(KEY, X, K, max_iter=10).params,
    "kmeans": lambda: kmeans.fit(KEY, X, K, max_iter=10).params,
    "vbgmm": lambda: vbgmm.fit(KEY, X, K, max_iter=10).params,
    "pca": lambda: pca.fit(X, 1).params,
    "ppca": lambda: ppca.fit(X, 1).params,
    "bayes": lambda: bayes.fit_evidence(PHI, T).params,
    "logistic": lambda: logistic.fit_laplace(PHI, LABELS, alpha=1.0).params,
    "gp": lambda: gp.fit(PHI, T, GP0).params,
}


TARGETS: dict[str, Target] = {
    # probability
    "estimate.multivariate_gaussian": Target(
        lambda d: estimate.multivariate_gaussian(d["X"]), _dist_ok, {"X": X}, {"X": "matrix"}),
    "estimate.gaussian": Target(lambda d: estimate.gaussian(d["x"]), _dist_ok, {"x": T},
                                {"x": "vector"}),
    "estimate.categorical": Target(
        lambda d: estimate.categorical(d["labels"], d["n_categories"]),
        lambda r, d: finite(r.probs, info.entropy(r)),
        {"labels": LABELS3, "n_categories": 3}, {"labels": "labels3", "n_categories": "count"}),
    "conjugate.beta_bernoulli": Target(
        lambda d: conjugate.beta_bernoulli(dist.Beta(2.0, 2.0), d["x"]), _dist_ok,
        {"x": LABELS}, {"x": "labels2"}),
    "conjugate.normal_gamma": Target(
        lambda d: conjugate.normal_gamma(NG0, d["x"]),
        lambda r, d: finite(r, conjugate.normal_gamma_predictive(r).log_prob(T)),
        {"x": T}, {"x": "vector"}),
    # linear
    "regression.fit_least_squares": Target(
        lambda d: regression.fit_least_squares(d["X"], d["y"]),
        lambda r, d: finite(r.params, regression.predict(r.params, d["X"])),
        {"X": PHI, "y": T}, {"X": "matrix", "y": "vector"}),
    "bayes.fit_evidence": Target(
        lambda d: bayes.fit_evidence(d["X"], d["y"]),
        lambda r, d: (fit_result(r), finite(bayes.predict(r.params, d["X"]))),
        {"X": PHI, "y": T}, {"X": "matrix", "y": "vector"}),
    "bayes.predict": Target(lambda d: bayes.predict(fitted("bayes"), d["X_new"]),
                            lambda r, d: finite(r), {"X_new": PHI}, {"X_new": "predict"}),
    "logistic.fit_laplace": Target(
        lambda d: logistic.fit_laplace(d["X"], d["y"], alpha=1.0),
        lambda r, d: (fit_result(r), finite(r.log_evidence,
                                            logistic.predict_proba(r.params, d["X"]))),
        {"X": PHI, "y": LABELS}, {"X": "matrix", "y": "labels2"}),
    "logistic.predict_proba": Target(
        lambda d: logistic.predict_proba(fitted("logistic"), d["X_new"]),
        lambda r, d: finite(r), {"X_new": PHI}, {"X_new": "predict"}),
    "gp.fit": Target(lambda d: gp.fit(d["X"], d["y"], GP0),
                     lambda r, d: finite(r.params, gp.predict(r.params, d["X"])),
                     {"X": PHI, "y": T}, {"X": "matrix", "y": "vector"}),
    "gp.predict": Target(lambda d: gp.predict(fitted("gp"), d["X_new"]), lambda r, d: finite(r),
                        {"X_new": PHI}, {"X_new": "predict"}),
    # mixtures
    "kmeans.fit": Target(
        lambda d: kmeans.fit(d["key"], d["X"], d["n_clusters"], max_iter=10),
        _mixture(lambda p, x: kmeans.transform(p, x)),
        # bad keys here only: one shared check_key, and a uint32 key recompiles the fit
        {"key": KEY, "X": X, "n_clusters": K}, {"key": "key", "X": "matrix",
                                               "n_clusters": "count"}),
    "kmeans.predict": Target(lambda d: kmeans.predict(fitted("kmeans"), d["X"]),
                             lambda r, d: finite(r), {"X": X}, {"X": "predict"}),
    "gmm.fit": Target(
        lambda d: gmm.fit(KEY, d["X"], d["n_components"], max_iter=10),
        _mixture(gmm.score_samples),
        {"X": X, "n_components": K}, {"X": "matrix", "n_components": "count"}),
    "gmm.score_samples": Target(lambda d: gmm.score_samples(fitted("gmm"), d["X"]),
                                _density(gmm.score_samples, "gmm"), {"X": X}, {"X": "predict"}),
    "vbgmm.fit": Target(
        lambda d: vbgmm.fit(KEY, d["X"], d["n_components"], max_iter=10),
        _mixture(vbgmm.score_samples),
        {"X": X, "n_components": K}, {"X": "matrix", "n_components": "count"}),
    "vbgmm.score_samples": Target(lambda d: vbgmm.score_samples(fitted("vbgmm"), d["X"]),
                                _density(vbgmm.score_samples, "vbgmm"), {"X": X}, {"X": "predict"}),
    "pca.fit": Target(lambda d: pca.fit(d["X"], d["n_components"]),
                      lambda r, d: finite(r.params, pca.transform(r.params, d["X"])),
                      {"X": X, "n_components": 1}, {"X": "matrix", "n_components": "count"}),
    "pca.transform": Target(lambda d: pca.transform(fitted("pca"), d["X"]),
                            lambda r, d: finite(r), {"X": X}, {"X": "predict"}),
    "ppca.fit": Target(
        lambda d: ppca.fit(d["X"], d["n_components"]),
        lambda r, d: finite(r.params, ppca.score_samples(r.params, d["X"]),
                            ppca.log_likelihood(r.params, d["X"])),
        {"X": X, "n_components": 1}, {"X": "matrix", "n_components": "count"}),
    "ppca.score_samples": Target(lambda d: ppca.score_samples(fitted("ppca"), d["X"]),
                                _density(ppca.score_samples, "ppca"), {"X": X}, {"X": "predict"}),
}


CASES = [(t, a, k) for t, target in TARGETS.items() for a, at in target.args.items()
         for k in kinds(at)]




@pytest.mark.parametrize("target,arg,kind", CASES, ids=["-".join(c) for c in CASES])
def test_property(target, arg, kind):
    module, function = target.split(".")
    if module in FITTED and not function.startswith("fit"):
        fitted(module)   # fitted before the check: its trace is not the call's
    run_property(TARGETS, target, arg, kind, N)


def test_info_kl_divergence_mismatched():
    """KL between distributions that do not pair: batch (3,) vs (2,), 3 vs 2 classes, not a
    distribution; ``q`` is the argument at fault."""
    p_normal, p_cat = dist.Normal(np.zeros(3, np.float32), 1.0), dist.Categorical(
        probs=np.full(3, 1 / 3, np.float32))
    cases = [(p_normal, dist.Normal(np.zeros(2, np.float32), 1.0)),
             (p_cat, dist.Categorical(probs=np.full(2, 0.5, np.float32))),
             (p_normal, "normal")]
    for i, (p, q) in enumerate(cases):
        check(f"info.kl_divergence-q-mismatch{i}", "q", lambda p=p, q=q: info.kl_divergence(p, q),
              lambda r: finite(r))
