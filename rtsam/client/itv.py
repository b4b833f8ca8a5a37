"""ITV from a 4DCT as a background job on the server, with progress and cancel."""

from __future__ import annotations

import time
from typing import Callable

from ..engines.base import ProgressCallback, Prompt
from ..errors import CancelledError, RTSAMError
from ..server import wire
from .engine import RemoteEngine


def run_remote_itv(engine: RemoteEngine, phases, prompt: Prompt | None = None, init_mask=None,
                   progress: ProgressCallback | None = None, cancel: Callable[[], bool] | None = None,
                   poll_s: float = 0.5, **options):
    """``rtsam.itv.pipeline.run_itv`` on the server: same inputs (``phases`` is an ``itv.phases.Phases``),
    same ``ITVResult`` back; ``cancel()`` returning True cancels the server job."""
    from ..itv.pipeline import ITVResult

    volumes = {f"phase_{n}": v for n, v in enumerate(phases.volumes)}
    if init_mask is not None:
        volumes["init_mask"] = init_mask
    meta = {"values": list(phases.values), "reference": phases.reference, "options": options,
            "prompt": None if prompt is None else wire.prompt_to_dict(prompt)}
    http = engine.transport
    job = http.request("POST", "/v1/jobs/itv", content=wire.encode_volumes(volumes, meta), idempotent=False,
                       headers={"Content-Type": wire.CONTENT_TYPE}).json()
    path = f"/v1/jobs/{job['job_id']}"
    while job["state"] in ("queued", "running"):
        if cancel is not None and cancel():
            http.request("DELETE", path)
            raise CancelledError("ITV job cancelled by the user")
        if progress is not None:
            progress(job["progress"], job["message"] or job["state"])
        time.sleep(poll_s)
        job = http.request("GET", path).json()
    if job["state"] != "done":
        raise RTSAMError(f"ITV job {job['state']}: {job.get('error') or 'no result'}")
    frame = wire.decode(http.request("GET", f"{path}/result").content)
    count = len(phases.volumes)
    return ITVResult(itv=frame.volume("itv"), phase_masks=[frame.volume(f"phase_mask_{n}") for n in range(count)],
                     raw_masks=[frame.volume(f"raw_mask_{n}") for n in range(count)],
                     mip_itv=frame.volume("mip_itv"), report=frame.meta["report"])
