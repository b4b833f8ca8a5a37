"""Small lung nodules inserted into the real lung2 CT (rtsam.nodules, ``rtsam benchmark nodules``)."""

import json

import numpy as np
import pytest
from scipy import ndimage

from conftest import oblique_direction
from rtsam.benchmark_cases import find_cases
from rtsam.cli import main
from rtsam.errors import InputError
from rtsam.io import read_image
from rtsam.nodules import GAP_MM, nodule_cases
from rtsam.volume import Volume


@pytest.fixture(scope="module")
def lung2(data):
    """lung2 cut in-plane to the chest (faster), on its own grid."""
    image, label = (read_image(data / f"pyradiomics/lung2_{name}.nrrd") for name in ("image", "label"))

    def cut(v):
        return Volume(v.array[:, 96:448, 24:488], v.spacing, tuple(v.ijk_to_lps([24, 96, 0])), v.direction)

    return cut(image), cut(label)


@pytest.fixture(scope="module")
def nodules(lung2):
    return nodule_cases(*lung2, count=3, seed=1)


def test_nodules_are_small_made_of_the_lesion_and_surrounded_by_lung(lung2, nodules):
    image, lesion = lung2
    spacing = np.array(image.spacing)[::-1]
    away = ndimage.distance_transform_edt(lesion.array == 0, sampling=spacing)
    for nodule in nodules:
        truth = nodule.label.array > 0
        assert nodule.label.same_grid(image) and nodule.image.same_grid(image)
        assert 0.4 < nodule.volume_ml < 3.5 and 2 <= truth.any(axis=(1, 2)).sum() <= 5
        assert nodule.volume_ml == pytest.approx(truth.sum() * image.voxel_volume_ml)
        assert np.median(image.array[truth]) < -700  # aerated lung before
        assert np.median(nodule.image.array[truth]) > -100  # tumour tissue after
        ring = ndimage.binary_dilation(truth, np.ones((1, 11, 11), bool)) & ~ndimage.binary_dilation(truth, np.ones((1, 5, 5), bool))
        assert np.median(nodule.image.array[ring]) < -700
        changed = nodule.image.array != image.array
        assert not (changed & ~ndimage.binary_dilation(truth, np.ones((3, 7, 7), bool))).any()
        rim = changed & ~truth  # partial volume: between lung and tissue
        assert rim.any() and np.median(nodule.image.array[rim]) < np.median(nodule.image.array[truth])
        assert away[truth].min() > GAP_MM - 10
        centroid = image.ijk_to_lps(np.argwhere(truth).mean(axis=0)[None, ::-1])[0]
        assert np.linalg.norm(centroid - nodule.site_lps) < 1.0
    sites = np.array([n.site_lps for n in nodules])
    assert min(np.linalg.norm(a - b) for i, a in enumerate(sites) for b in sites[i + 1:]) > 30


def test_same_nodules_in_voxels_on_an_oblique_grid(lung2, nodules):
    """Sites and shapes are drawn in voxels: on a rotated, moved grid the arrays are the same and the
    reported centre is where the label is in LPS."""
    image, lesion = lung2
    direction, origin = oblique_direction(25.0), (40.0, -12.5, 300.0)
    image_o, lesion_o = (Volume(v.array, v.spacing, origin, direction) for v in (image, lesion))
    for plain, oblique in zip(nodules, nodule_cases(image_o, lesion_o, count=3, seed=1)):
        assert np.array_equal(plain.label.array, oblique.label.array)
        assert np.array_equal(plain.image.array, oblique.image.array)
        centroid = oblique.label.ijk_to_lps(np.argwhere(oblique.label.array > 0).mean(axis=0)[None, ::-1])[0]
        assert np.linalg.norm(centroid - oblique.site_lps) < 1.0
        assert np.linalg.norm(oblique.site_lps - plain.site_lps) > 10


def test_bad_input(data, lung2):
    image, lesion = lung2
    with pytest.raises(InputError, match="empty"):
        nodule_cases(image, lesion.with_array(np.zeros_like(lesion.array)))
    with pytest.raises(InputError, match="grid"):
        nodule_cases(image, Volume(lesion.array[1:], lesion.spacing, lesion.origin))
    brain, tumour = (read_image(data / f"pyradiomics/brain1_{name}.nrrd") for name in ("image", "label"))
    with pytest.raises(InputError, match="aerated lung") as error:
        nodule_cases(brain, tumour)
    assert "brain1_image.nrrd" in str(error.value)


def test_cli_writes_a_case_folder_the_benchmark_reads(data, tmp_path, capsys):
    folder = data / "pyradiomics"
    out = tmp_path / "nodules"
    code = main(["benchmark", "nodules", "--image", str(folder / "lung2_image.nrrd"), "--label",
                 str(folder / "lung2_label.nrrd"), "--out", str(out), "--count", "2"])
    assert code == 0 and "nodule2" in capsys.readouterr().out
    cases = find_cases(out)
    provenance = json.loads((out / "nodules.json").read_text())
    assert [c["name"] for c in cases] == [row["name"] for row in provenance["nodules"]] == ["nodule1", "nodule2"]
    label = read_image(cases[0]["label"])
    assert label.array.sum() * label.voxel_volume_ml == pytest.approx(provenance["nodules"][0]["volume_ml"], abs=0.01)
    code = main(["benchmark", "nodules", "--image", str(folder / "brain1_image.nrrd"), "--label",
                 str(folder / "brain1_label.nrrd"), "--out", str(out)])
    assert code == 2 and "aerated lung" in capsys.readouterr().err
