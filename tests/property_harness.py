"""The rule of the property-based suites (issue 13 section 6) and the inputs they generate.

A public call given a generated bad or unusual input must either

* return a result that passes the family's ``accept`` check: every number finite, and the
  library's own functions (``predict``, ``score_samples``, ``log_likelihood`` ...) take the
  fitted parameters and give finite output (one exception, :func:`log_density`: a
  log-density may be ``-inf`` where its true value, computed in float64, is below float32's
  range); or
* raise ``ValueError``/``TypeError`` from the library's own code (the innermost frame is in
  ``espresso_jax``), outside any JAX trace, before any of the library's functions (the
  ``validation`` helpers excepted) is traced, with a message that names the argument the
  test changed.

Anything else (NaN output, an error type or raise site of JAX/flax/numpyro, a message without
the argument's name, a trace before the error) is a failure. :func:`check` applies the rule to
one generated case and records the outcome class; with ``ESPRESSO_PROPERTY_COUNTS=FILE`` set,
failures are recorded instead of raised (so every example of every case runs) and the counts
are written to ``FILE`` (JSON) when the interpreter exits: ``tools/property_counts.py``.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.monitoring
import numpy as np
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

COUNTS: Counter[tuple[str, str]] = Counter()
FAILURES: dict[str, str] = {}          # case id -> the first failure's description
_COUNT_FILE = os.environ.get("ESPRESSO_PROPERTY_COUNTS")


def counting() -> bool:
    """True when ``ESPRESSO_PROPERTY_COUNTS`` asks for counts (failures recorded, not raised)."""
    return _COUNT_FILE is not None


def profile(max_examples: int) -> settings:
    """Fixed, reproducible hypothesis settings: no example database, no deadline, derandomised
    (the same examples on every run and machine), no shrinking (a failing example is reported
    as generated, with its ``note`` lines saying what was changed)."""
    return settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=False,
                    phases=(Phase.explicit, Phase.generate))   # no shrinking: cheap failures


_EVENTS: list[str] = []
_LISTENING = [False]   # record only during a check (the listener stays registered)


def _record(event: str, duration: float, **kwargs: Any) -> None:
    if _LISTENING[0] and event == "/jax/core/compile/jaxpr_trace_duration":
        _EVENTS.append(str(kwargs.get("fun_name", "")))


jax.monitoring.register_event_duration_secs_listener(_record)


def _ours(fun_name: str) -> bool:
    """A function of the library's model or engine modules (validation helpers excepted)."""
    name = fun_name.removeprefix("jit(").removesuffix(")")
    return any(name in vars(mod) for mod_name, mod in list(sys.modules.items())
               if mod_name.startswith("espresso_jax") and mod_name != "espresso_jax.validation"
               and mod is not None)


_JAX_TRACING = (f"jax{os.sep}_src{os.sep}interpreters", f"jax{os.sep}_src{os.sep}pjit.py",
                f"flax{os.sep}core{os.sep}scope.py")


def _error_problem(err: BaseException, arg: str, traced: list[str]) -> str | None:
    """Why a ValueError/TypeError breaks the rule (None when it follows it)."""
    frames = traceback.extract_tb(err.__traceback__)
    site = frames[-1].filename if frames else ""
    if f"espresso_jax{os.sep}" not in site:
        return f"raised by {site.rsplit(os.sep, 3)[-3:]} not by the library: {err}"
    inside = [f.filename for f in frames if any(p in f.filename for p in _JAX_TRACING)]
    if inside:
        return f"raised inside a JAX trace ({inside[0]}): {err}"
    if traced:   # (a cached compilation is not seen: this check can only miss, never flake)
        return f"raised after tracing {traced}: {err}"
    if not re.search(rf"(?<![\w.-]){re.escape(arg)}(?![\w])", str(err)):
        return f"message does not name {arg!r}: {err}"
    return None


