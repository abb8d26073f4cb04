"""Models: shapes, gradients, temporal masking, determinism, stage-to-stage loads, parameter counts, compile."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from configs.schema import VideoModelConfig
from models.heads import distill_projector, ssl_predictor, ssl_projector
from models.loading import CheckpointMismatch, init_spotting_model, load_stage1_into_video
from configs.architectures import SPATIAL, VIDEO
from models.registry import build_spatial, build_video, count_parameters
from models.spotting import SpottingModel
from utils.checkpoint import Progress, save_checkpoint, training_checkpoint

SMALL = 64  # image size of the tiny inputs used on CPU (the paper's is 224)


def micro_config(name="vivit_micro", **changes) -> VideoModelConfig:
    return dataclasses.replace(VideoModelConfig(name=name, img_size=SMALL, window_seconds=4, temporal_depth=2,
                                           mask_ratio=0.25), **changes)


def assert_every_parameter_has_gradient(module: nn.Module) -> None:
    missing = [name for name, param in module.named_parameters() if param.grad is None or not param.grad.abs().sum()]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("name", sorted(SPATIAL))
def test_spatial_presets_forward_and_backward(name):
    torch.manual_seed(0)
    model = build_spatial(name, img_size=SMALL)
    out = model(torch.randn(3, 3, 2, SMALL, SMALL))
    assert out.shape == (3, model.out_dim)
    out.square().mean().backward()
    assert_every_parameter_has_gradient(model)


@pytest.mark.parametrize("name", sorted(VIDEO))
def test_video_presets_forward_shapes(name):
    model = build_video(micro_config(name, temporal_depth=1)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 8, SMALL, SMALL))
    assert out.shape == (2, 4, model.out_dim)


def test_video_backward_reaches_every_parameter_including_the_mask_token():
    torch.manual_seed(0)
    # no stochastic depth: a block whose branch is dropped for the whole batch gets no gradient, by design
    model = SpottingModel(build_video(micro_config(drop_path=0.0, temporal_drop_path=0.0)), 17).train()
    logits = model(torch.randn(2, 3, 8, SMALL, SMALL))
    assert logits.shape == (2, 4, 17)
    logits.square().mean().backward()
    assert_every_parameter_has_gradient(model)


def test_stage1_and_stage2_models_give_every_trainable_parameter_a_gradient():
    """Stage 1's SCE model (its momentum branch is an average, not trained) and stage 2's distillation model with
    temporal masking: one loss reaches every parameter the optimiser steps, so DDP needs no unused-parameter search."""
    from models.distill import DistillModel
    from models.losses import sce_loss, sce_token_loss
    from models.sce import SCEModel

    torch.manual_seed(0)
    sce = SCEModel(build_spatial("vit_micro", img_size=SMALL, drop_path=0.0), hidden=32, dim=16, queue_size=8).train()
    clips = torch.randn(6, 3, 2, SMALL, SMALL)
    q1, q2 = sce(clips).chunk(2)
    k1, k2 = sce.keys(clips).chunk(2)
    (sce_loss(q1, k2, sce.queue.keys, 0.5, 0.1, 0.05) + sce_loss(q2, k1, sce.queue.keys, 0.5, 0.1, 0.05)).backward()
    trainable = nn.ModuleDict({"trunk": sce.trunk, "projector": sce.projector, "predictor": sce.predictor})
    assert_every_parameter_has_gradient(trainable)
    assert all(p.grad is None for p in [*sce.momentum_trunk.parameters(), *sce.momentum_projector.parameters()])

    distill = DistillModel(build_video(micro_config(drop_path=0.0, temporal_drop_path=0.0)), dim=16, hidden=32,
                           queue_size=8).train()
    queries = distill(torch.randn(2, 3, 8, SMALL, SMALL))  # (2 windows x 4 tokens, 16), a quarter of them masked
    bank = F.normalize(torch.randn(8, 16), dim=1)
    sce_token_loss(queries, bank, 4, distill.queue.keys, 0.5, 0.1, 0.05).backward()
    assert_every_parameter_has_gradient(distill)


def test_masking_drops_chosen_clips_and_keeps_the_rest_exactly():
    torch.manual_seed(0)
    model = build_video(micro_config(drop_path=0.0, temporal_drop_path=0.0, window_seconds=8)).train()
    nn.init.normal_(model.temporal.mask_token)
    video = torch.randn(2, 3, 16, SMALL, SMALL)
    seen_clips, temporal_inputs = [], []
    model.spatial.register_forward_hook(lambda module, args, out: seen_clips.append(args[0].shape[0]))
    model.temporal.register_forward_hook(lambda module, args, out: temporal_inputs.append(args[0]))
    model(video)
    assert seen_clips == [2 * 6]  # 25% of 8 clips per window removed before the spatial trunk
    tokens = temporal_inputs[0]  # (2, 8, D)
    with torch.no_grad():
        reference = model.spatial(video.view(2, 3, 8, 2, SMALL, SMALL).transpose(1, 2).reshape(16, 3, 2, SMALL,
                                                                                                SMALL)).view(2, 8, -1)
    is_mask = (tokens == model.temporal.mask_token[0]).all(-1)  # (2, 8)
    assert is_mask.sum(1).tolist() == [2, 2]
    torch.testing.assert_close(tokens[~is_mask], reference[~is_mask])


def test_eval_mode_is_deterministic_and_unmasked():
    model = build_video(micro_config()).eval()
    video = torch.randn(2, 3, 8, SMALL, SMALL)
    calls = []
    model.spatial.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    with torch.no_grad():
        first, second = model(video), model(video)
    assert torch.equal(first, second) and calls == [8, 8]


def test_heads_shapes_and_bias():
    assert ssl_projector(192)(torch.randn(4, 192)).shape == (4, 256)
    predictor = ssl_predictor()
    assert predictor.layers[-1].bias is None and predictor.layers[0].bias is not None
    assert distill_projector(768)(torch.randn(4, 768)).shape == (4, 512)
    assert [type(m) for m in ssl_projector(192).layers] == [nn.Linear, nn.GELU, nn.Linear, nn.GELU, nn.Linear]


def test_parameter_counts_match_the_usual_and_the_released_figures():
    # timm's ViT-Ti/16 and Swin-T without classifier: 5,524,416 and 27,519,354 parameters; the tubelet embedding
    # adds the second frame's kernel (147,456 and 4,608)
    assert count_parameters(build_spatial("vit_tiny")) == pytest.approx(5_524_416 + 147_456, rel=0.02)
    assert count_parameters(build_spatial("swin_tiny")) == pytest.approx(27_519_354 + 4_608, rel=0.02)
    # released COMEDIAN spotting models (tests/data/eztorch_checkpoint_keys.json): exactly the same number of parameters
    assert count_parameters(SpottingModel(build_video(VideoModelConfig("vivit_tiny")), 17)) == 8_357_201
    assert count_parameters(SpottingModel(build_video(VideoModelConfig("viswin_tiny")), 17)) == 70_115_723


# ----------------------------------------------------------------------------------------------------------------------
# Stage-to-stage loads
# ----------------------------------------------------------------------------------------------------------------------
def save(path, model, stage, name):
    save_checkpoint(path, training_checkpoint(model, None, None, {"model": {"name": name}}, {"stage": stage},
                                              Progress(1), epoch=1))


class FakeSSL(nn.Module):
    """What a stage-1 checkpoint holds: online and momentum trunks, heads (only `trunk.` is loaded)."""

    def __init__(self, trunk_name):
        super().__init__()
        self.trunk = build_spatial(trunk_name, img_size=SMALL)
        self.momentum_trunk = build_spatial(trunk_name, img_size=SMALL)
        self.projector = ssl_projector(self.trunk.out_dim, 32, 16)


def test_stage1_to_vivit_copies_blocks_and_norm(tmp_path):
    ssl = FakeSSL("vit_micro")
    save(tmp_path / "ssl.pth", ssl, "ssl", "vit_micro")
    video = build_video(micro_config())
    load_stage1_into_video(video, tmp_path / "ssl.pth", "vivit_micro")
    for key, value in ssl.trunk.state_dict().items():
        assert torch.equal(video.spatial.state_dict()[key], value)
    for index in range(2):
        for key, value in ssl.trunk.blocks[index].state_dict().items():
            assert torch.equal(video.temporal.blocks[index].state_dict()[key], value)
    assert torch.equal(video.temporal.norm.weight, ssl.trunk.norm.weight)
    video.temporal.blocks[0].norm1.weight.data.add_(1)  # copies, not shared tensors
    assert not torch.equal(video.temporal.blocks[0].norm1.weight, video.spatial.blocks[0].norm1.weight)


def test_stage1_to_viswin_leaves_temporal_random(tmp_path):
    ssl = FakeSSL("swin_micro")
    save(tmp_path / "ssl.pth", ssl, "ssl", "swin_micro")
    video = build_video(micro_config("viswin_micro", temporal_depth=1))
    before = video.temporal.blocks[0].attn.qkv.weight.clone()
    load_stage1_into_video(video, tmp_path / "ssl.pth", "viswin_micro")
    assert torch.equal(video.temporal.blocks[0].attn.qkv.weight, before)
    assert torch.equal(video.spatial.layers[2].blocks[0].mlp[0].weight, ssl.trunk.layers[2].blocks[0].mlp[0].weight)


def test_wrong_checkpoints_fail_clearly(tmp_path):
    save(tmp_path / "swin.pth", FakeSSL("swin_micro"), "ssl", "swin_micro")
    with pytest.raises(CheckpointMismatch, match="'swin_micro' trunk, but vivit_micro needs 'vit_micro'"):
        load_stage1_into_video(build_video(micro_config()), tmp_path / "swin.pth", "vivit_micro")
    # right name, wrong content: every mismatching key is listed
    liar = FakeSSL("vit_micro")
    liar.trunk.blocks = liar.trunk.blocks[:3]
    save(tmp_path / "liar.pth", liar, "ssl", "vit_micro")
    with pytest.raises(CheckpointMismatch, match="keys missing from the checkpoint:\n    spatial.blocks.3"):
        load_stage1_into_video(build_video(micro_config()), tmp_path / "liar.pth", "vivit_micro")
    spotting = SpottingModel(build_video(micro_config()), 17)
    save(tmp_path / "spot.pth", spotting, "spotting", "vivit_micro")
    with pytest.raises(CheckpointMismatch, match="stage 'spotting', expected a 'ssl'"):
        load_stage1_into_video(spotting.trunk, tmp_path / "spot.pth", "vivit_micro")


def test_stage2_to_spotting_and_phase_a_to_b(tmp_path):
    class FakeDistill(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = build_video(micro_config())
            self.projector = distill_projector(64, 32, 16)

    distill = FakeDistill()
    save(tmp_path / "distill.pth", distill, "distill", "vivit_micro")
    spotting = SpottingModel(build_video(micro_config()), 17)
    head_before = spotting.head.weight.clone()
    init_spotting_model(spotting, tmp_path / "distill.pth", "vivit_micro")
    for key, value in distill.trunk.state_dict().items():
        assert torch.equal(spotting.trunk.state_dict()[key], value)
    assert torch.equal(spotting.head.weight, head_before)
    save(tmp_path / "phase_a.pth", spotting, "spotting", "vivit_micro")
    phase_b = SpottingModel(build_video(micro_config()), 17)
    init_spotting_model(phase_b, tmp_path / "phase_a.pth", "vivit_micro")
    for key, value in spotting.state_dict().items():
        assert torch.equal(phase_b.state_dict()[key], value)


def test_compiles_without_graph_breaks():
    model = build_video(micro_config()).train()
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # fullgraph raises on any graph break
    compiled(torch.randn(2, 3, 8, SMALL, SMALL)).sum().backward()
    swin = build_video(micro_config("viswin_micro", temporal_depth=1)).eval()
    with torch.no_grad():
        torch.compile(swin, fullgraph=True, backend="eager")(torch.randn(1, 3, 8, SMALL, SMALL))


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = build_video(micro_config(mask_ratio=0.0, drop_path=0.0, temporal_drop_path=0.0)).train()
    checkpointed = build_video(micro_config(mask_ratio=0.0, drop_path=0.0, temporal_drop_path=0.0,
                                            grad_checkpointing=True)).train()
    checkpointed.load_state_dict(plain.state_dict())
    video = torch.randn(1, 3, 8, SMALL, SMALL)
    plain(video).sum().backward()
    checkpointed(video).sum().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_spotting_head_can_start_at_a_prior_probability():
    model = SpottingModel(build_video(micro_config()), 17, bias_prior=0.01)
    torch.testing.assert_close(torch.sigmoid(model.head.bias), torch.full((17,), 0.01))
    assert torch.equal(SpottingModel(build_video(micro_config()), 17).head.bias, torch.zeros(17))  # official: zero


@pytest.mark.parametrize("patch, tube, norm", [(16, 2, False), (4, 2, True)])
def test_patch_embedding_equals_the_conv3d_it_stores(patch, tube, norm):
    from models.vit import PatchEmbed3d
    torch.manual_seed(0)
    embed = PatchEmbed3d(24, patch, tube, norm=norm)
    clips = torch.randn(3, 3, 2 * tube, 2 * patch, 3 * patch)
    reference = F.conv3d(clips, embed.proj.weight, embed.proj.bias, stride=embed.proj.stride)
    reference = embed.norm(reference.flatten(2).transpose(1, 2))  # (N, tokens in t, row, column order, dim)
    torch.testing.assert_close(embed(clips), reference, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="tubelets"):
        embed(torch.randn(1, 3, tube, patch + 1, patch))


def test_initialisation_follows_the_official_code():
    torch.manual_seed(0)
    vit, swin = build_spatial("vit_tiny"), build_spatial("swin_micro")
    # the tubelet embedding: kaiming-normal on fan_in with the ReLU gain (eztorch PatchEmbed.init_weights), zero bias
    for trunk, fan_in, expected in ((vit, 3 * 2 * 16 * 16, 0.036), (swin, 3 * 2 * 4 * 4, 0.144)):
        weight = trunk.patch_embed.proj.weight
        assert weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.03)
        assert weight.std().item() == pytest.approx(expected, abs=0.002)
        assert not trunk.patch_embed.proj.bias.any()
    assert vit.cls_token.std().item() == pytest.approx(1e-6, rel=0.2)  # N(0, 1e-6), not trunc-normal 0.02
    assert vit.pos_embed.std().item() == pytest.approx(0.02, rel=0.1)
    qkv = vit.blocks[0].attn.qkv
    assert qkv.weight.std().item() == pytest.approx(0.02, rel=0.1) and not qkv.bias.any()  # timm: trunc-normal 0.02
    # stage-1/2 MLPs keep PyTorch's default Linear init: uniform in +-1/sqrt(fan_in), biases too
    for head in (ssl_projector(192), ssl_predictor(), distill_projector(192)):
        for layer in head.layers:
            if isinstance(layer, nn.Linear):
                bound = 1 / layer.in_features ** 0.5
                assert layer.weight.abs().max() <= bound and layer.weight.std().item() == pytest.approx(
                    bound / 3 ** 0.5, rel=0.05)
                if layer.bias is not None:
                    assert layer.bias.abs().max() <= bound and layer.bias.abs().max() > bound / 2
    # the spotting head: N(0, 0.01), zero bias
    spotting = SpottingModel(build_video(micro_config()), 17)
    assert spotting.head.weight.std().item() == pytest.approx(0.01, rel=0.15) and not spotting.head.bias.any()
