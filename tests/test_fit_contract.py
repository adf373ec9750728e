"""The shared contract of the classical fits (DESIGN.md convention 11), one table row per fit.

Every row is a family's fit and the prediction function that takes its ``params``. For each
row: the result starts with ``params, history, n_iter, converged`` (closed forms: empty history,
``n_iter = 0``, converged), ``params`` is a NamedTuple the prediction function accepts, a
stochastic fit takes ``key`` first (and only stochastic fits take a key), a second fit and
prediction with new values of the same shapes compiles nothing, and bad input raises
``ValueError`` naming the argument before any of the library's jitted functions is traced.

Compilations and traces are counted with ``jax.monitoring`` events, which carry the traced
function's name: ``backend_compile_duration`` for "compiles nothing", ``jaxpr_trace_duration``
for "nothing of ours is traced" (host-side validation may still run small eager ``jax.numpy``
ops; those are JAX's functions, not ours).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.monitoring
import numpy as np
import optax
import pytest

from espresso_jax.linear import bayes, gp, logistic, regression
from espresso_jax.mixture import gmm, gmm_online, kmeans, pca, ppca, vbgmm

_EVENTS: list[tuple[str, str]] = []


def _record(event: str, duration: float, **kwargs: Any) -> None:
    _EVENTS.append((event, str(kwargs.get("fun_name", ""))))


jax.monitoring.register_event_duration_secs_listener(_record)

_rng = np.random.default_rng(0)
X = np.concatenate([_rng.normal(c, 0.5, (20, 2)) for c in ((0, 0), (3, 0), (0, 3))]
                   ).astype(np.float32)
_x = np.linspace(-1.0, 1.0, 40, dtype=np.float32)
PHI = np.stack([np.ones_like(_x), _x, _x ** 2], axis=1)
T = (PHI @ np.array([0.5, -1.0, 2.0], np.float32)
     + 0.1 * _rng.normal(size=40).astype(np.float32))
LABELS = (_x + 0.5 * _rng.normal(size=40) > 0).astype(np.float32)
XG = np.linspace(0.0, 3.0, 15, dtype=np.float32)[:, None]
YG = np.sin(2.0 * XG[:, 0])
GP0 = gp.make_params(1.0, 1.0, 0.1)
ADAM = optax.adam(0.05)          # one object: the GP loop is cached per optimizer


def _nan(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flat[1] = np.nan
    return a


class Row(NamedTuple):
    """One fit: ``fn`` (inspected), ``fit(key, data)``, ``predict(result, data)``, the data,
    whether ``fn`` is closed-form, and bad calls ``(fit(key, data), argument name)``."""

    fn: Callable
    fit: Callable[[jax.Array, tuple], Any]
    predict: Callable[[Any, tuple], jax.Array]
    data: tuple
    closed_form: bool
    bad: tuple


_MIXTURE_BAD = ((lambda key, d, f: f(key, _nan(d[0]), 3), "X"),
                (lambda key, d, f: f(key, d[0], 0), "n_components"))

ROWS = {
    "kmeans": Row(kmeans.fit, lambda k, d: kmeans.fit(k, d[0], 3, max_iter=20),
                  lambda r, d: kmeans.predict(r.params, d[0]), (X,), False,
                  ((lambda k, d: kmeans.fit(k, _nan(d[0]), 3), "X"),
                   (lambda k, d: kmeans.fit(k, d[0], 0), "n_clusters"))),
    "gmm": Row(gmm.fit, lambda k, d: gmm.fit(k, d[0], 3, max_iter=20, init="random"),
               lambda r, d: gmm.score_samples(r.params, d[0]), (X,), False,
               tuple((lambda k, d, b=b: b(k, d, gmm.fit), name) for b, name in _MIXTURE_BAD)),
    "gmm_online": Row(gmm_online.fit_stepwise,
                      lambda k, d: gmm_online.fit_stepwise(k, d[0], 3, batch_size=20,
                                                           n_epochs=2, init="random"),
                      lambda r, d: gmm.predict(r.params, d[0]), (X,), False,
                      tuple((lambda k, d, b=b: b(k, d, lambda *a: gmm_online.fit_stepwise(
                          *a, batch_size=20, n_epochs=2)), name) for b, name in _MIXTURE_BAD)),
    "vbgmm": Row(vbgmm.fit, lambda k, d: vbgmm.fit(k, d[0], 3, max_iter=20, n_init=2,
                                                   init="random"),
                 lambda r, d: vbgmm.score_samples(r.params, d[0]), (X,), False,
                 tuple((lambda k, d, b=b: b(k, d, vbgmm.fit), name)
                       for b, name in _MIXTURE_BAD)),
    "pca": Row(pca.fit, lambda k, d: pca.fit(d[0], 1),
               lambda r, d: pca.transform(r.params, d[0]), (X,), True,
               ((lambda k, d: pca.fit(_nan(d[0]), 1), "X"),
                (lambda k, d: pca.fit(d[0], 0), "n_components"))),
    "ppca": Row(ppca.fit, lambda k, d: ppca.fit(d[0], 1),
                lambda r, d: ppca.score_samples(r.params, d[0]), (X,), True,
                ((lambda k, d: ppca.fit(_nan(d[0]), 1), "X"),
                 (lambda k, d: ppca.fit(d[0], 3), "n_components"))),
    "ppca_em": Row(ppca.fit_em, lambda k, d: ppca.fit_em(k, d[0], 1, max_iter=20),
                   lambda r, d: ppca.sample(jax.random.key(0), r.params, 4), (X,), False,
                   ((lambda k, d: ppca.fit_em(k, _nan(d[0]), 1), "X"),
                    (lambda k, d: ppca.fit_em(k, d[0], 0), "n_components"))),
    "least_squares": Row(regression.fit_least_squares,
                         lambda k, d: regression.fit_least_squares(d[0], d[1]),
                         lambda r, d: regression.predict(r.params, d[0]), (PHI, T), True,
                         ((lambda k, d: regression.fit_least_squares(_nan(d[0]), d[1]), "X"),
                          (lambda k, d: regression.fit_least_squares(d[0], d[1], ridge=-1.0),
                           "ridge"))),
    "bayes_evidence": Row(bayes.fit_evidence, lambda k, d: bayes.fit_evidence(d[0], d[1]),
                          lambda r, d: bayes.predict(r.params, d[0]).var, (PHI, T), False,
                          ((lambda k, d: bayes.fit_evidence(_nan(d[0]), d[1]), "X"),
                           (lambda k, d: bayes.fit_evidence(d[0], d[1], max_iter=0),
                            "max_iter"))),
    "logistic_laplace": Row(logistic.fit_laplace,
                            lambda k, d: logistic.fit_laplace(d[0], d[1]),
                            lambda r, d: logistic.predict_proba(r.params, d[0]),
                            (PHI, LABELS), False,
                            ((lambda k, d: logistic.fit_laplace(_nan(d[0]), d[1]), "X"),
                             (lambda k, d: logistic.fit_laplace(d[0], 2 * d[1]), "y"))),
    "logistic_evidence": Row(logistic.fit_evidence,
                             lambda k, d: logistic.fit_evidence(d[0], d[1], max_iter=20),
                             lambda r, d: logistic.predict_proba(r.params, d[0]),
                             (PHI, LABELS), False,
                             ((lambda k, d: logistic.fit_evidence(_nan(d[0]), d[1]), "X"),
                              (lambda k, d: logistic.fit_evidence(d[0], d[1], alpha0=0.0),
                               "alpha0"))),
    "gp": Row(gp.fit, lambda k, d: gp.fit(d[0], d[1], GP0),
              lambda r, d: gp.predict(r.params, d[0])[0], (XG, YG), True,
              ((lambda k, d: gp.fit(_nan(d[0]), d[1], GP0), "X"),
               (lambda k, d: gp.fit(d[0], d[1][:, None], GP0), "y"))),
    "gp_hyper": Row(gp.fit_hyperparameters,
                    lambda k, d: gp.fit_hyperparameters(d[0], d[1], GP0, optimizer=ADAM,
                                                        max_iter=10),
                    lambda r, d: gp.predict(gp.fit(d[0], d[1], r.params).params, d[0])[1],
                    (XG, YG), False,
                    ((lambda k, d: gp.fit_hyperparameters(_nan(d[0]), d[1], GP0,
                                                          optimizer=ADAM, max_iter=10), "X"),
                     (lambda k, d: gp.fit_hyperparameters(d[0], d[1], GP0, optimizer=ADAM,
                                                          max_iter=0), "max_iter"))),
}


STOCHASTIC = {"kmeans", "gmm", "gmm_online", "vbgmm", "ppca_em"}   # random initialisations


def _check_result(res: Any, closed_form: bool) -> None:
    assert type(res)._fields[:4] == ("params", "history", "n_iter", "converged")
    assert isinstance(res.params, tuple) and hasattr(res.params, "_fields")   # a NamedTuple
    history, n_iter, converged = (np.asarray(a) for a in res[1:4])
    assert history.ndim == 1 and np.issubdtype(history.dtype, np.floating)
    assert n_iter.shape == () and np.issubdtype(n_iter.dtype, np.integer)
    assert converged.shape == () and converged.dtype == np.bool_
    if closed_form:
        assert history.shape == (0,) and int(n_iter) == 0 and bool(converged)
    else:
        assert 1 <= int(n_iter) <= history.shape[0]
        assert np.all(np.isfinite(history[: int(n_iter)]))


def _ours(fun_name: str) -> bool:
    """A name defined in one of the library's model or engine modules (its jitted functions
    included); the validation helpers, which run before a fit by design, do not count."""
    name = fun_name.removeprefix("jit(").removesuffix(")")
    return any(name in vars(mod) for mod_name, mod in list(sys.modules.items())
               if mod_name.startswith("espresso_jax") and mod_name != "espresso_jax.validation"
               and mod is not None)


@pytest.mark.parametrize("name", list(ROWS))
def test_fit_contract(name):
    row = ROWS[name]
    params = list(inspect.signature(row.fn).parameters.values())
    if name in STOCHASTIC:
        assert params[0].name == "key" and params[0].default is inspect.Parameter.empty
    else:
        assert "key" not in [p.name for p in params]

    key, key2 = jax.random.key(0), jax.random.key(1)
    res = row.fit(key, row.data)
    _check_result(res, row.closed_form)
    out = np.asarray(row.predict(res, row.data))
    assert np.all(np.isfinite(out))

    # new values, same shapes: nothing compiles (fit, then predict with the new params)
    data2 = tuple(np.asarray(a * 1.5 + 0.25 if a is not LABELS else 1 - a, a.dtype)
                  for a in row.data)
    _EVENTS.clear()
    res2 = row.fit(key2, data2)
    row.predict(res2, data2)
    compiled = [f for e, f in _EVENTS if e == "/jax/core/compile/backend_compile_duration"]
    assert compiled == [], f"{name}: second call compiled {compiled}"

    # bad input: ValueError naming the argument, before any of our functions is traced (one
    # row fewer: shapes not compiled yet, so reaching a jitted fit would trace it)
    fewer = tuple(a[:-1] for a in row.data)
    for bad, arg in row.bad:
        _EVENTS.clear()
        with pytest.raises(ValueError, match=rf"^{arg}\b"):
            bad(key, fewer)
        traced = [f for e, f in _EVENTS
                  if e == "/jax/core/compile/jaxpr_trace_duration" and _ours(f)]
        assert traced == [], f"{name}: {arg} rejected after tracing {traced}"
