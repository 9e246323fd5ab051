"""The review service: a FastAPI app over the candidate database and the real/bogus model.

:func:`create_app` builds the app from a :class:`~skyscene.review.ReviewConfig`;
:func:`app_from_env` is the factory ``skyscene serve`` hands to uvicorn (the config comes
as JSON in the :data:`~skyscene.review.CONFIG_ENV` environment variable, so every worker
process builds the same app). Endpoints, authentication and errors are described in
``docs/review.md``; the OpenAPI schema is at ``/openapi.json`` and ``/docs``.

Needs the extra ``skyscene[serve]`` (FastAPI, uvicorn, python-multipart).
"""

# no "from __future__ import annotations": FastAPI reads the endpoint signatures at
# definition time, and the dependency aliases are local to create_app

import io
import logging
import math
import os
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from skyscene.errors import MissingDependencyError

try:
    from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
    from fastapi import Path as PathParam
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from fastapi.staticfiles import StaticFiles
except ImportError as _exc:  # pragma: no cover - depends on the installation
    raise MissingDependencyError(
        f"the review service needs FastAPI ({_exc}): pip install 'skyscene[serve]'"
    ) from None

import numpy as np
import sqlalchemy.exc as sa_exc
from sqlalchemy import text

from skyscene.errors import DataError, SkysceneError
from skyscene.review._metrics import Metrics
from skyscene.review.auth import hash_token, role_allows
from skyscene.review.config import CONFIG_ENV, ReviewConfig
from skyscene.review.queries import CandidateFilter, ReviewQueries, UserRecord, clean
from skyscene.review.render import STRETCHES, PngCache, RenderedStamp, render_png

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
_INT64_MAX = 2**63 - 1
_NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: refused as bad input (422)
_CUTOUT_CACHE_CONTROL = "private, max-age=86400"


class CutoutKind(StrEnum):
    science = "science"
    reference = "reference"
    difference = "difference"


_STAMPS_SCHEMA = {
    "type": "array",
    "items": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
}
_SCORE_JSON_SCHEMA = {
    "type": "object",
    "required": ["science", "reference", "difference"],
    "properties": {k: _STAMPS_SCHEMA for k in ("science", "reference", "difference")},
}


# ---------------------------------------------------------------------------- the model
class _ServedModel:
    """The real/bogus classifier this worker serves, loaded lazily, switched on promotion.

    The registry's served version (``models.served``) wins when there is one, except
    that an explicit ``model_path`` is served until a promotion made after the app
    started; without either the shipped model is served. Every ``refresh_s`` the
    registry is asked again, so a promotion reaches every worker.
    """

    def __init__(self, store, config: ReviewConfig):
        import datetime as dt

        self._store = store
        self._path = config.model_path
        self._torch_threads = config.torch_threads
        self._refresh_s = config.model_refresh_s
        self._started = dt.datetime.now(dt.UTC)
        self._lock = threading.Lock()
        self._score_lock = threading.Lock()
        self._classifier: Any = None
        self._checked = -math.inf

    def _wanted_registry_version(self) -> str | None:
        from skyscene.classify.registry import served_model

        record = served_model(self._store)
        if record is None:
            return None
        if self._path is not None and (
            record.promoted_at is None or record.promoted_at < self._started
        ):
            return None
        return record.version

    def get(self, *, force: bool = False):
        """The classifier (loading or switching it when due)."""
        now = time.monotonic()
        with self._lock:
            if self._classifier is None and self._torch_threads is not None:
                from skyscene.classify._torch import torch

                torch().set_num_threads(self._torch_threads)
            if force or self._classifier is None or now - self._checked >= self._refresh_s:
                self._checked = now
                version = self._wanted_registry_version()
                current = self._classifier
                if version is not None:
                    if current is None or current.model_version_ != version:
                        from skyscene.classify.registry import load_classifier

                        self._classifier = load_classifier(self._store, version)
                        log.info("serving model version %s (registry)", version)
                elif current is None:
                    from skyscene.classify.io import load_model

                    self._classifier = load_model(self._path)
                    log.info(
                        "serving model version %s (%s)",
                        self._classifier.model_version_,
                        self._classifier.source_,
                    )
            return self._classifier

    @property
    def version(self) -> str:
        return str(self.get().model_version_)

    def score(self, triplets: np.ndarray) -> tuple[str, np.ndarray]:
        classifier = self.get()
        with self._score_lock:  # one batch at a time: torch already uses every core
            result = classifier.score(triplets, source="request")
        return result.model_version, result.rb


