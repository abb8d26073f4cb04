"""Importing the released COMEDIAN checkpoints: a state dict with exactly the published names and shapes
(tests/data/eztorch_checkpoint_keys.json, generated from the official modules) converts, loads strictly and runs."""

import json
from pathlib import Path

import pytest
import torch

from models.eztorch import convert_state, expected_relative_position_index, infer_preset
from configs.schema import VideoModelConfig
from models.loading import CheckpointMismatch, load_spotting_weights, read_spotting_weights
from models.registry import build_video
from models.spotting import SpottingModel
from tests.conftest import run_script

KEYS = json.loads((Path(__file__).parent / "data" / "eztorch_checkpoint_keys.json").read_text())


def released_state(preset: str, with_mask_token: bool = True, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the released names and shapes (distinct values, so a misplaced tensor is detected),
    with the Swin buffers as timm writes them and one augmentation buffer as the released files carry."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in KEYS[preset]["keys"].items():
        if key.endswith("relative_position_index"):
            state[key] = expected_relative_position_index(7)
        elif key.endswith("attn_mask"):
            state[key] = torch.where(torch.rand(shape, generator=generator) > 0.5, 0.0, -100.0)
        else:
            state[key] = torch.randn(shape, generator=generator)
    if not with_mask_token:
        del state["trunk.transformer.temporal_mask_token"]
    state["val_transform.1._transform.2.mean"] = torch.tensor([0.45, 0.45, 0.45])
    return state


@pytest.mark.parametrize("preset, tensors", [("vivit_tiny", 228), ("viswin_tiny", 266)])
def test_the_published_key_list_is_the_one_tested(preset, tensors):
    assert len(KEYS[preset]["keys"]) == KEYS[preset]["num_keys"] == tensors


@pytest.mark.parametrize("preset", ["vivit_tiny", "viswin_tiny"])
def test_released_layout_converts_loads_strictly_and_keeps_every_value(preset):
    state = released_state(preset)
    assert infer_preset(state) == preset
    conversion = convert_state(state)
    model = SpottingModel(build_video(VideoModelConfig(name=preset)), 17)
    load_spotting_weights(model, conversion.state, "released")  # raises on any missing, unexpected or misshapen key
    loaded = model.state_dict()
    assert set(loaded) == set(conversion.state)
    assert torch.equal(loaded["head.weight"], state["head_class.layers.0.weight"])
    assert torch.equal(loaded["trunk.temporal.time_embed"], state["trunk.transformer.time_embed"])
    assert torch.equal(loaded["trunk.temporal.blocks.5.attn.qkv.weight"],
                       state["trunk.transformer.temporal_transformer.blocks.5.attn.qkv.weight"])
    if preset == "vivit_tiny":
        assert torch.equal(loaded["trunk.spatial.cls_token"], state["trunk.transformer.spatial_cls_token"])
        assert torch.equal(loaded["trunk.spatial.blocks.11.mlp.fc2.weight"],
                           state["trunk.transformer.spatial_transformer.blocks.11.mlp.fc2.weight"])
    else:
        assert torch.equal(loaded["trunk.spatial.layers.2.blocks.5.mlp.3.weight"],
                           state["trunk.transformer.spatial_transformer.layers.2.blocks.5.mlp.fc2.weight"])
        assert torch.equal(loaded["trunk.spatial.layers.0.downsample.reduction.weight"],
                           state["trunk.transformer.spatial_transformer.layers.0.downsample.reduction.weight"])
        assert len(conversion.dropped_buffers) == 17  # 12 relative_position_index + 5 attn_mask
    assert conversion.dropped_transforms == ["val_transform.1._transform.2.mean"]


def test_released_vivit_runs_at_the_paper_shape():
    model = SpottingModel(build_video(VideoModelConfig(name="vivit_tiny")), 17)
    load_spotting_weights(model, convert_state(released_state("vivit_tiny", with_mask_token=False)).state, "released")
    with torch.no_grad():
        logits = model.eval()(torch.randn(1, 3, 128, 224, 224))
    assert logits.shape == (1, 64, 17) and torch.isfinite(logits).all()


def test_mismatches_are_reported_by_name():
    state = released_state("vivit_tiny")
    del state["trunk.transformer.temporal_transformer.blocks.2.norm1.weight"]
    model = SpottingModel(build_video(VideoModelConfig(name="vivit_tiny")), 17)
    with pytest.raises(CheckpointMismatch, match="trunk.temporal.blocks.2.norm1.weight"):
        load_spotting_weights(model, convert_state(state).state, "released")
    state = released_state("vivit_tiny")
    state["trunk.transformer.time_embed"] = torch.zeros(1, 32, 192)  # a 32 s model, not the released one
    with pytest.raises(CheckpointMismatch, match=r"trunk.temporal.time_embed: checkpoint \(1, 32, 192\)"):
        load_spotting_weights(model, convert_state(state).state, "released")
    state = released_state("vivit_tiny")
    state["trunk.transformer.spatial_transformer.blocks.0.attn.q_bias"] = torch.zeros(192)
    with pytest.raises(CheckpointMismatch, match="unexpected keys"):
        load_spotting_weights(model, convert_state(state).state, "released")
    state = released_state("vivit_tiny")
    state["momentum_trunk.x"] = torch.zeros(1)
    with pytest.raises(ValueError, match="momentum_trunk.x"):
        convert_state(state)


@pytest.mark.slow
def test_import_command_writes_a_checkpoint_every_command_loads(tmp_path):
    torch.save(released_state("vivit_tiny"), tmp_path / "comedian_vivit_tiny_seed42.pth")
    completed = run_script(["evaluate.py", "import-eztorch", str(tmp_path / "comedian_vivit_tiny_seed42.pth"),
                            "--out", str(tmp_path / "imported.pth")])
    assert "vivit_tiny: 228 tensors converted" in completed.stdout
    imported = read_spotting_weights(tmp_path / "imported.pth")
    assert imported.preset == "vivit_tiny" and imported.config["model"]["window_seconds"] == 64
    direct = read_spotting_weights(tmp_path / "comedian_vivit_tiny_seed42.pth").state  # or used as it is
    assert all(torch.equal(imported.state[key], value) for key, value in direct.items())
