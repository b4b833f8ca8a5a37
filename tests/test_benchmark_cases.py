import json

import numpy as np
import pytest

from rtsam.benchmark_cases import find_cases
from rtsam.benchmark_interactive import box_from_label, jittered_box, noc
from rtsam.cli import main
from rtsam.io import read_image, read_label, write_image
from rtsam.io.dicom_export import read_reference, write_rtstruct
from rtsam.itv.dicom4d import write_dicom_phases
from rtsam.volume import Volume


@pytest.fixture(scope="module")
def breast(data):
    return read_image(data / "pyradiomics/breast1_image.nrrd"), read_image(data / "pyradiomics/breast1_label.nrrd")


def test_case_folder_and_manifest(data, tmp_path):
    cases = find_cases(data / "pyradiomics")
    assert [c["name"] for c in cases] == ["brain1", "brain2", "breast1", "lung2"]
    assert all(c["label"].name == f"{c['name']}_label.nrrd" for c in cases)
    manifest = tmp_path / "cases.json"
    manifest.write_text(json.dumps([{"name": "b", "image": str(cases[2]["image"]), "label": str(cases[2]["label"])}]))
    assert find_cases(manifest)[0]["name"] == "b"


@pytest.mark.parametrize("content, message", [
    (None, "no <name>_image"), ("[]", "non-empty JSON list"), ("{", "not JSON"),
    ('[{"image": "x_image.nrrd", "label": "x_label.nrrd"}]', "image file does not exist"),
])
def test_bad_case_sources_name_the_file_and_exit_2(tmp_path, capsys, content, message):
    source = tmp_path
    if content is not None:
        source = tmp_path / "m.json"
        source.write_text(content)
    assert main(["benchmark", "interactive", "--cases", str(source)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(tmp_path) in err and "Traceback" not in err


def test_empty_label_and_other_grid_exit_2(breast, tmp_path, capsys):
    image, label = breast
    write_image(image, tmp_path / "image.nrrd")
    write_image(label.with_array(np.zeros_like(label.array)), tmp_path / "empty.nrrd")
    shifted = Volume(label.array, label.spacing, tuple(np.add(label.origin, 1.0)), label.direction)
    write_image(shifted, tmp_path / "shifted.nrrd")
    for name, message in (("empty.nrrd", "label is empty"), ("shifted.nrrd", "grid does not match")):
        code = main(["benchmark", "interactive", "--image", str(tmp_path / "image.nrrd"), "--label", str(tmp_path / name)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and name in err


def test_noc_and_jittered_box(breast):
    assert noc([0.5, 0.86, 0.91], 0.85, 10) == 1 and noc([0.5, 0.86, 0.91], 0.9, 10) == 2
    assert noc([0.5, 0.6], 0.9, 10) == 11  # never reached: cap + 1
    _, label = breast
    base = box_from_label(label, 5.0)
    a, b, c = jittered_box(label, 0), jittered_box(label, 0), jittered_box(label, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0 < np.abs(a - base).max() <= 3.0


def test_benchmark_over_a_case_folder_writes_json_table_and_plot(breast, tmp_path, capsys):
    image, label = breast
    folder = tmp_path / "cases"
    folder.mkdir()
    write_image(image, folder / "breast1_image.nrrd")
    write_image(label, folder / "breast1_label.nrrd")
    out, plot = tmp_path / "report.json", tmp_path / "dice.png"
    code = main(["benchmark", "interactive", "--cases", str(folder), "--margins", "0", "10", "--clicks", "2",
                 "--out", str(out), "--plot", str(plot)])
    table = capsys.readouterr().out
    assert code == 0 and "noc90" in table and "margin 10 mm" in table and "jitter 3 mm" in table
    report = json.loads(out.read_text())
    case = report["cases"][0]
    assert report["presence"] == case["presence"] == "off"  # litemedsam's default, recorded
    assert case["name"] == "breast1" and len(case["runs"]) == 3
    for run in case["runs"]:
        assert 1 <= len(run["steps"]) <= 3 and 0 <= run["noc90"] <= 3
        step = run["steps"][0]
        truth_ml = label.array.astype(bool).sum() * label.voxel_volume_ml
        assert step["volume_error_pct"] == pytest.approx(100 * step["volume_error_ml"] / truth_ml, rel=0.01, abs=0.2)
        assert step["hd95_mm"] >= 0 and isinstance(step["low_quality"], bool)
    assert case["summary"]["margin_slices"] >= 4  # breast1's 2.1 mm slices: 10 mm margin slices
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def breast_dicom(breast, tmp_path_factory):
    """breast1 as a DICOM series, its lesion in an RTSTRUCT beside a second structure, and as NRRD on that grid."""
    image, label = breast
    folder = tmp_path_factory.mktemp("breast_dicom")
    write_dicom_phases([image], folder / "series", [0.0])
    reference = read_reference(folder / "series")
    lesion = reference.volume.with_array(label.array)
    rtstruct = write_rtstruct({"Lesion": lesion, "Ring": lesion.with_array(1 - label.array)}, reference,
                              folder / "rtss.dcm")
    return folder / "series", rtstruct, write_image(lesion, folder / "lesion.nrrd")


def test_rtstruct_label_is_its_structure_on_the_image_grid(breast_dicom, capsys):
    series, rtstruct, nrrd = breast_dicom
    image = read_image(series)
    assert np.array_equal(read_label(rtstruct, image, "Lesion").array, read_image(nrrd).array)
    assert main(["benchmark", "interactive", "--image", str(series), "--label", str(rtstruct), "--structure", "Lesion",
                 "--clicks", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"][0]["dice"] > 0.2  # the ring would give about 0


@pytest.mark.parametrize("structure, message", [
    (None, "2 structures with contours (Lesion, Ring): name one"),
    ("Tumour", "no structure named 'Tumour'; available: Lesion, Ring"),
])
def test_rtstruct_label_needs_one_named_structure(breast_dicom, capsys, structure, message):
    series, rtstruct, _ = breast_dicom
    args = ["benchmark", "interactive", "--image", str(series), "--label", str(rtstruct)]
    assert main(args + (["--structure", structure] if structure else [])) == 2
    err = capsys.readouterr().err
    assert message in err and "rtss.dcm" in err and "Traceback" not in err


def test_structure_with_an_image_label_and_in_a_manifest(breast_dicom, tmp_path, capsys):
    series, rtstruct, nrrd = breast_dicom
    assert main(["benchmark", "interactive", "--image", str(series), "--label", str(nrrd), "--structure", "x"]) == 2
    assert "structure 'x' was named, but the label is not an RTSTRUCT" in capsys.readouterr().err
    manifest = tmp_path / "cases.json"
    entry = {"name": "b", "image": str(series), "label": str(rtstruct), "structure": "Lesion"}
    manifest.write_text(json.dumps([entry]))
    assert find_cases(manifest)[0]["structure"] == "Lesion"
    manifest.write_text(json.dumps([{"image": str(series), "label": str(rtstruct), "structure": 3}]))
    assert main(["benchmark", "interactive", "--cases", str(manifest)]) == 2
    assert '"structure" must be a structure name' in capsys.readouterr().err
