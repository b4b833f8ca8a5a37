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

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="needs Debian's chromium")
KEY = "rtsam-web-test-key-0123456789"  # the server runs with an API key: pages must pass it as ?secret=
ARTEFACTS = Path(os.environ.get("RTSAM_TEST_ARTEFACTS", Path(__file__).resolve().parents[1] / "test-artefacts"))


@pytest.fixture(scope="module")
def brain(data):
    return data / "pyradiomics/brain1_image.nrrd", data / "pyradiomics/brain1_label.nrrd"


@pytest.fixture(scope="module")
def web(brain, tmp_path_factory):
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    process, url = start_web(["--api-key", KEY, str(brain[0]), str(brain[1])], ARTEFACTS / "rtsam-web.log")
    chromium = Chromium(chromium_path())
    yield chromium, url
    chromium.close()
    stop(process)


CLICK_MM = 2.0  # how far from its target a click may land (brain1's pixels are 0.78 mm)


def deepest_voxel_ras(label_path) -> np.ndarray:
    """The RAS position of the label voxel farthest from the label's border (surely inside)."""
    from scipy.ndimage import distance_transform_edt

    label = read_image(label_path)
    depth = distance_transform_edt(label.array > 0, sampling=label.spacing[::-1])
    k, j, i = np.unravel_index(np.argmax(depth), depth.shape)
    return lps_to_ras(label.ijk_to_lps([i, j, k]))


def ras_to_view_xy(geometry: dict, ras) -> np.ndarray:
    """Pixel position (x from left, y from top) of a RAS point in a slice view, from the app's
    slice_geometry (the slice node's XY-to-RAS matrix, origin bottom-left, and the view size)."""
    matrix = np.array(geometry["xy_to_ras"], float).reshape(4, 4)
    x, y, _, _ = np.linalg.solve(matrix, np.append(np.asarray(ras, float), 1.0))
    return np.array([x, geometry["size"][1] - y])


async def click_at(page, view: str, selector: str, ras) -> None:
    """Click where a RAS point shows in a slice view (view pixels scaled to the element's CSS box)."""
    geometry = await page.trigger("slice_geometry", view)
    x, y = ras_to_view_xy(geometry, ras)
    rect = await page.rect(selector)
    scale = rect["width"] / geometry["size"][0]
    await page.mouse_click(rect["x"] + x * scale, rect["y"] + y * scale)


async def wait_drawn(page) -> None:
    """Wait until the app is idle and the axial view has sent a new image (its size and slice final)."""
    await page.wait_for("!window.trame.state.get('busy')", what="the app to be idle")
    before = await page.evaluate("document.querySelector('img.image-display-area').src")
    await page.evaluate("window.trame.trigger('render_views', [])")
    await page.wait_for(f"document.querySelector('img.image-display-area').src !== {before!r}", 30, "a new frame")


async def click_on_target(page, target, tries: int = 3) -> dict:
    """Click ``target`` in the axial view; the segment once the include point lies within CLICK_MM of it.
    A click that lands elsewhere (the page still laying out a redrawn frame: seen once in 3 CI runs, a
    harness race, not the app's mapping) is undone and sent again, at most ``tries`` times."""
    landed = []
    for _ in range(tries):
        await wait_drawn(page)  # a click on a frame still being redrawn lands elsewhere
        await click_at(page, "axial", "img.image-display-area", target)
        segment = await page.wait_for("(s => s && s.includes === 1 && s)(window.trame.state.get('segment'))", 180,
                                      "the segment")
        landed.append(segment["include_ras"][0])
        if np.linalg.norm(np.subtract(landed[-1], target)) <= CLICK_MM:
            return segment
        await page.click_element("#undo")
        await page.wait_for("window.trame.state.get('segment').includes === 0", 120, "the undo")
    raise AssertionError(f"clicks at RAS {np.round(target, 1).tolist()} landed at {landed}")


async def screenshot_when_drawn(page, path: Path) -> None:
    await wait_drawn(page)
    await page.screenshot(path)


def test_page_without_the_key_gets_no_session(web):
    chromium, url = web

    async def scenario(page):
        await page.call("Page.enable")
        await page.call("Page.navigate", url=url)
        await page.wait_for("!!document.body && document.body.innerText.includes('connect')", 60, "the client's connection error")
        return await page.evaluate("(window.trame && window.trame.state && window.trame.state.get('status')) ?? null")

    assert asyncio.run(open_page(chromium, None, scenario)) is None


