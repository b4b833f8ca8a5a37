import numpy as np
import pytest
import torch
from scipy import ndimage

from rtsam.benchmark_interactive import box_from_label, run_interactive
from rtsam.engines.base import Click, Prompt
from rtsam.engines.litemedsam import END_CLICK_AREA, ERASE_CENTRAL, PRESENCE_RULE, UNTIGHTENED_MARGIN, SlicePlan
from rtsam.engines.litemedsam_prep import (Letterbox, ZoomRule, central_blobs_erased, detect_modality,
                                          unhonoured_clicks_painted, zoom_region)
from rtsam.engines.litemedsam_presence import PresenceRule
from rtsam.engines.registry import load_engine
from rtsam.errors import CancelledError, InputError
from rtsam.io import read_image
from rtsam.metrics import dice
from rtsam.prompts.clicks import next_clicks
from rtsam.volume import Volume


def slab(volume: Volume, k0: int, k1: int) -> Volume:
    """Slices k0..k1-1 of ``volume`` with the right origin."""
    return Volume(volume.array[k0:k1], volume.spacing, tuple(volume.ijk_to_lps([0, 0, k0])), volume.direction,
                  metadata=dict(volume.metadata))


@pytest.fixture(scope="module")
def engine():
    torch.set_num_threads(2)
    return load_engine("litemedsam")


@pytest.fixture(scope="module")
def lung(data):
    image = read_image(data / "pyradiomics/lung2_image.nrrd")
    label = read_image(data / "pyradiomics/lung2_label.nrrd")
    return slab(image, 13, 28), slab(label, 13, 28)


def test_letterbox_keeps_aspect_and_pads():
    box = Letterbox((64, 128))  # scaled x2 to 128 x 256, then padded to 256 x 256
    x = box.image_tensor(np.arange(64 * 128, dtype=np.int16).reshape(64, 128), (0.0, 32768.0))
    assert x.shape == (1, 3, 256, 256) and box.resized == (128, 256)
    assert float(x[0, 0, 128:].abs().max()) == 0.0 and float(x[0, 0, :128].max()) == 1.0
    np.testing.assert_allclose(box.to_grid([[10.0, 20.0]]), [[20.0, 40.0]])
    logits = torch.full((1, 1, 256, 256), -10.0); logits[..., :64, :] = 10.0
    prob = box.probability(logits)
    assert prob.shape == (64, 128) and prob[:30].min() > 0.99 and prob[34:].max() < 0.01


def test_a_region_letterbox_sees_and_returns_only_its_region():
    rng = np.random.default_rng(0)
    slice2d = rng.uniform(-3.0, 3.0, size=(100, 120)).astype(np.float32)
    slice2d[10:42, 20:84] = rng.uniform(-3.0, 0.0, size=(32, 64))  # the region holds the window's lower half only
    region = Letterbox((100, 120), (10, 20, 32, 64))  # rows 10..41, cols 20..83: scaled x4 to 128 x 256
    whole = Letterbox((32, 64))
    assert region.scale == 4.0 and region.resized == (128, 256)
    x = region.image_tensor(slice2d, (-3.0, 3.0))
    assert x.shape == (1, 3, 256, 256) and float(x[0, 0, 128:].abs().max()) == 0.0
    assert 0.45 < float(x[0, 0, :128].max()) < 0.55  # normalised as the whole slice is, not stretched to 1
    assert float(whole.image_tensor(slice2d[10:42, 20:84], (-3.0, 3.0)).max()) == 1.0
    np.testing.assert_allclose(region.to_grid([[20.0, 10.0], [30.0, 12.0]]), [[0.0, 0.0], [40.0, 8.0]])
    mask = np.zeros((100, 120), bool); mask[10:26, 20:84] = True
    assert np.array_equal(region.cell_shares(mask, (16, 16)), whole.cell_shares(mask[10:42, 20:84], (16, 16)))
    logits = torch.full((1, 1, 256, 256), 10.0)  # everything inside: the region only comes back
    prob = region.probability(logits)
    assert prob.shape == (100, 120) and prob[10:42, 20:84].min() > 0.99
    assert prob.sum() == pytest.approx(prob[10:42, 20:84].sum())


