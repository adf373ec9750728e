"""The package as users install it: what the sdist and the wheel hold, the version's one home.

One `python -m build --no-isolation` of a copy of the checkout (the sdist, then the wheel built
from that sdist) into a temporary folder: about 1.2 s of CPU (the whole module ~2 s on the
2-core machine). Installing the wheel into a fresh venv is the slow test in
tests/test_package_install.py.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
import setuptools
from packaging.requirements import Requirement

import espresso_jax

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "src" / "espresso_jax"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
DIST = f"espresso_jax-{VERSION}"


def _source_files() -> set[str]:
    """Paths of the package's files relative to src/ ('espresso_jax/...'), caches left out."""
    return {p.relative_to(ROOT / "src").as_posix() for p in PACKAGE_DIR.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def build_dists(out: Path, *, isolation: bool = False, env: dict[str, str] | None = None,
                timeout: float = 120) -> tuple[Path, Path]:
    """`python -m build` of a clean copy of the checkout into ``out/dist``.

    The copy (pyproject.toml, README.md, src/ without caches or egg-info) keeps setuptools'
    build/ and egg-info folders out of the checkout and stale build/lib files out of the wheel.
    Without ``isolation`` the build uses this environment's setuptools (no download).
    Returns ``(sdist, wheel)`` paths.
    """
    tree = out / "tree"
    tree.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    flags = [] if isolation else ["--no-isolation"]
    proc = subprocess.run([sys.executable, "-m", "build", *flags, "--outdir", str(out / "dist"),
                           str(tree)], capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sdist = out / "dist" / f"{DIST}.tar.gz"
    wheel = out / "dist" / f"{DIST}-py3-none-any.whl"
    assert sdist.is_file() and wheel.is_file(), sorted(p.name for p in (out / "dist").iterdir())
    return sdist, wheel


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_dists(tmp_path_factory.mktemp("dists"))


def test_wheel_holds_the_package_data_and_marker(dists):
    with zipfile.ZipFile(dists[1]) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read(f"{DIST}.dist-info/entry_points.txt").decode()
        metadata = wheel.read(f"{DIST}.dist-info/METADATA").decode()
    package = {n for n in names if not n.startswith(f"{DIST}.dist-info/")}
    # Every module, the bundled data (Old Faithful, the MNIST test set) and py.typed; nothing
    # else (no tests, no build folders).
    assert package == _source_files()
    assert {"espresso_jax/py.typed", "espresso_jax/datasets/data/faithful.csv",
            "espresso_jax/datasets/data/t10k-images-idx3-ubyte.gz",
            "espresso_jax/datasets/data/t10k-labels-idx1-ubyte.gz"} <= package
    assert "espresso-jax = espresso_jax.apps.cli:main" in entry_points.splitlines()
    assert f"Version: {VERSION}" in metadata.splitlines()
    required = {str(Requirement(line.removeprefix("Requires-Dist: ")))
                for line in metadata.splitlines() if line.startswith("Requires-Dist: ")}
    assert {str(Requirement(r)) for r in PYPROJECT["project"]["dependencies"]} <= required


def test_sdist_holds_what_the_wheel_is_built_from(dists):
    with tarfile.open(dists[0]) as sdist:
        names = {n.removeprefix(f"{DIST}/") for n in sdist.getnames()}
    assert {"pyproject.toml", "README.md", "PKG-INFO"} <= names
    assert {f"src/{f}" for f in _source_files()} <= names


def test_every_source_folder_is_a_found_package():
    # Every folder of modules is a regular package (has __init__.py). pyproject's
    # [tool.setuptools.packages.find] also takes namespace folders, so the wheel would still
    # carry one without it; find_packages (regular packages only) holds the tree to the rule.
    found = set(setuptools.find_packages(where=str(ROOT / "src")))
    with_modules = {".".join(p.parent.relative_to(ROOT / "src").parts)
                    for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts}
    assert with_modules <= found
    assert "espresso_jax.datasets" in found


def test_package_data_globs_match_every_data_file():
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]
    matched: set[str] = set()
    for package, patterns in globs.items():
        base = ROOT / "src" / Path(*package.split("."))
        for pattern in patterns:
            hits = {p.relative_to(ROOT / "src").as_posix() for p in base.glob(pattern)}
            assert hits, f"package-data {package}: {pattern!r} matches no file"
            matched |= hits
    data = {f for f in _source_files() if not fnmatch.fnmatch(f, "*.py")}
    assert data == matched
    assert "espresso_jax/py.typed" in data


def test_version_is_the_installed_distributions():
    assert espresso_jax.__version__ == importlib.metadata.version("espresso_jax") == VERSION


def test_version_without_installed_metadata(monkeypatch):
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    try:
        assert importlib.reload(espresso_jax).__version__ == "0+unknown"
    finally:
        monkeypatch.undo()
        importlib.reload(espresso_jax)
    assert espresso_jax.__version__ == VERSION
