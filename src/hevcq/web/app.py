"""The web application: the dashboard's pages and the API, on one FastAPI app."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import structlog
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from hevcq.errors import FarmConfigError, HevcqError, RetryableError
from hevcq.ledger import State
from hevcq.messages import JobResult
from hevcq.web import uploads
from hevcq.web.auth import Authenticator, Caller
from hevcq.web.guard import Guard
from hevcq.web.models import (
    Dashboard,
    DeadLetterOut,
    Health,
    JobDetail,
    JobList,
    PoolStatus,
    RedriveRequest,
    RedriveResult,
    StatusReport,
    UploadRequest,
    UploadTicket,
    VideoList,
    VideoStatus,
)
from hevcq.web.play import PlayRefused
from hevcq.web.videos import QuotaExceeded
from hevcq.web.view import JOB_CURSOR_PATTERN, FarmView

log = structlog.get_logger()

STATIC = Path(str(resources.files("hevcq.web") / "static"))
# Swagger UI's script and styles for /docs, served from the installed fastapi-offline
# package: FastAPI's own /docs page loads them from a CDN, and there may be no network.
DOCS_STATIC = "/static/docs"
# Browsers send a custom header cross-site only after a CORS preflight, which this app
# never grants: a POST carrying it comes from our own page or from a non-browser client.
CSRF_HEADER = "X-Hevcq-Request"
RAW_SWEEP_EVERY_S = 15.0
VIDEOS_PAGE = 50
VIDEOS_PAGE_MAX = 200
JOBS_PAGE = 100
JOBS_PAGE_MAX = 1000
ULID_PATTERN = r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"  # an upload id (Crockford base32)
NOT_FOUND = "not found"
SWEEP_ERRORS: tuple[type[Exception], ...] = (HevcqError,)  # logged, sweep goes on
# A farm read that failed, as the farm's adapters classify it (the endpoint gone,
# throttled, credentials expired, resources deleted). A 503, never a 500.
FARM_ERRORS: tuple[type[Exception], ...] = (RetryableError, FarmConfigError)

API_DOC = """The hevcq farm: uploads and their status for apps, queues and jobs for operators.

Completions are also published on the farm's events topic (SNS, `<prefix>-events`): one
`JobResult` message per (source, pool), described under Webhooks below. An upload made
here has `source_key` = `TODO/<id>/<filename>`.
"""


@dataclass(frozen=True)
class WebConfig:
    """What the server serves: a farm (or none, with the reason) and upload limits."""

    farm: FarmView | None
    auth: Authenticator
    no_farm_reason: str = "no farm configured and no embedded farm running"
    upload_max_bytes: int = 20 * 1024**3
    upload_ttl_s: int = 3600


class SafeJSON(JSONResponse):
    """JSON that encodes whatever a request put in it.

    An error may quote a caller's input, and a caller may send what no UTF-8 encoder
    takes (a lone surrogate such as ``"\\ud800"`` is valid JSON) or a float JSON has no
    word for (``NaN``, ``1e400``): the stock response raised on both, and the caller got
    a 500 with a traceback in the server's log. Text is escaped to ASCII, and a
    non-finite float becomes its name as a string.
    """

    def render(self, content: Any) -> bytes:
        return json.dumps(
            _finite(content), ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode("ascii")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


async def _invalid_request(_: Request, exc: Exception) -> SafeJSON:
    """A 422 that says where and what, without echoing the input back."""
    if not isinstance(exc, RequestValidationError):  # registered for that class only
        raise exc
    errors = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
    return SafeJSON({"detail": errors}, status_code=422)


async def _http_error(_: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    headers = dict(exc.headers or {})
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=headers)
    return SafeJSON({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def _unauthorized() -> HTTPException:
    return HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})


def _sweeper(farm: FarmView, stop: threading.Event) -> None:
    while not stop.wait(RAW_SWEEP_EVERY_S):
        try:
            farm.sweep_raw()
        except SWEEP_ERRORS as exc:
            log.warning("raw_sweep_failed", error=str(exc))


def create_app(config: WebConfig) -> FastAPI:
    """The app for one farm (or for none: it then says so and serves no farm data)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        farm = config.farm
        if farm is not None and farm.raw_policy == "delete-when-settled":
            threading.Thread(target=_sweeper, args=(farm, stop), daemon=True).start()
        yield
        stop.set()

    app = FastAPIOffline(
        title="hevcq",
        description=API_DOC,
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        static_url=DOCS_STATIC,
    )
    app.state.config = config
    app.add_middleware(Guard, local_only=config.auth.config.local)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def farm_unreachable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("farm_read_failed", error=str(exc))
        return JSONResponse({"detail": "farm unreachable"}, status_code=503)

    for error in FARM_ERRORS:
        app.add_exception_handler(error, farm_unreachable)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    _pages(app)
    _api(app, config)
    _events(app)
    return app


