"""The project's configs: every YAML under configs/ loads with its stage's schema, the stages chain, and each stage
refuses the keys it does not read."""

from pathlib import Path

import pytest
import yaml

from configs.schema import DistillConfig, EnsembleConfig, SpottingConfig, SSLConfig
from tests.conftest import ROOT, run_script
from data.catalog import load_dataset
from utils.config import ConfigError, load_config
from utils.rates import Rates

SCHEMAS = {"ssl": SSLConfig, "distill": DistillConfig, "spotting": SpottingConfig, "ablations": SpottingConfig,
           "ensembles": EnsembleConfig}
CONFIGS = sorted((ROOT / "configs").glob("**/*.yaml"))


def stage_of(path: Path) -> str:
    """A config's stage: its folder under configs/, or under configs/ball/ (the Ball Action Spotting recipes)."""
    parts = path.relative_to(ROOT / "configs").parts
    return parts[1] if parts[0] == "ball" else parts[0]


def stage_schema(path: Path) -> type:
    return SCHEMAS[stage_of(path)]


def test_every_yaml_belongs_to_a_stage():
    assert len(CONFIGS) >= 35
    assert all(stage_of(path) in SCHEMAS for path in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: str(path.relative_to(ROOT / "configs")))
def test_every_yaml_loads_with_its_stage_schema(path):
    load_config(stage_schema(path), path)  # unknown keys, wrong types, ranges and missing recipe values all raise


def loaded_runs() -> dict[Path, object]:
    return {path: load_config(stage_schema(path), path) for path in CONFIGS if stage_schema(path) is not EnsembleConfig}


def test_init_checkpoints_chain_onto_the_output_folders_of_other_configs():
    """What the README's commands rely on: each stage starts from a checkpoint another config writes."""
    runs = loaded_runs()
    outputs = {Path(config.run.output_dir): path for path, config in runs.items()}
    starts = {path: config.model.init_checkpoint for path, config in runs.items()
              if getattr(config.model, "init_checkpoint", "")}
    assert len(starts) >= 20
    for path, checkpoint in starts.items():
        folder = Path(checkpoint).parent
        assert folder in outputs, f"{path}: model.init_checkpoint {checkpoint} is written by no config"
        written = {"checkpoint_last.pth", "checkpoint_best.pth",
                   *(f"checkpoint_epoch{epoch}.pth" for epoch in runs[outputs[folder]].run.snapshot_epochs)}
        assert outputs[folder] != path and Path(checkpoint).name in written, (path, checkpoint)
        expected = {SpottingConfig: (DistillConfig, SpottingConfig, SSLConfig), DistillConfig: (SSLConfig,)}
        assert stage_schema(outputs[folder]) in expected[stage_schema(path)], (path, outputs[folder])
    no_pretraining = [path for path, config in runs.items()
                      if stage_schema(path) is SpottingConfig and not config.model.init_checkpoint]
    assert all("no_pretraining" in path.name or "scratch" in path.name for path in no_pretraining), no_pretraining


def test_ensembles_average_the_test_scores_of_phase_b_runs():
    outputs = {Path(config.run.output_dir) for path, config in loaded_runs().items()
               if stage_schema(path) is SpottingConfig}
    for path in (ROOT / "configs" / "ensembles").glob("*.yaml"):
        ensemble = load_config(EnsembleConfig, path)
        assert len(ensemble.raw) == 3
        for raw in map(Path, ensemble.raw):  # <output_dir>/inference_test/raw, what `evaluate.py test` writes
            assert raw.name == "raw" and raw.parent.name == "inference_test" and raw.parent.parent in outputs, raw


def test_paper_configs_carry_the_official_pipeline():
    """fp16 with a gradient scaler in every stage, stage-1 crops from native frames, the official end of half."""
    paper = [path for path in CONFIGS if path.name.startswith(("vi", "swin")) and stage_schema(path) is not
             EnsembleConfig and "ball" not in path.parts]
    assert len(paper) >= 20
    for path in paper:
        schema = stage_schema(path)
        config = load_config(schema, path)
        assert config.run.precision == "fp16", path
        if schema is SSLConfig:
            assert config.data.source == "frames", path  # native 398x224 JPEG folders to crop from
        if schema is SpottingConfig:
            assert config.eval.half_end == "official" and config.eval.trim_seconds == 12, path


