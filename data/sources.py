"""Where frames come from: one interface, three layouts, chosen by the config switch `data.source`.

- `video`: the dataset's own videos (data/catalog.py: `<root>/<game>/{1,2}_<resolution>.mkv` for SoccerNet-v2,
  `<root>/<game>/<resolution>.mp4` for Ball Action Spotting, a manifest's files), decoded at the run's frame rate
  (data.fps, utils/rates.py), frame k being the source frame FFmpeg's fps filter picks for it (`data/video.py`);
- `store`: the frame store written by `python -m data.prepare`: `<store>/<game>/<half>.mkv`, the same frames as
  H.264 with a keyframe every 8 frames, resized once (224x224 for stages 2 and 3) the official way, plus
  `<half>.json` (frame count, frame rate, sizes, source);
- `frames`: JPEG folders, `<frames_root>/<game>/<half>/%08d.jpg` numbered from 1: the layout the official code
  extracts with `ffmpeg -vf fps=2 -q:v 1`, or what `python -m data.prepare --format jpeg` writes with PyAV.

A store or a JPEG folder holds the frame rate it was prepared at (its JSON); reading it at another rate is an error
naming both. Frame rates are exact fractions (12.5 is 25/2, 29.97 is 30000/1001).

Every source returns (T, H, W, 3) uint8 RGB at the size it holds: the videos and official JPEG folders at their
native 398x224, the store (and JPEG folders written at a size) at that size. Resizing is the datasets' job, with
torchvision's antialiased bilinear resize of the full RGB frame, as the official code resizes. `pixel_aspect` tells a
geometric transform how wide a returned pixel is relative to the original video's, so that stage 1's aspect-ratio
range means the same thing on any source.
"""

from __future__ import annotations

import json
import os
import warnings
from functools import lru_cache
from pathlib import Path
from fractions import Fraction
from typing import Protocol

import av
import numpy as np
import torch
import torchvision

from data.catalog import Dataset
from data.video import VideoError, frame_to_rgb, probe_video, read_frames
from utils.rates import DEFAULT_FPS, exact_fps
from utils.errors import InvalidInputError, MissingFileError

# torchvision 0.29 deprecates its JPEG codec in favour of TorchCodec, which is not part of this project's stack (and
# does not load against CPU builds of torch); the codec still works and is the fastest one available here.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)


class FrameSource(Protocol):
    fps: Fraction

    def num_frames(self, game: str, half: int) -> int: ...

    def read(self, game: str, half: int, first: int, count: int) -> torch.Tensor: ...

    def pixel_aspect(self, game: str, half: int) -> float: ...


class _Videos:
    """Frames of one video file per half, decoded at `fps`; `path(game, half)` says which file."""

    fps: Fraction

    @lru_cache(maxsize=4096)
    def _info(self, game: str, half: int):
        return probe_video(self.path(game, half))

    def num_frames(self, game: str, half: int) -> int:
        return self._info(game, half).num_frames(self.fps)

    def read(self, game: str, half: int, first: int, count: int, pixels=frame_to_rgb) -> torch.Tensor:
        """(T, H, W, 3) uint8 RGB, or what `pixels` makes of each frame (data/video.py: read_frames)."""
        frames, _ = read_frames(self.path(game, half), self.fps, first, count, self._info(game, half), pixels)
        if frames.shape[0] == 0:
            raise VideoError(f"{self.path(game, half)}: no frame at index {first} (past the end of the half)")
        return frames


class VideoSource(_Videos):
    """The dataset's videos, decoded at `fps`."""

    def __init__(self, dataset: Dataset, root: str | os.PathLike, resolution: str = "224p",
                 fps: Fraction = DEFAULT_FPS):
        self.dataset, self.root, self.resolution, self.fps = dataset, Path(root), resolution, Fraction(fps)

    def path(self, game: str, half: int) -> Path:
        return self.dataset.video_path(self.root, game, half, self.resolution)

    @lru_cache(maxsize=4096)
    def _info(self, game: str, half: int):
        info = probe_video(self.path(game, half))
        self.dataset.check_rate(game, info.rate)
        return info

    def pixel_aspect(self, game: str, half: int) -> float:
        return 1.0


