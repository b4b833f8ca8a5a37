"""Client of an rtsam server (``rtsam serve``) with the in-process engine and session interfaces.

    engine = RemoteEngine("http://gpu-box:8765", api_key="...")
    engine.test_connection()                 # versions, engine, limits
    session = open_session(image, engine)    # RemoteSession; same API as rtsam.session.Session
"""

from .engine import RemoteContext, RemoteEngine, RemoteResult
from .itv import run_remote_itv
from .session import RemoteSession, open_session
from .transport import RemoteError

__all__ = ["RemoteContext", "RemoteEngine", "RemoteError", "RemoteResult", "RemoteSession", "open_session", "run_remote_itv"]
