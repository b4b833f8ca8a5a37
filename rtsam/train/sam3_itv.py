"""``rtsam train-itv``: fit a SAM 3 LoRA adapter on a few annotated volumes, mining hard negatives.

Every axial slice of every case is a sample: positive when its label has voxels, else negative.
An epoch trains on all positive slices plus the hard negatives mined at its start: of the
negative slices (at most ``mine_pool``, drawn at random), those on which the current model
fires, i.e. its mask, made as the sam3 engine makes it, covers more than ``fire_fraction`` of
the slice; the ``hard_negatives`` that fire most are taken.

Loss per slice, on SAM 3's outputs at the mask decoder's resolution:
- positive: the query whose mask overlaps the label best (Dice) is matched; Dice + BCE on its
  mask logits, BCE of its score logit towards 1 plus the mean BCE of the other queries'
  towards 0, BCE of the presence logit towards 1;
- negative: mean BCE of every query's score logit and BCE of the presence logit towards 0.
Only the LoRA parameters train (AdamW); the base folder and weights are not changed. The
adapter (peft's ``adapter_config.json`` recording the base folder, and
``adapter_model.safetensors``) and ``training.json`` go to ``out``; the sam3 engine loads the
adapter folder as its checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import device_info, resolve_device
from ..engines.litemedsam_prep import detect_modality, intensity_window
from ..engines.sam3_model import check_folder, kept_logits, load_sam3, pixel_values, probability, text_inputs
from ..errors import InputError
from ..volume import Volume
from .losses import soft_dice_loss
from .parts import count_parameters
from .sam3_lora import DEFAULT_TARGETS, add_lora

Key = tuple[int, int]  # (case, slice)


@dataclass
class ITVTrainOptions:
    base: str
    task: str
    out: str
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    targets: tuple[str, ...] = DEFAULT_TARGETS
    epochs: int = 10
    lr: float = 2e-4
    batch_size: int = 2
    hard_negatives: int = 8
    mine_pool: int = 64
    fire_fraction: float = 0.001
    score_threshold: float = 0.5
    modality: str | None = None
    device: str | None = None
    seed: int = 0


class SliceSet:
    """The cases' axial slices, windowed per case, split into positives and negatives."""

    def __init__(self, cases: list[tuple[Volume, Volume]], modality: str | None):
        self.images = [image.array for image, _ in cases]
        self.labels = [label.array > 0 for _, label in cases]
        self.windows = [intensity_window(image, (modality or detect_modality(image)).upper()) for image, _ in cases]
        keys = [(c, k) for c, label in enumerate(self.labels) for k in range(label.shape[0])]
        self.positives = [key for key in keys if self.labels[key[0]][key[1]].any()]
        self.negatives = [key for key in keys if not self.labels[key[0]][key[1]].any()]
        if not self.positives:
            raise InputError("no labelled voxels in any case: nothing to train on")

    def pixels(self, keys: list[Key], processor) -> torch.Tensor:
        return torch.cat([pixel_values(self.images[c][k:k + 1], self.windows[c], processor) for c, k in keys])

    def target(self, key: Key, size: tuple[int, int]) -> torch.Tensor | None:
        """The label slice as area fractions at the mask resolution; None on a negative slice."""
        label = self.labels[key[0]][key[1]]
        if not label.any():
            return None
        return F.interpolate(torch.from_numpy(label.astype(np.float32))[None, None], size=size, mode="area")[0, 0]


