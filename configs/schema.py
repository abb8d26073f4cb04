"""Every key of every stage: its type, its range and, for engineering knobs, its default. One schema per stage.

The training recipe (optimisation, schedules, batches, epochs, losses, augmentations, sampling, evaluation) has one
home, the paper YAMLs beside this file: those keys have no default here (`required()`), so a config that does not set
them, directly or through its `base:`, stops at load with their names. What has a default is what the paper does not
fix (workers, logging, checkpoint frequency, devices) and the model sections' architecture, the released checkpoints'
(needed to rebuild a model from a released file). Each stage's schema holds only the sections and keys that stage
reads: a key of another stage is an unknown key. docs/METHOD.md gives every value with its official source.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Literal

from configs import architectures
from configs.architectures import SPATIAL, VIDEO, unknown_model
from utils.config import FRACTION, POSITIVE, PROBABILITY, REQUIRED, bounded, ordered_pair, required

UNIT_INTERVAL = {"low": 0.0, "high": 1.0, "low_open": True}  # (0, 1]


def section(kind: type):
    return dataclasses.field(default_factory=kind)


# ----------------------------------------------------------------------------------------------------------------------
# Run, optimisation: shared by the three stages
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RunConfig:
    """Where a run writes, how long it lasts and how it is checkpointed."""

    output_dir: str = required(nonempty=True)
    epochs: int = bounded(REQUIRED, low=1)
    global_batch_size: int = bounded(REQUIRED, low=1)  # summed over all ranks and micro-steps of one optimizer step
    # micro-batches per optimizer step (gradients summed, DDP's all-reduce on the last only): the global batch is
    # per-rank micro-batch x ranks x accumulate_steps, for when the paper's batch does not fit in memory
    accumulate_steps: int = bounded(1, low=1)
    seed: int = bounded(REQUIRED, low=0)  # rank r uses seed + r
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU; the paper: fp16
    num_workers: int = bounded(4, low=0)  # data loading processes per rank
    save_every_epochs: int = bounded(10, low=1)  # a checkpoint every N epochs, plus one at the end
    save_every_steps: int = bounded(0, low=0)  # additionally every N steps (0: off); protects long epochs
    snapshot_epochs: list[int] = bounded([], low=1)  # also keep checkpoint_epoch{N}.pth
    log_every_steps: int = bounded(20, low=1)
    resume: bool = True  # continue from output_dir/checkpoint_last.pth when it exists
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: the rank's GPU when there is one
    compile: bool = False  # torch.compile the model (GPU runs; the first steps pay the compilation)
    max_steps_per_epoch: int = bounded(0, low=0)  # cap the steps of every epoch (0: the whole epoch); smoke tests
    # keys whose change a resume may take (recorded in the run's history.jsonl); any other change of a key that
    # shapes the run stops a resume with the keys listed (utils/run_folder.py)
    allow_changes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class OptimConfig:
    """AdamW with a linearly scaled LR and a per-step warmup + cosine schedule."""

    lr: float = bounded(REQUIRED, **POSITIVE)  # base LR for a global batch of 256; the peak is lr x global_batch / 256
    min_lr: float = bounded(REQUIRED, low=0.0)  # base LR at the end of the cosine, scaled like lr
    warmup_start_lr: float = bounded(REQUIRED, low=0.0)  # base LR at step 0 of the warmup, scaled like lr
    warmup_epochs: float = bounded(REQUIRED, low=0.0)  # linear warmup length; fractional epochs allowed
    weight_decay: float = bounded(REQUIRED, low=0.0)  # on weights only: never on norms, biases, embeddings, tokens
    weight_decay_end: float | None = bounded(None, low=0.0)  # a cosine from weight_decay to this; None: constant
    betas: tuple[float, float] = bounded((0.9, 0.999), **FRACTION)  # AdamW's own defaults, as the official runs
    eps: float = bounded(1e-8, **POSITIVE)
    clip_grad: float = bounded(REQUIRED, low=0.0)  # max global gradient norm; 0 disables clipping


# ----------------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class FramesConfig:
    """Where the SoccerNet data is and how frames are read (stage 1 reads only this)."""

    # a built-in dataset (soccernet_v2, soccernet_ball_2023, soccernet_ball_2024, soccernet_ball_2025) or a manifest
    # file (.json) of one's own: data/catalog.py, docs/DATASETS.md
    dataset: str = bounded("soccernet_v2", check=lambda name: bool(name.strip()), expected="a dataset name or a "
                                                                                            "manifest file")
    root: str = required()  # the dataset's root: league/season/game/ with videos, labels files, feature banks
    source: Literal["video", "store", "frames"] = "video"  # original videos, the frame store, or JPEG folders
    store: str | None = None  # frame store written by python -m data.prepare (data.source=store)
    frames_root: str | None = None  # %08d.jpg folders per half (data.source=frames)
    resolution: Literal["224p", "720p"] = "224p"  # which videos data.source=video decodes
    # frames per second read from every video, exact (utils/rates.py): 2 as SoccerNet-v2's official extraction (a
    # token is 1 s); 12.5 for Ball Action Spotting (its 25 fps, every second frame: a token is 0.16 s)
    fps: float = bounded(2.0, **POSITIVE, check=math.isfinite, expected="a finite rate")
    # official split name, a games file (one league/season/game per line) or, for a manifest dataset, a manifest
    train_split: str = required()


@dataclasses.dataclass
class SSLDataConfig(FramesConfig):
    # data.source=frames on a GPU: loader workers send the JPEG files and the GPU decodes each batch in one call
    # (nvJPEG) and crops the views (data/jpeg_batches.py); false, or a CPU: decoded and cropped in the workers
    jpeg_on_device: bool = True


@dataclasses.dataclass
class BankConfig:
    name: str = required()  # per-half reduced bank files written by python -m data.features
    fps: float = bounded(REQUIRED, **POSITIVE)  # rows per second (Baidu: 1; 2 fps banks are sub-sampled)


@dataclasses.dataclass
class DistillDataConfig(FramesConfig):
    windows_per_half: int = bounded(REQUIRED, low=1)  # jittered 64 s windows per half and epoch
    bank: BankConfig = section(BankConfig)
    # a frame store at the model's input size sends windows as YUV 4:2:0 planes, converted to RGB on the training
    # device, the same frames (data/colour.py); false converts in the loader workers
    colour_on_device: bool = True


@dataclasses.dataclass
class SpottingDataConfig(FramesConfig):
    valid_split: str = required()  # the split validation scores (checkpoint_best.pth)
    test_split: str = required()  # the split `evaluate.py test` scores when no --split is given
    windows_per_half: int = bounded(REQUIRED, low=1)  # training windows per half and epoch
    # the share of them placed around an action of the half (data/samplers.py: stage3_windows); 0: the paper's
    # uniform windows; Ball Action Spotting recipes: 0.5, as lRomul's sampler
    event_share: float = bounded(0.0, **PROBABILITY)
    label_radius: float = bounded(REQUIRED, low=0.0)  # a frame is positive within this many seconds of an action
    # a frame store at the model's input size sends windows as YUV 4:2:0 planes, converted to RGB on the training
    # device, the same frames (data/colour.py); false converts in the loader workers
    colour_on_device: bool = True


# ----------------------------------------------------------------------------------------------------------------------
# Models: the released checkpoints' architecture by default
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SpatialModelConfig:
    """Stage 1: the spatial trunk and its SCE heads."""

    name: str = bounded("vit_tiny", check=lambda name: unknown_model(name, SPATIAL))
    img_size: int = bounded(architectures.IMG_SIZE, low=1)
    drop_path: float = bounded(0.1, **FRACTION)  # stochastic depth, rising linearly over the blocks
    projector_hidden: int = bounded(REQUIRED, low=1)  # width of the projector and predictor MLPs
    grad_checkpointing: bool = False  # recompute activations in backward: less memory, about 30% more compute


@dataclasses.dataclass
class VideoModelConfig:
    """Stages 2 and 3: the spatio-temporal trunk."""

    name: str = bounded("vivit_tiny", check=lambda name: unknown_model(name, VIDEO))
    img_size: int = bounded(architectures.IMG_SIZE, low=1)
    # seconds per window, whole tokens at data.fps: the time embedding's length is window_seconds x data.fps / 2
    # tokens (64 s = 64 tokens at 2 fps; 10.24 s = 64 tokens at 12.5 fps)
    window_seconds: float = bounded(architectures.WINDOW_TOKENS, **POSITIVE, check=math.isfinite,
                                    expected="a finite duration")
    temporal_depth: int = bounded(architectures.TEMPORAL_DEPTH, low=1)
    drop_path: float = bounded(0.1, **FRACTION)  # spatial stochastic depth, rising linearly over the blocks
    temporal_drop_path: float = bounded(0.1, **FRACTION)
    mask_ratio: float = bounded(0.25, **FRACTION)  # share of 1-second clips masked in training
    grad_checkpointing: bool = False


@dataclasses.dataclass
class DistillModelConfig(VideoModelConfig):
    init_checkpoint: str = ""  # stage-1 checkpoint ('' = random initialisation, the no-pretraining ablation)
    projector_hidden: int = bounded(REQUIRED, low=1)


@dataclasses.dataclass
class SpottingModelConfig(VideoModelConfig):
    init_checkpoint: str = ""  # stage 2 (phase a), stage 3a (phase b), stage 1 or '' (ablations)
    freeze_trunk: bool = False  # phase a: train the head alone, the trunk frozen and in eval mode
    # > 0: start the head at this probability per class (0: the official zero bias; the quick start only)
    head_bias_prior: float = bounded(0.0, **FRACTION)
    # token: a row of scores per token, the paper's; frame: a row per frame (2 per token), trained on frame targets,
    # for actions closer than a token (Ball Action Spotting at 12.5 fps): models/spotting.py
    head: Literal["token", "frame"] = "token"


# ----------------------------------------------------------------------------------------------------------------------
# Augmentations: one spelling in every stage (`view`, stage 1's two views `view1` and `view2`)
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ViewConfig:
    """Photometric augmentations of one view, drawn per clip or window (0 disables an augmentation)."""

    jitter_p: float = bounded(REQUIRED, **PROBABILITY)
    brightness: float = bounded(REQUIRED, low=0.0)
    contrast: float = bounded(REQUIRED, low=0.0)
    saturation: float = bounded(REQUIRED, low=0.0)
    hue: float = bounded(REQUIRED, low=0.0, high=0.5)
    grayscale_p: float = bounded(REQUIRED, **PROBABILITY)
    blur_p: float = bounded(REQUIRED, **PROBABILITY)
    blur_kernel: int = bounded(REQUIRED, low=1, check=lambda kernel: kernel % 2 == 1, expected="an odd kernel size")
    blur_sigma: tuple[float, float] = bounded(REQUIRED, **POSITIVE, check=ordered_pair,
                                              expected="(low, high), low <= high")
    solarize_p: float = bounded(REQUIRED, **PROBABILITY)
    solarize_threshold: float = bounded(REQUIRED, **PROBABILITY)
    flip_p: float = bounded(REQUIRED, **PROBABILITY)


@dataclasses.dataclass
class SSLAugmentConfig:
    crop_size: int = bounded(REQUIRED, low=1)
    crop_scale: tuple[float, float] = bounded(REQUIRED, **UNIT_INTERVAL, check=ordered_pair,
                                              expected="(low, high) with 0 < low <= high <= 1")
    # on the original frame's pixels (398/224 x [0.75, 1.245] in the paper)
    crop_ratio: tuple[float, float] = bounded(REQUIRED, **POSITIVE, check=ordered_pair,
                                              expected="(low, high) with 0 < low <= high")
    view1: ViewConfig = section(ViewConfig)
    view2: ViewConfig = section(ViewConfig)


@dataclasses.dataclass
class DistillAugmentConfig:
    view: ViewConfig = section(ViewConfig)  # one view per window


@dataclasses.dataclass
class SpottingAugmentConfig:
    view: ViewConfig = section(ViewConfig)
    mixup_alpha: float = bounded(REQUIRED, low=0.0)  # lambda ~ Beta(alpha, alpha) per sample; 0 disables mixup


# ----------------------------------------------------------------------------------------------------------------------
# Losses and evaluation
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SCEConfig:
    coeff: float = bounded(REQUIRED, **PROBABILITY)  # lambda: 1 makes SCE an InfoNCE with a queue
    temp: float = bounded(REQUIRED, **POSITIVE)
    temp_m: float = bounded(REQUIRED, **POSITIVE)  # plays no role when coeff = 1
    queue_size: int = bounded(REQUIRED, low=1)
    dim: int = bounded(REQUIRED, low=1)  # the projector's output width
    momentum_start: float = bounded(REQUIRED, **PROBABILITY)  # teacher EMA, a cosine to momentum_end over the run
    momentum_end: float = bounded(REQUIRED, **PROBABILITY)


@dataclasses.dataclass
class TokenSCEConfig:
    coeff: float = bounded(REQUIRED, **PROBABILITY)  # lambda
    temp: float = bounded(REQUIRED, **POSITIVE)
    temp_m: float = bounded(REQUIRED, **POSITIVE)
    queue_size: int = bounded(REQUIRED, low=1)
    dim: int = bounded(REQUIRED, low=1)  # the bank's reduced width


@dataclasses.dataclass
class EvalConfig:
    """Validation during stage 3, and every inference (`evaluate.py predict/test/spot`)."""

    every_epochs: int = bounded(REQUIRED, low=0)  # validate every N epochs and after the last (0: after the last)
    # scored at validation, the first selecting checkpoint_best.pth; empty: the dataset's own (soccernet_v2: tight and
    # loose; the Ball Action Spotting datasets: at1)
    metrics: list[Literal["tight", "loose", "at1", "at2", "at3", "at4", "at5"]] = bounded([])
    # seconds between window starts, whole tokens at data.fps (utils/rates.py)
    window_stride_seconds: float = bounded(REQUIRED, **POSITIVE, check=math.isfinite,
                                           expected="a finite duration")
    # dropped at both ends of each window, except near the half's edges
    trim_seconds: float = bounded(REQUIRED, low=0.0, check=math.isfinite, expected="a finite duration")
    # the last trim_seconds of every half: "official" scores them 0, as the official code does (a quirk its paper
    # numbers include: evaluation/inference.py, kept_tokens); "scored" keeps the end-aligned window's last seconds
    half_end: Literal["official", "scored"] = required()
    # soft: the paper's linear decay; tdeed: T-DEED's quadratic decay, teams of a class as one series (evaluation/
    # postprocess.py); hard: local maxima only; none
    nms: Literal["soft", "tdeed", "hard", "none"] = required()
    # in slots of 1 / data.fps seconds (20 = +-5 s at 2 fps); a list gives one window per class, in label order
    nms_window: int | list[int] = bounded(REQUIRED, low=1)
    nms_threshold: float = bounded(REQUIRED, **FRACTION)  # [0, 1): scores are probabilities, 1 would keep nothing
    nms_min_weight: float = bounded(0.0, **PROBABILITY)  # soft NMS: the weight at distance 0 (0: the official decay)
    batch_size: int = bounded(4, low=1)  # windows per inference forward pass


@dataclasses.dataclass
class SpotConfig:
    """`evaluate.py spot`'s options (its flags, checked like any config): what a person gets to look at, and how
    the video is read."""

    min_confidence: float = bounded(0.5, **PROBABILITY)  # the list, the timeline's dots and the page slider's start
    copy_video: bool = False  # a copy of the video beside the page instead of a relative path to it
    clips: int | None = bounded(None, low=1)  # the N most confident actions as clips ...
    clips_min_confidence: float | None = bounded(None, **PROBABILITY)  # ... or those at or above this (both: N best)
    clip_before: float = bounded(5.0, low=0.0, check=math.isfinite, expected="a finite number of seconds")
    clip_after: float = bounded(5.0, low=0.0, check=math.isfinite, expected="a finite number of seconds")
    decode_workers: int = bounded(min(8, os.cpu_count() or 1), low=1)  # processes decoding ahead of the model

    @property
    def wants_clips(self) -> bool:
        return self.clips is not None or self.clips_min_confidence is not None


# ----------------------------------------------------------------------------------------------------------------------
# The stages
# ----------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SSLConfig:
    """train_ssl.py: SCE pretraining of the spatial trunk on 1-second clips."""

    run: RunConfig = section(RunConfig)
    data: SSLDataConfig = section(SSLDataConfig)
    model: SpatialModelConfig = section(SpatialModelConfig)
    optim: OptimConfig = section(OptimConfig)
    augment: SSLAugmentConfig = section(SSLAugmentConfig)
    loss: SCEConfig = section(SCEConfig)


@dataclasses.dataclass
class DistillConfig:
    """train_distill.py: token distillation of the spatio-temporal trunk from a feature bank."""

    run: RunConfig = section(RunConfig)
    data: DistillDataConfig = section(DistillDataConfig)
    model: DistillModelConfig = section(DistillModelConfig)
    optim: OptimConfig = section(OptimConfig)
    augment: DistillAugmentConfig = section(DistillAugmentConfig)
    loss: TokenSCEConfig = section(TokenSCEConfig)


@dataclasses.dataclass
class SpottingConfig:
    """train_spotting.py and evaluate.py: per-second multi-label spotting."""

    run: RunConfig = section(RunConfig)
    data: SpottingDataConfig = section(SpottingDataConfig)
    model: SpottingModelConfig = section(SpottingModelConfig)
    optim: OptimConfig = section(OptimConfig)
    augment: SpottingAugmentConfig = section(SpottingAugmentConfig)
    eval: EvalConfig = section(EvalConfig)


@dataclasses.dataclass
class EnsembleConfig:
    """configs/ensembles/*.yaml for `evaluate.py ensemble --config`: the runs' raw scores averaged, then NMS."""

    raw: list[str] = bounded(REQUIRED, check=lambda folders: len(folders) >= 2,
                             expected="at least two raw-score folders")
    out_raw: str = required(nonempty=True)  # where the averaged raw scores go
    out: str = required(nonempty=True)  # the predictions folder to write
