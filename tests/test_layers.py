"""The layer rules of DESIGN.md, checked two ways.

- Dynamically: importing the library (every module outside :mod:`espresso_jax.apps`) in a fresh
  interpreter loads neither the application layer nor matplotlib.
- Statically (``ast``, so function-local imports count too): no module outside ``apps`` imports
  ``espresso_jax.apps`` or matplotlib; no module uses another module's private names; models
  and engines do not load data sets.
- Every package's ``__all__`` names exist, and ``espresso_jax.__all__`` lists every public
  subpackage.

The module list comes from the source tree (``pkgutil.iter_modules`` on the folders), not from
importing packages, so that listing modules imports nothing.
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import espresso_jax

PACKAGE_DIR = Path(espresso_jax.__file__).parent
APPS = "espresso_jax.apps"
FORBIDDEN_BELOW_APPS = (APPS, "matplotlib")

# Models and engines: the packages that must not depend on the data-set loaders either.
MODELS_AND_ENGINES = ("linear", "mixture", "nn", "bnn", "fully_bayes", "em", "train", "parallel",
                      "prob")

# (importer, private name) pairs one module may take from another: none. Never add to this
# set: make the name public instead, in the lower layer (DESIGN.md, "Layers"). An entry that
# is no longer used fails `test_private_names_allow_list_is_current`.
PRIVATE_USES_ALLOWED: set[tuple[str, str]] = set()

# Model modules that load a data set, each for a reason. `fully_bayes.bnn.uci_reference` runs
# NUTS on one standard UCI split to produce the reference row for the approximate BNNs; it
# imports the loader inside the function. (It could move to `apps.uci`; kept here because the
# reference is the model's own output on a fixed split.)
DATASET_USES_ALLOWED = {"espresso_jax.fully_bayes.bnn"}


def _walk(path: Path, prefix: str) -> list[tuple[str, Path, bool]]:
    """(dotted name, source file, is package) for every module under ``path``, importing none."""
    found = []
    for info in pkgutil.iter_modules([str(path)]):
        name = f"{prefix}.{info.name}"
        if info.ispkg:
            found.append((name, path / info.name / "__init__.py", True))
            found.extend(_walk(path / info.name, name))
        else:
            found.append((name, path / f"{info.name}.py", False))
    return found


ALL_MODULES = [("espresso_jax", PACKAGE_DIR / "__init__.py", True),
               *_walk(PACKAGE_DIR, "espresso_jax")]
MODULE_NAMES = {name for name, _, _ in ALL_MODULES}
PACKAGES = [name for name, _, is_pkg in ALL_MODULES if is_pkg]


def _in_apps(name: str) -> bool:
    return name == APPS or name.startswith(APPS + ".")


LIBRARY_MODULES = [(name, path) for name, path, _ in ALL_MODULES if not _in_apps(name)]


def _is_forbidden(module: str) -> bool:
    return any(module == top or module.startswith(top + ".") for top in FORBIDDEN_BELOW_APPS)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_module_walk_sees_the_layers():
    names = {name for name, _ in LIBRARY_MODULES}
    for expected in ("espresso_jax.em", "espresso_jax.train", "espresso_jax.prob.info",
                     "espresso_jax.mixture.gmm", "espresso_jax.bnn.bbb",
                     "espresso_jax.fully_bayes.mcmc", "espresso_jax.datasets.uci"):
        assert expected in names
    assert not any(_in_apps(name) for name in names)
    assert "espresso_jax.apps.cli" in MODULE_NAMES


# --- dynamic: a fresh interpreter ------------------------------------------------------------

_PROBE = textwrap.dedent("""
    import importlib, json, sys

    for stage in json.loads(sys.argv[1]):
        for name in stage:
            importlib.import_module(name)
        loaded = {"matplotlib" if m.startswith("matplotlib.") else m for m in sys.modules}
        print(json.dumps(sorted(m for m in loaded if m == "matplotlib"
                                or m == "espresso_jax.apps" or m.startswith("espresso_jax.apps."))))