def slice_loss(masks: torch.Tensor, logits: torch.Tensor, presence: torch.Tensor, target: torch.Tensor | None):
    """Loss of one slice: ``masks`` (Q, h, w) and ``logits`` (Q,) per query, ``presence`` (1,);
    ``target`` (h, w, label area fractions) for a positive slice, None for a negative one."""
    if target is None:
        return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits)) + \
            F.binary_cross_entropy_with_logits(presence, torch.zeros_like(presence))
    with torch.no_grad():  # the query matched to the label
        q = int(soft_dice_loss(masks.sigmoid()[:, None], target.expand_as(masks)[:, None]).argmin())
    others = torch.cat([logits[:q], logits[q + 1:]])
    mask_loss = soft_dice_loss(masks[q].sigmoid()[None, None], target[None, None]).mean() + \
        F.binary_cross_entropy_with_logits(masks[q], target)
    score_loss = F.binary_cross_entropy_with_logits(logits[q], torch.ones_like(logits[q])) + \
        (F.binary_cross_entropy_with_logits(others, torch.zeros_like(others)) if others.numel() else 0.0)
    return mask_loss + score_loss + F.binary_cross_entropy_with_logits(presence, torch.ones_like(presence))


def pick_hard_negatives(fractions: dict[Key, float], count: int, fire_fraction: float) -> list[Key]:
    """The ``count`` slices whose predicted area fraction is largest and above ``fire_fraction``."""
    firing = [key for key, fraction in fractions.items() if fraction > fire_fraction]
    return sorted(firing, key=lambda key: (-fractions[key], key))[:max(count, 0)]


class ITVTrainer:
    def __init__(self, cases: list[tuple[Volume, Volume]], options: ITVTrainOptions):
        self.o = options
        self.device = resolve_device(options.device)
        self.rng = np.random.default_rng(options.seed)
        torch.manual_seed(options.seed)
        self.slices = SliceSet(cases, options.modality)
        check_folder(Path(options.base).expanduser())  # a SAM 3 folder, not an adapter
        loaded = load_sam3(options.base, self.device)
        self.base, self.processor = loaded.base, loaded.processor
        self.model = add_lora(loaded.model, options.rank, options.alpha, options.dropout, options.targets)
        self.tokens = text_inputs(self.processor, options.task, self.device)
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=options.lr)

    def forward(self, keys: list[Key]):
        batch = len(keys)
        return self.model(pixel_values=self.slices.pixels(keys, self.processor).to(self.device),
                          input_ids=self.tokens["input_ids"].expand(batch, -1),
                          attention_mask=self.tokens["attention_mask"].expand(batch, -1))

    def batch_loss(self, keys: list[Key]) -> torch.Tensor:
        out = self.forward(keys)
        size = tuple(out.pred_masks.shape[-2:])
        targets = [self.slices.target(key, size) for key in keys]
        losses = [slice_loss(out.pred_masks[b], out.pred_logits[b], out.presence_logits[b],
                             None if target is None else target.to(self.device))
                  for b, target in enumerate(targets)]
        return torch.stack(losses).mean()

    @torch.no_grad()
    def fired_fractions(self, keys: list[Key]) -> dict[Key, float]:
        """Each slice's fraction covered by the mask the model (in eval mode) predicts, as the engine does."""
        self.model.eval()
        fractions = {}
        for chunk in _chunks(keys, self.o.batch_size):
            logits, _ = kept_logits(self.forward(chunk), self.o.score_threshold)
            for (c, k), slice_logits in zip(chunk, logits):
                covered = probability(slice_logits[None], self.slices.labels[c].shape[1:]) > 0.5
                fractions[(c, k)] = float(covered.mean())
        return fractions

    def mine(self) -> tuple[list[Key], int]:
        """(hard negatives, number of pool slices that fire) for the next epoch."""
        pool = list(self.slices.negatives)
        if len(pool) > self.o.mine_pool:
            pool = [pool[i] for i in sorted(self.rng.choice(len(pool), self.o.mine_pool, replace=False))]
        fractions = self.fired_fractions(pool) if pool and self.o.hard_negatives > 0 else {}
        fired = sum(f > self.o.fire_fraction for f in fractions.values())
        return pick_hard_negatives(fractions, self.o.hard_negatives, self.o.fire_fraction), fired

    @torch.no_grad()
    def evaluate(self, keys: list[Key]) -> float:
        """Mean loss over ``keys`` in eval mode."""
        self.model.eval()
        losses = [float(self.batch_loss(chunk)) * len(chunk) for chunk in _chunks(keys, self.o.batch_size)]
        return sum(losses) / max(len(keys), 1)

    def epoch(self, samples: list[Key], progress=None) -> float:
        self.model.train()
        order = [samples[i] for i in self.rng.permutation(len(samples))]
        chunks = list(_chunks(order, self.o.batch_size))
        total = 0.0
        for n, chunk in enumerate(chunks):
            loss = self.batch_loss(chunk)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach()) * len(chunk)
            if progress is not None:
                progress((n + 1) / len(chunks))
        return total / len(order)


