"""Inputs and outputs checked before the work, not in its middle: frame folders, store entries, feature banks, splits,
output folders; and an interrupted run that continues where it stopped."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torchvision

from data.catalog import BUILT_IN
from data.features import FeatureBank
from data.prepare import Preparation, prepare
from data.sources import JpegFolderSource, StoreSource, VideoSource
from data.video import VideoError
from tests.conftest import ROOT, run_script
from tests.test_spot import own_video, tiny_checkpoint  # noqa: F401 (a fixture)
from tests.test_user_errors import copy_of, expect_user_error, spotting_args
from utils.errors import EXIT_INTERRUPTED

V2 = BUILT_IN["soccernet_v2"]


def jpeg_folder(folder, count=6, size=(32, 48)):
    folder.mkdir(parents=True)
    for index in range(count):
        image = torch.full((3, *size), 40 * index % 255, dtype=torch.uint8)
        torchvision.io.write_jpeg(image, str(folder / f"{index + 1:08d}.jpg"))
    return folder


def test_frame_folders_are_checked_at_start_and_name_the_file_later(tmp_path):
    jpeg_folder(tmp_path / "frames" / "g" / "1")
    source = JpegFolderSource(tmp_path / "frames")
    assert source.num_frames("g", 1) == 6 and source.read("g", 1, 0, 6).shape == (6, 32, 48, 3)
    (tmp_path / "frames" / "g" / "1" / "00000006.jpg").write_bytes(b"")  # a 0-byte last frame: found at start-up
    with pytest.raises(VideoError, match="00000006.jpg: cannot decode JPEG"):
        JpegFolderSource(tmp_path / "frames").num_frames("g", 1)
    jpeg_folder(tmp_path / "other" / "g" / "1")
    torchvision.io.write_jpeg(torch.zeros((3, 40, 48), dtype=torch.uint8),
                              str(tmp_path / "other" / "g" / "1" / "00000003.jpg"))
    source = JpegFolderSource(tmp_path / "other")
    assert source.num_frames("g", 1) == 6  # first and last agree
    with pytest.raises(VideoError, match="00000003.jpg: 48x40 pixels, but the folder's first frame has 48x32"):
        source.read("g", 1, 0, 6)  # a window that reaches the odd frame names it


@pytest.mark.slow
def test_a_store_entry_whose_json_records_fewer_frames_is_refused(mini_soccernet, tmp_path):
    root = copy_of(mini_soccernet, tmp_path)
    game = (root / "train.txt").read_text().splitlines()[0]
    meta = root / "store" / game / "1.json"
    document = json.loads(meta.read_text())
    document["num_frames"] -= 5
    meta.write_text(json.dumps(document))
    with pytest.raises(VideoError, match=f"1.mkv: holds {document['num_frames'] + 5} frames but its JSON records "
                                         f"{document['num_frames']}"):
        StoreSource(root / "store").num_frames(game, 1)


def test_a_bank_with_nan_rows_is_named_before_training(tmp_path):
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    bank = np.zeros((41, 8), np.float32)
    bank[[3, 17]] = np.nan
    np.save(tmp_path / "a" / "b" / "c" / "1_bank.npy", bank)
    with pytest.raises(ValueError, match="1_bank.npy: 2 rows hold NaN or infinite values \\(rows \\[3, 17\\]\\)"):
        FeatureBank(tmp_path, "bank.npy").check({("a/b/c", 1): 80}, 8, video_fps=2)


@pytest.mark.slow
def test_a_game_in_the_training_and_the_validation_split_is_refused(mini_soccernet, tmp_path):
    (tmp_path / "valid.txt").write_text((mini_soccernet / "valid.txt").read_text()
                                        + (mini_soccernet / "train.txt").read_text().splitlines()[0] + "\n")
    out = tmp_path / "run"
    completed = run_script(spotting_args(mini_soccernet, out, f"data.valid_split={tmp_path / 'valid.txt'}"),
                           check=False)
    game = (mini_soccernet / "train.txt").read_text().splitlines()[0]
    expect_user_error(completed, "1 games are in both data.train_split='train.txt' and data.valid_split=", game)
    assert not out.exists()


# ----------------------------------------------------------------------------------------------------------------------
# Outputs, checked before the work
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_unwritable_outputs_are_refused_before_inference(mini_soccernet, tiny_checkpoint, tmp_path):  # noqa: F811
    (tmp_path / "file").write_text("")
    video = own_video(tmp_path / "clip.mp4", 12, 25, (224, 398), "libx264")
    start = time.time()
    spot = run_script(["evaluate.py", "spot", str(video), "--checkpoint", str(tiny_checkpoint), "--out",
                       str(tmp_path / "file" / "out")], check=False)
    expect_user_error(spot, f"cannot write {tmp_path / 'file' / 'out'}: a part of the path is a file")
    predict = run_script(["evaluate.py", "predict", "--checkpoint", str(tiny_checkpoint), "--split", "test.txt",
                          f"data.root={mini_soccernet}", "--out", str(tmp_path / "file" / "out")], check=False)
    expect_user_error(predict, f"cannot write {tmp_path / 'file' / 'out'}")
    assert "inference" not in predict.stderr  # no progress bar: nothing was inferred


def test_postprocess_refuses_a_threshold_above_one_and_an_earlier_output(tmp_path):
    from tests.test_postprocess import make_raw

    game = "france_ligue-1/2016-2017/2016-08-28 - 21-45 Monaco 3 - 1 Paris SG"
    make_raw(tmp_path / "raw", game, 4)
    command = ["evaluate.py", "postprocess", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "preds")]
    expect_user_error(run_script([*command, "--threshold", "2"], check=False),
                      "(--threshold): 'nms_threshold' = 2.0 is out of range: expected a value >= 0 and < 1")
    assert not (tmp_path / "preds").exists()
    run_script(command)
    written = (tmp_path / "preds" / game / "results_spotting.json").stat().st_mtime_ns
    expect_user_error(run_script(command, check=False), f"{tmp_path / 'preds'} already holds predictions",
                      "--overwrite")
    assert (tmp_path / "preds" / game / "results_spotting.json").stat().st_mtime_ns == written
    run_script([*command, "--overwrite", "--threshold", "0.5"])
    ensemble = ["evaluate.py", "ensemble", "--raw", str(tmp_path / "raw"), str(tmp_path / "raw"), "--out-raw",
                str(tmp_path / "raw"), "--out", str(tmp_path / "elsewhere")]
    expect_user_error(run_script(ensemble, check=False), f"{tmp_path / 'raw'} already holds raw scores")


# ----------------------------------------------------------------------------------------------------------------------
# Interruptions
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ctrl_c_in_spot_ends_cleanly_and_the_rerun_continues(tiny_checkpoint, tmp_path):  # noqa: F811
    videos = [own_video(tmp_path / f"clip{index}.mp4", 90, 25, (224, 398), "libx264") for index in range(3)]
    out = tmp_path / "out"
    command = [sys.executable, "evaluate.py", "spot", *map(str, videos), "--checkpoint", str(tiny_checkpoint),
               "--out", str(out), "--decode-workers", "2"]
    # Ctrl-C's default action in the child, whatever this process inherited: a test suite started in the background
    # by a non-interactive shell ignores SIGINT, its children too, and the run then ended 0 with all three videos
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not (out / "clip0" / "index.html").exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == EXIT_INTERRUPTED and "Traceback" not in stderr, stderr[-3000:]
    assert "interrupted: what was finished is kept" in stderr
    page = (out / "clip0" / "index.html").stat().st_mtime_ns
    rerun = run_script(command[1:])
    assert "clip0: already spotted" in rerun.stdout and (out / "clip2" / "index.html").is_file()
    assert (out / "clip0" / "index.html").stat().st_mtime_ns == page  # not done again


@pytest.mark.slow
def test_prepare_removes_what_a_killed_run_left(mini_soccernet, tmp_path):
    root = copy_of(mini_soccernet, tmp_path)
    game = (root / "test.txt").read_text().splitlines()[0]
    leftovers = [root / "store" / game / ".1.tmp4999999.mkv", root / "store" / game / ".2.tmp4999999"]  # no such pid
    leftovers[0].write_bytes(b"partial")
    leftovers[1].mkdir()
    (root / "store" / game / "1.json").unlink()
    assert prepare(V2, root, root / "store", [game], Preparation(size=(64, 64))) == 1
    assert not any(path.exists() for path in leftovers)
    assert StoreSource(root / "store").num_frames(game, 1) == VideoSource(V2, root).num_frames(game, 1)


@pytest.mark.parametrize("content, cause", [("{not json", "JSONDecodeError"),
                                            ('{"tight": {"a_mAP": "x", "a_mAP_per_class": {}}}', "TypeError"),
                                            ('{"tight": {"a_mAP": 0.5}}', "KeyError")])
def test_table_names_a_malformed_scores_file(tmp_path, content, cause):
    (tmp_path / "scores.json").write_text(content)
    completed = run_script(["evaluate.py", "table", "--run", f"mine={tmp_path / 'scores.json'}"], check=False)
    expect_user_error(completed, f"--run mine: {tmp_path / 'scores.json'} is not a scores.json of evaluate.py test",
                      cause)
