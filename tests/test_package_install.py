"""Slow: `python -m build` (isolated), the wheel installed into a fresh venv, a smoke run.

pip reads only the local package mirror of its configuration (file:// indexes and find-links
folders), never an index on the internet; without one the test is skipped. A dependency the
mirror lacks (numpyro 0.22 on the 2-core machine in December 2026) is not downloaded: the
fresh venv sees this environment's installed copy of it (and only of it) through a .pth file,
and pip installs the rest from the mirror. The venv lives in a temporary folder removed at the
end; every subprocess has a timeout. Cost on the loaded 2-core machine (2026-12-06): 52 s of
CPU, 2 min 23 s of wall time (mostly pip unpacking jaxlib and friends, and mypy).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from test_package import PYPROJECT, VERSION, build_dists

pytestmark = pytest.mark.slow

SMOKE = textwrap.dedent("""
    import importlib.metadata
    import sys
    from pathlib import Path

    import jax
    import numpy as np

    import espresso_jax
    from espresso_jax.datasets import load_faithful, load_mnist
    from espresso_jax.linear import bayes
    from espresso_jax.mixture import gmm

    venv = Path(sys.prefix).resolve()
    package = Path(espresso_jax.__file__).resolve().parent
    assert package.is_relative_to(venv), (package, venv)
    assert Path(jax.__file__).resolve().is_relative_to(venv), jax.__file__
    assert (package / "py.typed").is_file()
    assert (package / "datasets" / "data" / "faithful.csv").is_file()
    assert espresso_jax.__version__ == importlib.metadata.version("espresso_jax") == sys.argv[1]

    X = load_faithful()
    assert X.shape == (272, 2) and X.dtype == np.float64
    images, labels = load_mnist("all")
    assert images.shape == (10000, 784) and labels.shape == (10000,)
    assert sorted(np.unique(labels).tolist()) == list(range(10))

    # Two clusters of eruption times; lower/upper sorted means over keys 0-9 in [2.0359,
    # 2.0366] / [4.2892, 4.2898] (EM converged in 3-6 iterations every time).
    fit = gmm.fit(jax.random.key(0), X, 2)
    low, high = np.sort(np.asarray(fit.params.means)[:, 0])
    assert bool(fit.converged) and 2.0 < low < 2.07 and 4.25 < high < 4.33, (low, high)

    # Waiting time on eruption time: the evidence fit's posterior mean slope (10.747) is the
    # least-squares one (10.730) up to the prior's pull; about two effective parameters.
    design = np.column_stack([np.ones(len(X)), X[:, 0]])
    blr = bayes.fit_evidence(design, X[:, 1])
    slope = float(blr.params.mean[1])
    lstsq = np.linalg.lstsq(design, X[:, 1], rcond=None)[0][1]
    assert bool(blr.converged) and abs(slope - lstsq) < 0.1, (slope, lstsq)
    assert 1.9 < float(blr.gamma) < 2.0 and np.isfinite(float(blr.log_evidence))
    print("smoke ok", espresso_jax.__version__, package)
""")

# A user's module: the installed annotations reach mypy only through the py.typed marker.
USER_CODE = textwrap.dedent("""
    from espresso_jax.datasets import load_faithful

    data: str = load_faithful()
""")


def _local_mirror() -> dict[str, list[str]]:
    """pip's configured indexes and find-links that are local (file:// or a folder)."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    settings: dict[str, list[str]] = {"index-url": [], "extra-index-url": [], "find-links": []}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in settings:
            for url in value.strip("'\"").split():
                local = url.startswith("file://") or ("://" not in url and Path(url).is_dir())
                if local and url not in settings[name]:
                    settings[name].append(url)
    return settings


def _offline_env(venv_bin: Path | None = None) -> dict[str, str]:
    """The environment with pip held to the local mirror and nothing of the checkout."""
    mirror = _local_mirror()
    indexes = mirror["index-url"] + mirror["extra-index-url"]
    if not indexes and not mirror["find-links"]:
        pytest.skip("pip's configuration names no local package mirror (file:// or folder)")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_FIND_LINKS=" ".join(mirror["find-links"]))
    if indexes:
        env.update(PIP_INDEX_URL=indexes[0], PIP_EXTRA_INDEX_URL=" ".join(indexes[1:]))
    else:
        env["PIP_NO_INDEX"] = "1"
    if venv_bin is not None:
        env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    return env


