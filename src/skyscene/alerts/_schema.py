"""The shipped Avro schema (``schema/*.avsc``), parsed once per process."""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "CANDIDATE_FIELDS",
    "FEATURE_FIELDS",
    "PRV_CANDIDATE_FIELDS",
    "SCHEMA_VERSION",
    "load_schema",
    "parsed_schema",
    "schema_path",
]

SCHEMA_VERSION = "skyscene-1.0"
"""Written as ``schemavsn``; the ``.avsc`` files carry ``"version": "1.0"``."""


def schema_path() -> Path:
    """Path of the top-level ``skyscene.alert.avsc`` (the other records sit beside it)."""
    return Path(str(resources.files("skyscene.alerts") / "schema" / "skyscene.alert.avsc"))


def _record(name: str) -> dict[str, Any]:
    return json.loads((schema_path().parent / f"{name}.avsc").read_text())


def _field_types(record: dict[str, Any]) -> MappingProxyType:
    """``{field: (avro_type, nullable)}`` of a record of primitive fields."""
    out = {}
    for field in record["fields"]:
        kind = field["type"]
        nullable = isinstance(kind, list)
        out[field["name"]] = (kind[1] if nullable else kind, nullable)
    return MappingProxyType(out)


@functools.cache
def load_schema() -> dict[str, Any]:
    """The full alert schema with named records resolved (as ``fastavro.schema.load_schema``)."""
    import fastavro.schema

    schema: dict[str, Any] = fastavro.schema.load_schema(str(schema_path()), _write_hint=False)  # type: ignore[assignment]
    return schema


@functools.cache
def parsed_schema() -> Any:
    """The schema parsed by fastavro, for writing (parsed once per process)."""
    import fastavro

    return fastavro.parse_schema(load_schema())


CANDIDATE_FIELDS = _field_types(_record("skyscene.alert.candidate"))
"""``{name: (avro_type, nullable)}`` of the ``candidate`` record (ZTF 4.02 names and types)."""
PRV_CANDIDATE_FIELDS = _field_types(_record("skyscene.alert.prv_candidate"))
"""``{name: (avro_type, nullable)}`` of ``prv_candidates`` items."""
FEATURE_FIELDS = _field_types(_record("skyscene.alert.features"))
"""``{name: (avro_type, nullable)}`` of the ``skyscene`` block."""
