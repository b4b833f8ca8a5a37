"""The three parts of ``rtsam demo``; each writes its masks and overlays into its own folder and
returns its summary."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data import example
from ..engines.base import Engine, ProgressCallback, Prompt
from ..io import read_image, read_rtdose, read_rtstruct, write_image
from ..metrics import dice
from ..volume import Volume
from .overlay import Overlay, lesion_slice, save_overlay

RT_CASE = "dicompyler_breast_rt"
TARGET_STRUCTURE = "Tumor Bed"
DOSE_THRESHOLD = 0.8
INTERACTIVE_CASE = "brain2"
ITV_CASE = "lung2"
ITV_CROP_MM = 30.0  # the lung CT around the tumour; keeps the 4DCT small
ITV_PROPAGATION = "rigid"  # ITV4DCT's default
BOX_MARGIN_MM = 5.0


def breast_rt(out: Path, progress: ProgressCallback) -> dict:
    """Dose box at 0.8 x Dmax; our DVHs against the planning system's own (RTDOSE DVHSequence)."""
    from ..dvh import reference_dvhs, structure_dvh
    from ..prompts.dose_box import dose_box

    for name in ("rtplan.dcm", "ct.0.dcm"):  # the whole case is fetched with the rest
        example(f"{RT_CASE}/{name}")
    dose_path = example(f"{RT_CASE}/rtdose.dcm")
    dose, structures = read_rtdose(dose_path), read_rtstruct(example(f"{RT_CASE}/rtss.dcm"))
    box = dose_box(dose, threshold=DOSE_THRESHOLD)
    high = dose.with_array((dose.array >= box.threshold_gy).astype(np.uint8))
    target = structures.mask(TARGET_STRUCTURE, dose).array > 0
    files = [write_image(high, out / "dose_over_0.8_dmax.nrrd")]
    files.append(save_overlay(Overlay(dose, lesion_slice(target), {"truth": target, "mask": high.array}, box.box_lps,
                                      title=f"dose >= {DOSE_THRESHOLD} Dmax ({box.threshold_gy:.1f} Gy), "
                                            f"box; green: {TARGET_STRUCTURE}", window=(0.0, box.dmax_gy)),
                              out / "dose_box.png"))
    references = reference_dvhs(dose_path)
    rows = []
    compared = [s for s in structures.structures if s.number in references and s.contours]
    for n, structure in enumerate(compared):
        progress((n + 1) / len(compared), f"DVH {structure.name}")
        rows.append(_dvh_row(structure_dvh(dose, structures, structure.name), references[structure.number]))
    return {"dose_box": box.to_dict(), "target": TARGET_STRUCTURE,
            "target_in_box": round(_fraction_in_box(target, box.box_ijk), 4), "dvh": rows, "files": _names(files, out)}


def _dvh_row(ours, tps) -> dict:
    return {"structure": ours.name, "volume_cc": round(ours.volume_cc, 2), "tps_volume_cc": round(tps.volume_cc, 2),
            "mean_gy": round(ours.mean_gy, 3), "tps_mean_gy": round(tps.mean_gy, 3),
            "mean_diff_percent": round(100 * (ours.mean_gy / tps.mean_gy - 1), 2),
            "d95_gy": round(ours.d95_gy, 3), "tps_d95_gy": round(tps.d95_gy, 3)}


def _fraction_in_box(mask: np.ndarray, box_ijk: np.ndarray) -> float:
    (i0, j0, k0), (i1, j1, k1) = box_ijk
    return float(mask[k0:k1 + 1, j0:j1 + 1, i0:i1 + 1].sum() / mask.sum())


