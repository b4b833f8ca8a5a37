"""Fine-tuning the sam3d engine: ``train(TrainOptions) -> summary``.

One process, or one per GPU under torchrun (see ``distributed``). Each epoch trains on
augmented crops with progressive prompts, validates with deterministic prompts (centre
clicks), appends one JSON line to ``OUT/log.jsonl``, saves the training state to
``OUT/last.pt`` (for ``resume``) and, when validation Dice improves, the model to
``OUT/best.pth`` (SAM-Med3D layout, loadable by the engine, with the sam3d config, the
manifest's sha256 and the tasks). Early stopping after ``patience`` epochs without improvement.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..devices import device_info
from ..errors import InputError
from . import distributed as dd
from .data import build_loaders, load_data
from .losses import SmallTargetFocusLoss
from .parts import configure_trainable, count_parameters, merged_model
from .prompting import ProgressiveStep, PromptSchedule


@dataclass
class TrainOptions:
    manifest: str
    out: str
    config: str = "vit_b"
    init: str | None = None
    train: str = "all"
    lora_rank: int = 8
    epochs: int = 50
    lr: float = 1e-4
    batch_size: int = 1
    accumulate: int = 1
    amp: bool = False
    val_fraction: float = 0.2
    patience: int = 10
    resume: bool = False
    device: str | None = None
    seed: int = 0
    task: str | None = None
    allow_new_tasks: bool = False
    skip_bad: bool = False
    iterations: int = 3
    clicks: int = 4
    crops_per_case: int = 1
    augment: bool = True
    text_model: str | None = None


class Trainer:
    def __init__(self, options: TrainOptions, info: dd.DistInfo, log=print):
        from ..engines.sam3d.config import Sam3DConfig
        from ..engines.sam3d.model import Sam3D

        self.o, self.info, self.log = options, info, log
        self.out = Path(options.out)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(options.seed)
        self.model = Sam3D(Sam3DConfig.named(options.config))
        known_tasks = self._load_init()
        self.data = load_data(options, self.model.config, known_tasks, info, log)
        self.train_loader, self.val_loader = build_loaders(self.data, options, info)
        params = configure_trainable(self.model, options.train, options.lora_rank)
        self.model.to(info.device)
        self.text = self._text_encoder()
        loss = SmallTargetFocusLoss()
        step = ProgressiveStep(self.model, loss, PromptSchedule(options.iterations, options.clicks),
                               encoder_trainable=options.train != "decoder", seed=options.seed)
        self.step = self._wrap(step)
        self.optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=0.01)
        self.use_amp = options.amp and info.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.epoch, self.best, self.bad_epochs, self.history = 0, -1.0, 0, []

    # --- setup --------------------------------------------------------------------------
    def _load_init(self) -> list[str] | None:
        """Load ``--init`` weights; returns the tasks a task-conditioned checkpoint knows."""
        if not self.o.init:
            return None
        from ..engines.sam3d.checkpoint import load_checkpoint

        report = load_checkpoint(self.model, self.o.init)
        if report.mismatched:
            raise InputError(f"--init does not fit the '{self.o.config}' config: {report.summary()}", self.o.init)
        self.log(f"init: {report.summary()}")
        tasks = torch.load(self.o.init, map_location="cpu", weights_only=True).get("tasks")
        return None if self.o.allow_new_tasks or not tasks else list(tasks)

    def _text_encoder(self):
        from ..engines.sam3d.text import TextEncoder

        encoder = TextEncoder(self.o.text_model, device=str(self.info.device))
        if encoder.dim != self.model.config.text_dim:
            raise InputError(f"text encoder width {encoder.dim} does not match the model's text_dim "
                             f"{self.model.config.text_dim}", encoder.path)
        return encoder

    def _wrap(self, step: ProgressiveStep):
        if not self.info.distributed:
            return step
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.info.device.index] if self.info.device.type == "cuda" else None
        return DistributedDataParallel(step, device_ids=ids, find_unused_parameters=True)

    # --- one epoch ----------------------------------------------------------------------
    def _batch(self, batch: dict) -> dict:
        from ..engines.sam3d.text import prompt_text

        dev = self.info.device
        texts = [prompt_text(t, p or None) for t, p in zip(batch["task"], batch["patient"])]
        return dict(image=batch["image"].to(dev), label=batch["label"].to(dev), roi=batch["roi"].to(dev),
                    box=batch["box"].to(dev), text=self.text.encode(texts).to(dev))

    def _reseed(self, epoch: int) -> None:
        """Per-epoch seeds, so a resumed run draws the same crops and clicks as an unbroken one."""
        seed = self.o.seed * 100_003 + epoch * 101 + self.info.rank
        torch.manual_seed(seed)
        self.data.train.reseed(seed)
        inner = getattr(self.step, "module", self.step)
        inner.rng = np.random.default_rng(seed)
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

    def train_epoch(self, epoch: int) -> dict:
        from contextlib import nullcontext

        from tqdm import tqdm

        self._reseed(epoch)
        self.model.train()
        total = [0.0, 0.0, 0]  # loss sum, final-stage Dice sum, samples
        bar = tqdm(self.train_loader, desc=f"epoch {epoch + 1}/{self.o.epochs}", file=sys.stderr, leave=False,
                   disable=not self.info.is_main or not sys.stderr.isatty())
        accumulate = max(self.o.accumulate, 1)
        self.optimizer.zero_grad(set_to_none=True)
        for n, batch in enumerate(bar, start=1):
            last_micro = n % accumulate == 0 or n == len(self.train_loader)
            sync = nullcontext() if last_micro or not self.info.distributed else self.step.no_sync()
            with sync:
                with torch.autocast(self.info.device.type, dtype=torch.float16, enabled=self.use_amp):
                    loss, dice = self.step(**self._batch(batch))
                self.scaler.scale(loss / accumulate).backward()
            if last_micro:
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
            size = batch["image"].shape[0]
            total[0] += loss.item() * size
            total[1] += dice[-1].sum().item()
            total[2] += size
            bar.set_postfix(loss=f"{total[0] / total[2]:.4f}", dice=f"{total[1] / total[2]:.3f}")
        loss_sum, dice_sum, count = dd.all_sum(total, self.info)
        return {"train_loss": loss_sum / count, "train_dice": dice_sum / count}

    @torch.no_grad()
    def validate(self) -> dict:
        self.model.eval()
        inner = getattr(self.step, "module", self.step)
        inner.rng = np.random.default_rng(0)
        schedule = PromptSchedule(self.o.iterations, self.o.clicks, click_mode="center")
        sums = np.zeros(self.o.iterations + 2)  # loss, Dice per stage
        count = 0
        for batch in self.val_loader:
            loss, dice = inner(**self._batch(batch), schedule=schedule)
            sums += np.concatenate([[loss.item() * dice.shape[1]], dice.sum(1).cpu().numpy()])
            count += dice.shape[1]
        *sums, count = dd.all_sum([*sums, count], self.info)
        stages = [float(s / max(count, 1)) for s in sums[1:]]
        return {"val_loss": float(sums[0] / max(count, 1)), "val_dice_box": stages[0], "val_dice": stages[-1],
                "val_dice_per_stage": stages, "val_samples": int(count)}

    # --- checkpoints --------------------------------------------------------------------
    def _extra(self) -> dict:
        return {"manifest_sha256": self.data.manifest.sha256, "tasks": self.data.manifest.tasks,
                "train_options": asdict(self.o), "epoch": self.epoch, "val_dice": self.best}

    def save_state(self) -> None:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict(), "epoch": self.epoch, "best": self.best,
                 "bad_epochs": self.bad_epochs, "history": json.dumps(self.history), **self._extra()}
        torch.save(state, self.out / "last.pt.tmp")
        (self.out / "last.pt.tmp").replace(self.out / "last.pt")

    def save_best(self) -> Path:
        from ..engines.sam3d.checkpoint import save_checkpoint

        # Every step prompts with box and text (stage 0), so both branches are trained.
        tmp = save_checkpoint(merged_model(self.model), self.out / "best.pth.tmp", trained_prompts=("box", "text"),
                              **self._extra())
        return tmp.replace(self.out / "best.pth")

    def resume(self) -> None:
        path = self.out / "last.pt"
        if not path.is_file():
            raise InputError("--resume: no training state (last.pt) in the output folder", self.out)
        state = torch.load(path, map_location=self.info.device, weights_only=True)
        if state["manifest_sha256"] != self.data.manifest.sha256:
            raise InputError("--resume: the manifest's data changed since this run started (sha256 differs)", path)
        if state["train_options"]["config"] != self.o.config or state["train_options"]["train"] != self.o.train:
            raise InputError("--resume: --config/--train differ from the interrupted run", path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.best, self.bad_epochs = state["epoch"], state["best"], state["bad_epochs"]
        self.history = json.loads(state["history"])
        self.log(f"resumed at epoch {self.epoch} (best validation Dice {self.best:.4f})")

    # --- the run ------------------------------------------------------------------------
    def run(self) -> dict:
        if self.o.resume:
            self.resume()
        for epoch in range(self.epoch, self.o.epochs):
            start = time.perf_counter()
            record = {"epoch": epoch + 1, **self.train_epoch(epoch), **self.validate()}
            self.epoch = epoch + 1
            improved = record["val_dice"] > self.best
            if improved:
                self.best, self.bad_epochs = record["val_dice"], 0
            else:
                self.bad_epochs += 1
            record.update(best_val_dice=self.best, seconds=round(time.perf_counter() - start, 2))
            self.history.append(record)
            if self.info.is_main:
                self._write_epoch(record, improved)
            stop = dd.broadcast_flag(self.o.patience > 0 and self.bad_epochs >= self.o.patience, self.info)
            if stop:
                self.log(f"early stop: no validation Dice gain for {self.bad_epochs} epochs")
                break
        return self.summary()

    def _write_epoch(self, record: dict, improved: bool) -> None:
        if improved:
            self.save_best()
        self.save_state()
        with open(self.out / "log.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        self.log(f"epoch {record['epoch']}: loss {record['train_loss']:.4f}, train Dice {record['train_dice']:.3f}, "
                 f"val Dice box {record['val_dice_box']:.3f} -> clicks {record['val_dice']:.3f}"
                 + (" (best, saved)" if improved else ""))

    def summary(self) -> dict:
        return {"out": str(self.out), "best_checkpoint": str(self.out / "best.pth"), "best_val_dice": self.best,
                "epochs_run": self.epoch, "manifest_sha256": self.data.manifest.sha256,
                "cases": {"train": len(self.data.train_cases), "val": len(self.data.val_cases),
                          "skipped": len(self.data.manifest.skipped)},
                "val_on_train": self.data.val_on_train, "parameters": count_parameters(self.model),
                **device_info(self.info.device), "world_size": self.info.world_size,
                "rank": self.info.rank, "history": self.history}


def train(options: TrainOptions, log=None) -> dict:
    """Fine-tune per ``options``; returns a summary with the per-epoch history."""
    info = dd.setup(options.device)
    log = log or ((lambda m: print(m, file=sys.stderr)) if info.is_main else (lambda m: None))
    try:
        return Trainer(options, info, log).run()
    finally:
        dd.teardown(info)
