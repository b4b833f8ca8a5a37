"""Per-slice evidence for LiteMedSAM masks: is the object on this slice, and how good is the result.

Every measure comes from the slice itself, its predicted probability, its neighbour slice and the
seed (middle) slice:
- ``contrast``: how well the image values inside the mask separate from a ring around it
  (|mean difference| / pooled standard deviation, on the raw image values);
- ``stability``: area with probability > 0.73 over area > 0.27 (SAM's stability score,
  logit offset 1);
- ``overlap``: the fraction of the mask lying on the neighbour slice's mask (continuity);
- the decoder's predicted IoU;
- ``likeness`` / ``ring_likeness``: the fraction of the mask's / its ring's pixels whose value is
  more likely under the SEED slice's inside histogram than under its ring's (``SeedModel``): it
  compares every slice with the seed directly, so blur or resolution does not compound from
  neighbour to neighbour;
- ``embedding_gap``: the same comparison in LiteMedSAM's own image features: cos(the slice's mean
  embedding under its mask, the seed mask's) - cos(it, the seed ring's) (``SeedPrototype``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

RING_MM = 3.0  # width of the ring around a mask that ``contrast`` compares against
STABLE = (0.2689, 0.7311)  # sigmoid(-1), sigmoid(+1)
LIKENESS_BINS = 32
PROTOTYPE_RING_CELLS = 2  # embedding cells (4 pixels of the 256 grid each) around the seed's mask


def inside_and_ring(values: np.ndarray, mask: np.ndarray, spacing: tuple[float, float]):
    """(values inside ``mask``, values in the RING_MM ring around it), or None for a mask of under
    4 pixels or without a ring (rows y, columns x)."""
    if np.count_nonzero(mask) < 4:
        return None
    pad = int(np.ceil(RING_MM / min(spacing))) + 1
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = (slice(max(rows[0] - pad, 0), rows[-1] + pad + 1), slice(max(cols[0] - pad, 0), cols[-1] + pad + 1))
    inside = mask[crop]
    ring = (ndimage.distance_transform_edt(~inside, sampling=(spacing[1], spacing[0])) <= RING_MM) & ~inside
    if np.count_nonzero(ring) < 4:
        return None
    return values[crop][inside].astype(float), values[crop][ring].astype(float)


def contrast(values: np.ndarray, mask: np.ndarray, spacing: tuple[float, float]) -> float:
    """|mean inside - mean in a RING_MM ring| / pooled std of ``values`` (rows y, columns x);
    0 for a mask of under 4 pixels or without a ring."""
    return _separation(inside_and_ring(values, mask, spacing))


def _separation(found) -> float:
    """``contrast`` of an ``inside_and_ring`` pair (0 for None)."""
    if found is None:
        return 0.0
    a, b = found
    return float(abs(a.mean() - b.mean()) / np.sqrt((a.var() + b.var()) / 2 + 1e-6))


@dataclass(frozen=True)
class SeedModel:
    """Which image values the seed slice's mask holds more of than its ring: per histogram bin
    (LIKENESS_BINS between the 1st and 99th percentile of both), whether the inside's frequency
    (+1/2 each bin) beats the ring's."""

    edges: np.ndarray
    inside_like: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, mask: np.ndarray, spacing: tuple[float, float]) -> "SeedModel | None":
        return cls.from_pair(inside_and_ring(values, mask, spacing))

    @classmethod
    def from_pair(cls, found) -> "SeedModel | None":
        """The model of an ``inside_and_ring`` pair (None for None)."""
        if found is None:
            return None
        a, b = found
        lo, hi = np.percentile(np.concatenate([a, b]), [1, 99])
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, LIKENESS_BINS + 1)
        frequency = [(np.histogram(np.clip(v, edges[0], edges[-1]), edges)[0] + 0.5) / (len(v) + 0.5 * LIKENESS_BINS)
                     for v in (a, b)]
        return cls(edges, frequency[0] > frequency[1])

    def likeness(self, values: np.ndarray) -> float:
        """The fraction of ``values`` in bins where the seed's inside is more frequent (0 for none)."""
        if values.size == 0:
            return 0.0
        bins = np.clip(np.searchsorted(self.edges, values, side="right") - 1, 0, LIKENESS_BINS - 1)
        return float(self.inside_like[bins].mean())


