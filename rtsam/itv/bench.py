"""ITV benchmark on synthetic 4DCTs built from the real example scans (lung2, brain1)."""

from __future__ import annotations

import time

import numpy as np

from ..data import example
from ..engines.base import Engine, Prompt
from ..errors import InputError
from ..metrics import dice
from ..volume import Volume
from .generator import make_4dct
from .phases import make_phases
from .pipeline import run_itv
from .propagate import box_from_mask
from .register import shifted_mask

CASES = ("lung2", "brain1")
PROMPTS = ("mask", "box")


def load_case(case: str, crop_mm: float | None = None) -> tuple[Volume, Volume]:
    """CT/MR and lesion mask of an example case, optionally cropped to the lesion box plus ``crop_mm``."""
    from ..io import read_image

    image = read_image(example(f"pyradiomics/{case}_image.nrrd"))
    mask = read_image(example(f"pyradiomics/{case}_label.nrrd"))
    if crop_mm is None:
        return image, mask
    voxels = np.argwhere(mask.array > 0)
    pad = np.ceil(crop_mm / np.asarray(mask.spacing[::-1])).astype(int)
    lo = np.maximum(voxels.min(axis=0) - pad, 0)
    hi = np.minimum(voxels.max(axis=0) + pad + 1, mask.array.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    origin = tuple(image.ijk_to_lps(lo[::-1]))
    crop = [Volume(v.array[box], v.spacing, origin, v.direction, v.frame_of_reference_uid, dict(v.metadata))
            for v in (image, mask)]
    return crop[0], crop[1]


def benchmark_case(case: str, phases: int = 10, engine: Engine | str | None = None, crop_mm: float | None = None,
                   device: str = "auto", propagation: str = "rigid", reference: int = 0, prompt: str = "mask",
                   **generator_options) -> dict:
    """Generate a 4DCT of ``case``, run the ITV pipeline from the reference phase's true mask (or,
    for ``prompt="box"``, a box 5 mm around it), score vs truth. Phase 0 is end-inhale (fully
    displaced); the scan itself sits at end-exhale (phases / 2)."""
    image, mask = load_case(case, crop_mm)
    start = time.perf_counter()
    generated = make_4dct(image, mask, phases=phases, **generator_options)
    generation_s = time.perf_counter() - start
    values = [v.metadata["phase_percent"] for v in generated.phases]
    phase_set = make_phases(generated.phases, values, f"generated {case}", reference)
    if prompt not in PROMPTS:
        raise InputError(f"benchmark prompt must be one of {PROMPTS}, got {prompt!r}")
    start_mask = generated.phase_masks[phase_set.reference]
    init_mask, box = (start_mask, None) if prompt == "mask" else (None, Prompt(box_lps=box_from_mask(start_mask, 5.0)))
    result = run_itv(phase_set, box, init_mask, engine=engine, device=device, propagation=propagation)
    per_phase = [dice(m, t) for m, t in zip(result.phase_masks, generated.phase_masks)]
    oracle = _exact_motion_itv(generated, phase_set.reference)
    return {
        "case": case, "shape_kji": list(image.array.shape), "phases": phases, "prompt": prompt,
        "propagation": propagation, "reference_phase": result.report["reference_phase"],
        "generation_s": round(generation_s, 2), "itv_s": result.report["timings_s"]["total_s"],
        "itv_dice": round(dice(result.itv, generated.truth_itv), 4),
        "exact_motion_itv_dice": round(dice(oracle, generated.truth_itv), 4),
        "mip_itv_dice_vs_truth": round(dice(result.mip_itv, generated.truth_itv), 4),
        "phase_dice_mean": round(float(np.mean(per_phase)), 4), "phase_dice_min": round(float(np.min(per_phase)), 4),
        "truth_itv_ml": round(float(generated.truth_itv.array.sum()) * image.voxel_volume_ml, 3),
        "itv_ml": result.report["itv_volume_ml"], "motion_mm": result.report["motion_mm"],
        "removed_components": len(result.report["removed_components"]), "empty_phases": result.report["empty_phases"],
        "device": result.report["device"], "gpu": result.report["gpu"],
    }


def _exact_motion_itv(generated, reference: int) -> Volume:
    """The reference phase's true mask moved by the generator's own lesion shifts and united: the
    best any propagation of that contour can score on these grids (nearest-neighbour truths on
    thick slices do not follow a sub-slice shift)."""
    start = generated.phase_masks[reference]
    origin = np.asarray(generated.phases[reference].metadata["shift_lps_mm"])
    moved = [shifted_mask(start, np.asarray(v.metadata["shift_lps_mm"]) - origin) for v in generated.phases]
    return start.with_array(np.any([m.array for m in moved], axis=0).astype(np.uint8), path=None)
