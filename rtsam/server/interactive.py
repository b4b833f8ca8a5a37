"""Routes mirroring ``rtsam.session.Session``: task, box, presence, clicks, undo/redo, segment.

The server keeps the prompt history, so a thin client (``rtsam.client.RemoteSession``) sends
one small JSON request per user action and gets the mask back from ``segment``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from ..errors import InputError
from .app import FRAME_RESPONSE, Admission, admission, owner, run_exclusive
from .schemas import BoxIn, ClickIn, PresenceIn, PromptIn, PromptState, SegmentIn, TaskIn

router = APIRouter(tags=["interactive session"])


def _state(session) -> PromptState:
    return PromptState(prompt=PromptIn.from_prompt(session.prompt), can_undo=bool(session.can_undo),
                       can_redo=bool(session.can_redo))


def _edit(request: Request, session_id: str, who: str, action) -> PromptState:
    """Apply ``action(session)`` under the session lock and return the new prompt state."""
    server_session = request.app.state.store.get(who, session_id)
    with server_session.lock:
        interactive = server_session.interactive()
        action(interactive)
        return _state(interactive)


@router.get("/sessions/{session_id}/prompt", response_model=PromptState)
def get_prompt(session_id: str, request: Request, who: str = Depends(owner)) -> PromptState:
    return _edit(request, session_id, who, lambda s: None)


@router.put("/sessions/{session_id}/task", response_model=PromptState)
def set_task(session_id: str, body: TaskIn, request: Request, who: str = Depends(owner)) -> PromptState:
    return _edit(request, session_id, who, lambda s: s.set_task(body.task, patient=body.patient))


@router.put("/sessions/{session_id}/box", response_model=PromptState)
def set_box(session_id: str, body: BoxIn, request: Request, who: str = Depends(owner)) -> PromptState:
    return _edit(request, session_id, who, lambda s: s.set_box(body.box_lps))


@router.put("/sessions/{session_id}/presence", response_model=PromptState)
def set_presence(session_id: str, body: PresenceIn, request: Request, who: str = Depends(owner)) -> PromptState:
    """Object presence per slice for the next segment (one undo step); null: the engine's default."""
    return _edit(request, session_id, who, lambda s: s.set_presence(body.presence))


@router.post("/sessions/{session_id}/clicks", response_model=PromptState)
def add_click(session_id: str, body: ClickIn, request: Request, who: str = Depends(owner)) -> PromptState:
    return _edit(request, session_id, who, lambda s: s.add_click(tuple(body.lps), positive=body.positive))


@router.delete("/sessions/{session_id}/clicks/{index}", response_model=PromptState)
def remove_click(session_id: str, index: int, request: Request, who: str = Depends(owner)) -> PromptState:
    return _edit(request, session_id, who, lambda s: s.remove_click(index))


@router.post("/sessions/{session_id}/undo", response_model=PromptState)
def undo(session_id: str, request: Request, who: str = Depends(owner)) -> PromptState:
    return _edit(request, session_id, who, lambda s: s.undo())


@router.post("/sessions/{session_id}/redo", response_model=PromptState)
def redo(session_id: str, request: Request, who: str = Depends(owner)) -> PromptState:
    return _edit(request, session_id, who, lambda s: s.redo())


@router.post("/sessions/{session_id}/segment", responses=FRAME_RESPONSE, response_class=Response)
async def segment(session_id: str, body: SegmentIn, request: Request, who: str = Depends(owner),
                  admitted: Admission = Depends(admission)) -> Response:
    """Run ``Session.predict()`` on the current prompt (embeddings are reused across calls)."""
    server_session = request.app.state.store.get(who, session_id)
    return await run_exclusive(request.app, server_session, lambda: server_session.interactive().predict(),
                               body.probability, "segment", admitted)


@router.get("/sessions/{session_id}/result", responses=FRAME_RESPONSE, response_class=Response)
async def current_result(session_id: str, request: Request, probability: bool = True, who: str = Depends(owner)) -> Response:
    """The result shown for the current prompt history (after undo/redo: the one shown then)."""
    server_session = request.app.state.store.get(who, session_id)

    def current():
        result = server_session.interactive().result
        if result is None:
            raise InputError("this session has no result yet: call segment first")
        return result

    return await run_exclusive(request.app, server_session, current, probability)
