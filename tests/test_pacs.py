"""Round trips through a real PACS: Orthanc (Debian ``orthanc``, with its DICOMweb plugin) started
by the tests on loopback. The real breast RTDOSE, a CT series in its study, our SEG and RTSTRUCT
of the case's structures: stored (C-STORE), queried (C-FIND), fetched back (C-GET and DICOMweb)
unchanged with their references; clear errors; ``rtsam segment`` and ``rtsam itv`` batch runs
from and to the PACS."""

import json
import socket
import time

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dicom_tools import missing
from orthanc_helpers import DICOMWEB_PLUGIN, running_orthanc
from rt_case_helpers import case_masks, dose_grid_series
from rtsam.cli import main
from rtsam.errors import PACSError
from rtsam.io import read_image, read_rtstruct
from rtsam.io.dicom_export import read_reference, write_dicom_seg, write_rtstruct
from rtsam.io.pacs import Node, echo, fetch, find_study, parse_node, send
from rtsam.itv.dicom4d import write_dicom_phases
from test_cli_segment import box_args
from test_dicom_export import ENGINE, right_handed
from test_itv_cli import small_case  # noqa: F401 (fixture)

SEG_STRUCTURES = ("Heart", "Lt Lung", "Tumor Bed")


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture(scope="module")
def rt_study(rt_case, tmp_path_factory):
    """CT series, the real RTDOSE, our SEG and RTSTRUCT: one study, one frame of reference."""
    folder = tmp_path_factory.mktemp("rt_study")
    reference = dose_grid_series(rt_case, folder / "ct")
    masks = case_masks(rt_case, reference)
    seg = write_dicom_seg({n: masks[n] for n in SEG_STRUCTURES}, reference, folder / "seg.dcm", ENGINE)
    rtstruct = write_rtstruct(masks, reference, folder / "rtss.dcm", ENGINE)
    return reference, masks, [*map(str, reference.volume.metadata["files"]), rt_case / "rtdose.dcm", seg, rtstruct]


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def by_uid(files) -> dict:
    return {str(ds.SOPInstanceUID): ds for ds in map(pydicom.dcmread, files)}


def assert_same_study(sent_files, fetched_files, reference, masks):
    """Every instance back unchanged (all elements, pixel data included); references resolve."""
    sent, fetched = by_uid(sent_files), by_uid(fetched_files)
    assert sorted(fetched) == sorted(sent)
    for uid, ds in sent.items():
        assert fetched[uid] == ds, f"{ds.Modality} {uid} changed"
    modality = {ds.Modality: ds for ds in fetched.values() if ds.Modality != "CT"}
    ct_uids = [d.SOPInstanceUID for d in reference.datasets]
    rtss = modality["RTSTRUCT"]
    series = rtss.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert [i.ReferencedSOPInstanceUID for i in series.ContourImageSequence] == ct_uids
    seg = hd.seg.Segmentation.from_dataset(modality["SEG"])
    assert {uid for _, _, uid in seg.get_source_image_uids()} <= set(ct_uids)
    assert modality["RTDOSE"].FrameOfReferenceUID == rtss.FrameOfReferenceUID == seg.FrameOfReferenceUID
    folder = fetched_files[0].parent
    back = read_reference(folder)  # the CT series among the RT objects
    assert back.volume.same_grid(reference.volume)
    structures = read_rtstruct(next(f for f in fetched_files if fetched[f.stem].Modality == "RTSTRUCT"))
    for name, mask in masks.items():
        assert np.array_equal(structures.mask(name, back.volume).array, mask.array), name
    pixels = seg.get_pixels_by_source_instance(ct_uids, segment_numbers=[1, 2, 3])
    for n, name in enumerate(SEG_STRUCTURES):
        assert np.array_equal(pixels[..., n], masks[name].array), name


@pytest.fixture(scope="module")
def stored(pacs, rt_study):
    reference, _, files = rt_study
    assert main(["dicom", "send", *map(str, files), "--to", pacs.node]) == 0
    return reference.datasets[0].StudyInstanceUID


