"""Server settings (the ``rtsam serve`` options)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    api_keys: list[str] = field(default_factory=list)
    engine: str | None = None  # registry name; None: the default engine
    checkpoint: str | None = None
    compile: bool = True  # torch.compile the engine at start-up on CUDA (sam3d)
    compile_decoder: bool = False  # also the decoder (CUDA graphs)
    engine_options: dict = field(default_factory=dict)  # engine keyword options (e.g. allow_untrained_prompts)
    device: str = "auto"  # rtsam.devices.resolve_device: CUDA when available, else CPU
    max_sessions: int = 32
    max_per_key: int | None = 16  # open sessions per API key; None: max_sessions
    max_cached: int | None = None  # sessions keeping embeddings; None: max_sessions
    idle_timeout: float = 1800.0  # seconds
    max_upload_mb: float = 256.0  # compressed request body
    max_image_mb: float = 2048.0  # decompressed image
    max_concurrent: int = 2  # predictions running at once (the rest queue)
    max_jobs: int = 2  # background jobs running at once
    deadline_s: float = 30.0  # an interactive request answered within this, or refused at once (503)
    initial_estimate_s: float = 5.0  # service time assumed for a kind before one has been measured
    key_requests_per_minute: int | None = 600  # None or 0: unlimited
    key_upload_mb_per_minute: float | None = 2048.0  # None or 0: unlimited
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_mb * 2**20)
