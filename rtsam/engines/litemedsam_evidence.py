"""Per-slice evidence for LiteMedSAM masks: is the object on this slice, and how good is the result.

Every measure comes from the slice itself, its predicted probability and its neighbour slice:
- ``contrast``: how well the image values inside the mask separate from a ring around it
  (|mean difference| / pooled standard deviation, on the raw image values);
- ``stability``: area with probability > 0.73 over area > 0.27 (SAM's stability score,
  logit offset 1);
- ``overlap``: the fraction of the mask lying on the neighbour slice's mask (continuity);
- the decoder's predicted IoU.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

RING_MM = 3.0  # width of the ring around a mask that ``contrast`` compares against
STABLE = (0.2689, 0.7311)  # sigmoid(-1), sigmoid(+1)


def contrast(values: np.ndarray, mask: np.ndarray, spacing: tuple[float, float]) -> float:
    """|mean inside - mean in a RING_MM ring| / pooled std of ``values`` (rows y, columns x);
    0 for a mask of under 4 pixels or without a ring."""
    if np.count_nonzero(mask) < 4:
        return 0.0
    pad = int(np.ceil(RING_MM / min(spacing))) + 1
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = (slice(max(rows[0] - pad, 0), rows[-1] + pad + 1), slice(max(cols[0] - pad, 0), cols[-1] + pad + 1))
    inside = mask[crop]
    ring = (ndimage.distance_transform_edt(~inside, sampling=(spacing[1], spacing[0])) <= RING_MM) & ~inside
    if np.count_nonzero(ring) < 4:
        return 0.0
    a, b = values[crop][inside].astype(float), values[crop][ring].astype(float)
    return float(abs(a.mean() - b.mean()) / np.sqrt((a.var() + b.var()) / 2 + 1e-6))


def stability(probability: np.ndarray) -> float:
    """Area above sigmoid(+1) over area above sigmoid(-1); 0 for an empty slice."""
    loose = np.count_nonzero(probability > STABLE[0])
    return float(np.count_nonzero(probability > STABLE[1]) / loose) if loose else 0.0


def overlap(mask: np.ndarray, neighbour: np.ndarray | None) -> float:
    """The fraction of ``mask`` on ``neighbour`` (1 without a neighbour, 0 for an empty mask)."""
    if neighbour is None:
        return 1.0
    area = np.count_nonzero(mask)
    return float(np.count_nonzero(mask & neighbour) / area) if area else 0.0


def slice_evidence(values: np.ndarray, probability: np.ndarray, iou: float, neighbour: np.ndarray | None,
                   spacing: tuple[float, float]) -> dict:
    """All measures of one decoded slice (``neighbour``: the mask it was propagated from)."""
    mask = probability > 0.5
    return {"area": int(np.count_nonzero(mask)), "iou": float(iou), "stability": stability(probability),
            "contrast": contrast(values, mask, spacing), "overlap": overlap(mask, neighbour)}


def _ratio(evidence: dict, reference: dict) -> float:
    return min(evidence["contrast"] / max(reference["contrast"], 1e-6), 1.0)


# How much a propagated slice's mask looks like the object, from its evidence, the seed slice's
# and the neighbour's it was propagated from: its contrast relative to theirs (capped at 1).
PRESENCE_FEATURES = {
    "contrast_vs_seed": lambda e, seed, neighbour: _ratio(e, seed),
    "contrast_vs_neighbour": lambda e, seed, neighbour: _ratio(e, neighbour),
    "contrast_vs_both": lambda e, seed, neighbour: float(np.sqrt(_ratio(e, seed) * _ratio(e, neighbour))),
    "overlap_x_contrast_vs_neighbour": lambda e, seed, neighbour: e["overlap"] * _ratio(e, neighbour),
}

# Per-slice quality terms; a result's quality is their area-weighted mean over slices with a mask.
QUALITY_TERMS = {
    "iou": lambda e: e["iou"],
    "iou_x_stability": lambda e: e["iou"] * e["stability"],
    "iou_x_contrast": lambda e: e["iou"] * e["contrast"] / (1.0 + e["contrast"]),
    "iou_x_stability_x_contrast": lambda e: e["iou"] * e["stability"] * e["contrast"] / (1.0 + e["contrast"]),
}


def result_quality(slices: dict, term: str = "iou_x_stability") -> float:
    """Area-weighted mean of QUALITY_TERMS[``term``] over the slices with a mask (0 without)."""
    found = [e for *_, e in slices.values() if e.get("area")]
    if not found:
        return 0.0
    weights = np.array([e["area"] for e in found], dtype=float)
    return float(np.average([QUALITY_TERMS[term](e) for e in found], weights=weights))
