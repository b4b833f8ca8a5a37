"""Remote inference server (``rtsam serve``): FastAPI app, sessions, auth, wire format.

Importing this package stays light (no FastAPI) so that the client can share ``wire``;
the app lives in ``rtsam.server.app``.
"""

API_VERSION = 1
"""Bumped on any incompatible change of the HTTP API; client and server must agree."""
DEADLINE_HEADER = "X-RTSAM-Deadline"
"""Seconds the client waits for an answer; the server refuses (503) what it cannot answer by then."""
TICKET_HEADER = "X-RTSAM-Ticket"
"""On a 503: names the place the refused request keeps in the queue; its retry sends it back to take it."""
RETRY_JITTER = 1.5
"""Clients wait Retry-After times a random factor from 1 to this (so refused clients do not return at once)."""
IDEMPOTENCY_HEADER = "Idempotency-Key"
"""Names one user action; the server answers its repeats (a client's retry) without applying them again."""
