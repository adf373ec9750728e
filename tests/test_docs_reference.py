"""Every public name has a docstring and an entry in the API reference (docs/api/*.rst).

Cheap (no Sphinx): the test imports every ``espresso_jax`` module that defines ``__all__``
(the application layer included), reads the ``.. autofunction::`` / ``autoclass`` /
``autodata`` directives of the reference pages as text, resolves each to its object, and
checks that every name of every ``__all__`` is one of those objects. A re-export is the same
object, so it is covered by the entry of its home module (``docs/gen_api.py`` writes one entry
per object; run it after adding a public name).
"""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import espresso_jax

API = Path(__file__).resolve().parent.parent / "docs" / "api"
DIRECTIVE = re.compile(r"^\.\. auto(function|class|data|exception)::\s+(\S+)\s*$", re.MULTILINE)
CALLABLE_KINDS = ("function", "class", "exception")


def _public_modules():
    names = ["espresso_jax"] + [m.name for m in pkgutil.walk_packages(
        espresso_jax.__path__, "espresso_jax.")]
    modules = [importlib.import_module(name) for name in sorted(names)]
    return [m for m in modules if hasattr(m, "__all__")]


def _public_names():
    """(module name, name, object) for every non-module, non-dunder name of every __all__."""
    out = []
    for module in _public_modules():
        for name in module.__all__:
            obj = getattr(module, name)
            if not inspect.ismodule(obj) and not name.startswith("__"):
                out.append((module.__name__, name, obj))
    return out


def _resolve(target):
    """Import the longest module prefix of a dotted ``target`` and get the rest from it."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(target)


def _documented(api=API):
    """(kind, target, object) for every autodoc directive of ``api/*.rst``."""
    entries = []
    for page in sorted(api.glob("*.rst")):
        for kind, target in DIRECTIVE.findall(page.read_text()):
            entries.append((kind, target, _resolve(target)))
    return entries


def _own_docstring(obj):
    """The object's docstring, or "" when it has none of its own: a NamedTuple or dataclass
    without one gets a generated ``Name(field, ...)`` line, which does not count."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    doc = inspect.cleandoc(doc or "")
    name = getattr(obj, "__name__", "")
    if inspect.isclass(obj) and "\n" not in doc and doc.startswith(f"{name}(") \
            and doc.endswith(")"):
        return ""
    return doc


def test_the_walk_sees_every_layer():
    modules = {m.__name__ for m in _public_modules()}
    for expected in ("espresso_jax.em", "espresso_jax.train", "espresso_jax.mixture.gmm",
                     "espresso_jax.bnn.bbb", "espresso_jax.fully_bayes.mcmc",
                     "espresso_jax.apps.report", "espresso_jax.apps.uci.protocol"):
        assert expected in modules
    assert len(_public_names()) > 500


def test_every_public_function_and_class_has_a_docstring():
    missing = sorted({f"{module}.{name}" for module, name, obj in _public_names()
                      if callable(obj) and not _own_docstring(obj)})
    assert not missing, f"public names without a docstring: {missing}"


def _missing_from(api):
    entries = _documented(api)
    callables = {id(obj) for kind, _, obj in entries if kind in CALLABLE_KINDS}
    data = {(target.rsplit(".", 1)[1], id(obj)) for kind, target, obj in entries
            if kind == "data"}
    return sorted(f"{module}.{name}" for module, name, obj in _public_names()
                  if (id(obj) not in callables if callable(obj)
                      else (name, id(obj)) not in data))


def test_every_public_name_is_in_the_api_reference():
    missing = _missing_from(API)
    assert not missing, (f"public names missing from docs/api/*.rst (run python "
                         f"docs/gen_api.py): {missing}")


def test_every_reference_entry_is_a_public_name():
    public = {(name, id(obj)) for _, name, obj in _public_names()}
    stale = [target for _, target, obj in _documented()
             if (target.rsplit(".", 1)[1], id(obj)) not in public]
    assert not stale, f"entries of docs/api/*.rst that no __all__ exports: {stale}"


@pytest.mark.parametrize("kind", ["class", "function", "data"])
def test_the_parser_reads_each_kind_of_directive(kind):
    assert any(k == kind for k, _, _ in _documented())


def test_an_unlisted_name_would_be_caught(tmp_path):
    # negative control: the reference pages less one entry (and less one constant) are caught
    for page in API.glob("*.rst"):
        (tmp_path / page.name).write_text(page.read_text())
    for name, line in (("em.rst", ".. autofunction:: espresso_jax.em.fit_em\n"),
                       ("metrics.rst", ".. autodata:: espresso_jax.metrics.calibration."
                                       "DEFAULT_N_BINS\n")):
        text = (tmp_path / name).read_text()
        assert line in text
        (tmp_path / name).write_text(text.replace(line, ""))
    removed = ["espresso_jax.em.fit_em", "espresso_jax.metrics.DEFAULT_N_BINS",
               "espresso_jax.metrics.calibration.DEFAULT_N_BINS"]
    assert _missing_from(tmp_path) == sorted(set(_missing_from(API)) | set(removed))


def test_a_generated_namedtuple_docstring_does_not_count():
    from typing import NamedTuple

    class Bare(NamedTuple):
        a: int

    class Documented(NamedTuple):
        """A documented tuple."""

        a: int

    assert _own_docstring(Bare) == ""
    assert _own_docstring(Documented) == "A documented tuple."
