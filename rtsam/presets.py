"""RTInjurySAM task presets: prompt text, segment name, colour and SNOMED CT codes per finding.

Codes are ``"scheme^code^meaning"`` strings (Slicer's terminology notation); the Slicer module
and the DICOM SEG/RTSTRUCT export both use them.
"""

from __future__ import annotations

from dataclasses import dataclass

ALTERED_STRUCTURE = "SCT^49755003^Morphologically Altered Structure"  # category of every finding and lesion


@dataclass(frozen=True)
class TaskPreset:
    key: str
    text: str  # the prompt sent to the text encoder
    segment_name: str
    color: tuple[float, float, float]
    type_code: str
    region_code: str
    category_code: str = ALTERED_STRUCTURE


PRESETS = {
    p.key: p
    for p in (
        TaskPreset("osteoradionecrosis", "osteoradionecrosis of the mandible after head and neck radiotherapy",
                   "Osteoradionecrosis", (0.90, 0.60, 0.10), "SCT^6574001^Necrosis", "SCT^91609006^Mandible"),
        TaskPreset("cerebral edema", "cerebral edema after brain radiotherapy",
                   "Cerebral edema", (0.20, 0.60, 1.00), "SCT^79654002^Edema", "SCT^12738006^Brain"),
        TaskPreset("cerebral radiation necrosis", "cerebral radiation necrosis after brain radiotherapy",
                   "Cerebral radiation necrosis", (0.85, 0.15, 0.15), "SCT^6574001^Necrosis", "SCT^12738006^Brain"),
    )
}


def preset_for(task: str | None) -> TaskPreset | None:
    """The preset whose key or segment name is ``task`` (case-insensitive), else None."""
    return PRESETS.get((task or "").strip().lower())
