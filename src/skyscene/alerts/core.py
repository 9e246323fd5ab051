"""Alert packets: the :class:`Alert` result, building them, and Avro files of them.

skyscene writes a documented subset of the ZTF alert schema 4.02 (``schema/*.avsc``,
shipped with the package; see ``docs/alerts.md``): ``schemavsn``, ``publisher``,
``objectId``, ``candid``, ``candidate``, ``prv_candidates``, ``cutoutScience``,
``cutoutTemplate``, ``cutoutDifference`` (``{fileName, stampData}``, gzip FITS) and a
``skyscene`` block for the fields ZTF lacks. The reader also reads ZTF's own packets
(any schema version): it decodes with the schema each file carries.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from skyscene._validation import check_choice, check_int
from skyscene.alerts._schema import (
    CANDIDATE_FIELDS,
    FEATURE_FIELDS,
    PRV_CANDIDATE_FIELDS,
    SCHEMA_VERSION,
    parsed_schema,
)
from skyscene.alerts._stamps import decode_stamp, encode_stamp
from skyscene.errors import DataError, InputFileError, ParameterError

__all__ = [
    "CUTOUT_FIELDS",
    "Alert",
    "AlertConfig",
    "AlertFiles",
    "Stamp",
    "alerts_from_table",
    "iter_alerts",
    "make_alert",
    "read_alerts",
    "write_alert_file",
    "write_alerts",
]

CUTOUT_FIELDS = MappingProxyType(
    {"science": "cutoutScience", "reference": "cutoutTemplate", "difference": "cutoutDifference"}
)
"""skyscene's cutout names and the alert fields that hold them (ZTF calls the reference 'Template')."""

_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True, kw_only=True)
class AlertConfig:
    """How alerts are built and written.

    Parameters
    ----------
    publisher : str
        Written as ``publisher``.
    compresslevel : int
        gzip level of the FITS stamps, 0-9 (1: fastest that compresses; float noise
        barely compresses at any level).
    codec : {"null", "deflate"}
        Avro container codec. ``"null"``: the stamps are already compressed.
    overwrite : bool
        :func:`write_alerts` replaces an existing ``<candid>.avro`` (atomically) when
        True, keeps it when False.
    """

    publisher: str = "skyscene"
    compresslevel: int = 1
    codec: str = "null"
    overwrite: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.publisher, str) or not self.publisher:
            raise ParameterError(
                f"AlertConfig.publisher must be a non-empty string, got {self.publisher!r}",
                name="AlertConfig.publisher",
                value=self.publisher,
            )
        check_int("AlertConfig.compresslevel", self.compresslevel, low=0, high=9)
        check_choice("AlertConfig.codec", self.codec, ("null", "deflate"))
        check_choice("AlertConfig.overwrite", self.overwrite, (True, False))

    def to_dict(self) -> dict[str, Any]:
        return {
            "publisher": self.publisher,
            "compresslevel": self.compresslevel,
            "codec": self.codec,
            "overwrite": self.overwrite,
        }


@dataclass(frozen=True)
class Stamp:
    """One cutout as stored in a packet: ``fileName`` and gzip-FITS ``stampData``."""

    file_name: str
    data: bytes


def _readonly(array: np.ndarray | None) -> np.ndarray | None:
    if array is None:
        return None
    if array.flags.writeable:
        array = array.copy()
        array.flags.writeable = False
    return array


