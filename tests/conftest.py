"""Test configuration: strict dtype and rank promotion everywhere, an x64 fixture."""

import os

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
