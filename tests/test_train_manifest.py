import json

import numpy as np
import pytest

from rtsam.errors import InputError
from rtsam.io import read_image, write_image
from rtsam.train.dataset import CropDataset, crop, prepare_case
from rtsam.train.manifest import read_manifest, validate


@pytest.fixture(scope="module")
def radiomics(data):
    return data / "pyradiomics"


def _write_csv(path, rows, header="image,label,dose,task,patient"):
    path.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def empty_label(radiomics, tmp_path_factory):
    image = read_image(radiomics / "breast1_label.nrrd")
    return write_image(image.with_array(np.zeros_like(image.array)), tmp_path_factory.mktemp("empty") / "empty.nrrd")


def test_folder_manifest_finds_pairs(radiomics):
    cases = read_manifest(radiomics, default_task="tumour")
    assert [c.image.name for c in cases] == ["brain1_image.nrrd", "brain2_image.nrrd", "breast1_image.nrrd", "lung2_image.nrrd"]
    assert all(c.label.name == c.image.name.replace("_image", "_label") for c in cases)
    assert {c.task for c in cases} == {"tumour"} and [c.row for c in cases] == [1, 2, 3, 4]


def test_bad_rows_are_refused_with_row_numbers(radiomics, tmp_path, empty_label):
    r = str(radiomics)
    manifest = _write_csv(tmp_path / "m.csv", [
        (f"{r}/breast1_image.nrrd", f"{r}/breast1_label.nrrd", "", "edema", ""),
        (f"{r}/missing_image.nrrd", f"{r}/breast1_label.nrrd", "", "edema", ""),
        (f"{r}/brain1_image.nrrd", f"{r}/brain2_label.nrrd", "", "edema", ""),
        (f"{r}/breast1_image.nrrd", str(empty_label), "", "edema", ""),
        (f"{r}/breast1_image.nrrd", f"{r}/breast1_label.nrrd", "", "necrosis", ""),
    ])
    with pytest.raises(InputError) as info:
        validate(manifest, known_tasks=["edema"])
    message = str(info.value)
    assert "4 of 5 manifest rows are unusable" in message
    assert "row 2" in message and "not found" in message
    assert "row 3" in message and "does not match image grid" in message
    assert "row 4" in message and "label is empty" in message
    assert "row 5" in message and "'necrosis' is not known" in message
    assert "row 1" not in message

    kept = validate(manifest, known_tasks=["edema"], skip_bad=True)
    assert [c.case.row for c in kept.cases] == [1]
    assert len(kept.skipped) == 4 and kept.skipped[0].startswith("row 2")


def test_all_rows_bad_is_refused_even_when_skipping(radiomics, tmp_path):
    manifest = _write_csv(tmp_path / "m.csv", [(f"{radiomics}/nope.nrrd", f"{radiomics}/nope.nrrd")], "image,label")
    with pytest.raises(InputError, match="no usable case"):
        validate(manifest, skip_bad=True)


def test_schema_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("img,lbl\na,b\n")
    with pytest.raises(InputError, match="must name 'image' and 'label'"):
        read_manifest(bad)
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps([{"image": "a", "label": "b", "organ": "x"}]))
    with pytest.raises(InputError, match=r"row 1: unknown column\(s\) \['organ'\]"):
        read_manifest(extra)
    with pytest.raises(InputError, match="not found"):
        read_manifest(tmp_path / "none.csv")


def test_json_and_csv_give_the_same_hash_and_it_tracks_content(radiomics, tmp_path):
    (tmp_path / "a").mkdir()
    rows = [{"image": f"{radiomics}/breast1_image.nrrd", "label": f"{radiomics}/breast1_label.nrrd", "task": "edema",
             "patient": "left breast boost"}]
    js = tmp_path / "a" / "m.json"
    js.write_text(json.dumps({"cases": rows}))
    cs = _write_csv(tmp_path / "m.csv", [(rows[0]["image"], rows[0]["label"], "", "edema", "left breast boost")])
    a, b = validate(js), validate(cs)
    assert a.sha256 == b.sha256 and len(a.sha256) == 64
    assert a.cases[0].case.patient == "left breast boost" and a.tasks == ["edema"]
    rows[0]["task"] = "necrosis"
    js.write_text(json.dumps(rows))
    assert validate(js).sha256 != a.sha256


def test_relative_paths_and_dose_roi_crop(radiomics, tmp_path):
    """A dose (synthetic: a Gaussian around the lesion) gives the ROI; crops keep the lesion."""
    label = read_image(radiomics / "brain1_label.nrrd")
    centre = np.argwhere(label.array > 0).mean(axis=0)
    k, j, i = np.indices(label.array.shape)
    zyx_mm = np.stack([k, j, i], -1) * np.asarray(label.spacing)[::-1]
    dist2 = ((zyx_mm - centre * np.asarray(label.spacing)[::-1]) ** 2).sum(-1)
    write_image(label.with_array((60.0 * np.exp(-dist2 / (2 * 15.0**2))).astype(np.float32)), tmp_path / "dose.nrrd")
    for name in ("image", "label"):
        (tmp_path / f"brain1_{name}.nrrd").symlink_to(radiomics / f"brain1_{name}.nrrd")
    _write_csv(tmp_path / "m.csv", [("brain1_image.nrrd", "brain1_label.nrrd", "dose.nrrd", "edema", "")])
    manifest = validate(tmp_path / "m.csv")
    prepared = prepare_case(manifest.cases[0], spacing=1.5, size=64, tau=0.8, margin_mm=0)
    assert prepared.has_dose
    roi_voxels = prepared.roi.sum() * 1.5**3
    # the 80% isodose of a 15 mm Gaussian is a sphere of radius 15*sqrt(2 ln 1.25) = 10.0 mm
    assert roi_voxels == pytest.approx(4 / 3 * np.pi * 10.0**3, rel=0.25)

    val = CropDataset([prepared], 64, train=False)[0]
    lo, hi = val["box"]
    assert (hi - lo).min() > 8 and (hi - lo).max() < 20  # the ~20 mm isodose box, in 1.5 mm voxels
    assert val["label"].sum() == prepared.label.sum()  # the whole lesion is inside the centred crop
    train = CropDataset([prepared], 64, train=True, repeats=3, seed=1)
    items = [train[n] for n in range(3)]
    assert len(train) == 3 and all(x["image"].shape == (1, 64, 64, 64) for x in items)
    assert not np.allclose(items[0]["image"], items[1]["image"])  # augmented differently
    assert all(x["label"].sum() > 0.5 * prepared.label.sum() for x in items)


def test_crop_pads_outside():
    a = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    c = crop(a, np.array([0, 0, 0]), 4, fill=-1)
    assert c.shape == (4, 4, 4) and c[2, 2, 2] == a[0, 0, 0] and c[0, 0, 0] == -1
