"""``rtsam web`` end to end in real headless Chromium (DevTools protocol): load brain1 with its label,
segment from a box and a click placed in the axial view, check the mask through the app; ITV tab likewise."""

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trame_slicer")
from web_helpers import Chromium, chromium_path, open_page, start_web, stop  # noqa: E402

from rtsam.io import read_image  # noqa: E402
from rtsam.volume import lps_to_ras  # noqa: E402
from rtsam.web.app import ras_to_view_xy  # noqa: E402

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="needs Debian's chromium")
ARTEFACTS = Path(os.environ.get("RTSAM_TEST_ARTEFACTS", Path(__file__).resolve().parents[1] / "test-artefacts"))


@pytest.fixture(scope="module")
def brain(data):
    return data / "pyradiomics/brain1_image.nrrd", data / "pyradiomics/brain1_label.nrrd"


@pytest.fixture(scope="module")
def web(brain, tmp_path_factory):
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    process, url = start_web([str(brain[0]), str(brain[1])], ARTEFACTS / "rtsam-web.log")
    chromium = Chromium(chromium_path())
    yield chromium, url
    chromium.close()
    stop(process)


def deepest_voxel_ras(label_path) -> np.ndarray:
    """The RAS position of the label voxel farthest from the label's border (surely inside)."""
    from scipy.ndimage import distance_transform_edt

    label = read_image(label_path)
    depth = distance_transform_edt(label.array > 0, sampling=label.spacing[::-1])
    k, j, i = np.unravel_index(np.argmax(depth), depth.shape)
    return lps_to_ras(label.ijk_to_lps([i, j, k]))


async def click_at(page, view: str, selector: str, ras) -> None:
    """Click where a RAS point shows in a slice view (view pixels scaled to the element's CSS box)."""
    geometry = await page.trigger("slice_geometry", view)
    x, y = ras_to_view_xy(geometry, ras)
    rect = await page.rect(selector)
    scale = rect["width"] / geometry["size"][0]
    await page.mouse_click(rect["x"] + x * scale, rect["y"] + y * scale)


def test_click_in_axial_view_segments_the_tumour(web, brain):
    chromium, url = web
    target = deepest_voxel_ras(brain[1])

    async def scenario(page):
        assert await page.wait_for("window.trame.state.get('case_info')", what="the case loaded from DATA")
        assert await page.state("reference_names") == ["brain1_label"]
        await page.click_element("#box-reference")
        await page.wait_for("window.trame.state.get('seg_box_text').includes('mm)')", what="the box")
        await page.trigger("jump_to", list(target))
        await page.click_element("#click-include")
        await page.wait_for("window.trame.state.get('click_mode') === 'include'")
        await click_at(page, "axial", "img.image-display-area", target)
        segment = await page.wait_for("window.trame.state.get('segment')", 180, "the segment")
        assert await page.trigger("segment_contains", list(target))
        await page.screenshot(ARTEFACTS / "web-segment.png")
        return segment, await page.state("error")

    segment, error = asyncio.run(open_page(chromium, url, scenario))
    assert not error
    assert segment["includes"] == 1 and segment["excludes"] == 0
    assert segment["voxels"] > 100 and segment["engine"] == "litemedsam"
    assert segment["dice_reference"] > 0.7