def test_zoom_region_is_square_in_mm_and_stays_inside_the_slice():
    spacing = (0.5, 1.0)  # columns 0.5 mm, rows 1 mm
    r0, c0, rows, cols = zoom_region((200, 400), np.array([100, 50, 120, 55]), spacing, 3.0, 20.0)
    assert (rows, cols) == (30, 60)  # 3 x the 10 mm side, in each axis's pixels
    assert np.allclose((r0 + (rows - 1) / 2, c0 + (cols - 1) / 2), (52.5, 110.0), atol=0.5)  # on the box centre
    assert zoom_region((200, 400), np.array([0, 0, 4, 4]), spacing, 3.0, 20.0)[:2] == (0, 0)  # shifted in
    r0, c0, rows, cols = zoom_region((200, 400), np.array([380, 190, 399, 199]), spacing, 3.0, 20.0)
    assert (r0 + rows, c0 + cols) == (200, 400)
    assert zoom_region((200, 400), np.array([100, 50, 120, 55]), spacing, 3.0, 500.0) is None  # the whole slice


def test_zoom_rule_keeps_one_region_for_clicks_inside_it():
    rule, spacing = ZoomRule(below_px=15.0, factor=3.0, least_mm=20.0), (1.0, 1.0)  # 200 x 200: 1.28 grid px
    user = np.array([50.0, 50.0, 60.0, 60.0])
    region = rule.letterbox((200, 200), user, user, spacing).region
    assert region == (40, 40, 30, 30)
    assert rule.letterbox((200, 200), user, np.array([50.0, 45.0, 60.0, 68.0]), spacing).region == region
    grown = np.array([50.0, 50.0, 60.0, 90.0])  # a positive click far outside the box
    r0, c0, rows, cols = rule.letterbox((200, 200), user, grown, spacing).region
    assert r0 <= 50 and r0 + rows > 90 and c0 <= 50 and c0 + cols > 60
    assert rule.letterbox((200, 200), np.array([50.0, 50.0, 80.0, 60.0]), user, spacing).region is None


def test_modality_from_values():
    assert detect_modality(Volume(np.full((2, 2, 2), -1000))) == "CT"
    assert detect_modality(Volume(np.full((2, 2, 2), 300))) == "MR"
    assert detect_modality(Volume(np.full((2, 2, 2), 300), metadata={"modality": "CT"})) == "CT"


def test_box_then_clicks_on_real_lung_crop(lung, engine):
    image, label = lung
    report = run_interactive(image, label, engine, clicks=2)
    dice = [s["dice"] for s in report["steps"]]
    assert report["weights"].startswith("lite_medsam.pth@sha256:79d8c9dca6db")
    assert dice[0] > 0.8 and dice[-1] >= dice[0]
    assert not any(s["low_quality"] for s in report["steps"])  # a good result is not flagged


