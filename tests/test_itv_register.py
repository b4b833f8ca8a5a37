"""Registration propagation on a generated 4DCT of the real lung2 CT, given an oblique direction."""

import numpy as np
import pytest
from scipy import ndimage

from conftest import oblique_direction
from rtsam.engines.registry import load_engine
from rtsam.errors import InputError
from rtsam.itv import register
from rtsam.itv.bench import load_case
from rtsam.itv.generator import make_4dct
from rtsam.itv.phases import make_phases
from rtsam.itv.pipeline import run_itv
from rtsam.itv.propagate import interior_click
from rtsam.itv.register import register_mask
from rtsam.metrics import dice
from rtsam.volume import Volume


@pytest.fixture(scope="module")
def lung_4dct(data):
    """4 phases (8 mm SI, 4 mm AP) of a lung2 crop whose grid is rotated in LPS."""
    image, mask = load_case("lung2", crop_mm=30.0)
    tilted = [Volume(v.array, v.spacing, v.origin, oblique_direction()) for v in (image, mask)]
    return make_4dct(*tilted, phases=4, amplitude_si_mm=8.0, amplitude_ap_mm=4.0)


def _shift(generated, k: int) -> np.ndarray:
    return np.array(generated.phases[k].metadata["shift_lps_mm"])


@pytest.mark.parametrize("method", ["rigid", "deformable"])
def test_mask_follows_the_breathing_motion(lung_4dct, method):
    g = lung_4dct
    carried = register_mask(g.phases[0], g.phase_masks[0], g.phases[2], method)
    assert np.allclose(carried.shift_lps_mm, _shift(g, 2) - _shift(g, 0), atol=1.0)  # (0, 4, 8) mm in LPS
    assert carried.mask.same_grid(g.phases[2]) and not carried.at_crop_edge
    assert dice(g.phase_masks[0], g.phase_masks[2]) < 0.8  # staying put is clearly wrong
    assert dice(carried.mask, g.phase_masks[2]) > 0.9


def test_itv_from_an_init_mask_needs_no_engine(lung_4dct):
    g = lung_4dct
    phases = make_phases(g.phases, [v.metadata["phase_percent"] for v in g.phases], "generated")
    result = run_itv(phases, init_mask=g.phase_masks[0], engine="no-such-engine")
    assert result.report["engine"] is None and result.report["propagation"] == "rigid"
    given = run_itv(phases, init_mask=g.phase_masks[0], engine=load_engine("sam3d-tiny"))  # as the server does
    assert given.report["engine"] is None and np.array_equal(given.itv.array, result.itv.array)
    assert np.array_equal(result.phase_masks[0].array, g.phase_masks[0].array)
    assert dice(result.itv, g.truth_itv) > 0.9
    truth_z = [m.ijk_to_lps(np.argwhere(m.array > 0).mean(axis=0)[::-1])[2] for m in g.phase_masks]
    assert result.report["motion_mm"]["z_mm"] == pytest.approx(np.ptp(truth_z), abs=1.0)
    with pytest.raises(InputError, match="unknown engine 'no-such-engine'"):
        run_itv(phases, init_mask=g.phase_masks[0], engine="no-such-engine", propagation="engine")
    with pytest.raises(InputError, match="propagation must be one of"):
        run_itv(phases, init_mask=g.phase_masks[0], propagation="optical-flow")


def test_motion_beyond_the_registration_box_is_reported(lung_4dct, monkeypatch):
    g = lung_4dct
    monkeypatch.setattr(register, "CONTEXT_MM", 3.0)
    phases = make_phases(g.phases[:3], [0, 1, 2], "generated")
    result = run_itv(phases, init_mask=g.phase_masks[0])
    assert any("reaches the registration box" in w for w in result.report["warnings"])


def test_bad_inputs(lung_4dct):
    g = lung_4dct
    empty = g.phase_masks[0].with_array(np.zeros_like(g.phase_masks[0].array))
    with pytest.raises(InputError, match="reference mask is empty"):
        register_mask(g.phases[0], empty, g.phases[1])
    other = Volume(g.phases[1].array, g.phases[1].spacing, (0.0, 0.0, 0.0), g.phases[1].direction)
    with pytest.raises(InputError, match="on one grid"):
        register_mask(g.phases[0], g.phase_masks[0], other)
    with pytest.raises(InputError, match="registration must be one of"):
        register_mask(g.phases[0], g.phase_masks[0], g.phases[1], "affine")


def test_interior_click_is_the_deepest_voxel(lung_4dct):
    mask = lung_4dct.phase_masks[0]
    depth = ndimage.distance_transform_edt(mask.array > 0, sampling=mask.spacing[::-1])
    i, j, k = np.round(mask.lps_to_ijk(interior_click(mask).lps)).astype(int)
    assert depth[k, j, i] == depth.max()


def test_shifted_mask_moves_one_voxel_along_an_oblique_axis():
    mask = Volume(np.zeros((6, 7, 8), np.uint8), (0.7, 0.9, 2.5), (5.0, -3.0, 12.0), oblique_direction())
    mask.array[2:4, 3:5, 2:6] = 1
    one_slice = mask.direction @ (np.array(mask.spacing) * [0, 0, 1])  # LPS vector of +1 in k
    moved = register.shifted_mask(mask, one_slice)
    assert moved.same_grid(mask) and np.array_equal(moved.array, np.roll(mask.array, 1, axis=0))
