"""Drift monitoring of real/bogus scores: each night against the model's reference.

For every night (``floor(jd - 0.5)``, the integer JD at the night's local noon in UTC
terms) and model version in the ``scores`` table, :func:`drift_report` compares the
night's score distribution with the model's reference (validation) scores
(``models.reference_scores``, :mod:`skyscene.classify.registry`):

PSI (population stability index)
    ``sum_i (p_i - q_i) ln(p_i / q_i)`` over ``bins`` bins at the reference's quantiles
    (``q_i = 1/bins``), empty bins floored at ``epsilon``; the usual reading: < 0.1
    stable, 0.1-0.2 moderate, > 0.2 a shift (Yurdakul 2018). A night is *flagged* when
    ``PSI > psi_limit`` and it has at least ``min_n`` scores.
KS statistic
    Two-sample Kolmogorov-Smirnov distance and p-value (``scipy.stats.ks_2samp``).
Fraction above threshold
    The night's and the reference's fraction with ``rb >= threshold``.
Per label
    Where candidates carry human labels (majority of the users' current labels):
    ``n``, and the fraction above threshold per consensus label (recall of ``real``,
    the false-positive fraction of ``bogus``).

Store access only (no web framework, no CLI); :func:`skyscene.plotting.drift.plot_drift`
draws the report.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from skyscene._validation import check_int, check_positive, check_range
from skyscene.errors import DataError

__all__ = ["DriftConfig", "DriftReport", "NightDrift", "drift_report", "psi"]


@dataclass(frozen=True, kw_only=True)
class DriftConfig:
    """Settings of :func:`drift_report` (validated, frozen; ``to_dict()``).

    Parameters
    ----------
    psi_limit : float
        A night whose PSI exceeds this is flagged (default 0.2).
    bins : int
        Quantile bins of the reference distribution for the PSI.
    min_n : int
        Nights with fewer scores are reported but never flagged.
    epsilon : float
        Floor of an empty bin's fraction in the PSI.
    """

    psi_limit: float = 0.2
    bins: int = 10
    min_n: int = 30
    epsilon: float = 1e-4

    def __post_init__(self) -> None:
        check_positive("DriftConfig.psi_limit", self.psi_limit)
        check_int("DriftConfig.bins", self.bins, low=2)
        check_int("DriftConfig.min_n", self.min_n, low=1)
        check_range("DriftConfig.epsilon", self.epsilon, low=1e-12, high=0.01)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DriftConfig:
        return cls(**values)


def psi(values, reference, *, bins: int = 10, epsilon: float = 1e-4) -> float:
    """Population stability index of ``values`` against ``reference`` (see module).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.uniform(size=5000)
    >>> psi(rng.uniform(size=5000), ref) < 0.01, psi(rng.uniform(size=5000) ** 3, ref) > 0.2
    (True, True)
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    reference = np.asarray(reference, dtype=np.float64).ravel()
    if values.size == 0 or reference.size == 0:
        raise DataError(f"psi needs scores on both sides ({values.size} and {reference.size})")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    q = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1)
    p = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    q = np.maximum(q / reference.size, epsilon)
    p = np.maximum(p / values.size, epsilon)
    return float(np.sum((p - q) * np.log(p / q)))


@dataclass(frozen=True, kw_only=True)
class NightDrift:
    """One night of one model version (a row of :class:`DriftReport`).

    Attributes
    ----------
    night : int
        ``floor(jd - 0.5)``.
    model_name, model_version : str
    n : int
        Scores that night.
    psi, ks_statistic, ks_pvalue : float
        NaN when the version has no reference scores.
    fraction_above, reference_fraction_above : float
        ``rb >= threshold`` (NaN without a threshold / reference).
    per_label : dict
        ``{"real"|"bogus": {"n", "fraction_above"}}`` for labelled candidates.
    flagged : bool
    """

    night: int
    model_name: str
    model_version: str
    n: int
    psi: float
    ks_statistic: float
    ks_pvalue: float
    fraction_above: float
    reference_fraction_above: float
    per_label: dict[str, dict[str, Any]]
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():  # JSON has no NaN
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        return out


