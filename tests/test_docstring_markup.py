"""Every docstring of the package is valid reStructuredText after napoleon's Google-style
conversion, checked in seconds in the default suite.

The documentation build (``tests/test_docs_build.py``, slow: it runs the gallery) treats
docutils warnings as errors. An inline literal run into the next character, or an indented
continuation line under "References:", fails it, and only the slow suite would say so. This
test converts each module, class, function, method and property docstring with napoleon's
``GoogleDocstring`` (as ``docs/conf.py`` does) and parses the result with docutils, with
Sphinx's cross-reference roles and object directives stubbed (their targets are the slow
build's business). Any docutils message at WARNING level or above fails, naming the object
and the line.
"""

import importlib
import inspect
import io
import pkgutil

import docutils.core as docutils_core
import pytest
import sphinx.ext.napoleon as napoleon
from docutils import nodes
from docutils.parsers.rst import Directive, directives, roles

import espresso_jax

SPHINX_ROLES = ("any", "class", "func", "mod", "meth", "data", "attr", "math", "ref", "doc",
                "obj", "exc", "term", "py:class", "py:func", "py:mod", "py:meth", "py:data",
                "py:obj", "py:attr", "py:exc")
SPHINX_DIRECTIVES = ("attribute", "method", "function", "class", "data", "rubric", "index",
                     "math", "code-block", "testcode", "doctest", "seealso", "versionadded",
                     "versionchanged", "deprecated")
CONFIG = napoleon.Config(napoleon_google_docstring=True, napoleon_numpy_docstring=False)


def _literal_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    return [nodes.literal(rawtext, text)], []


class _SkippedDirective(Directive):
    has_content = True
    optional_arguments = 10
    final_argument_whitespace = True
    option_spec: dict = {}

    def run(self):
        return []


@pytest.fixture(scope="module", autouse=True)
def _sphinx_markup():
    for role in SPHINX_ROLES:
        roles.register_local_role(role, _literal_role)
    for directive in SPHINX_DIRECTIVES:
        directives.register_directive(directive, _SkippedDirective)


def _docstrings():
    """(dotted name, docstring) for every module of the package and every class, function,
    method and property it defines (re-exports are checked once, in their home module)."""
    out, seen = [], set()
    names = ["espresso_jax"] + [m.name for m in pkgutil.walk_packages(
        espresso_jax.__path__, "espresso_jax.")]
    for module_name in sorted(names):
        module = importlib.import_module(module_name)
        out.append((module_name, module.__doc__))
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module_name or id(obj) in seen:
                continue
            seen.add(id(obj))
            out.append((f"{module_name}.{name}", inspect.getdoc(obj)))
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if isinstance(value, (staticmethod, classmethod)):
                        value = value.__func__
                    own = isinstance(value, property) or (
                        inspect.isfunction(value) and value.__module__ == module_name)
                    if own and value.__doc__:
                        out.append((f"{module_name}.{name}.{attr}", inspect.getdoc(value)))
    return [(where, doc) for where, doc in out if doc]


def markup_problems(docstring):
    """docutils' messages (WARNING and above) for one Google-style docstring, as text."""
    rst = str(napoleon.GoogleDocstring(inspect.cleandoc(docstring), CONFIG))
    stream = io.StringIO()
    docutils_core.publish_doctree(rst, settings_overrides={
        "report_level": 2, "halt_level": 5, "warning_stream": stream})
    return stream.getvalue()


def test_the_walk_reaches_modules_classes_and_methods():
    where = {name for name, _ in _docstrings()}
    assert {"espresso_jax.train", "espresso_jax.train.fit_loop", "espresso_jax.nn.conv",
            "espresso_jax.nn.gan_modules.UpsampleConvGenerator",
            "espresso_jax.em.EMModel"} <= where
    assert len(where) > 800


@pytest.mark.parametrize("broken", [
    # the two mistakes that failed the slow documentation build in CI (stop 27)
    "Upsampling.\n\n* :func:`f`: 2× (or ``f``×) nearest-neighbour upsampling.\n",
    "Players.\n\nReferences:\n    Odena et al. (2016), Deconvolution, Distill\n"
    "        (upsampling then a convolution).\n    Radford et al. (2016), DCGAN.\n",
    "Fit.\n\nArgs:\n    x: ``(N, D)`` data\n\nReturns:\n    *the result\n",
])
def test_the_check_catches_broken_markup(broken):
    assert markup_problems(broken)


def test_the_check_accepts_the_library_style():
    doc = ("Fit a model.\n\nShapes: ``x: (N, D) -> (N,)``; see :func:`espresso_jax.train.fit`."
           "\n\nArgs:\n    x: data, ``(N, D)``.\n    key: a PRNG key.\n\nReturns:\n"
           "    :class:`espresso_jax.train.FitResult`.\n\nReferences:\n    C. Bishop, PRML "
           "(2006), Sec. 9.2.\n")
    assert markup_problems(doc) == ""


def test_every_docstring_is_valid_restructuredtext():
    problems = {}
    for where, doc in _docstrings():
        found = markup_problems(doc)
        if found:
            problems[where] = found.strip()
    assert not problems, "docstrings the documentation build rejects:\n" + "\n".join(
        f"{where}: {text}" for where, text in sorted(problems.items()))
