"""The stage-3 config an inference runs with (`evaluate.py predict / test / spot / postprocess / ensemble`), built in
layers from the paper's configs, a checkpoint's stored config and the command line; and the checks of what it points
at. Torch-free: reading a checkpoint is the caller's job (models/inference.py).
"""

from __future__ import annotations

from pathlib import Path

from configs.schema import EnsembleConfig, EvalConfig, SpotConfig, SpottingConfig
from utils.config import (COMMAND_LINE, ConfigError, build_config, config_to_dict, flatten, known_values,
                          load_config, load_yaml_chain, parse_overrides, schema_fields)
from utils.errors import InvalidInputError, MissingFileError
from utils.logs import get_logger

CONFIGS = Path(__file__).resolve().parent
# The settings the paper trained and evaluated each model family with (its phase-b config): the base of every
# inference config, so that a released file, which stores no config, is evaluated as the paper evaluated it.
PAPER_CONFIGS = {"vivit": CONFIGS / "spotting/vivit_tiny_phase_b.yaml",
                 "viswin": CONFIGS / "spotting/viswin_tiny_phase_b.yaml"}


def paper_config_file(preset: str) -> Path:
    return PAPER_CONFIGS["viswin" if preset.startswith("viswin") else "vivit"]


def inference_config(checkpoint: Path | None, stored: dict | None, preset: str | None, config: str | None,
                     overrides: list[str]) -> tuple[SpottingConfig, dict[str, str]]:
    """(stage-3 config, {key: where its value came from}) for inference, built in layers, last wins:

    1. the paper's config of the checkpoint's model family (a released file stores no config);
    2. --config when given, else the config stored in the checkpoint, of which only the keys this version knows
       are read (a key renamed since the checkpoint was written falls back to layer 1, with a warning);
    3. the model section of the checkpoint, which knows what it holds (a released file: its preset, whose
       defaults are the released architecture);
    4. the command line's dotted overrides.
    Without a checkpoint (an untrained model) the config is --config <- overrides."""
    if checkpoint is None:
        if not config:
            raise InvalidInputError("give --checkpoint, or --config with --random-init for an untrained model")
        values, sources = load_yaml_chain(config)
    else:
        values, sources = load_yaml_chain(paper_config_file(preset))
        known = schema_fields(SpottingConfig)
        if config:
            layer, layer_sources = load_yaml_chain(config)
        elif stored is not None:
            layer = flatten({name: section for name, section in stored.items() if name != "model"})
            unknown = sorted(key for key in layer if key not in known)
            if unknown:
                get_logger().warning(f"the config stored in {checkpoint} has keys this version does not read, "
                                     f"ignored: {unknown}; their sections take the paper's values")
            layer = {key: value for key, value in layer.items() if key in known}
            layer_sources = {key: f"the config stored in {checkpoint}, as its training run saw it" for key in layer}
        else:
            layer, layer_sources = {}, {}
        values.update(layer)
        sources.update(layer_sources)
        model = flatten({"model": stored["model"]}) if stored is not None else {"model.name": preset}
        values = {key: value for key, value in values.items() if not key.startswith("model.")}
        values.update({key: value for key, value in model.items() if key in known})
        sources.update({key: str(checkpoint) for key in model})
    parsed = parse_overrides(overrides)
    values.update(parsed)
    sources.update({key: COMMAND_LINE for key in parsed})
    return build_config(SpottingConfig, values, sources), sources


def check_data_paths(cfg: SpottingConfig, sources: dict[str, str]) -> None:
    """Every data folder the inference reads exists, or the error says where its path came from: a checkpoint stores
    the paths of its training run, and a relative one means nothing from another working directory."""
    if not cfg.data.root:
        raise InvalidInputError("data.root is not set: add data.root=/path/to/soccernet, or --config with a stage-3 "
                                "YAML")
    for key in ("root", "store", "frames_root"):
        value = getattr(cfg.data, key)
        if key != "root" and (value is None or cfg.data.source != {"store": "store", "frames_root": "frames"}[key]):
            continue
        if Path(value).is_dir():
            continue
        hint = (f"; a relative path is read from the working directory ({Path.cwd()})"
                if not Path(value).is_absolute() else "")
        raise MissingFileError(f"data.{key} {value!r} (from {sources.get(f'data.{key}', 'the defaults')}) is not a "
                               f"folder{hint}: give data.{key}=/path/to/it")


def flag_config(schema: type, flags: dict[str, object], base: dict | None = None, names: dict[str, str] | None = None):
    """A config of `schema` from command-line flags ({key: value}, None where a flag was not given; keys the schema
    does not have are someone else's), over `base` values: checked as any config, each error naming its flag (`names`:
    {key: flag} where the flag is not the key's own name)."""
    keys = schema_fields(schema)
    given = {key: value for key, value in flags.items() if value is not None and key in keys}
    sources = {key: f"{COMMAND_LINE} ({(names or {}).get(key, '--' + key.replace('_', '-'))})" for key in given}
    return build_config(schema, {**(base or {}), **given}, sources)


def nms_config(flags: dict[str, object], num_classes: int) -> EvalConfig:
    """The paper's eval section with the NMS flags that were given (--nms, --window, --threshold, --min-weight),
    checked like a config; --window takes one value, or one per class."""
    windows = flags.get("window")
    nms = {"nms": flags.get("nms"), "nms_threshold": flags.get("threshold"), "nms_min_weight": flags.get("min_weight"),
           "nms_window": windows[0] if windows and len(windows) == 1 else windows}
    if windows and len(windows) not in (1, num_classes):
        raise ConfigError(f"{COMMAND_LINE}: --window: {len(windows)} values; expected one, or one per class "
                          f"({num_classes})")
    paper = flatten(config_to_dict(load_config(SpottingConfig, PAPER_CONFIGS["vivit"]).eval))
    return flag_config(EvalConfig, nms, paper, {"nms_threshold": "--threshold", "nms_min_weight": "--min-weight",
                                                "nms_window": "--window"})


def ensemble_config(path: str | None, flags: dict[str, object]) -> EnsembleConfig:
    """configs/ensembles/*.yaml (raw, out_raw, out) and/or the flags (--raw, --out-raw, --out), which win where
    given."""
    values, sources = load_yaml_chain(path) if path else ({}, {})
    given = {key: [str(p) for p in value] if isinstance(value, list) else str(value) for key, value in flags.items()
             if key in ("raw", "out_raw", "out") and value}
    values.update(given)
    sources.update({key: f"{COMMAND_LINE} (--{key.replace('_', '-')})" for key in given})
    values = known_values(EnsembleConfig, values, sources)
    missing = [key for key in ("raw", "out_raw", "out") if key not in values]
    if missing:
        raise ConfigError(f"ensemble needs {', '.join('--' + m.replace('_', '-') for m in missing)} (or --config "
                          f"with those keys)")
    return build_config(EnsembleConfig, values, sources)


def spot_config(flags: dict[str, object]) -> SpotConfig:
    """`evaluate.py spot`'s flags (all of them: those SpotConfig holds are read), checked like a config, before any
    video is read."""
    spot = flag_config(SpotConfig, flags)
    if spot.clip_before + spot.clip_after <= 0:
        raise ConfigError(f"{COMMAND_LINE}: --clip-before and --clip-after are both 0: a clip would hold no frame")
    return spot
