"""Expected user errors end with one message naming the culprit, no traceback, a non-zero status, nothing written.

Every case is run as a user runs it: the entry point in a subprocess. `expect_user_error` checks the message, the exit
status, that no traceback was printed and (where the case allows) that the run folder was never made.
"""

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import run_script, spotting_checkpoint
from utils.checkpoint import LAST_CHECKPOINT, checkpoint_dict, save_checkpoint
from utils.errors import EXIT_USER_ERROR, UserError


def expect_user_error(completed, *fragments: str) -> str:
    """The process ended on a user error whose one-line message holds every fragment; returns the message."""
    assert completed.returncode == EXIT_USER_ERROR, (completed.returncode, completed.stdout[-2000:],
                                                     completed.stderr[-3000:])
    assert "Traceback" not in completed.stderr, completed.stderr[-3000:]
    message = completed.stderr.strip().splitlines()
    message = "\n".join(line for line in message if not line.startswith("WARNING"))
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def copy_of(mini: Path, tmp_path: Path) -> Path:
    """A private copy of the generated mini-SoccerNet (videos, labels, banks, store) to damage."""
    root = tmp_path / "mini"
    shutil.copytree(mini, root)
    return root


def spotting_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["train_spotting.py", "--config", "configs/spotting/tiny_mini_phase_b.yaml", f"data.root={root}",
            "data.source=video", f"run.output_dir={out}", "model.init_checkpoint=", "run.epochs=1",
            "run.global_batch_size=4", "run.num_workers=0", "data.train_split=train.txt", "data.valid_split=valid.txt",
            "model.window_seconds=8", "eval.window_stride_seconds=4", "eval.trim_seconds=1", *extra]


# ----------------------------------------------------------------------------------------------------------------------
# Config values that divide by zero, do nothing sensible or train backwards: refused at load, nothing written
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("script, config, override, fragment", [
    ("train_ssl.py", "ssl/tiny_mini.yaml", "run.save_every_epochs=0", "'run.save_every_epochs' = 0 is out of range"),
    ("train_ssl.py", "ssl/tiny_mini.yaml", "run.log_every_steps=0", "'run.log_every_steps' = 0 is out of range"),
    ("train_ssl.py", "ssl/tiny_mini.yaml", "run.global_batch_size=0", "'run.global_batch_size' = 0 is out of range"),
    ("train_distill.py", "distill/tiny_mini.yaml", "model.mask_ratio=1.5", "'model.mask_ratio' = 1.5 is out of range"),
    ("train_distill.py", "distill/tiny_mini.yaml", "model.window_seconds=0", "'model.window_seconds' = 0"),
    ("train_spotting.py", "spotting/tiny_mini_phase_b.yaml", "optim.lr=-1", "'optim.lr' = -1.0 is out of range"),
    ("train_spotting.py", "spotting/tiny_mini_phase_b.yaml", "eval.nms=sfot", "'eval.nms' expects one of 'soft'"),
    ("train_spotting.py", "spotting/tiny_mini_phase_b.yaml", "run.output_dir=", "'run.output_dir' is empty"),
    ("train_spotting.py", "spotting/tiny_mini_phase_b.yaml", "model.name=vivit_tinyy",
     "'model.name' = 'vivit_tinyy': unknown model 'vivit_tinyy'; did you mean 'vivit_tiny'? (registered: ["),
])
def test_bad_config_values_are_refused_at_load(tmp_path, script, config, override, fragment):
    out = tmp_path / "run"
    completed = run_script([script, "--config", f"configs/{config}", f"run.output_dir={out}", f"data.root={tmp_path}",
                            override], check=False)
    expect_user_error(completed, fragment)
    assert not out.exists()


@pytest.mark.slow
def test_a_global_batch_larger_than_an_epoch_leaves_no_run_folder(mini_soccernet, tmp_path):
    out = tmp_path / "run"
    completed = run_script(spotting_args(mini_soccernet, out, "run.global_batch_size=4096"), check=False)
    expect_user_error(completed, "run.global_batch_size=4096 is larger than one epoch")
    assert not out.exists()