class StoreSource(_Videos):
    """The frame store of `data.prepare`, read at the rate it was prepared at, which must be `fps`."""

    def __init__(self, root: str | os.PathLike, fps: Fraction = DEFAULT_FPS):
        self.root, self.fps = Path(root), Fraction(fps)

    def path(self, game: str, half: int) -> Path:
        return self.root / game / f"{half}.mkv"

    @lru_cache(maxsize=4096)
    def _meta(self, game: str, half: int) -> dict:
        return stored_meta(self.root / game / f"{half}.json", self.fps, "frame store entry")

    def num_frames(self, game: str, half: int) -> int:
        """The frames the entry's JSON records, which must be the frames its video really holds (a store copied in
        part, or a disk that filled up, keeps a JSON that promises more; a JSON that records fewer would shorten the
        half without a word)."""
        promised = int(self._meta(game, half)["num_frames"])
        held = super().num_frames(game, half)
        if held != promised:
            raise VideoError(f"{self.path(game, half)}: holds {held} frames but its JSON records {promised}; delete "
                             f"both and run python -m data.prepare again for this game")
        return promised

    def pixel_aspect(self, game: str, half: int) -> float:
        return _pixel_aspect(self._meta(game, half))

    def frame_size(self, game: str, half: int) -> tuple[int, int]:
        """(height, width) of the entry's frames."""
        meta = self._meta(game, half)
        return int(meta["height"]), int(meta["width"])

    def read_yuv420(self, game: str, half: int, first: int, count: int) -> torch.Tensor:
        """The frames `read` returns, as (T, 3H/2, W) uint8 YUV 4:2:0 planes, unconverted: the loader's half of moving
        the colour conversion to the batch (data/colour.py)."""
        path = self.path(game, half)

        def planes(frame: av.VideoFrame) -> np.ndarray:
            if frame.format.name != "yuv420p":
                raise VideoError(f"{path}: frames in {frame.format.name}, but a store written by python -m "
                                 f"data.prepare holds yuv420p; prepare this game again")
            return frame.to_ndarray(format="yuv420p")

        return self.read(game, half, first, count, planes)


def stored_meta(path: Path, fps: Fraction, what: str) -> dict:
    """The JSON `data.prepare` writes beside a store entry or a JPEG folder, checked: readable, and at `fps`."""
    if not path.is_file():
        raise MissingFileError(f"{what} missing: {path} (run python -m data.prepare for this game, or set "
                               f"data.source=video)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{path}: not valid JSON ({error}); delete it and run python -m data.prepare again "
                                f"for this game") from None
    if Fraction(str(meta.get("fps", DEFAULT_FPS))) != fps:
        raise InvalidInputError(f"{path}: prepared at {meta.get('fps')} fps, but this run reads {fps} fps "
                                f"(data.fps); prepare the data again with --fps {fps}, or set data.fps")
    return meta


