"""The methods of the leaderboard: ``name -> () -> UCIMethod`` factories. A new method is one
line here (its factory, e.g. ``"swag": swag_method``); the runner, the CLI's ``--methods`` and
the tour's baselines section all read this dict.
"""

from __future__ import annotations

from collections.abc import Callable

from espresso_jax.apps.uci.bbb import bbb_method
from espresso_jax.apps.uci.deterministic import deterministic_method
from espresso_jax.apps.uci.dropout import dropout_method
from espresso_jax.apps.uci.ensemble import ensemble_method
from espresso_jax.apps.uci.laplace import laplace_method
from espresso_jax.apps.uci.method import UCIMethod
from espresso_jax.apps.uci.sgmcmc import sgmcmc_method
from espresso_jax.apps.uci.swag import swag_method

__all__ = ["METHODS", "SMALL_SETS", "get_method"]

METHODS: dict[str, Callable[[], UCIMethod]] = {
    "deterministic": deterministic_method,
    "mc_dropout": dropout_method,
    "bbb": bbb_method,
    "deep_ensemble": ensemble_method,
    "laplace": laplace_method,
    "swag": swag_method,
    "sgmcmc": sgmcmc_method,
}

SMALL_SETS = ("bostonHousing", "concrete", "energy", "wine-quality-red", "yacht")
"""Where the leaderboard also scores agreement with the NUTS BNN predictive."""


def get_method(name: str) -> UCIMethod:
    """The :class:`UCIMethod` registered as ``name`` (ValueError naming it otherwise)."""
    if name not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {name!r}")
    return METHODS[name]()