def _events(app: FastAPI) -> None:
    @app.webhooks.post("job-result")
    def job_result(body: JobResult) -> None:
        """Published as JSON on the events topic once per (source, pool) when a job ends,
        with the message attributes `outcome` and `pool` (for subscription filters)."""


def _pages(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/jobs/{job_id}", include_in_schema=False)
    def job_page(job_id: str) -> FileResponse:  # noqa: ARG001 - the page reads it from its URL
        return FileResponse(STATIC / "job.html")

    # Swagger UI from fastapi-offline's files, started by a script file instead of the
    # inline one FastAPI's page carries: the Content-Security-Policy allows no inline script.
    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html")


def _same_origin(request: Request) -> None:
    """POSTs: the Origin, when a browser sends one, must be this host; and without a
    bearer credential, the custom header must be present."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "cross-site request refused")
    if "authorization" not in request.headers and request.headers.get(CSRF_HEADER) != "1":
        raise HTTPException(403, f"missing {CSRF_HEADER} header")


def _config(request: Request) -> WebConfig:
    config: WebConfig = request.app.state.config
    return config


def _caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
    who = _config(request).auth.caller(authorization)
    if who is None:
        raise _unauthorized()
    return who


def _operator(who: Annotated[Caller, Depends(_caller)]) -> Caller:
    if not who.operator:
        raise HTTPException(403, "operators only")
    return who


def _farm(request: Request) -> FarmView:
    config = _config(request)
    if config.farm is None:
        raise HTTPException(503, f"no farm: {config.no_farm_reason}")
    return config.farm


def _known_pool(f: FarmView, pool: str | None) -> str | None:
    """A pool filter names a pool of this farm: a typo is a 422, not an empty list."""
    if pool is not None and pool not in f.farm.refs.pools:
        known = ", ".join(sorted(f.farm.refs.pools))
        raise HTTPException(422, f"unknown pool {pool!r}; known: {known}")
    return pool


CallerDep = Annotated[Caller, Depends(_caller)]
FarmDep = Annotated[FarmView, Depends(_farm)]
OPERATOR = [Depends(_operator)]


def _api(app: FastAPI, config: WebConfig) -> None:
    _health(app, config)
    _operator_api(app)
    _upload_api(app, config)
    _play(app)


# Play links are capabilities (hevcq.web.play), carry no cookie and set no state: any
# page may read them, as a player on an app's own origin must.
PLAY_HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "private, max-age=3600"}


def _play(app: FastAPI) -> None:
    @app.get("/play/{grant}/{path:path}", include_in_schema=False)
    def play(
        f: FarmDep, grant: str, path: str, range: Annotated[str | None, Header()] = None
    ) -> Response:
        """One object of a played output, under a signed play link."""
        try:
            got = f.play(grant, path, byte_range=range)
        except PlayRefused as exc:
            return JSONResponse({"detail": exc.reason}, exc.status, headers=PLAY_HEADERS)
        if got.redirect is not None:
            return RedirectResponse(got.redirect, got.status, headers=PLAY_HEADERS)
        headers = dict(PLAY_HEADERS)
        if got.content_range:
            headers["Content-Range"] = got.content_range
        return Response(got.body, got.status, headers=headers, media_type=got.content_type)


def _health(app: FastAPI, config: WebConfig) -> None:
    @app.get("/api/health")
    def health() -> Health:
        """Whether there is a farm to read; needs no credentials and names nothing."""
        if config.farm is None:
            return Health(status="no farm", detail=config.no_farm_reason)
        if not config.farm.store.reachable():
            return Health(status="farm unreachable")
        label = config.farm.label if config.auth.config.local else None
        return Health(status="ok", farm=label)


def _operator_api(app: FastAPI) -> None:
    ops = OPERATOR

    @app.get("/api/status", dependencies=ops)
    def status(f: FarmDep) -> StatusReport:
        """Queues, running jobs and totals (the same document as `hevcq status --json`)."""
        return f.status()

    @app.get("/api/dashboard", dependencies=ops)
    def dashboard(f: FarmDep) -> Dashboard:
        """Everything the dashboard draws."""
        return f.dashboard()

    @app.get("/api/pools", dependencies=ops)
    def pools(f: FarmDep) -> list[PoolStatus]:
        """Per pool: waiting, in flight, dead-lettered, workers alive."""
        return f.status().pools

    @app.get("/api/jobs", dependencies=ops)
    def jobs(
        f: FarmDep,
        state: State | None = None,
        pool: str | None = None,
        limit: Annotated[int, Query(ge=1, le=JOBS_PAGE_MAX)] = JOBS_PAGE,
        cursor: Annotated[str | None, Query(pattern=JOB_CURSOR_PATTERN)] = None,
    ) -> JobList:
        """A page of jobs, newest first; `next_cursor` leads to the next."""
        return f.jobs(state, _known_pool(f, pool), limit, cursor)

    @app.get("/api/jobs/{job_id}", dependencies=ops)
    def job(f: FarmDep, job_id: str) -> JobDetail:
        """One job with its objects and timings."""
        found = f.job(job_id)
        if found is None:
            raise HTTPException(404, NOT_FOUND)
        return found

    @app.get("/api/deadletters", dependencies=ops)
    def dead_letters(f: FarmDep, pool: str | None = None) -> list[DeadLetterOut]:
        """Dead-letter messages with failure class and reason."""
        return f.dead_letters(_known_pool(f, pool))

    @app.post("/api/redrive", dependencies=[*ops, Depends(_same_origin)])
    def redrive(f: FarmDep, body: RedriveRequest) -> RedriveResult:
        """Send a pool's dead letters back: all, one class, or one message."""
        if body.pool not in f.farm.refs.pools:
            raise HTTPException(404, NOT_FOUND)
        return f.redrive(body.pool, body.failure_class, body.message_id)


def _upload_api(app: FastAPI, config: WebConfig) -> None:
    # Credentials are checked first: a caller without them learns nothing else.
    @app.post(
        "/api/uploads", status_code=201, dependencies=[Depends(_caller), Depends(_same_origin)]
    )
    def create_upload(who: CallerDep, f: FarmDep, body: UploadRequest) -> UploadTicket:
        """A presigned POST for a new upload under `TODO/<id>/<filename>`."""
        upload_id = uploads.new_upload_id()
        try:
            key = uploads.upload_key(upload_id, body.filename)
            record = uploads.UploadRecord(
                id=upload_id,
                owner=who.owner,
                filename=key.rsplit("/", 1)[-1],
                key=key,
                created_at=datetime.now(UTC),
                pools=f.upload_pools(body.pools),
            )
            url, fields, expires, most = f.new_upload(
                record, body.size, config.upload_max_bytes, config.upload_ttl_s
            )
        except QuotaExceeded as exc:
            raise HTTPException(429, str(exc)) from exc
        except FARM_ERRORS:
            raise  # the farm, not the request: a 503 (see the handlers above)
        except HevcqError as exc:
            raise HTTPException(422, str(exc)) from exc
        return UploadTicket(
            id=upload_id,
            key=key,
            url=url,
            fields=fields,
            max_bytes=most,
            expires_at=expires,
        )

    @app.get("/api/videos")
    def videos(
        request: Request,
        who: CallerDep,
        f: FarmDep,
        limit: Annotated[int, Query(ge=1, le=VIDEOS_PAGE_MAX)] = VIDEOS_PAGE,
        cursor: Annotated[str | None, Query(pattern=ULID_PATTERN)] = None,
    ) -> VideoList:
        """A page of the caller's uploads, newest first; `next_cursor` leads to the next."""
        return f.videos(who.owner, limit, cursor, api_base=str(request.base_url))

    @app.get("/api/videos/{video_id}")
    def video(request: Request, who: CallerDep, f: FarmDep, video_id: str) -> VideoStatus:
        """An upload's state per pool: for each done pool a download link (a file), a
        play link (a file, or a ladder's master playlist) and a poster."""
        record = uploads.get_record(f.store, who.owner, video_id)
        if record is None:
            raise HTTPException(404, NOT_FOUND)
        return f.video(record, api_base=str(request.base_url))
