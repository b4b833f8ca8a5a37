"""The FastAPI application: version handshake, sessions, stateless predictions.

Routes live under ``/v1``; the OpenAPI schema is at ``/openapi.json`` (docs at ``/docs``).
Errors are JSON ``{"detail": message}`` with a 4xx status for anything the client can fix;
an unexpected failure answers 500 and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from .. import __version__
from ..devices import device_info
from ..engines.base import Engine, SegmentationResult, default_presence, is_low_quality
from ..errors import CancelledError, RTSAMError
from . import API_VERSION, TICKET_HEADER, wire
from .admission import Scheduler, ServiceTimes
from .auth import HEADER, AuthError, KeyChecker
from .config import ServerConfig
from .idempotency import add_idempotency
from .limits import KeyLimits
from .schemas import InfoOut, PredictIn, SessionOut, VersionOut
from .sessions import ServerSession, SessionStore, StoreError

log = logging.getLogger("rtsam.server")
CLIENT_API_HEADER = "X-RTSAM-API"
MAX_DETAIL = 2000
FRAME_BODY = {"requestBody": {"required": True, "content": {wire.CONTENT_TYPE: {"schema": {"type": "string",
                                                                                          "format": "binary"}}}}}
FRAME_RESPONSE = {200: {"content": {wire.CONTENT_TYPE: {}}, "description": "an rtsam wire frame"}}

api_key_header = APIKeyHeader(name=HEADER, auto_error=False, description="the server's API key")


def owner(request: Request, key: str | None = Depends(api_key_header)) -> str:
    """The API-key fingerprint that owns this request's sessions (dependency); charges the key's rate."""
    who = request.app.state.keys.owner(key, request.headers.get("authorization"))
    request.app.state.limits.charge_request(who)
    return who


@dataclass(frozen=True)
class Admission:
    deadline_s: float  # the request is answered within this, or refused at once (503)
    reservation: str | None  # the ticket of this request's earlier 503: its place in the queue


def admission(request: Request,
              x_rtsam_deadline: float | None = Header(
                  None, gt=0, le=86400, description="seconds the client waits for the answer (its timeout)"),
              x_rtsam_ticket: str | None = Header(
                  None, max_length=64, description="the X-RTSAM-Ticket of this request's last 503 (keeps its place)"),
              ) -> Admission:
    """An interactive request's deadline (the server's, or the client's if shorter) and reservation."""
    configured = request.app.state.config.deadline_s
    return Admission(configured if x_rtsam_deadline is None else min(configured, x_rtsam_deadline), x_rtsam_ticket)


def create_app(config: ServerConfig, engine: Engine | None = None) -> FastAPI:
    """The server app; loads ``config.engine`` on ``config.device`` unless ``engine`` is given."""
    if engine is None:
        from ..engines.registry import load_engine

        engine = load_engine(config.engine, config.checkpoint, config.device, **config.engine_options)
        compile_warm_engine(engine, config.compile, config.compile_decoder)
    store = SessionStore(engine, config.max_sessions, config.idle_timeout, config.max_cached, config.max_per_key)
    app = FastAPI(title="rtsam inference server", version=__version__, lifespan=_reaper(store),
                  description="Interactive radiotherapy segmentation: upload an image once, then prompt it.")
    app.state.config, app.state.engine, app.state.store = config, engine, store
    app.state.keys = KeyChecker(config.api_keys)
    app.state.limits = KeyLimits(config.key_requests_per_minute, config.key_upload_mb_per_minute)
    app.state.scheduler = Scheduler(config.max_concurrent, ServiceTimes(engine.name, config.initial_estimate_s))
    _add_error_handlers(app)
    add_idempotency(app)
    _add_routes(app)
    from .interactive import router as interactive_router
    from .jobs import JobRunner, router as jobs_router

    app.state.jobs = JobRunner(config.max_jobs, app.state.scheduler)
    app.include_router(interactive_router, prefix="/v1")
    app.include_router(jobs_router, prefix="/v1")
    return app


