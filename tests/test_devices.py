"""``--device auto`` everywhere a model runs: CUDA when available, else CPU (rtsam.devices)."""

import pytest
import torch

from rtsam.cli import build_parser
from rtsam.devices import device_info, platform_info, resolve_device
from rtsam.errors import InputError

# Every command that runs a model, with the fewest arguments it parses with.
MODEL_COMMANDS = [
    ["segment", "img.nrrd", "--out", "m.nrrd"],
    ["benchmark", "interactive", "--image", "i", "--label", "l"],
    ["itv", "p0.nrrd", "p1.nrrd", "--out", "itv.nrrd"],
    ["itv-bench"],
    ["serve"],
    ["bench"],
    ["train", "manifest.csv", "--out", "run"],
    ["train-itv", "i", "l", "--base", "b", "--task", "t", "--out", "o"],
]


@pytest.mark.parametrize("argv", MODEL_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_model_command_defaults_to_auto(argv):
    assert build_parser().parse_args(argv).device == "auto"


def test_auto_picks_cuda_only_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == "cpu"
    with pytest.raises(InputError, match="no CUDA GPU is available"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(InputError, match="only 1 CUDA device"):
        resolve_device("cuda:3")


def test_bad_device_names_and_records():
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    assert device_info("cpu") == {"device": "cpu", "gpu": None}
    assert device_info("http://server:8765")["gpu"] is None  # a remote engine's "device" is its URL
    record = platform_info("cpu")
    assert record["torch"] == torch.__version__ and "cuda" in record
