"""The consensus of human labels (pure: no database, no web framework).

Used by the review service and by retraining (:mod:`skyscene.classify`), so that both
agree on what the reviewers decided.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["LABEL_VALUES", "consensus"]

#: The values a label may take.
LABEL_VALUES = ("real", "bogus", "unsure")


def consensus(values: Iterable[str | None]) -> str | None:
    """The consensus of users' *current* labels.

    Parameters
    ----------
    values : iterable of {"real", "bogus", "unsure"}
        One current label per user (``None`` entries are ignored).

    Returns
    -------
    {"real", "bogus", "unsure"} or None
        The majority of ``real`` and ``bogus`` (``unsure`` votes are not counted); on a
        tie, or when nobody said real or bogus, ``"unsure"`` if any user said unsure,
        else ``None`` (nobody labelled, or a real/bogus tie without an unsure).

    Raises
    ------
    ValueError
        A value that is not a label.

    Examples
    --------
    >>> consensus(["real", "real", "bogus"])
    'real'
    >>> consensus(["real", "bogus", "unsure"])
    'unsure'
    >>> consensus(["unsure", "bogus"])
    'bogus'
    >>> consensus([]) is None, consensus(["real", "bogus"]) is None
    (True, True)
    """
    real = bogus = unsure = 0
    for value in values:
        if value is None:
            continue
        if value == "real":
            real += 1
        elif value == "bogus":
            bogus += 1
        elif value == "unsure":
            unsure += 1
        else:
            raise ValueError(f"not a label value: {value!r} (expected one of {LABEL_VALUES})")
    if real > bogus:
        return "real"
    if bogus > real:
        return "bogus"
    return "unsure" if unsure else None