def test_result_geometry_cache_and_progress(lung, engine):
    image, label = (slab(v, 6, 10) for v in lung)  # 4 slices through the tumour
    context = engine.open(image)
    box = box_from_label(label, 5.0)
    seen = []
    result = context.predict(Prompt(box_lps=box), progress=lambda f, m: seen.append(f))
    assert result.mask.same_grid(image) and result.mask.array.dtype == np.uint8
    assert result.probability.array.dtype == np.float32 and 0 < result.quality <= 1
    k_in = np.flatnonzero(result.mask.array.any(axis=(1, 2)))
    # CT auto: one progress step per slice in each variant's pass (two windows, tightened or not), rising to 1
    assert k_in.min() >= 0 and len(seen) == 2 * len(context.cached_slices) and seen[-1] == 1.0
    assert seen == sorted(seen) and seen[len(seen) // 2 - 1] == 0.5
    assert "embed_ms" in result.timings_ms and "decode_ms" in result.timings_ms
    # A click re-runs only the decoder: no new embedding.
    centre = image.ijk_to_lps(np.argwhere(label.array > 0).mean(axis=0)[::-1])
    again = context.predict(Prompt(box_lps=box, clicks=[Click(tuple(centre))]), previous=result)
    assert "embed_ms" not in again.timings_ms


def test_a_zoomed_box_is_seen_in_its_region_and_clicks_reuse_its_embeddings(lung):
    """With a zoom rule, a box under its size is decoded in the region around it: the mask lies on the
    lesion and inside the region, and a click inside the box decodes against the region's cached
    embeddings; a box over the size sees the whole slice."""
    image, label = (slab(v, 6, 9) for v in lung)
    box = box_from_label(label, 0.0)
    context = load_engine("litemedsam", ct_window="lung", zoom=ZoomRule(below_px=1000.0, factor=2.0)).open(image)
    result = context.predict(Prompt(box_lps=box))
    r0, c0, rows, cols = result.state["letterbox"].region
    assert rows * cols < image.array[0].size / 4
    outside = result.mask.array.copy()
    outside[:, r0:r0 + rows, c0:c0 + cols] = 0
    assert not outside.any() and dice(result.mask, label) > 0.7
    centre = image.ijk_to_lps(np.argwhere(label.array > 0).mean(axis=0)[::-1])
    again = context.predict(Prompt(box_lps=box, clicks=[Click(tuple(centre))]), previous=result)
    assert "embed_ms" not in again.timings_ms and again.state["letterbox"] == result.state["letterbox"]
    whole = load_engine("litemedsam", ct_window="lung", zoom=ZoomRule(below_px=1.0)).open(image)
    assert whole.predict(Prompt(box_lps=box)).state["letterbox"].region is None


@pytest.mark.parametrize("factor, better", [(2.0, "zoomed"), (5.0, "whole")])
def test_a_zoom_by_quality_keeps_the_view_of_higher_quality_and_clicks_keep_it(lung, factor, better):
    """With ``by_quality`` a new small box is predicted whole and zoomed, and the result is that of the view of
    higher quality (each as an engine seeing only that view gives it); a click keeps the view; with ``ct_only``
    an MR image is always seen whole."""
    image, label = (slab(v, 6, 9) for v in lung)
    box = Prompt(box_lps=box_from_label(label, 0.0))
    alone = {name: load_engine("litemedsam", ct_window="lung", zoom=zoom).open(image).predict(box)
             for name, zoom in (("whole", None), ("zoomed", ZoomRule(below_px=1000.0, factor=factor)))}
    assert max(alone, key=lambda name: alone[name].quality) == better  # each view wins in one case
    rule = ZoomRule(below_px=1000.0, factor=factor, by_quality=True, ct_only=True)
    context = load_engine("litemedsam", ct_window="lung", zoom=rule).open(image)
    seen = []
    result = context.predict(box, progress=lambda f, m: seen.append(f))
    better = alone[better]
    assert result.state["letterbox"] == better.state["letterbox"] and result.quality == pytest.approx(better.quality)
    assert np.array_equal(result.mask.array, better.mask.array) and seen[-1] == 1.0 and seen == sorted(seen)
    centre = image.ijk_to_lps(np.argwhere(label.array > 0).mean(axis=0)[::-1])
    clicked = context.predict(Prompt(box_lps=box.box_lps, clicks=[Click(tuple(centre))]), previous=result)
    assert clicked.state["letterbox"] == result.state["letterbox"] and "embed_ms" not in clicked.timings_ms
    as_mr = load_engine("litemedsam", modality="MR", zoom=rule).open(image).predict(box)
    assert as_mr.state["letterbox"].region is None


def test_cancel_and_missing_box(lung, engine):
    image, label = lung
    context = engine.open(image)
    with pytest.raises(CancelledError):
        context.predict(Prompt(box_lps=box_from_label(label)), cancel=lambda: True)
    with pytest.raises(InputError, match="needs a box"):
        context.predict(Prompt(clicks=[Click(tuple(image.ijk_to_lps([5, 5, 5])))]))


def test_mismatched_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "other.pth"
    torch.save({"model": {"encoder.weight": torch.zeros(3)}}, bad)
    with pytest.raises(InputError, match="other.pth.*not a LiteMedSAM checkpoint"):
        load_engine("litemedsam", checkpoint=bad)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="garbage.pth"):
        load_engine("litemedsam", checkpoint=garbage)


