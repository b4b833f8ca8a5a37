"""RTInjurySAM logic end to end on real slicer-core and real data (litemedsam engine)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "RTInjurySAM"), str(ROOT / "ITV4DCT")]

from RTInjurySAMLib import RTInjurySAMLogic  # noqa: E402
from RTInjurySAMLib.scenarios import run_brain_scenario, run_dose_box_scenario  # noqa: E402
from RTSAMCommon.backends import RemoteBackend, make_backend  # noqa: E402
from rtsam.errors import InputError, RTSAMError  # noqa: E402


@pytest.fixture(scope="module")
def brain(data):
    scene = slicer.vtkMRMLScene()
    return run_brain_scenario(scene, data / "pyradiomics/brain1_image.nrrd", data / "pyradiomics/brain1_label.nrrd")


def test_box_prompt_segments_the_tumour(brain):
    assert brain["dice_box"] > 0.8
    first = brain["first"]
    assert first.engine == "litemedsam" and first.weights.startswith("lite_medsam.pth@sha256:")
    assert first.quality is not None and first.lowQuality == (first.quality < 0.5)
    assert first.timingsMs["embed_ms"] > 0 and first.timingsMs["decode_ms"] > 0


def test_segment_has_name_colour_terminology_and_geometry(brain):
    segmentation = brain["segmentation"]
    segment = segmentation.GetSegmentation().GetSegment(brain["first"].segmentId)
    assert segment.GetName() == "Cerebral radiation necrosis"
    assert "SCT^6574001^Necrosis" in segment.GetTerminology()
    quality = vtk.reference("")
    assert segment.GetTag("RTSAM.quality", quality)
    assert float(str(quality)) == pytest.approx(brain["first"].quality, abs=1e-4)
    # segment volume from Slicer's side equals the mask volume reported by the logic
    mask = brain["first_mask"]
    assert brain["first"].volumeMl == pytest.approx(mask.array.sum() * mask.voxel_volume_ml, rel=1e-3)
    # brain1 has direction diag(1, -1, 1): the segment centre in RAS is the mask's LPS centroid flipped
    centroid = mask.ijk_to_lps(np.argwhere(mask.array > 0)[:, ::-1]).mean(axis=0)
    centre_ras = np.array(segmentation.GetSegmentCenterRAS(brain["first"].segmentId))
    assert np.allclose(centre_ras, centroid * [-1, -1, 1], atol=max(mask.spacing))


def test_click_decodes_only_and_undo_restores(brain):
    assert "click_lps" in brain, "the box result left no voxel to click on"
    clicked = brain["clicked"]
    assert "embed_ms" not in clicked.timingsMs and clicked.timingsMs["decode_ms"] > 0
    assert clicked.volumeMl != brain["first"].volumeMl
    assert brain["undo_restores"] and brain["points_after_undo"] == 0
    # undoing an ROI move: the point events that undo's NodeModify releases push no edit (which would
    # clear redo and put the moved ROI back into the session), and the ROI follows the session
    assert brain["edits_during_undo"] == [] and brain["redo_after_undo"] and brain["roi_back"]


def test_click_reaches_the_session_in_lps(data):
    """An include point placed in RAS arrives in the session's prompt as the same LPS point."""
    scene = slicer.vtkMRMLScene()
    from RTInjurySAMLib.scenarios import load_brain_case, mask_box_lps
    from RTSAMCommon.mrml_convert import add_points, set_roi_box

    image_node, label = load_brain_case(scene, data / "pyradiomics/brain1_image.nrrd", data / "pyradiomics/brain1_label.nrrd")
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    set_roi_box(roi, mask_box_lps(label))
    logic = RTInjurySAMLogic(scene)
    logic.prepare(image_node, scene.AddNewNodeByClass("vtkMRMLSegmentationNode"), "cerebral edema", "60 Gy", roi)
    target = label.ijk_to_lps(np.argwhere(label.array > 0)[0][::-1])
    include, exclude = add_points(scene, [target], "in"), add_points(scene, [target + [2.0, 0, 0]], "out")
    assert logic.syncClicks(include, exclude) and not logic.syncClicks(include, exclude)
    prompt = logic.interaction.session.prompt
    assert [c.positive for c in prompt.clicks] == [True, False]
    assert np.allclose(prompt.clicks[0].lps, target, atol=1e-3)
    assert np.allclose(prompt.box_lps, mask_box_lps(label))
    assert prompt.task.startswith("cerebral edema") and prompt.patient == "60 Gy"
    include.RemoveNthControlPoint(0)
    assert logic.syncClicks(include, exclude) and len(logic.interaction.session.prompt.clicks) == 1