@dataclass(frozen=True, kw_only=True, eq=False)
class Alert:
    """One alert packet.

    Attributes
    ----------
    object_id : str
        ``objectId``: the object the candidate belongs to (``SKY26aaaaaaa``, ``ZTF18...``).
    candid : int
        Candidate ID (64-bit).
    candidate : mapping
        The ``candidate`` record exactly as decoded (every field the packet has; ``None``
        for null).
    prv_candidates : tuple of mapping
        Earlier detections (``()`` when the packet has none or null).
    science, reference, difference : numpy.ndarray or None, shape (n, n), float32
        Cutouts decoded from the stamps (read-only; NaN off the image).
    stamps : mapping
        ``{"science"|"reference"|"difference": Stamp}``: the stamps as stored.
    features : mapping or None
        The ``skyscene`` block (``None`` in ZTF packets).
    schemavsn, publisher : str
        As in the packet (ZTF's 1.x packets lack them: ``""``).
    source : str or None
        File the alert was read from.

    Two alerts are equal when every field is (cutouts compared bit for bit, NaN equal).
    """

    object_id: str
    candid: int
    candidate: Mapping[str, Any]
    prv_candidates: tuple[Mapping[str, Any], ...] = ()
    science: np.ndarray | None = None
    reference: np.ndarray | None = None
    difference: np.ndarray | None = None
    stamps: Mapping[str, Stamp] = field(default_factory=dict)
    features: Mapping[str, Any] | None = None
    schemavsn: str = SCHEMA_VERSION
    publisher: str = "skyscene"
    source: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidate", MappingProxyType(dict(self.candidate)))
        object.__setattr__(
            self, "prv_candidates", tuple(MappingProxyType(dict(p)) for p in self.prv_candidates)
        )
        object.__setattr__(self, "stamps", MappingProxyType(dict(self.stamps)))
        if self.features is not None:
            object.__setattr__(self, "features", MappingProxyType(dict(self.features)))
        for name in CUTOUT_FIELDS:
            object.__setattr__(self, name, _readonly(getattr(self, name)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Alert):
            return NotImplemented

        def same(a: Any, b: Any) -> bool:
            if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
                return True
            return a == b

        def same_map(a: Mapping | None, b: Mapping | None) -> bool:
            if a is None or b is None:
                return a is b
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)

        for name in CUTOUT_FIELDS:
            a, b = getattr(self, name), getattr(other, name)
            if (a is None) != (b is None):
                return False
            if a is not None and (a.shape != b.shape or a.tobytes() != b.tobytes()):
                return False
        return (
            self.object_id == other.object_id
            and self.candid == other.candid
            and self.schemavsn == other.schemavsn
            and self.publisher == other.publisher
            and same_map(self.candidate, other.candidate)
            and len(self.prv_candidates) == len(other.prv_candidates)
            and all(
                same_map(a, b)
                for a, b in zip(self.prv_candidates, other.prv_candidates, strict=True)
            )
            and same_map(self.features, other.features)
            and dict(self.stamps) == dict(other.stamps)
        )

    __hash__ = None  # type: ignore[assignment]

    def to_record(self) -> dict[str, Any]:
        """The packet as the dict fastavro writes (skyscene schema field names)."""
        record: dict[str, Any] = {
            "schemavsn": self.schemavsn,
            "publisher": self.publisher,
            "objectId": self.object_id,
            "candid": self.candid,
            "candidate": dict(self.candidate),
            "prv_candidates": [dict(p) for p in self.prv_candidates] or None,
            "skyscene": None if self.features is None else dict(self.features),
        }
        for name, key in CUTOUT_FIELDS.items():
            stamp = self.stamps.get(name)
            record[key] = (
                None if stamp is None else {"fileName": stamp.file_name, "stampData": stamp.data}
            )
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, source: str | None = None) -> Alert:
        """An :class:`Alert` from a decoded packet (skyscene's or ZTF's, any version)."""
        where = source or "alert record"
        for key in ("objectId", "candid", "candidate"):
            if key not in record:
                raise DataError(f"{where}: alert packet has no {key!r} field")
        stamps: dict[str, Stamp] = {}
        arrays: dict[str, np.ndarray | None] = {}
        for name, key in CUTOUT_FIELDS.items():
            cutout = record.get(key)
            if cutout is None:
                arrays[name] = None
                continue
            stamps[name] = Stamp(str(cutout["fileName"]), bytes(cutout["stampData"]))
            arrays[name] = decode_stamp(cutout["stampData"], name=f"{where}: {key}")
        return cls(
            object_id=record["objectId"],
            candid=record["candid"],
            candidate=record["candidate"],
            prv_candidates=tuple(record.get("prv_candidates") or ()),
            stamps=stamps,
            features=record.get("skyscene"),
            schemavsn=record.get("schemavsn") or "",
            publisher=record.get("publisher") or "",
            source=source,
            **arrays,
        )