def test_a_click_changes_only_its_own_slice_and_undo_restores_it(lung, engine):
    image, label = (slab(v, 6, 10) for v in lung)
    context = engine.open(image)
    box = box_from_label(label, 5.0)
    first = context.predict(Prompt(box_lps=box))
    k = int(np.flatnonzero(first.mask.array.any(axis=(1, 2)))[0])
    j, i = np.argwhere(first.mask.array[k] > 0).mean(axis=0)
    click = Click(tuple(image.ijk_to_lps([i, j, k])), positive=False)
    clicked = context.predict(Prompt(box_lps=box, clicks=[click]), previous=first)
    others = [n for n in range(image.array.shape[0]) if n != k]
    assert np.array_equal(clicked.probability.array[others], first.probability.array[others])
    assert not np.array_equal(clicked.mask.array[k], first.mask.array[k])
    assert clicked.mask.array[k, int(round(j)), int(round(i))] == 0  # the excluded point is out
    undone = context.predict(Prompt(box_lps=box), previous=clicked)
    assert np.array_equal(undone.mask.array, first.mask.array)


@pytest.fixture(scope="module")
def brain(data):
    return (read_image(data / "pyradiomics/brain1_image.nrrd"), read_image(data / "pyradiomics/brain1_label.nrrd"))


def test_tightening_fixes_loose_box_overfill_but_not_fitted_boxes(brain, engine):
    """brain1's 3D box is far too wide for its small middle cross-section; re-decoding each
    slice with its own mask's box must recover it (and the whole lesion's Dice). A box marked
    as fitted to a segmentation is used as it is."""
    from rtsam.metrics import dice

    image, label = brain
    context = engine.open(image)
    box = box_from_label(label, 5.0)
    tightened = context.predict(Prompt(box_lps=box))
    fitted = context.predict(Prompt(box_lps=box, box_fitted=True))
    assert dice(tightened.mask, label) > dice(fitted.mask, label) + 0.1
    for k, (_, inner, *_) in tightened.state["slices"].items():  # each box lies in the fitted one
        outer = fitted.state["slices"][k][1]
        assert np.all(inner[:2] >= outer[:2] - 1e-6) and np.all(inner[2:] <= outer[2:] + 1e-6)
    plan = SlicePlan.build(image, Prompt(box_lps=box))
    assert np.allclose(fitted.state["slices"][plan.middle][1], plan.box)  # the user box, untouched
    untightened = load_engine("litemedsam", tighten_steps=0).open(image).predict(Prompt(box_lps=box))
    assert np.array_equal(untightened.mask.array, fitted.mask.array)  # tighten_steps=0: no tightening


