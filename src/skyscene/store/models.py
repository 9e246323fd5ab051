"""SQLAlchemy 2 models of the candidate database (the schema that the Alembic migrations build).

Tables: ``runs``, ``images``, ``pairs``, ``objects``, ``candidates`` (every feature a
column, ZTF names), ``cutouts``, ``alert_files``, ``scores`` (model name and version on
every score), ``users`` (API-token ready: name, role, token hash), ``labels`` (user,
time, value, comment) and ``models`` (real/bogus model versions: parent, data hash,
metrics, who trained it, the checkpoint, which one is served). A change here needs a new migration in ``migrations/versions``;
``tests/store`` checks that the migrations and these models agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "FEATURE_COLUMNS",
    "LABEL_VALUES",
    "ROLES",
    "AlertFile",
    "Base",
    "Candidate",
    "Cutout",
    "Image",
    "Label",
    "Model",
    "Object",
    "Pair",
    "Run",
    "Score",
    "User",
]

LABEL_VALUES = ("real", "bogus", "unsure")
ROLES = ("reviewer", "admin")

# Names of constraints and indexes, so that migrations can refer to them on every backend.
_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Run(Base):
    """One pipeline run: command, effective config, software version, status, summary."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(32), default="running")
    command: Mapped[str | None] = mapped_column(Text)
    software: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Image(Base):
    """A science or reference image, by path."""

    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    band: Mapped[str | None] = mapped_column(String(32))
    jd: Mapped[float | None] = mapped_column(Double)
    exptime: Mapped[float | None] = mapped_column(Double)
    magzp: Mapped[float | None] = mapped_column(Double)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Pair(Base):
    """A science/reference pair whose candidates were ingested (one transaction)."""

    __tablename__ = "pairs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[str] = mapped_column(String(255), unique=True)
    science_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    reference_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    jd: Mapped[float | None] = mapped_column(Double)
    fid: Mapped[int | None] = mapped_column(Integer)
    band: Mapped[str | None] = mapped_column(String(32))
    n_candidates: Mapped[int] = mapped_column(Integer, default=0)
    ingested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Object(Base):
    """Candidates of several epochs associated by position (``object_id``: ``SKY26aaaaaab``)."""

    __tablename__ = "objects"
    __table_args__ = (Index(None, "dec", "ra"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    ra: Mapped[float] = mapped_column(Double)
    dec: Mapped[float] = mapped_column(Double)
    n_detections: Mapped[int] = mapped_column(Integer, default=0)
    first_jd: Mapped[float | None] = mapped_column(Double)
    last_jd: Mapped[float | None] = mapped_column(Double)


FEATURE_COLUMNS: dict[str, Any] = {
    # ZTF 4.02 ``candidate`` names (types: long -> BigInteger, int -> Integer, float/double -> Double)
    "jd": Double,
    "fid": Integer,
    "isdiffpos": String(1),
    "ra": Double,
    "dec": Double,
    "xpos": Double,
    "ypos": Double,
    "scorr": Double,
    "magpsf": Double,
    "sigmapsf": Double,
    "magap": Double,
    "sigmagap": Double,
    "diffmaglim": Double,
    "magzpsci": Double,
    "exptime": Double,
    "fwhm": Double,
    "aimage": Double,
    "bimage": Double,
    "elong": Double,
    "nneg": Integer,
    "nbad": Integer,
    "sumrat": Double,
    "magdiff": Double,
    "mindtoedge": Double,
    "distnr": Double,
    "magnr": Double,
    "sigmagnr": Double,
    # skyscene's own
    "sharpness": Double,
    "roundness": Double,
    "dipole": Double,
    "flags": BigInteger,
}
"""Candidate feature columns and their SQL types (the candidate table's columns by name)."""

_REQUIRED = {"jd", "fid", "isdiffpos", "ra", "dec"}


_candidates = Table(
    "candidates",
    Base.metadata,
    Column("candid", BigInteger, primary_key=True, autoincrement=False),
    Column("pair_key", ForeignKey("pairs.id"), nullable=False, index=True),
    Column("object_key", ForeignKey("objects.id"), index=True),
    *(Column(name, kind, nullable=name not in _REQUIRED) for name, kind in FEATURE_COLUMNS.items()),
    Column("created_at", DateTime(timezone=True), default=_now),
    Index(None, "dec", "ra"),
    CheckConstraint("isdiffpos IN ('t', 'f')", name="isdiffpos"),
)


class Candidate(Base):
    """One candidate: ``candid`` (the 64-bit ZTF-style ID) is the primary key.

    Columns: ``pair_key`` (pairs.id), ``object_key`` (objects.id), every name of
    :data:`FEATURE_COLUMNS`, ``created_at``.
    """

    __table__ = _candidates


class Cutout(Base):
    """A cutout of a candidate as gzip-FITS bytes (``kind``: science, reference, difference)."""

    __tablename__ = "cutouts"
    __table_args__ = (
        UniqueConstraint("candid", "kind"),
        CheckConstraint("kind IN ('science', 'reference', 'difference')", name="kind"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candid: Mapped[int] = mapped_column(ForeignKey("candidates.candid"))
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(16), default="fits.gz")
    data: Mapped[bytes] = mapped_column(LargeBinary)


class AlertFile(Base):
    """An alert packet written for a candidate (path, size, SHA-256)."""

    __tablename__ = "alert_files"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candid: Mapped[int] = mapped_column(ForeignKey("candidates.candid"), unique=True)
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    written_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Score(Base):
    """A model's score of a candidate; ``model_name`` and ``model_version`` on every row."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("candid", "model_name", "model_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candid: Mapped[int] = mapped_column(ForeignKey("candidates.candid"), index=True)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Double)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    # revision 0002: the std of the 8 flip/rotation predictions, and the active-learning
    # priority of the candidate under this model (higher = review first)
    spread: Mapped[float | None] = mapped_column(Double)
    priority: Mapped[float | None] = mapped_column(Double, index=True)


class User(Base):
    """A person or service with an API token (only its hash is stored)."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('reviewer', 'admin')", name="role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="reviewer")
    token_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Label(Base):
    """A human label; every label is kept (a user's newest is their current one)."""

    __tablename__ = "labels"
    __table_args__ = (
        Index(None, "candid", "user_id", "created_at"),
        CheckConstraint("value IN ('real', 'bogus', 'unsure')", name="value"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candid: Mapped[int] = mapped_column(ForeignKey("candidates.candid"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    value: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=_now, server_default=func.now()
    )


class Model(Base):
    """A real/bogus model version; at most one per ``name`` is served (``served`` true).

    ``checkpoint`` holds the checkpoint file's bytes so that a database alone can serve
    and promote; ``reference_scores`` is the validation score distribution that drift
    monitoring compares nights against; ``parent_version`` links a retrained model to
    the one it was fine-tuned from.
    """

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64), index=True)
    arch: Mapped[str | None] = mapped_column(String(32))
    parent_version: Mapped[str | None] = mapped_column(String(64))
    data_hash: Mapped[str | None] = mapped_column(String(64))
    threshold: Mapped[float | None] = mapped_column(Double)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reference_scores: Mapped[list[float] | None] = mapped_column(JSON)
    trained_by: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str | None] = mapped_column(String(1024))
    checkpoint: Mapped[bytes | None] = mapped_column(LargeBinary)
    served: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    promoted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