# ---------------------------------------------------------------------------- metrics
class _ServiceMiddleware:
    """Pure ASGI middleware: counts each HTTP request and its latency in ``metrics`` (by
    method, route template and status), and admits at most ``max_concurrent`` requests
    at once into the app (``/api/score`` aside: it is serialised by the model's own
    lock), the others waiting in the event loop.

    Cheaper than an ``@app.middleware("http")`` function, which runs every request
    through extra tasks and memory streams; the gate keeps the worker's threads (and so
    the database connections they hold) within the connection pool, instead of opening
    and closing an overflow connection per request under load.
    """

    def __init__(self, app, *, metrics: Metrics, max_concurrent: int):
        import asyncio

        self.app = app
        self.metrics = metrics
        self.max_concurrent = max_concurrent
        self._asyncio = asyncio
        self._gate: tuple[Any, Any] | None = None  # (event loop, semaphore)

    def _semaphore(self):
        loop = self._asyncio.get_running_loop()
        if self._gate is None or self._gate[0] is not loop:  # a test client's new loop
            self._gate = (loop, self._asyncio.Semaphore(self.max_concurrent))
        return self._gate[1]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if scope["path"] == "/api/score":
                await self.app(scope, receive, send_status)
            else:
                async with self._semaphore():
                    await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - start)


# ---------------------------------------------------------------------------- errors
class _Error(HTTPException):
    """An HTTP error with a JSON ``{"detail": ...}`` body."""


def _unauthorized(detail: str) -> _Error:
    return _Error(401, detail, headers={"WWW-Authenticate": "Bearer"})


