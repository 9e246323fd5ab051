"""The candidate database: ingestion (idempotent, one transaction per pair), association of
candidates into objects by position, and the queries that alerts and the review service use.
"""

from __future__ import annotations

import datetime as dt
import itertools
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
_SCORE_NAMES = (
    "candid",
    "model_name",
    "model_version",
    "score",
    "spread",
    "priority",
    "created_at",
)
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


def format_object_id(number: int, year: int, prefix: str = "SKY") -> str:
    """``objectId`` of the ``number``-th object (1-based): prefix, 2-digit year, 7 letters.

    >>> format_object_id(1, 2026), format_object_id(27, 2026)
    ('SKY26aaaaaaa', 'SKY26aaaaaba')
    """
    return _object_ids(np.array([number], dtype=np.int64), [year], prefix)[0]


@dataclass(frozen=True)
class _Association:
    """What :meth:`CandidateStore._associate` decided: each row's ``objects.id``."""

    object_key: np.ndarray
    n_new: int
    n_matched: int


_PLACES = 26 ** np.arange(6, -1, -1, dtype=np.int64)


def _object_ids(numbers: np.ndarray, years: Sequence[int], prefix: str) -> list[str]:
    """:func:`format_object_id` of many objects at once."""
    n = numbers - 1
    bad = (n < 0) | (n >= 26**7)
    if bad.any():
        raise DataError(f"object number {int(numbers[bad][0])} is outside 1..26**7")
    codes = ((n[:, None] // _PLACES) % 26 + ord("a")).astype(np.uint8)
    words = codes.view("S7").ravel().tolist()
    return [
        f"{prefix}{year % 100:02d}{word.decode()}" for year, word in zip(years, words, strict=True)
    ]


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


def _sql_values(values: list, double: bool) -> list:
    """A column as the driver takes it: Python values, non-finite floats as None (NULL)."""
    if double:
        try:
            array = np.array(values, dtype=float)  # None -> NaN
        except (TypeError, ValueError):
            array = None
        if array is not None and array.shape == (len(values),):
            out = array.tolist()
            for i in np.flatnonzero(~np.isfinite(array)).tolist():
                out[i] = None
            return out
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in values]


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

    def _bulk_insert(
        self, connection, table: str, names: Sequence[str], rows: Iterable[tuple]
    ) -> None:
        """executemany through the driver: SQLAlchemy's per-row parameter processing is
        most of the time of an ingest otherwise. ``rows`` are tuples (in ``names`` order)
        of plain Python numbers, strings, bytes, None and datetimes, which every driver
        takes as they are."""
        self._executemany(connection, f"INSERT INTO {table} ({{}}) VALUES ({{}})", names, rows)

    def _executemany(self, connection, template: str, names: Sequence[str], rows) -> None:
        quote = connection.dialect.identifier_preparer.quote
        mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        columns = ", ".join(quote(name) for name in names)
        if template.startswith("UPDATE"):
            *values, key = names
            sql = template.format(
                ", ".join(f"{quote(v)} = {mark}" for v in values), f"{quote(key)} = {mark}"
            )
        else:
            sql = template.format(columns, ", ".join([mark] * len(names)))
        rows = rows if isinstance(rows, list) else list(rows)
        if rows:
            connection.exec_driver_sql(sql, rows)

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
        scores: Mapping[str, Any] | None = None,
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
        scores : mapping, optional
            Real/bogus scores of the candidates, written to ``scores`` in the same
            transaction: ``{"model_name": str, "model_version": str, "score": sequence
            (one per row)}`` and optional ``"spread"``, ``"priority"`` sequences (as
            :meth:`add_scores`). Written only with the pair (``inserted=True``); for a pair
            already stored use :meth:`add_scores`.

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
        lists = self._candidate_columns(pair, n, columns)
        blobs = self._cutout_rows(lists["candid"], cutouts or {}, n)
        score_rows = [] if scores is None else self._score_rows(lists["candid"], scores)
        with self._writer() as connection, connection.begin():
            if self._dialect == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_INGEST_LOCK})")
            pairs = _t(m.Pair)
            if connection.scalar(select(pairs.c.id).where(pairs.c.pair_id == pair.pair_id)):
                return IngestResult(pair.pair_id, False)
            cand = _t(m.Candidate)
            wanted = lists["candid"]
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
            association = self._associate(connection, lists)
            if n:
                now: Any = dt.datetime.now(dt.UTC)
                if self._dialect == "sqlite":  # SQLAlchemy's SQLite DATETIME text form
                    now = now.strftime("%Y-%m-%d %H:%M:%S.%f")
                names = [*lists, "pair_key", "object_key", "created_at"]
                rows = zip(
                    *lists.values(),
                    itertools.repeat(pair_key),
                    association.object_key.tolist(),
                    itertools.repeat(now),
                )
                self._bulk_insert(connection, "candidates", names, rows)
            if blobs:
                self._bulk_insert(
                    connection, "cutouts", ("candid", "kind", "format", "data"), blobs
                )
            if score_rows:
                self._bulk_insert(connection, "scores", _SCORE_NAMES, score_rows)
        log.debug("pair %s: %d candidates, %d new objects", pair.pair_id, n, association.n_new)
        return IngestResult(
            pair.pair_id, True, n, association.n_new, association.n_matched, len(blobs)
        )

    def _candidate_columns(
        self, pair: PairRecord, n: int, columns: dict[str, list]
    ) -> dict[str, list]:
        """The candidate table's columns (``candid`` and every feature) as the driver takes
        them, checked."""
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
        lists: dict[str, list] = {"candid": list(columns.get("candid", []))}
        for name, kind in m.FEATURE_COLUMNS.items():
            if name in columns:
                lists[name] = _sql_values(columns[name], kind is Double)
            else:
                lists[name] = [defaults.get(name)] * n
        flags = lists["isdiffpos"] = list(lists["isdiffpos"])
        if not set(flags) <= {"t", "f"}:
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
            values = lists[name]
            if name == "candid":
                values = [
                    None if isinstance(v, float) and not math.isfinite(v) else v for v in values
                ]
            if None in values:
                raise DataError(
                    f"{where}: row {values.index(None)}: {name!r} is null or not finite"
                )
        lists["candid"] = [int(c) for c in lists["candid"]]
        if len(set(lists["candid"])) != n:
            raise DataError(f"{where}: the candidate table repeats a candid")
        return lists

    def _score_rows(self, candids: list[int], scores: Mapping[str, Any]) -> list[tuple]:
        """Rows of ``scores`` (in :data:`_SCORE_NAMES` order) for :meth:`ingest_pair`, checked."""
        if not isinstance(scores, Mapping):
            raise ParameterError(
                f"scores must be a mapping (model_name, model_version, score), got "
                f"{type(scores).__name__}",
                name="scores",
            )
        name, version = scores.get("model_name"), scores.get("model_version")
        if not (isinstance(name, str) and name and isinstance(version, str) and version):
            raise ParameterError(
                "scores: model_name and model_version must be non-empty strings",
                name="scores",
                value=(name, version),
            )
        n = len(candids)
        columns = {}
        for key in ("score", "spread", "priority"):
            values = scores.get(key)
            if values is None:
                if key == "score":
                    raise DataError("scores: no 'score' values")
                columns[key] = [None] * n
                continue
            values = np.asarray(values, dtype=float).ravel()
            if values.size != n:
                raise DataError(f"scores[{key!r}] has {values.size} entries for {n} candidates")
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise DataError(
                    f"{key} of candid {candids[int(bad[0])]} is not finite: {values[bad[0]]!r}"
                )
            columns[key] = values.tolist()
        now: Any = dt.datetime.now(dt.UTC)
        if self._dialect == "sqlite":  # SQLAlchemy's SQLite DATETIME text form
            now = now.strftime("%Y-%m-%d %H:%M:%S.%f")
        return list(
            zip(
                candids,
                itertools.repeat(name),
                itertools.repeat(version),
                columns["score"],
                columns["spread"],
                columns["priority"],
                itertools.repeat(now),
                strict=False,
            )
        )

    def _cutout_rows(self, candids: list[int], cutouts: Mapping[str, Any], n: int) -> list[tuple]:
        blobs = []
        for kind, values in cutouts.items():
            check_choice("cutouts", kind, _CUTOUT_KINDS)
            if len(values) != n:
                raise DataError(f"cutouts[{kind!r}] has {len(values)} entries for {n} candidates")
            for candid, value in zip(candids, values, strict=True):
                if not isinstance(value, bytes | bytearray | memoryview):
                    from skyscene.alerts import encode_stamp

                    value = encode_stamp(np.asarray(value))
                blobs.append((candid, kind, "fits.gz", bytes(value)))
        return blobs

    def _associate(self, connection, lists: Mapping[str, list]) -> _Association:
        """Each candidate's object (``objects.id``): the nearest object within the radius,
        else a new one (shared by unmatched candidates within the radius of each other)."""
        n = len(lists["candid"])
        if not n:
            return _Association(np.zeros(0, np.int64), 0, 0)
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components
        from scipy.spatial import cKDTree

        objects = _t(m.Object)
        radius = self.config.match_radius_arcsec / 3600.0
        chord = 2 * math.sin(math.radians(radius) / 2)
        ra = np.array(lists["ra"], dtype=float)
        dec = np.array(lists["dec"], dtype=float)
        jd = np.array(lists["jd"], dtype=float)
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
        if max_abs_dec < 89.0 and ra.max() - ra.min() < 180.0:
            pad = radius / math.cos(math.radians(max_abs_dec))
            query = query.where(objects.c.ra.between(ra.min() - pad, ra.max() + pad))
        existing = connection.execute(query).all()
        key = np.full(n, -1, dtype=np.int64)
        if existing:
            state = np.array(
                [
                    (*e[:4], np.inf if e[4] is None else e[4], -np.inf if e[5] is None else e[5])
                    for e in existing
                ],
                dtype=float,
            )
            tree = cKDTree(_unit_vectors(state[:, 1], state[:, 2]))
            distance, index = tree.query(vectors, distance_upper_bound=chord)
            hit = np.isfinite(distance)
            key[hit] = index[hit]
        object_key = np.zeros(n, dtype=np.int64)
        # Unmatched candidates within the radius of each other share a new object.
        unmatched = np.flatnonzero(key < 0)
        n_groups = 0
        if unmatched.size:
            links = cKDTree(vectors[unmatched]).query_pairs(chord, output_type="ndarray")
            graph = coo_matrix(
                (np.ones(len(links)), (links[:, 0], links[:, 1])),
                shape=(unmatched.size, unmatched.size),
            )
            n_groups, group = connected_components(graph, directed=False)
            sums = np.zeros((n_groups, 3))
            np.add.at(sums, group, vectors[unmatched])
            first = np.full(n_groups, np.inf)
            last = np.full(n_groups, -np.inf)
            np.minimum.at(first, group, jd[unmatched])
            np.maximum.at(last, group, jd[unmatched])
            lon, lat = _radec(sums)
            # Ids given here, under the write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: the
            # advisory lock), so the objectId is written with the row.
            start = int(connection.scalar(select(func.coalesce(func.max(objects.c.id), 0))))
            numbers = start + 1 + np.arange(n_groups, dtype=np.int64)
            years = {value: _year(value) for value in set(first.tolist())}
            self._bulk_insert(
                connection,
                "objects",
                ("id", "object_id", "ra", "dec", "n_detections", "first_jd", "last_jd"),
                zip(
                    numbers.tolist(),
                    _object_ids(
                        numbers, [years[v] for v in first.tolist()], self.config.object_prefix
                    ),
                    lon.tolist(),
                    lat.tolist(),
                    np.bincount(group, minlength=n_groups).tolist(),
                    first.tolist(),
                    last.tolist(),
                    strict=True,
                ),
            )
            if self._dialect == "postgresql":
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('objects', 'id'), {start + n_groups})"
                )
            object_key[unmatched] = numbers[group]
        matched = np.flatnonzero(key >= 0)
        if matched.size:
            targets, inverse = np.unique(key[matched], return_inverse=True)
            old = state[targets]
            n_old = old[:, 3]
            sums = _unit_vectors(old[:, 1], old[:, 2]) * n_old[:, None]
            np.add.at(sums, inverse, vectors[matched])
            first, last = old[:, 4].copy(), old[:, 5].copy()
            np.minimum.at(first, inverse, jd[matched])
            np.maximum.at(last, inverse, jd[matched])
            lon, lat = _radec(sums)
            ids = old[:, 0].astype(np.int64)
            added = np.bincount(inverse, minlength=len(targets))
            self._executemany(
                connection,
                "UPDATE objects SET {} WHERE {}",
                ("ra", "dec", "n_detections", "first_jd", "last_jd", "id"),
                zip(
                    lon.tolist(),
                    lat.tolist(),
                    (n_old.astype(np.int64) + added).tolist(),
                    first.tolist(),
                    last.tolist(),
                    ids.tolist(),
                    strict=True,
                ),
            )
            object_key[matched] = ids[inverse]
        return _Association(object_key, n_groups, int(matched.size))

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
        spreads: Sequence[float] | None = None,
        priorities: Sequence[float] | None = None,
    ) -> int:
        """Store scores of one model version; a rescore of the same version replaces it.

        ``spreads`` (std of the 8 flip/rotation predictions) and ``priorities`` (the
        active-learning priority, higher = review first) are optional, one per score.
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
        extras = {"spread": spreads, "priority": priorities}
        for key, values in extras.items():
            if values is not None and len(values) != len(scores):
                raise DataError(f"{len(scores)} scores but {len(values)} {key} values")
        rows = []
        for i, (candid, score) in enumerate(zip(candids, scores, strict=True)):
            score = float(score)
            if not math.isfinite(score):
                raise DataError(f"score of candid {candid} is not finite: {score!r}")
            row = {
                "candid": int(candid),
                "model_name": model_name,
                "model_version": model_version,
                "score": score,
            }
            for key, values in extras.items():
                value = None if values is None else float(values[i])
                if value is not None and not math.isfinite(value):
                    raise DataError(f"{key} of candid {candid} is not finite: {value!r}")
                row[key] = value
            rows.append(row)
        table = _t(m.Score)
        with self._writer() as connection, connection.begin():
            if not rows:
                return 0
            stmt = self._insert(table)
            if hasattr(stmt, "on_conflict_do_update"):
                stmt = stmt.on_conflict_do_update(
                    index_elements=["candid", "model_name", "model_version"],
                    set_={
                        "score": stmt.excluded.score,
                        "spread": stmt.excluded.spread,
                        "priority": stmt.excluded.priority,
                        "created_at": stmt.excluded.created_at,
                    },
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
        model_version: str | None = None,
    ) -> list[dict[str, Any]]:
        """Earlier detections of an object, oldest first, as alert ``prv_candidates`` dicts.

        Parameters
        ----------
        object_id : str
        before_jd : float, optional
            Only detections with ``jd`` strictly before this (the alert's own epoch).
        exclude_candid : int, optional
            Leave this candidate out (the alert's own).
        model_version : str, optional
            Fill ``drb``/``drbversion`` from this model version's stored scores (null
            where that version did not score the detection).
        """
        cand, objects = _t(m.Candidate), _t(m.Object)
        columns: list[Any] = [cand.c[name] for name in _PRV_FIELDS]
        if model_version is not None:
            scores = _t(m.Score)
            columns += [scores.c.score.label("drb"), scores.c.model_version.label("drbversion")]
        query = (
            select(*columns)
            .join(objects, cand.c.object_key == objects.c.id)
            .where(objects.c.object_id == object_id)
            .order_by(cand.c.jd, cand.c.candid)
        )
        if model_version is not None:
            query = query.outerjoin(
                scores,
                (scores.c.candid == cand.c.candid) & (scores.c.model_version == model_version),
            )
        if before_jd is not None:
            query = query.where(cand.c.jd < before_jd)
        if exclude_candid is not None:
            query = query.where(cand.c.candid != int(exclude_candid))
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def prv_candidates_many(
        self,
        wanted: Mapping[int, tuple[str, float]],
        *,
        model_version: str | None = None,
    ) -> dict[int, list[dict[str, Any]]]:
        """:meth:`prv_candidates` of many alerts at once (one query per 500 objects).

        ``wanted`` maps each alert's ``candid`` to ``(object_id, jd)``; the result maps it
        to the object's detections before ``jd`` other than itself, oldest first, exactly
        as ``prv_candidates(object_id, before_jd=jd, exclude_candid=candid,
        model_version=model_version)`` gives them.
        """
        cand, objects = _t(m.Candidate), _t(m.Object)
        columns: list[Any] = [objects.c.object_id.label("__object_id")]
        columns += [cand.c[name] for name in _PRV_FIELDS]
        if model_version is not None:
            scores = _t(m.Score)
            columns += [scores.c.score.label("drb"), scores.c.model_version.label("drbversion")]
        by_object: dict[str, list[dict[str, Any]]] = {}
        names = sorted({oid for oid, _ in wanted.values()})
        latest = max((float(jd) for _, jd in wanted.values()), default=0.0)
        with self.engine.connect() as connection:
            for start in range(0, len(names), 500):
                chunk = names[start : start + 500]
                query = (
                    select(*columns)
                    .join(objects, cand.c.object_key == objects.c.id)
                    .where(objects.c.object_id.in_(chunk), cand.c.jd < latest)
                    .order_by(cand.c.jd, cand.c.candid)
                )
                if model_version is not None:
                    query = query.outerjoin(
                        scores,
                        (scores.c.candid == cand.c.candid)
                        & (scores.c.model_version == model_version),
                    )
                for row in connection.execute(query):
                    record = dict(row._mapping)
                    by_object.setdefault(record.pop("__object_id"), []).append(record)
        out: dict[int, list[dict[str, Any]]] = {}
        for candid, (oid, jd) in wanted.items():
            jd = float(jd)
            out[int(candid)] = [
                r for r in by_object.get(oid, ()) if r["jd"] < jd and r["candid"] != int(candid)
            ]
        return out

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
