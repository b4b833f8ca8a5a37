"""``rtsam bench --all``: the GPU measurements beyond ``bench.run_bench`` (issue: GPU speed).

- sam3d: the embedding torch.compile'd, and one click decode eager and compiled (CUDA graphs on a
  GPU), with the largest mask difference; the fast-vs-reference difference with TF32 off;
- one training step (ViT-B, batch 2, AMP on CUDA, 3 x 4 simulated clicks) and its click simulation;
- LiteMedSAM on a real case (lung2): the box step and one click;
- SAM 3 vision features per slice at batch 1 and 8 (a random full-size model unless weights are given).
Each part is timed in this process; a part that fails reports its error instead of stopping the run.
"""

from __future__ import annotations

import time
import traceback
from contextlib import contextmanager
from typing import Callable, NamedTuple

import torch

from .bench import median_ms
from .devices import synchronize


def run_parts(parts, config: str, device: str, repeats: int, sam3_weights: str | None = None) -> dict:
    """The measurements of ``parts`` (compiled, train, litemedsam, sam3), each under its own key."""
    makers: dict[str, Callable[[], dict]] = {
        "compiled": lambda: bench_compiled(config, device, repeats),
        "train": lambda: bench_train_step(config, device, repeats),
        "litemedsam": lambda: bench_litemedsam(device, repeats),
        "sam3": lambda: bench_sam3(device, repeats, sam3_weights),
    }
    report = {}
    for part in parts:
        start = time.perf_counter()
        try:
            report[part] = makers[part]()
        except Exception as error:  # one broken part (no compiler, out of memory) must not lose the others
            report[part] = {"error": f"{type(error).__name__}: {error}"[:500], "trace": traceback.format_exc()[-1500:]}
        report[part]["part_s"] = round(time.perf_counter() - start, 1)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return report