def _json(content: Any, status_code: int = 200, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(content, status_code=status_code, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SkysceneError)
    async def _skyscene_error(request: Request, exc: SkysceneError) -> JSONResponse:
        return _json({"detail": str(exc)}, 422)

    @app.exception_handler(sa_exc.DataError)
    async def _db_data_error(request: Request, exc: sa_exc.DataError) -> JSONResponse:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return _json({"detail": f"value refused by the database: {reason}"}, 422)

    @app.exception_handler(sa_exc.OperationalError)
    async def _db_unavailable(request: Request, exc: sa_exc.OperationalError) -> JSONResponse:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        log.warning("database unavailable: %s", reason)
        return _json({"detail": f"database unavailable: {reason}"}, 503, {"Retry-After": "1"})


# ---------------------------------------------------------------------------- the app
def create_app(config: ReviewConfig) -> FastAPI:
    """The review service's FastAPI app.

    Parameters
    ----------
    config : ReviewConfig

    Returns
    -------
    fastapi.FastAPI
        With every endpoint of ``docs/review.md``, the page at ``/`` and its assets
        under ``/static``.

    Raises
    ------
    DataError, InputFileError
        The database cannot be opened or is not at the newest schema revision (unless
        ``config.auto_upgrade``).
    """
    from skyscene import __version__
    from skyscene.store import CandidateStore, StoreConfig

    if not isinstance(config, ReviewConfig):
        raise TypeError(f"create_app needs a ReviewConfig, got {type(config).__name__}")
    store = CandidateStore(
        config.db_url,
        config=StoreConfig(auto_upgrade=config.auto_upgrade, busy_timeout_s=config.busy_timeout_s),
    )
    queries = ReviewQueries(store.engine)
    model = _ServedModel(store, config)
    cache = PngCache(config.cutout_cache_size)
    metrics = Metrics()

    app = FastAPI(
        title="skyscene review service",
        version=__version__,
        description=(
            "Candidates, cutouts, labels and real/bogus scores of a skyscene candidate "
            "database. Every /api endpoint and /metrics need `Authorization: Bearer TOKEN` "
            "(tokens: `skyscene users add`)."
        ),
        max_body_size=config.max_body_bytes,
    )
    app.state.config = config
    app.state.store = store
    app.state.queries = queries
    app.state.model = model
    app.state.cutout_cache = cache
    app.state.metrics = metrics
    _install_error_handlers(app)

    app.add_middleware(_ServiceMiddleware, metrics=metrics, max_concurrent=config.max_concurrent)

    bearer = HTTPBearer(auto_error=False, description="An API token from 'skyscene users add'")

    def current_user(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> UserRecord:
        if credentials is None or not credentials.credentials:
            raise _unauthorized("missing API token (header 'Authorization: Bearer TOKEN')")
        token = credentials.credentials
        user = None if len(token) > 512 else queries.user_by_token_hash(hash_token(token))
        if user is None:
            raise _unauthorized("unknown or revoked API token")
        return user

    def reviewer(user: Annotated[UserRecord, Depends(current_user)]) -> UserRecord:
        if not role_allows(user.role, "reviewer"):
            raise _Error(403, f"user {user.name!r} (role {user.role}) may not label")
        return user

    def admin(user: Annotated[UserRecord, Depends(current_user)]) -> UserRecord:
        if not role_allows(user.role, "admin"):
            raise _Error(403, f"user {user.name!r} (role {user.role}) is not an admin")
        return user

    User = Annotated[UserRecord, Depends(current_user)]
    Candid = Annotated[int, PathParam(ge=0, le=_INT64_MAX, description="candidate ID")]
    Name = Annotated[str | None, Query(max_length=64, pattern=_NO_NUL)]
    Version = Annotated[
        str | None, Query(max_length=64, pattern=_NO_NUL, description="default: served")
    ]
    Number = Annotated[float | None, Query(allow_inf_nan=False)]

    def _user_ref(name: str | None, user: UserRecord) -> int | None:
        if name is None:
            return None
        if name == "me":
            return user.id
        found = queries.user_id(name)
        return -1 if found is None else found

    # ------------------------------------------------------------------ health, me
    @app.get("/healthz", tags=["service"])
    def healthz() -> JSONResponse:
        """Liveness: the database answers and the served model loads (no token)."""
        body: dict[str, Any] = {"status": "ok", "db": "ok", "model_version": None}
        try:
            with store.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except sa_exc.SQLAlchemyError as exc:
            body.update(status="degraded", db=f"error: {str(exc).splitlines()[0]}")
        try:
            body["model_version"] = model.version
        except (SkysceneError, sa_exc.SQLAlchemyError) as exc:
            body.update(status="degraded", model=f"error: {exc}")
        return _json(body, 200 if body["status"] == "ok" else 503)

    @app.get("/api/me", tags=["users"])
    def me(user: User) -> JSONResponse:
        """The token's user."""
        return _json({"name": user.name, "role": user.role})

    # ------------------------------------------------------------------ candidates
    @app.get("/api/candidates", tags=["candidates"])
    def list_candidates(
        user: User,
        rb_min: Number = None,
        rb_max: Number = None,
        jd_min: Number = None,
        jd_max: Number = None,
        object_id: Annotated[str | None, Query(max_length=32, pattern=_NO_NUL)] = None,
        labelled: bool | None = None,
        labelled_by: Name = None,
        unlabelled_by: Name = None,
        model_version: Version = None,
        sort: Literal["priority", "rb", "-rb", "time", "-time"] = "priority",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
        after: Annotated[
            str | None,
            Query(
                max_length=512,
                pattern=r"^[A-Za-z0-9_-]*$",
                description="keyset cursor: the `next` of the previous page",
            ),
        ] = None,
    ) -> JSONResponse:
        """Candidates with their served-model score and label summary, filtered,
        sorted (``priority``: active-learning priority, highest first) and paginated
        (``after`` = the previous page's ``next``: the following page without reading
        the rows before it; ``offset`` skips rows from there).
        ``labelled_by`` / ``unlabelled_by`` take a user name or ``me``."""
        flt = CandidateFilter(
            rb_min=rb_min,
            rb_max=rb_max,
            jd_min=jd_min,
            jd_max=jd_max,
            object_id=object_id,
            labelled=labelled,
            labelled_by=_user_ref(labelled_by, user),
            unlabelled_by=_user_ref(unlabelled_by, user),
        )
        version = model_version if model_version is not None else model.version
        page = queries.list_candidates(
            flt,
            version=version,
            user_id=user.id,
            sort=sort,
            limit=limit,
            offset=offset,
            after=after,
        )
        return _json(page)

    @app.get("/api/candidates/{candid}", tags=["candidates"])
    def candidate(candid: Candid, user: User) -> JSONResponse:
        """Every feature, the scores of each model version, all labels, the consensus and
        the object's other detections."""
        detail = queries.candidate_detail(candid, user_id=user.id)
        if detail is None:
            raise _Error(404, f"unknown candid {candid}")
        return _json(detail)

    @app.get(
        "/api/candidates/{candid}/cutouts/{kind}.png",
        tags=["candidates"],
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 304: {"description": "not modified"}},
    )
    def cutout(
        request: Request,
        candid: Candid,
        kind: CutoutKind,
        user: User,
        stretch: Literal["zscale", "asinh", "linear"] = "zscale",
    ) -> Response:
        """A cutout stamp as PNG (4x, row 0 at the bottom), rendered once and cached."""
        from skyscene.alerts import decode_stamp

        assert stretch in STRETCHES
        key = (candid, kind.value, stretch)
        rendered = cache.get(key)
        if rendered is None:
            data = store.cutout(candid, kind.value)
            if data is None:
                raise _Error(404, f"no {kind.value} cutout of candid {candid}")
            stamp = decode_stamp(data, name=f"candid {candid} {kind.value}")
            rendered = RenderedStamp.of(render_png(stamp, kind=stretch))
            cache.put(key, rendered)
        headers = {"Cache-Control": _CUTOUT_CACHE_CONTROL, "ETag": rendered.etag}
        if request.headers.get("if-none-match") == rendered.etag:
            return Response(status_code=304, headers=headers)
        return Response(rendered.png, media_type="image/png", headers=headers)

    # ------------------------------------------------------------------ labels
    @app.post("/api/candidates/{candid}/labels", tags=["labels"], status_code=201)
    def add_label(
        candid: Candid,
        user: Annotated[UserRecord, Depends(reviewer)],
        value: Annotated[Literal["real", "bogus", "unsure"], Body()],
        comment: Annotated[str | None, Body(max_length=2000, pattern=_NO_NUL)] = None,
    ) -> JSONResponse:
        """Label a candidate as the token's user (role reviewer). A user's newer label
        supersedes their older one; every user's labels are kept."""
        row = queries.add_label(candid, user, value, comment)
        if row is None:
            raise _Error(404, f"unknown candid {candid}")
        return _json(row, 201)

    @app.delete("/api/labels/{label_id}", tags=["labels"])
    def delete_label(
        label_id: Annotated[int, PathParam(ge=0, le=_INT64_MAX)],
        user: Annotated[UserRecord, Depends(reviewer)],
    ) -> JSONResponse:
        """Undo one of the user's own labels (the previous one, if any, is current again)."""
        result = queries.delete_label(label_id, user)
        if result == "missing":
            raise _Error(404, f"unknown label {label_id}")
        if result == "forbidden":
            raise _Error(403, f"label {label_id} is another user's")
        return _json(result)

    @app.get("/api/labels", tags=["labels"])
    def label_history(
        user: User,
        user_name: Annotated[str, Query(alias="user", max_length=64, pattern=_NO_NUL)] = "me",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    ) -> JSONResponse:
        """A user's labels (default ``me``), newest first."""
        user_id = _user_ref(user_name, user)
        if user_id is None or user_id < 0:
            raise _Error(404, f"unknown user {user_name!r}")
        return _json(queries.label_history(user_id, limit=limit, offset=offset))

    # ------------------------------------------------------------------ objects
    @app.get("/api/objects/{object_id}", tags=["candidates"])
    def lightcurve(
        object_id: Annotated[str, PathParam(max_length=32, pattern=_NO_NUL)],
        user: User,
        model_version: Version = None,
    ) -> JSONResponse:
        """An object's light curve: detections (magpsf, sigmapsf, rb) and the upper
        limits (diffmaglim) of pairs that covered it without a detection."""
        version = model_version if model_version is not None else model.version
        curve = queries.object_lightcurve(object_id, version=version)
        if curve is None:
            raise _Error(404, f"unknown object {object_id!r}")
        return _json(curve)

    # ------------------------------------------------------------------ scoring
    score_body = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _SCORE_JSON_SCHEMA},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
        }
    }

    @app.post("/api/score", tags=["models"], openapi_extra=score_body)
    async def score(request: Request, user: User) -> JSONResponse:
        """Real/bogus scores of triplets with the served model: JSON ``science``,
        ``reference``, ``difference`` (N, size, size) lists, or a multipart ``file`` of
        ``.npy`` (N, 3, size, size) or ``.npz`` (the three arrays). At most ``max_batch``
        triplets (more: 413)."""
        triplets = await _read_triplets(request, config.max_batch)
        version, rb = await run_in_threadpool(model.score, triplets)
        if not np.isfinite(rb).all():
            bad = int(np.flatnonzero(~np.isfinite(rb))[0])
            raise _Error(422, f"triplet {bad}: score is not finite (extreme pixel values)")
        metrics.add_scores(rb.size)
        return _json({"model_version": version, "n": int(rb.size), "rb": rb.tolist()})

    # ------------------------------------------------------------------ models, drift
    @app.get("/api/models", tags=["models"])
    def models(user: User) -> JSONResponse:
        """Registered model versions and the served one."""
        from skyscene.classify.registry import list_models, served_model

        served = served_model(store)
        return _json(
            {
                "served": None if served is None else served.version,
                "models": [record.to_dict() for record in list_models(store)],
            }
        )

    @app.post("/api/models/{version}/promote", tags=["models"])
    def promote(
        version: Annotated[str, PathParam(max_length=64, pattern=_NO_NUL)],
        user: Annotated[UserRecord, Depends(admin)],
    ) -> JSONResponse:
        """Make a registered version the served model (role admin)."""
        from skyscene.classify.registry import get_model, promote_model

        try:
            get_model(store, version)
        except DataError as exc:
            raise _Error(404 if "unknown model version" in str(exc) else 422, str(exc)) from None
        record = promote_model(store, version)
        log.info("user %s promoted model %s", user.name, version)
        model.get(force=True)
        return _json(record.to_dict())

    @app.get("/api/drift", tags=["models"])
    def drift(
        user: User,
        model_version: Version = None,
        psi_limit: Annotated[float | None, Query(gt=0, le=10, allow_inf_nan=False)] = None,
    ) -> JSONResponse:
        """Score distributions per night and model version against the reference
        distribution: PSI, KS statistic, fraction above threshold, flags."""
        try:
            from skyscene.classify.drift import DriftConfig, drift_report
        except ImportError as exc:
            raise _Error(
                503, f"drift monitoring is not available in this installation ({exc})"
            ) from None
        limit = config.psi_limit if psi_limit is None else psi_limit
        try:
            report = drift_report(
                store, model_version=model_version, config=DriftConfig(psi_limit=limit)
            )
        except DataError as exc:
            raise _Error(404 if "unknown model version" in str(exc) else 422, str(exc)) from None
        return _json(_jsonable(report.to_dict()))

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    def prometheus(user: User) -> PlainTextResponse:
        """Prometheus text: requests, latencies, scores served, queue length (this worker)."""
        return PlainTextResponse(
            metrics.exposition(queue_length=queries.queue_length()),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    # ------------------------------------------------------------------ the page
    @app.get("/", include_in_schema=False)
    def page() -> Response:
        index = STATIC_DIR / "index.html"
        if not index.is_file():
            return _json({"detail": "the review page is not installed"}, 404)
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return app


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays converted, non-finite floats None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return clean(value)


async def _read_triplets(request: Request, max_batch: int) -> np.ndarray:
    """(N, 3, n, n) float32 triplets of a score request (JSON or .npy/.npz upload)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=4)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise _Error(422, "multipart body needs a file field 'file' (.npy or .npz)")
        data = await upload.read()
        triplets = _load_npy(data)
    elif content_type in ("application/json", "") or content_type.endswith("+json"):
        triplets = _parse_json_triplets(await request.body())
    else:
        raise _Error(415, f"unsupported content type {content_type!r} (JSON or multipart)")
    if triplets.shape[0] > max_batch:
        raise _Error(413, f"{triplets.shape[0]} triplets: at most {max_batch} per request")
    if triplets.shape[0] == 0:
        raise _Error(422, "no triplets")
    return triplets


def _no_constant(name: str) -> float:
    raise _Error(422, f"triplets must be finite numbers, got {name}")


def _parse_json_triplets(body: bytes) -> np.ndarray:
    """Strict: a JSON object of three (N, n, n) lists of numbers (no NaN, no strings)."""
    import json

    try:
        parsed = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise _Error(422, f"body is not JSON ({exc})") from None
    names = ("science", "reference", "difference")
    if not isinstance(parsed, dict) or any(k not in parsed for k in names):
        raise _Error(422, "JSON body needs the arrays 'science', 'reference', 'difference'")
    arrays = []
    for name in names:
        try:
            array = np.asarray(parsed[name])
        except (ValueError, TypeError):
            raise _Error(422, f"{name} is not an (N, n, n) array (ragged lists?)") from None
        if array.dtype.kind not in "fiu" or (array.size and array.ndim != 3):
            raise _Error(422, f"{name} must be an (N, n, n) array of numbers")
        arrays.append(array)
    return _check_numeric(_stack(*arrays))


def _stack(*stamps: Any) -> np.ndarray:
    try:
        with np.errstate(over="ignore"):  # beyond float32: infinite, refused later
            arrays = [np.asarray(s, dtype=np.float32) for s in stamps]
    except ValueError:
        raise _Error(422, "science, reference, difference must be (N, n, n) arrays") from None
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 3:
        raise _Error(
            422,
            "science, reference, difference must be (N, n, n) arrays of one shape, got "
            + ", ".join(str(a.shape) for a in arrays),
        )
    return np.stack(arrays, axis=1)


def _load_npy(data: bytes) -> np.ndarray:
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _Error(422, f"file is not a .npy or .npz array ({exc})") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            missing = [k for k in ("science", "reference", "difference") if k not in loaded.files]
            if missing:
                raise _Error(422, f".npz lacks array(s) {', '.join(missing)}")
            try:
                parts = [loaded[k] for k in ("science", "reference", "difference")]
            except (ValueError, OSError) as exc:
                raise _Error(422, f".npz array unreadable ({exc})") from None
        return _check_numeric(_stack(*parts))
    array = np.asarray(loaded)
    if array.ndim != 4 or array.shape[1] != 3:
        raise _Error(422, f".npy must hold (N, 3, n, n) triplets, got shape {array.shape}")
    return _check_numeric(array)


def _check_numeric(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind not in "fiu":
        raise _Error(422, f"triplets must be numbers, got dtype {array.dtype}")
    with np.errstate(over="ignore"):  # beyond float32: infinite, refused below
        array = np.asarray(array, dtype=np.float32)
    if np.isinf(array).any():
        raise _Error(422, "triplets hold infinite values")
    return array


def app_from_env() -> FastAPI:
    """The app of the configuration in the ``SKYSCENE_REVIEW_CONFIG`` environment variable
    (the factory ``skyscene serve`` gives uvicorn's workers)."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise DataError(f"{CONFIG_ENV} is not set (start the service with 'skyscene serve')")
    return create_app(ReviewConfig.from_json(raw))
