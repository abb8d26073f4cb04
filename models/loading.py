"""Initialisation across stages, each load asserting the exact set of missing and unexpected keys (as MAE does).

- stage 1 -> stage 2: the online spatial trunk of a stage-1 checkpoint (`trunk.*`) becomes the video trunk's spatial
  part; for ViViT, temporal block i is a copy of spatial block i for i < temporal_depth and the temporal final norm a
  copy of the spatial one (the official `copy_strategy: repeat`); ViSwin's temporal transformer stays random (its width
  differs). Projector, predictor, momentum branch and queue are left behind.
- stage 2 -> stage 3a: the video trunk of a stage-2 checkpoint (`trunk.*`) goes into the spotting model; the head stays
  random, the distillation projector is left behind.
- stage 3a -> stage 3b: the whole spotting model, strictly.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import torch
from torch import nn

from configs import architectures
from configs.architectures import SPATIAL, ViTShape
from models.eztorch import OPTIONAL_KEYS, convert_state, is_eztorch_state
from models.video import VideoTransformer
from utils.errors import UserError
from utils.checkpoint import check_checkpoint, load_checkpoint, read_weights, stage_of


class CheckpointMismatch(UserError, ValueError):
    """A checkpoint that does not fit the model it is loaded into; the message lists the offending keys."""


def sub_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix` (a submodule's state), the prefix taken off."""
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def load_exact(module: nn.Module, state: dict[str, torch.Tensor], expected_missing: set[str], source: str) -> None:
    """load_state_dict, then fail unless the missing keys are exactly `expected_missing` and none is unexpected.

    Shapes are checked too; every problem is listed in one readable error.
    """
    own = module.state_dict()
    wrong_shapes = [f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}"
                    for key, value in state.items() if key in own and own[key].shape != value.shape]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    problems = []
    if wrong_shapes:
        problems.append("shape mismatches:\n    " + "\n    ".join(wrong_shapes))
    if set(missing) != expected_missing:
        extra = sorted(set(missing) - expected_missing)
        filled = sorted(expected_missing - set(missing))
        if extra:
            problems.append(f"{len(extra)} keys missing from the checkpoint:\n    " + "\n    ".join(extra[:40]))
        if filled:
            problems.append("keys expected to stay untouched were in the checkpoint:\n    " + "\n    ".join(filled))
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys:\n    " + "\n    ".join(unexpected[:40]))
    if problems:
        raise CheckpointMismatch(f"{source} does not fit {type(module).__name__}:\n  " + "\n  ".join(problems))
    module.load_state_dict(state, strict=False)


def _stage_state(checkpoint: dict, path: str | os.PathLike, expected_stage: str) -> tuple[dict, dict]:
    """(model state, config) of a checkpoint of this project, if it comes from `expected_stage`."""
    stage = stage_of(checkpoint)
    if stage != expected_stage:
        raise CheckpointMismatch(f"{path} is a checkpoint of stage {stage!r}, expected a {expected_stage!r} "
                                 f"checkpoint here")
    return checkpoint["model"], checkpoint["config"]


def _trained_model(config: dict) -> str | None:
    return config.get("model", {}).get("name")


def _load_stage1(video: VideoTransformer, checkpoint: dict, path: str | os.PathLike, video_preset: str) -> None:
    state, config = _stage_state(checkpoint, path, "ssl")
    wanted = architectures.spatial_of(video_preset)
    if _trained_model(config) != wanted:
        raise CheckpointMismatch(f"{path} holds a stage-1 {_trained_model(config)!r} trunk, but {video_preset} needs "
                                 f"{wanted!r}")
    spatial = sub_state(state, "trunk.")
    full = {f"spatial.{key}": value for key, value in spatial.items()}
    expected_missing = {f"temporal.{key}" for key in video.temporal.state_dict()}
    if isinstance(SPATIAL[wanted], ViTShape):  # the official copy_strategy: repeat
        depth = len(video.temporal.blocks)
        if depth > len(video.spatial.blocks):
            raise CheckpointMismatch(f"cannot copy {depth} temporal blocks from {len(video.spatial.blocks)} spatial")
        for key, value in spatial.items():
            parts = key.split(".")
            if parts[0] == "blocks" and int(parts[1]) < depth or parts[0] == "norm":
                full[f"temporal.{key}"] = value.clone()
        expected_missing = {"temporal.time_embed", "temporal.mask_token"}
    load_exact(video, full, expected_missing, f"stage-1 checkpoint {path}")