class JpegFolderSource:
    """Frames already extracted as `%08d.jpg`, one folder per half. A folder written by `data.prepare --format jpeg`
    has a `<half>.json` beside it (its frame rate, the sizes of the source); official extractions (no JSON) are
    native-size, at the rate they were extracted at."""

    def __init__(self, root: str | os.PathLike, fps: Fraction = DEFAULT_FPS, start_number: int = 1):
        self.root, self.fps, self.start_number = Path(root), Fraction(fps), start_number
        self._sizes: dict[tuple[str, int], torch.Size] = {}  # (game, half) -> (3, H, W) of its frames, once checked

    def folder(self, game: str, half: int) -> Path:
        return self.root / game / str(half)

    @lru_cache(maxsize=4096)
    def num_frames(self, game: str, half: int) -> int:
        folder = self.folder(game, half)
        if not folder.is_dir():
            raise MissingFileError(f"frame folder not found: {folder}")
        meta_path = self.root / game / f"{half}.json"
        if meta_path.is_file():  # written by data.prepare: it must be at this run's rate
            stored_meta(meta_path, self.fps, "JPEG folder")
        names = sorted(name for name in os.listdir(folder) if name.endswith(".jpg"))
        expected = [f"{index:08d}.jpg" for index in range(self.start_number, self.start_number + len(names))]
        if names != expected:
            missing = sorted(set(expected) - set(names))[:5]
            raise InvalidInputError(f"{folder}: frames must be numbered {expected[0] if expected else '00000001.jpg'} "
                             f"onwards without gaps; e.g. missing {missing}")
        if names:  # the first and the last frame decode, at one size: checked before training, not at a late window
            first, last = (self._decode(folder / name) for name in (names[0], names[-1]))
            if first.shape != last.shape:
                raise VideoError(f"{folder / names[-1]}: {last.shape[2]}x{last.shape[1]} pixels, but "
                                 f"{names[0]} has {first.shape[2]}x{first.shape[1]}: a folder holds frames of one size")
            self._sizes[(game, half)] = first.shape
        return len(names)

    @staticmethod
    def _decode(path: Path) -> torch.Tensor:
        """(3, H, W) uint8 RGB of one JPEG file; an error naming it when it is empty or not a JPEG."""
        return decode_jpegs([read_jpeg_file(path)], [path])[0]

    def paths(self, game: str, half: int, first: int, count: int) -> list[Path]:
        """The files of frames first .. first + count - 1 (cut at the end of the half)."""
        folder = self.folder(game, half)
        count = min(count, self.num_frames(game, half) - first)
        if count <= 0:
            raise VideoError(f"{folder}: no frame {first} (the half has {self.num_frames(game, half)})")
        return [folder / f"{index + self.start_number:08d}.jpg" for index in range(first, first + count)]

    def frame_size(self, game: str, half: int) -> tuple[int, int]:
        """(height, width) of the folder's frames (its first frame's, which every frame must share)."""
        self.num_frames(game, half)  # decodes the first frame, once
        size = self._sizes[(game, half)]
        return int(size[1]), int(size[2])

    def read(self, game: str, half: int, first: int, count: int) -> torch.Tensor:
        paths = self.paths(game, half, first, count)
        images = decode_jpegs([read_jpeg_file(path) for path in paths], paths)
        size = self._sizes.get((game, half))
        for path, image in zip(paths, images):
            if size is not None and image.shape != size:
                raise VideoError(f"{path}: {image.shape[2]}x{image.shape[1]} pixels, but the folder's first frame has "
                                 f"{size[2]}x{size[1]}: a folder holds frames of one size")
        return torch.stack(images).permute(0, 2, 3, 1).contiguous()  # (T, 3, H, W) -> (T, H, W, 3)

    @lru_cache(maxsize=4096)
    def pixel_aspect(self, game: str, half: int) -> float:
        meta_path = self.root / game / f"{half}.json"
        return _pixel_aspect(stored_meta(meta_path, self.fps, "JPEG folder")) if meta_path.is_file() else 1.0


def read_jpeg_file(path: Path) -> torch.Tensor:
    """The bytes of a JPEG file as a 1-D uint8 tensor; an error naming it when it is empty."""
    try:
        return torchvision.io.read_file(str(path))
    except RuntimeError as error:  # torchvision refuses a 0-byte file
        raise VideoError(f"{path}: cannot decode JPEG ({str(error).strip().split(', ')[-1] or 'empty file'})") from None


def decode_jpegs(files: list[torch.Tensor], paths: list, device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """(3, H, W) uint8 RGB of each encoded file, in one call to torchvision's decoder (libjpeg-turbo on the CPU,
    nvJPEG's batched decoder on a GPU); an error naming the file that is empty or not a JPEG."""
    try:
        return torchvision.io.decode_jpeg(files, mode=torchvision.io.ImageReadMode.RGB, device=device)
    except RuntimeError:
        for path, data in zip(paths, files):  # which one: the batched call does not say
            try:
                torchvision.io.decode_jpeg(data, mode=torchvision.io.ImageReadMode.RGB)
            except RuntimeError as error:
                raise VideoError(f"{path}: cannot decode JPEG ({str(error).strip() or 'empty file'})") from None
        raise


def _pixel_aspect(meta: dict) -> float:
    """How many source pixels wide a stored pixel is, relative to its height (sizes of the entry's JSON)."""
    return (meta["source_width"] / meta["width"]) / (meta["source_height"] / meta["height"])


def build_source(data, dataset: Dataset) -> FrameSource:
    """The frame source a config's data section names (data.source = video | store | frames), at data.fps."""
    fps = exact_fps(data.fps)
    if data.source == "video":
        return VideoSource(dataset, data.root, data.resolution, fps)
    if data.source == "store":
        if not data.store:
            raise InvalidInputError("data.source=store needs data.store (the folder written by python -m data.prepare)")
        return StoreSource(data.store, fps)
    if data.source == "frames":
        if not data.frames_root:
            raise InvalidInputError("data.source=frames needs data.frames_root (folders of %08d.jpg per half)")
        return JpegFolderSource(data.frames_root, fps)
    raise InvalidInputError(f"unknown data.source {data.source!r}: expected video, store or frames")
