"""``sam3``: SAM 3 (transformers' ``Sam3Model``), prompted by text, run on axial slices.

The weights come from ``--checkpoint``: a local SAM 3 folder or a LoRA adapter folder from
``rtsam train-itv`` (see ``sam3_model``); nothing is downloaded. ``Prompt.task`` is the text
("tumour", "lung", "heart"). A 3D box restricts the slices (its k-range) and the in-plane area
(the mask is cleared outside it), and on each slice it is also SAM 3's box prompt (a positive
exemplar), unless ``box_prompt=False``. Without a box every slice is segmented.

Per slice (array axis 0): the modality's intensity window (as for litemedsam), SAM 3's own
input size and normalisation; of the queries whose score (query x presence probability)
exceeds ``score_threshold``, at most ``max_instances`` best ones (all by default) are kept and
their masks joined (pixel-wise maximum), resized back to the slice grid. Clicks are not
supported: SAM 3's image model has no point prompt.

Image features are cached per slice (LRU, ``cache_slices``) and text features per task, so a
new task or box re-runs only the DETR and mask decoders. On a GPU the slices' image features are
computed a cache's worth at a time, in batches sized from free memory (``batching``).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..volume import Volume
from .base import Engine, Prompt, SegmentationResult, SliceWiseContext, check_cancel, check_presence, timed
from .batching import prefetch
from .litemedsam_prep import box_voxel_extent, detect_modality, intensity_window, outside_box_cleared, slice_extent
from .sam3_model import (box_input, image_features, kept_logits, load_sam3, pixel_values, probability, split_features,
                         text_inputs)

SLICE_BYTES = 2**31  # GPU memory per slice of a batched SAM 3 vision pass (1008^2, full size), generous


class SAM3Engine(Engine):
    name = "sam3"
    accepts_clicks = False

    def __init__(self, weights: Path | None = None, device: str = "cpu", config=None, base: str | Path | None = None,
                 modality: str | None = None, score_threshold: float = 0.5, max_instances: int | None = None,
                 box_prompt: bool = True, cache_slices: int = 8):
        if weights is None:
            raise InputError("the sam3 engine needs --checkpoint: a local SAM 3 folder (e.g. facebook/sam3, "
                             "downloaded elsewhere) or a LoRA adapter folder from rtsam train-itv")
        loaded = load_sam3(weights, device, base)
        super().__init__(loaded.label, device)
        self.model, self.processor = loaded.model, loaded.processor
        self.modality = modality
        self.score_threshold = float(score_threshold)
        self.max_instances = max_instances
        self.box_prompt = bool(box_prompt)
        self.cache_slices = int(cache_slices)
        self._texts: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def open(self, image: Volume) -> "SAM3Context":
        return SAM3Context(self, image)

    def text_features(self, task: str, timings: dict[str, float]) -> tuple:
        """(text features, attention mask) of ``task``, computed once per engine."""
        with self._lock:
            if task in self._texts:
                return self._texts[task]
        with timed(timings, "text_ms"), torch.inference_mode():
            tokens = text_inputs(self.processor, task, self.device)
            features = self.model.get_text_features(**tokens)
        with self._lock:
            self._texts[task] = (features, tokens["attention_mask"])
        return self._texts[task]


def slice_range(image: Volume, box_lps: np.ndarray | None) -> tuple[int, int, np.ndarray | None]:
    """First and last slice (inclusive) and the in-plane pixel box (x0, y0, x1, y1) of a LPS box."""
    if box_lps is None:
        return 0, image.array.shape[0] - 1, None
    k0, k1, box, _ = slice_extent(image, *box_voxel_extent(image, box_lps))
    return k0, k1, box


class SAM3Context(SliceWiseContext):
    """SAM 3 bound to one image: its intensity window and the per-slice image-feature cache."""

    def __init__(self, engine: SAM3Engine, image: Volume):
        super().__init__(engine, image)
        self.window = intensity_window(image, (engine.modality or detect_modality(image)).upper())

    def vision_features(self, k: int, timings: dict[str, float]):
        """SAM 3's image features of slice ``k``, computed once (LRU cache)."""
        def compute():
            with timed(timings, "embed_ms"), torch.inference_mode():
                x = pixel_values(self.image.array[k:k + 1], self.window, self.engine.processor).to(self.engine.device)
                return image_features(self.model, x)

        return self._cache.get(k, compute)

    def prefetch_features(self, ks, timings: dict[str, float]) -> None:
        """On a GPU, SAM 3's image features of slices ``ks`` not yet cached (at most a cache's worth), in
        batches sized from free memory (``batching``); the CPU keeps one slice at a time."""
        def compute(chunk: list[int]) -> list:
            with timed(timings, "embed_ms"), torch.inference_mode():
                x = pixel_values(self.image.array[chunk], self.window, self.engine.processor).to(self.engine.device)
                return split_features(image_features(self.model, x), len(chunk))

        prefetch(self._cache, ks, compute, self.engine.device, SLICE_BYTES, self.engine.cache_slices)

    def predict(self, prompt: Prompt, previous: SegmentationResult | None = None,
                progress=None, cancel=None) -> SegmentationResult:
        task = (prompt.task or "").strip()
        if not task:
            raise InputError("the sam3 engine is prompted by text: give a task (e.g. --task tumour)")
        if prompt.clicks:
            raise InputError("the sam3 engine takes a task text and a box, not clicks (SAM 3 has no point prompt)")
        check_presence(prompt, self.engine)
        prompt.validate_against(self.image)
        k0, k1, box = slice_range(self.image, prompt.box_lps)
        timings: dict[str, float] = {}
        text, text_mask = self.engine.text_features(task, timings)
        shape = tuple(self.image.array.shape[1:])
        boxes = {}
        if box is not None and self.engine.box_prompt:
            boxes = {"input_boxes": box_input(box, shape).to(self.engine.device),
                     "input_boxes_labels": torch.ones((1, 1), dtype=torch.long, device=self.engine.device)}
        result = np.zeros(self.image.array.shape, dtype=np.float32)
        scores = []
        for n, k in enumerate(range(k0, k1 + 1)):
            check_cancel(cancel)
            if k not in self.cached_slices:
                self.prefetch_features(range(k, k1 + 1), timings)
            vision = self.vision_features(k, timings)
            with timed(timings, "decode_ms"), torch.inference_mode():
                outputs = self.model(vision_embeds=vision, text_embeds=text, attention_mask=text_mask, **boxes)
                logits, best = kept_logits(outputs, self.engine.score_threshold, self.engine.max_instances)
            result[k] = probability(logits, shape)[0]
            if box is not None:
                result[k] = outside_box_cleared(result[k], box)
            if float(best[0]) > self.engine.score_threshold:
                scores.append(float(best[0]))
            if progress is not None:
                progress((n + 1) / (k1 - k0 + 1), f"slice {k}")
        return SegmentationResult(
            probability=self.image.with_array(result),
            mask=self.image.with_array((result > 0.5).astype(np.uint8)),
            quality=float(np.mean(scores)) if scores else 0.0,
            engine=self.engine.name,
            weights=self.engine.weights_label,
            timings_ms=timings,
        )
