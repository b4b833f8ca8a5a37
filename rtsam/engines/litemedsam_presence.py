"""Object presence per slice for LiteMedSAM: where, walking out from the seed slice, the object ends."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .litemedsam_evidence import PRESENCE_FEATURES


@dataclass(frozen=True)
class PresenceRule:
    """When a propagated box-only slice fails: every (feature, threshold) of ``conditions`` scores
    below its threshold (any of them, with ``join="any"``), and the slice lies more than
    ``guard_mm`` from the seed and more than the fraction ``inner`` of the way from the seed to the
    box's last slice on its side. The object ends at the first of ``run`` consecutive failing
    slices (past the box's last slice counts as failing when ``edge_fails``): those and every
    slice beyond them are left empty."""

    conditions: tuple[tuple[str, float], ...]
    run: int = 1
    guard_mm: float = 0.0
    edge_fails: bool = True
    join: str = "all"
    inner: float = 0.0

    def __post_init__(self):
        unknown = [f for f, _ in self.conditions if f not in PRESENCE_FEATURES]
        if unknown or not self.conditions or self.run < 1 or self.join not in ("all", "any"):
            raise InputError(f"a presence rule needs 1+ conditions on {', '.join(PRESENCE_FEATURES)}, run >= 1 "
                             "and join all or any")

    def fails(self, evidence: dict, seed: dict, neighbour: dict, distance_mm: float, depth: float) -> bool:
        """``depth``: the slice's distance from the seed over the box's last slice's on its side."""
        if distance_mm <= self.guard_mm or depth <= self.inner:
            return False
        below = (PRESENCE_FEATURES[f](evidence, seed, neighbour) < t for f, t in self.conditions)
        return all(below) if self.join == "all" else any(below)

    def __str__(self) -> str:
        text = f" {'and' if self.join == 'all' else 'or'} ".join(f"{f} < {t:g}" for f, t in self.conditions)
        extra = [f"{self.run} in a row{'' if self.edge_fails else ' (box end passes)'}"] if self.run > 1 else []
        extra += [f"beyond {self.guard_mm:g} mm of the seed"] if self.guard_mm else []
        extra += [f"in the outer {1 - self.inner:.0%} of the box"] if self.inner else []
        return text + "".join(f", {x}" for x in extra)


class PresenceWalk:
    """Follows ``rule`` slice by slice as the prediction walks out from the seed (``order``: (slice,
    slice it propagates from) pairs, the seed first): which failing slices to clear, and where the
    object has ended (every slice beyond is left empty without decoding)."""

    def __init__(self, rule: PresenceRule | None, order: list[tuple[int, int | None]], slice_mm: float):
        self.rule, self.slice_mm = rule, slice_mm
        self.seed = order[0][0]
        sources = {s for _, s in order}
        self.outermost = {k for k, _ in order if k not in sources}  # the box's last slice each way
        self.reach = {np.sign(k - self.seed): abs(k - self.seed) for k in self.outermost if k != self.seed}
        self.failing: dict[int, list[int]] = {}  # slice -> the failing slices in a row ending at it
        self.ended: set[int] = set()

    def beyond_end(self, source: int | None) -> bool:
        return source in self.ended

    def skipped(self, k: int) -> dict:
        """The evidence of a slice beyond the end (not decoded)."""
        self.ended.add(k)
        return {"present": False, "skipped": True}

    def judge(self, k: int, source: int | None, evidence: dict, seed: dict | None, neighbour: dict | None,
              clicked: bool) -> list[int]:
        """Record slice ``k``'s evidence ("fails"); returns the slices to clear when the object ends at it."""
        distance = abs(k - self.seed)
        evidence["fails"] = bool(self.rule is not None and not clicked and source is not None and self.rule.fails(
            evidence, seed, neighbour, distance * self.slice_mm, distance / self.reach[np.sign(k - self.seed)]))
        return self.follow(k, source, evidence)

    def follow(self, k: int, source: int | None, evidence: dict) -> list[int]:
        """Follow a slice whose evidence is already judged (kept from the previous result)."""
        if evidence.get("skipped") or evidence.get("ended"):
            self.ended.add(k)
            return []
        run = self.failing.get(source, []) + [k] if evidence.get("fails") else []
        self.failing[k] = run
        if run and (len(run) >= self.rule.run or (k in self.outermost and self.rule.edge_fails)):
            self.ended.add(k)
            evidence["ended"] = True
            return run
        return []