def compile_warm_engine(engine: Engine, enabled: bool = True, decoder: bool = False) -> bool:
    """On CUDA, ``torch.compile`` an engine that can be (sam3d) once at start-up; the engine falls back
    to eager itself, with a log line, when compiling fails."""
    if not enabled or not hasattr(engine, "compile") or not str(engine.device).startswith("cuda"):
        return False
    log.info("compiling the %s engine on %s (first start takes a minute)", engine.name, engine.device)
    return engine.compile(decoder=decoder)


def _reaper(store: SessionStore):
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        async def evict_forever():
            while True:
                await asyncio.sleep(max(1.0, min(60.0, store.idle_timeout / 4)))
                closed = store.evict_idle()
                if closed:
                    log.info("closed %d idle sessions", closed)

        task = asyncio.create_task(evict_forever())
        yield
        task.cancel()

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        one_line = " ".join(str(message).split())[:MAX_DETAIL]  # also when it echoes the client's input
        return JSONResponse({"detail": one_line}, status_code=status, headers=headers)

    @app.middleware("http")
    async def check_api_version(request: Request, call_next):
        theirs = request.headers.get(CLIENT_API_HEADER)
        if theirs is not None and theirs != str(API_VERSION) and request.url.path != "/v1/version":
            return error(426, f"client speaks rtsam API {theirs} but this server (rtsam {__version__}) speaks "
                              f"API {API_VERSION}; install a matching rtsam on the client")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
        return error(422, f"invalid request: {problems}")

    app.add_exception_handler(AuthError, lambda r, e: error(401, str(e), {"WWW-Authenticate": HEADER}))
    app.add_exception_handler(StoreError, lambda r, e: error(e.status, str(e), _retry_headers(e)))
    app.add_exception_handler(CancelledError, lambda r, e: error(409, str(e)))
    app.add_exception_handler(RTSAMError, lambda r, e: error(400, str(e)))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error(500, f"internal server error ({type(exc).__name__}); the server log has details")


def _retry_headers(e: StoreError) -> dict | None:
    """Retry-After, and the ticket of a refused request's kept place."""
    if e.retry_after is None:
        return None
    ticket = getattr(e, "ticket", None)
    return {"Retry-After": str(math.ceil(e.retry_after)), **({TICKET_HEADER: ticket} if ticket else {})}


def _add_routes(app: FastAPI) -> None:
    @app.get("/v1/version", response_model=VersionOut, tags=["handshake"])
    def version() -> VersionOut:
        """Versions for the handshake; needs no key."""
        return VersionOut(rtsam=__version__, api=API_VERSION)

    @app.get("/v1/info", response_model=InfoOut, tags=["handshake"])
    def info(request: Request, _: str = Depends(owner)) -> InfoOut:
        state = request.app.state
        return InfoOut(rtsam=__version__, api=API_VERSION, engine=state.engine.name,
                       weights=state.engine.weights_label, **device_info(state.engine.device),
                       presence=default_presence(state.engine),
                       auth_required=state.keys.required, jobs=["itv"],
                       limits={**state.store.stats(), "max_upload_mb": state.config.max_upload_mb,
                               "max_image_mb": state.config.max_image_mb, "deadline_s": state.config.deadline_s,
                               "key_requests_per_minute": state.config.key_requests_per_minute,
                               "key_upload_mb_per_minute": state.config.key_upload_mb_per_minute,
                               "queue": state.scheduler.stats()})

    @app.post("/v1/sessions", status_code=201, response_model=SessionOut, tags=["sessions"],
              openapi_extra=FRAME_BODY)
    async def create_session(request: Request, who: str = Depends(owner)) -> SessionOut:
        """Upload an image (a frame with one volume named ``image``) and open a session on it."""
        request.app.state.store.check_room(who)  # before reading a body that could not be kept
        body = await read_upload(request, who)
        image = await run_in_threadpool(decode_image, body, request.app.state.config.max_image_bytes)
        session = request.app.state.store.create(who, image)
        return SessionOut(**session.info())

    @app.get("/v1/sessions/{session_id}", response_model=SessionOut, tags=["sessions"])
    def get_session(session_id: str, request: Request, who: str = Depends(owner)) -> SessionOut:
        return SessionOut(**request.app.state.store.get(who, session_id).info())

    @app.delete("/v1/sessions/{session_id}", status_code=204, tags=["sessions"])
    def close_session(session_id: str, request: Request, who: str = Depends(owner)) -> Response:
        request.app.state.store.close(who, session_id)
        return Response(status_code=204)

    @app.post("/v1/sessions/{session_id}/predict", tags=["engine"], responses=FRAME_RESPONSE,
              response_class=Response)
    async def predict(session_id: str, body: PredictIn, request: Request, who: str = Depends(owner),
                      admitted: Admission = Depends(admission)) -> Response:
        """Stateless prediction with a full prompt (the ``EngineContext.predict`` interface)."""
        session = request.app.state.store.get(who, session_id)

        def run() -> SegmentationResult:
            previous = session.results.get(body.previous) if body.previous else None
            if body.previous and previous is None:
                raise RTSAMError(f"result {body.previous} is not among this session's recent results")
            return session.context().predict(body.prompt.to_prompt(), previous=previous)

        return await run_exclusive(request.app, session, run, body.probability, "predict", admitted)