def _chunks(items: list, size: int):
    size = max(int(size), 1)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def load_cases(inputs: list[str], task: str) -> list[tuple[Volume, Volume]]:
    """(image, label) pairs from ``IMAGE LABEL ...`` paths or one manifest (see ``manifest``), all checked."""
    from .manifest import Case, load_case, validate

    if len(inputs) == 1:
        loaded = validate(inputs[0], default_task=task).cases
        other = sorted({c.case.task for c in loaded} - {task})
        if other:
            raise InputError(f"the manifest has other tasks {other}; train-itv fits one task ({task!r})", inputs[0])
    elif len(inputs) % 2:
        raise InputError(f"give IMAGE LABEL pairs or one manifest, got {len(inputs)} paths")
    else:
        loaded = [load_case(Case(row=n, image=Path(image), label=Path(label), task=task))
                  for n, (image, label) in enumerate(zip(inputs[::2], inputs[1::2]), start=1)]
    return [(c.image, c.label) for c in loaded]


def train_itv(cases: list[tuple[Volume, Volume]], options: ITVTrainOptions, progress=None) -> dict:
    """Fit the adapter; returns the summary (also written to ``out/training.json``)."""
    if not options.task.strip():
        raise InputError("train-itv needs a task text (the prompt the adapter is trained for)")
    for name, least in {"epochs": 1, "batch_size": 1, "hard_negatives": 0, "mine_pool": 0}.items():
        if getattr(options, name) < least:
            raise InputError(f"{name.replace('_', ' ')} must be at least {least}, got {getattr(options, name)}")
    out = Path(options.out)
    if out.exists() and not out.is_dir():
        raise InputError("the adapter output must be a folder", out)
    start = time.perf_counter()
    trainer = ITVTrainer(cases, options)
    hard, fired = trainer.mine()
    evaluation = trainer.slices.positives + hard  # the first epoch's slices, scored before and after training
    initial_loss = trainer.evaluate(evaluation)
    history = []
    for epoch in range(options.epochs):
        t0 = time.perf_counter()
        if epoch:
            hard, fired = trainer.mine()

        def report(fraction: float, epoch=epoch) -> None:
            if progress is not None:
                progress((epoch + fraction) / options.epochs, f"epoch {epoch + 1}/{options.epochs}")

        loss = trainer.epoch(trainer.slices.positives + hard, report)
        history.append({"epoch": epoch + 1, "loss": loss, "hard_negatives": len(hard), "fired": fired,
                        "seconds": time.perf_counter() - t0})
    final_loss = trainer.evaluate(evaluation)
    trainer.model.save_pretrained(str(out))
    summary = {
        "adapter": str(out), "base": str(trainer.base.resolve()), "task": options.task, "cases": len(cases),
        "positive_slices": len(trainer.slices.positives), "negative_slices": len(trainer.slices.negatives),
        "parameters": count_parameters(trainer.model), "initial_loss": initial_loss, "final_loss": final_loss,
        "hard_negatives_mined": sum(h["hard_negatives"] for h in history), "history": history,
        "options": {**asdict(options), "targets": list(options.targets)}, **device_info(trainer.device),
        "seconds": time.perf_counter() - start,
    }
    (out / "training.json").write_text(json.dumps(summary, indent=2))
    return summary
