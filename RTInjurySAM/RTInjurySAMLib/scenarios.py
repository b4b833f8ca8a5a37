"""End-to-end scenarios on real data, shared by pytest and the Slicer self-test.

Each returns measurements; the callers assert on them. Crops keep the model work small.
"""

from __future__ import annotations

import numpy as np

from rtsam.metrics import dice
from rtsam.volume import Volume

from RTSAMCommon.mrml_convert import add_volume_node, roi_box_lps, segment_mask, set_roi_box
from RTSAMCommon.segments import DOSE_ATTRIBUTE

from .logic import RTInjurySAMLogic


def crop(volume: Volume, start_ijk, stop_ijk) -> Volume:
    """Sub-volume from ``start_ijk`` (inclusive) to ``stop_ijk`` (exclusive), LPS geometry kept."""
    start, stop = np.maximum(np.asarray(start_ijk, int), 0), np.minimum(np.asarray(stop_ijk, int), volume.size_ijk)
    array = volume.array[start[2]:stop[2], start[1]:stop[1], start[0]:stop[0]]
    return Volume(np.ascontiguousarray(array), volume.spacing, tuple(volume.ijk_to_lps(start)), volume.direction,
                  volume.frame_of_reference_uid, dict(volume.metadata))


def crop_near_lesion(image: Volume, label: Volume, margin_mm: float = 12.0, slices: int = 2):
    """Image and label cropped around the lesion: in-plane margin, ``slices`` central lesion slices."""
    k, j, i = np.nonzero(label.array)
    lo = np.array([i.min(), j.min(), 0]) - np.ceil(margin_mm / np.asarray(image.spacing)).astype(int)
    hi = np.array([i.max(), j.max(), 0]) + np.ceil(margin_mm / np.asarray(image.spacing)).astype(int) + 1
    centre = int(np.argmax(np.bincount(k)))  # the slice with the largest lesion area
    lo[2], hi[2] = centre - slices // 2, centre - slices // 2 + slices
    return crop(image, lo, hi), crop(label, lo, hi)


def mask_box_lps(mask: Volume, margin_mm: float = 2.0) -> np.ndarray:
    """Axis-aligned LPS box around the voxel centres of a mask, grown by ``margin_mm``."""
    ijk = np.argwhere(mask.array > 0)[:, ::-1]
    lps = mask.ijk_to_lps(ijk)
    return np.array([lps.min(axis=0) - margin_mm, lps.max(axis=0) + margin_mm])


def load_brain_case(scene, image_path, label_path):
    """The pyradiomics brain1 MR (direction diag(1, -1, 1)) cropped near its tumour, as a scene node."""
    from rtsam.io import read_image

    image, label = crop_near_lesion(read_image(image_path), binary_mask(read_image(label_path)))
    return add_volume_node(scene, image, "brain1 crop"), label


def binary_mask(volume: Volume) -> Volume:
    """A 0/1 uint8 copy of a label volume."""
    return volume.with_array((volume.array > 0).astype(np.uint8))


def first_miss(prediction: Volume, truth: Volume):
    """LPS position of the false-negative voxel deepest inside the truth (None when none)."""
    from scipy.ndimage import distance_transform_edt

    missed = (truth.array > 0) & (prediction.array == 0)
    if not missed.any():
        return None
    depth = distance_transform_edt(missed, sampling=truth.spacing[::-1])
    k, j, i = np.unravel_index(np.argmax(depth), depth.shape)
    return truth.ijk_to_lps([i, j, k])


def run_brain_scenario(scene, image_path, label_path, engine: str = "litemedsam", logic=None) -> dict:
    """Box from the label as an ROI, predict, one include click on a missed voxel, then undo."""
    logic = logic or RTInjurySAMLogic(scene)
    image_node, label = load_brain_case(scene, image_path, label_path)
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "Lesion box")
    set_roi_box(roi, mask_box_lps(label))
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "RTInjurySAM")
    include = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Include")

    first = logic.process(image_node, segmentation, task="cerebral radiation necrosis", roiNode=roi,
                          includePoints=include, engine=engine)
    first_mask = segment_mask(segmentation, first.segmentId, label)
    out = {"label": label, "image_node": image_node, "segmentation": segmentation, "first": first,
           "dice_box": dice(first_mask, label), "first_mask": first_mask}
    miss = first_miss(first_mask, label)
    if miss is not None:
        from rtsam.volume import lps_to_ras

        include.AddControlPoint(*lps_to_ras(miss))
        clicked = logic.updateFromPoints(include, None)
        clicked_mask = segment_mask(segmentation, clicked.segmentId, label)
        first_box = roi_box_lps(roi)
        set_roi_box(roi, mask_box_lps(label, margin_mm=4.0))  # the user moves the ROI: one more edit
        logic.updateFromPoints(include, None)
        edits = watch_points_like_the_widget(logic, include)
        logic.undo(include, None)  # the move: points are rewritten (their events fire) and the ROI moves back
        out.update(edits_during_undo=list(edits), redo_after_undo=logic.interaction.session.can_redo,
                   roi_back=bool(np.allclose(roi_box_lps(roi), first_box, atol=1e-3)))
        undone = logic.undo(include, None)  # the click
        out.update(click_lps=miss, clicked=clicked, dice_click=dice(clicked_mask, label),
                   click_inside=bool(clicked_mask.array[tuple(np.round(label.lps_to_ijk(miss)).astype(int)[::-1])]),
                   undone=undone, undo_restores=np.array_equal(
                       segment_mask(segmentation, undone.segmentId, label).array, first_mask.array),
                   points_after_undo=include.GetNumberOfControlPoints())
    return out


def watch_points_like_the_widget(logic, points) -> list:
    """Observe ``points`` as the module widget does (a point event edits the session's prompt);
    returns the list of the events that changed the prompt."""
    edits = []

    def changed(caller, event):
        if logic.syncPrompt(points, None):
            edits.append(event)

    for event in (points.PointPositionDefinedEvent, points.PointEndInteractionEvent, points.PointRemovedEvent):
        points.AddObserver(event, changed)
    return edits


def run_dose_box_scenario(scene, rtdose_path, threshold: float = 0.8, margin_mm: float = 5.0) -> dict:
    """Real RTDOSE as a SlicerRT-style dose node; auto-detect it and build the ROI from it."""
    from rtsam.io import read_rtdose
    from rtsam.prompts.dose_box import dose_box

    dose = read_rtdose(rtdose_path)
    scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "not a dose")
    dose_node = add_volume_node(scene, dose, "RTDOSE")
    dose_node.SetAttribute(DOSE_ATTRIBUTE, "1")
    logic = RTInjurySAMLogic(scene)
    found = logic.findDoseNode()
    roi = logic.boxFromDose(found, threshold, margin_mm)
    hot = np.argwhere(dose.array >= threshold * dose.array.max())[:, ::-1]
    return {"dose": dose, "found": found, "dose_node": dose_node, "roi_box": roi_box_lps(roi),
            "expected_box": dose_box(dose, threshold, margin_mm).box_lps, "hot_lps": dose.ijk_to_lps(hot)}
