"""MRML nodes <-> rtsam objects, the one place where Slicer RAS meets rtsam LPS.

Slicer stores a volume as vtkImageData plus an IJKToRAS matrix; rtsam's ``Volume`` holds
an array ``[k, j, i]`` with spacing, origin and direction in LPS. Points (markups) are RAS
in Slicer and LPS in rtsam. Parent transforms are applied (hardened) when reading nodes;
non-linear transforms are refused with a clear message.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
import vtk.util.numpy_support as vtk_np

from rtsam.errors import GeometryError, InputError
from rtsam.volume import Volume, lps_to_ras, ras_to_lps

RAS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])  # LPS <-> RAS for homogeneous 4x4 matrices


def prepare_scene(scene, class_names=("vtkMRMLSequenceBrowserNode",)) -> None:
    """Register what a bare scene lacks without Slicer's module logics (slicer-core): module
    node classes and the segmentation converter rules. A no-op inside Slicer."""
    for name in class_names:
        if not scene.IsNodeClassRegistered(name):
            scene.RegisterNodeClass(getattr(slicer, name)())
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if not factory.GetConverterRules():
        factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
        factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())


# --- matrices ---------------------------------------------------------------------------
def vtk_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def numpy_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def node_to_world(node) -> np.ndarray:
    """4x4 matrix from the node's local RAS to world RAS (identity without a transform)."""
    transform = node.GetParentTransformNode()
    if transform is None:
        return np.eye(4)
    if not transform.IsTransformToWorldLinear():
        raise GeometryError(f"node '{node.GetName()}' is under a non-linear transform; harden it first")
    matrix = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToWorld(matrix)
    return numpy_matrix(matrix)


def ijk_to_world_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return node_to_world(node) @ numpy_matrix(matrix)


# --- volumes ----------------------------------------------------------------------------
def volume_from_node(node, **metadata) -> Volume:
    """A copy of a scalar volume node as an rtsam Volume (LPS geometry, world coordinates)."""
    if node is None or node.GetImageData() is None:
        raise InputError(f"volume node '{node.GetName() if node else None}' has no image data")
    if node.GetImageData().GetNumberOfScalarComponents() != 1:
        raise InputError(f"volume '{node.GetName()}' has several components; a scalar volume is needed")
    lps = RAS_FLIP @ ijk_to_world_ras(node)
    axes = lps[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    return Volume(
        array=np.array(slicer.util.arrayFromVolume(node), copy=True),
        spacing=tuple(spacing),
        origin=tuple(lps[:3, 3]),
        direction=axes / spacing,
        metadata={"name": node.GetName(), **metadata},
    )


def update_volume_node(node, volume: Volume):
    """Write a Volume's voxels and exact geometry into ``node`` (removes any parent transform)."""
    array = volume.array.astype(np.uint8) if volume.array.dtype == bool else volume.array
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array))
    node.SetAndObserveTransformNodeID(None)
    node.SetIJKToRASMatrix(vtk_matrix(volume.ijk_to_ras_matrix))
    node.Modified()
    return node


def add_volume_node(scene, volume: Volume, name: str, class_name: str = "vtkMRMLScalarVolumeNode"):
    node = scene.AddNewNodeByClass(class_name, name)
    node.CreateDefaultDisplayNodes()
    return update_volume_node(node, volume)


# --- segmentations ----------------------------------------------------------------------
def oriented_image(mask: Volume) -> slicer.vtkOrientedImageData:
    """A binary mask Volume as vtkOrientedImageData (uint8, geometry from the Volume)."""
    array = np.ascontiguousarray((np.asarray(mask.array) > 0).astype(np.uint8))
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(*mask.size_ijk)
    image.GetPointData().SetScalars(vtk_np.numpy_to_vtk(array.ravel(), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR))
    image.SetImageToWorldMatrix(vtk_matrix(mask.ijk_to_ras_matrix))
    return image


def set_segment_mask(segmentation_node, mask: Volume, name: str, color=(1.0, 0.0, 0.0),
                     segment_id: str | None = None) -> str:
    """Create or replace the segment ``segment_id`` (or the one named ``name``) with ``mask``."""
    segmentation = segmentation_node.GetSegmentation()
    segment_id = segment_id or segmentation.GetSegmentIdBySegmentName(name) or None
    image = oriented_image(mask)
    if segment_id and segmentation.GetSegment(segment_id):
        logic = slicer.vtkSlicerSegmentationsModuleLogic
        if not logic.SetBinaryLabelmapToSegment(image, segmentation_node, segment_id, logic.MODE_REPLACE):
            raise InputError(f"could not write segment '{name}' into '{segmentation_node.GetName()}'")
    else:
        segment_id = segmentation_node.AddSegmentFromBinaryLabelmapRepresentation(image, name, list(color))
    segment = segmentation.GetSegment(segment_id)
    segment.SetName(name)
    segment.SetColor(*color)
    return segment_id


def segment_mask(segmentation_node, segment_id: str, reference: Volume) -> Volume:
    """The segment resampled onto ``reference``'s grid as a uint8 0/1 Volume."""
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSegment(segment_id) is None:
        raise InputError(f"segmentation '{segmentation_node.GetName()}' has no segment '{segment_id}'")
    scene = segmentation_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__rtsam_export__")
    try:
        update_volume_node(labelmap, reference.with_array(np.zeros(reference.array.shape, np.uint8)))
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentation_node, ids, labelmap, labelmap):
            raise InputError(f"could not export segment '{segment_id}' of '{segmentation_node.GetName()}'")
        array = (slicer.util.arrayFromVolume(labelmap) > 0).astype(np.uint8)
    finally:
        scene.RemoveNode(labelmap)
    return reference.with_array(array)


# --- markups ----------------------------------------------------------------------------
def points_lps(markups_node) -> np.ndarray:
    """World positions of a markups node's control points, LPS mm, shape (n, 3)."""
    if markups_node is None:
        return np.zeros((0, 3))
    ras = np.zeros((markups_node.GetNumberOfControlPoints(), 3))
    for index in range(len(ras)):
        markups_node.GetNthControlPointPositionWorld(index, ras[index])
    return ras_to_lps(ras)


def roi_box_lps(roi_node) -> np.ndarray:
    """The axis-aligned LPS box [[min], [max]] enclosing an ROI markups node (world space)."""
    bounds = np.zeros(6)
    roi_node.GetRASBounds(bounds)
    if not np.all(np.isfinite(bounds)) or np.any(bounds[1::2] < bounds[0::2]):
        raise InputError(f"ROI '{roi_node.GetName()}' is not defined (place it first)")
    corners_lps = ras_to_lps(np.array([bounds[0::2], bounds[1::2]]))
    return np.sort(corners_lps, axis=0)


def set_roi_box(roi_node, box_lps) -> None:
    """Place an ROI markups node on an axis-aligned LPS box."""
    corners = lps_to_ras(np.asarray(box_lps, dtype=float).reshape(2, 3))
    roi_node.SetAndObserveTransformNodeID(None)
    roi_node.SetCenter(*corners.mean(axis=0))
    roi_node.SetSize(*np.abs(corners[1] - corners[0]))


def add_points(scene, points_lps_array, name: str):
    """A new fiducial node with the given LPS points (stored as RAS)."""
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    for point in lps_to_ras(np.atleast_2d(points_lps_array)):
        node.AddControlPoint(*point)
    return node
