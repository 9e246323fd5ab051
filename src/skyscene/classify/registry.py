"""Real/bogus model versions in the candidate database (the ``models`` table).

A registered model is a row of ``models`` holding the checkpoint's bytes, so that a
database alone can serve, promote and roll back: :func:`register_model` stores a
checkpoint written by :func:`skyscene.classify.io.save_model` (name, version, arch,
threshold and data hash read from the checkpoint), :func:`promote_model` makes one
version the served one of its name (at most one per name), :func:`served_model` and
:func:`list_models` read the rows as :class:`ModelRecord` and :func:`load_classifier`
gives back a fitted :class:`~skyscene.classify.RealBogusClassifier` from the stored
bytes. Store access only: no web framework, no CLI. See ``docs/learning.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from skyscene.errors import DataError, InputFileError
from skyscene.store import models as m

__all__ = [
    "ModelRecord",
    "get_model",
    "list_models",
    "load_classifier",
    "promote_model",
    "register_model",
    "served_model",
]

log = logging.getLogger(__name__)

_MODELS: Any = m.Model.__table__
_COLUMNS = tuple(c.name for c in _MODELS.columns if c.name != "checkpoint")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes for ``DateTime(timezone=True)``: they are UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, kw_only=True)
class ModelRecord:
    """One row of the ``models`` table without the checkpoint bytes.

    Attributes
    ----------
    id : int
    name, version : str
        ``skyscene-rb-<arch>`` and the 12-hex-digit weight hash of the checkpoint.
    arch : str or None
    parent_version : str or None
        The version this model was fine-tuned from.
    data_hash : str or None
        SHA-256 of the training triplets and labels.
    threshold : float or None
        ``rb >= threshold`` is called real.
    metrics : dict
        Validation figures from the checkpoint, plus what the registrar added.
    reference_scores : tuple of float
        The validation score distribution drift monitoring compares against (may be empty).
    trained_by : str or None
    path : str or None
        The checkpoint file it was registered from.
    served : bool
    created_at, promoted_at : datetime (UTC) or None
    """

    id: int
    name: str
    version: str
    arch: str | None
    parent_version: str | None
    data_hash: str | None
    threshold: float | None
    metrics: dict[str, Any]
    reference_scores: tuple[float, ...]
    trained_by: str | None
    path: str | None
    served: bool
    created_at: dt.datetime | None
    promoted_at: dt.datetime | None

    @classmethod
    def _from_row(cls, row: Any) -> ModelRecord:
        values = dict(row._mapping)
        values["metrics"] = dict(values.get("metrics") or {})
        values["reference_scores"] = tuple(float(v) for v in values.get("reference_scores") or ())
        values["served"] = bool(values["served"])
        values["threshold"] = None if values["threshold"] is None else float(values["threshold"])
        values["created_at"] = _utc(values["created_at"])
        values["promoted_at"] = _utc(values["promoted_at"])
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})

    def to_dict(self, *, reference_scores: bool = False) -> dict[str, Any]:
        """JSON-ready dict: times as ISO 8601 strings; the reference scores only as their
        count ``n_reference_scores`` unless ``reference_scores=True``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dt.datetime):
                value = value.isoformat()
            if f.name == "reference_scores":
                out["n_reference_scores"] = len(value)
                if not reference_scores:
                    continue
                value = list(value)
            out[f.name] = value
        return out


def _select():
    return select(*(_MODELS.c[name] for name in _COLUMNS))


def _where(query, version: str, name: str | None):
    query = query.where(_MODELS.c.version == version)
    return query if name is None else query.where(_MODELS.c.name == name)


def _one(connection, store, version: str, name: str | None) -> ModelRecord:
    rows = connection.execute(_where(_select(), version, name)).all()
    if not rows:
        known = [r.version for r in connection.execute(select(_MODELS.c.version))]
        listed = ", ".join(known[-10:]) if known else "none registered"
        raise DataError(
            f"database {store._shown_url()}: unknown model version {version!r} (known: {listed})"
        )
    if len(rows) > 1:
        names = ", ".join(sorted(r.name for r in rows))
        raise DataError(
            f"database {store._shown_url()}: model version {version!r} exists under several "
            f"names ({names}); give the name"
        )
    return ModelRecord._from_row(rows[0])


def _read_checkpoint(path: Path):
    """The fitted classifier (validates the file) and the file's bytes."""
    from skyscene.classify.io import load_model

    classifier = load_model(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"model file {path}: {exc.strerror}") from None
    return classifier, data


