"""torchrun environment and collectives.

torchrun is the only launcher. It sets RANK, LOCAL_RANK and WORLD_SIZE; without them everything runs as a single
process with no process group, so tests and CPU debugging need no launcher. Every collective here is a no-op (or the
identity) at world size 1.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Any

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise RuntimeError(f"environment variable {name}={text!r} is not an integer (set by torchrun)") from None


def init_distributed(device: str = "auto", timeout_minutes: int = 30) -> DistInfo:
    """Join the torchrun process group if there is one; pick the device.

    device: 'auto' (the rank's local CUDA device when CUDA is available, else CPU), 'cpu' or 'cuda'.
    Backend: NCCL on CUDA, gloo on CPU.
    """
    rank, world_size, local_rank = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device")
    if rank is None or world_size is None:
        return DistInfo(0, 0, 1, torch.device("cuda", 0) if use_cuda else torch.device("cpu"))

    local_rank = local_rank or 0
    if use_cuda:
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            timeout=datetime.timedelta(minutes=timeout_minutes),
            device_id=torch_device if use_cuda else None,
        )
    return DistInfo(rank, local_rank, world_size, torch_device)


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_dist():
        dist.barrier()


def cleanup() -> None:
    if is_dist():
        dist.barrier()
        dist.destroy_process_group()


@torch.no_grad()
def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of `tensor` over ranks (a new tensor; the input is left alone)."""
    if not is_dist():
        return tensor.clone()
    result = tensor.detach().clone()
    dist.all_reduce(result, op=dist.ReduceOp.SUM)
    return result / get_world_size()


@torch.no_grad()
def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from every rank along dim 0, in rank order. No gradient flows.

    Ranks may hold different numbers of rows (e.g. the last batch of an epoch): sizes are exchanged first and the
    padding needed by the collective is removed again.
    """
    if not is_dist():
        return tensor.detach()
    world_size = get_world_size()
    local_rows = torch.tensor([tensor.shape[0]], device=tensor.device)
    all_rows = [torch.zeros_like(local_rows) for _ in range(world_size)]
    dist.all_gather(all_rows, local_rows)
    rows = [int(r.item()) for r in all_rows]
    max_rows = max(rows)
    padded = tensor.detach().new_zeros((max_rows, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor.detach()
    gathered = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat([chunk[:n] for chunk, n in zip(gathered, rows)], dim=0)


def all_gather_objects(obj: Any) -> list[Any]:
    """Picklable object from every rank, in rank order."""
    if not is_dist():
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """`obj` as held by rank `src`, on every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare module under DistributedDataParallel and/or torch.compile, whose state_dict keys carry no prefix."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # what torch.compile returns
            model = model._orig_mod
        else:
            return model
