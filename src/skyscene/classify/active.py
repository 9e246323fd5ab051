"""Active learning: which candidates a human should label next.

The *priority* of a candidate under a model is high when a label would teach the model
most (uncertainty sampling, Settles 2009, §3.1; query by committee, §3.2, with the 8
flips/rotations of the triplet as the committee):

``uncertainty = exp(-|logit(rb) - logit(threshold)| / width)``
    1 at the model's threshold, falling by ``e`` per ``width`` in logit space;
``disagreement = min(1, spread / spread_scale)``
    ``spread`` = standard deviation of the 8 D4 (flip/rotation) predictions;
``priority = (1 - spread_weight) * uncertainty + spread_weight * disagreement``
    in [0, 1], higher = review first.

:func:`score_with_spread` scores triplets with their spread, :func:`priority` turns
scores into priorities, :func:`select_candidates` picks the next ``k``
(``ActiveSelector`` is the configured callable). No I/O.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from skyscene._validation import check_choice, check_int, check_positive, check_range
from skyscene.errors import DataError

__all__ = [
    "ActiveConfig",
    "ActiveSelector",
    "Selection",
    "SpreadScores",
    "priority",
    "score_with_spread",
    "select_candidates",
]


@dataclass(frozen=True, kw_only=True)
class ActiveConfig:
    """Settings of the labelling priority (validated, frozen; ``to_dict()``).

    Parameters
    ----------
    width : float
        Logit distance from the threshold over which the uncertainty falls by ``e``.
    spread_weight : float
        Weight of the flip/rotation disagreement, [0, 1].
    spread_scale : float
        Spread (std of 8 probabilities) that counts as full disagreement, (0, 0.5].
    explore : float
        Share of the queue given to exploration, [0, 1]: the queue interleaves the
        candidates by uncertainty/disagreement with candidates in a pseudo-random order
        (a hash of each candidate's key), so that about ``explore`` of any first ``k``
        are random picks (see :func:`priority`). 0: no exploration.
    explore_seed : int
        Seed of the exploration order.
    """

    width: float = 1.0
    spread_weight: float = 0.5
    spread_scale: float = 0.25
    explore: float = 0.0
    explore_seed: int = 0

    def __post_init__(self) -> None:
        check_positive("ActiveConfig.width", self.width)
        check_range("ActiveConfig.spread_weight", self.spread_weight, low=0, high=1)
        check_range("ActiveConfig.spread_scale", self.spread_scale, low=1e-6, high=0.5)
        check_range("ActiveConfig.explore", self.explore, low=0, high=1)
        check_int("ActiveConfig.explore_seed", self.explore_seed, low=0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _logit(p: Any) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def _hash_uniform(keys: np.ndarray, seed: int) -> np.ndarray:
    """Uniform [0, 1) numbers from integer keys (splitmix64): the same key and seed give
    the same number on every call, whatever the other keys."""
    with np.errstate(over="ignore"):
        z = keys.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def priority(
    rb, spread, threshold: float, *, keys=None, config: ActiveConfig | None = None
) -> np.ndarray:
    """Labelling priority (N,) in [0, 1] of scores ``rb`` with ``spread`` (see module).

    With ``config.explore`` = e > 0 the priority is a queue position instead: a
    candidate's rank ``r_p`` by the uncertainty/disagreement mix and its rank ``r_u``
    in a pseudo-random order (a hash of its key) place it at ``min(r_p / (1 - e), r_u /
    e)``; its position ``q`` (0 first) in that order gives ``1 - q / N``, so that
    sorting by priority interleaves the two orders, a share ``1 - e`` from the first
    and ``e`` from the second (each candidate once). ``keys`` (N,
    integers, e.g. candids; default the row numbers) make the random order stable
    across calls.

    Parameters
    ----------
    rb : array of float, (N,)
        Calibrated probabilities.
    spread : array of float, (N,) or None
        Std of the 8 flip/rotation predictions (None: no disagreement term).
    threshold : float
        The model's threshold (``rb >= threshold`` is real), in (0, 1).

    Examples
    --------
    >>> p = priority([0.5, 0.99, 0.01], [0.0, 0.0, 0.2], 0.5)
    >>> bool(p[0] > p[2] > p[1])
    True
    """
    cfg = config or ActiveConfig()
    check_range("threshold", threshold, low=1e-9, high=1 - 1e-9)
    rb = np.asarray(rb, dtype=np.float64).ravel()
    if not np.isfinite(rb).all():
        raise DataError("rb: scores contain NaN or infinity")
    distance = np.abs(_logit(rb) - _logit(np.float64(threshold)))
    uncertainty = np.exp(-distance / cfg.width)
    if spread is None:
        disagreement = np.zeros_like(rb)
    else:
        spread = np.asarray(spread, dtype=np.float64).ravel()
        if spread.shape != rb.shape:
            raise DataError(f"{spread.size} spread values for {rb.size} scores")
        if not np.isfinite(spread).all():
            raise DataError("spread: values contain NaN or infinity")
        disagreement = np.minimum(1.0, spread / cfg.spread_scale)
    mix = (1 - cfg.spread_weight) * uncertainty + cfg.spread_weight * disagreement
    if cfg.explore == 0 or mix.size == 0:
        return mix
    keys = np.arange(mix.size) if keys is None else np.asarray(keys).ravel()
    if keys.shape != mix.shape or keys.dtype.kind not in "iu":
        raise DataError(f"keys must be {mix.size} integers, got {keys.dtype} {keys.shape}")
    n = mix.size
    rank_mix = np.empty(n)
    rank_mix[np.lexsort((keys, -mix))] = np.arange(n)
    rank_random = np.empty(n)
    rank_random[np.argsort(_hash_uniform(keys, cfg.explore_seed), kind="stable")] = np.arange(n)
    with np.errstate(divide="ignore"):
        by_mix = rank_mix / (1 - cfg.explore) if cfg.explore < 1 else np.full(n, np.inf)
    by_random = rank_random / cfg.explore
    position = np.minimum(by_mix, by_random)
    source = (by_random < by_mix).astype(np.int64)  # ties: the mix's candidate first
    queue = np.empty(n)
    queue[np.lexsort((keys, source, position))] = np.arange(n)
    return 1.0 - queue / n


@dataclass(frozen=True, kw_only=True)
class SpreadScores:
    """Scores of triplets with the disagreement of their 8 flips/rotations.

    Unpacks as ``rb, spread = score_with_spread(...)``.

    Attributes
    ----------
    rb : ndarray of float64, (N,)
        The model's calibrated score (as :meth:`RealBogusClassifier.score` gives it).
    spread : ndarray of float64, (N,)
        Std of the 8 D4 predictions' probabilities.
    members : ndarray of float64, (8, N)
        The 8 probabilities.
    model_name, model_version : str
    """

    rb: np.ndarray
    spread: np.ndarray
    members: np.ndarray
    model_name: str
    model_version: str

    def __iter__(self):
        return iter((self.rb, self.spread))

    def to_table(self, *, index=None, index_name: str = "index"):
        """astropy Table: ``index``, ``rb``, ``spread``, ``model_version``."""
        from astropy.table import Table

        idx = np.arange(self.rb.size) if index is None else np.asarray(index)
        return Table(
            {
                index_name: idx,
                "rb": self.rb,
                "spread": self.spread,
                "model_version": np.full(self.rb.size, self.model_version),
            },
            meta={"model_name": self.model_name, "model_version": self.model_version},
        )


def score_with_spread(
    classifier, triplets, *, batch_size: int = 512, source: str = "input"
) -> SpreadScores:
    """Score raw triplets (N, 3, size, size) under the 8 flips/rotations of D4.

    ``rb`` is the classifier's own score (for a network that averages the 8 transforms
    at inference, the mean of their logits; otherwise the identity's), ``spread`` the
    standard deviation of the 8 calibrated probabilities. One network pass per
    transform (8 passes in all).
    """
    from skyscene.classify._torch import torch
    from skyscene.classify.calibration import sigmoid
    from skyscene.classify.models import as_tensor, dihedral, normalise_triplets

    check_int("batch_size", batch_size, low=1)
    classifier._check_fitted()
    t = torch()
    model = classifier.model_
    tta = bool(getattr(model, "tta", False)) and hasattr(model, "_logit")
    member = model._logit if tta else model
    x = normalise_triplets(triplets, size=classifier.size, source=source).data
    logits = np.zeros((8, x.shape[0]), np.float64)
    was_training = model.training
    model.eval()
    with t.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            xb = as_tensor(x[start : start + batch_size])
            for k in range(8):
                out = member(dihedral(xb, k).contiguous())
                logits[k, start : start + xb.shape[0]] = out.numpy()
    model.train(was_training)
    temperature = float(classifier.temperature_)
    members = sigmoid(logits / temperature)
    rb = sigmoid((logits.mean(0) if tta else logits[0]) / temperature)
    return SpreadScores(
        rb=rb,
        spread=members.std(axis=0),
        members=members,
        model_name=classifier.model_name_,
        model_version=classifier.model_version_,
    )


@dataclass(frozen=True, kw_only=True)
class Selection:
    """The candidates chosen for labelling, best first.

    Attributes
    ----------
    index : ndarray of int64, (k,)
        Rows of the pool.
    priority : ndarray of float64, (k,)
        Their priority (NaN for a random selection without priorities).
    method : {"priority", "random"}
    """

    index: np.ndarray
    priority: np.ndarray
    method: str

    def to_table(self):
        from astropy.table import Table

        return Table({"index": self.index, "priority": self.priority}, meta={"method": self.method})


class ActiveSelector:
    """Choose the next ``k`` candidates of a pool to label (configured callable).

    ``ActiveSelector(config)(rb, spread, threshold, k, method=..., exclude=..., rng=...)``;
    ``method="priority"`` takes the ``k`` highest priorities (ties by row), ``"random"``
    ``k`` rows uniformly (the baseline). ``exclude`` (bool mask or rows) are already
    labelled and never chosen; ``keys`` (e.g. candids) fix the exploration order of
    ``config.explore``.
    """

    def __init__(self, config: ActiveConfig | None = None):
        self.config = config or ActiveConfig()

    def __call__(
        self,
        rb,
        spread,
        threshold: float,
        k: int,
        *,
        method: str = "priority",
        exclude=None,
        rng=0,
        keys=None,
    ) -> Selection:
        check_choice("method", method, ("priority", "random"))
        check_int("k", k, low=0)
        p = priority(rb, spread, threshold, keys=keys, config=self.config)
        allowed = np.ones(p.size, bool)
        if exclude is not None:
            exclude = np.asarray(exclude)
            if exclude.dtype == bool:
                if exclude.shape != p.shape:
                    raise DataError(f"exclude mask has {exclude.size} entries for {p.size} rows")
                allowed &= ~exclude
            else:
                allowed[exclude.astype(np.int64)] = False
        rows = np.flatnonzero(allowed)
        k = min(k, rows.size)
        if method == "priority":
            order = np.lexsort((rows, -p[rows]))
            chosen = rows[order[:k]]
        else:
            chosen = np.random.default_rng(rng).choice(rows, size=k, replace=False)
        return Selection(index=chosen.astype(np.int64), priority=p[chosen], method=method)


def select_candidates(
    rb,
    spread,
    threshold: float,
    k: int,
    *,
    method: str = "priority",
    exclude=None,
    rng=0,
    keys=None,
    config: ActiveConfig | None = None,
) -> Selection:
    """Function twin of :class:`ActiveSelector`."""
    return ActiveSelector(config)(
        rb, spread, threshold, k, method=method, exclude=exclude, rng=rng, keys=keys
    )
