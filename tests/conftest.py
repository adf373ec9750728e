"""Test configuration: strict dtype and rank promotion everywhere, an x64 fixture."""

import jax
import pytest


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