def register_model(
    store,
    checkpoint_path: str | os.PathLike,
    *,
    trained_by: str | None = None,
    parent_version: str | None = None,
    metrics: dict[str, Any] | None = None,
    reference_scores=None,
    promote: bool = False,
) -> ModelRecord:
    """Store a checkpoint as a model version; return its :class:`ModelRecord`.

    Parameters
    ----------
    store : skyscene.store.CandidateStore
    checkpoint_path : path
        A checkpoint of :func:`skyscene.classify.io.save_model` (checked by loading it);
        name, version, arch, threshold and data hash come from it.
    trained_by, parent_version : str, optional
    metrics : dict, optional
        JSON figures merged over the checkpoint's own ``metrics``.
    reference_scores : array of float, optional
        Validation scores (drift monitoring's reference distribution).
    promote : bool
        Also make it the served version of its name (:func:`promote_model`).

    Registering a version that is already there changes nothing but the fields given
    here (``trained_by``, ``parent_version``, ``metrics``, ``reference_scores``) and
    ``promote``: re-running a registration is safe.
    """
    import numpy as np

    from skyscene.io import jsonable_meta

    path = Path(checkpoint_path)
    classifier, data = _read_checkpoint(path)
    name, version = classifier.model_name_, classifier.model_version_
    merged = jsonable_meta({**getattr(classifier, "metrics_", {}), **(metrics or {})})
    reference: list[float] | None = None
    if reference_scores is not None:
        values = np.asarray(reference_scores, dtype=np.float64).ravel()
        if not np.isfinite(values).all():
            raise DataError(f"model file {path}: reference scores contain NaN or infinity")
        reference = values.tolist()
    given: dict[str, Any] = {
        "trained_by": trained_by,
        "parent_version": parent_version,
        "reference_scores": reference,
    }
    with store._writer() as connection, connection.begin():
        exists = connection.execute(
            select(_MODELS.c.id).where(_MODELS.c.name == name, _MODELS.c.version == version)
        ).first()
        if exists is None:
            connection.execute(
                _MODELS.insert().values(
                    name=name,
                    version=version,
                    arch=classifier.arch,
                    data_hash=classifier.data_hash_ or None,
                    threshold=float(classifier.threshold_),
                    metrics=merged,
                    path=str(path),
                    checkpoint=data,
                    **given,
                )
            )
            log.info("registered %s %s from %s", name, version, path)
        else:
            changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
            if metrics:
                changes["metrics"] = merged
            if changes:
                connection.execute(
                    update(_MODELS).where(_MODELS.c.id == exists.id).values(**changes)
                )
            log.info("%s %s already registered", name, version)
    if promote:
        return promote_model(store, version, name=name)
    with store.engine.connect() as connection:
        return _one(connection, store, version, name)


def promote_model(store, version: str, *, name: str | None = None) -> ModelRecord:
    """Make ``version`` the served model of its name (the others of that name stop being
    served) and set its ``promoted_at``; one transaction. Unknown version: DataError."""
    with store._writer() as connection, connection.begin():
        record = _one(connection, store, version, name)
        connection.execute(
            update(_MODELS)
            .where(_MODELS.c.name == record.name, _MODELS.c.id != record.id)
            .values(served=False)
        )
        connection.execute(
            update(_MODELS)
            .where(_MODELS.c.id == record.id)
            .values(served=True, promoted_at=dt.datetime.now(dt.UTC))
        )
        record = _one(connection, store, version, record.name)
    log.info("promoted %s %s", record.name, record.version)
    return record


def served_model(store, name: str | None = None) -> ModelRecord | None:
    """The served model of ``name`` (default: of any name, the one promoted last), or None."""
    query = _select().where(_MODELS.c.served.is_(True))
    if name is not None:
        query = query.where(_MODELS.c.name == name)
    query = query.order_by(_MODELS.c.promoted_at.desc(), _MODELS.c.id.desc())
    with store.engine.connect() as connection:
        row = connection.execute(query).first()
    return None if row is None else ModelRecord._from_row(row)


def list_models(store) -> list[ModelRecord]:
    """Every registered model, oldest first."""
    query = _select().order_by(_MODELS.c.created_at, _MODELS.c.id)
    with store.engine.connect() as connection:
        return [ModelRecord._from_row(row) for row in connection.execute(query)]


def get_model(store, version: str, *, name: str | None = None) -> ModelRecord:
    """The record of ``version`` (DataError naming it when unknown)."""
    with store.engine.connect() as connection:
        return _one(connection, store, version, name)


def load_classifier(store, version: str | None = None, *, name: str | None = None):
    """A fitted :class:`~skyscene.classify.RealBogusClassifier` from the stored checkpoint
    bytes of ``version`` (default: the served model).

    Raises
    ------
    DataError
        Unknown version, no served model, or a row without checkpoint bytes (each
        naming the version and the database).
    """
    from skyscene.classify.io import load_model

    if version is None:
        record = served_model(store, name)
        if record is None:
            raise DataError(
                f"database {store._shown_url()}: no model is served "
                "(register one: 'skyscene rb register MODEL.pt --db URL --promote')"
            )
        version, name = record.version, record.name
    with store.engine.connect() as connection:
        record = _one(connection, store, version, name)
        data = connection.scalar(select(_MODELS.c.checkpoint).where(_MODELS.c.id == record.id))
    if not data:
        raise DataError(
            f"database {store._shown_url()}: model version {version!r} has no stored checkpoint"
        )
    with tempfile.TemporaryDirectory(prefix="skyscene-model-") as folder:
        path = Path(folder) / f"{record.version}.pt"
        path.write_bytes(data)
        try:
            classifier = load_model(path)
        except InputFileError as exc:
            raise DataError(
                f"database {store._shown_url()}: model version {version!r}: "
                f"{str(exc).split(': ', 2)[-1]}"
            ) from None
    classifier.source_ = f"{store._shown_url()}#models/{record.name}/{record.version}"
    return classifier
