"""The review service's database access (SQLAlchemy Core on the store's engine).

Beyond :class:`~skyscene.store.CandidateStore`: users by token hash and their
revocation, the candidate list with its filters, sorts and pagination, a candidate's
detail, labels (add, undo, history) with their consensus, an object's light curve.
Every query of a list page is a fixed number of statements (no query per row).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Engine,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    update,
)

from skyscene.errors import DataError
from skyscene.review.consensus import consensus
from skyscene.store import models as m

__all__ = ["SORTS", "CandidateFilter", "ReviewQueries", "UserRecord"]

#: Sort orders of the candidate list (``-`` = descending); ``priority`` is highest first.
SORTS = ("priority", "rb", "-rb", "time", "-time")

#: Columns of a candidate list item taken from the candidate row.
LIST_FEATURES = (
    "jd",
    "fid",
    "ra",
    "dec",
    "isdiffpos",
    "scorr",
    "magpsf",
    "sigmapsf",
    "fwhm",
    "elong",
)


def _t(model: Any) -> Table:
    return cast(Table, model.__table__)


CAND, PAIRS, OBJECTS, SCORES, LABELS, USERS = (
    _t(m.Candidate),
    _t(m.Pair),
    _t(m.Object),
    _t(m.Score),
    _t(m.Label),
    _t(m.User),
)


#: The labels of a list of candids (one expanding parameter: a statement built once).
_LABELS_OF = (
    select(LABELS.c.id, LABELS.c.candid, LABELS.c.user_id, LABELS.c.value, LABELS.c.created_at)
    .where(LABELS.c.candid.in_(bindparam("candids", expanding=True)))
    .order_by(LABELS.c.id)
)


def clean(value: Any) -> Any:
    """A JSON-safe value: non-finite floats become None, datetimes ISO 8601 in UTC."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # SQLite gives naive datetimes: they were written in UTC
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    return value


def _row(mapping: Any) -> dict[str, Any]:
    return {k: clean(v) for k, v in mapping.items()}


@dataclass(frozen=True)
class UserRecord:
    """A user as the service sees it (never the token hash)."""

    id: int
    name: str
    role: str
    created_at: Any = None
    revoked_at: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "created_at": clean(self.created_at),
            "revoked_at": clean(self.revoked_at),
        }


@dataclass(frozen=True, kw_only=True)
class CandidateFilter:
    """Filters of the candidate list (``None``: no filter).

    ``labelled_by`` / ``unlabelled_by`` are user ids; ``-1`` stands for a user name that
    does not exist (nobody labelled as them).
    """

    rb_min: float | None = None
    rb_max: float | None = None
    jd_min: float | None = None
    jd_max: float | None = None
    object_id: str | None = None
    labelled: bool | None = None
    labelled_by: int | None = None
    unlabelled_by: int | None = None


