"""``sam3d`` engine: the 3D SAM behind rtsam's Engine interface.

Crop choice for each ``predict`` (see ``preprocess`` for the crop itself):
1. the previous result's crop, when the box is unchanged and it contains every click;
2. otherwise the crop centred on the box centre (or the first click);
3. when a click falls outside that crop, a new crop centred on the last click.
Embeddings are cached per crop geometry (small LRU), so clicks inside a crop only re-run the
decoder; the previous low-res logits are fed back when the crop is the same, zeros otherwise
(SAM-Med3D's own first decode, see ``Sam3D.decode``).

Prompts the weights were not trained for (SAM-Med3D's files: box and text, see
``checkpoint.LoadReport.prompts``) never reach the model as untrained embeddings unless
``allow_untrained_prompts``: the box then only centres and sizes the crop (with SAM-Med3D's own
first click, a positive click at the centre, kept before the user's clicks) and the text is ignored. Each
result's ``info`` says which prompts the weights support and how each given prompt was used.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...errors import InputError
from ...volume import Volume
from ..base import (Engine, EngineContext, ProgressCallback, Prompt, SegmentationResult, check_cancel,
                    check_presence, timed)
from ..registry import weights_label
from .checkpoint import load_state_dict, read_checkpoint, text_dim_of
from .config import Sam3DConfig
from .model import Sam3D
from .preprocess import CropGeometry, crop_geometry, crop_spacing, extract_crop, normalise, to_image_grid

CACHE_CROPS = 4  # embeddings kept per image (384 x 8^3 float32 = 0.75 MB each for ViT-B)
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
BOX_AS_CROP = "crop centre and extent only (untrained box branch)"
log = logging.getLogger(__name__)


class SAM3DEngine(Engine):
    def __init__(self, weights: Path | None = None, device: str = "cpu", config: str | None = "vit_b",
                 text_encoder: str | Path | None = None, threshold: float = 0.5, autocast: str | None = None,
                 allow_untrained_prompts: bool = False, **options):
        if options:
            raise InputError(f"unknown sam3d options: {', '.join(sorted(options))}")
        if autocast is not None and autocast not in AUTOCAST_DTYPES:
            raise InputError(f"sam3d autocast must be one of {', '.join(AUTOCAST_DTYPES)}, got '{autocast}'")
        self.autocast = autocast  # embedding under bf16/fp16 autocast (error: see ``rtsam bench --autocast``)
        super().__init__(weights_label(weights), device)
        self.name = "sam3d" if (config or "vit_b") == "vit_b" else f"sam3d-{config}"
        state, trained = read_checkpoint(weights) if weights is not None else (None, None)
        self.text_encoder_path = Path(text_encoder).expanduser() if text_encoder else None
        text_dim = _text_dim(state, self.text_encoder_path)
        self.config = Sam3DConfig.named(config, **({"text_dim": text_dim} if text_dim else {}))
        self.model = Sam3D(self.config)
        self.load_report = load_state_dict(self.model, state, weights, True, trained) if state is not None else None
        self.model.to(device).eval()
        self.threshold = threshold
        self._text = None
        # Random weights train nothing, so no prompt is singled out.
        self.trained_prompts = self.load_report.prompts if self.load_report else ["clicks", "box", "text"]
        self.allow_untrained_prompts = allow_untrained_prompts
        if self.load_report is not None:
            log.info("sam3d weights: %s", self.load_report.summary())

    def compile(self, decoder: bool = False, backend: str = "inductor") -> bool:
        """``torch.compile`` the image encoder (and, with ``decoder``, the prompt encoder and mask decoder,
        as CUDA graphs on a GPU) in place, warmed up once here. On failure the eager model stays, with a
        log line; returns whether compiling worked."""
        cuda = torch.device(self.device).type == "cuda"
        parts = [self.model.image_encoder] + ([self.model.prompt_encoder, self.model.mask_decoder] if decoder else [])
        try:
            for part in parts:
                mode = "reduce-overhead" if cuda and part is not self.model.image_encoder else None
                part.compile(backend=backend, mode=mode if backend == "inductor" else None)
            self._warm_up()
        except Exception as error:  # compilers fail in many ways (no C compiler, no Triton, unsupported op)
            for part in parts:
                part._compiled_call_impl = None
            log.warning("sam3d: torch.compile unavailable (%s: %s); running eager",
                        type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "")
            return False
        log.info("sam3d: compiled the image encoder%s on %s (%s)", " and decoder" if decoder else "",
                 self.device, backend)
        return True

    def _warm_up(self) -> None:
        size = self.config.img_size
        with torch.no_grad():
            embedding = self.model.embed(torch.zeros((1, 1, size, size, size), device=self.device))
            for n in (1, 2):  # the decoder is compiled per number of clicks; warm the first two
                points = (torch.full((1, n, 3), size / 2, device=self.device),
                          torch.ones((1, n), dtype=torch.long, device=self.device))
                self.model.decode(embedding, points=points)

    def uses(self, prompt: str) -> bool:
        """Whether ``prompt`` ("box", "text") is fed to the model rather than only placing the crop or ignored."""
        return prompt in self.trained_prompts or self.allow_untrained_prompts

    def open(self, image: Volume) -> "SAM3DContext":
        return SAM3DContext(self, image)

    def text_embedding(self, task: str | None, patient: str | None) -> torch.Tensor | None:
        """Pooled text-encoder output ``[1, text_dim]`` for the prompt template, or None without text."""
        if not (task or patient):
            return None
        if self._text is None:
            from .text import TextEncoder

            self._text = TextEncoder(self.text_encoder_path, device=self.device)
            if self._text.dim != self.config.text_dim:
                raise InputError(f"text encoder gives {self._text.dim}-wide embeddings but the model's text adapter "
                                 f"expects {self.config.text_dim}", self._text.path)
        return self._text.encode([self._text.prompt_text(task, patient)])


def _text_dim(state: dict | None, encoder_path: Path | None) -> int | None:
    """Text width from the checkpoint's adapter, else from the chosen encoder's config.json."""
    from_checkpoint = text_dim_of(state) if state is not None else None
    if from_checkpoint or encoder_path is None:
        return from_checkpoint
    config = encoder_path / "config.json"
    if not config.is_file():
        raise InputError("not a Hugging Face model folder (config.json missing)", encoder_path)
    return int(json.loads(config.read_text())["hidden_size"])


class SAM3DContext(EngineContext):
    engine: SAM3DEngine

    def __init__(self, engine: SAM3DEngine, image: Volume):
        super().__init__(engine, image)
        self._sitk = None
        self._embeddings: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.embeddings_computed = 0

    def clear_cache(self) -> None:
        self._embeddings.clear()

    def predict(self, prompt: Prompt, previous: SegmentationResult | None = None,
                progress: ProgressCallback | None = None, cancel: Callable[[], bool] | None = None) -> SegmentationResult:
        check_presence(prompt, self.engine)
        prompt.validate_against(self.image)
        if prompt.box_lps is None and not prompt.clicks:
            raise InputError("sam3d needs a box or at least one click to place its crop", self.image.metadata.get("path"))
        timings: dict[str, float] = {}
        state = previous.state if previous is not None and isinstance(previous.state, dict) else {}
        geometry = self.choose_crop(prompt, state)
        _report(progress, 0.05, "embedding")
        with timed(timings, "embed_ms"):
            embedding = self.embedding(geometry, cancel)
        check_cancel(cancel)
        _report(progress, 0.8, "decoding")
        feedback = state.get("low_res_logits") if state.get("crop_key") == geometry.key else None
        with timed(timings, "decode_ms"), torch.no_grad():
            low_res, iou, applied = self._decode(embedding, geometry, prompt, feedback)
            probability_crop = torch.sigmoid(self.engine.model.upscale(low_res))[0, 0].float().cpu().numpy()
        with timed(timings, "postprocess_ms"):
            probability = to_image_grid(probability_crop, geometry, self.image)
        _report(progress, 1.0, "done")
        return SegmentationResult(
            probability=self.image.with_array(probability),
            mask=self.image.with_array((probability > self.engine.threshold).astype(np.uint8)),
            quality=float(iou[0, 0]),
            engine=self.engine.name,
            weights=self.engine.weights_label,
            timings_ms=timings,
            info={"trained_prompts": list(self.engine.trained_prompts), "prompts_applied": applied},
            state={"crop_key": geometry.key, "crop": geometry, "box_lps": prompt.box_key(),
                   "low_res_logits": low_res.detach()},
        )

    def choose_crop(self, prompt: Prompt, state: dict) -> CropGeometry:
        """The crop for ``prompt`` (rules in the module docstring)."""
        clicks = [c.lps for c in prompt.clicks]
        reused = state.get("crop")
        if isinstance(reused, CropGeometry) and state.get("box_lps") == prompt.box_key() \
                and all(reused.contains(c) for c in clicks):
            return reused
        config = self.engine.config
        spacing = crop_spacing(self.image, prompt.box_lps, config.img_size, config.spacing_mm)
        centre = prompt.box_lps.mean(axis=0) if prompt.box_lps is not None else clicks[0]
        geometry = crop_geometry(self.image, centre, config.img_size, spacing)
        if all(geometry.contains(c) for c in clicks):
            return geometry
        return crop_geometry(self.image, clicks[-1], config.img_size, spacing)

    def embedding(self, geometry: CropGeometry, cancel: Callable[[], bool] | None = None) -> torch.Tensor:
        """The image embedding of one crop, computed once and kept in a small LRU cache."""
        key = geometry.key
        if key in self._embeddings:
            self._embeddings.move_to_end(key)
            return self._embeddings[key]
        check_cancel(cancel)
        if self._sitk is None:
            self._sitk = self.image.to_sitk()
        crop = normalise(extract_crop(self.image, geometry, self._sitk))
        tensor = torch.from_numpy(crop)[None, None].to(self.engine.device)
        autocast = self.engine.autocast
        with torch.no_grad(), torch.autocast(torch.device(self.engine.device).type,
                                             dtype=AUTOCAST_DTYPES.get(autocast, torch.bfloat16),
                                             enabled=autocast is not None):
            embedding = self.engine.model.embed(tensor).float()
        self.embeddings_computed += 1
        self._embeddings[key] = embedding
        while len(self._embeddings) > CACHE_CROPS:
            self._embeddings.popitem(last=False)
        return embedding

    def _decode(self, embedding: torch.Tensor, geometry: CropGeometry, prompt: Prompt,
                feedback: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, dict[str, str]]:
        """(low-res logits, IoU, how each given prompt was used)."""
        engine, device = self.engine, self.engine.device
        points = boxes = text = None
        applied: dict[str, str] = {}
        clicks = [(c.lps, c.positive) for c in prompt.clicks]
        if prompt.box_lps is not None and engine.uses("box"):
            boxes = torch.tensor(geometry.box_dhw(prompt.box_lps)[None], dtype=torch.float32, device=device)
            applied["box"] = _model_use("box", engine)
        elif prompt.box_lps is not None:
            applied["box"] = BOX_AS_CROP
            centre = prompt.box_lps.mean(axis=0)
            if geometry.contains(centre):  # SAM-Med3D's first click without a prompt: positive, at the centre
                clicks.insert(0, (centre, True))
                applied["box"] += " + a positive click at its centre"
        if clicks:
            coords = geometry.lps_to_dhw([lps for lps, _ in clicks])
            points = (torch.tensor(coords[None], dtype=torch.float32, device=device),
                      torch.tensor([[int(positive) for _, positive in clicks]], dtype=torch.long, device=device))
        if prompt.clicks:
            applied["clicks"] = "model"
        if prompt.task or prompt.patient:
            if engine.uses("text"):
                text = engine.text_embedding(prompt.task, prompt.patient)
                applied["text"] = _model_use("text", engine)
            else:
                applied["text"] = "ignored (untrained text branch)"
        torch.compiler.cudagraph_mark_step_begin()  # a compiled decoder's CUDA graphs: one step per decode
        low_res, iou = engine.model.decode(embedding, points=points, boxes=boxes, text_embeddings=text,
                                           mask_logits=feedback)
        return low_res.clone(), iou.clone(), applied  # graph outputs are overwritten by the next replay


def _model_use(prompt: str, engine: SAM3DEngine) -> str:
    return "model" if prompt in engine.trained_prompts else "model (untrained branch, --allow-untrained-prompts)"


def _report(progress: ProgressCallback | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)