def brain_interactive(out: Path, engine: Engine, clicks: int = 3) -> dict:
    """The interactive protocol on a real brain MR lesion: label box + 5 mm, then simulated clicks."""
    from ..benchmark_interactive import run_interactive

    image = read_image(example(f"pyradiomics/{INTERACTIVE_CASE}_image.nrrd"))
    label = read_image(example(f"pyradiomics/{INTERACTIVE_CASE}_label.nrrd"))
    report = run_interactive(image, label, engine, clicks=clicks, margin_mm=BOX_MARGIN_MM, keep_masks=True)
    truth, files, steps, placed = label.array > 0, [], [], []
    for n, step in enumerate(report["steps"]):
        mask = step.pop("mask")
        if step["click_lps"] is not None:
            placed.append((step["click_lps"], step["positive"]))
        name = f"step{n}_{step['step'].replace(' ', '')}"
        k = round(image.lps_to_ijk(np.asarray(placed[-1][0]))[2]) if step["click_lps"] else lesion_slice(truth)
        files.append(write_image(label.with_array(mask.astype(np.uint8)), out / f"{name}_mask.nrrd"))
        files.append(save_overlay(Overlay(image, k, {"truth": truth, "mask": mask}, report["box_lps"], list(placed),
                                          title=f"{INTERACTIVE_CASE} {step['step']}: Dice {step['dice']:.3f}"),
                                  out / f"{name}.png"))
        steps.append({key: step[key] for key in ("step", "click_lps", "positive", "dice", "total_ms")})
    return {"case": INTERACTIVE_CASE, "engine": report["engine"], "weights": report["weights"],
            "box_lps": np.round(report["box_lps"], 1).tolist(), "steps": steps, "files": _names(files, out)}


def lung_itv(out: Path, engine: Engine, progress: ProgressCallback, phases: int = 4) -> dict:
    """A synthetic 4DCT (Lujan breathing) from the real lung CT; the ITV as ITV4DCT makes it by default: the
    engine segments the reference phase from a box, registration carries the result to the other phases."""
    from ..itv.bench import load_case
    from ..itv.generator import make_4dct
    from ..itv.phases import make_phases
    from ..itv.pipeline import run_itv
    from ..itv.propagate import box_from_mask

    image, lesion = load_case(ITV_CASE, ITV_CROP_MM)
    start = time.perf_counter()
    generated = make_4dct(image, lesion, phases=phases)
    generation_s = time.perf_counter() - start
    percents = [v.metadata["phase_percent"] for v in generated.phases]
    phase_set = make_phases(generated.phases, percents, f"synthetic 4DCT from {ITV_CASE}", reference=0)
    box = box_from_mask(generated.phase_masks[0], BOX_MARGIN_MM)
    result = run_itv(phase_set, Prompt(box_lps=box), engine=engine, propagation=ITV_PROPAGATION, progress=progress)
    k = lesion_slice(generated.truth_itv.array)
    files, rows = [], []
    for n, (ct, truth, mask) in enumerate(zip(generated.phases, generated.phase_masks, result.phase_masks)):
        rows.append({"phase_percent": percents[n], "dice": round(dice(mask, truth), 4)})
        files.append(write_image(mask, out / f"phase{n}_mask.nrrd"))
        files.append(_itv_overlay(ct, k, truth, mask, box if n == 0 else None, f"phase {percents[n]:g} %: Dice "
                                  f"{rows[-1]['dice']:.3f}", out / f"phase{n}.png"))
    itv_dice = round(dice(result.itv, generated.truth_itv), 4)
    files += [write_image(result.itv, out / "itv_mask.nrrd"), write_image(generated.truth_itv, out / "truth_itv.nrrd")]
    files.append(_itv_overlay(generated.phases[0], k, generated.truth_itv, result.itv, None,
                              f"ITV (union of {phases} phases): Dice {itv_dice:.3f}", out / "itv.png"))
    return {"case": ITV_CASE, "phases": phases, "shape_kji": list(image.array.shape), "propagation": ITV_PROPAGATION,
            "generation_s": round(generation_s, 2), "itv_s": result.report["timings_s"]["total_s"],
            "per_phase": rows, "itv_dice": itv_dice, "itv_ml": result.report["itv_volume_ml"],
            "truth_itv_ml": round(float(generated.truth_itv.array.sum()) * image.voxel_volume_ml, 3),
            "motion_mm": result.report["motion_mm"], "files": _names(files, out)}


def _itv_overlay(ct: Volume, k: int, truth: Volume, mask: Volume, box, title: str, path: Path) -> Path:
    outlines = {"truth": truth.array > 0, "mask": mask.array > 0}
    return save_overlay(Overlay(ct, k, outlines, box, title=title, window=(-1000.0, 400.0)), path)


def _names(files: list[Path], out: Path) -> list[str]:
    return [str(Path(f).relative_to(out.parent)) for f in files]