class ReviewQueries:
    """Queries of the review service on an SQLAlchemy ``engine`` of the candidate store."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"

    def _writer(self):
        connection = self.engine.connect()
        if self._sqlite:  # BEGIN IMMEDIATE: writers queue on the busy timeout
            connection = connection.execution_options(sqlite_immediate=True)
        return connection

    # ------------------------------------------------------------------ users
    def user_by_token_hash(self, token_hash: str) -> UserRecord | None:
        """The active (not revoked) user holding the token of this hash, else None."""
        query = select(USERS.c.id, USERS.c.name, USERS.c.role).where(
            USERS.c.token_hash == token_hash, USERS.c.revoked_at.is_(None)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else UserRecord(int(row.id), row.name, row.role)

    def user_id(self, name: str) -> int | None:
        with self.engine.connect() as connection:
            found = connection.scalar(select(USERS.c.id).where(USERS.c.name == name))
        return None if found is None else int(found)

    def users(self) -> list[UserRecord]:
        """Every user, by name."""
        query = select(
            USERS.c.id, USERS.c.name, USERS.c.role, USERS.c.created_at, USERS.c.revoked_at
        ).order_by(USERS.c.name)
        with self.engine.connect() as connection:
            return [
                UserRecord(int(r.id), r.name, r.role, r.created_at, r.revoked_at)
                for r in connection.execute(query)
            ]

    def revoke_user(self, name: str) -> bool:
        """Revoke a user's token (``revoked_at`` = now); False when already revoked.

        Raises
        ------
        DataError
            No user of that name.
        """
        with self._writer() as connection, connection.begin():
            row = connection.execute(
                select(USERS.c.id, USERS.c.revoked_at).where(USERS.c.name == name)
            ).first()
            if row is None:
                raise DataError(f"unknown user {name!r}")
            if row.revoked_at is not None:
                return False
            connection.execute(
                update(USERS).where(USERS.c.id == row.id).values(revoked_at=dt.datetime.now(dt.UTC))
            )
        return True

    # ------------------------------------------------------------------ labels
    @staticmethod
    def _current_labels(connection, candids: Sequence[int]) -> dict[int, dict[int, dict]]:
        """``{candid: {user_id: newest label}}`` (labels by insertion order, id)."""
        out: dict[int, dict[int, dict]] = {int(c): {} for c in candids}
        for start in range(0, len(candids), 500):
            chunk = [int(c) for c in candids[start : start + 500]]
            for row in connection.execute(_LABELS_OF, {"candids": chunk}):
                out[int(row.candid)][int(row.user_id)] = dict(row._mapping)
        return out

    @staticmethod
    def _summary(current: Mapping[int, dict], user_id: int | None) -> dict[str, Any]:
        mine = current.get(user_id) if user_id is not None else None
        return {
            "n_labels": len(current),
            "consensus": consensus(label["value"] for label in current.values()),
            "my_label": None if mine is None else mine["value"],
        }

    def candidate_exists(self, candid: int) -> bool:
        with self.engine.connect() as connection:
            return (
                connection.scalar(select(CAND.c.candid).where(CAND.c.candid == int(candid)))
                is not None
            )

    def add_label(
        self, candid: int, user: UserRecord, value: str, comment: str | None
    ) -> dict[str, Any] | None:
        """Record a label; None when the candidate does not exist. Returns the new row
        (``id``, ``candid``, ``user``, ``value``, ``comment``, ``created_at``) and the
        candidate's ``consensus`` after it."""
        if value not in m.LABEL_VALUES:
            raise DataError(f"label value must be one of {m.LABEL_VALUES}, got {value!r}")
        now = dt.datetime.now(dt.UTC)
        with self._writer() as connection, connection.begin():
            if connection.scalar(select(CAND.c.candid).where(CAND.c.candid == int(candid))) is None:
                return None
            label_id = connection.execute(
                insert(LABELS).returning(LABELS.c.id),
                {
                    "candid": int(candid),
                    "user_id": user.id,
                    "value": value,
                    "comment": comment,
                    "created_at": now,
                },
            ).scalar_one()
            current = self._current_labels(connection, [candid])[int(candid)]
        return {
            "id": int(label_id),
            "candid": int(candid),
            "user": user.name,
            "value": value,
            "comment": comment,
            "created_at": clean(now),
            "consensus": self._summary(current, user.id)["consensus"],
        }

    def label_owner(self, label_id: int) -> tuple[int, int] | None:
        """``(candid, user_id)`` of a label, None when there is no such label."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(LABELS.c.candid, LABELS.c.user_id).where(LABELS.c.id == int(label_id))
            ).first()
        return None if row is None else (int(row.candid), int(row.user_id))

    def delete_label(self, label_id: int, user: UserRecord) -> dict[str, Any] | str:
        """Undo: delete the user's own label. Returns ``"missing"`` (no such label),
        ``"forbidden"`` (another user's) or ``{"deleted", "candid", "consensus",
        "my_label"}`` (the user's previous label, if any, is current again)."""
        with self._writer() as connection, connection.begin():
            row = connection.execute(
                select(LABELS.c.candid, LABELS.c.user_id).where(LABELS.c.id == int(label_id))
            ).first()
            if row is None:
                return "missing"
            if int(row.user_id) != user.id:
                return "forbidden"
            connection.execute(delete(LABELS).where(LABELS.c.id == int(label_id)))
            candid = int(row.candid)
            current = self._current_labels(connection, [candid])[candid]
        summary = self._summary(current, user.id)
        return {
            "deleted": int(label_id),
            "candid": candid,
            "consensus": summary["consensus"],
            "my_label": summary["my_label"],
        }

    def label_history(self, user_id: int, *, limit: int, offset: int) -> dict[str, Any]:
        """A user's labels, newest first, each marked ``current`` when it is the newest
        of that user for its candidate."""
        newest_ids = (
            select(func.max(LABELS.c.id))
            .where(LABELS.c.user_id == user_id)
            .group_by(LABELS.c.candid)
        )
        query = (
            select(
                LABELS.c.id,
                LABELS.c.candid,
                LABELS.c.value,
                LABELS.c.comment,
                LABELS.c.created_at,
                LABELS.c.id.in_(newest_ids).label("current"),
            )
            .where(LABELS.c.user_id == user_id)
            .order_by(LABELS.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as connection:
            total = connection.scalar(
                select(func.count()).select_from(LABELS).where(LABELS.c.user_id == user_id)
            )
            items = [_row(r._mapping) for r in connection.execute(query)]
        for item in items:
            item["current"] = bool(item["current"])
        return {"total": int(total or 0), "limit": limit, "offset": offset, "items": items}

    # ------------------------------------------------------------------ candidates
    @staticmethod
    def _score_join(version: str | None):
        on = SCORES.c.candid == CAND.c.candid
        on = (
            and_(on, SCORES.c.model_version == version)
            if version is not None
            else and_(on, false())
        )
        return on

    @staticmethod
    def _conditions(flt: CandidateFilter) -> list:
        where: list = []
        if flt.rb_min is not None:
            where.append(SCORES.c.score >= flt.rb_min)
        if flt.rb_max is not None:
            where.append(SCORES.c.score <= flt.rb_max)
        if flt.jd_min is not None:
            where.append(CAND.c.jd >= flt.jd_min)
        if flt.jd_max is not None:
            where.append(CAND.c.jd <= flt.jd_max)
        if flt.object_id is not None:
            where.append(OBJECTS.c.object_id == flt.object_id)
        any_label = exists().where(LABELS.c.candid == CAND.c.candid)
        if flt.labelled is True:
            where.append(any_label)
        elif flt.labelled is False:
            where.append(~any_label)
        if flt.labelled_by is not None:
            where.append(
                exists().where(
                    LABELS.c.candid == CAND.c.candid, LABELS.c.user_id == flt.labelled_by
                )
            )
        if flt.unlabelled_by is not None:
            where.append(
                ~exists().where(
                    LABELS.c.candid == CAND.c.candid, LABELS.c.user_id == flt.unlabelled_by
                )
            )
        return where

    @staticmethod
    def _segments(sort: str, version: str | None) -> list[_Segment]:
        """The list order of ``sort`` as consecutive segments, each with NOT NULL sort
        columns (so that an index can serve it and a keyset cursor can resume in it)."""
        if sort not in SORTS:
            raise DataError(f"sort must be one of {SORTS}, got {sort!r}")
        unscored = _Segment(scored=False, where=(), order=((CAND.c.candid, False),))
        if sort in ("time", "-time"):  # one segment over every candidate
            return [
                _Segment(
                    scored=None,
                    where=(),
                    order=((CAND.c.jd, sort == "-time"), (CAND.c.candid, False)),
                )
            ]
        if version is None:  # nothing is scored: every candidate by candid
            return [unscored]
        if sort == "priority":
            return [
                _Segment(
                    scored=True,
                    where=(SCORES.c.priority.is_not(None),),
                    order=(
                        (SCORES.c.priority, True),
                        (SCORES.c.score, True),
                        (SCORES.c.candid, False),
                    ),
                ),
                _Segment(
                    scored=True,
                    where=(SCORES.c.priority.is_(None),),
                    order=((SCORES.c.score, True), (SCORES.c.candid, False)),
                ),
                unscored,
            ]
        scored = _Segment(
            scored=True,
            where=(),
            order=((SCORES.c.score, sort == "-rb"), (SCORES.c.candid, False)),
        )
        return [scored, unscored]

    def list_candidates(
        self,
        flt: CandidateFilter,
        *,
        version: str | None,
        user_id: int | None,
        sort: str = "priority",
        limit: int = 50,
        offset: int = 0,
        after: str | None = None,
    ) -> dict[str, Any]:
        """One page of the candidate list: ``{"total", "limit", "offset", "next",
        "model_version", "items"}``.

        The order (``sort``, then ``candid``) is read in segments that an index can
        serve: for ``priority``, the candidates scored by ``version`` with a priority,
        then those scored without one, then the unscored ones. ``after`` (the ``next``
        of the previous page, a keyset cursor) starts the page after that page's last
        row without reading the rows before it; ``offset`` skips rows from there (from
        the start without ``after``). ``next`` is null when the page is not full.
        """
        where = self._conditions(flt)
        segments = self._segments(sort, version)
        first, position = (0, None) if after is None else _decode_cursor(after, sort, segments)
        counted: Any = CAND
        if flt.object_id is not None:
            counted = counted.outerjoin(OBJECTS, CAND.c.object_key == OBJECTS.c.id)
        if flt.rb_min is not None or flt.rb_max is not None:
            counted = counted.outerjoin(SCORES, self._score_join(version))
        columns = (
            CAND.c.candid,
            OBJECTS.c.object_id.label("objectId"),
            PAIRS.c.pair_id,
            *(CAND.c[name] for name in LIST_FEATURES),
            SCORES.c.score.label("rb"),
            SCORES.c.spread,
            SCORES.c.priority,
        )
        items: list[dict[str, Any]] = []
        last: tuple[int, Any] | None = None  # (segment, row) of the page's last row
        skip = offset
        with self.engine.connect() as connection:
            total = connection.scalar(select(func.count()).select_from(counted).where(*where))
            for k in range(first, len(segments)):
                need = limit - len(items)
                if need <= 0:
                    break
                segment = segments[k]
                conditions = [*where, *segment.where]
                if k == first and position is not None:
                    conditions.append(_after(segment.order, position))
                source = self._segment_source(segment, version)
                query = (
                    select(*columns)
                    .select_from(source)
                    .where(*conditions, *self._segment_where(segment))
                    .order_by(*(c.desc() if d else c.asc() for c, d in segment.order))
                    .limit(need)
                    .offset(skip)
                )
                result = connection.execute(query)
                rows = result.all()
                if rows:
                    skip = 0
                    items.extend(_list_items(list(result.keys()), rows))
                    last = (k, items[-1])
                elif skip:  # the offset lies past this segment: skip all of it
                    n = connection.scalar(
                        select(func.count())
                        .select_from(source)
                        .where(*conditions, *self._segment_where(segment))
                    )
                    skip -= int(n or 0)
            current = self._current_labels(connection, [item["candid"] for item in items])
        for item in items:
            item.update(self._summary(current[item["candid"]], user_id))
        cursor = None
        if last is not None and len(items) == limit:
            k, row = last
            cursor = _encode_cursor(sort, k, [row[_key(c)] for c, _ in segments[k].order])
        return {
            "total": int(total or 0),
            "limit": limit,
            "offset": offset,
            "next": cursor,
            "model_version": version,
            "items": items,
        }

    def _segment_source(self, segment: _Segment, version: str | None):
        joined: Any
        if segment.scored:  # inner join from the scores of this version
            joined = SCORES.join(
                CAND, and_(SCORES.c.candid == CAND.c.candid, SCORES.c.model_version == version)
            )
        else:
            joined = CAND.outerjoin(SCORES, self._score_join(version))
        return joined.join(PAIRS, CAND.c.pair_key == PAIRS.c.id).outerjoin(
            OBJECTS, CAND.c.object_key == OBJECTS.c.id
        )

    @staticmethod
    def _segment_where(segment: _Segment) -> list:
        if segment.scored is False:
            return [SCORES.c.id.is_(None)]
        return []

    def queue_length(self, version: str | None = None) -> int:
        """Candidates nobody has labelled yet."""
        query = (
            select(func.count())
            .select_from(CAND)
            .where(~exists().where(LABELS.c.candid == CAND.c.candid))
        )
        with self.engine.connect() as connection:
            return int(connection.scalar(query) or 0)

    def candidate_detail(self, candid: int, *, user_id: int | None) -> dict[str, Any] | None:
        """Everything about one candidate (None when unknown)."""
        query = (
            select(
                CAND.c.candid,
                CAND.c.object_key,
                OBJECTS.c.object_id.label("objectId"),
                PAIRS.c.pair_id,
                *(CAND.c[name] for name in m.FEATURE_COLUMNS),
            )
            .select_from(
                CAND.join(PAIRS, CAND.c.pair_key == PAIRS.c.id).outerjoin(
                    OBJECTS, CAND.c.object_key == OBJECTS.c.id
                )
            )
            .where(CAND.c.candid == int(candid))
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
            if row is None:
                return None
            scores = [
                _row(r._mapping)
                for r in connection.execute(
                    select(
                        SCORES.c.model_name,
                        SCORES.c.model_version,
                        SCORES.c.score,
                        SCORES.c.spread,
                        SCORES.c.priority,
                        SCORES.c.created_at,
                    )
                    .where(SCORES.c.candid == int(candid))
                    .order_by(SCORES.c.created_at, SCORES.c.id)
                )
            ]
            label_rows = connection.execute(
                select(
                    LABELS.c.id,
                    LABELS.c.user_id,
                    USERS.c.name.label("user"),
                    LABELS.c.value,
                    LABELS.c.comment,
                    LABELS.c.created_at,
                )
                .join(USERS, LABELS.c.user_id == USERS.c.id)
                .where(LABELS.c.candid == int(candid))
                .order_by(LABELS.c.id)
            ).all()
            others: list[dict[str, Any]] = []
            if row.object_key is not None:
                others = [
                    _row(r._mapping)
                    for r in connection.execute(
                        select(
                            CAND.c.candid,
                            CAND.c.jd,
                            CAND.c.fid,
                            CAND.c.magpsf,
                            CAND.c.sigmapsf,
                            CAND.c.isdiffpos,
                        )
                        .where(CAND.c.object_key == row.object_key, CAND.c.candid != int(candid))
                        .order_by(CAND.c.jd, CAND.c.candid)
                    )
                ]
        newest: dict[int, int] = {}
        for label in label_rows:
            newest[int(label.user_id)] = int(label.id)
        values = {int(label.id): label.value for label in label_rows}
        current = {uid: {"value": values[lid]} for uid, lid in newest.items()}
        labels = []
        for label in label_rows:
            item = _row(label._mapping)
            item.pop("user_id")
            item["current"] = newest[int(label.user_id)] == int(label.id)
            labels.append(item)
        mapping = dict(row._mapping)
        summary = self._summary(current, user_id)
        return {
            "candid": int(mapping["candid"]),
            "objectId": mapping["objectId"],
            "pair_id": mapping["pair_id"],
            "features": {name: clean(mapping[name]) for name in m.FEATURE_COLUMNS},
            "scores": scores,
            "labels": labels,
            "consensus": summary["consensus"],
            "my_label": summary["my_label"],
            "other_detections": others,
        }

    # ------------------------------------------------------------------ objects
    def object_lightcurve(self, object_id: str, *, version: str | None) -> dict[str, Any] | None:
        """An object's detections (with the served model's ``rb``) and upper limits.

        Upper limits are the pairs whose footprint holds the object's position but that
        have no detection of it, at that pair's 5σ limit. A pair's footprint and limit
        come from its ``meta`` when present (``footprint``: the image's corners as
        ``[[ra, dec], ...]``, as the search records them, or a box ``[ra_min, ra_max,
        dec_min, dec_max]``, in degrees; ``diffmaglim``), else from its candidates:
        their RA/Dec bounding box and median ``diffmaglim``.
        """
        with self.engine.connect() as connection:
            obj = connection.execute(
                select(OBJECTS.c.id, OBJECTS.c.object_id, OBJECTS.c.ra, OBJECTS.c.dec).where(
                    OBJECTS.c.object_id == object_id
                )
            ).first()
            if obj is None:
                return None
            detections = [
                _row(r._mapping)
                for r in connection.execute(
                    select(
                        CAND.c.candid,
                        CAND.c.jd,
                        CAND.c.fid,
                        CAND.c.magpsf,
                        CAND.c.sigmapsf,
                        CAND.c.isdiffpos,
                        CAND.c.pair_key,
                        SCORES.c.score.label("rb"),
                    )
                    .select_from(CAND.outerjoin(SCORES, self._score_join(version)))
                    .where(CAND.c.object_key == obj.id)
                    .order_by(CAND.c.jd, CAND.c.candid)
                )
            ]
            detected = {d.pop("pair_key") for d in detections}
            limits = self._upper_limits(connection, float(obj.ra), float(obj.dec), detected)
        return {
            "objectId": obj.object_id,
            "ra": clean(float(obj.ra)),
            "dec": clean(float(obj.dec)),
            "detections": detections,
            "upper_limits": limits,
        }

    @staticmethod
    def _upper_limits(connection, ra: float, dec: float, detected: set) -> list[dict[str, Any]]:
        boxes = (
            select(
                CAND.c.pair_key,
                func.min(CAND.c.ra).label("ra_min"),
                func.max(CAND.c.ra).label("ra_max"),
                func.min(CAND.c.dec).label("dec_min"),
                func.max(CAND.c.dec).label("dec_max"),
            )
            .group_by(CAND.c.pair_key)
            .having(func.min(CAND.c.dec) <= dec, func.max(CAND.c.dec) >= dec)
        )
        pairs = {
            int(r.id): r
            for r in connection.execute(
                select(PAIRS.c.id, PAIRS.c.pair_id, PAIRS.c.jd, PAIRS.c.fid, PAIRS.c.meta)
            )
        }
        box = {int(r.pair_key): r for r in connection.execute(boxes)}
        out = []
        for key, pair in pairs.items():
            if key in detected:
                continue
            meta = pair.meta if isinstance(pair.meta, dict) else {}
            inside = _inside_footprint(meta.get("footprint"), ra, dec)
            if inside is None:  # no usable footprint: the box of the pair's candidates
                if key not in box:
                    continue
                b = box[key]
                inside = b.dec_min <= dec <= b.dec_max and _ra_inside(ra, b.ra_min, b.ra_max)
            if not inside:
                continue
            limit = meta.get("diffmaglim")
            if not isinstance(limit, int | float) or not math.isfinite(limit):
                values = connection.scalars(
                    select(CAND.c.diffmaglim).where(
                        CAND.c.pair_key == key, CAND.c.diffmaglim.is_not(None)
                    )
                ).all()
                limit = _median(values)
            out.append(
                {
                    "jd": clean(pair.jd),
                    "fid": pair.fid,
                    "diffmaglim": clean(limit),
                    "pair_id": pair.pair_id,
                }
            )
        out.sort(key=lambda r: (r["jd"] is None, r["jd"] or 0.0, r["pair_id"]))
        return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _valid_box(value: Any) -> bool:
    """``[ra_min, ra_max, dec_min, dec_max]`` (degrees)."""
    return isinstance(value, list | tuple) and len(value) == 4 and all(map(_number, value))


def _valid_corners(value: Any) -> bool:
    """At least three ``[ra, dec]`` corners (degrees), as the search records an image's
    footprint (its four corners from the WCS)."""
    return (
        isinstance(value, list | tuple)
        and len(value) >= 3
        and all(isinstance(c, list | tuple) and len(c) == 2 and all(map(_number, c)) for c in value)
    )


def _inside_footprint(footprint: Any, ra: float, dec: float) -> bool | None:
    """Whether (ra, dec) lies in a pair's footprint; None when the footprint is neither
    a box ``[ra_min, ra_max, dec_min, dec_max]`` nor a polygon of ``[ra, dec]``
    corners. A polygon is tested in the tangent plane at the position (RA differences
    wrapped to [-180, 180) and scaled by cos(dec)): exact for image-sized footprints,
    across RA = 0 too."""
    if _valid_corners(footprint):
        cos_dec = math.cos(math.radians(dec))
        xs = [((float(c[0]) - ra + 180.0) % 360.0 - 180.0) * cos_dec for c in footprint]
        ys = [float(c[1]) - dec for c in footprint]
        if max(map(abs, xs)) > 90.0 or max(map(abs, ys)) > 90.0:
            return False  # the footprint is far away: the tangent plane means nothing
        inside = False  # even-odd ray casting from the origin along +x
        for i in range(len(xs)):
            x1, y1, x2, y2 = xs[i - 1], ys[i - 1], xs[i], ys[i]
            if (y1 > 0) != (y2 > 0) and x1 + (0.0 - y1) * (x2 - x1) / (y2 - y1) > 0:
                inside = not inside
        return inside
    if _valid_box(footprint):
        ra_min, ra_max, dec_min, dec_max = (float(v) for v in footprint)
        return dec_min <= dec <= dec_max and _ra_inside(ra, ra_min, ra_max)
    return None


def _ra_inside(ra: float, low: float, high: float) -> bool:
    if low <= high:
        return low <= ra <= high
    return ra >= low or ra <= high  # a footprint across RA = 0


def _median(values: Iterable[float]) -> float | None:
    finite = sorted(float(v) for v in values if v is not None and math.isfinite(float(v)))
    if not finite:
        return None
    mid = len(finite) // 2
    return finite[mid] if len(finite) % 2 else 0.5 * (finite[mid - 1] + finite[mid])


@dataclass(frozen=True)
class _Segment:
    """A run of the list order: ``scored`` True (candidates with a score of the
    version), False (without) or None (all); extra ``where``; ``order`` as (column,
    descending) pairs, every column NOT NULL within the segment."""

    scored: bool | None
    where: tuple
    order: tuple


def _key(column: Any) -> str:
    """The result key of an order column in a list row."""
    if column is SCORES.c.score:
        return "rb"
    return column.name


_PLAIN = (int, str, type(None))


def _list_items(keys: Sequence[str], rows: Sequence[Any]) -> list[dict[str, Any]]:
    """List rows as dicts of JSON-safe values (non-finite floats None, others by
    :func:`clean`); plain rows are zipped with the keys as they are."""
    out = []
    for row in rows:
        for value in row:
            kind = type(value)
            if (kind is float and not math.isfinite(value)) or (
                kind is not float and kind not in _PLAIN
            ):
                row = [clean(v) for v in row]
                break
        out.append(dict(zip(keys, row, strict=True)))
    return out


def _after(order: Sequence[tuple[Any, bool]], values: Sequence[Any]):
    """Rows strictly after ``values`` in the lexicographic ``order``, written as a range
    of the first column (``c0 <= v0`` descending) and an OR of the rest, so that an
    index on the first column serves it: ``c0 <= v0 AND (c0 < v0 OR after(rest))``."""
    (column, descending), value = order[0], values[0]
    strict = column < value if descending else column > value
    if len(order) == 1:
        return strict
    bound = column <= value if descending else column >= value
    return and_(bound, or_(strict, _after(order[1:], values[1:])))


def _encode_cursor(sort: str, segment: int, values: Sequence[Any]) -> str:
    raw = json.dumps([sort, segment, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str, segments: Sequence[_Segment]) -> tuple[int, list]:
    """(segment, values) of a ``next`` cursor; DataError when it is not one of ``sort``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise DataError(f"after: not a cursor of this list ({exc})") from None
    if not isinstance(data, list) or len(data) < 3 or data[0] != sort:
        raise DataError(f"after: not a cursor of this list with sort={sort!r}")
    segment = data[1]
    if type(segment) is not int or not 0 <= segment < len(segments):
        raise DataError("after: not a cursor of this list (segment)")
    values = data[2:]
    order = segments[segment].order
    if len(values) != len(order):
        raise DataError("after: not a cursor of this list (values)")
    for (column, _), value in zip(order, values, strict=True):
        if column.name == "candid":
            ok = type(value) is int and 0 <= value < 2**63
        else:
            ok = type(value) in (int, float) and math.isfinite(value)
        if not ok:
            raise DataError(f"after: bad cursor value for {column.name}")
    return segment, values
