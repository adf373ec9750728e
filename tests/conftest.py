"""Test configuration: strict dtype and rank promotion everywhere, an x64 fixture, and the
``raises_before_compiling`` check of host-side validation."""

import contextlib
import functools
import html
import json
import logging
import os
import re
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

# The library never selects a matplotlib backend; tests run headless.
os.environ.setdefault("MPLBACKEND", "Agg")

import jax
import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def _single_threaded_blas():
    """jaxlib's CPU LAPACK calls (potrf, trsm, syevd) go through scipy's OpenBLAS, whose
    busy-waiting threads fight XLA's thread pool (and the other xdist worker) on a 2-core
    machine: 250 GP Adam steps took 3–7 s with 2 BLAS threads and 0.65 s with 1."""
    with threadpool_limits(1):
        yield


@pytest.fixture(autouse=True)
def _strict_promotion():
    """Library code must not rely on implicit dtype or rank promotion."""
    with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        yield


@pytest.fixture
def x64():
    """Run the test body with float64 enabled (jax.enable_x64 context)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(params=["float32", "float64"])
def both_precisions(request):
    """Parametrise a test over float32 and float64; yields the dtype name."""
    with jax.enable_x64(request.param == "float64"):
        yield request.param


class _CompileLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.names: list[str] = []

    def emit(self, record):
        text = record.getMessage()
        if text.startswith("Compiling "):
            self.names.append(text.split()[1])


@contextlib.contextmanager
def _compile_log():
    """Collect the names of the programs JAX compiles inside the block (``jax.log_compiles``
    messages of its lowering, written before any compilation-cache lookup); yields the list."""
    handler = _CompileLog()
    loggers = [logging.getLogger(n) for n in ("jax._src.interpreters.pxla",
                                              "jax._src.dispatch")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        with jax.log_compiles(True):
            yield handler.names
    finally:
        for lg in loggers:
            lg.removeHandler(handler)


# What compiling the model looks like: the engine's chunk, a jitted init or step, or any
# network arithmetic (flax's eager init runs its matmuls one primitive at a time). Host
# validation compiles only small reductions, slices and key splits.
MODEL_COMPILES = ("_run_chunk", "_init", "step", "dot_general", "conv_general_dilated")


def _raises_before_compiling(call, match, exc=ValueError, forbid=(), clear=True):
    """Run ``call()`` expecting ``exc`` matching ``match``, after clearing JAX's caches
    (otherwise work done by earlier tests would compile nothing here), and fail if anything
    model-like (:data:`MODEL_COMPILES`, plus the names in ``forbid``) compiled before the
    error, as recorded with ``jax.log_compiles``. Returns the raised exception info.

    ``clear=False`` skips the clearing (0.5 s of CPU per call: the host checks' own small
    programs compile again) for a test module that clears the caches once and never
    compiles anything model-like itself."""
    if clear:
        jax.clear_caches()
    with _compile_log() as names, pytest.raises(exc, match=match) as info:
        call()
    model_like = [n for n in names if any(op in n for op in MODEL_COMPILES + forbid)]
    assert not model_like, f"compiled {model_like} before rejecting the input"
    return info


@pytest.fixture
def compile_log():
    """``with compile_log() as names:`` collects the names of the programs compiled in the
    block (see :func:`_compile_log`)."""
    return _compile_log


@pytest.fixture
def raises_before_compiling():
    """``raises_before_compiling(call, match, exc=ValueError, forbid=())``: ``call()`` raises
    ``exc`` matching ``match`` before anything of the model (or named in ``forbid``)
    compiles."""
    return _raises_before_compiling


_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _find_browser():
    for name in _CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    """Path of a headless Chromium (tests/test_report_browser.py, tests/test_docs_build.py):
    Debian's ``chromium`` package; when it is missing it is installed with apt-get (root with
    network only; set ESPRESSO_JAX_NO_APT=1 to forbid), or the test skips with the reason."""
    path = _find_browser()
    if path:
        return path
    if os.environ.get("ESPRESSO_JAX_NO_APT"):
        pytest.skip("headless Chromium not found and ESPRESSO_JAX_NO_APT forbids installing it")
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("headless Chromium not found; install Debian's `chromium` package (apt-get "
                    "needs root, which this test does not have)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]):
            subprocess.run(cmd, check=True, capture_output=True, timeout=600, env=env)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"headless Chromium not found and `apt-get install chromium` failed "
                    f"(no network to the Debian archive?): {type(err).__name__}")
    path = _find_browser()
    if not path:
        pytest.skip("apt-get installed chromium but no chromium executable is on PATH")
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def dump_check_page(browser, tmp_path):
    """``dump_check_page(site, budget_ms, timeout)``: serve the folder ``site`` on 127.0.0.1,
    open its ``check.html`` in headless Chromium (``browser``) and return the JSON the page
    writes into ``<pre id="result">`` (the page's script does the checking)."""
    def run(site, budget_ms: int, timeout: float) -> dict:
        handler = functools.partial(_QuietHandler, directory=str(site))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/check.html"
            proc = subprocess.run(
                [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions",
                 "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                 f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                capture_output=True, text=True, timeout=timeout)
        finally:
            server.shutdown()
            server.server_close()
        match = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
        assert match, (f"no result in the dumped DOM (exit {proc.returncode}): "
                       f"{proc.stderr[-500:]}")
        return json.loads(html.unescape(match.group(1)))
    return run


# Test files whose single tests or module fixtures run longest (CPU seconds with `make test`'s
# settings, 2026-12-06). pytest-xdist hands tests out in collection order, so files collected
# last decide when the second worker falls idle; running these first leaves only short tests
# for the end of the run. The order of the tests inside each file is kept.
RUN_FIRST = ("test_tour_deep_sections.py",   # one module fixture, ~87 s of CPU
             "test_parallel.py",              # a 4-device child process, ~29 s
             "test_published_uci.py", "test_tour_sections.py", "test_examples.py",
             "test_published_deep.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return RUN_FIRST.index(name) if name in RUN_FIRST else len(RUN_FIRST)

    items.sort(key=rank)   # stable: every other test keeps its place