@dataclass(frozen=True)
class SeedPrototype:
    """The seed slice's mean image embedding under its mask and in a ring PROTOTYPE_RING_CELLS
    embedding cells wide around it (``shares``: the mask's share of each embedding cell)."""

    inside: np.ndarray
    ring: np.ndarray

    @classmethod
    def of(cls, embedding: np.ndarray, shares: np.ndarray) -> "SeedPrototype | None":
        covered = shares > 0
        ring = ndimage.binary_dilation(covered, iterations=PROTOTYPE_RING_CELLS) & ~covered
        inside, around = mean_feature(embedding, shares), mean_feature(embedding, ring.astype(np.float32))
        return None if inside is None or around is None else cls(inside, around)

    def gap(self, embedding: np.ndarray, shares: np.ndarray) -> float:
        """cos(mean feature under ``shares``, the seed's inside) - cos(it, the seed's ring); 0 for an empty mask."""
        feature = mean_feature(embedding, shares)
        return 0.0 if feature is None else _cos(feature, self.inside) - _cos(feature, self.ring)


def mean_feature(embedding: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The ``weights``-weighted mean over cells of a (channels, rows, cols) embedding (None for no weight)."""
    total = float(weights.sum())
    return None if total <= 0 else np.tensordot(embedding, weights, axes=([1, 2], [0, 1])) / total


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))


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
                   spacing: tuple[float, float], features: tuple[np.ndarray, np.ndarray],
                   seed: tuple[SeedModel | None, SeedPrototype | None] | None = None) -> dict:
    """All measures of one decoded slice (``neighbour``: the mask it was propagated from; ``features``:
    the slice's embedding and the mask's share of each of its cells; ``seed``: the seed slice's
    models, None on the seed slice itself, which is then measured against its own)."""
    mask = probability > 0.5
    found = inside_and_ring(values, mask, spacing)
    model, prototype = seed or (SeedModel.from_pair(found), SeedPrototype.of(*features))
    likeness = (0.0, 0.0) if found is None or model is None else (model.likeness(found[0]), model.likeness(found[1]))
    return {"area": int(np.count_nonzero(mask)), "iou": float(iou), "stability": stability(probability),
            "contrast": _separation(found), "overlap": overlap(mask, neighbour),
            "likeness": likeness[0], "ring_likeness": likeness[1],
            "embedding_gap": 0.0 if prototype is None else prototype.gap(*features)}


def _capped(a: float, b: float) -> float:
    return min(a / max(b, 1e-6), 1.0)


# How much a propagated slice's mask looks like the object, from its evidence ``e``, the seed slice's
# and the neighbour's it was propagated from (each the higher, the more present).
PRESENCE_FEATURES = {
    "contrast": lambda e, seed, neighbour: e["contrast"],
    "contrast_vs_seed": lambda e, seed, neighbour: _capped(e["contrast"], seed["contrast"]),
    "contrast_vs_neighbour": lambda e, seed, neighbour: _capped(e["contrast"], neighbour["contrast"]),
    "contrast_vs_both": lambda e, seed, neighbour: float(np.sqrt(_capped(e["contrast"], seed["contrast"])
                                                                 * _capped(e["contrast"], neighbour["contrast"]))),
    "overlap_x_contrast_vs_neighbour": lambda e, seed, neighbour: e["overlap"] * _capped(e["contrast"],
                                                                                         neighbour["contrast"]),
    "likeness": lambda e, seed, neighbour: e["likeness"],
    "likeness_vs_seed": lambda e, seed, neighbour: _capped(e["likeness"], seed["likeness"]),
    "likeness_gap": lambda e, seed, neighbour: e["likeness"] - e["ring_likeness"],
    "not_growing": lambda e, seed, neighbour: _capped(neighbour["area"], e["area"]),
    "not_growing_vs_seed": lambda e, seed, neighbour: _capped(seed["area"], e["area"]),
    "overlap": lambda e, seed, neighbour: e["overlap"],
    "embedding_gap": lambda e, seed, neighbour: e["embedding_gap"],
}


# Per-slice quality terms; a result's quality is their area-weighted mean over slices with a mask.
QUALITY_TERMS = {
    "iou": lambda e: e["iou"],
    "iou_x_stability": lambda e: e["iou"] * e["stability"],
    "iou_x_contrast": lambda e: e["iou"] * e["contrast"] / (1.0 + e["contrast"]),
    "iou_x_stability_x_contrast": lambda e: e["iou"] * e["stability"] * e["contrast"] / (1.0 + e["contrast"]),
}


def result_quality(slices: dict, term: str) -> float:
    """Area-weighted mean of QUALITY_TERMS[``term``] over the slices with a mask (0 without)."""
    found = [e for *_, e in slices.values() if e.get("area") and e.get("present", True)]
    if not found:
        return 0.0
    weights = np.array([e["area"] for e in found], dtype=float)
    return float(np.average([QUALITY_TERMS[term](e) for e in found], weights=weights))

