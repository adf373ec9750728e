"""Sphinx configuration of the espresso_jax documentation (``make docs``; see docs/README.md).

Tools: Sphinx with autodoc + napoleon (the library's docstrings are Google style), myst-parser
(pages in Markdown, so ``benchmarks/RESULTS.md`` is included as it is) and sphinx-gallery (the
scripts in ``examples/`` run during the build and become pages with their printed output and
figures; a failing example fails the build). myst-nb was not chosen: the examples are plain
scripts, and sphinx-gallery runs scripts without a notebook kernel. No extension fetches
anything (intersphinx is off), so the build runs offline, and sphinx-mathjax-offline ships
MathJax with the pages, so the formulas render without the network too.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import sys
import typing
from pathlib import Path

import matplotlib
from sphinx.util.inspect import stringify_signature

matplotlib.use("Agg")

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(DOCS))                      # gallery_hooks

project = "espresso_jax"
author = "espresso_jax developers"
copyright = "espresso_jax developers"
release = version = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",      # MathJax 3 copied into _static: formulas render offline
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "README.md", "_gallery_src", "examples/*.ipynb",
                    "examples/*.py", "examples/*.md5", "examples/*.zip",
                    "examples/*.json", "examples/*.codeobj.json"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
python_use_unqualified_type_names = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Attribute types from annotations would be unqualified names (GaussianPrior exists twice).
napoleon_attr_annotations = False

html_theme = "alabaster"
html_static_path: list[str] = []
html_title = "espresso_jax"
html_theme_options = {"description": "Bayesian ML as composable JAX functions",
                      "fixed_sidebar": True, "page_width": "1180px"}

# --- the example gallery ------------------------------------------------------------------
# The scripts are copied to _gallery_src (ignored by git) and run there, so the files they write
# (PNGs, msgpack, JSON) stay out of examples/. The copy gives each docstring an rst title (the
# file name), which sphinx-gallery needs, and shows its indented command lines as a code block;
# the code itself is unchanged.
# Scripts that take more than about a minute of CPU even with --quick are shown with their
# code but not run (the slow suite runs them: tests/test_examples.py::test_slow_example_runs).
NOT_RUN = {
}
GALLERY_SRC = DOCS / "_gallery_src"


def _copy_examples() -> None:
    if GALLERY_SRC.exists():
        shutil.rmtree(GALLERY_SRC)
    GALLERY_SRC.mkdir()
    header = ["Examples", "========", "",
              "Each script of ``examples/`` as a page: its code, what it prints and the figures "
              "it draws, run while the documentation is built (scripts that have a ``--quick`` "
              "option run with it, as ``tests/test_examples.py`` runs them).", ""]
    for name, reason in sorted(NOT_RUN.items()):
        header.append(f"* ``{name}`` is shown but not run here: {reason}")
    (GALLERY_SRC / "GALLERY_HEADER.rst").write_text("\n".join(header) + "\n")
    for script in sorted((ROOT / "examples").glob("*.py")):
        text = script.read_text()
        title = script.name
        if not text.startswith('"""'):
            raise RuntimeError(f"{script} has no module docstring")
        doc_end = text.index('"""', 3)
        doc = re.sub(r"\n\n((?:    python .*\n(?:    .*\n)*))", r"\n\n.. code-block:: bash\n\n\1",
                     text[3:doc_end] + "\n")
        text = f'"""{title}\n{"=" * len(title)}\n\n' + doc.rstrip("\n") + "\n" + text[doc_end:]
        (GALLERY_SRC / script.name).write_text(text)


_copy_examples()
_not_run = "|".join(re.escape(name) for name in NOT_RUN)
sphinx_gallery_conf = {
    "examples_dirs": "_gallery_src",
    "gallery_dirs": "examples",
    "filename_pattern": r"\.py$" if not NOT_RUN else rf"^(?!.*({_not_run})$).*\.py$",
    "reset_argv": "gallery_hooks.argv",
    "backreferences_dir": None,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "write_computation_times": False,      # wall times of a shared machine: not a record
    "plot_gallery": "True",
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "matplotlib_animations": False,
    "image_scrapers": ("gallery_hooks.saved_pngs",),
    "within_subsection_order": "FileNameSortKey",
}
os.environ.setdefault("TQDM_DISABLE", "1")

# --- the tour's figures -------------------------------------------------------------------
# The family pages show the figures the tour draws (`espresso-jax tour --quick`): its classical
# sections run here into _tour/ (ignored by git); the deep sections run the same experiment
# functions as the example scripts, so those pages show the gallery's figures instead. The
# folder is reused while it is newer than every source file of the library.
TOUR = DOCS / "_tour"
TOUR_SECTIONS = ["beta-binomial", "bayesian linear regression", "evidence vs order",
                 "sequential weights", "gaussian process", "logistic regression",
                 "fully bayesian linear", "gmm", "vbgmm", "kmeans", "pca"]


def _tour_is_current() -> bool:
    index = TOUR / "index.html"
    if not index.exists():
        return False
    newest = max(p.stat().st_mtime for p in (ROOT / "src").rglob("*.py"))
    return index.stat().st_mtime > newest


if not _tour_is_current():
    from espresso_jax.apps.tour import run_tour

    run_tour(0, TOUR, quick=True, sections=TOUR_SECTIONS)


# --- autodoc ------------------------------------------------------------------------------
def _drop_type_docstring(app, what, name, obj, options, lines) -> None:
    """A public constant without a docstring of its own (a dict, a functools.partial, ...)
    would show its type's docstring (``dict``'s, ``partial``'s); show none instead."""
    type_doc = type(obj).__doc__
    if what == "data" and type_doc and lines:
        first = inspect.cleandoc(type_doc).splitlines()[0].strip()
        if lines[0].strip() == first:
            lines[:] = []


def _namedtuple_signature(app, what, name, obj, options, signature, return_annotation):
    """The signature of a NamedTuple class with the library's own classes fully qualified.

    Under ``from __future__ import annotations`` the fields' annotations are strings that
    autodoc cannot evaluate in the generated ``__new__``, so a bare ``GaussianPrior`` stays
    ambiguous (two modules define one). Each capitalised name of an annotation that is an
    ``espresso_jax`` class in the class's module becomes its full path (shown short by
    ``python_use_unqualified_type_names``); other names (``jax.Array``, ``Any``) stay as
    written."""
    if what != "class" or not (isinstance(obj, type) and issubclass(obj, tuple)
                               and hasattr(obj, "_fields")):
        return None
    namespace = vars(sys.modules[obj.__module__])

    def qualify(match: re.Match) -> str:
        found = namespace.get(match.group(0))
        if isinstance(found, type) and found.__module__.startswith("espresso_jax"):
            return f"{found.__module__}.{found.__qualname__}"
        return match.group(0)

    empty = inspect.Parameter.empty
    params = []
    for field in obj._fields:
        annotation = obj.__annotations__.get(field, empty)
        if isinstance(annotation, typing.ForwardRef):      # NamedTuple wraps the strings
            annotation = annotation.__forward_arg__
        if isinstance(annotation, str):
            annotation = re.sub(r"(?<![\w.])[A-Z]\w*", qualify, annotation)
        params.append(inspect.Parameter(field, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        annotation=annotation,
                                        default=obj._field_defaults.get(field, empty)))
    return stringify_signature(inspect.Signature(params)), return_annotation


def setup(app) -> None:
    app.connect("autodoc-process-docstring", _drop_type_docstring)
    app.connect("autodoc-process-signature", _namedtuple_signature)