def test_store_query_and_fetch_back_by_c_get(pacs, rt_study, stored, tmp_path, capsys):
    reference, masks, files = rt_study
    code, out, err = cli(capsys, "dicom", "find", "--study", stored, "--from", pacs.node, "--json")
    assert code == 0, err
    study = json.loads(out)
    assert study["instances"] == len(files) and set(study["modalities"]) == {"CT", "RTDOSE", "SEG", "RTSTRUCT"}
    code, out, err = cli(capsys, "dicom", "fetch", "--study", stored, "--from", pacs.node, "--out", tmp_path, "--json")
    assert code == 0 and json.loads(out)["files"] == len(files), err
    assert_same_study(files, sorted(tmp_path.glob("*.dcm")), reference, masks)


def test_fetch_back_by_dicomweb(pacs, rt_study, stored, tmp_path, capsys):
    if not DICOMWEB_PLUGIN.exists():
        missing(f"Orthanc DICOMweb plugin {DICOMWEB_PLUGIN} not found: apt-get install orthanc-dicomweb")
    reference, masks, files = rt_study
    code, out, err = cli(capsys, "dicom", "fetch", "--study", stored, "--from", pacs.dicomweb, "--out", tmp_path)
    assert code == 0, err
    assert_same_study(files, sorted(tmp_path.glob("*.dcm")), reference, masks)


def test_clear_errors(pacs, stored, rt_study, tmp_path, capsys):
    port = parse_node(pacs.node).port
    assert cli(capsys, "dicom", "echo", "--to", pacs.node)[:2] == (0, f"{pacs.node} answered\n")
    cases = [
        (["fetch", "--study", "1.2.3.4", "--from", pacs.node, "--out", tmp_path], "study 1.2.3.4 not found on"),
        (["fetch", "--study", "1.2.3.4", "--from", pacs.dicomweb, "--out", tmp_path], "study 1.2.3.4 not found on"),
        (["find", "--study", stored, "--from", f"NOSUCHAE@127.0.0.1:{port}"],
         "rejected the association: called AE title NOSUCHAE not recognised"),
        (["find", "--study", stored, "--from", pacs.node, "--aet", "STRANGER"],
         "rejected the association: calling AE title STRANGER not recognised"),
        (["echo", "--to", f"NOSUCHAE@127.0.0.1:{port}"], "called AE title NOSUCHAE not recognised"),
        (["send", rt_study[2][0], "--to", "PACS@127.0.0.1"], "AET@HOST:PORT"),
        (["send", tmp_path / "missing.dcm", "--to", pacs.node], "missing.dcm: file or folder not found"),
    ]
    if not DICOMWEB_PLUGIN.exists():
        cases.pop(1)
    for argv, message in cases:
        code, out, err = cli(capsys, "dicom", *argv)
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert message in err, err


def test_timeouts_and_retries():
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        node = Node("PACS", "127.0.0.1", silent.getsockname()[1])
        start = time.monotonic()
        with pytest.raises(PACSError, match=r"did not answer the association request within 1 s \(2 attempts\)"):
            echo(node, timeout=1, retries=1)
        assert 2 <= time.monotonic() - start < 15
    with pytest.raises(PACSError, match="cannot connect to PACS@127.0.0.1:.*refused"):
        echo(node, timeout=1, retries=1)


