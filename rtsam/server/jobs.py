"""Background jobs (ITV from a 4DCT) with progress, cancel and a result frame to fetch.

``POST /v1/jobs/itv`` takes a frame with volumes ``phase_0 .. phase_N`` (and optionally
``init_mask``) plus meta ``values`` (phase positions), ``prompt`` and ITV options; it
answers 202 at once. Poll ``GET /v1/jobs/{id}``, cancel with ``DELETE``, fetch
``GET /v1/jobs/{id}/result`` (volumes ``itv``, ``mip_itv``, ``phase_mask_N``, ``raw_mask_N``).
Jobs are owned by the key that submitted them, like sessions.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from ..cli.common import to_jsonable
from ..errors import CancelledError, InputError, RTSAMError
from . import wire
from .admission import BATCH, Scheduler
from .app import FRAME_BODY, FRAME_RESPONSE, owner, read_upload
from .schemas import JobOut
from .sessions import OwnerLimit, StoreFull, UnknownSession

router = APIRouter(tags=["jobs"])
JOBS_KEPT = 64  # finished jobs remembered (oldest dropped first)


class Job:
    def __init__(self, owner: str, kind: str):
        self.id, self.owner, self.kind = secrets.token_urlsafe(24), owner, kind
        self.state, self.progress, self.message, self.error = "queued", 0.0, "", None
        self.result: bytes | None = None
        self.cancelled = threading.Event()

    def out(self) -> JobOut:
        return JobOut(job_id=self.id, kind=self.kind, state=self.state, progress=round(self.progress, 4),
                      message=self.message, error=self.error)

    def run(self, work: Callable, scheduler: Scheduler) -> None:
        """Run ``work`` holding a low-priority inference slot, handed over to clicks at each progress report."""
        ticket = scheduler.hold(self.owner, f"{self.kind} step", BATCH, self.cancelled.is_set)
        if ticket is None:
            self.state = "cancelled"
            return
        self.state = "running"

        def report(fraction: float, message: str = "") -> None:
            nonlocal ticket
            self.progress, self.message = float(fraction), message
            ticket = scheduler.checkpoint(ticket, self.cancelled.is_set)
            if ticket is None:
                raise CancelledError("job cancelled while waiting for a slot")

        try:
            self.result = work(report, self.cancelled.is_set)
            self.state, self.progress = "done", 1.0
        except CancelledError:
            self.state = "cancelled"
        except RTSAMError as error:
            self.state, self.error = "failed", str(error)
        except Exception as error:  # reported to the client; the server keeps serving
            self.state, self.error = "failed", f"internal error ({type(error).__name__}: {error})"
        finally:
            if ticket is not None:
                scheduler.release(ticket)


class JobRunner:
    def __init__(self, workers: int, scheduler: Scheduler, max_pending: int = 16, max_pending_per_key: int = 4):
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="rtsam-job")
        self.scheduler = scheduler
        self.max_pending, self.max_pending_per_key = max_pending, max_pending_per_key
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.lock = threading.Lock()

    def submit(self, who: str, kind: str, work: Callable) -> Job:
        with self.lock:
            pending = [j for j in self.jobs.values() if j.state in ("queued", "running")]
            if len(pending) >= self.max_pending:
                raise StoreFull(f"{len(pending)} jobs are queued or running (limit {self.max_pending}); retry later")
            mine = sum(j.owner == who for j in pending)
            if mine >= self.max_pending_per_key:
                raise OwnerLimit(f"this API key already has {mine} jobs queued or running (limit "
                                 f"{self.max_pending_per_key}); wait for one to finish")
            job = Job(who, kind)
            self.jobs[job.id] = job
            finished = [j for j in self.jobs.values() if j.state not in ("queued", "running")]
            for old in finished[: max(0, len(finished) - JOBS_KEPT)]:
                del self.jobs[old.id]
        self.pool.submit(job.run, work, self.scheduler)
        return job

    def get(self, who: str, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.owner != who:
            raise UnknownSession(f"unknown job {job_id}")
        return job


@router.post("/jobs/itv", status_code=202, response_model=JobOut, openapi_extra=FRAME_BODY)
async def submit_itv(request: Request, who: str = Depends(owner)) -> JobOut:
    """Start an ITV job on uploaded phases; returns at once with the job id."""
    config = request.app.state.config
    body = await read_upload(request, who)
    phases, prompt, init_mask, options = await run_in_threadpool(itv_inputs, body, config.max_image_bytes)
    engine = request.app.state.engine

    def work(progress, cancel) -> bytes:
        from ..itv.pipeline import run_itv

        result = run_itv(phases, prompt, init_mask, engine=engine, progress=progress, cancel=cancel, **options)
        volumes = {"itv": result.itv, "mip_itv": result.mip_itv}
        volumes.update({f"phase_mask_{n}": m for n, m in enumerate(result.phase_masks)})
        volumes.update({f"raw_mask_{n}": m for n, m in enumerate(result.raw_masks)})
        return wire.encode_volumes(volumes, {"report": to_jsonable(result.report)})

    return request.app.state.jobs.submit(who, "itv", work).out()


def itv_inputs(body: bytes, max_bytes: int):
    """Phases, prompt, initial mask and options from an ITV upload frame."""
    from ..itv.phases import make_phases

    frame = wire.decode(body, max_bytes)
    meta = frame.meta
    names = sorted((n for n in frame.arrays if n.startswith("phase_")), key=lambda n: int(n[6:]))
    values = meta.get("values") or list(range(len(names)))
    if len(values) != len(names):
        raise InputError(f"{len(names)} phase volumes but {len(values)} phase values")
    phases = make_phases([frame.volume(n) for n in names], [float(v) for v in values], "upload",
                         int(meta.get("reference", 0)))
    prompt = wire.prompt_from_dict(meta["prompt"]) if meta.get("prompt") else None
    init_mask = frame.volume("init_mask") if "init_mask" in frame.arrays else None
    allowed = {"window", "method", "voxelwise", "margin_mm", "propagation"}
    unknown = set(meta.get("options", {})) - allowed
    if unknown:
        raise InputError(f"unknown ITV options {sorted(unknown)}; allowed: {sorted(allowed)}")
    return phases, prompt, init_mask, dict(meta.get("options", {}))


@router.get("/jobs/{job_id}", response_model=JobOut)
def job_status(job_id: str, request: Request, who: str = Depends(owner)) -> JobOut:
    return request.app.state.jobs.get(who, job_id).out()


@router.delete("/jobs/{job_id}", response_model=JobOut)
def cancel_job(job_id: str, request: Request, who: str = Depends(owner)) -> JobOut:
    """Cancel a queued or running job (it stops at its next check); a finished job is unchanged."""
    job = request.app.state.jobs.get(who, job_id)
    job.cancelled.set()
    return job.out()


@router.get("/jobs/{job_id}/result", responses=FRAME_RESPONSE, response_class=Response)
def job_result(job_id: str, request: Request, who: str = Depends(owner)) -> Response:
    job = request.app.state.jobs.get(who, job_id)
    if job.state == "failed":
        raise InputError(f"job {job_id} failed: {job.error}")
    if job.state != "done":
        raise CancelledError(f"job {job_id} is {job.state}, not done") if job.state == "cancelled" else \
            InputError(f"job {job_id} is {job.state} ({job.progress:.0%}); poll GET /v1/jobs/{job_id}")
    return Response(job.result, media_type=wire.CONTENT_TYPE)