@contextmanager
def tf32(enabled: bool):
    """TF32 matmuls/convolutions on or off (exactness checks run with them off)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@torch.no_grad()
def bench_compiled(config: str, device: str, repeats: int) -> dict:
    """Fast-vs-reference difference with TF32 off; the compiled embedding; decode eager vs compiled."""
    from .bench import bench_input
    from .engines.sam3d.engine import SAM3DEngine

    torch.manual_seed(0)
    engine = SAM3DEngine(None, device=device, config=config)  # random weights: timing and exactness only
    model, size = engine.model, engine.config.img_size
    x = torch.from_numpy(bench_input(size)[0])[None, None].to(device)
    out: dict = {}
    with tf32(False):
        fast = model.embed(x)
        model.image_encoder.use_reference_attention()
        out["fp32_no_tf32_fast_vs_reference_max_abs_diff"] = (model.embed(x) - fast).abs().max().item()
        model.image_encoder.use_reference_attention(False)
    centre = torch.full((1, 1, 3), size / 2, device=device)
    click = (centre, torch.ones((1, 1), dtype=torch.long, device=device))

    def decode():
        torch.compiler.cudagraph_mark_step_begin()
        return model.upscale(model.decode(fast, points=click)[0].clone())

    eager_mask = decode() > 0
    out["decode_eager_ms"] = median_ms(decode, max(repeats, 10), device, True)
    start = time.perf_counter()
    out["compile_ok"] = engine.compile(decoder=True)
    out["compile_s"] = round(time.perf_counter() - start, 1)
    out["embed_compiled_ms"] = median_ms(lambda: model.embed(x), repeats, device, True)
    out["embed_compiled_max_abs_diff"] = (model.embed(x) - fast).abs().max().item()
    out["decode_compiled_ms"] = median_ms(decode, max(repeats, 10), device, True)
    out["decode_compiled_mask_voxels_differing"] = int(((decode() > 0) != eager_mask).sum())
    return out


class TrainStep(NamedTuple):
    """One optimiser step of progressive prompting (``run()``) and what it runs on."""
    run: Callable[[], None]
    step: object  # the ProgressiveStep
    model: torch.nn.Module
    image: torch.Tensor
    label: torch.Tensor
    box: torch.Tensor
    amp: bool


def train_step(config: str, device: str, batch: int = 2, iterations: int = 3, clicks: int = 4,
               image: torch.Tensor | None = None) -> TrainStep:
    """A training step on ``image`` ([1, 1, s, s, s]; default a head-CT crop) repeated ``batch`` times,
    with a spherical label and a box around it; AMP on CUDA."""
    from .bench import bench_input
    from .engines.sam3d.config import Sam3DConfig
    from .engines.sam3d.model import Sam3D
    from .train.losses import SmallTargetFocusLoss
    from .train.prompting import ProgressiveStep, PromptSchedule

    torch.manual_seed(0)
    cfg = Sam3DConfig.named(config)
    model = Sam3D(cfg).to(device).train()
    step = ProgressiveStep(model, SmallTargetFocusLoss(), PromptSchedule(iterations, clicks), encoder_trainable=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    amp = torch.device(device).type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    s = cfg.img_size
    image = torch.from_numpy(bench_input(s)[0])[None, None] if image is None else image
    image = image.repeat(batch, 1, 1, 1, 1).to(device)
    grid = torch.stack(torch.meshgrid(*(torch.arange(s, device=device),) * 3, indexing="ij")).float()
    label = (((grid - s / 2) ** 2).sum(0) < (s / 6) ** 2).float()[None, None].repeat(batch, 1, 1, 1, 1)
    box = torch.tensor([[s / 3] * 3, [2 * s / 3] * 3], device=device)[None].repeat(batch, 1, 1)
    text = torch.zeros(batch, cfg.text_dim, device=device)

    def run():
        with torch.autocast(torch.device(device).type, dtype=torch.float16, enabled=amp):
            loss, _ = step(image, label, torch.ones_like(label), box, text)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return TrainStep(run, step, model, image, label, box, amp)


def bench_train_step(config: str, device: str, repeats: int, batch: int = 2, iterations: int = 3,
                     clicks: int = 4) -> dict:
    """One optimiser step of progressive prompting on head-CT crops with a spherical label."""
    setup = train_step(config, device, batch, iterations, clicks)
    if setup.amp:
        torch.cuda.reset_peak_memory_stats()
    out = {"train_step_ms": median_ms(setup.run, repeats, device, True), "batch": batch, "amp": setup.amp,
           "iterations": iterations, "clicks": clicks}
    model, step, image, label = setup.model, setup.step, setup.image, setup.label
    with torch.no_grad():
        logits = model.upscale(model.decode(model.embed(image), boxes=setup.box)[0])
    coords = image.new_zeros((batch, 0, 3))
    labels = image.new_zeros((batch, 0), dtype=torch.long)
    out["click_simulation_ms"] = median_ms(lambda: step._add_clicks(coords, labels, logits, label, step.schedule),
                                           repeats, device, True)
    out["device_clicks_match_cpu_reference"] = _clicks_match_reference(logits[:, 0] > 0, label[:, 0] > 0.5, clicks)
    if setup.amp:
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _clicks_match_reference(pred: torch.Tensor, truth: torch.Tensor, n: int) -> bool:
    """Centre clicks from ``clicks_torch`` on the tensors' device equal the numpy reference's."""
    from .prompts.clicks import next_clicks
    from .prompts.clicks_torch import next_clicks_batch

    coords, labels = next_clicks_batch(pred, truth, n)
    for b, (p, t) in enumerate(zip(pred.cpu().numpy(), truth.cpu().numpy())):
        expected = [(list(c.index_kji), int(c.positive)) for c in next_clicks(p, t, n=n)]
        got = [(coords[b, m].int().tolist(), int(labels[b, m])) for m in range(n) if labels[b, m] >= 0]
        if got != expected:
            return False
    return True


def bench_litemedsam(device: str, repeats: int) -> dict:
    """LiteMedSAM on lung2: a label box (+5 mm) on every slice, then one click (cached embeddings)."""
    from .data import example
    from .engines.base import Prompt
    from .engines.registry import load_engine
    from .io.images import read_image
    from .prompts.clicks import next_clicks
    from .itv.propagate import box_from_mask

    image = read_image(example("pyradiomics/lung2_image.nrrd"))
    label = read_image(example("pyradiomics/lung2_label.nrrd"))
    engine = load_engine("litemedsam", device=device)
    box = box_from_mask(label, 5.0)

    def box_step():
        return engine.open(image).predict(Prompt(box_lps=box))

    out = {"case": "lung2", "shape_kji": list(image.array.shape),
           "box_step_ms": median_ms(box_step, repeats, device, True)}
    context = engine.open(image)
    first = context.predict(Prompt(box_lps=box))
    click = next_clicks(first.mask.array > 0, label.array > 0)[0].to_click(image)
    prompt = Prompt(box_lps=box, clicks=[click])
    out["click_ms"] = median_ms(lambda: context.predict(prompt, previous=first), max(repeats, 5), device, False)
    return out


@torch.no_grad()
def bench_sam3(device: str, repeats: int, weights: str | None = None, config=None) -> dict:
    """SAM 3 vision features per slice at batch 1 and 8 (bf16 on CUDA); random full-size weights by default."""
    from .engines.sam3_model import image_features, load_sam3

    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if weights:
        model = load_sam3(weights, device).model.to(dtype)
        source = str(weights)
    else:
        from transformers.models.sam3.configuration_sam3 import Sam3Config
        from transformers.models.sam3.modeling_sam3 import Sam3Model

        with torch.device(device):  # random init of 840 M parameters on the GPU, not the CPU
            model = Sam3Model(config or Sam3Config()).to(dtype).eval()
        source = "random weights, " + ("given config" if config else "full-size config")
    size = model.config.vision_config.backbone_config.image_size
    out = {"source": source, "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
           "image_size": size, "dtype": str(dtype).removeprefix("torch.")}
    for batch in (1, 8):
        pixels = torch.randn(batch, 3, size, size, device=device, dtype=dtype)
        batch_ms = median_ms(lambda: image_features(model, pixels), repeats, device, True)
        out[f"per_slice_ms_batch{batch}"] = batch_ms / batch
    synchronize(device)
    return out


def result_name(report: dict) -> str:
    """``<gpu or cpu>_<UTC time>.json`` for benchmarks/results/."""
    machine = (report.get("gpu") or report.get("device") or "cpu").replace(" ", "-").replace("/", "-")
    return f"{machine}_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