def test_dose_box_from_real_rtdose(rt_case):
    out = run_dose_box_scenario(slicer.vtkMRMLScene(), rt_case / "rtdose.dcm", threshold=0.8, margin_mm=5.0)
    assert out["found"] is out["dose_node"]
    assert np.allclose(out["roi_box"], out["expected_box"], atol=1e-3)
    hot = out["hot_lps"]
    assert len(hot) > 0
    assert np.all(hot >= out["roi_box"][0] + 5.0 - 1e-3) and np.all(hot <= out["roi_box"][1] - 5.0 + 1e-3)


def test_process_without_a_prompt_names_the_problem(data):
    scene = slicer.vtkMRMLScene()
    from RTInjurySAMLib.scenarios import load_brain_case

    image_node, _ = load_brain_case(scene, data / "pyradiomics/brain1_image.nrrd", data / "pyradiomics/brain1_label.nrrd")
    with pytest.raises(RTSAMError, match="needs a box"):  # the local server's answer
        RTInjurySAMLogic(scene).process(image_node, scene.AddNewNodeByClass("vtkMRMLSegmentationNode"))
    with pytest.raises(InputError, match="segmentation"):
        RTInjurySAMLogic(scene).process(image_node, None)


def test_scene_close_forgets_the_interaction(data):
    from RTInjurySAMLib.scenarios import load_brain_case

    scene = slicer.vtkMRMLScene()
    image_node, _ = load_brain_case(scene, data / "pyradiomics/brain1_image.nrrd", data / "pyradiomics/brain1_label.nrrd")
    logic = RTInjurySAMLogic(scene)
    logic.prepare(image_node, scene.AddNewNodeByClass("vtkMRMLSegmentationNode"), "cerebral edema")
    assert logic.interaction is not None
    scene.Clear(0)
    assert logic.interaction is None


def test_dicom_seg_is_refused_with_a_reason_on_pydicom_2(monkeypatch, tmp_path):
    """Slicer 5.10 bundles pydicom 2.4.4 (never upgraded): SEG export says why it cannot run; RTSTRUCT stays."""
    from RTSAMCommon import dependencies
    from RTSAMCommon.segments import export_segmentation_dicom

    real = dependencies.installed_version
    monkeypatch.setattr(dependencies, "installed_version", lambda name: "2.4.4" if name == "pydicom" else real(name))
    assert dependencies.HIGHDICOM not in dependencies.requirements()
    scene = slicer.vtkMRMLScene()
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    with pytest.raises(InputError, match="DICOM SEG export needs pydicom 3 .* bundles pydicom 2.4.4"):
        export_segmentation_dicom(segmentation, None, tmp_path, tmp_path / "seg.dcm", "seg")
    monkeypatch.setattr(dependencies, "installed_version", real)
    assert dependencies.dicom_seg_unavailable() is None and dependencies.HIGHDICOM in dependencies.requirements()


def test_torch_build_follows_the_driver():
    from RTSAMCommon.dependencies import torch_build, torch_pip_args

    assert torch_build(None, "linux")[0] == "cpu"
    assert torch_build((13, 1), "linux")[0] == "cu130" and torch_build((12, 9), "win32")[0] == "cu128"
    assert torch_build((12, 2), "linux")[0] == "cpu" and "update the driver" in torch_build((12, 2), "linux")[2]
    assert torch_build((12, 8), "darwin")[1] is None
    assert torch_pip_args((12, 6), "linux")[-2:] == ["--index-url", "https://download.pytorch.org/whl/cu126"]


def test_remote_backend_reports_unreachable_server():
    with pytest.raises(RTSAMError, match="127.0.0.1:9"):
        RemoteBackend("http://127.0.0.1:9", "k" * 16, timeout_s=2).test_connection()
    with pytest.raises(InputError, match="server URL"):
        make_backend("remote", url="")


def test_gpu_memory_check_refuses_a_job_that_cannot_fit(monkeypatch):
    import torch

    from RTSAMCommon.backends import check_gpu_memory

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (1 * 2**30, 80 * 2**30))
    with pytest.raises(InputError, match="GPU has 1.0 GiB free but this job needs about 2.0 GiB"):
        check_gpu_memory("cuda", 2.0)
    check_gpu_memory("cuda", 0.5)
    check_gpu_memory("cpu", 1e9)  # the CPU is never refused


