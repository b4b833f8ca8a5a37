"""Request and response bodies (JSON) of the HTTP API; volumes travel as ``wire`` frames."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..engines.base import Prompt
from .wire import prompt_from_dict, prompt_to_dict

Point = Annotated[list[float], Field(min_length=3, max_length=3, description="LPS millimetres")]
Text = Annotated[str, Field(max_length=2000)]
Presence = Annotated[Literal["on", "off"] | None, Field(
    description="object presence per slice: on leaves slices where the object ended empty, off keeps them; "
                "null: the engine's default (GET /v1/info presence)")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClickIn(Strict):
    lps: Point
    positive: bool = True


class PromptIn(Strict):
    task: Text | None = None
    patient: Text | None = None
    box_lps: Annotated[list[Point], Field(min_length=2, max_length=2)] | None = Field(
        None, description="[[x0, y0, z0], [x1, y1, z1]] LPS mm")
    box_fitted: bool = Field(False, description="the box hugs a known segmentation: engines do not shrink it")
    clicks: Annotated[list[ClickIn], Field(max_length=1000)] = []
    presence: Presence = None

    def to_prompt(self) -> Prompt:
        return prompt_from_dict(self.model_dump())

    @classmethod
    def from_prompt(cls, prompt: Prompt) -> "PromptIn":
        return cls(**prompt_to_dict(prompt))


class PredictIn(Strict):
    prompt: PromptIn = PromptIn()
    previous: str | None = Field(None, description="result_id of an earlier result of this session to refine")
    probability: bool = Field(True, description="also return the float32 probability map")


class SegmentIn(Strict):
    probability: bool = True


class TaskIn(Strict):
    task: Text | None = None
    patient: Text | None = None


class BoxIn(Strict):
    box_lps: Annotated[list[Point], Field(min_length=2, max_length=2)] | None = None


class PresenceIn(Strict):
    presence: Presence


class VersionOut(BaseModel):
    server: str = "rtsam"
    rtsam: str
    api: int


class InfoOut(VersionOut):
    engine: str
    weights: str
    device: str
    gpu: str | None = None  # the GPU's name when the engine runs on CUDA
    presence: Literal["on", "off"] | None = None  # the engine's default object presence; None: it has no such rule
    auth_required: bool
    limits: dict
    jobs: list[str]


class SessionOut(BaseModel):
    session_id: str
    shape: list[int]
    dtype: str
    spacing: list[float]
    created_s_ago: float


class PromptState(BaseModel):
    prompt: PromptIn
    can_undo: bool
    can_redo: bool


class JobOut(BaseModel):
    job_id: str
    kind: str
    state: str  # queued, running, done, failed, cancelled
    progress: float
    message: str
    error: str | None = None