def _dependency_closure() -> set[str]:
    """Names of the installed distributions the package's dependencies need, recursively."""
    todo = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    names: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = _normalise(requirement.name)
        if name in names or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        names.add(name)
        todo += [Requirement(r) for r in importlib.metadata.distribution(name).requires or []]
    return names


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _in_mirror(name: str, mirror: dict[str, list[str]]) -> bool:
    for index in mirror["index-url"] + mirror["extra-index-url"]:
        if (Path(index.removeprefix("file://")) / name).is_dir():
            return True
    for folder in mirror["find-links"]:
        path = Path(folder.removeprefix("file://"))
        if path.is_dir() and any(_normalise(f.name).startswith(f"{name}-")
                                 for f in path.iterdir()):
            return True
    return False


def _link_missing(site: Path, fallback: Path) -> list[str]:
    """Make the installed dependencies the mirror lacks importable in the venv at ``site``.

    Links their top-level files (package and .dist-info) into ``fallback``, named by a .pth
    file in ``site``: pip sees them installed and resolves the others from the mirror. Returns
    the names linked.
    """
    mirror = _local_mirror()
    missing = sorted(n for n in _dependency_closure() if not _in_mirror(n, mirror))
    fallback.mkdir()
    for name in missing:
        dist = importlib.metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in tops - {"..", "__pycache__"}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (fallback / top).exists():
                (fallback / top).symlink_to(source)
    (site / "zz_mirror_fallback.pth").write_text(f"{fallback}\n")
    return missing


def _run(cmd: list[str], *, timeout: float, **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def test_wheel_installs_and_runs_in_a_fresh_venv():
    env = _offline_env()
    with tempfile.TemporaryDirectory(prefix="espresso_jax_install_") as folder:
        work = Path(folder)
        # Isolated, as a user builds: setuptools comes from the mirror into build's own venv.
        _, wheel = build_dists(work, isolation=True, env=env, timeout=300)
        venv = work / "venv"
        _run([sys.executable, "-m", "venv", str(venv)], timeout=120, env=env)
        bin_dir = venv / "bin"
        env = _offline_env(bin_dir)
        site = Path(_run([str(bin_dir / "python"), "-c", "import sysconfig; "
                          "print(sysconfig.get_path('purelib'))"], timeout=60, env=env)
                    .stdout.strip())
        linked = _link_missing(site, work / "fallback")
        assert not {"jax", "jaxlib", "flax", "optax", "numpy"} & set(linked), linked
        _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
             timeout=900, env=env)

        # From a folder outside the checkout, so only the installed package can be imported.
        run_dir = work / "run"
        run_dir.mkdir()
        (run_dir / "smoke.py").write_text(SMOKE)
        smoke = _run([str(bin_dir / "python"), "smoke.py", VERSION], timeout=600, env=env,
                     cwd=run_dir)
        assert "smoke ok" in smoke.stdout

        help_text = _run([str(bin_dir / "espresso-jax"), "--help"], timeout=120, env=env,
                         cwd=run_dir).stdout
        assert help_text.startswith("usage: espresso-jax")
        for command in ("fit", "tour"):
            assert command in help_text

        # py.typed: mypy (this environment's) reads the installed annotations and catches the
        # user's type error; without the marker it would report a missing-stubs import error.
        (run_dir / "user.py").write_text(USER_CODE)
        proc = subprocess.run([sys.executable, "-m", "mypy", "--python-executable",
                               str(bin_dir / "python"), "--no-incremental", "user.py"],
                              capture_output=True, text=True, timeout=600, env=env, cwd=run_dir)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "user.py:4: error: Incompatible types in assignment" in proc.stdout, proc.stdout
        assert "import-untyped" not in proc.stdout and "py.typed" not in proc.stdout