def check(case: str, arg: str, call: Callable[[], Any],
          accept: Callable[[Any], None], *, numeric: bool = False) -> str:
    """Apply the rule to ``call()``; ``arg`` is the argument the case changed and ``accept``
    checks a returned result (raises on a non-finite or rejected one). ``numeric``: the case
    changed values only (scale, degenerate rows), so an error may need the computation (a
    singular covariance) and is not required to come before tracing. Returns the outcome
    class ``"finite"``, ``"ValueError"``, ``"TypeError"`` or ``"failure"``."""
    filtering = jax.config.jax_traceback_filtering
    jax.config.update("jax_traceback_filtering", "off")
    _EVENTS.clear()
    problem = None
    _LISTENING[0] = True
    try:
        result = call()
    except (ValueError, TypeError) as err:
        traced = [] if numeric else [f for f in _EVENTS if _ours(f)]
        problem = _error_problem(err, arg, traced)
        outcome = "TypeError" if isinstance(err, TypeError) else "ValueError"
    except Exception as err:  # any other type is the failure this suite looks for
        problem = f"{type(err).__module__}.{type(err).__name__}: {str(err)[:300]}"
    else:
        _LISTENING[0] = False
        outcome = "finite"
        try:
            accept(result)
        except Exception as err:
            problem = f"result not accepted: {type(err).__name__}: {str(err)[:300]}"
    finally:
        _LISTENING[0] = False
        jax.config.update("jax_traceback_filtering", filtering)
    if problem is not None:
        outcome = "failure"
        FAILURES.setdefault(case, problem)
    COUNTS[case, outcome] += 1
    if problem is not None and not counting():
        raise AssertionError(f"{case}: {problem}")
    return outcome


def _write_counts() -> None:
    if _COUNT_FILE and COUNTS:
        old = json.loads(Path(_COUNT_FILE).read_text()) if os.path.exists(_COUNT_FILE) else {}
        rows = old.get("counts", []) + [[c, o, n] for (c, o), n in sorted(COUNTS.items())]
        failures = {**old.get("failures", {}), **FAILURES}
        Path(_COUNT_FILE).write_text(json.dumps({"counts": rows, "failures": failures}, indent=1))


atexit.register(_write_counts)


def finite(*trees: Any) -> None:
    """Every leaf of every pytree is finite (integer and bool leaves pass)."""
    for tree in trees:
        for leaf in jax.tree.leaves(tree):
            a = np.asarray(leaf)
            if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
                raise AssertionError(f"non-finite output of shape {a.shape}: {a.ravel()[:4]}")


def log_density(logp: Any, reference: Callable[[], Any]) -> None:
    """A log-density result: finite, except that ``-inf`` is accepted where the true value is
    below ``-finfo(float32).max`` (there ``-inf`` is the correctly rounded float32 answer: a
    Gaussian log-density of a point 1e20 from a unit-scale model is about -1e40).
    ``reference()`` recomputes the same call with float64 parameters and data; it runs under
    ``jax.enable_x64(True)`` and only when ``logp`` holds a ``-inf``. NaN and ``+inf``
    always fail."""
    a = np.asarray(logp)
    if np.all(np.isfinite(a)):
        return
    if np.any(np.isnan(a)) or np.any(np.isposinf(a)):
        raise AssertionError(f"log-density NaN or +inf: {a.ravel()[:4]}")
    with jax.enable_x64(True):
        ref = np.asarray(reference())
    if ref.dtype != np.float64:
        raise AssertionError(f"the float64 reference came out {ref.dtype}")
    wrong = np.isneginf(a) & ~(ref < -np.finfo(np.float32).max)
    if np.any(wrong):
        raise AssertionError(f"log-density -inf where float64 gives {ref[wrong][:4]}")


def as_float64(*trees: Any) -> Any:
    """Every float leaf of every pytree as a float64 numpy array (for :func:`log_density`'s
    reference; pass the result to the library under ``enable_x64``)."""
    out = tuple(jax.tree.map(lambda leaf: np.asarray(leaf, np.float64)
                             if np.asarray(leaf).dtype.kind == "f" else leaf, t) for t in trees)
    return out if len(out) > 1 else out[0]


def fit_result(res: Any) -> None:
    """A fit's result: params finite; history finite up to ``n_iter``."""
    finite(res.params)
    history = res.history
    if isinstance(history, dict):
        finite(history)
    else:
        finite(np.asarray(history)[: int(res.n_iter)])