def test_click_in_axial_view_segments_the_tumour(web, brain, tmp_path):
    chromium, url = web
    url = f"{url}?secret={KEY}"
    target = deepest_voxel_ras(brain[1])

    async def scenario(page):
        assert await page.wait_for("window.trame.state.get('case_info')", what="the case loaded from DATA")
        assert await page.state("reference_names") == ["brain1_label"]
        await page.set_state(seg_margin=5)  # the protocol's margin (a 0-2 mm box is LiteMedSAM's failure regime on brain1)
        await page.click_element("#box-reference")
        await page.wait_for("window.trame.state.get('seg_box_text').includes('mm)')", what="the box")
        await page.trigger("jump_to", list(target))
        await page.click_element("#click-include")
        await page.wait_for("window.trame.state.get('click_mode') === 'include'")
        segment = await click_on_target(page, target)
        assert await page.trigger("segment_contains", list(target))
        await screenshot_when_drawn(page, ARTEFACTS / "web-segment.png")
        await page.set_state(export_path=str(tmp_path / "out.seg.nrrd"), export_format="nrrd")
        await page.click_element("#export")
        await page.wait_for("window.trame.state.get('status').startsWith('exported')", what="the export")
        await page.click_element("#undo")
        undone = await page.wait_for("window.trame.state.get('segment').includes === 0 && "
                                     "window.trame.state.get('segment')", 120, "the undo")
        return segment, undone

    segment, undone = asyncio.run(open_page(chromium, url, scenario))
    assert (tmp_path / "out.seg.nrrd").stat().st_size > 0
    assert segment["includes"] == 1 and segment["excludes"] == 0
    assert segment["voxels"] > 100 and segment["engine"] == "litemedsam"
    assert segment["dice_reference"] > 0.7
    assert undone["includes"] == 0 and undone["voxels"] != segment["voxels"]


@pytest.fixture(scope="module")
def four_dct(brain, tmp_path_factory):
    """A 3-phase 4DCT from the brain1 crop warped by a breathing model, written as phase files, with the
    GTV of phase 0 and the true ITV."""
    from rtsam.io import write_image
    from rtsam.itv.generator import make_4dct
    from rtsam.web.modules import add_module_paths

    add_module_paths()
    from RTInjurySAMLib.scenarios import binary_mask, crop_near_lesion

    image, label = crop_near_lesion(read_image(brain[0]), binary_mask(read_image(brain[1])), slices=4)
    generated = make_4dct(image, label, phases=3, amplitude_si_mm=0.0, amplitude_ap_mm=5.0, fade_mm=12.0)
    folder = tmp_path_factory.mktemp("4dct")
    files = [write_image(phase, folder / f"phase_{n}0.nrrd") for n, phase in enumerate(generated.phases)]
    gtv = write_image(generated.phase_masks[0], folder / "gtv_phase0.nrrd")
    return files, gtv, generated


def test_itv_tab_builds_the_itv_from_a_gtv_file(web, four_dct):
    chromium, url = web
    url = f"{url}?secret={KEY}"
    files, gtv, generated = four_dct

    async def scenario(page):
        await page.click_element("#tab-itv")
        await page.set_state(itv_phases_path="\n".join(str(f) for f in files), itv_gtv_path=str(gtv), itv_reference=0)
        await page.click_element("#itv-load")
        await page.wait_for("window.trame.state.get('itv_phase_count') === 3", what="the 4DCT")
        await page.click_element("#itv-run")
        result = await page.wait_for("window.trame.state.get('itv_result')", 180, "the ITV")
        await page.set_state(itv_phase=2)
        await screenshot_when_drawn(page, ARTEFACTS / "web-itv.png")
        return result

    result = asyncio.run(open_page(chromium, url, scenario))
    truth_ml = generated.truth_itv.array.sum() * generated.truth_itv.voxel_volume_ml
    phase_ml = [m.array.sum() * m.voxel_volume_ml for m in generated.phase_masks]
    assert [row["label"] for row in result["phases"]] == ["0", "1", "2"]
    assert all(v > 0 for v in result["masks_voxels"])
    assert result["itv_volume_ml"] >= max(row["volume_ml"] for row in result["phases"])
    assert result["itv_volume_ml"] == pytest.approx(truth_ml, rel=0.25)
    assert [row["volume_ml"] for row in result["phases"]] == pytest.approx(phase_ml, rel=0.25)
    assert result["plot"].startswith("<svg") and result["plot"].count("<polyline") == 3
