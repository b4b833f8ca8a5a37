import gzip

import numpy as np
import pytest

from conftest import oblique_direction
from rtsam.errors import GeometryError, InputError
from rtsam.io import write_image
from rtsam.itv.dicom4d import read_dicom_phases, write_dicom_phases
from rtsam.itv.phases import check_mask_grid, load_phases, make_phases
from rtsam.itv.seqnrrd import read_seq_nrrd, write_seq_nrrd
from rtsam.volume import Volume


@pytest.fixture
def phases(rng):
    direction = oblique_direction()
    return [Volume(rng.integers(-1000, 1000, (4, 6, 5)).astype(np.int16), (0.8, 0.9, 2.5), (10.0, -20.0, 30.0),
                   direction, metadata={"path": f"p{k}"}) for k in range(3)]


def _same(a: Volume, b: Volume) -> bool:
    return a.same_grid(b) and np.array_equal(a.array, b.array)


def test_seq_nrrd_round_trip(tmp_path, phases):
    path = write_seq_nrrd(phases, tmp_path / "4d.seq.nrrd", [0, 50, 25])
    volumes, values = read_seq_nrrd(path)
    assert values == [0.0, 50.0, 25.0]
    assert all(_same(a, b) for a, b in zip(volumes, phases))
    loaded = load_phases(seq=path)
    assert loaded.values == [0.0, 25.0, 50.0]  # ordered by phase
    assert _same(loaded.volumes[1], phases[2])


def test_seq_nrrd_list_axis_last_in_ras(tmp_path):
    """Newer Slicer files put the list axis last; 'space' may be RAS."""
    array = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 5, 4, 3)  # phase (slowest), k, j, i
    header = ("NRRD0004\ntype: float\ndimension: 4\nspace: right-anterior-superior\nsizes: 3 4 5 2\n"
              "space directions: (1,0,0) (0,2,0) (0,0,3) none\nkinds: domain domain domain list\n"
              "endian: little\nencoding: gzip\nspace origin: (5,6,7)\naxis 3 index values:=10 60\n\n")
    path = tmp_path / "last.seq.nrrd"
    path.write_bytes(header.encode() + gzip.compress(array.tobytes()))
    volumes, values = read_seq_nrrd(path)
    assert values == [10.0, 60.0]
    assert np.array_equal(volumes[1].array, array[1])
    assert np.allclose(volumes[0].origin, [-5, -6, 7])
    assert np.allclose(volumes[0].spacing, [1, 2, 3])
    assert np.allclose(volumes[0].direction, np.diag([-1, -1, 1]))


def test_phase_files_ordered_by_name(tmp_path, phases):
    paths = [write_image(v, tmp_path / f"ct_{n}%.nrrd") for v, n in zip(phases, (40, 0, 20))]
    loaded = load_phases(files=paths)
    assert loaded.values == [0.0, 20.0, 40.0]
    assert np.array_equal(loaded.volumes[0].array, phases[1].array)


@pytest.mark.parametrize("one_series", [False, True])
def test_dicom_round_trip(tmp_path, phases, one_series):
    write_dicom_phases(phases, tmp_path / "dcm", [0, 30, 60], one_series=one_series)
    volumes, values = read_dicom_phases(tmp_path / "dcm")
    assert values == [0.0, 30.0, 60.0]
    for a, b in zip(volumes, phases):
        assert np.allclose(a.spacing, b.spacing, atol=1e-4) and np.allclose(a.origin, b.origin, atol=1e-4)
        assert np.allclose(a.direction, b.direction, atol=1e-6) and np.array_equal(a.array, b.array)


def test_bad_inputs(tmp_path, phases):
    with pytest.raises(InputError, match="at least 2 phases"):
        make_phases(phases[:1], [0], "x")
    with pytest.raises(InputError, match="duplicate phase indices"):
        make_phases(phases, [0, 10, 10], "x")
    paths = [write_image(v, tmp_path / f"phase_{n}.nrrd") for v, n in zip(phases, (1, 1, 2))]
    with pytest.raises(InputError, match="duplicate phase indices"):
        load_phases(files=paths)
    far = Volume(phases[1].array, phases[1].spacing, (900.0, 900.0, 900.0), phases[1].direction, metadata={"path": "far.nrrd"})
    with pytest.raises(GeometryError, match="far.nrrd.*does not overlap"):
        make_phases([phases[0], far], [0, 1], "x")
    other_frame = Volume(phases[1].array, (0.7, 0.9, 2.5), phases[1].origin, phases[1].direction, "1.2.3")
    with pytest.raises(GeometryError, match="frame of reference"):
        make_phases([Volume(phases[0].array, phases[0].spacing, phases[0].origin, phases[0].direction, "1.2.4"),
                     other_frame], [0, 1], "x")
    with pytest.raises(InputError, match="reference phase 5"):
        make_phases(phases, [0, 1, 2], "x", reference=5)
    with pytest.raises(GeometryError, match="initial mask grid"):
        check_mask_grid(Volume(np.zeros((4, 6, 5), np.uint8)), phases[0])
    with pytest.raises(InputError, match="no DICOM image slices"):
        read_dicom_phases(tmp_path)


def test_other_grid_resampled_with_warning(phases):
    shifted = Volume(phases[1].array.astype(np.float32), phases[1].spacing,
                     tuple(np.add(phases[1].origin, [0.4, 0, 0])), phases[1].direction)
    loaded = make_phases([phases[0], shifted], [0, 1], "x")
    assert loaded.volumes[1].same_grid(phases[0])
    assert len(loaded.warnings) == 1 and "resampled" in loaded.warnings[0]


def test_propagation_prompts(phases):
    from rtsam.itv.propagate import box_from_mask, cycle_order, interior_click

    mask = phases[0].with_array(np.zeros((4, 6, 5), np.uint8))
    mask.array[1:3, 2:5, 1:4] = 1
    box = box_from_mask(mask, (1.0, 2.0, 3.0))
    corners = mask.ijk_to_lps(np.array([[i, j, k] for i in (0.5, 3.5) for j in (1.5, 4.5) for k in (0.5, 2.5)]))
    assert np.allclose(box[0], corners.min(axis=0) - [1, 2, 3]) and np.allclose(box[1], corners.max(axis=0) + [1, 2, 3])
    click = interior_click(mask)
    i, j, k = np.round(mask.lps_to_ijk(click.lps)).astype(int)
    assert click.positive and mask.array[k, j, i] == 1
    assert box_from_mask(mask.with_array(np.zeros_like(mask.array))) is None
    order = cycle_order(10, 3)
    assert [k for k, _ in order] == [3, 4, 5, 6, 7, 8, 2, 1, 0, 9]
    assert all(source is None or min((k - source) % 10, (source - k) % 10) == 1 for k, source in order)
