"""Published UCI regression results for the methods the leaderboard runs, as printed by their
papers, each row with its citation, so the leaderboard can show them beside ours
(:func:`espresso_jax.apps.leaderboard.report.markdown_table`).

Every number below was read from the cited table (two decimals, as printed); nothing is
derived or re-rounded. The sources print the test log-likelihood (LL) or its negative (NLL)
with different sign conventions; each table is entered in its own convention and converted
once, by :func:`_from_ll` / :func:`_from_nll`, so a :class:`PublishedRow` always holds the
test log-likelihood ``ll`` (nats per test point, original units) and :attr:`PublishedRow.nll`
is ``-ll``. The ``±`` is what the source prints: a standard error over the splits (``"se"``)
except for the deep-ensembles table, whose ``±`` is wider by about ``sqrt(20)`` than the
standard errors it reprints from Gal & Ghahramani (boston RMSE 0.19 -> 0.85), i.e. a standard
deviation over splits (``"sd"``).

Sources (``SOURCES``):

* ``"gal2016"``: Gal & Ghahramani (2016), Table 1, MC dropout (40 epochs, hyper-parameters by
  Bayesian optimisation), and, as printed in the same table, ``"vi"`` (Graves' variational
  inference) and ``"pbp"`` (probabilistic backpropagation), both run by Hernández-Lobato &
  Adams (2015) on the same splits.
* ``"gal_grid2018"``: the 2018 update of Gal's DropoutUncertaintyExps repository (README,
  "Grid Search (new)"): MC dropout with 10x epochs and, per split, a validation grid search of
  the dropout rate and tau, then a refit on the whole training split; the protocol of the data
  folder (``shared/data/uci``) and of :func:`espresso_jax.apps.uci.protocol.run_protocol`.
* ``"lakshminarayanan2017"``: Lakshminarayanan, Pritzel & Blundell (2017), Table 1, deep
  ensembles (5 members, 40 epochs, adversarial training).

Not included: UCI rows for SWAG, Laplace and SG-MCMC (their papers use other splits or
protocols, and none was verified here), and the Year Prediction MSD rows (not in the data
folder).
"""

from __future__ import annotations

from typing import NamedTuple

from espresso_jax.datasets.uci import UCI_NAMES

__all__ = ["PublishedRow", "SOURCES", "PUBLISHED", "published_rows", "n_splits_of"]

SOURCES: dict[str, str] = {
    "gal2016": "Gal & Ghahramani 2016, Table 1",
    "hl2015": "Hernández-Lobato & Adams 2015 (as printed in Gal & Ghahramani 2016, Table 1)",
    "gal_grid2018": "Gal, DropoutUncertaintyExps README, 2018 grid-search update (10x epochs)",
    "lakshminarayanan2017": "Lakshminarayanan et al. 2017, Table 1",
}


class PublishedRow(NamedTuple):
    """One published (method, data set) result.

    Attributes:
        method: the leaderboard method it stands beside (a key of
            :data:`espresso_jax.apps.leaderboard.registry.METHODS`).
        label: the source's name for its method (e.g. ``"PBP"``).
        dataset: UCI folder name (:data:`espresso_jax.datasets.uci.UCI_NAMES`).
        rmse, rmse_pm: test RMSE and its printed ``±`` (original units).
        ll, ll_pm: test log-likelihood per point (nats) and its printed ``±``.
        spread: ``"se"`` (standard error over splits) or ``"sd"`` (standard deviation).
        source: key of :data:`SOURCES`.
    """

    method: str
    label: str
    dataset: str
    rmse: float
    rmse_pm: float
    ll: float
    ll_pm: float
    spread: str
    source: str

    @property
    def nll(self) -> float:
        """Test negative log-likelihood per point, ``-ll`` (the leaderboard's NLL column)."""
        return -self.ll

    @property
    def citation(self) -> str:
        return SOURCES[self.source]


def _from_ll(method, label, source, spread, table):
    """Rows from a table printed as ``(RMSE, ±, LL, ±)`` per set, in :data:`UCI_NAMES` order."""
    return [PublishedRow(method, label, name, r, rp, ll, lp, spread, source)
            for name, (r, rp, ll, lp) in zip(UCI_NAMES, table, strict=True)]


def _from_nll(method, label, source, spread, table):
    """Rows from a table printed as ``(RMSE, ±, NLL, ±)``: ``ll = -NLL``."""
    return [PublishedRow(method, label, name, r, rp, -nll, lp, spread, source)
            for name, (r, rp, nll, lp) in zip(UCI_NAMES, table, strict=True)]


