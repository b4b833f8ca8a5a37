"""The FastAPI application: version handshake, sessions, stateless predictions.

Routes live under ``/v1``; the OpenAPI schema is at ``/openapi.json`` (docs at ``/docs``).
Errors are JSON ``{"detail": message}`` with a 4xx status for anything the client can fix;
an unexpected failure answers 500 and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from .. import __version__
from ..engines.base import Engine, SegmentationResult, is_low_quality
from ..errors import CancelledError, RTSAMError
from . import API_VERSION, wire
from .auth import HEADER, AuthError, KeyChecker
from .config import ServerConfig
from .schemas import InfoOut, PredictIn, SessionOut, VersionOut
from .sessions import ServerSession, SessionStore, StoreError

log = logging.getLogger("rtsam.server")
CLIENT_API_HEADER = "X-RTSAM-API"
FRAME_BODY = {"requestBody": {"required": True, "content": {wire.CONTENT_TYPE: {"schema": {"type": "string",
                                                                                          "format": "binary"}}}}}
FRAME_RESPONSE = {200: {"content": {wire.CONTENT_TYPE: {}}, "description": "an rtsam wire frame"}}

api_key_header = APIKeyHeader(name=HEADER, auto_error=False, description="the server's API key")


def owner(request: Request, key: str | None = Depends(api_key_header)) -> str:
    """The API-key fingerprint that owns this request's sessions (dependency)."""
    return request.app.state.keys.owner(key, request.headers.get("authorization"))


def create_app(config: ServerConfig, engine: Engine | None = None) -> FastAPI:
    """The server app; loads ``config.engine`` on ``config.device`` unless ``engine`` is given."""
    if engine is None:
        from ..engines.registry import load_engine

        engine = load_engine(config.engine, config.checkpoint, config.device)
    store = SessionStore(engine, config.max_sessions, config.idle_timeout, config.max_cached, config.max_per_key)
    app = FastAPI(title="rtsam inference server", version=__version__, lifespan=_reaper(store),
                  description="Interactive radiotherapy segmentation: upload an image once, then prompt it.")
    app.state.config, app.state.engine, app.state.store = config, engine, store
    app.state.keys = KeyChecker(config.api_keys)
    app.state.slots = asyncio.Semaphore(config.max_concurrent)
    _add_error_handlers(app)
    _add_routes(app)
    from .interactive import router as interactive_router
    from .jobs import JobRunner, router as jobs_router

    app.state.jobs = JobRunner(config.max_jobs)
    app.include_router(interactive_router, prefix="/v1")
    app.include_router(jobs_router, prefix="/v1")
    return app


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
        return JSONResponse({"detail": message}, status_code=status, headers=headers)

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
    app.add_exception_handler(StoreError, lambda r, e: error(
        e.status, str(e), {"Retry-After": "30"} if e.status in (429, 503) else None))
    app.add_exception_handler(CancelledError, lambda r, e: error(409, str(e)))
    app.add_exception_handler(RTSAMError, lambda r, e: error(400, str(e)))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error(500, f"internal server error ({type(exc).__name__}); the server log has details")


def _add_routes(app: FastAPI) -> None:
    @app.get("/v1/version", response_model=VersionOut, tags=["handshake"])
    def version() -> VersionOut:
        """Versions for the handshake; needs no key."""
        return VersionOut(rtsam=__version__, api=API_VERSION)

    @app.get("/v1/info", response_model=InfoOut, tags=["handshake"])
    def info(request: Request, _: str = Depends(owner)) -> InfoOut:
        state = request.app.state
        return InfoOut(rtsam=__version__, api=API_VERSION, engine=state.engine.name,
                       weights=state.engine.weights_label, device=str(state.engine.device),
                       auth_required=state.keys.required, jobs=["itv"],
                       limits={**state.store.stats(), "max_upload_mb": state.config.max_upload_mb,
                               "max_image_mb": state.config.max_image_mb})

    @app.post("/v1/sessions", status_code=201, response_model=SessionOut, tags=["sessions"],
              openapi_extra=FRAME_BODY)
    async def create_session(request: Request, who: str = Depends(owner)) -> SessionOut:
        """Upload an image (a frame with one volume named ``image``) and open a session on it."""
        body = await read_body(request, request.app.state.config.max_upload_bytes)
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
    async def predict(session_id: str, body: PredictIn, request: Request, who: str = Depends(owner)) -> Response:
        """Stateless prediction with a full prompt (the ``EngineContext.predict`` interface)."""
        session = request.app.state.store.get(who, session_id)

        def run() -> SegmentationResult:
            previous = session.results.get(body.previous) if body.previous else None
            if body.previous and previous is None:
                raise RTSAMError(f"result {body.previous} is not among this session's recent results")
            return session.context().predict(body.prompt.to_prompt(), previous=previous)

        return await run_exclusive(request.app, session, run, body.probability)


class UploadTooLarge(StoreError):
    status = 413


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    too_big = UploadTooLarge(f"upload is larger than the server limit of {limit / 2**20:.0f} MiB; "
                             "crop the image or raise --max-upload-mb")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def decode_image(body: bytes, max_bytes: int):
    frame = wire.decode(body, max_bytes)
    if set(frame.arrays) != {"image"}:
        raise RTSAMError(f"upload must hold exactly one volume named 'image', got {sorted(frame.arrays)}")
    image = frame.volume("image")
    from ..engines.base import check_image

    check_image(image)
    return image


async def run_exclusive(app: FastAPI, session: ServerSession, run, probability: bool) -> Response:
    """Run ``run()`` in a worker thread holding an inference slot and the session lock.

    Waiting for a slot happens on the event loop, so queued predictions hold no worker thread
    and cheap requests (edits, status) stay fast under load."""
    def locked() -> bytes:
        with session.lock:
            result = run()
            result_id = session.remember(result)
        app.state.store.mark_cached(session)
        return result_frame(result, result_id, probability)

    async with app.state.slots:
        body = await run_in_threadpool(locked)
    return Response(body, media_type=wire.CONTENT_TYPE)


def result_frame(result: SegmentationResult, result_id: str, probability: bool) -> bytes:
    volumes = {"mask": result.mask}
    if probability:
        volumes["probability"] = result.probability
    meta = {"result_id": result_id, "quality": None if result.quality is None else float(result.quality),
            "low_quality": is_low_quality(result.quality),
            "engine": result.engine, "weights": result.weights,
            "timings_ms": {k: float(v) for k, v in result.timings_ms.items()}}
    return wire.encode_volumes(volumes, meta)
