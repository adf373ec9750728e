"""Responsibility-weighted Gaussian statistics of the mixture models.

The statistics live in the probability layer (:mod:`espresso_jax.prob.moments`), shared with
the maximum-likelihood estimates; this module keeps the names the mixtures import.
"""

from __future__ import annotations

from espresso_jax.prob.moments import CentredMoments, MomentStats, centred_moments, moment_stats

__all__ = ["MomentStats", "CentredMoments", "moment_stats", "centred_moments"]