def test_untightened_result_kept_when_its_quality_is_higher_by_the_margin(lung):
    """A new box is predicted tightened and untightened; the result of higher quality, the untightened one
    handicapped by untightened_margin, is the result of that variant alone, and a click keeps the choice."""
    image, label = (slab(v, 6, 10) for v in lung)
    box = box_from_label(label, 5.0)
    alone = {steps: load_engine("litemedsam", ct_window="lung", tighten_steps=steps, untightened_margin=None)
             .open(image).predict(Prompt(box_lps=box)) for steps in (2, 0)}
    assert not np.array_equal(alone[0].mask.array, alone[2].mask.array)
    for margin in (-1.0, 1.0, UNTIGHTENED_MARGIN):  # always untightened, never, the engine's
        context = load_engine("litemedsam", ct_window="lung", untightened_margin=margin).open(image)
        result = context.predict(Prompt(box_lps=box))
        steps = 0 if alone[0].quality > alone[2].quality + margin else 2
        assert result.state["tighten_steps"] == steps and result.quality == pytest.approx(alone[steps].quality)
        assert np.array_equal(result.mask.array, alone[steps].mask.array)
    centre = image.ijk_to_lps(np.argwhere(label.array > 0).mean(axis=0)[::-1])
    clicked = context.predict(Prompt(box_lps=box, clicks=[Click(tuple(centre))]), previous=result)
    assert clicked.state["tighten_steps"] == result.state["tighten_steps"]
    seen = []  # a fitted box is never tightened: one pass, nothing to choose
    fitted = context.predict(Prompt(box_lps=box, box_fitted=True), progress=lambda f, m: seen.append(f))
    assert fitted.state["tighten_steps"] == 2 and len(seen) == len(fitted.state["slices"])


@pytest.mark.parametrize("case", ["brain2", "lung"])
def test_no_decode_is_repeated(case, data, lung, engine):
    """Decoding a slice again with the same box repeats the same mask: tightening stops once its
    box repeats (brain2 at a 10 mm box: 12 decodes, not 15); on CT each window decodes once."""
    if case == "lung":
        image, label = lung
    else:
        image, label = (read_image(data / f"pyradiomics/brain2_{part}.nrrd") for part in ("image", "label"))
    context = engine.open(image)
    decoded, decode = [], context.decode

    def recording(embedding, box, points, mask_logits):
        decoded.append((id(embedding), tuple(box), len(points), mask_logits is None))
        return decode(embedding, box, points, mask_logits)

    context.decode = recording
    result = context.predict(Prompt(box_lps=box_from_label(label, 10.0)))
    assert result.mask.array.any() and len(decoded) == len(set(decoded))


def test_every_click_is_honoured_and_none_lowers_dice(brain, engine):
    """brain1's first two clicks are positive on a slice whose missed part LiteMedSAM will not
    take (probability ~0 at the click with any box or point prompt): they are painted in. After
    each step every click so far holds (positive inside the mask, negative outside)."""
    image, label = brain
    steps = run_interactive(image, label, engine, clicks=3, keep_masks=True)["steps"]
    assert steps[1]["positive"] and steps[2]["positive"]
    assert steps[1]["dice"] > steps[0]["dice"] + 0.01
    for n, step in enumerate(steps[1:], start=1):
        assert step["dice"] >= steps[n - 1]["dice"] - 0.005
        for clicked in steps[1:n + 1]:
            i, j, k = np.round(image.lps_to_ijk(np.array([clicked["click_lps"]]))[0]).astype(int)
            assert bool(step["mask"][k, j, i]) == clicked["positive"]


def test_unhonoured_positive_clicks_are_painted_up_to_the_mask():
    probability = np.zeros((40, 60), dtype=np.float32)
    probability[10:20, 10:20] = 0.9
    spacing = (0.5, 1.0)  # mm per column, per row
    inside, outside = (15.0, 15.0, True), (30.0, 15.0, True)  # outside: 11 columns (5.5 mm) from the mask
    assert np.array_equal(unhonoured_clicks_painted(probability, [inside], spacing), probability)
    painted = unhonoured_clicks_painted(probability, [outside], spacing) > 0.5
    assert ndimage.label(painted)[1] == 1  # the disc reaches into the mask ...
    assert painted[15, 41] and not painted[15, 44]  # ... and its radius is 5.5 mm + 1 px = 13 columns
    near_negative = unhonoured_clicks_painted(probability, [outside, (30.0, 22.0, False)], spacing) > 0.5
    assert near_negative[21, 30] and not near_negative[22:, 30].any()  # 7 mm away: radius 6 mm
    empty = unhonoured_clicks_painted(np.zeros_like(probability), [outside], spacing, empty_radius_mm=2.5)
    rows, cols = np.nonzero(empty > 0.5)
    assert empty[15, 30] == 1.0 and np.max(np.hypot((cols - 30) * 0.5, rows - 15)) <= 2.5