@dataclass(frozen=True, kw_only=True)
class DriftReport:
    """Per-night drift of the score distributions (see :func:`drift_report`).

    Attributes
    ----------
    nights : tuple of NightDrift
        Sorted by model version, then night.
    models : dict
        ``{version: {"name", "threshold", "n_reference"}}`` of the versions reported.
    config : DriftConfig
    """

    nights: tuple[NightDrift, ...]
    models: dict[str, dict[str, Any]]
    config: DriftConfig

    @property
    def flagged(self) -> tuple[NightDrift, ...]:
        return tuple(n for n in self.nights if n.flagged)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``config``, ``models``, ``nights`` (list of dicts), ``n_flagged``."""
        return {
            "config": self.config.to_dict(),
            "models": self.models,
            "nights": [n.to_dict() for n in self.nights],
            "n_flagged": len(self.flagged),
        }

    def to_table(self):
        """astropy Table, one row per night and version (``per_label`` left out)."""
        from astropy.table import Table

        names = [f.name for f in dataclasses.fields(NightDrift) if f.name != "per_label"]
        table = Table(
            {name: [getattr(n, name) for n in self.nights] for name in names}
            if self.nights
            else None,
            names=names if not self.nights else None,
        )
        table.meta["config"] = self.config.to_dict()
        return table


def _current_majority(rows) -> dict[int, str]:
    """Consensus per candid from ``(candid, user_id, value)`` rows ordered oldest first:
    each user's newest label counts; majority of real/bogus (unsure and ties: none)."""
    current: dict[int, dict[int, str]] = defaultdict(dict)
    for candid, user_id, value in rows:
        current[int(candid)][int(user_id)] = value
    out: dict[int, str] = {}
    for candid, by_user in current.items():
        real = sum(v == "real" for v in by_user.values())
        bogus = sum(v == "bogus" for v in by_user.values())
        if real != bogus:
            out[candid] = "real" if real > bogus else "bogus"
    return out


def drift_report(
    store, *, model_version: str | None = None, config: DriftConfig | None = None
) -> DriftReport:
    """Drift of the stored scores per night and model version (see module).

    Parameters
    ----------
    store : skyscene.store.CandidateStore
    model_version : str, optional
        Only this version (a :class:`DataError` naming it when it has no scores and is
        not registered); default every version in the ``scores`` table.
    config : DriftConfig, optional

    Returns
    -------
    DriftReport
    """
    from scipy.stats import ks_2samp
    from sqlalchemy import select

    from skyscene.store import models as m

    cfg = config or DriftConfig()
    scores: Any = m.Score.__table__
    cand: Any = m.Candidate.__table__
    labels: Any = m.Label.__table__
    registry: Any = m.Model.__table__
    query = select(
        scores.c.candid, scores.c.model_name, scores.c.model_version, scores.c.score, cand.c.jd
    ).join(cand, cand.c.candid == scores.c.candid)
    if model_version is not None:
        query = query.where(scores.c.model_version == model_version)
    with store.engine.connect() as connection:
        rows = connection.execute(query).all()
        label_rows = connection.execute(
            select(labels.c.candid, labels.c.user_id, labels.c.value).order_by(
                labels.c.created_at, labels.c.id
            )
        ).all()
        model_rows = connection.execute(
            select(
                registry.c.name,
                registry.c.version,
                registry.c.threshold,
                registry.c.reference_scores,
            )
        ).all()
    known = {r.version: r for r in model_rows}
    if model_version is not None and not rows and model_version not in known:
        raise DataError(
            f"database {store._shown_url()}: unknown model version {model_version!r} "
            "(no scores and not registered)"
        )
    consensus = _current_majority(label_rows)
    groups: dict[tuple[str, str, int], list[tuple[int, float]]] = defaultdict(list)
    for candid, name, version, score, jd in rows:
        if jd is None or not math.isfinite(jd):
            continue
        groups[(version, name, math.floor(jd - 0.5))].append((int(candid), float(score)))
    models: dict[str, dict[str, Any]] = {}
    nights = []
    for (version, name, night), entries in sorted(groups.items()):
        record = known.get(version)
        threshold = None if record is None or record.threshold is None else record.threshold
        reference = np.asarray(
            (record.reference_scores if record is not None else None) or [], np.float64
        )
        models.setdefault(
            version, {"name": name, "threshold": threshold, "n_reference": int(reference.size)}
        )
        candids = np.array([c for c, _ in entries], np.int64)
        values = np.array([s for _, s in entries], np.float64)
        nan = float("nan")
        if reference.size:
            night_psi = psi(values, reference, bins=cfg.bins, epsilon=cfg.epsilon)
            ks = ks_2samp(values, reference)
            ks_stat, ks_p = float(ks.statistic), float(ks.pvalue)
        else:
            night_psi = ks_stat = ks_p = nan
        above = nan if threshold is None else float(np.mean(values >= threshold))
        ref_above = (
            nan
            if threshold is None or not reference.size
            else float(np.mean(reference >= threshold))
        )
        per_label: dict[str, dict[str, Any]] = {}
        if consensus:
            given = np.array([consensus.get(int(c), "") for c in candids])
            for value in ("real", "bogus"):
                sel = given == value
                if sel.any():
                    per_label[value] = {
                        "n": int(sel.sum()),
                        "fraction_above": (
                            None if threshold is None else float(np.mean(values[sel] >= threshold))
                        ),
                    }
        flagged = bool(
            values.size >= cfg.min_n and math.isfinite(night_psi) and night_psi > cfg.psi_limit
        )
        nights.append(
            NightDrift(
                night=int(night),
                model_name=name,
                model_version=version,
                n=int(values.size),
                psi=night_psi,
                ks_statistic=ks_stat,
                ks_pvalue=ks_p,
                fraction_above=above,
                reference_fraction_above=ref_above,
                per_label=per_label,
                flagged=flagged,
            )
        )
    return DriftReport(nights=tuple(nights), models=models, config=cfg)