@pytest.mark.slow
def test_a_warmup_longer_than_the_run_leaves_no_run_folder(mini_soccernet, tmp_path):
    out = tmp_path / "run"  # a paper config cut short for a smoke test: its warmup epochs outlast the run
    completed = run_script(spotting_args(mini_soccernet, out, "optim.warmup_epochs=5"), check=False)
    expect_user_error(completed, "optim.warmup_epochs=5", "is longer than the run", "lower optim.warmup_epochs")
    assert not out.exists()


@pytest.mark.slow
def test_fp16_on_a_cpu_is_refused_before_anything_is_written(mini_soccernet, tmp_path):
    out = tmp_path / "run"
    completed = run_script(spotting_args(mini_soccernet, out, "run.precision=fp16", "run.device=cpu"), check=False)
    expect_user_error(completed, "run.precision=fp16 needs a CUDA device")
    assert not out.exists()


# ----------------------------------------------------------------------------------------------------------------------
# Bad files: every one named, before the first step
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_truncated_videos_are_all_named_before_the_first_step(mini_soccernet, tmp_path):
    root = copy_of(mini_soccernet, tmp_path)
    games = (root / "train.txt").read_text().split("\n")[:2]
    for game in games:  # cut two halves at a third of their bytes: their containers still say 40 s
        video = root / game / "1_224p.mkv"
        video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    out = tmp_path / "run"
    message = expect_user_error(run_script(spotting_args(root, out), check=False), "2 of 4 halves cannot be read")
    for game in games:
        assert f"{game} half 1" in message and "looks truncated" in message
    assert not out.exists()


@pytest.mark.slow
def test_a_store_entry_shorter_than_its_json_is_named(mini_soccernet, tmp_path):
    root = copy_of(mini_soccernet, tmp_path)
    game = (root / "train.txt").read_text().split("\n")[0]
    entry = root / "store" / game / "2.mkv"
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    out = tmp_path / "run"
    completed = run_script(spotting_args(root, out, "data.source=store", f"data.store={root / 'store'}"), check=False)
    message = expect_user_error(completed, "cannot be read", f"{game} half 2")
    assert "2.mkv" in message and not out.exists()


@pytest.mark.slow
def test_a_bank_shorter_than_its_video_is_named_before_the_first_step(mini_soccernet, tmp_path):
    root = copy_of(mini_soccernet, tmp_path)
    games = (root / "train.txt").read_text().split("\n")[:2]
    for game in games:  # 40-s halves: keep 20 rows of the 1 fps bank
        path = root / game / "2_baidu_soccer_embeddings.npy"
        np.save(path, np.load(path)[:20])
    out = tmp_path / "run"
    completed = run_script(["train_distill.py", "--config", "configs/distill/tiny_mini.yaml", f"data.root={root}",
                            "data.source=video", f"run.output_dir={out}", "model.init_checkpoint=", "loss.dim=64",
                            "data.bank.name=baidu_soccer_embeddings.npy", "run.num_workers=0"], check=False)
    message = expect_user_error(completed, "2 of 4 feature banks cannot be used")
    for game in games:
        assert (f"{game}/2_baidu_soccer_embeddings.npy: 20 rows at 1 fps cover 20.0 s, but its video lasts 40.0 s"
                in message)
    assert not out.exists()


@pytest.mark.slow
def test_a_bad_labels_file_is_named_without_a_traceback(mini_soccernet, tmp_path):
    root = copy_of(mini_soccernet, tmp_path)
    game = (root / "train.txt").read_text().split("\n")[0]
    labels = json.loads((root / game / "Labels-v2.json").read_text())
    labels["annotations"][3]["label"] = "Goall"
    (root / game / "Labels-v2.json").write_text(json.dumps(labels))
    expect_user_error(run_script(spotting_args(root, tmp_path / "run"), check=False),
                      "annotation 3: unknown 'label' 'Goall'; did you mean 'Goal'?")