def test_a_negative_click_in_the_middle_of_a_blob_erases_it():
    rows, cols = np.mgrid[:40, :60]
    left, right = np.hypot(rows - 20, cols - 12) <= 8, np.hypot(rows - 20, cols - 40) <= 8
    prior = left | right
    probability = prior.astype(np.float32)
    spacing = (1.0, 1.0)
    middle, rim = (12.0, 20.0, False), (12.0, 13.0, False)  # depth 9 (deepest) and 2 pixels
    erased = central_blobs_erased(probability, [middle], prior, 0.5, spacing) > 0.5
    assert not erased[left].any() and erased[right].all()
    assert np.array_equal(central_blobs_erased(probability, [rim], prior, 0.5, spacing), probability)
    assert np.array_equal(central_blobs_erased(probability, [middle, (10.0, 20.0, True)], prior, 0.5, spacing),
                          probability)  # a positive click keeps its blob
    assert np.array_equal(central_blobs_erased(probability, [middle], prior, None, spacing), probability)


def test_outermost_slice_of_a_mask_in_the_box():
    plan = SlicePlan(np.array([0.0, 0.0, 9.0, 9.0]), (2, 8), 5, {})
    mask = np.zeros((10, 4, 4), dtype=bool)
    mask[3:8, 1, 1] = True
    assert [k for k in range(2, 9) if plan.outermost(k, mask)] == [2, 3, 7, 8]  # 3, 7: the mask ends; 2, 8: the box
    assert not plan.outermost(7, None)


def test_negative_click_on_a_margin_slice_erases_its_blob(data, engine):
    """brain2 with a 10 mm box: the first simulated click is negative, in the middle of the box-filling
    mask on the slice above the lesion (the object's outermost slice). Moving a box edge alone keeps half
    of that blob; erasing removes it (the decoder paints a few pixels beside it), and no other slice changes."""
    image = read_image(data / "pyradiomics/brain2_image.nrrd")
    label = read_image(data / "pyradiomics/brain2_label.nrrd")
    truth = label.array > 0
    context = engine.open(image)
    box = box_from_label(label, 10.0)
    first = context.predict(Prompt(box_lps=box))
    found = next_clicks(first.mask.array > 0, truth, n=1, spacing=image.spacing, mode="center")[0]
    k = found.index_kji[0]
    assert not found.positive and not truth[k].any() and first.mask.array[k].any()
    prompt = Prompt(box_lps=box, clicks=[found.to_click(image)])
    erased = context.predict(prompt, previous=first).mask.array
    engine.erase_central = None
    try:
        kept = context.predict(prompt, previous=first).mask.array
    finally:
        engine.erase_central = ERASE_CENTRAL
    before = first.mask.array[k] > 0
    assert not (erased[k] & before).any() and erased[k].sum() < before.sum() / 10  # 230 -> 19 pixels
    assert (kept[k] & before).sum() > before.sum() / 3  # 230 -> 109
    others = [z for z in range(truth.shape[0]) if z != k]
    assert np.array_equal(erased[others], first.mask.array[others])


def test_ct_window_from_the_result_and_cached_per_window(lung, engine):
    """auto predicts a new CT box under both windows and keeps the result of higher quality: the same
    result as the engine fixed to that window; embeddings of both windows stay cached, and a click
    on the same box keeps the window."""
    image, label = (slab(v, 6, 10) for v in lung)  # 4 slices through the tumour
    box = box_from_label(label, 5.0)
    context = engine.open(image)
    result = context.predict(Prompt(box_lps=box))
    window = result.state["window"]
    assert window["name"] == max(window["quality"], key=window["quality"].get)
    assert {w for w, _, _ in context.cached_slices} == {"lung", "soft-tissue"}
    for fixed in ("lung", "soft-tissue"):
        other = load_engine("litemedsam", ct_window=fixed).open(image).predict(Prompt(box_lps=box))
        assert other.state["window"] == {"name": fixed}
        assert other.quality == pytest.approx(window["quality"][fixed], abs=1e-4)
        if fixed == window["name"]:
            assert np.array_equal(other.mask.array, result.mask.array)
    j, i = np.argwhere(label.array[1]).mean(axis=0)
    clicked = context.predict(Prompt(box_lps=box, clicks=[Click(tuple(image.ijk_to_lps([i, j, 1])), True)]), result)
    assert clicked.state["window"] == window
    with pytest.raises(InputError, match="ct_window must be auto or one of"):
        load_engine("litemedsam", ct_window="bone")


