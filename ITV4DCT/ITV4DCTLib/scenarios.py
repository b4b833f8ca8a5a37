"""End-to-end ITV scenario on a generated 4DCT (real MR crop warped by a breathing model),
shared by pytest and the Slicer self-test; returns measurements for the callers to assert."""

from __future__ import annotations

from rtsam.metrics import dice

from RTInjurySAMLib.scenarios import binary_mask, crop_near_lesion
from RTSAMCommon.mrml_convert import add_volume_node, prepare_scene, set_segment_mask

from .dicom_export import output_masks
from .logic import ITV4DCTLogic


def make_phase_sequence(scene, phases, name: str = "4DCT"):
    """A volume sequence node (index "phase", values 0, 1, ...) plus a browser, as Slicer loads a 4DCT."""
    prepare_scene(scene)
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    sequence.SetIndexName("phase")
    for n, volume in enumerate(phases):
        temporary = add_volume_node(scene, volume, f"{name} {n}")
        sequence.SetDataNodeAtValue(temporary, str(n))
        scene.RemoveNode(temporary)
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{name} browser")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    return sequence, browser


def run_itv_scenario(scene, image_path, label_path, phases: int = 3, engine: str = "litemedsam",
                     logic=None, propagation: str = "rigid") -> dict:
    """Warp the brain1 crop through ``phases`` breathing phases; ITV from the reference label."""
    from rtsam.io import read_image
    from rtsam.itv.generator import make_4dct

    image, label = crop_near_lesion(read_image(image_path), binary_mask(read_image(label_path)))
    generated = make_4dct(image, label, phases=phases, amplitude_si_mm=0.0, amplitude_ap_mm=5.0, fade_mm=12.0)
    sequence, browser = make_phase_sequence(scene, generated.phases)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "ITV4DCT")
    reference = 0
    init_id = set_segment_mask(segmentation, generated.phase_masks[reference], "Initial", (0.5, 0.5, 1.0))
    logic = logic or ITV4DCTLogic(scene)
    outputs = logic.process(sequence, segmentation, referencePhase=reference, initSegmentId=init_id, engine=engine,
                            propagation=propagation)
    itv, phase_masks = output_masks(outputs, generated.truth_itv)
    return {"generated": generated, "outputs": outputs, "input_browser": browser, "itv": itv,
            "phase_masks": phase_masks, "dice_itv": dice(itv, generated.truth_itv),
            "dice_phases": [dice(m, t) for m, t in zip(phase_masks, generated.phase_masks)]}