@pytest.mark.slow
def test_a_missing_data_root_and_a_wrong_checkpoint_are_named(mini_soccernet, tmp_path):
    expect_user_error(run_script(spotting_args(tmp_path / "nowhere", tmp_path / "a"), check=False),
                      str(tmp_path / "nowhere"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    message = expect_user_error(run_script(spotting_args(mini_soccernet, tmp_path / "b",
                                                         f"model.init_checkpoint={garbage}"), check=False),
                                "garbage.pth cannot be read as a checkpoint")
    assert "weights_only" not in message


@pytest.mark.slow
def test_an_unwritable_output_folder_is_named(mini_soccernet, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    completed = run_script(spotting_args(mini_soccernet, blocker / "run"), check=False)
    expect_user_error(completed, f"cannot write {blocker / 'run'}", "a part of the path is a file")


@pytest.mark.slow
def test_an_image_size_the_patches_do_not_divide_is_refused_before_training(mini_soccernet, tmp_path):
    out = tmp_path / "run"
    expect_user_error(run_script(spotting_args(mini_soccernet, out, "model.img_size=60"), check=False),
                      "model.img_size=60 does not suit vit_micro: expected a multiple of its patch size, 16")
    assert not out.exists()


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoint writes: a full disk names the path and leaves nothing behind; a broken last checkpoint falls back
# ----------------------------------------------------------------------------------------------------------------------
def test_a_full_disk_names_the_path_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "run" / LAST_CHECKPOINT

    def full_disk(obj, handle):
        handle.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(UserError, match=f"cannot write {path}: the disk is full"):
        save_checkpoint(path, {"step": 1})
    assert list(path.parent.iterdir()) == []


@pytest.mark.slow
def test_stale_temporary_files_are_removed_and_a_broken_last_checkpoint_falls_back(mini_soccernet, tmp_path):
    out = tmp_path / "run"
    run_script(spotting_args(mini_soccernet, out, "run.epochs=2", "run.save_every_epochs=1"))
    assert (out / "checkpoint_previous.pth").is_file()  # the epoch-1 checkpoint, kept when epoch 2's was written
    (out / ".checkpoint_last.pth.tmp4242").write_bytes(b"left by a killed write")
    (out / LAST_CHECKPOINT).write_bytes(b"cut short by a full disk")
    completed = run_script(spotting_args(mini_soccernet, out, "run.epochs=3", "run.save_every_epochs=1",
                                         "run.allow_changes=[run.epochs]"))
    assert not (out / ".checkpoint_last.pth.tmp4242").exists()
    assert "removed" in completed.stdout and ".checkpoint_last.pth.tmp4242" in completed.stdout
    assert "cannot be read as a checkpoint" in completed.stdout and "resuming from" in completed.stdout
    assert "checkpoint_previous.pth (step" in completed.stdout
    assert torch.load(out / LAST_CHECKPOINT, weights_only=True)["epoch"] == 3


# ----------------------------------------------------------------------------------------------------------------------
# data.prepare and data.features
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_prepare_reports_every_bad_half_and_converts_the_others(mini_soccernet, tmp_path):
    root = copy_of(mini_soccernet, tmp_path)
    games = (root / "train.txt").read_text().split("\n")[:2]
    for game in games:
        video = root / game / "2_224p.mkv"
        video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    out = tmp_path / "store"
    completed = run_script(["-m", "data.prepare", "--root", str(root), "--out", str(out), "--games",
                            str(root / "train.txt"), "--size", "64x64"], check=False)
    message = expect_user_error(completed, "2 of 4 halves could not be converted (the others were)")
    assert all(f"{game}/2_224p.mkv" in message for game in games)
    assert all((out / game / "1.json").is_file() and not (out / game / "2.json").exists() for game in games)
    assert not list(out.rglob(".*tmp*"))


@pytest.mark.slow
def test_prepare_names_a_native_odd_height_video(tmp_path):
    from data.video import write_video

    root = tmp_path / "root"
    game = "league/2000-2001/2000-01-01 - 20-00 A 0 - 0 B"
    for half in (1, 2):
        write_video(root / game / f"{half}_224p.mkv", np.zeros((10, 223, 398, 3), np.uint8), 25,
                    options={"preset": "ultrafast"}, pix_fmt="yuv444p")
    completed = run_script(["-m", "data.prepare", "--root", str(root), "--out", str(tmp_path / "store"),
                            "--size", "native"], check=False)
    expect_user_error(completed, "1_224p.mkv: frames of 398x223 cannot be stored as H.264",
                      "use --format jpeg")


def banks(root: Path, games: list[str], rows: int = 30, dim: int = 16, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for game in games:
        for half in (1, 2):
            (root / game).mkdir(parents=True, exist_ok=True)
            np.save(root / game / f"{half}_raw.npy", rng.normal(size=(rows, dim)).astype(np.float32))


def features(root: Path, games_file: Path):
    return run_script(["-m", "data.features", "--root", str(root), "--fit-split", str(games_file), "--apply-split",
                       str(games_file), "--name", "raw.npy", "--out-name", "pca.npy", "--dim", "4"], check=False)


def test_features_refuse_non_finite_rows_naming_file_and_rows(tmp_path):
    games = [f"l/s/game {index}" for index in range(3)]
    banks(tmp_path, games)
    (tmp_path / "games.txt").write_text("\n".join(games))
    bad = np.load(tmp_path / games[1] / "2_raw.npy")
    bad[[4, 17]] = np.nan
    np.save(tmp_path / games[1] / "2_raw.npy", bad)
    expect_user_error(features(tmp_path, tmp_path / "games.txt"),
                      f"{games[1]}/2_raw.npy: 2 rows with NaN or inf (rows 4, 17)")
    assert not list(tmp_path.rglob("*pca.npy"))  # no reduced bank written, NaN or not


def test_features_blame_the_bank_whose_width_differs_from_most(tmp_path):
    games = [f"l/s/game {index}" for index in range(3)]
    banks(tmp_path, games)
    (tmp_path / "games.txt").write_text("\n".join(games))
    np.save(tmp_path / games[0] / "1_raw.npy", np.zeros((30, 12), np.float32))  # the first file read is the odd one
    message = expect_user_error(features(tmp_path, tmp_path / "games.txt"),
                                f"{games[0]}/1_raw.npy: 12-d rows, but 5 of 6 banks are 16-d")
    assert message.count("-d rows") == 1


# ----------------------------------------------------------------------------------------------------------------------
# What worked but confused: warnings that say what is going on, errors that say where a value came from
# ----------------------------------------------------------------------------------------------------------------------
def test_a_rotated_video_is_read_as_stored_with_a_warning(tmp_path, caplog):
    import av

    from data.video import probe_video

    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)
        for _ in range(10):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with caplog.at_level("WARNING", logger="comedian"):
        info = probe_video(path)
    assert info.rotation == 90 and (info.width, info.height) == (64, 48)
    assert "phone.mp4: the file asks players to turn its frames 90 degrees; they are read as stored" in caplog.text


@pytest.mark.slow
def test_events_after_the_end_of_their_video_are_counted(mini_soccernet, tmp_path):
    root = copy_of(mini_soccernet, tmp_path)
    game = (root / "train.txt").read_text().split("\n")[0]
    labels = json.loads((root / game / "Labels-v2.json").read_text())
    late = dict(labels["annotations"][0], gameTime="1 - 00:45", position="45000")  # the halves last 40 s
    labels["annotations"] += [late, dict(late, position="52000")]
    (root / game / "Labels-v2.json").write_text(json.dumps(labels))
    completed = run_script(spotting_args(root, tmp_path / "run", "run.max_steps_per_epoch=1", "eval.every_epochs=0"))
    assert f"2 training annotations lie after the end of their half's video and are never targets: {game} half 1 (2)" \
        in completed.stdout


@pytest.mark.slow
def test_a_nan_confidence_is_scored_as_the_official_evaluator_does_with_a_warning(tmp_path):
    from tests.random_sets import write_random_set

    labels, predictions, games = write_random_set(tmp_path, 2, seed=1, half_seconds=300, events_per_half=20,
                                                  predictions_per_class_per_half=3)
    path = predictions / games[1] / "results_spotting.json"
    document = json.loads(path.read_text())
    for prediction in document["predictions"][:3]:
        prediction["confidence"] = float("nan")
    path.write_text(json.dumps(document))
    completed = run_script(["evaluate.py", "score", "--labels", str(labels), "--predictions", str(predictions)])
    assert f"{path}: 3 predictions have a NaN confidence" in completed.stderr


@pytest.mark.slow
def test_a_relative_data_root_stored_in_a_checkpoint_says_where_it_came_from(tmp_path):
    path = spotting_checkpoint(tmp_path / "best.pth", "model.window_seconds=8", "run.output_dir=runs/x",
                               "data.root=mini_soccernet_somewhere")  # relative, as the training run saw it
    completed = run_script(["evaluate.py", "test", "--checkpoint", str(path), "--split", "test"], check=False)
    expect_user_error(completed, "data.root 'mini_soccernet_somewhere' (from the config stored in", "best.pth",
                      "a relative path is read from the working directory", "give data.root=")


@pytest.mark.slow
def test_evaluate_names_a_truncated_video_without_a_traceback(mini_soccernet, tmp_path):
    root = copy_of(mini_soccernet, tmp_path)
    game = (root / "test.txt").read_text().split("\n")[0]
    video = root / game / "2_224p.mkv"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    path = spotting_checkpoint(tmp_path / "best.pth", "model.window_seconds=8", f"run.output_dir={tmp_path / 'run'}",
                               f"data.root={root}", "data.source=video")
    completed = run_script(["evaluate.py", "test", "--checkpoint", str(path), "--split", "test.txt"], check=False)
    expect_user_error(completed, "2_224p.mkv: the container says", "looks truncated")


@pytest.mark.slow
def test_a_checkpoint_of_the_wrong_stage_or_model_is_named(mini_soccernet, tmp_path):
    from models.registry import build_spatial
    from models.sce import SCEModel

    for name in ("vit_micro", "swin_micro"):
        model = SCEModel(build_spatial(name, img_size=64), 16, 8, 16)
        save_checkpoint(tmp_path / f"{name}.pth", checkpoint_dict(model.state_dict(), {"model": {"name": name}}, "ssl"))
    ssl = tmp_path / "vit_micro.pth"
    completed = run_script(["train_distill.py", "--config", "configs/distill/tiny_mini.yaml",
                            f"data.root={mini_soccernet}",
                            f"run.output_dir={tmp_path / 'a'}", f"model.init_checkpoint={tmp_path / 'swin_micro.pth'}",
                            "data.bank.name=baidu_soccer_embeddings.npy", "loss.dim=64", "run.global_batch_size=4"],
                           check=False)
    expect_user_error(completed, "holds a stage-1 'swin_micro' trunk, but vivit_micro needs 'vit_micro'")
    completed = run_script(spotting_args(mini_soccernet, tmp_path / "b", f"model.init_checkpoint={ssl}",
                                         "model.freeze_trunk=true"), check=False)
    assert completed.returncode == 0  # a stage-1 trunk is a valid start for stage 3 (the stage-1-only ablation)
    completed = run_script(["evaluate.py", "test", "--checkpoint", str(ssl), "--split", "test.txt",
                            f"data.root={mini_soccernet}"], check=False)
    expect_user_error(completed, "vit_micro.pth is a checkpoint of stage 'ssl', expected a 'spotting' checkpoint")
    assert not (tmp_path / "a").exists()
