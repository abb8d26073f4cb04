"""Run under torchrun by tests/test_dist.py: exercises the collectives and writes what each rank saw to a JSON file.

Usage: torchrun --standalone --nproc_per_node=2 tests/dist_worker.py OUT_DIR
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from utils import dist  # noqa: E402
from utils.seed import seed_everything  # noqa: E402


def accumulation(info) -> dict:
    """One optimizer step of a DDP model over 2 micro-batches per rank (16 samples in all) against the step of one
    undistributed copy on the whole 16: the largest parameter difference, and how many gradient all-reduces ran."""
    from torch import nn
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    from utils.loop import optimizer_step

    torch.manual_seed(0)  # the same weights and data on both ranks
    model = nn.Sequential(nn.Linear(6, 32), nn.GELU(), nn.Linear(32, 3))
    reference = nn.Sequential(nn.Linear(6, 32), nn.GELU(), nn.Linear(32, 3))
    reference.load_state_dict(model.state_dict())
    inputs, targets = torch.randn(16, 6), torch.randn(16, 3)
    ddp = nn.parallel.DistributedDataParallel(model)
    calls = []

    def counting_allreduce(state, bucket):
        calls.append(1)
        return default_hooks.allreduce_hook(state, bucket)

    ddp.register_comm_hook(None, counting_allreduce)
    mine = slice(8 * info.rank, 8 * info.rank + 8)
    micro = [(inputs[mine][:4], targets[mine][:4]), (inputs[mine][4:], targets[mine][4:])]
    scaler = torch.amp.GradScaler("cpu", enabled=False)

    def loss_of(net):
        return lambda batch: nn.functional.mse_loss(net(batch[0]), batch[1])

    optimizer = torch.optim.AdamW(ddp.parameters(), lr=0.1)
    optimizer_step(loss_of(ddp), micro, ddp, optimizer, scaler, 1.0)
    optimizer_ref = torch.optim.AdamW(reference.parameters(), lr=0.1)
    optimizer_step(loss_of(reference), [(inputs, targets)], reference, optimizer_ref, scaler, 1.0)
    difference = max((a - b).abs().max().item() for a, b in zip(model.parameters(), reference.parameters()))
    return {"accumulated_vs_one_batch": difference, "allreduce_calls": len(calls)}


def main(out_dir: Path) -> None:
    info = dist.init_distributed(device="cpu")
    seed = seed_everything(42, info.rank)
    # rank r contributes r + 1 rows of value r, so sizes differ and the order is checkable
    rows = torch.full((info.rank + 1, 3), float(info.rank))
    gathered = dist.all_gather_cat(rows)
    mean = dist.all_reduce_mean(torch.tensor([float(info.rank), 10.0 * info.rank]))
    objects = dist.all_gather_objects({"rank": info.rank})
    broadcast = dist.broadcast_object(f"from rank {info.rank}")
    result = {
        "rank": info.rank,
        "world_size": info.world_size,
        "seed": seed,
        "gathered": gathered.tolist(),
        "mean": mean.tolist(),
        "objects": objects,
        "broadcast": broadcast,
        "first_random": torch.rand(1).item(),
    }
    result.update(accumulation(info))
    (out_dir / f"rank{info.rank}.json").write_text(json.dumps(result))
    dist.cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
