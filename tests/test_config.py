"""Config system: inheritance, overrides, and an error that names key, file and closest key for each kind of mistake."""

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from utils.config import ConfigError, bounded, build_config, config_to_dict, flatten, load_config, required
from utils.run import parse_command_line, record_run


# Schemas of the loader's own tests: the stages' schemas (configs/schema.py) are tested in test_stage_configs.py
@dataclasses.dataclass
class RunConfig:
    output_dir: str = required(nonempty=True)
    epochs: int = bounded(100, low=1)
    global_batch_size: int = bounded(256, low=1)
    seed: int = bounded(42, low=0)
    resume: bool = True


@dataclasses.dataclass
class OptimConfig:
    lr: float = bounded(5e-4, low=0, low_open=True)
    warmup_epochs: float = bounded(0.0, low=0.0)
    weight_decay: float = bounded(0.05, low=0.0)
    eps: float = 1e-8


@dataclasses.dataclass
class DataSection:
    root: str = required()
    fps: float = 2.0
    window_seconds: int = 64
    split: Literal["train", "valid", "test", "challenge"] = "train"
    games_file: str | None = None
    crop_scale: tuple[float, float] = (0.2, 1.0)
    classes: list[str] = dataclasses.field(default_factory=lambda: ["Goal"])


@dataclasses.dataclass
class ExampleConfig:
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    data: DataSection = dataclasses.field(default_factory=DataSection)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def base_file(tmp_path):
    return write(tmp_path / "base.yaml", "run:\n  output_dir: runs/base\n  epochs: 30\ndata:\n  root: /data/sn\n"
                                         "optim:\n  lr: 1e-3\n  warmup_epochs: 10\n")


def test_defaults_yaml_and_overrides_apply_in_order(tmp_path, base_file):
    child = write(tmp_path / "exp" / "child.yaml", "base: ../base.yaml\noptim:\n  lr: 4e-3\ndata:\n  fps: 1\n")
    config = load_config(ExampleConfig, child, ["optim.weight_decay=0.1", "data.crop_scale=[0.5, 1]",
                                                "data.split=test", "run.output_dir=/tmp/x"])
    assert config.optim.lr == 4e-3  # child wins over base
    assert config.optim.warmup_epochs == 10.0  # inherited
    assert config.run.epochs == 30
    assert config.data.fps == 1.0 and isinstance(config.data.fps, float)  # int written for a float field
    assert config.optim.weight_decay == 0.1  # override
    assert config.data.crop_scale == (0.5, 1.0)
    assert config.data.split == "test"
    assert config.run.output_dir == "/tmp/x"
    assert config.optim.eps == 1e-8  # schema default, never mentioned


def test_three_level_inheritance(tmp_path, base_file):
    write(tmp_path / "middle.yaml", "base: base.yaml\nrun:\n  epochs: 20\n")
    leaf = write(tmp_path / "deep" / "leaf.yaml", "base: ../middle.yaml\nrun:\n  seed: 203\n")
    config = load_config(ExampleConfig, leaf)
    assert (config.run.epochs, config.run.seed, config.data.root) == (20, 203, "/data/sn")


def test_unknown_key_in_yaml_names_file_and_suggests(tmp_path, base_file):
    child = write(tmp_path / "child.yaml", "base: base.yaml\noptim:\n  weight_decy: 0.1\n")
    with pytest.raises(ConfigError) as error:
        load_config(ExampleConfig, child)
    message = str(error.value)
    assert str(child) in message and "optim.weight_decy" in message and "optim.weight_decay" in message


def test_unknown_override_suggests_closest_key(base_file):
    with pytest.raises(ConfigError) as error:
        load_config(ExampleConfig, base_file, ["optim.lrr=1"])
    message = str(error.value)
    assert "'optim.lrr'" in message and "did you mean 'optim.lr'" in message and "command line" in message


def test_unknown_section_is_reported(base_file):
    with pytest.raises(ConfigError, match="unknown key 'optm.lr'.*'optim.lr'"):
        load_config(ExampleConfig, base_file, ["optm.lr=1"])


def test_duplicate_yaml_key_names_file_key_and_line(tmp_path):
    path = write(tmp_path / "dup.yaml", "run:\n  output_dir: a\n  epochs: 1\n  epochs: 2\n")
    with pytest.raises(ConfigError) as error:
        load_config(ExampleConfig, path)
    message = str(error.value)
    assert str(path) in message and "'epochs'" in message and "line 4" in message


