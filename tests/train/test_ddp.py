"""Two gloo processes with global batch 2b end where one process with batch 2b ends (within 1e-5)."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from spikeattn.train import TrainConfig, train
from tests.train.helpers import blobs, direct_forward, tiny_model

STEPS, BATCH = 6, 8


def _config(out_dir, device: str = "cpu") -> TrainConfig:
    # 40 items / global batch 8: the 6 steps cross an epoch boundary (reshuffle under both layouts)
    return TrainConfig(steps=STEPS, batch_size=BATCH, lr=2e-2, warmup_steps=2, grad_clip=1.0, log_every=2,
                       out_dir=str(out_dir), progress=False, device=device)


def _worker(rank: int, world: int, port: int, out_dir: str, device: str = "cpu") -> None:
    # what torchrun sets: the trainer starts (and ends) the gloo process group itself
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    model = tiny_model(seed=rank)  # different init per rank: DDP must broadcast rank 0's
    # device "auto" under torchrun: cuda:LOCAL_RANK and NCCL when GPUs are there
    summary = train(model, blobs(40), _config(out_dir, device), blobs(12, seed=7), forward=direct_forward)
    assert not dist.is_initialized()
    torch.save({"state": model.state_dict(), "summary": summary}, f"{out_dir}/rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_matches_single(tmp_path):
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    ddp_dir.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(ddp_dir)), nprocs=2, join=True)

    single = tiny_model(seed=0)
    ref = train(single, blobs(40), _config(single_dir), blobs(12, seed=7), forward=direct_forward)
    r0, r1 = (torch.load(ddp_dir / f"rank{r}.pt") for r in (0, 1))
    for name, p in single.state_dict().items():
        assert torch.allclose(r0["state"][name], p, rtol=0, atol=1e-5), f"{name}: rank 0 differs from one process"
        assert torch.equal(r0["state"][name], r1["state"][name]), f"{name}: the ranks disagree"
    assert abs(r0["summary"]["final_eval_loss"] - ref["final_eval_loss"]) < 1e-5  # sharded eval adds up
    assert r0["summary"]["world_size"] == 2
    # rank 0 alone wrote the run files (rank 1 would have raced on the same names)
    assert {p.name for p in ddp_dir.iterdir()} == {"ckpt.pt", "metrics.jsonl", "summary.json", "curves.png",
                                                  "rank0.pt", "rank1.pt"}


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL DDP needs two CUDA GPUs")
def test_two_process_nccl_matches_single(tmp_path):
    """The same check on two GPUs: NCCL, one process per device (run by `make gpu-check`)."""
    ddp_dir = tmp_path / "ddp"
    ddp_dir.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(ddp_dir), "auto"), nprocs=2, join=True)
    single = tiny_model(seed=0)
    train(single, blobs(40), _config(tmp_path / "single", "cuda:0"), blobs(12, seed=7), forward=direct_forward)
    r0, r1 = (torch.load(ddp_dir / f"rank{r}.pt", map_location="cpu") for r in (0, 1))
    for name, p in single.state_dict().items():
        assert torch.allclose(r0["state"][name], p.cpu(), rtol=0, atol=1e-4), f"{name}: rank 0 differs from one process"
        assert torch.equal(r0["state"][name], r1["state"][name]), f"{name}: the ranks disagree"


def _recipe_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from spikeattn.data import fashion_mnist
    from spikeattn.recipes import SpikformerRecipe, fit_spikformer
    from spikeattn.recipes import spikformer as recipe

    writes = []  # the files this process writes through the recipe's two writers

    def spy(fn, path_at):
        def wrapped(*args, **kwargs):
            writes.append(os.path.basename(args[path_at]))
            return fn(*args, **kwargs)
        return wrapped

    recipe.save_model, recipe.write_json = spy(recipe.save_model, 1), spy(recipe.write_json, 0)
    fit_spikformer(SpikformerRecipe(steps=2, batch_size=8, out=out_dir, progress=False, recalibrate_batches=1,
                                    overrides={"T": 1}),
                   fashion_mnist("train", limit=32), fashion_mnist("test", limit=16))
    torch.save(writes, f"{out_dir}/writes{rank}.pt")


def test_recipe_under_two_processes_writes_its_files_once(tmp_path):
    """Under torchrun every rank finishes the recipe; rank 0 alone writes model.pt and result.json."""
    mp.spawn(_recipe_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    assert sorted(torch.load(tmp_path / "writes0.pt")) == ["model.pt", "result.json"]
    assert torch.load(tmp_path / "writes1.pt") == []
    assert (tmp_path / "model.pt").exists() and (tmp_path / "result.json").exists()
