"""A spotting model ready for inference: from a checkpoint of this project or a released COMEDIAN file (converted in
memory, models/eztorch.py), or untrained from a config; and the conversion of a released file into a checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from configs.inference import inference_config
from configs.schema import SpottingConfig
from data.catalog import Dataset, described_dataset, load_dataset
from models.loading import SpottingWeights, load_spotting_weights, read_spotting_weights
from models.registry import build_spotting
from models.spotting import SpottingModel
from utils.checkpoint import checkpoint_dict, save_checkpoint
from utils.config import config_to_dict
from utils.errors import InvalidInputError
from utils.rates import Rates


def build_inference_model(checkpoint: Path | None, config: str | None, overrides: list[str],
                          weights: SpottingWeights | None = None
                          ) -> tuple[SpottingConfig, dict[str, str], Dataset, SpottingModel]:
    """(config, where each of its values came from, the model's dataset, SpottingModel on CPU in eval mode) from a
    checkpoint or, without one, an untrained model from --config (configs/inference.py: the layers). The dataset is
    the one the checkpoint was trained on (its stored description), else data.dataset's. weights: what
    read_spotting_weights already returned for `checkpoint`."""
    weights = weights or (read_spotting_weights(checkpoint) if checkpoint is not None else None)
    cfg, sources = inference_config(checkpoint, weights and weights.config, weights and weights.preset, config,
                                    overrides)
    dataset = described_dataset(weights.dataset) if weights and weights.dataset else load_dataset(cfg.data.dataset)
    torch.manual_seed(cfg.run.seed)
    model = build_spotting(cfg.model, len(dataset.columns), Rates.of(cfg.data.fps))
    if weights is not None:
        load_spotting_weights(model, weights.state, weights.source)
    return cfg, sources, dataset, model.eval()


def import_released(path: Path, out: Path) -> tuple[str, str]:
    """A released eztorch COMEDIAN file -> a stage-3 checkpoint of this project at `out`, loadable by every command
    (every key and shape checked; the stored config is the paper's, run.output_dir beside `out`). Returns the
    conversion's report and the preset."""
    weights = read_spotting_weights(path)  # converted in memory when it is a released file
    if weights.config is not None:
        raise InvalidInputError(f"{path}: no trunk.transformer.* keys: not a released COMEDIAN (eztorch) file")
    cfg, _, dataset, model = build_inference_model(path, None, [f"run.output_dir={out.parent}"], weights)
    save_checkpoint(out, checkpoint_dict(model.state_dict(), config_to_dict(cfg), "spotting",
                                         {"imported_from": str(path), "dataset": dataset.describe()}))
    return weights.source, weights.preset