def test_inprocess_backend_takes_the_users_weights_per_engine(tmp_path):
    from pathlib import Path

    from rtsam.engines.sam3d.config import Sam3DConfig
    from rtsam.engines.sam3d.model import Sam3D
    from rtsam.engines.sam3d.checkpoint import save_checkpoint

    path = save_checkpoint(Sam3D(Sam3DConfig.named("tiny")), tmp_path / "mine.pth")
    backend = make_backend("inprocess", device="cpu", weights={"sam3d-tiny": path, "litemedsam": Path()})
    assert backend.engine("sam3d-tiny").weights_label.startswith("mine.pth@sha256:")
    assert backend.engine("litemedsam").weights_label.startswith("lite_medsam.pth@")  # "." = its own
    assert make_backend("inprocess", device="cpu").engine("sam3d-tiny").weights_label == "random-init"
    with pytest.raises(InputError, match="engine 'sam3d' ships no weights: give SAM-Med3D's"):
        backend.engine("sam3d")


def test_object_presence_checkbox_is_sent_and_a_toggle_predicts_again(data):
    """The module's checkbox (off by default) travels with the prompt to the local server: ticking it leaves
    the margin slices (10, 13) of a 10 mm box around brain1's first lesion component (slices 11-12) empty;
    undo unticks it and shows the painted margins again."""
    from scipy import ndimage

    from rtsam.benchmark_interactive import box_from_label
    from rtsam.io import read_image
    from RTSAMCommon.mrml_convert import add_volume_node, segment_mask, set_roi_box

    scene = slicer.vtkMRMLScene()
    image = read_image(data / "pyradiomics/brain1_image.nrrd")
    components, _ = ndimage.label(read_image(data / "pyradiomics/brain1_label.nrrd").array > 0)
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    set_roi_box(roi, box_from_label(image.with_array((components == 1).astype(np.uint8)), 10.0))
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    logic = RTInjurySAMLogic(scene)

    def painted(result):
        mask = segment_mask(segmentation, result.segmentId, image).array
        return [k for k in range(mask.shape[0]) if mask[k].any()]

    off = logic.process(add_volume_node(scene, image, "brain1"), segmentation, roiNode=roi)
    assert logic.interaction.session.prompt.presence == "off" and not off.objectPresence
    assert painted(off) == [10, 11, 12, 13]
    on = logic.updateFromPoints(objectPresence=True)
    assert logic.interaction.session.prompt.presence == "on" and on.objectPresence and painted(on) == [11, 12]
    assert logic.updateFromPoints(objectPresence=True) is None  # unchanged: no model call
    undone = logic.undo()
    assert not undone.objectPresence and painted(undone) == [10, 11, 12, 13]


def test_a_presence_box_left_ticked_is_ignored_by_an_engine_without_the_rule(data):
    """Ticked under LiteMedSAM, then sam3d-tiny chosen (the widget greys the box out): the prompt says "off",
    which that engine takes, rather than "on", which it refuses."""
    from RTSAMCommon.mrml_convert import add_volume_node, set_roi_box

    from rtsam.io import read_image

    scene = slicer.vtkMRMLScene()
    image = read_image(data / "pyradiomics/brain1_image.nrrd")
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    set_roi_box(roi, image.ijk_to_lps(np.array([[40, 40, 5], [90, 90, 15]])))
    logic = RTInjurySAMLogic(scene, make_backend("inprocess", device="cpu"))
    result = logic.process(add_volume_node(scene, image, "brain1"), scene.AddNewNodeByClass("vtkMRMLSegmentationNode"),
                           roiNode=roi, engine="sam3d-tiny", objectPresence=True)
    assert logic.interaction.session.prompt.presence == "off" and not result.objectPresence
    assert result.engine == "sam3d-tiny" and logic.updateFromPoints(objectPresence=True) is None


def test_the_model_ran_in_a_local_server_that_stops(brain):
    """The scenarios above ran with the default (local) backend: a spawned rtsam serve on loopback,
    not this process; stopping leaves no process behind. Keep this test last in the file."""
    import os

    from rtsam.client.local_process import running_servers, stop_all

    servers = running_servers()
    assert servers and all(s.pid != os.getpid() and s.url.startswith("http://127.0.0.1:") for s in servers)
    assert "rtsam serve: ready at" in servers[0].log_path.read_text()
    processes = [s._process for s in servers]
    stop_all()
    assert not running_servers() and all(p.poll() is not None for p in processes)