@pytest.mark.slow
def test_segment_from_and_to_pacs(pacs, data, tmp_path, capsys):
    """``rtsam segment STUDY --from-pacs --to-pacs``: the real brain1 lesion slices fetched, segmented by
    LiteMedSAM, the mask sent back as a SEG on the series."""
    image = right_handed(read_image(data / "pyradiomics/brain1_image.nrrd"))
    label = right_handed(read_image(data / "pyradiomics/brain1_label.nrrd"))
    k = int((label.array > 0).sum(axis=(1, 2)).argmax())
    crop = [type(v)(v.array[k - 1:k + 2], v.spacing, v.ijk_to_lps([0, 0, k - 1]), v.direction) for v in (image, label)]
    series = write_dicom_phases([crop[0]], tmp_path / "series", [0.0])
    study = pydicom.dcmread(next(series.glob("*.dcm"))).StudyInstanceUID
    assert main(["dicom", "send", str(series), "--to", pacs.node]) == 0
    capsys.readouterr()
    code, out, err = cli(capsys, "segment", study, "--from-pacs", pacs.node, "--to-pacs", pacs.node,
                         "--pacs-dir", tmp_path / "fetched", "--out", tmp_path / "lesion.nrrd",
                         "--box", *box_args(crop[1]), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["pacs"]["sent"] == [str(tmp_path / "lesion.seg.dcm")]
    mask = read_image(tmp_path / "lesion.nrrd")
    assert mask.array.sum() > 0
    assert main(["dicom", "fetch", "--study", study, "--from", pacs.node, "--out", str(tmp_path / "back")]) == 0
    segs = [ds for ds in map(pydicom.dcmread, (tmp_path / "back").glob("*.dcm")) if ds.Modality == "SEG"]
    assert len(segs) == 1
    seg = hd.seg.Segmentation.from_dataset(segs[0])
    reference = read_reference(tmp_path / "fetched")
    pixels = seg.get_pixels_by_source_instance([d.SOPInstanceUID for d in reference.datasets], segment_numbers=[1])
    assert np.array_equal(pixels[..., 0], mask.array)


def test_itv_from_and_to_pacs(pacs, small_case, tmp_path, capsys):
    """``rtsam itv --dicom STUDY --from-pacs --to-pacs``: a 4DCT of the real lung2 lesion fetched,
    its ITV and phase masks sent back as one RTSTRUCT on the reference phase."""
    folder, (ct, gtv) = small_case
    assert main(["itv-generate", str(ct), str(gtv), "--out-dir", str(tmp_path / "gen"), "--phases", "3",
                 "--format", "dicom"]) == 0
    study = pydicom.dcmread(next((tmp_path / "gen" / "dicom").glob("*.dcm"))).StudyInstanceUID
    assert main(["dicom", "send", str(tmp_path / "gen" / "dicom"), "--to", pacs.node]) == 0
    capsys.readouterr()
    code, out, err = cli(capsys, "itv", "--dicom", study, "--from-pacs", pacs.node, "--to-pacs", pacs.node,
                         "--init-mask", tmp_path / "gen" / "init_mask.nrrd", "--out", tmp_path / "itv.nrrd", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["pacs"]["sent"] == [str(tmp_path / "itv.rtstruct.dcm")]
    assert main(["dicom", "fetch", "--study", study, "--from", pacs.node, "--out", str(tmp_path / "back")]) == 0
    back = [f for f in (tmp_path / "back").glob("*.dcm") if pydicom.dcmread(f).Modality == "RTSTRUCT"]
    assert len(back) == 1
    structures = read_rtstruct(back[0])
    assert structures.names == ["ITV", "GTV_phase00", "GTV_phase01", "GTV_phase02"]
    itv = read_image(tmp_path / "itv.nrrd")
    reference = read_reference(tmp_path / "back", _phase0_series(tmp_path / "back"))
    assert np.array_equal(structures.mask("ITV", reference.volume).array, itv.array)


def _phase0_series(folder) -> str:
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in folder.glob("*.dcm")]
    return next(h.SeriesInstanceUID for h in headers if h.get("SeriesDescription") == "4DCT 0%")


def test_batch_options_need_dicom(pacs, small_case, tmp_path, capsys):
    folder, (ct, gtv) = small_case
    code, _, err = cli(capsys, "segment", ct, "--to-pacs", pacs.node, "--out", tmp_path / "m.nrrd",
                       "--box", "0", "0", "0", "5", "5", "5")
    assert code == 2 and f"{ct}: --to-pacs sends a DICOM SEG on the image's series" in err
    code, _, err = cli(capsys, "itv", ct, ct, "--from-pacs", pacs.node, "--init-mask", gtv, "--out", tmp_path / "i.nrrd")
    assert code == 2 and "--from-pacs fetches the study given as --dicom STUDY_UID" in err
    assert not (tmp_path / "m.nrrd").exists()


def test_incomplete_fetch_is_an_error(pacs, rt_study, tmp_path):
    """A study holding an object no storage context of ours takes (ultrasound): C-GET says so."""
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(rt_study[2][0])
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # US Image Storage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "us.dcm")
    send([tmp_path / "us.dcm"], parse_node(pacs.node))
    assert find_study(parse_node(pacs.node), ds.StudyInstanceUID)["modalities"] == [ds.Modality]
    with pytest.raises(PACSError, match=r"incomplete .*0 received, 1 failed"):
        fetch(parse_node(pacs.node), ds.StudyInstanceUID, tmp_path / "out")
