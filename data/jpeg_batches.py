"""Stage 1 from JPEG folders with the decoding on the GPU: loader workers send the files, the GPU decodes them.

Stage 1 reads two 398x224 JPEG frames per 1-second clip and crops two views out of them. Decoding is most of a
loader worker's time (benchmarks/bench_data.py), and at paper scale it bounds stage 1. With `data.jpeg_on_device`
on a GPU, a worker only reads the files and draws the two crops (`ClipPairDataset(encoded=True)`); the main process
decodes the whole batch in one call to torchvision's `decode_jpeg(device="cuda")` (nvJPEG's batched decoder) and
crops and resizes the views there. On the CPU the same steps give exactly the frames the workers give
(tests/test_data_layer.py); on a GPU, nvJPEG's and CUDA's arithmetic differ from libjpeg-turbo's by a level or so.
"""

from __future__ import annotations

import torch

from data.augment import apply_crop
from data.sources import decode_jpegs

ENCODED_KEY = "jpeg"  # a batch of encoded clips: {"jpeg": [files], "paths": [names], "crops": (B, 2, 4)}


def collate_encoded(items: list[dict]) -> dict:
    """The loader's collate for encoded clips: the files of every clip in order, and their crops stacked."""
    return {ENCODED_KEY: [data for item in items for data in item[ENCODED_KEY]],
            "paths": [path for item in items for path in item["paths"]],
            "crops": torch.stack([item["crops"] for item in items])}  # (B, 2 views, 4)


def clip_views(batch, device: torch.device, size: int) -> torch.Tensor:
    """(B, 2 views, T, 3, S, S) uint8 on `device`: a batch of decoded clips as it is, or encoded clips decoded there in
    one call and cropped."""
    if not isinstance(batch, dict):
        return batch.to(device, non_blocking=True)
    crops = batch["crops"].tolist()  # [[top, left, height, width] x 2 views] per clip
    frames_per_clip = len(batch[ENCODED_KEY]) // len(crops)
    images = decode_jpegs(batch[ENCODED_KEY], batch["paths"], device)  # (3, H, W) each
    clips = []
    for index, views in enumerate(crops):
        frames = torch.stack(images[index * frames_per_clip:(index + 1) * frames_per_clip])  # (T, 3, H, W)
        clips.append(torch.stack([apply_crop(frames, crop, size) for crop in views]))  # (2, T, 3, S, S)
    return torch.stack(clips)
