"""rtsam web without a browser: binding rules, case loading from a DICOM RT folder, the motion plot."""

import pytest

from rtsam.cli import main
from rtsam.cli.web import check_binding, is_loopback
from rtsam.errors import InputError


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_key(host):
    assert is_loopback(host)
    check_binding(host, [])


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "example.org"])
def test_other_addresses_need_a_key(host):
    assert not is_loopback(host)
    with pytest.raises(InputError, match="--api-key"):
        check_binding(host, [])
    check_binding(host, ["k" * 16])


def test_cli_refuses_an_open_binding_without_key(capsys):
    assert main(["web", "--host", "0.0.0.0"]) == 2
    assert "--api-key" in capsys.readouterr().err


def test_cli_refuses_a_short_key(capsys):
    assert main(["web", "--host", "0.0.0.0", "--api-key", "short"]) == 2
    assert "at least 16 characters" in capsys.readouterr().err


def test_cli_names_a_missing_data_file(capsys, tmp_path):
    assert main(["web", str(tmp_path / "missing.nrrd")]) == 2
    assert "missing.nrrd: file or folder not found" in capsys.readouterr().err


@pytest.fixture(scope="module")
def slicer_scene():
    slicer = pytest.importorskip("slicer")
    from rtsam.web.modules import add_module_paths

    add_module_paths()
    from RTSAMCommon.mrml_convert import prepare_scene

    scene = slicer.vtkMRMLScene()
    prepare_scene(scene)
    return scene


def test_dicom_folder_brings_its_dose_and_structures(slicer_scene, rt_case):
    from RTSAMCommon.segments import dose_nodes

    from rtsam.web.loading import dicom_rt_files, load_case

    assert set(dicom_rt_files(rt_case)) == {"RTDOSE", "RTSTRUCT"}
    case = load_case(slicer_scene, rt_case)
    assert case.dicom_dir == rt_case
    assert dose_nodes(slicer_scene) == [case.dose_node]
    assert {"BODY", "Heart", "Tumor Bed"} <= set(case.names)
    assert case.references.GetSegmentation().GetNumberOfSegments() == len(case.names)


def test_empty_mask_file_is_refused(slicer_scene, data, tmp_path):
    import numpy as np

    from rtsam.io import read_image, write_image
    from rtsam.web.loading import load_case

    image = data / "pyradiomics/brain1_image.nrrd"
    empty = read_image(data / "pyradiomics/brain1_label.nrrd")
    path = write_image(empty.with_array(np.zeros_like(empty.array)), tmp_path / "empty.nrrd")
    with pytest.raises(InputError, match="empty"):
        load_case(slicer_scene, image, [path])


def test_motion_plot_draws_one_line_per_axis(slicer_scene):
    from ITV4DCTLib.outputs import add_motion_table

    from rtsam.web.plot import motion_svg

    rows = [{"volume_ml": 1.0, "centroid_lps_mm": [0, 0, z], "offset_mm": [0, 0, z]} for z in (0.0, 2.0, 4.0)]
    svg = motion_svg(add_motion_table(slicer_scene, rows, [0, 50, 100], "motion"))
    assert svg.startswith("<svg") and svg.count("<polyline") == 3
    assert "0.0 .. 4.0" in svg


@pytest.fixture(scope="module")
def web_app():
    """The viewer's app object without serving it (no engine: only steps that need none)."""
    import os

    pytest.importorskip("trame_slicer")
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from rtsam.web.app import WebApp

    return WebApp(backend=None)


def test_dicom_rt_folder_in_the_app_and_its_dose_box(web_app, rt_case):
    """The folder's one CT slice (z 168.6 mm) lies outside the 80% dose region: the box is refused with
    the reason rather than placed off the image."""
    from rtsam.errors import GeometryError

    web_app.state.case_path = str(rt_case)
    web_app.load_case()
    assert web_app.state.case_info["dose"] and web_app.state.case_info["dicom"]
    assert "Tumor Bed" in web_app.state.reference_names
    web_app.state.update(seg_threshold=0.8, seg_margin=0.0)
    with pytest.raises(GeometryError, match="does not overlap the image extent"):
        web_app.segment_tab.box_from_dose()


def test_itv_tab_refuses_a_single_phase_file(web_app, data):
    web_app.state.itv_phases_path = str(data / "pyradiomics/brain1_image.nrrd")
    with pytest.raises(InputError, match="one file is one phase"):
        web_app.itv_tab.load()


@pytest.fixture
def engine_app(web_app):
    """The viewer on a model: a local rtsam server (the engine cannot load in this process once VTK is in),
    its state flushing like a served app's (so its @state.change handlers run)."""
    from RTSAMCommon.backends import LocalBackend

    backend = LocalBackend(device="cpu")
    web_app.backend = web_app.segment_tab.logic.backend = backend
    web_app.state.ready()
    yield web_app
    web_app.backend = web_app.segment_tab.logic.backend = None
    backend.server().stop()


def test_presence_checkbox_predicts_again_and_undo_unticks_it(engine_app, data):
    """The checkbox (off by default) goes with Segment; ticking it with the session open decodes again and
    leaves the margin slices (10, 13) of a 10 mm box around brain1's first lesion component (slices 11-12)
    empty; undo unticks it and brings back the painted margins, and unticking from undo decodes nothing."""
    import asyncio

    import numpy as np
    from RTSAMCommon.mrml_convert import segment_mask, set_roi_box
    from scipy import ndimage

    from rtsam.benchmark_interactive import box_from_label
    from rtsam.io import read_image

    app, tab = engine_app, engine_app.segment_tab
    app.state.update(case_path=str(data / "pyradiomics/brain1_image.nrrd"), mask_paths="")
    app.load_case()
    image = read_image(data / "pyradiomics/brain1_image.nrrd")
    components, _ = ndimage.label(read_image(data / "pyradiomics/brain1_label.nrrd").array > 0)
    set_roi_box(tab.roi, box_from_label(image.with_array((components == 1).astype(np.uint8)), 10.0))
    tab.roi.SetDisplayVisibility(True)

    def painted() -> list[int]:
        assert app.state.error == ""
        mask = segment_mask(tab.segmentation, tab.logic.interaction.segmentId, image).array
        assert app.state.segment["voxels"] == mask.sum()
        return [k for k in range(mask.shape[0]) if mask[k].any()]

    async def settled():
        while tasks := asyncio.all_tasks() - {asyncio.current_task()}:
            await asyncio.gather(*tasks)

    async def scenario():
        assert app.state.seg_presence is False
        app.run_guarded(tab.segment)
        await settled()
        assert tab.logic.interaction.session.prompt.presence == "off" and painted() == [10, 11, 12, 13]
        loose_voxels, steps = app.state.segment["voxels"], tab.logic.interaction.session.history
        app.state.seg_presence = True  # what a click on the checkbox does
        app.state.flush()
        await settled()
        assert tab.logic.interaction.session.prompt.presence == "on" and painted() == [11, 12]
        assert app.state.segment["voxels"] < loose_voxels
        app.run_guarded(tab.undo)
        await settled()
        assert app.state.seg_presence is False and tab.logic.interaction.session.prompt.presence == "off"
        assert painted() == [10, 11, 12, 13] and app.state.segment["voxels"] == loose_voxels
        assert tab.logic.interaction.session.history == (steps[0], 1)  # redo kept: the write-back edited nothing

    asyncio.run(scenario())
