"""The candidate database: SQLAlchemy 2 models, Alembic migrations, idempotent ingestion.

SQLite file by default, any SQLAlchemy URL (PostgreSQL through psycopg). See
``docs/store.md``.
"""

from skyscene.store.core import (
    CandidateStore,
    IngestResult,
    PairRecord,
    StoreConfig,
    format_object_id,
    open_engine,
)
from skyscene.store.migrate import current_revision, downgrade, head_revision, upgrade
from skyscene.store.models import FEATURE_COLUMNS

__all__ = [
    "FEATURE_COLUMNS",
    "CandidateStore",
    "IngestResult",
    "PairRecord",
    "StoreConfig",
    "current_revision",
    "downgrade",
    "format_object_id",
    "head_revision",
    "open_engine",
    "upgrade",
]
