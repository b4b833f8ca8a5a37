"""An interactive segmentation session: one image, one engine, prompts edited step by step.

The engine context (and so the image embedding) is created once per session; each
``predict`` re-uses it and feeds back the previous result. Every prompt edit is one undo
step; ``undo``/``redo`` restore the prompt together with the result shown at that time.
All methods take one lock, so a server thread and a UI thread can share a session.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass

import numpy as np

from .engines.base import Click, Engine, Prompt, ProgressCallback, SegmentationResult, validate_box
from .errors import InputError
from .volume import Volume


@dataclass
class _State:
    prompt: Prompt
    result: SegmentationResult | None


class Session:
    def __init__(self, image: Volume, engine: Engine, context=None):
        """``context``: an open engine context on ``image`` to share (its cached embeddings)."""
        self.image = image
        self.engine = engine
        self._context = engine.open(image) if context is None else context
        self._state = _State(Prompt(), None)
        self._undo: list[_State] = []
        self._redo: list[_State] = []
        self._lock = threading.RLock()

    # --- state ----------------------------------------------------------------------
    @property
    def prompt(self) -> Prompt:
        """A copy of the current prompt."""
        with self._lock:
            return copy.deepcopy(self._state.prompt)

    @property
    def result(self) -> SegmentationResult | None:
        """The latest prediction for the current prompt history (None before the first)."""
        with self._lock:
            return self._state.result

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def history(self) -> tuple[int, int]:
        """How many steps undo and redo can go."""
        with self._lock:
            return len(self._undo), len(self._redo)

    # --- prompt edits (one undo step each) ------------------------------------------
    def set_task(self, task: str | None, patient: str | None = None) -> None:
        self._edit(lambda p: (setattr(p, "task", task or None), setattr(p, "patient", patient or None)))

    def set_box(self, box_lps) -> None:
        """Set the 3D box ([[x0, y0, z0], [x1, y1, z1]] or 6 numbers, LPS mm), or None to clear it."""
        box = None if box_lps is None else validate_box(box_lps)
        Prompt(box_lps=box).validate_against(self.image)
        self._edit(lambda p: setattr(p, "box_lps", box))

    def set_presence(self, presence: str | None) -> None:
        """Object presence per slice: "on" leaves slices where the object ended empty, "off" keeps them,
        None follows the engine's own setting."""
        Prompt(presence=presence)  # validates
        self._edit(lambda p: setattr(p, "presence", presence))

    def add_click(self, lps, positive: bool = True) -> int:
        """Add a click (LPS mm); returns its index."""
        click = Click(tuple(np.asarray(lps, dtype=float).ravel()), bool(positive))
        self.image.check_inside(click.lps, "click")
        with self._lock:
            self._edit(lambda p: p.clicks.append(click))
            return len(self._state.prompt.clicks) - 1

    def remove_click(self, index: int) -> None:
        with self._lock:
            count = len(self._state.prompt.clicks)
            if not -count <= index < count:
                raise InputError(f"no click {index}: the session has {count} click(s)")
            self._edit(lambda p: p.clicks.pop(index))

    def _edit(self, change) -> None:
        with self._lock:
            prompt = copy.deepcopy(self._state.prompt)
            change(prompt)
            self._undo.append(self._state)
            self._redo.clear()
            self._state = _State(prompt, self._state.result)

    # --- history --------------------------------------------------------------------
    def undo(self) -> bool:
        """Back to the previous prompt and its result; False when there is nothing to undo."""
        with self._lock:
            if not self._undo:
                return False
            self._redo.append(self._state)
            self._state = self._undo.pop()
            return True

    def redo(self) -> bool:
        with self._lock:
            if not self._redo:
                return False
            self._undo.append(self._state)
            self._state = self._redo.pop()
            return True

    # --- prediction -----------------------------------------------------------------
    def predict(self, progress: ProgressCallback | None = None, cancel=None) -> SegmentationResult:
        """Segment with the current prompt, feeding back the previous result."""
        with self._lock:
            state = self._state
            result = self._context.predict(copy.deepcopy(state.prompt), previous=state.result,
                                           progress=progress, cancel=cancel)
            state.result = result
            return result