def load_stage1_into_video(video: VideoTransformer, path: str | os.PathLike, video_preset: str) -> None:
    """Initialise a ViViT / ViSwin from a stage-1 (SSL) checkpoint: ViViT's temporal blocks are copies of its first
    spatial blocks, ViSwin's temporal transformer (768 wide, unlike any Swin block) stays random."""
    _load_stage1(video, load_checkpoint(path), path, video_preset)


def init_spotting_model(model: nn.Module, path: str | os.PathLike, video_preset: str) -> None:
    """Initialise a spotting model from whichever stage `path` comes from (the file is read once): stage 2
    (phase a), stage 3 (phase a into phase b; a stage 3 of another dataset or head, such as SoccerNet-v2's for Ball
    Action Spotting, gives its trunk only), stage 1 (the stage-1-only ablation), or nothing ('' : the no-pretraining
    ablation)."""
    logger = logging.getLogger("comedian")
    if not path:
        logger.warning("model.init_checkpoint is empty: training from random weights (the no-pretraining ablation)")
        return
    checkpoint = load_checkpoint(path)
    stage = stage_of(checkpoint)
    if stage == "ssl":
        _load_stage1(model.trunk, checkpoint, path, video_preset)
    elif stage in ("distill", "spotting"):  # phase a from stage 2's trunk (the head stays random), phase b from a
        state, config = _stage_state(checkpoint, path, stage)
        holds = "a stage-2 trunk" if stage == "distill" else "a spotting model"
        if _trained_model(config) != video_preset:
            raise CheckpointMismatch(f"{path} holds {holds} of {_trained_model(config)!r}, but this run builds "
                                     f"{video_preset!r}")
        head = {"head.weight", "head.bias"}
        if stage == "distill":  # the distillation projector is left behind
            state = {f"trunk.{key}": value for key, value in sub_state(state, "trunk.").items()}
        elif state["head.weight"].shape != model.head.weight.shape:  # another dataset's columns, or another head
            logger.info(f"{path}: its head gives {state['head.weight'].shape[0]} outputs per token, this model's "
                        f"{model.head.weight.shape[0]}: the trunk is loaded and the head starts afresh")
            state = {key: value for key, value in state.items() if key not in head}
        load_exact(model, state, head if "head.weight" not in state else set(), f"{holds} ({path})")
    else:
        raise CheckpointMismatch(f"{path}: a checkpoint of stage {stage!r}; expected a stage 1, 2 or 3 checkpoint")
    logger.info(f"initialised from the {stage} checkpoint {path}")


@dataclasses.dataclass(frozen=True)
class SpottingWeights:
    """A stage-3 model read from a file: its state in SpottingModel names, its video preset, the config it was
    trained with (None for a released file), the description of its dataset (None: SoccerNet-v2's, a released file
    or a checkpoint from before datasets were described) and what the file is."""

    state: dict[str, torch.Tensor]
    preset: str
    config: dict | None
    dataset: dict | None
    source: str


def read_spotting_weights(path: str | os.PathLike) -> SpottingWeights:
    """The stage-3 model of a checkpoint of this project or of a released eztorch COMEDIAN file, converted in memory
    (models/eztorch.py)."""
    raw = read_weights(path)
    if is_eztorch_state(raw):
        conversion = convert_state(raw)
        return SpottingWeights(conversion.state, conversion.preset, None, None, conversion.report())
    checkpoint = check_checkpoint(raw, path)
    state, config = _stage_state(checkpoint, path, "spotting")
    return SpottingWeights(state, _trained_model(config), config, checkpoint.get("extra", {}).get("dataset"),
                           f"stage-3 checkpoint {path}")


def load_spotting_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load of a spotting state; only the temporal mask token (a training-time parameter that the released
    checkpoints may lack) may be missing."""
    load_exact(model, state, OPTIONAL_KEYS - set(state), source)
