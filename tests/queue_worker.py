"""Run under torchrun by tests/test_ssl.py: every rank enqueues its own keys; each writes the queue it ends with."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from models.sce import SCEModel  # noqa: E402
from models.registry import build_spatial  # noqa: E402
from utils import dist  # noqa: E402

info = dist.init_distributed(device="cpu")
model = SCEModel(build_spatial("vit_micro", img_size=32), hidden=16, dim=4, queue_size=10, seed=0)
for step in range(2):
    # rank r, step s: 3 keys whose first coordinate says (rank, step, index)
    keys = torch.zeros(3, 4)
    keys[:, 0] = torch.tensor([100 * info.rank + 10 * step + i for i in range(3)], dtype=torch.float32)
    model.queue.enqueue(keys)
out = Path(sys.argv[1]) / f"rank{info.rank}.json"
out.write_text(json.dumps({"queue": model.queue.keys[:, 0].tolist(), "pointer": int(model.queue.pointer)}))
dist.cleanup()