class UploadTooLarge(StoreError):
    status = 413


async def read_upload(request: Request, who: str) -> bytes:
    """An upload's body within the size limit and the key's upload budget (charged once read); a too large
    declared Content-Length is refused before anything is read."""
    limits, limit = request.app.state.limits, request.app.state.config.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise _too_big(limit)
        limits.check_upload(who, int(declared))
    body = await read_body(request, limit)
    limits.charge_upload(who, len(body))
    return body


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes (streamed, never held whole)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_big(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_big(limit: int) -> UploadTooLarge:
    return UploadTooLarge(f"upload is larger than the server limit of {limit / 2**20:.0f} MiB; "
                          "crop the image or raise --max-upload-mb")


def decode_image(body: bytes, max_bytes: int):
    frame = wire.decode(body, max_bytes)
    if set(frame.arrays) != {"image"}:
        raise RTSAMError(f"upload must hold exactly one volume named 'image', got {sorted(frame.arrays)}")
    image = frame.volume("image")
    from ..engines.base import check_image

    check_image(image)
    return image


async def run_exclusive(app: FastAPI, session: ServerSession, run, probability: bool, kind: str | None = None,
                        admitted: Admission | None = None) -> Response:
    """Run ``run()`` in a worker thread holding the session lock and, for a ``kind`` of engine work,
    an inference slot that must be answered within ``admitted.deadline_s`` (else ``Busy``, 503).

    Waiting for a slot happens on the event loop, so queued predictions hold no worker thread
    and cheap requests (edits, status) stay fast under load."""
    def locked() -> bytes:
        with session.lock:
            result = run()
            result_id = session.remember(result)
            session.warm = True
        app.state.store.mark_cached(session)
        return result_frame(result, result_id, probability)

    if kind is None:
        return Response(await run_in_threadpool(locked), media_type=wire.CONTENT_TYPE)
    kind = kind if session.warm else f"{kind} (embedding)"  # the first prediction on an image costs more
    slot = app.state.scheduler.slot(session.owner, kind, admitted.deadline_s, reservation=admitted.reservation)
    async with slot:
        body = await run_in_threadpool(locked)
    return Response(body, media_type=wire.CONTENT_TYPE)


def result_frame(result: SegmentationResult, result_id: str, probability: bool) -> bytes:
    volumes = {"mask": result.mask}
    if probability:
        volumes["probability"] = result.probability
    meta = {"result_id": result_id, "quality": None if result.quality is None else float(result.quality),
            "low_quality": is_low_quality(result.quality),
            "engine": result.engine, "weights": result.weights,
            "timings_ms": {k: float(v) for k, v in result.timings_ms.items()}, "info": result.info}
    return wire.encode_volumes(volumes, meta)
