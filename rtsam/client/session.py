"""``RemoteSession``: ``rtsam.session.Session`` with its engine on a server.

Prompt edits, undo and redo run locally (no network round trip per edit); ``predict`` sends
the prompt and the previous result's id to the server, which keeps the image embeddings.
The Slicer logic therefore only chooses the class (or calls ``open_session``).
"""

from __future__ import annotations

from ..engines.base import Engine
from ..errors import InputError
from ..session import Session
from ..volume import Volume
from .engine import RemoteContext, RemoteEngine


class RemoteSession(Session):
    def __init__(self, image: Volume, engine: RemoteEngine):
        if not isinstance(engine, RemoteEngine):
            raise InputError(f"RemoteSession needs a RemoteEngine, got {type(engine).__name__}")
        super().__init__(image, engine)

    @property
    def session_id(self) -> str:
        return self.context.session_id

    @property
    def context(self) -> RemoteContext:
        return self._context

    def close(self) -> None:
        """Free the image and embeddings on the server."""
        self.context.close()

    def __enter__(self) -> "RemoteSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_session(image: Volume, engine: Engine) -> Session:
    """A ``RemoteSession`` for a ``RemoteEngine``, else an in-process ``Session``."""
    return RemoteSession(image, engine) if isinstance(engine, RemoteEngine) else Session(image, engine)