def test_the_ball_action_spotting_recipes_read_12_5_fps_in_64_token_windows():
    """configs/ball/: every stage at 12.5 fps; stage 3 with the v2 model's 64 tokens per window, a row per frame,
    T-DEED's NMS and the whole game scored; the 2025 recipes score teams, whose flips swap them."""
    ball = [path for path in CONFIGS if "ball" in path.parts]
    assert len(ball) >= 6
    for path in ball:
        config = load_config(stage_schema(path), path)
        assert config.data.fps == 12.5 and config.data.dataset.startswith("soccernet_ball_"), path
        if stage_schema(path) is SpottingConfig and not path.name.startswith("tiny"):
            assert Rates.of(config.data.fps).tokens(config.model.window_seconds, "model.window_seconds") == 64
            assert (config.model.head, config.eval.nms, config.eval.half_end) == ("frame", "tdeed", "scored"), path
            assert load_dataset(config.data.dataset).mirrored_columns() is not None or \
                config.data.dataset != "soccernet_ball_2025", path


@pytest.mark.parametrize("schema, config, override", [
    (SSLConfig, "ssl/tiny_mini.yaml", "model.mask_ratio=0.9"),
    (SSLConfig, "ssl/tiny_mini.yaml", "model.temporal_depth=99"),
    (SSLConfig, "ssl/tiny_mini.yaml", "data.valid_split=valid"),
    (SSLConfig, "ssl/tiny_mini.yaml", "eval.nms=soft"),
    (DistillConfig, "distill/tiny_mini.yaml", "data.valid_split=valid"),
    (DistillConfig, "distill/tiny_mini.yaml", "augment.view1.hue=0.1"),
    (DistillConfig, "distill/tiny_mini.yaml", "augment.hue=0.1"),
    (SpottingConfig, "spotting/tiny_mini_phase_b.yaml", "augment.photometric.hue=0.1"),
    (SpottingConfig, "spotting/tiny_mini_phase_b.yaml", "loss.queue_size=10"),
    (SpottingConfig, "spotting/tiny_mini_phase_b.yaml", "model.projector_hidden=10"),
])
def test_a_stage_refuses_the_keys_it_does_not_read(schema, config, override):
    with pytest.raises(ConfigError, match=f"unknown key '{override.split('=')[0]}'"):
        load_config(schema, ROOT / "configs" / config, [override])


def test_one_spelling_of_the_photometric_keys_in_every_stage():
    ssl = load_config(SSLConfig, ROOT / "configs" / "ssl" / "tiny_mini.yaml", ["augment.view1.hue=0.05"])
    distill = load_config(DistillConfig, ROOT / "configs" / "distill" / "tiny_mini.yaml", ["augment.view.hue=0.05"])
    spotting = load_config(SpottingConfig, ROOT / "configs" / "spotting" / "tiny_mini_phase_b.yaml",
                           ["augment.view.hue=0.05"])
    assert ssl.augment.view1.hue == distill.augment.view.hue == spotting.augment.view.hue == 0.05


def test_a_recipe_value_missing_from_a_config_is_named(tmp_path):
    """The recipe has no defaults in the code: a config that drops one stops at load, naming it."""
    text = (ROOT / "configs" / "ssl" / "vit_tiny_soccernet.yaml").read_text()
    trimmed = tmp_path / "ssl.yaml"
    trimmed.write_text("\n".join(line for line in text.splitlines() if not line.strip().startswith("lr:")))
    with pytest.raises(ConfigError, match="missing required value.*'optim.lr'"):
        load_config(SSLConfig, trimmed)


@pytest.mark.slow
def test_print_config_prints_the_resolved_yaml_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    completed = run_script(["train_spotting.py", "--config", "configs/spotting/tiny_mini_phase_b.yaml",
                            "--print-config", "optim.lr=0.5", f"run.output_dir={out}"])
    printed = yaml.safe_load(completed.stdout)
    assert printed["optim"]["lr"] == 0.5 and printed["run"]["output_dir"] == str(out)
    assert printed["eval"]["nms"] == "soft"  # inherited from the paper config
    (tmp_path / "printed.yaml").write_text(completed.stdout)
    assert load_config(SpottingConfig, tmp_path / "printed.yaml") == load_config(
        SpottingConfig, ROOT / "configs" / "spotting" / "tiny_mini_phase_b.yaml", ["optim.lr=0.5",
                                                                                   f"run.output_dir={out}"])
    assert not out.exists()
