"""Splits by group: no simulated night/CCD (``group``) appears in two splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyscene._validation import check_range
from skyscene.errors import DataError

__all__ = ["GroupSplit", "group_split"]


@dataclass(frozen=True, kw_only=True)
class GroupSplit:
    """Row indices of a split by group.

    Attributes
    ----------
    train, validation, test : ndarray of int
        Row indices (sorted); the groups of the three are disjoint.
    groups : dict
        ``{"train": [...], "validation": [...], "test": [...]}``: the group ids of each.
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    groups: dict


def group_split(groups, *, validation: float = 0.15, test: float = 0.15, rng=0) -> GroupSplit:
    """Split rows by group into train / validation / test.

    Groups are shuffled with ``rng`` and assigned greedily so that each split holds about
    its fraction of the *rows*; validation and test get at least one group each when
    their fraction is positive and there are enough groups.

    Parameters
    ----------
    groups : array of str or int, (N,)
        The group (simulated night/CCD) of every row.
    validation, test : float
        Fractions of the rows, each in [0, 0.9].
    rng : int or numpy.random.Generator

    Examples
    --------
    >>> s = group_split(["a", "a", "b", "c", "c", "d"], validation=0.25, test=0.25, rng=1)
    >>> sorted(set(s.groups["train"]) | set(s.groups["validation"]) | set(s.groups["test"]))
    ['a', 'b', 'c', 'd']
    """
    check_range("validation", validation, low=0, high=0.9)
    check_range("test", test, low=0, high=0.9)
    if validation + test >= 1:
        raise DataError(f"validation + test fractions must be < 1, got {validation + test}")
    g = np.asarray(groups).astype(str)
    names, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    wanted = [f for f in (validation, test) if f > 0]
    if len(names) < len(wanted) + 1:
        raise DataError(
            f"a split by group needs at least {len(wanted) + 1} groups, got {len(names)}"
        )
    order = np.random.default_rng(rng).permutation(len(names))
    n = g.size
    assign = np.zeros(len(names), dtype=np.int64)  # 0 train, 1 validation, 2 test
    taken = 0
    for split, fraction in ((1, validation), (2, test)):
        if fraction <= 0:
            continue
        target = fraction * n
        rows = 0
        # keep one group for train and one for each split still to fill
        limit = len(order) - 1 - (1 if split == 1 and test > 0 else 0)
        while taken < limit and (rows == 0 or rows + counts[order[taken]] / 2 <= target):
            assign[order[taken]] = split
            rows += counts[order[taken]]
            taken += 1
    index = assign[inverse]
    return GroupSplit(
        train=np.flatnonzero(index == 0),
        validation=np.flatnonzero(index == 1),
        test=np.flatnonzero(index == 2),
        groups={
            name: [str(x) for x in names[assign == k]]
            for k, name in enumerate(("train", "validation", "test"))
        },
    )
