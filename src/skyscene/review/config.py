"""The review service's configuration (:class:`ReviewConfig`), frozen and validated."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from skyscene._validation import check_int, check_range
from skyscene.errors import ParameterError

__all__ = ["CONFIG_ENV", "ReviewConfig"]

#: Environment variable through which ``skyscene serve --workers N`` hands the
#: configuration (JSON of :meth:`ReviewConfig.to_dict`) to each worker process.
CONFIG_ENV = "SKYSCENE_REVIEW_CONFIG"


@dataclass(frozen=True, kw_only=True)
class ReviewConfig:
    """How the review service runs.

    Parameters
    ----------
    db_url : str
        The candidate database: any SQLAlchemy URL or a path (a SQLite file). It must
        exist at the newest schema revision (``skyscene db upgrade URL``) unless
        ``auto_upgrade``.
    model_path : str, optional
        A real/bogus checkpoint to serve. ``None`` (default): the model version the
        registry (``models`` table) marks served, else the model shipped with skyscene.
        A promotion through ``POST /api/models/{version}/promote`` switches to the
        registry's served model.
    max_batch : int
        Most triplets one ``POST /api/score`` may hold (more: 413). In [1, 65536].
    max_body_bytes : int
        Largest request body, bytes (more: 413). Default 256 MiB, enough for
        ``max_batch`` = 4096 triplets as a float32 ``.npy`` (195 MB).
    cutout_cache_size : int
        Rendered PNG stamps kept in memory (least recently used dropped); 0 turns the
        cache off.
    psi_limit : float
        Default PSI above which ``/api/drift`` flags a night (0, 10].
    model_refresh_s : float
        How often (seconds) a worker checks which model version the registry serves, so
        that a promotion reaches every worker; 0 checks on every request.
    auto_upgrade : bool
        Migrate the database to the newest schema when the app starts (False: a database
        behind the code is refused).
    busy_timeout_s : float
        How long a SQLite writer waits for another one, seconds.
    max_concurrent : int
        Requests (other than ``/api/score``) that one worker process handles at once;
        the others wait in the event loop. Below the database connection pool's size
        (5), so that no request opens a connection of its own; in [1, 64].
    torch_threads : int, optional
        ``torch.set_num_threads`` of each worker process when it loads the model (None:
        torch's default, every core). ``skyscene serve --workers N`` gives each worker
        its share of the cores.
    """

    db_url: str
    model_path: str | None = None
    max_batch: int = 4096
    max_body_bytes: int = 256 * 1024 * 1024
    cutout_cache_size: int = 4096
    psi_limit: float = 0.2
    model_refresh_s: float = 2.0
    auto_upgrade: bool = False
    busy_timeout_s: float = 30.0
    max_concurrent: int = 4
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.db_url, str | os.PathLike) or not os.fspath(self.db_url):
            raise ParameterError(
                f"ReviewConfig.db_url must be a database URL or path, got {self.db_url!r}",
                name="ReviewConfig.db_url",
                value=self.db_url,
            )
        object.__setattr__(self, "db_url", os.fspath(self.db_url))
        if self.model_path is not None:
            if not isinstance(self.model_path, str | os.PathLike) or not os.fspath(self.model_path):
                raise ParameterError(
                    f"ReviewConfig.model_path must be a file path or None, got {self.model_path!r}",
                    name="ReviewConfig.model_path",
                    value=self.model_path,
                )
            object.__setattr__(self, "model_path", os.fspath(self.model_path))
        check_int("ReviewConfig.max_batch", self.max_batch, low=1, high=65536)
        check_int("ReviewConfig.max_body_bytes", self.max_body_bytes, low=1024)
        check_int("ReviewConfig.cutout_cache_size", self.cutout_cache_size, low=0)
        check_range("ReviewConfig.psi_limit", self.psi_limit, low=0, high=10, low_inclusive=False)
        check_range("ReviewConfig.model_refresh_s", self.model_refresh_s, low=0, high=3600)
        check_range("ReviewConfig.busy_timeout_s", self.busy_timeout_s, low=0)
        check_int("ReviewConfig.max_concurrent", self.max_concurrent, low=1, high=64)
        if self.torch_threads is not None:
            check_int("ReviewConfig.torch_threads", self.torch_threads, low=1, high=1024)
        for name in ("auto_upgrade",):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(
                    f"ReviewConfig.{name} must be True or False, got {getattr(self, name)!r}",
                    name=f"ReviewConfig.{name}",
                    value=getattr(self, name),
                )

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-ready values (what :meth:`from_dict` reads)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ReviewConfig:
        """A configuration from :meth:`to_dict`'s output; an unknown key is an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(
                f"ReviewConfig: unknown key(s) {', '.join(unknown)}",
                name="ReviewConfig",
                value=unknown,
            )
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReviewConfig:
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise ParameterError(
                f"ReviewConfig: not JSON ({exc})", name="ReviewConfig", value=text
            ) from None
        if not isinstance(values, dict):
            raise ParameterError(
                "ReviewConfig: expected a JSON object", name="ReviewConfig", value=text
            )
        return cls.from_dict(values)