@pytest.mark.parametrize("override, expected", [
    ("run.epochs=1.5", "'run.epochs' expects int"),
    ("run.resume=yes", "'run.resume' expects bool"),
    ("optim.lr=fast", "'optim.lr' expects float"),
    ("data.split=val", "'data.split' expects one of 'train', 'valid', 'test', 'challenge'"),
    ("data.crop_scale=[1, 2, 3]", "'data.crop_scale' expects tuple[float, float]"),
    ("data.classes=Goal", "'data.classes' expects list[str]"),
])
def test_type_mismatch_names_key_and_expected_type(base_file, override, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_config(ExampleConfig, base_file, [override])


def test_type_mismatch_in_file_names_the_file(tmp_path, base_file):
    child = write(tmp_path / "child.yaml", "base: base.yaml\nrun:\n  epochs: many\n")
    with pytest.raises(ConfigError) as error:
        load_config(ExampleConfig, child)
    assert str(child) in str(error.value) and "'run.epochs' expects int" in str(error.value)


def test_missing_required_values_are_listed(tmp_path):
    path = write(tmp_path / "empty.yaml", "optim:\n  lr: 1e-3\n")
    with pytest.raises(ConfigError) as error:
        load_config(ExampleConfig, path)
    assert "'data.root'" in str(error.value) and "'run.output_dir'" in str(error.value)


def test_optional_value_accepts_null_and_string(base_file):
    assert load_config(ExampleConfig, base_file, ["data.games_file=null"]).data.games_file is None
    assert load_config(ExampleConfig, base_file, ["data.games_file=my.txt"]).data.games_file == "my.txt"


def test_inheritance_cycle_is_an_error(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(ExampleConfig, tmp_path / "a.yaml")


def test_missing_base_file_is_named(tmp_path):
    path = write(tmp_path / "child.yaml", "base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        load_config(ExampleConfig, path)


def test_round_trip_through_plain_dict(base_file):
    config = load_config(ExampleConfig, base_file, ["data.crop_scale=[0.3, 0.9]"])
    tree = config_to_dict(config)
    assert tree["data"]["crop_scale"] == [0.3, 0.9]  # plain lists, loadable with weights_only=True
    assert build_config(ExampleConfig, flatten(tree), {}) == config


def test_command_line_typo_exits_and_writes_nothing(tmp_path, base_file, capsys):
    output_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        parse_command_line(ExampleConfig, "test", ["--config", str(base_file), "optim.lrr=1",
                                                   f"run.output_dir={output_dir}"])
    assert exit_info.value.code == 2
    assert "optim.lrr" in capsys.readouterr().err
    assert not output_dir.exists()


def test_record_run_writes_config_command_and_revision(tmp_path, base_file):
    config = parse_command_line(ExampleConfig, "test", ["--config", str(base_file), "optim.lr=2e-3"])
    out = record_run(config, tmp_path / "run", argv=["train.py", "--config", str(base_file), "optim.lr=2e-3"])
    reloaded = load_config(ExampleConfig, out / "config.yaml")
    assert reloaded == config
    assert "optim.lr=2e-3" in (out / "command.txt").read_text()
    assert (out / "git_revision.txt").read_text().strip()


@dataclasses.dataclass
class StageConfig:
    """A stage whose sections have stage-specific defaults (default factories), as the training scripts do."""

    run: RunConfig = dataclasses.field(default_factory=lambda: RunConfig(epochs=200, global_batch_size=1024))
    data: DataSection = dataclasses.field(default_factory=lambda: DataSection(root="/d", fps=1.0))


def test_stage_specific_section_defaults_survive_partial_overrides(tmp_path):
    path = write(tmp_path / "stage.yaml", "run:\n  output_dir: x\n  seed: 7\n")
    config = load_config(StageConfig, path)
    assert (config.run.epochs, config.run.global_batch_size, config.run.seed) == (200, 1024, 7)
    assert (config.data.root, config.data.fps) == ("/d", 1.0)


def test_a_nan_is_out_of_every_range_from_a_file_as_from_the_command_line(tmp_path, base_file):
    nan_file = write(tmp_path / "nan.yaml", f"base: {base_file.name}\noptim:\n  lr: .nan\n")
    with pytest.raises(ConfigError, match=r"nan.yaml: 'optim.lr' = nan is out of range: expected a value > 0"):
        load_config(ExampleConfig, nan_file)
    with pytest.raises(ConfigError, match=r"the command line: 'optim.weight_decay' = nan is out of range"):
        load_config(ExampleConfig, base_file, ["optim.weight_decay=.nan"])


def test_a_wrong_choice_gets_the_closest_one():
    with pytest.raises(ConfigError, match="'data.split' expects one of 'train', 'valid', 'test', 'challenge', got "
                                          "'vaild' \\(str\\); did you mean 'valid'\\?"):
        load_config(ExampleConfig, None, ["data.root=x", "data.split=vaild"])


def test_the_registry_and_the_schema_name_an_unknown_model_alike():
    from configs.schema import VideoModelConfig
    from models.registry import build_video

    with pytest.raises(ConfigError) as from_config:
        load_config(VideoModelConfig, None, ["name=vivit_tinyy"])
    with pytest.raises(ValueError) as from_registry:
        build_video(dataclasses.replace(VideoModelConfig(), name="vivit_tinyy"))
    assert str(from_registry.value) in str(from_config.value)
    assert str(from_registry.value).startswith("unknown model 'vivit_tinyy'; did you mean 'vivit_tiny'?")
