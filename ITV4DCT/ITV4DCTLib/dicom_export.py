"""ITV4DCT results as DICOM: the ITV and each phase's mask as one RTSTRUCT (or SEG) named ``ITV``,
``GTV_phase00``... on the reference phase, through rtsam's ``export_itv_dicom`` (as ``rtsam itv
--out-dicom``). It references the DICOM series the reference phase was loaded from when Slicer's
DICOM database knows it (or one is given); otherwise that phase is written as a CT series first."""

from __future__ import annotations

from pathlib import Path

from rtsam.errors import InputError

from RTSAMCommon.mrml_convert import segment_mask, volume_from_node
from RTSAMCommon.segments import reference_dicom_file

FORMATS = {"RTSTRUCT": "rtstruct", "SEG": "seg"}  # the widget's choice -> rtsam's format


def output_masks(outputs, grid) -> tuple:
    """The ITV and the per-phase masks (phase order) of an Apply, on ``grid``."""
    itv = segment_mask(outputs.segmentation, outputs.itvSegmentId, grid)
    sequence = outputs.phaseSequence
    nodes = [sequence.GetNthDataNode(n) for n in range(sequence.GetNumberOfDataNodes())]
    return itv, [segment_mask(node, node.GetSegmentation().GetNthSegmentID(0), grid) for node in nodes]


def export_dicom(outputs, folder, format: str = "rtstruct", reference_dicom=None) -> dict:
    """Write ``<folder>/itv_<format>.dcm`` (plus ``itv_<format>_series/`` when the reference phase's DICOM
    series is unknown). ``reference_dicom``: that series' folder or a slice file (default: looked up in
    Slicer's DICOM database). Returns rtsam's summary: path, format, empty_phases, written_reference_series."""
    from rtsam.io.dicom_export import Algorithm
    from rtsam.itv.dicom_out import export_itv_dicom

    from RTSAMCommon.dependencies import dicom_seg_unavailable

    if format == "seg" and dicom_seg_unavailable():
        raise InputError(dicom_seg_unavailable())
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("output folder does not exist", folder)
    grid = volume_from_node(outputs.referenceNode)
    itv, phase_masks = output_masks(outputs, grid)
    report = outputs.report
    algorithm = Algorithm(f"ITV4DCT ({report.get('engine') or report.get('propagation') or 'rigid'})", "",
                          "SEMIAUTOMATIC")
    return export_itv_dicom(itv, phase_masks, grid, folder / f"itv_{format}.dcm", format, algorithm,
                            reference_dicom or reference_dicom_file(outputs.referenceNode))