def test_ct_window_is_chosen_before_the_presence_rule_cuts(lung, engine):
    """With a presence rule, auto chooses the window on the results without it (a cut raises the
    quality of what is left), then runs the rule in that window: the fixed-window engine's result."""
    image, label = (slab(v, 6, 10) for v in lung)
    box = box_from_label(label, 5.0)
    cut_all = PresenceRule((("contrast", 10.0),))  # every propagated slice fails: only the seed is kept
    plain = engine.open(image).predict(Prompt(box_lps=box))
    ruled = load_engine("litemedsam", presence=cut_all).open(image).predict(Prompt(box_lps=box))
    assert ruled.state["window"] == plain.state["window"]
    assert ruled.mask.array.any(axis=(1, 2)).sum() == 1 < plain.mask.array.any(axis=(1, 2)).sum()
    fixed = load_engine("litemedsam", presence=cut_all, ct_window=plain.state["window"]["name"])
    assert np.array_equal(fixed.open(image).predict(Prompt(box_lps=box)).mask.array, ruled.mask.array)


def test_opt_in_presence_rule_empties_margin_slices(brain, engine):
    """brain1's first lesion component (slices 11-12) with a 10 mm box (6.5 mm slices: one slice
    without lesion each way): with the opt-in rule both margin slices get no mask and both lesion
    slices keep theirs; without it (the default) LiteMedSAM paints the margin slices."""
    image, label = brain
    components, _ = ndimage.label(label.array > 0)
    first = label.with_array((components == 1).astype(np.uint8))
    assert first.array.any(axis=(1, 2)).nonzero()[0].tolist() == [11, 12]
    box = box_from_label(first, 10.0)
    context = load_engine("litemedsam", presence=PRESENCE_RULE).open(image)
    rule = context.predict(Prompt(box_lps=box))
    per_slice = rule.mask.array.sum(axis=(1, 2))
    assert per_slice[[10, 13]].sum() == 0 and per_slice[[11, 12]].min() > 150
    assert [rule.state["slices"][k][4].get("present", True) for k in (10, 11, 12, 13)] == [False, True, True, False]
    j, i = np.argwhere(first.array[12]).mean(axis=0)  # a click on margin slice 13 keeps that slice only
    clicked = context.predict(Prompt(box_lps=box, clicks=[Click(tuple(image.ijk_to_lps([i, j, 13])), True)]), rule)
    assert clicked.mask.array[13].any()
    assert np.array_equal(clicked.mask.array[10:13], rule.mask.array[10:13])
    off = engine.open(image).predict(Prompt(box_lps=box)).mask.array.sum(axis=(1, 2))
    assert off[[10, 13]].min() > 100 and np.array_equal(off[[11, 12]], per_slice[[11, 12]])


def test_quality_flags_a_failed_box(brain, engine):
    """brain1 with a box exactly on the label (no margin) fails (3D Dice 0.36: LiteMedSAM misses
    the lesion on most slices); with 5 mm it works (0.85). The quality ranks them and flags the
    failure."""
    from rtsam.metrics import dice

    image, label = brain
    context = engine.open(image)
    tight, loose = (context.predict(Prompt(box_lps=box_from_label(label, m))) for m in (0.0, 5.0))
    assert dice(tight.mask, label) < 0.4 and dice(loose.mask, label) > 0.8
    assert tight.quality < loose.quality - 0.1
    assert tight.summary()["low_quality"]