def _normalise(
    fields: Mapping[str, tuple[str, bool]], values: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """Values converted to what the Avro types hold, so that a written alert reads back equal.

    float -> the nearest float32 (as a Python float); NaN -> null where the field is
    nullable; missing nullable fields -> null; missing required ones raise.
    """
    out: dict[str, Any] = {}
    for name, (kind, nullable) in fields.items():
        value = values.get(name)
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and math.isnan(value) and nullable:
            value = None
        if value is None or value is np.ma.masked:
            if not nullable:
                raise DataError(f"{where}: required field {name!r} is missing or null")
            out[name] = None
            continue
        try:
            if kind == "double":
                value = float(value)
            elif kind == "float":
                value = float(np.float32(value))
            elif kind in ("int", "long"):
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError("not an integer")
                value = int(value)
                low, high = _INT32 if kind == "int" else _INT64
                if not low <= value <= high:
                    raise ValueError(f"outside the {kind} range")
            elif kind == "string":
                if isinstance(value, bytes):
                    value = value.decode()
                if name == "isdiffpos" and not isinstance(value, str):
                    value = "t" if value else "f"
                value = str(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise DataError(
                f"{where}: field {name!r} = {value!r} is not a valid {kind} ({exc})"
            ) from None
        if name == "isdiffpos" and value not in ("t", "f"):
            raise DataError(f"{where}: field 'isdiffpos' must be 't' or 'f', got {value!r}")
        out[name] = value
    return out


def _stamp(
    name: str,
    value: Any,
    candid: int,
    header: Any,
    variance: Any,
    config: AlertConfig,
    decode: bool = True,
) -> tuple[Stamp, np.ndarray | None]:
    file_name = f"candid{candid}_{name}.fits.gz"
    if isinstance(value, Stamp):
        if not decode:
            return value, None
        return value, decode_stamp(value.data, name=f"candid {candid}: {name}")
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        if not decode:
            return Stamp(file_name, data), None
        return Stamp(file_name, data), decode_stamp(data, name=f"candid {candid}: {name}")
    array = np.asarray(value, dtype=np.float32)
    data = encode_stamp(array, header=header, variance=variance, compresslevel=config.compresslevel)
    return Stamp(file_name, data), array


def make_alert(
    candidate: Mapping[str, Any],
    *,
    object_id: str,
    science: Any = None,
    reference: Any = None,
    difference: Any = None,
    headers: Mapping[str, Mapping[str, Any]] | None = None,
    variances: Mapping[str, Any] | None = None,
    prv_candidates: Iterable[Mapping[str, Any]] = (),
    features: Mapping[str, Any] | None = None,
    config: AlertConfig | None = None,
    decode: bool = True,
) -> Alert:
    """Build an alert in skyscene's schema from one candidate's values.

    Parameters
    ----------
    candidate : mapping
        The candidate's values by ZTF name (a row of a candidate table). Fields of the
        shipped ``candidate`` record are taken (missing nullable ones become null; NaN in
        a nullable field becomes null); other keys are ignored, except the ``skyscene``
        block's (``sharpness``, ``roundness``, ``dipole``, ``flags``, ``pair_id``,
        ``band``), which are taken when ``features`` is not given.
    object_id : str
        ``objectId`` (from :meth:`skyscene.store.CandidateStore.object_ids`).
    science, reference, difference : array_like (n, n), bytes or Stamp, optional
        Cutouts: arrays are encoded as gzip FITS; bytes are taken as gzip-FITS stamps.
    headers, variances : mapping, optional
        Per cutout name, extra FITS cards (WCS, ``BUNIT``) and a variance plane.
    prv_candidates : iterable of mapping
        Earlier detections (e.g. :meth:`skyscene.store.CandidateStore.prv_candidates`).
    features : mapping, optional
        The ``skyscene`` block.
    config : AlertConfig, optional
    decode : bool
        Decode cutouts given as gzip-FITS bytes (or :class:`Stamp`) into the alert's
        arrays (default). False keeps them as stamps only (``science`` etc. None): the
        packet written is the same, without three decodes per alert (the pipeline's
        way of writing ready stamps); read it back to get the arrays.

    Returns
    -------
    Alert
        Values converted to what Avro stores (float fields rounded to float32), so that
        writing and reading it back gives an equal :class:`Alert` (with ``decode=True``).
    """
    config = config or AlertConfig()
    if not isinstance(object_id, str) or not object_id:
        raise ParameterError(
            f"object_id must be a non-empty string, got {object_id!r}",
            name="object_id",
            value=object_id,
        )
    cand = _normalise(CANDIDATE_FIELDS, candidate, "candidate")
    candid = cand["candid"]
    where = f"candid {candid}"
    prv = tuple(
        _normalise(PRV_CANDIDATE_FIELDS, p, f"{where}: prv_candidate") for p in prv_candidates
    )
    source = features if features is not None else candidate
    block = _normalise(FEATURE_FIELDS, {"flags": 0, **dict(source)}, f"{where}: skyscene block")
    if block.get("software") is None:
        from skyscene import __version__

        block["software"] = f"skyscene {__version__}"
    headers = headers or {}
    variances = variances or {}
    stamps: dict[str, Stamp] = {}
    arrays: dict[str, Any] = {}
    for name, value in (("science", science), ("reference", reference), ("difference", difference)):
        if value is None:
            arrays[name] = None
            continue
        stamps[name], arrays[name] = _stamp(
            name, value, candid, headers.get(name), variances.get(name), config, decode
        )
    return Alert(
        object_id=object_id,
        candid=candid,
        candidate=cand,
        prv_candidates=prv,
        stamps=stamps,
        features=block,
        schemavsn=SCHEMA_VERSION,
        publisher=config.publisher,
        **arrays,
    )


def _columns(table: Any) -> tuple[int, dict[str, list]]:
    """Column lists of an astropy Table, a result with ``to_table()`` or a dict of columns."""
    if hasattr(table, "to_table"):
        table = table.to_table()
    names = list(table.colnames) if hasattr(table, "colnames") else list(table.keys())
    columns: dict[str, list] = {}
    for name in names:
        column = table[name]
        if getattr(column, "ndim", 1) != 1:
            continue
        if np.ma.isMaskedArray(column) or getattr(column, "mask", None) is not None:
            filled = np.ma.asarray(column)
            values = [
                None if m else v
                for v, m in zip(filled.data.tolist(), np.ma.getmaskarray(filled), strict=True)
            ]
        else:
            values = np.asarray(column).tolist()
        columns[name] = values
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise DataError(f"candidate table columns have different lengths: {sorted(lengths)}")
    return (lengths.pop() if lengths else 0), columns


def alerts_from_table(
    table: Any,
    *,
    object_ids: Sequence[str] | Mapping[int, str],
    cutouts: Mapping[str, Any] | None = None,
    variances: Mapping[str, Any] | None = None,
    headers: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    prv_candidates: Mapping[int, Iterable[Mapping[str, Any]]] | None = None,
    config: AlertConfig | None = None,
    decode: bool = True,
) -> list[Alert]:
    """One alert per row of a candidate table.

    Parameters
    ----------
    table : CandidateTable, astropy Table or mapping of columns
        ZTF-named columns (``candid``, ``jd``, ``fid``, ``ra``, ``dec``, ...).
    object_ids : sequence of str (one per row) or mapping candid -> objectId
    cutouts : mapping, optional
        ``{"science"|"reference"|"difference": array (N, n, n) or sequence of stamp bytes}``.
    variances : mapping, optional
        Variance cubes (N, n, n) per cutout name, written into the stamps.
    headers : mapping, optional
        Per cutout name, one mapping of FITS cards per row.
    prv_candidates : mapping candid -> iterable of mapping, optional
    config : AlertConfig, optional
    decode : bool
        See :func:`make_alert` (False: stamp bytes are not decoded into arrays).
    """
    n, columns = _columns(table)
    if "candid" not in columns:
        raise DataError("candidate table has no 'candid' column")
    cutouts = cutouts or {}
    variances = variances or {}
    headers = headers or {}
    for name, value in {**cutouts, **variances}.items():
        check_choice("cutouts", name, CUTOUT_FIELDS)
        if len(value) != n:
            raise DataError(f"cutouts[{name!r}] has {len(value)} entries for {n} candidates")
    if not isinstance(object_ids, Mapping) and len(object_ids) != n:
        raise DataError(f"object_ids has {len(object_ids)} entries for {n} candidates")
    out = []
    names = list(columns)
    for i in range(n):
        row = {name: columns[name][i] for name in names}
        candid = int(row["candid"])
        oid = object_ids[candid] if isinstance(object_ids, Mapping) else object_ids[i]
        out.append(
            make_alert(
                row,
                object_id=oid,
                headers={k: v[i] for k, v in headers.items()},
                variances={k: v[i] for k, v in variances.items()},
                prv_candidates=(prv_candidates or {}).get(candid, ()),
                config=config,
                decode=decode,
                **{k: v[i] for k, v in cutouts.items()},
            )
        )
    return out


@dataclass(frozen=True)
class AlertFiles:
    """What :func:`write_alerts` did: ``paths`` written, ``skipped`` (kept, ``overwrite=False``)."""

    paths: tuple[Path, ...]
    skipped: tuple[Path, ...] = ()


def _write(fh: Any, alerts: Iterable[Alert], config: AlertConfig) -> None:
    import fastavro

    fastavro.writer(fh, parsed_schema(), (a.to_record() for a in alerts), codec=config.codec)


def _zigzag(value: int) -> bytes:
    """Avro's variable-length zig-zag encoding of a long."""
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SYNC = os.urandom(16)


@functools.cache
def _container_header() -> bytes:
    """The Avro container header (schema JSON, codec null, sync marker), made once."""
    import fastavro

    buffer = io.BytesIO()
    fastavro.writer(buffer, parsed_schema(), [], codec="null", sync_marker=_SYNC)
    header = buffer.getvalue()
    if not header.endswith(_SYNC):  # pragma: no cover - fastavro's layout changed
        raise RuntimeError("unexpected Avro container header layout")
    return header


def _packet_parts(alert: Alert) -> list:
    """One-record Avro container as buffers to write one after the other, framed here so
    the schema is serialised only once (and the ~100 kB of stamps are not copied again)."""
    import fastavro

    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed_schema(), alert.to_record())
    data = buffer.getbuffer()
    return [_container_header(), _zigzag(1) + _zigzag(len(data)), data, _SYNC]


_counter = itertools.count()


def _write_bytes_atomic(path: Path, parts: list) -> None:
    """``path`` appears complete or not at all (hidden temporary beside it, then rename);
    a new file gets the permissions of any new file (0666 less the umask)."""
    target = os.fspath(path)
    tmp = os.path.join(
        os.path.dirname(target), f".{os.path.basename(target)}.{os.getpid()}-{next(_counter)}.tmp"
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    done = False
    try:
        total = sum(len(p) for p in parts)
        written = os.writev(fd, parts)
        if written < total:  # a short write: the rest the plain way
            view = memoryview(b"".join(parts))[written:]
            while view:
                view = view[os.write(fd, view) :]
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
        done = True
    finally:
        if fd >= 0:
            os.close(fd)
        if not done:
            os.unlink(tmp)


def write_alert_file(
    alerts: Iterable[Alert], path: str | os.PathLike, *, config: AlertConfig | None = None
) -> Path:
    """Write alerts as the records of one Avro container file, atomically."""
    from skyscene.io._atomic import atomic_path

    config = config or AlertConfig()
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        _write(fh, alerts, config)
    return path


def write_alerts(
    alerts: Iterable[Alert], directory: str | os.PathLike, *, config: AlertConfig | None = None
) -> AlertFiles:
    """Write each alert to ``directory/<candid>.avro`` (one packet per file, as ZTF), atomically.

    A killed run leaves no truncated packet (each file appears complete or not at all);
    a rerun rewrites (``overwrite=True``) or keeps (``overwrite=False``) existing files,
    so it never duplicates one.
    """
    from skyscene.io._atomic import atomic_path

    config = config or AlertConfig()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    for alert in alerts:
        path = directory / f"{alert.candid}.avro"
        if not config.overwrite and path.exists():
            skipped.append(path)
            continue
        if config.codec == "null":
            _write_bytes_atomic(path, _packet_parts(alert))
        else:
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                _write(fh, (alert,), config)
        written.append(path)
    return AlertFiles(tuple(written), tuple(skipped))


def _files(source: Any) -> list[Path]:
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            return sorted(path.glob("*.avro"))
        if not path.exists():
            raise InputFileError(f"alert file {path} does not exist")
        return [path]
    out: list[Path] = []
    for item in source:
        out.extend(_files(item))
    return out


def iter_alerts(source: Any) -> Iterator[Alert]:
    """Alerts from an ``.avro`` file (any number of packets), a folder of them, or a list.

    Reads skyscene's packets and ZTF's (schema 1.x-4.x): each file is decoded with the
    schema it carries.
    """
    import fastavro

    for path in _files(source):
        try:
            with open(path, "rb") as fh:
                for record in fastavro.reader(fh):
                    yield Alert.from_record(record, source=str(path))  # type: ignore[arg-type]
        except (ValueError, EOFError, StopIteration) as exc:
            if isinstance(exc, DataError):
                raise
            raise InputFileError(f"alert file {path}: not a readable Avro file ({exc})") from None


def read_alerts(source: Any) -> list[Alert]:
    """All alerts of :func:`iter_alerts` as a list."""
    return list(iter_alerts(source))