# Order of every table: boston, concrete, energy, kin8nm, naval, power, protein, wine, yacht.
_GAL2016_DROPOUT = (  # RMSE ± SE, test LL ± SE
    (2.97, 0.19, -2.46, 0.06), (5.23, 0.12, -3.04, 0.02), (1.66, 0.04, -1.99, 0.02),
    (0.10, 0.00, 0.95, 0.01), (0.01, 0.00, 3.80, 0.01), (4.02, 0.04, -2.80, 0.01),
    (4.36, 0.01, -2.89, 0.00), (0.62, 0.01, -0.93, 0.01), (1.11, 0.09, -1.55, 0.03))
_HL2015_VI = (
    (4.32, 0.29, -2.90, 0.07), (7.19, 0.12, -3.39, 0.02), (2.65, 0.08, -2.39, 0.03),
    (0.10, 0.00, 0.90, 0.01), (0.01, 0.00, 3.73, 0.12), (4.33, 0.04, -2.89, 0.01),
    (4.84, 0.03, -2.99, 0.01), (0.65, 0.01, -0.98, 0.01), (6.89, 0.67, -3.43, 0.16))
_HL2015_PBP = (
    (3.01, 0.18, -2.57, 0.09), (5.67, 0.09, -3.16, 0.02), (1.80, 0.05, -2.04, 0.02),
    (0.10, 0.00, 0.90, 0.01), (0.01, 0.00, 3.73, 0.01), (4.12, 0.03, -2.84, 0.01),
    (4.73, 0.01, -2.97, 0.00), (0.64, 0.01, -0.97, 0.01), (1.02, 0.05, -1.63, 0.02))
_GAL_GRID2018 = (
    (2.90, 0.18, -2.40, 0.04), (4.82, 0.16, -2.93, 0.02), (0.54, 0.06, -1.21, 0.01),
    (0.08, 0.00, 1.14, 0.01), (0.00, 0.00, 4.45, 0.00), (4.01, 0.04, -2.80, 0.01),
    (4.27, 0.02, -2.87, 0.00), (0.62, 0.01, -0.93, 0.01), (0.67, 0.05, -1.25, 0.01))
_DEEP_ENSEMBLES = (  # RMSE ± sd, NLL ± sd (printed as NLL)
    (3.28, 1.00, 2.41, 0.25), (6.03, 0.58, 3.06, 0.18), (2.09, 0.29, 1.38, 0.22),
    (0.09, 0.00, -1.20, 0.02), (0.00, 0.00, -5.63, 0.05), (4.11, 0.17, 2.79, 0.04),
    (4.71, 0.06, 2.83, 0.02), (0.64, 0.04, 0.94, 0.12), (1.58, 0.48, 1.18, 0.21))

PUBLISHED: tuple[PublishedRow, ...] = tuple(
    _from_ll("mc_dropout", "MC dropout", "gal2016", "se", _GAL2016_DROPOUT)
    + _from_ll("mc_dropout", "MC dropout, grid search, 10x epochs", "gal_grid2018", "se",
               _GAL_GRID2018)
    + _from_ll("bbb", "VI (Graves 2011)", "hl2015", "se", _HL2015_VI)
    + _from_ll("bbb", "PBP", "hl2015", "se", _HL2015_PBP)
    + _from_nll("deep_ensemble", "Deep ensembles", "lakshminarayanan2017", "sd",
                _DEEP_ENSEMBLES))
"""Every published row (see the module docstring for the sources)."""


def published_rows(dataset: str | None = None,
                   methods: list[str] | tuple[str, ...] | None = None) -> list[PublishedRow]:
    """The published rows of ``dataset`` (all sets when None) for the leaderboard ``methods``
    (all when None), in :data:`PUBLISHED` order.

    Raises:
        ValueError: ``dataset`` is not a UCI folder name.
    """
    if dataset is not None and dataset not in UCI_NAMES:
        raise ValueError(f"dataset must be one of {UCI_NAMES}, got {dataset!r}")
    return [r for r in PUBLISHED if (dataset is None or r.dataset == dataset)
            and (methods is None or r.method in methods)]


def n_splits_of(dataset: str) -> int:
    """Splits the published protocols average over: 20, protein 5."""
    return 5 if dataset == "protein-tertiary-structure" else 20