""")


def _probe(stages: list[list[str]]) -> list[list[str]]:
    """Import each stage's modules in turn in one new interpreter; per stage, the forbidden
    modules loaded so far (a stage's answer includes what earlier stages loaded).

    Importing any submodule runs ``espresso_jax/__init__`` (which imports every subpackage), so
    a failure here cannot say which file is at fault: the static test below names the line.
    """
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(stages)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads(line) for line in proc.stdout.strip().splitlines()[-len(stages):]]


@pytest.fixture(scope="module")
def probed():
    """One fresh interpreter for both tests (~3 s of CPU): first ``import espresso_jax``
    alone, then every library module; the forbidden modules loaded after each stage."""
    return _probe([["espresso_jax"], [name for name, _ in LIBRARY_MODULES]])


def test_import_espresso_jax_loads_no_apps_or_matplotlib(probed):
    assert probed[0] == []


def test_library_modules_load_no_apps_or_matplotlib(probed):
    assert probed[1] == []


# --- static: every import in the source, function-local ones included ------------------------

def _resolve(module: str | None, level: int, importer: str, is_pkg: bool) -> str:
    """Absolute module name of ``from <level dots><module> import ...`` inside ``importer``."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    base = base if is_pkg else base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _imports(path: Path, importer: str, is_pkg: bool):
    """Yield (line, imported module, imported name or None) for every import in the file, and
    for ``importlib.import_module("...")`` / ``__import__("...")`` calls with a literal."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node.module, node.level, importer, is_pkg)
            for alias in node.names:
                yield node.lineno, module, alias.name
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Name) and node.func.id == "__import__")
                   or (isinstance(node.func, ast.Attribute)
                       and node.func.attr == "import_module"))):
            yield node.lineno, node.args[0].value, None


def _is_pkg(name: str) -> bool:
    return name in PACKAGES


@pytest.mark.parametrize("name,path", LIBRARY_MODULES, ids=[n for n, _ in LIBRARY_MODULES])
def test_no_apps_or_matplotlib_import_below_apps(name, path):
    bad = []
    for line, module, imported in _imports(path, name, _is_pkg(name)):
        full = f"{module}.{imported}" if imported else module
        if _is_forbidden(module) or _is_forbidden(full):
            bad.append(f"{path.name}:{line} imports {full}")
    assert not bad, bad


def _private_uses(name: str, path: Path) -> set[tuple[str, str, int]]:
    """(importer, private name used, line): ``from espresso_jax.x import _y`` and ``x._y``
    where ``x`` is bound to another espresso_jax module in this file."""
    uses = set()
    aliases: dict[str, str] = {}   # local name -> espresso_jax module it is bound to
    for line, module, imported in _imports(path, name, _is_pkg(name)):
        if not module.startswith("espresso_jax"):
            continue
        if imported is None:
            continue
        if _is_private(imported):
            uses.add((name, f"{module}.{imported}", line))
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("espresso_jax"):
                    if alias.asname:
                        aliases[alias.asname] = alias.name
                    else:
                        aliases["espresso_jax"] = "espresso_jax"
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node.module, node.level, name, _is_pkg(name))
            for alias in node.names:
                if f"{module}.{alias.name}" in MODULE_NAMES:
                    aliases[alias.asname or alias.name] = f"{module}.{alias.name}"

    def dotted(expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return aliases.get(expr.id)
        if isinstance(expr, ast.Attribute):
            head = dotted(expr.value)
            return f"{head}.{expr.attr}" if head else None
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = dotted(node.value)
            if owner in MODULE_NAMES and owner != name:
                uses.add((name, f"{owner}.{node.attr}", node.lineno))
    return uses


def _all_private_uses() -> set[tuple[str, str, int]]:
    uses = set()
    for name, path, _ in ALL_MODULES:
        uses |= _private_uses(name, path)
    return uses


def test_private_use_scan_finds_both_forms(tmp_path):
    """The scan itself: an import of a private name and an attribute access both count."""
    src = tmp_path / "probe.py"
    src.write_text(textwrap.dedent("""
        import espresso_jax.em as engine
        from espresso_jax import train
        from espresso_jax.prob import info
        from espresso_jax.mixture.gmm import _hidden

        def f():
            from espresso_jax.linear import bayes as B
            return engine._x(), train._y, info.kl_divergence, B._z, espresso_jax.em._w

        import espresso_jax
    """))
    found = {used for _, used, _ in _private_uses("espresso_jax.probe", src)}
    assert found == {"espresso_jax.mixture.gmm._hidden", "espresso_jax.em._x",
                     "espresso_jax.train._y", "espresso_jax.linear.bayes._z",
                     "espresso_jax.em._w"}


def test_no_module_uses_another_modules_private_names():
    found = {(importer, used) for importer, used, _ in _all_private_uses()}
    new = found - PRIVATE_USES_ALLOWED
    lines = sorted(f"{importer} uses {used} (line {line})"
                   for importer, used, line in _all_private_uses()
                   if (importer, used) in new)
    assert not new, ("make the name public in the lower layer instead of importing a private "
                     f"one: {lines}")


def test_private_names_allow_list_is_current():
    found = {(importer, used) for importer, used, _ in _all_private_uses()}
    stale = PRIVATE_USES_ALLOWED - found
    assert not stale, f"no longer used, delete from the allow-list: {sorted(stale)}"


def test_models_and_engines_do_not_load_data_sets():
    layer = tuple(f"espresso_jax.{part}" for part in MODELS_AND_ENGINES)
    users = set()
    for name, path in LIBRARY_MODULES:
        if not (name in layer or name.startswith(tuple(p + "." for p in layer))):
            continue
        for _, module, imported in _imports(path, name, _is_pkg(name)):
            full = f"{module}.{imported}" if imported else module
            if any(m == "espresso_jax.datasets" or m.startswith("espresso_jax.datasets.")
                   for m in (module, full)):
                users.add(name)
    assert users == DATASET_USES_ALLOWED


# --- public surface ----------------------------------------------------------------------------

@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_exist(package):
    mod = importlib.import_module(package)
    exported = getattr(mod, "__all__", None)
    if exported is None:
        # A package without __all__ must not re-export anything: only a docstring.
        source = Path(mod.__file__).read_text()
        body = [n for n in ast.parse(source).body
                if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        assert not body, f"{package} has code but no __all__"
        return
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(mod, n)]
    assert not missing, f"{package}.__all__ names missing attributes: {missing}"


def test_top_level_all_lists_every_public_subpackage():
    public = {info.name for info in pkgutil.iter_modules([str(PACKAGE_DIR)])
              if not info.name.startswith("_")}
    # The application layer is imported on demand (`from espresso_jax.apps import tour`), so
    # that `import espresso_jax` stays free of matplotlib and the experiment code.
    public.discard("apps")
    listed = set(espresso_jax.__all__) - {"__version__"}
    assert listed == public
    for name in public:
        assert getattr(espresso_jax, name).__name__ == f"espresso_jax.{name}"
