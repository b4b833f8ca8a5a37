"""The DDP path on CPU: 2 processes, gloo backend, as torchrun would start them."""

import socket

import torch
import torch.multiprocessing as mp

from rtsam.train import distributed as dd
from rtsam.train.loop import Trainer, TrainOptions

TASK = "Segment the enhancing tumour"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, options: TrainOptions, results: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = dd.setup(options.device)
    trainer = Trainer(options, info, log=lambda message: None)
    summary = trainer.run()
    params = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    dd.teardown(info)
    torch.save({"rank": summary["rank"], "world": summary["world_size"], "history": summary["history"],
                "params": params}, f"{results}/rank{rank}.pt")


def test_ddp_two_processes_gloo(data, tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    for case in ("brain1", "brain2"):
        for name in ("image", "label"):
            (folder / f"{case}_{name}.nrrd").symlink_to(data / "pyradiomics" / f"{case}_{name}.nrrd")
    out = tmp_path / "out"
    options = TrainOptions(manifest=str(folder), out=str(out), config="tiny", epochs=1, lr=1e-3, task=TASK,
                           val_fraction=0.0, iterations=1, clicks=2, crops_per_case=1, device="cpu", train="decoder")
    mp.spawn(_worker, args=(_free_port(), options, str(tmp_path)), nprocs=2, join=True)

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world"] == 2 for r in ranks)
    # each process trained on its own shard (one case each), yet gradients were averaged:
    # the parameters are identical after the step, and differ from the initial ones
    torch.manual_seed(options.seed)
    from rtsam.engines.sam3d.config import Sam3DConfig
    from rtsam.engines.sam3d.model import Sam3D

    initial = torch.cat([p.detach().flatten() for p in Sam3D(Sam3DConfig.tiny()).parameters()])
    assert torch.equal(ranks[0]["params"], ranks[1]["params"])
    assert not torch.equal(ranks[0]["params"], initial)
    # metrics are all-reduced: both processes log the same numbers over both cases
    assert ranks[0]["history"] == [{**ranks[1]["history"][0], "seconds": ranks[0]["history"][0]["seconds"]}]
    assert ranks[0]["history"][0]["val_samples"] == 2
    # only rank 0 writes; the saved model is the synchronised one
    assert (out / "best.pth").is_file() and len((out / "log.jsonl").read_text().splitlines()) == 1
