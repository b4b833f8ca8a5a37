"""RTSTRUCT reading and rasterisation: the real structure set on the real dose grid, exact
synthetic shapes (holes, several contours per plane, plane spacing), oblique grids, bad input."""

import copy

import numpy as np
import pydicom
import pytest

from conftest import oblique_direction
from rtsam.errors import GeometryError, InputError
from rtsam.io import read_rtdose, read_rtstruct
from rtsam.io.rasterize import fill_polygons
from rtsam.volume import Volume


@pytest.fixture(scope="module")
def real(rt_case):
    return read_rtstruct(rt_case / "rtss.dcm"), read_rtdose(rt_case / "rtdose.dcm")


def square(x0, y0, x1, y1, z):
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)


def circle(cx, cy, r, z, n=180):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(n, z)])


def write_rtstruct(tmp_path, template, structures: dict, frame_uid=None, name="rtss.dcm"):
    """An RTSTRUCT from the real file's header holding ``{name: [contour (n, 3) LPS mm, ...]}``."""
    ds = pydicom.dcmread(template)
    roi_template, contour_template = ds.StructureSetROISequence[0], ds.ROIContourSequence[0]
    rois, roi_contours = [], []
    for number, (roi_name, contours) in enumerate(structures.items(), start=1):
        roi = copy.deepcopy(roi_template)
        roi.ROINumber, roi.ROIName = number, roi_name
        item = copy.deepcopy(contour_template)
        item.ReferencedROINumber = number
        first = item.ContourSequence[0]
        item.ContourSequence = []
        for points in contours:
            contour = copy.deepcopy(first)
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = [f"{v:.4f}" for v in np.asarray(points).ravel()]
            item.ContourSequence.append(contour)
        rois.append(roi)
        roi_contours.append(item)
    ds.StructureSetROISequence, ds.ROIContourSequence = rois, roi_contours
    if frame_uid:
        ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = frame_uid
    ds.save_as(tmp_path / name)
    return tmp_path / name


def test_real_structure_set_names_numbers_frame(real, rt_case):
    structures, dose = real
    assert structures.names[:5] == ["BODY", "Areola", "Borders", "Breast", "Heart"]
    assert len(structures.names) == 10
    assert structures.roi_number("Heart") == 5
    assert structures.roi_number("tumor bed") == 9  # case-insensitive fallback
    assert structures.frame_of_reference_uid == dose.frame_of_reference_uid


def tps_volumes(rt_case):
    """Structure volumes (cc) of the planning system: first bin of each cumulative DVH."""
    ds = pydicom.dcmread(rt_case / "rtdose.dcm")
    return {int(d.DVHReferencedROISequence[0].ReferencedROINumber): float(d.DVHData[1]) for d in ds.DVHSequence}


def shoelace_cc(contours, thickness_mm):
    area = sum(0.5 * abs(np.dot(c[:, 0], np.roll(c[:, 1], -1)) - np.dot(c[:, 1], np.roll(c[:, 0], -1))) for c in contours)
    return area * thickness_mm / 1000.0


def test_real_structures_on_dose_grid_match_planning_system_volumes(real, rt_case):
    structures, dose = real
    reference = tps_volumes(rt_case)
    masks = structures.masks(dose)
    assert "Areola" not in masks  # no contours
    for name, mask in masks.items():
        assert mask.same_grid(dose) and mask.array.dtype == np.uint8
        ours = mask.array.sum() * mask.voxel_volume_ml
        tps = reference[structures.roi_number(name)]
        if name == "BODY":
            # The TPS's BODY volume is 6.7 % below its own contour area x 3 mm; compare with the contours.
            assert ours == pytest.approx(shoelace_cc(structures.structure(name).contours, 3.0), rel=0.005)
        elif tps > 10:
            assert ours == pytest.approx(tps, rel=0.025), name  # measured: 0.2 % to 2.0 %
        else:
            assert abs(ours - tps) < 0.5, name  # < 1 cc structures are 20-60 voxels of 0.019 cc


