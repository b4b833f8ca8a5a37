"""Remote inference server (``rtsam serve``): FastAPI app, sessions, auth, wire format.

Importing this package stays light (no FastAPI) so that the client can share ``wire``;
the app lives in ``rtsam.server.app``.
"""

API_VERSION = 1
"""Bumped on any incompatible change of the HTTP API; client and server must agree."""
DEADLINE_HEADER = "X-RTSAM-Deadline"
"""Seconds the client waits for an answer; the server refuses (503) what it cannot answer by then."""