def test_a_positive_click_on_the_emptied_end_slice_does_not_fill_the_neighbours_box(data, engine):
    """breast1 with a 5 mm box and presence on: the box fills end slice 8 (21 pixels of truth), the first
    simulated click (negative) leaves 7 pixels there, and the third, positive, lands on it again. Decoded in
    the box grown from its neighbour, it fills that box (131 pixels); in a box of END_CLICK_AREA x the
    neighbour's mask around the click, its mask stands out more from its ring and is kept. No other slice moves."""
    image = read_image(data / "pyradiomics/breast1_image.nrrd")
    label = read_image(data / "pyradiomics/breast1_label.nrrd")
    truth = label.array > 0
    box = box_from_label(label, 5.0)
    context = engine.open(image)
    previous, clicks = context.predict(Prompt(box_lps=box, presence="on")), []
    for _ in range(2):
        clicks.append(next_clicks(previous.mask.array > 0, truth, n=1, spacing=image.spacing)[0])
        previous = context.predict(Prompt(box_lps=box, clicks=[c.to_click(image) for c in clicks], presence="on"),
                                   previous)
    clicks.append(next_clicks(previous.mask.array > 0, truth, n=1, spacing=image.spacing)[0])
    k, row, col = clicks[-1].index_kji
    assert clicks[-1].positive and k == 8 and 0 < previous.mask.array[8].sum() < 0.2 * previous.mask.array[9].sum()
    prompt = Prompt(box_lps=box, clicks=[c.to_click(image) for c in clicks], presence="on")
    limited = context.predict(prompt, previous).mask.array
    engine.end_click_area = None
    try:
        filled = context.predict(prompt, previous).mask.array
    finally:
        engine.end_click_area = END_CLICK_AREA
    neighbour = previous.mask.array[9].sum()
    assert filled[8].sum() > neighbour and limited[8, row, col]
    assert limited[8].sum() <= END_CLICK_AREA * neighbour
    overlap = [2 * (m[8] & truth[8]).sum() / (m[8].sum() + truth[8].sum()) for m in (limited > 0, filled > 0)]
    assert overlap[0] > overlap[1] + 0.2  # slice Dice
    others = [z for z in range(truth.shape[0]) if z != 8]
    assert np.array_equal(limited[others], filled[others])


@pytest.mark.parametrize("margin_mm", [0.0, 3.0, 5.0, 10.0])
def test_the_seed_slice_does_not_depend_on_float_noise_in_the_slice_spacing(margin_mm):
    """A 26-slice lesion's box centre lies half way between two slices. With the slice spacing pydicom gives
    for the lung phantom's pat1 (2.9999999999998486 mm) the seed used to be one slice lower than with 3.0 mm."""
    middles = set()
    for spacing in (3.0, 2.9999999999998486):
        label = Volume(np.zeros((60, 8, 8), np.uint8), (0.977, 0.977, spacing), (-124.5, -29.8, -100.4000015))
        label.array[17:43, 2:6, 2:6] = 1
        middles.add(SlicePlan.build(label, Prompt(box_lps=box_from_label(label, margin_mm))).middle)
    assert middles == {30}


def test_a_box_thinner_than_a_slice_half_way_between_two_gets_the_same_slice_under_float_noise():
    """A thin box at the centre of the 26-slice box above, half way between slices 29 and 30; with this origin
    float noise puts its centre at k = 29.499999999999993, which used to give slice 29."""
    slices = set()
    for spacing in (3.0, 2.9999999999998486):
        label = Volume(np.zeros((60, 8, 8), np.uint8), (0.977, 0.977, spacing), (-124.5, -29.8, -49.4))
        label.array[17:43, 2:6, 2:6] = 1
        box = box_from_label(label, 0.0)
        z = box[:, 2].mean()
        box[:, 2] = z - 0.2, z + 0.2
        slices.add(SlicePlan.build(label, Prompt(box_lps=box)).k_range)
    assert slices == {(30, 30)}
