"""The candidate database: ingestion (idempotent, one transaction per pair), association of
candidates into objects by position, and the queries that alerts and the review service use.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    Double,
    Engine,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

from skyscene._validation import check_choice, check_range
from skyscene.errors import DataError, InputFileError, ParameterError
from skyscene.store import models as m

__all__ = [
    "CandidateStore",
    "IngestResult",
    "PairRecord",
    "StoreConfig",
    "format_object_id",
    "open_engine",
]

log = logging.getLogger(__name__)

_PG_INGEST_LOCK = 0x534B5902  # advisory lock: association of one pair at a time
_CUTOUT_KINDS = ("science", "reference", "difference")
_PRV_FIELDS = (
    "jd",
    "fid",
    "candid",
    "isdiffpos",
    "ra",
    "dec",
    "xpos",
    "ypos",
    "magpsf",
    "sigmapsf",
    "magap",
    "sigmagap",
    "scorr",
    "magzpsci",
    "exptime",
    "diffmaglim",
    "fwhm",
    "nbad",
)


@dataclass(frozen=True, kw_only=True)
class StoreConfig:
    """How the store associates and writes.

    Parameters
    ----------
    match_radius_arcsec : float
        Candidates within this distance of an object (its mean position) join it; default
        1.5″ (ZTF's association radius). In (0, 60].
    object_prefix : str
        ``objectId`` prefix: ``SKY`` gives ``SKY26aaaaaab`` (prefix, 2-digit year of the
        first detection, 7 letters counting objects in base 26), as ZTF's ``ZTF18abcdefg``.
    auto_upgrade : bool
        Run the migrations when the store is opened (a new SQLite file becomes usable at
        once). False: a database that is not at the newest revision is refused.
    busy_timeout_s : float
        How long a SQLite writer waits for another one, seconds.
    """

    match_radius_arcsec: float = 1.5
    object_prefix: str = "SKY"
    auto_upgrade: bool = True
    busy_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        check_range(
            "StoreConfig.match_radius_arcsec",
            self.match_radius_arcsec,
            low=0,
            high=60,
            low_inclusive=False,
        )
        if not isinstance(self.object_prefix, str) or not re.fullmatch(
            r"[A-Z]{2,5}", self.object_prefix
        ):
            raise ParameterError(
                f"StoreConfig.object_prefix must be 2-5 capital letters, got {self.object_prefix!r}",
                name="StoreConfig.object_prefix",
                value=self.object_prefix,
            )
        check_choice("StoreConfig.auto_upgrade", self.auto_upgrade, (True, False))
        check_range("StoreConfig.busy_timeout_s", self.busy_timeout_s, low=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "match_radius_arcsec": self.match_radius_arcsec,
            "object_prefix": self.object_prefix,
            "auto_upgrade": self.auto_upgrade,
            "busy_timeout_s": self.busy_timeout_s,
        }


@dataclass(frozen=True, kw_only=True)
class PairRecord:
    """What the store records of a science/reference pair.

    ``pair_id`` is the unique key: ingesting a pair whose ``pair_id`` is present adds
    nothing. ``jd``, ``fid`` fill candidates that lack them.
    """

    pair_id: str
    science: str
    reference: str
    jd: float | None = None
    fid: int | None = None
    band: str | None = None
    exptime: float | None = None
    magzpsci: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("pair_id", "science", "reference"):
            value = getattr(self, name)
            if not isinstance(value, str | os.PathLike) or not str(value):
                raise ParameterError(
                    f"PairRecord.{name} must be a non-empty string, got {value!r}",
                    name=f"PairRecord.{name}",
                    value=value,
                )
            object.__setattr__(self, name, str(value))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))


@dataclass(frozen=True)
class IngestResult:
    """What :meth:`CandidateStore.ingest_pair` did.

    ``inserted`` is False when the pair was already in the store (nothing was added).
    """

    pair_id: str
    inserted: bool
    n_candidates: int = 0
    n_new_objects: int = 0
    n_matched: int = 0
    n_cutouts: int = 0


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def format_object_id(number: int, year: int, prefix: str = "SKY") -> str:
    """``objectId`` of the ``number``-th object (1-based): prefix, 2-digit year, 7 letters.

    >>> format_object_id(1, 2026), format_object_id(27, 2026)
    ('SKY26aaaaaaa', 'SKY26aaaaaba')
    """
    n = number - 1
    if not 0 <= n < 26**7:
        raise DataError(f"object number {number} is outside 1..26**7")
    letters = []
    for _ in range(7):
        n, r = divmod(n, 26)
        letters.append(_LETTERS[r])
    return f"{prefix}{year % 100:02d}{''.join(reversed(letters))}"


def _year(jd: float | None) -> int:
    if jd is None or not math.isfinite(jd):
        return dt.datetime.now(dt.UTC).year
    return (dt.datetime(1970, 1, 1) + dt.timedelta(days=jd - 2440587.5)).year


def _url(url: str | os.PathLike) -> str:
    text = os.fspath(url)
    return text if "://" in text else f"sqlite:///{text}"


def open_engine(url: str | os.PathLike, *, busy_timeout_s: float = 60.0) -> Engine:
    """An SQLAlchemy engine for ``url`` (a SQLAlchemy URL, or a path: a SQLite file).

    SQLite connections get foreign keys on, WAL journal, a busy timeout, and
    ``BEGIN IMMEDIATE`` for transactions marked ``sqlite_immediate`` (the writers), so
    concurrent writers queue instead of failing. ``postgresql://`` uses psycopg (3).
    """
    text = _url(url)
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise ParameterError(f"not a database URL: {text!r}", name="url", value=text) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                folder = os.path.dirname(os.path.abspath(database))
                if not os.path.isdir(folder):
                    raise InputFileError(f"database folder {folder} does not exist (url {text})")
            engine = create_engine(parsed, connect_args={"timeout": busy_timeout_s})
            _sqlite_events(engine, busy_timeout_s)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
    except (ImportError, ArgumentError) as exc:
        raise ParameterError(
            f"no database driver for {parsed.drivername!r} ({exc})", name="url", value=text
        ) from None
    return engine


def _sqlite_events(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, record):  # pragma: no cover - exercised through SQLite
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):  # pragma: no cover - exercised through SQLite
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _t(model: Any) -> Table:
    """The Core table of a model (typed as such)."""
    return cast(Table, model.__table__)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra_r, dec_r = np.radians(ra), np.radians(dec)
    cos_dec = np.cos(dec_r)
    return np.column_stack([cos_dec * np.cos(ra_r), cos_dec * np.sin(ra_r), np.sin(dec_r)])


def _radec(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norm = np.linalg.norm(vectors, axis=1)
    x, y, z = (vectors / norm[:, None]).T
    return np.degrees(np.arctan2(y, x)) % 360.0, np.degrees(np.arcsin(np.clip(z, -1, 1)))


class CandidateStore:
    """The candidate database at ``url``.

    Parameters
    ----------
    url : str or path
        Any SQLAlchemy URL (``sqlite:///run/skyscene.db``,
        ``postgresql+psycopg://user@host:5432/db``) or a path (a SQLite file).
    config : StoreConfig, optional

    Examples
    --------
    >>> store = CandidateStore("sqlite://")  # in memory
    >>> pair = PairRecord(pair_id="p1", science="sci.fits", reference="ref.fits", jd=2461100.5)
    >>> table = {"candid": [1, 2], "ra": [150.0, 151.0], "dec": [2.0, 2.0], "fid": [2, 2],
    ...          "isdiffpos": ["t", "f"], "magpsf": [19.0, 20.0], "sigmapsf": [0.1, 0.2]}
    >>> store.ingest_pair(pair, table).n_new_objects
    2
    >>> store.ingest_pair(pair, table).inserted  # idempotent
    False
    >>> store.object_ids([1, 2])
    {1: 'SKY26aaaaaaa', 2: 'SKY26aaaaaab'}
    """

    def __init__(self, url: str | os.PathLike, *, config: StoreConfig | None = None):
        from skyscene.store.migrate import current_revision, head_revision, upgrade

        self.config = config or StoreConfig()
        self.url = _url(url)
        self.engine = open_engine(self.url, busy_timeout_s=self.config.busy_timeout_s)
        try:
            if self.config.auto_upgrade:
                upgrade(self.engine)
            revision = current_revision(self.engine)
        except OperationalError as exc:
            raise InputFileError(f"cannot open database {self._shown_url()}: {exc.orig}") from None
        if revision != head_revision():
            raise DataError(
                f"database {self._shown_url()} is at schema revision {revision!r}, this skyscene "
                f"needs {head_revision()!r}: run 'skyscene db upgrade URL'"
            )
        self._dialect = self.engine.dialect.name

    def _shown_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    def __enter__(self) -> CandidateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CandidateStore({self._shown_url()!r})"

    # ------------------------------------------------------------------ writing
    def _writer(self):
        connection = self.engine.connect()
        if self._dialect == "sqlite":
            connection = connection.execution_options(sqlite_immediate=True)
        return connection

    def _insert(self, table):
        if self._dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        if self._dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table)
        return insert(table)

    def _bulk_insert(self, connection, table: str, rows: list[dict]) -> None:
        """executemany through the driver: SQLAlchemy's per-row parameter processing is
        most of the time of an ingest otherwise. Values are plain Python numbers, strings,
        None and datetimes, which every driver takes as they are."""
        names = list(rows[0])
        mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})"
        connection.exec_driver_sql(sql, [tuple(r[k] for k in names) for r in rows])

    def _ensure_image(self, connection, path: str, **values: Any) -> int:
        table = _t(m.Image)
        stmt = self._insert(table).values(path=path, **values)
        if hasattr(stmt, "on_conflict_do_nothing"):
            connection.execute(stmt.on_conflict_do_nothing(index_elements=["path"]))
        else:  # pragma: no cover - other backends
            if connection.scalar(select(table.c.id).where(table.c.path == path)) is None:
                connection.execute(stmt)
        return connection.scalar(select(table.c.id).where(table.c.path == path))

    def ingest_pair(
        self,
        pair: PairRecord | Mapping[str, Any],
        candidates: Any,
        cutouts: Mapping[str, Any] | None = None,
        *,
        run_id: int | None = None,
    ) -> IngestResult:
        """Store one pair's candidates (and cutouts) in one transaction; idempotent.

        Parameters
        ----------
        pair : PairRecord or mapping of its fields
        candidates : CandidateTable, astropy Table or mapping of columns
            ZTF-named columns; ``candid``, ``ra``, ``dec``, ``isdiffpos`` required,
            ``jd``/``fid`` taken from ``pair`` when absent; every name of
            :data:`~skyscene.store.models.FEATURE_COLUMNS` present is stored, NaN as NULL.
        cutouts : mapping, optional
            ``{"science"|"reference"|"difference": sequence (one per row) of gzip-FITS
            bytes or (n, n) arrays}`` (arrays are encoded with
            :func:`skyscene.alerts.encode_stamp`).
        run_id : int, optional
            The run (:meth:`start_run`) that made the pair.

        Returns
        -------
        IngestResult
            ``inserted=False`` (and nothing written) when ``pair.pair_id`` is present.

        Notes
        -----
        Each candidate joins the nearest object within ``match_radius_arcsec`` of its
        (running mean) position, else a new object is made (candidates of the pair
        within the radius of each other share it). Concurrent ingestion is safe: on
        PostgreSQL the association holds an advisory lock, on SQLite the transaction
        is ``BEGIN IMMEDIATE``; the unique ``pair_id`` and ``candid`` keys make a rerun or
        a second writer of the same pair add no rows.
        """
        from skyscene.alerts.core import _columns

        if not isinstance(pair, PairRecord):
            pair = PairRecord(**dict(pair))
        n, columns = _columns(candidates)
        rows = self._candidate_rows(pair, n, columns)
        blobs = self._cutout_rows(rows, cutouts or {}, n)
        with self._writer() as connection, connection.begin():
            if self._dialect == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_INGEST_LOCK})")
            pairs = _t(m.Pair)
            if connection.scalar(select(pairs.c.id).where(pairs.c.pair_id == pair.pair_id)):
                return IngestResult(pair.pair_id, False)
            cand = _t(m.Candidate)
            wanted = [r["candid"] for r in rows]
            present: list[int] = []
            for start in range(0, len(wanted), 5000):
                present += connection.scalars(
                    select(cand.c.candid).where(cand.c.candid.in_(wanted[start : start + 5000]))
                ).all()
            if present:
                raise DataError(
                    f"pair {pair.pair_id!r}: candid already stored for another pair "
                    f"({sorted(present)[:5]})"
                )
            science_id = self._ensure_image(
                connection,
                pair.science,
                band=pair.band,
                jd=pair.jd,
                exptime=pair.exptime,
                magzp=pair.magzpsci,
            )
            reference_id = self._ensure_image(connection, pair.reference, band=pair.band)
            pair_key = connection.execute(
                insert(pairs).returning(pairs.c.id),
                {
                    "pair_id": pair.pair_id,
                    "science_id": science_id,
                    "reference_id": reference_id,
                    "run_id": run_id,
                    "jd": pair.jd,
                    "fid": pair.fid,
                    "band": pair.band,
                    "n_candidates": n,
                    "meta": dict(pair.meta) or None,
                },
            ).scalar_one()
            n_new, n_matched = self._associate(connection, rows)
            for row in rows:
                row["pair_key"] = pair_key
            if rows:
                now: Any = dt.datetime.now(dt.UTC)
                if self._dialect == "sqlite":  # SQLAlchemy's SQLite DATETIME text form
                    now = now.strftime("%Y-%m-%d %H:%M:%S.%f")
                for row in rows:
                    row["created_at"] = now
                self._bulk_insert(connection, "candidates", rows)
            if blobs:
                connection.execute(insert(_t(m.Cutout)), blobs)
        log.debug("pair %s: %d candidates, %d new objects", pair.pair_id, n, n_new)
        return IngestResult(pair.pair_id, True, n, n_new, n_matched, len(blobs))

    def _candidate_rows(self, pair: PairRecord, n: int, columns: dict[str, list]) -> list[dict]:
        where = f"pair {pair.pair_id!r}"
        for name in ("candid", "ra", "dec", "isdiffpos"):
            if name not in columns and n:
                raise DataError(f"{where}: candidate table has no {name!r} column")
        defaults = {"jd": pair.jd, "fid": pair.fid}
        for name in ("jd", "fid"):
            if name not in columns and defaults[name] is None and n:
                raise DataError(
                    f"{where}: candidate table has no {name!r} column and the pair record none"
                )
        lists: dict[str, list] = {"candid": columns["candid"]}
        for name in m.FEATURE_COLUMNS:
            if name in columns:
                lists[name] = [
                    None if isinstance(v, float) and not math.isfinite(v) else v
                    for v in columns[name]
                ]
            else:
                lists[name] = [defaults.get(name)] * n
        flags = lists["isdiffpos"]
        for i, value in enumerate(flags):
            if value in ("t", "f"):
                continue
            if isinstance(value, bool | np.bool_ | int):
                flags[i] = "t" if value else "f"
            elif isinstance(value, bytes) and value in (b"t", b"f"):
                flags[i] = value.decode()
            else:
                raise DataError(
                    f"{where}: candid {lists['candid'][i]}: isdiffpos must be 't' or 'f', "
                    f"got {value!r}"
                )
        for name in ("candid", "ra", "dec", "jd"):
            bad = [i for i, v in enumerate(lists[name]) if v is None]
            if bad:
                raise DataError(f"{where}: row {bad[0]}: {name!r} is null or not finite")
        lists["candid"] = [int(c) for c in lists["candid"]]
        keys = list(lists)
        rows = [
            dict(zip(keys, values, strict=True)) for values in zip(*lists.values(), strict=True)
        ]
        if len({r["candid"] for r in rows}) != len(rows):
            raise DataError(f"{where}: the candidate table repeats a candid")
        return rows

    def _cutout_rows(self, rows: list[dict], cutouts: Mapping[str, Any], n: int) -> list[dict]:
        blobs = []
        for kind, values in cutouts.items():
            if kind not in _CUTOUT_KINDS:
                raise ParameterError(
                    f"cutout kind must be one of {', '.join(_CUTOUT_KINDS)}, got {kind!r}",
                    name="cutouts",
                    value=kind,
                )
            if len(values) != n:
                raise DataError(f"cutouts[{kind!r}] has {len(values)} entries for {n} candidates")
            for row, value in zip(rows, values, strict=True):
                if not isinstance(value, bytes | bytearray | memoryview):
                    from skyscene.alerts import encode_stamp

                    value = encode_stamp(np.asarray(value))
                blobs.append({"candid": row["candid"], "kind": kind, "data": bytes(value)})
        return blobs

    def _associate(self, connection, rows: list[dict]) -> tuple[int, int]:
        """Set ``object_key`` of each row: nearest object within the radius, else a new one."""
        if not rows:
            return 0, 0
        from scipy.spatial import cKDTree

        objects = _t(m.Object)
        radius = self.config.match_radius_arcsec / 3600.0
        chord = 2 * math.sin(math.radians(radius) / 2)
        ra = np.array([r["ra"] for r in rows], dtype=float)
        dec = np.array([r["dec"] for r in rows], dtype=float)
        jd = np.array([r["jd"] for r in rows], dtype=float)
        vectors = _unit_vectors(ra, dec)
        query = select(
            objects.c.id,
            objects.c.ra,
            objects.c.dec,
            objects.c.n_detections,
            objects.c.first_jd,
            objects.c.last_jd,
        ).where(objects.c.dec.between(dec.min() - radius, dec.max() + radius))
        max_abs_dec = max(abs(dec.min()), abs(dec.max())) + radius
        ra_span = (ra.max() - ra.min()) if ra.size else 0.0
        if max_abs_dec < 89.0 and ra_span < 180.0:
            pad = radius / math.cos(math.radians(max_abs_dec))
            query = query.where(objects.c.ra.between(ra.min() - pad, ra.max() + pad))
        existing = connection.execute(query).all()
        key = np.full(len(rows), -1, dtype=np.int64)
        if existing:
            old = np.array([(e[1], e[2]) for e in existing], dtype=float)
            tree = cKDTree(_unit_vectors(old[:, 0], old[:, 1]))
            distance, index = tree.query(vectors, distance_upper_bound=chord)
            hit = np.isfinite(distance)
            key[hit] = index[hit]
        # Unmatched candidates within the radius of each other share a new object.
        unmatched = np.flatnonzero(key < 0)
        parent = {int(i): int(i) for i in unmatched}

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        if unmatched.size > 1:
            for a, b in cKDTree(vectors[unmatched]).query_pairs(chord):
                ra_, rb_ = root(int(unmatched[a])), root(int(unmatched[b]))
                if ra_ != rb_:
                    parent[max(ra_, rb_)] = min(ra_, rb_)
        groups: dict[int, list[int]] = {}
        for i in unmatched:
            groups.setdefault(root(int(i)), []).append(int(i))
        object_key = np.zeros(len(rows), dtype=np.int64)
        if groups:
            members = list(groups.values())
            group_of = np.empty(len(rows), dtype=np.int64)
            for g, idx in enumerate(members):
                group_of[idx] = g
            sel = np.concatenate(members)
            sums = np.zeros((len(members), 3))
            np.add.at(sums, group_of[sel], vectors[sel])
            first = np.full(len(members), np.inf)
            last = np.full(len(members), -np.inf)
            np.minimum.at(first, group_of[sel], jd[sel])
            np.maximum.at(last, group_of[sel], jd[sel])
            lon, lat = _radec(sums)
            # Ids given here, under the write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: the
            # advisory lock), so the objectId is written with the row.
            start = int(connection.scalar(select(func.coalesce(func.max(objects.c.id), 0))))
            prefix = self.config.object_prefix
            new_rows = [
                {
                    "id": start + g + 1,
                    "object_id": format_object_id(start + g + 1, _year(float(first[g])), prefix),
                    "ra": float(lon[g]),
                    "dec": float(lat[g]),
                    "n_detections": len(members[g]),
                    "first_jd": float(first[g]),
                    "last_jd": float(last[g]),
                }
                for g in range(len(members))
            ]
            self._bulk_insert(connection, "objects", new_rows)
            if self._dialect == "postgresql":
                connection.exec_driver_sql(
                    "SELECT setval(pg_get_serial_sequence('objects', 'id'), "
                    f"{start + len(members)})"
                )
            object_key[sel] = start + 1 + group_of[sel]
        matched = np.flatnonzero(key >= 0)
        if matched.size:
            targets, inverse = np.unique(key[matched], return_inverse=True)
            state = [existing[int(j)] for j in targets]
            n_old = np.array([row[3] for row in state], dtype=float)
            sums = (
                _unit_vectors(
                    np.array([row[1] for row in state]), np.array([row[2] for row in state])
                )
                * n_old[:, None]
            )
            np.add.at(sums, inverse, vectors[matched])
            added = np.bincount(inverse, minlength=len(targets))
            first = np.array([np.inf if row[4] is None else row[4] for row in state])
            last = np.array([-np.inf if row[5] is None else row[5] for row in state])
            np.minimum.at(first, inverse, jd[matched])
            np.maximum.at(last, inverse, jd[matched])
            lon, lat = _radec(sums)
            ids = np.array([row[0] for row in state], dtype=np.int64)
            connection.execute(
                update(objects)
                .where(objects.c.id == bindparam("oid"))
                .values(
                    ra=bindparam("ra"),
                    dec=bindparam("dec"),
                    n_detections=bindparam("n"),
                    first_jd=bindparam("first"),
                    last_jd=bindparam("last"),
                ),
                [
                    {
                        "oid": int(ids[t]),
                        "ra": float(lon[t]),
                        "dec": float(lat[t]),
                        "n": int(n_old[t] + added[t]),
                        "first": float(first[t]),
                        "last": float(last[t]),
                    }
                    for t in range(len(targets))
                ],
            )
            object_key[matched] = ids[inverse]
        for row, oid in zip(rows, object_key.tolist(), strict=True):
            row["object_key"] = oid
        return len(groups), int(matched.size)

    # ------------------------------------------------------------------ runs, scores, labels
    def start_run(self, *, command: str | None = None, config: Mapping | None = None) -> int:
        """Record the start of a run; return its id."""
        from skyscene import __version__

        runs = _t(m.Run)
        with self._writer() as connection, connection.begin():
            return connection.execute(
                insert(runs).returning(runs.c.id),
                {
                    "command": command,
                    "config": dict(config) if config else None,
                    "software": f"skyscene {__version__}",
                    "status": "running",
                },
            ).scalar_one()

    def finish_run(self, run_id: int, *, status: str = "done", summary: Mapping | None = None):
        """Record the end of a run (``status``: done, failed, finished_with_failures, ...)."""
        runs = _t(m.Run)
        with self._writer() as connection, connection.begin():
            connection.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(
                    status=status,
                    summary=dict(summary) if summary else None,
                    finished_at=dt.datetime.now(dt.UTC),
                )
            )

    def add_scores(
        self,
        candids: Sequence[int],
        scores: Sequence[float],
        *,
        model_name: str,
        model_version: str,
    ) -> int:
        """Store scores of one model version; a rescore of the same version replaces it.

        Returns the number of scores written.
        """
        if not model_name or not model_version:
            raise ParameterError(
                "model_name and model_version must be non-empty strings",
                name="model_version",
                value=(model_name, model_version),
            )
        if len(candids) != len(scores):
            raise DataError(f"{len(candids)} candids but {len(scores)} scores")
        rows = []
        for candid, score in zip(candids, scores, strict=True):
            score = float(score)
            if not math.isfinite(score):
                raise DataError(f"score of candid {candid} is not finite: {score!r}")
            rows.append(
                {
                    "candid": int(candid),
                    "model_name": model_name,
                    "model_version": model_version,
                    "score": score,
                }
            )
        table = _t(m.Score)
        with self._writer() as connection, connection.begin():
            if not rows:
                return 0
            stmt = self._insert(table)
            if hasattr(stmt, "on_conflict_do_update"):
                stmt = stmt.on_conflict_do_update(
                    index_elements=["candid", "model_name", "model_version"],
                    set_={"score": stmt.excluded.score, "created_at": stmt.excluded.created_at},
                )
            try:
                connection.execute(stmt, rows)
            except IntegrityError as exc:
                raise DataError(f"scores refer to unknown candids ({exc.orig})") from None
        return len(rows)

    def add_user(self, name: str, *, role: str = "reviewer", token_hash: str | None = None) -> int:
        """Add a user (role ``reviewer`` or ``admin``; store only a token *hash*); return its id."""
        check_choice("role", role, m.ROLES)
        if not name:
            raise ParameterError("user name must be non-empty", name="name", value=name)
        users = _t(m.User)
        with self._writer() as connection, connection.begin():
            try:
                return connection.execute(
                    insert(users).returning(users.c.id),
                    {"name": name, "role": role, "token_hash": token_hash},
                ).scalar_one()
            except IntegrityError:
                raise DataError(f"user {name!r} (or that token) already exists") from None

    def add_label(self, candid: int, user: str, value: str, *, comment: str | None = None) -> int:
        """Record a human label (``real``, ``bogus``, ``unsure``) by ``user``; return its id.

        Every label is kept; a user's newest label is their current one.
        """
        check_choice("label value", value, m.LABEL_VALUES)
        users, labels = _t(m.User), _t(m.Label)
        with self._writer() as connection, connection.begin():
            user_id = connection.scalar(select(users.c.id).where(users.c.name == user))
            if user_id is None:
                raise DataError(f"unknown user {user!r}: add it first ('skyscene users add')")
            try:
                return connection.execute(
                    insert(labels).returning(labels.c.id),
                    {"candid": int(candid), "user_id": user_id, "value": value, "comment": comment},
                ).scalar_one()
            except IntegrityError:
                raise DataError(f"unknown candid {candid}") from None

    # ------------------------------------------------------------------ reading
    def counts(self) -> dict[str, int]:
        """Rows per table (what a rerun must leave unchanged)."""
        with self.engine.connect() as connection:
            return {
                name: int(connection.scalar(select(func.count()).select_from(table)) or 0)
                for name, table in m.Base.metadata.tables.items()
            }

    def has_pair(self, pair_id: str) -> bool:
        """Whether the pair's candidates are stored (its transaction committed)."""
        pairs = _t(m.Pair)
        with self.engine.connect() as connection:
            return (
                connection.scalar(select(pairs.c.id).where(pairs.c.pair_id == pair_id)) is not None
            )

    def object_ids(self, candids: Iterable[int]) -> dict[int, str]:
        """``{candid: objectId}`` for stored candidates."""
        cand, objects = _t(m.Candidate), _t(m.Object)
        wanted = [int(c) for c in candids]
        out: dict[int, str] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = (
                    select(cand.c.candid, objects.c.object_id)
                    .join(objects, cand.c.object_key == objects.c.id)
                    .where(cand.c.candid.in_(chunk))
                )
                out.update({int(c): o for c, o in connection.execute(query)})
        return out

    def prv_candidates(
        self,
        object_id: str,
        *,
        before_jd: float | None = None,
        exclude_candid: int | None = None,
    ) -> list[dict[str, Any]]:
        """Earlier detections of an object, oldest first, as alert ``prv_candidates`` dicts.

        Parameters
        ----------
        object_id : str
        before_jd : float, optional
            Only detections with ``jd`` strictly before this (the alert's own epoch).
        exclude_candid : int, optional
            Leave this candidate out (the alert's own).
        """
        cand, objects = _t(m.Candidate), _t(m.Object)
        query = (
            select(*(cand.c[name] for name in _PRV_FIELDS))
            .join(objects, cand.c.object_key == objects.c.id)
            .where(objects.c.object_id == object_id)
            .order_by(cand.c.jd, cand.c.candid)
        )
        if before_jd is not None:
            query = query.where(cand.c.jd < before_jd)
        if exclude_candid is not None:
            query = query.where(cand.c.candid != int(exclude_candid))
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def candidates(self, *, pair_id: str | None = None, object_id: str | None = None):
        """Stored candidates as an astropy Table (features, ``pair_id``, ``objectId``)."""
        from astropy.table import Table

        cand, pairs, objects = _t(m.Candidate), _t(m.Pair), _t(m.Object)
        query = (
            select(
                cand.c.candid,
                pairs.c.pair_id,
                objects.c.object_id.label("objectId"),
                *(cand.c[name] for name in m.FEATURE_COLUMNS),
            )
            .join(pairs, cand.c.pair_key == pairs.c.id)
            .join(objects, cand.c.object_key == objects.c.id)
            .order_by(cand.c.candid)
        )
        if pair_id is not None:
            query = query.where(pairs.c.pair_id == pair_id)
        if object_id is not None:
            query = query.where(objects.c.object_id == object_id)
        with self.engine.connect() as connection:
            result = connection.execute(query)
            names = list(result.keys())
            rows = result.all()
        columns = {}
        for k, name in enumerate(names):
            values = [row[k] for row in rows]
            if m.FEATURE_COLUMNS.get(name) is Double:
                values = [np.nan if v is None else v for v in values]
            columns[name] = values
        return Table(columns, names=names) if rows else Table(names=names)

    def cutout(self, candid: int, kind: str) -> bytes | None:
        """The stored gzip-FITS stamp of a candidate (``kind``: science, reference, difference)."""
        check_choice("kind", kind, _CUTOUT_KINDS)
        table = _t(m.Cutout)
        with self.engine.connect() as connection:
            return connection.scalar(
                select(table.c.data).where(table.c.candid == int(candid), table.c.kind == kind)
            )

    def record_alert_files(self, files: Iterable[tuple[int, str | os.PathLike]]) -> int:
        """Record alert packets written (``(candid, path)``: size and SHA-256 read from the file).

        A candid already recorded gets its row replaced; returns the rows written.
        """
        import hashlib

        rows = []
        for candid, path in files:
            data = open(path, "rb").read()
            rows.append(
                {
                    "candid": int(candid),
                    "path": os.fspath(path),
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
        table = _t(m.AlertFile)
        with self._writer() as connection, connection.begin():
            if rows:
                stmt = self._insert(table)
                if hasattr(stmt, "on_conflict_do_update"):
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["candid"],
                        set_={k: stmt.excluded[k] for k in ("path", "size", "sha256")},
                    )
                connection.execute(stmt, rows)
        return len(rows)