NUMERIC_KINDS = ("scale", "degenerate")
#: examples per generated case, by kind of input (the discrete kinds have few values); fewer
#: than the first version's 6/4/6/4/3/5/6/4/2 for the default suite's budget, but scale keeps
#: 6 (fewer draws miss the x1e-20 extreme that regression.fit_least_squares fails on)
EXAMPLES = {"scale": 6, "shape": 3, "dtype": 4, "nonfinite": 2, "degenerate": 2, "labels": 3,
            "count": 4, "key": 3, "width": 2}


# --- generated inputs ---------------------------------------------------------------------

MATRIX_KINDS = ("scale", "shape", "dtype", "nonfinite", "degenerate")
NONFINITE = (np.nan, np.inf, -np.inf)


@st.composite
def matrix_variant(draw: Any, kind: str, base: np.ndarray) -> np.ndarray | Any:
    """A bad or unusual version of the ``(n, d)`` float32 matrix ``base`` (1-D ``base``: a
    vector, same kinds)."""
    n = base.shape[0]
    if kind == "scale":      # x 1e-30 .. 1e30, computed in float64 then rounded once
        e = draw(st.one_of(st.sampled_from((30, -30, 20, -20)), st.integers(-30, 30)))
        note(f"{kind}: x 1e{e}")
        return (base.astype(np.float64) * 10.0 ** e).astype(np.float32)
    if kind == "shape":
        if base.ndim == 1:
            shapes = {"empty": base[:0], "2-D": base[:, None], "one short": base[:-1],
                      "scalar": base[0]}
        else:
            shapes = {"empty": base[:0], "1-D": base[:, 0], "3-D": base[..., None],
                      "no columns": base[:, :0], "scalar": base[0, 0]}
        which = draw(st.sampled_from(sorted(shapes)))
        note(f"{kind}: {which}")
        return shapes[which]
    if kind == "dtype":
        which = draw(st.sampled_from(("int", "bool", "float16", "float64", "complex", "object",
                                      "list", "string")))
        note(f"{kind}: {which}")
        if which == "int":
            return np.round(base * 4).astype(np.int64)
        if which == "bool":
            return base > np.median(base)
        if which == "float16":
            return base.astype(np.float16)
        if which == "float64":
            return base.astype(np.float64)
        if which == "complex":
            return base.astype(np.complex64) + 1j
        if which == "object":
            return base.astype(object)
        if which == "list":
            return base.tolist()
        return "data.csv"
    if kind == "nonfinite":
        value = draw(st.sampled_from(NONFINITE))
        out = base.copy()
        where = draw(st.sampled_from(("cell", "row", "column") if base.ndim == 2
                                     else ("cell", "all")))
        i = draw(st.integers(0, n - 1))
        note(f"{kind}: {value} in {where} {i}")
        if where == "cell":
            j = draw(st.integers(0, base.shape[1] - 1)) if base.ndim == 2 else None
            out[(i, j) if base.ndim == 2 else i] = value
        elif where == "row":
            out[i] = value
        elif where == "column":
            out[:, draw(st.integers(0, base.shape[1] - 1))] = value
        else:
            out[:] = value
        return out
    if kind == "degenerate":
        which = draw(st.sampled_from(("equal rows", "duplicated rows", "constant column")
                                     if base.ndim == 2 else ("equal rows", "duplicated rows")))
        note(f"{kind}: {which}")
        if which == "equal rows":
            return np.repeat(base[draw(st.integers(0, n - 1))][None], n, axis=0)
        if which == "duplicated rows":   # the first half twice (same shape: nothing compiles)
            half = base[: (n + 1) // 2]
            return np.concatenate([half, half])[:n]
        out = base.copy()
        out[:, draw(st.integers(0, base.shape[1] - 1))] = draw(st.sampled_from((0.0, 7.5)))
        return out
    raise ValueError(kind)


@st.composite
def label_variant(draw: Any, base: np.ndarray, n_classes: int) -> np.ndarray:
    """Labels in ``0 .. n_classes - 1`` made bad: negative, too large, non-integral floats,
    integral floats, one class only."""
    which = draw(st.sampled_from(("negative", "too large", "float", "integral float",
                                  "one class")))
    note(f"labels: {which}")
    out = base.astype(np.float32 if which in ("float", "integral float") else np.int32)
    i = draw(st.integers(0, len(base) - 1))
    if which == "negative":
        out[i] = -draw(st.integers(1, 3))
    elif which == "too large":
        out[i] = n_classes + draw(st.integers(0, 10))
    elif which == "float":
        out[i] = out[i] + 0.5
    elif which == "one class":
        out[:] = draw(st.integers(0, n_classes - 1))
    return out


def count_variant(n_rows: int) -> st.SearchStrategy[Any]:
    """A bad number of components/clusters/classes: 0, negative, more than the rows, a float
    (integral or not), a bool, a string, None."""
    return st.sampled_from((0, -1, n_rows + 1, 2.0, 2.5, True, "2", None))


def key_variant() -> st.SearchStrategy[Any]:
    """A bad key: an int, an old-style uint32 key (accepted), a batch of keys, a float array,
    None."""
    return st.sampled_from(("int", "uint32", "batch", "float", "none")).map(
        lambda w: {"int": 0, "uint32": jax.random.PRNGKey(0),
                   "batch": jax.random.split(jax.random.key(0), 2),
                   "float": np.zeros(2, np.float32), "none": None}[w])


def kinds(arg_type: str) -> tuple[str, ...]:
    """The kinds of generated value for an argument of ``arg_type``."""
    if arg_type in ("matrix", "vector"):
        return MATRIX_KINDS
    if arg_type == "data":
        return tuple(k for k in MATRIX_KINDS if k != "shape")
    if arg_type == "predict":
        return ("width", *MATRIX_KINDS)
    return (arg_type.split(":")[0].rstrip("23"),)   # labels, count, key, or the suite's own


def generate(data: Any, arg_type: str, kind: str, base: Any, n_rows: int) -> Any:
    """Draw one generated value of ``kind`` for an argument of ``arg_type`` (``matrix``,
    ``vector``, ``predict``, ``labelsC``, ``count``, ``key``) whose good value is ``base``."""
    if kind == "labels":
        return data.draw(label_variant(base, int(arg_type[-1])))
    if kind == "count":
        return data.draw(count_variant(n_rows))
    if kind == "key":
        return data.draw(key_variant())
    if kind == "width":
        extra = data.draw(st.sampled_from((-1, 1, 2)))
        return base[:, :extra] if extra < 0 else np.concatenate([base] + [base[:, :1]] * extra,
                                                                axis=1)
    return data.draw(matrix_variant(kind, np.asarray(base)))


class Target(NamedTuple):
    """A public call ``call(inputs)``, the check of its result ``accept(result, inputs)``, its
    good inputs and the arguments that get generated values (name -> kind of value)."""

    call: Callable[[dict], Any]
    accept: Callable[[Any, dict], None]
    inputs: dict[str, Any]
    args: dict[str, str]


def run_property(targets: dict[str, Target], target: str, arg: str, kind: str, n_rows: int,
                 examples: int | None = None,
                 own_kinds: dict[str, Callable[[Any, Any], Any]] | None = None) -> None:
    """Generate ``kind`` values for ``arg`` of ``targets[target]`` (the other inputs good) and
    apply :func:`check` to each call; ``examples`` overrides :data:`EXAMPLES`; ``own_kinds``
    maps a suite's own kinds to ``draw(data, good value) -> generated value``."""
    t = targets[target]
    own = own_kinds or {}

    @profile(examples or EXAMPLES[kind])
    @given(data=st.data())
    def run(data: Any) -> None:
        inputs = dict(t.inputs)
        inputs[arg] = (own[kind](data, inputs[arg]) if kind in own
                       else generate(data, t.args[arg], kind, inputs[arg], n_rows))
        check(f"{target}-{arg}-{kind}", arg, lambda: t.call(inputs),
              lambda r: t.accept(r, inputs), numeric=kind in NUMERIC_KINDS)

    run()
