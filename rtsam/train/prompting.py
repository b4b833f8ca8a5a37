"""Progressive prompting for training and validation, as in RTInjurySAM.

Stage 0: task text + box (the dose box when the case has a dose, else the label's box plus a
margin). Then ``iterations`` rounds of simulated clicks (``clicks`` per round, on the largest
error components of the current prediction), each decode fed the previous low-res logits (the
first one a zero mask, as SAM-Med3D). On a GPU the clicks are simulated there with torch
(``prompts.clicks_torch``, the same rule, no copy to the CPU); on the CPU with the numpy reference.
The loss is averaged over all stages. ``ProgressiveStep`` is one ``nn.Module`` whose forward
does all of it, so DistributedDataParallel sees one forward and one backward per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..prompts.clicks import next_clicks
from ..prompts.clicks_torch import next_clicks_batch
from .losses import SmallTargetFocusLoss, dice_score


@dataclass
class PromptSchedule:
    iterations: int = 3
    clicks: int = 4
    click_mode: str = "random"  # training draws clicks inside error regions; validation uses "center"


class ProgressiveStep(nn.Module):
    """``forward(batch) -> (loss, dice per stage [stages, B])`` for one batch of crops."""

    def __init__(self, model: nn.Module, loss: SmallTargetFocusLoss, schedule: PromptSchedule,
                 encoder_trainable: bool, seed: int = 0):
        super().__init__()
        self.model, self.loss, self.schedule = model, loss, schedule
        self.encoder_trainable = encoder_trainable
        self.rng = np.random.default_rng(seed)

    def forward(self, image: Tensor, label: Tensor, roi: Tensor, box: Tensor, text: Tensor,
                schedule: PromptSchedule | None = None) -> tuple[Tensor, Tensor]:
        schedule = schedule or self.schedule
        with torch.set_grad_enabled(self.encoder_trainable and torch.is_grad_enabled()):
            embeddings = self.model.embed(image)
        low_res = logits = None
        coords = image.new_zeros((image.shape[0], 0, 3))
        labels = image.new_zeros((image.shape[0], 0), dtype=torch.long)
        losses, dice = [], []
        for stage in range(schedule.iterations + 1):
            if stage:
                coords, labels = self._add_clicks(coords, labels, logits.detach(), label, schedule)
            points = (coords, labels) if coords.shape[1] else None
            low_res, _ = self.model.decode(embeddings, points=points, boxes=box, text_embeddings=text,
                                           mask_logits=None if low_res is None else low_res.detach())
            logits = self.model.upscale(low_res)
            losses.append(self.loss(logits, label, roi))
            dice.append(dice_score(logits.detach(), label))
        return torch.stack(losses).mean(), torch.stack(dice)

    def _add_clicks(self, coords: Tensor, labels: Tensor, logits: Tensor, truth: Tensor,
                    schedule: PromptSchedule) -> tuple[Tensor, Tensor]:
        """Append up to ``schedule.clicks`` simulated clicks per sample; padding label -1."""
        if logits.device.type != "cpu":
            generator = torch.Generator(logits.device).manual_seed(int(self.rng.integers(2**62)))
            c, lab = next_clicks_batch(logits[:, 0] > 0, truth[:, 0] > 0.5, schedule.clicks, schedule.click_mode,
                                       generator)
            return torch.cat([coords, c.to(coords.dtype)], 1), torch.cat([labels, lab], 1)
        pred = (logits[:, 0] > 0).cpu().numpy()
        gt = truth[:, 0].cpu().numpy() > 0.5
        new = [next_clicks(p, t, n=schedule.clicks, mode=schedule.click_mode, rng=self.rng) for p, t in zip(pred, gt)]
        width = schedule.clicks
        c = coords.new_zeros((len(new), width, 3))
        lab = labels.new_full((len(new), width), -1)
        for b, clicks in enumerate(new):
            for n, click in enumerate(clicks):
                c[b, n] = torch.tensor(click.index_kji, dtype=c.dtype)
                lab[b, n] = int(click.positive)
        return torch.cat([coords, c], 1), torch.cat([labels, lab], 1)
