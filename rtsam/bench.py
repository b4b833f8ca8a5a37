"""``rtsam bench``: speed and memory of the 3D SAM against the networks a user would otherwise run.

In one process, median times of:
- the sam3d image embedding of one crop with the fast exact windowed attention (the default)
  and with the literal padded reference, and of a plain 512-token ViT-B (MONAI's ``ViT``,
  patch 16, 12 blocks: the cost the fast path should approach);
- one click decode against the cached embedding (prompt encoder + mask decoder + upscaling);
- one forward pass of MONAI's SwinUNETR (feature_size 48) on the same input;
- optionally the embedding under bf16/fp16 autocast, with its error against float32.
Peak RSS is read after one embedding and again while a session's worth of embeddings
(``CACHE_CROPS`` crops) is held. The input is a crop of the real head CT from the example data
(of the lung2 CT where the head CT is missing; a seeded random volume when neither is there).
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from typing import Callable

import numpy as np
import torch

from .devices import platform_info, resolve_device, synchronize
from .engines.sam3d.config import Sam3DConfig
from .engines.sam3d.engine import AUTOCAST_DTYPES, CACHE_CROPS
from .engines.sam3d.model import Sam3D
from .errors import InputError

SWINUNETR_FEATURES = 48
MIN_DECODE_REPEATS = 5


def bench_input(size: int) -> tuple[np.ndarray, str]:
    """A normalised ``size^3`` crop of the real head CT; where it is missing (it cannot be fetched), of the
    lung2 CT (fetched when needed); random data when neither can be had."""
    from .data import example, find_example
    from .engines.sam3d.preprocess import crop_geometry, extract_crop, normalise
    from .io.images import read_image

    head = find_example("invesalius_head_ct/head_ct.nrrd")
    name = "head_ct" if head is not None else "lung2"
    try:
        image = read_image(head or example("pyradiomics/lung2_image.nrrd"))
    except InputError:
        return np.random.default_rng(0).standard_normal((size,) * 3).astype(np.float32), "random"
    lo, hi = image.bounds_lps()
    geometry = crop_geometry(image, (lo + hi) / 2, size, Sam3DConfig().spacing_mm)
    return normalise(extract_crop(image, geometry)), name


def median_ms(fn: Callable[[], object], repeats: int, device: str, warmup: bool) -> float:
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def plain_vit(cfg: Sam3DConfig):
    """MONAI's ViT with the sam3d encoder's token grid, width, depth and heads."""
    from monai.networks.nets import ViT

    return ViT(in_channels=1, img_size=cfg.img_size, patch_size=cfg.patch_size, hidden_size=cfg.embed_dim,
               mlp_dim=int(cfg.embed_dim * cfg.mlp_ratio), num_layers=cfg.depth, num_heads=cfg.num_heads,
               classification=False)


@torch.no_grad()
def run_bench(config: str = "vit_b", device: str = "auto", repeats: int = 3, autocast: str | None = None,
              compile_encoder: bool = False) -> dict:
    """Timings in milliseconds; warm-up runs only on CUDA or when compiling (a CPU ViT-B warm-up
    would double the cost)."""
    if repeats < 1:
        raise InputError(f"repeats must be at least 1, got {repeats}")
    if autocast is not None and autocast not in AUTOCAST_DTYPES:
        raise InputError(f"autocast must be one of {', '.join(AUTOCAST_DTYPES)}, got '{autocast}'")
    device = resolve_device(device)
    torch.manual_seed(0)
    cfg = Sam3DConfig.named(config)
    array, source = bench_input(cfg.img_size)
    x = torch.from_numpy(array)[None, None].to(device)
    warmup = device.startswith("cuda") or compile_encoder
    model = Sam3D(cfg).to(device).eval()
    if compile_encoder:
        model.image_encoder = torch.compile(model.image_encoder)
    result: dict = {}

    _reset_cuda_peak(device)
    result["embed_ms"] = median_ms(lambda: model.embed(x), repeats, device, warmup)
    embedding = model.embed(x)
    result.update(_memory(device, "one_embedding"))
    held = [model.embed(x + 0.01 * k) for k in range(1, CACHE_CROPS)]
    result.update(_memory(device, f"{CACHE_CROPS}_cached_embeddings"))
    result["embedding_mb"] = embedding.numel() * embedding.element_size() / 2**20
    del held

    if autocast is not None:
        with torch.autocast(torch.device(device).type, dtype=AUTOCAST_DTYPES[autocast]):
            result[f"embed_{autocast}_ms"] = median_ms(lambda: model.embed(x), repeats, device, warmup)
            low = model.embed(x).float()
        result[f"embed_{autocast}_max_rel_error"] = ((low - embedding).abs().max() / embedding.abs().max()).item()

    if not compile_encoder:
        model.image_encoder.use_reference_attention()
        result["embed_reference_ms"] = median_ms(lambda: model.embed(x), repeats, device, warmup)
        result["embed_reference_max_abs_diff"] = (model.embed(x) - embedding).abs().max().item()
        model.image_encoder.use_reference_attention(False)
        result["reference_over_fast"] = result["embed_reference_ms"] / result["embed_ms"]

    centre = torch.full((1, 1, 3), cfg.img_size / 2, device=device)
    click = (centre, torch.ones((1, 1), dtype=torch.long, device=device))
    result["decode_ms"] = median_ms(lambda: model.upscale(model.decode(embedding, points=click)[0]),
                                    max(repeats, MIN_DECODE_REPEATS), device, warmup)
    del model, embedding

    vit = plain_vit(cfg).to(device).eval()
    result["plain_vit_ms"] = median_ms(lambda: vit(x), repeats, device, warmup)
    result["fast_over_plain_vit"] = result["embed_ms"] / result["plain_vit_ms"]
    del vit

    from monai.networks.nets import SwinUNETR

    swin = SwinUNETR(in_channels=1, out_channels=2, feature_size=SWINUNETR_FEATURES).to(device).eval()
    result["swinunetr_forward_ms"] = median_ms(lambda: swin(x), repeats, device, warmup)
    result["decode_over_swinunetr"] = result["decode_ms"] / result["swinunetr_forward_ms"]
    result.update(_memory(device, "overall"))
    result = {k: round(v, 6 if abs(v) < 1 else 2) if isinstance(v, float) else v for k, v in result.items()}
    result.update({
        **platform_info(device),
        "config": config,
        "input": f"{source} {cfg.img_size}^3",
        "repeats": repeats,
        "compiled": compile_encoder,
        "torch_threads": torch.get_num_threads(),
    })
    result["peak_rss_mb"] = result.pop("peak_rss_mb_overall")
    return result


def _reset_cuda_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _memory(device: str, label: str) -> dict[str, float]:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    memory = {f"peak_rss_mb_{label}": peak / 2**20 if sys.platform == "darwin" else peak / 1024}
    if device.startswith("cuda"):
        memory[f"peak_cuda_mb_{label}"] = torch.cuda.max_memory_allocated() / 2**20
    return memory