def test_square_with_hole_and_second_contour_on_one_plane(tmp_path, rt_case):
    planes = [0.0, 3.0, 6.0]
    contours = [c for z in planes for c in (square(0, 0, 10, 10, z), square(3, 3, 7, 7, z), square(20, 0, 24, 2, z))]
    structures = read_rtstruct(write_rtstruct(tmp_path, rt_case / "rtss.dcm", {"ring": contours}))
    # 1 mm grid with voxel centres at x.5 (never on an edge), slices every 1 mm from z = -3 to 9
    grid = Volume(np.zeros((13, 12, 30)), origin=(-0.5, -0.5, -3.0))
    mask = structures.mask("ring", grid).array
    per_slice = mask.sum(axis=(1, 2))
    # planes 3 mm apart: a slice takes the nearest plane within 1.5 mm -> z = -1 ... 7
    np.testing.assert_array_equal(np.flatnonzero(per_slice), np.arange(2, 11))
    assert set(per_slice[per_slice > 0]) == {10 * 10 - 4 * 4 + 4 * 2}
    hole = grid.lps_to_ijk([5.0, 5.0, 0.0]).round().astype(int)
    assert mask[hole[2], hole[1], hole[0]] == 0


def test_voxel_centre_inclusion_is_exact_for_a_circle():
    r, h = 20.0, 0.5
    n = 100
    centres = (np.arange(n) - n / 2 + 0.5) * h
    polygon = circle(0, 0, r, 0, n=2000)[:, :2] / h + (n / 2 - 0.5)
    filled = fill_polygons([polygon], n, n)
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    distance = np.hypot(xx, yy)
    clear = np.abs(distance - r) > 0.01  # the 2000-gon deviates < 0.005 mm from the circle
    np.testing.assert_array_equal(filled[clear], (distance < r)[clear])


def test_oblique_reference_grid_matches_analytic_cylinder(tmp_path, rt_case):
    r, planes = 15.0, np.arange(-14.0, 15.0, 2.0)
    path = write_rtstruct(tmp_path, rt_case / "rtss.dcm", {"cyl": [circle(0, 0, r, z, 720) for z in planes]})
    grid = Volume(np.zeros((24, 24, 24)), spacing=(1.5, 1.5, 1.5), origin=(0, 0, 0), direction=oblique_direction(30))
    centre = grid.ijk_to_lps([11.5, 11.5, 11.5])
    grid = Volume(grid.array, spacing=grid.spacing, origin=tuple(-centre), direction=grid.direction)
    mask = read_rtstruct(path).mask("cyl", grid).array
    ijk = np.stack(np.meshgrid(*[np.arange(24)] * 3, indexing="ij"), -1).reshape(-1, 3)
    lps = grid.ijk_to_lps(ijk)
    radial, z = np.hypot(lps[:, 0], lps[:, 1]), lps[:, 2]
    inside = (radial < r) & (z > planes[0] - 1) & (z < planes[-1] + 1)
    clear = (np.abs(radial - r) > 0.6) & (np.abs(np.abs(z) - 15) > 0.6)  # away from the surface
    got = mask[ijk[:, 2], ijk[:, 1], ijk[:, 0]].astype(bool)
    assert clear.sum() > 10000 and inside[clear].sum() > 3000
    np.testing.assert_array_equal(got[clear], inside[clear])


def test_unknown_empty_outside_and_frame_mismatch(tmp_path, real, rt_case):
    structures, dose = real
    with pytest.raises(InputError, match="no structure named 'Liver'; available: BODY, Areola") as info:
        structures.mask("Liver", dose)
    assert "rtss.dcm" in str(info.value)
    with pytest.raises(InputError, match="'Areola' has no closed planar contours"):
        structures.mask("Areola", dose)
    far = Volume(np.zeros((4, 4, 4)), origin=(1000.0, 1000.0, 1000.0), frame_of_reference_uid=dose.frame_of_reference_uid)
    with pytest.raises(GeometryError, match="'Heart' lies outside the reference grid"):
        structures.mask("Heart", far)
    assert not structures.mask("Heart", far, allow_empty=True).array.any()
    other = Volume(dose.array, dose.spacing, dose.origin, frame_of_reference_uid="1.2.3.4")
    with pytest.raises(GeometryError, match="frame of reference"):
        structures.mask("Heart", other)
    assert structures.mask("Heart", other, allow_frame_mismatch=True).array.any()


def test_bad_files(tmp_path, rt_case):
    with pytest.raises(InputError, match="is a DICOM RTDOSE file, expected RTSTRUCT"):
        read_rtstruct(rt_case / "rtdose.dcm")
    with pytest.raises(InputError, match="not found"):
        read_rtstruct(tmp_path / "missing.dcm")
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes((rt_case / "rtss.dcm").read_bytes()[:3000])
    with pytest.raises(InputError, match="truncated|corrupt"):
        read_rtstruct(truncated)
