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
    (out_dir / f"rank{info.rank}.json").write_text(json.dumps(result))
    dist.cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
