"""Games, splits, labels, targets, the generated mini-SoccerNet and the three frame sources."""

import json
import re
from fractions import Fraction

import numpy as np
import pytest
import torch

from configs.schema import FramesConfig
from data.augment import resize_frames
from data.catalog import BUILT_IN, read_games_file
from data.colour import YUV420_KEY, batch_frames, planes_fit
from data.datasets import ClipPairDataset, WindowDataset
from data.jpeg_batches import ENCODED_KEY, clip_views, collate_encoded
from data.labels import Annotation, LabelError
from data.prepare import Preparation, prepare
from data.samplers import Segment
from data.sources import JpegFolderSource, StoreSource, VideoSource, build_source
from data.synthetic import BANK_NAME, GLYPH, GLYPHS, PALETTE, Content, generate, glyph_origin
from data.targets import frame_targets, pool_tokens
from data.video import VideoError
from utils.config import ConfigError
from utils.plan import Sample
from utils.rates import Rates, exact_fps, fps_to_json
from evaluation.scoring import score

V2 = BUILT_IN["soccernet_v2"]
CLASSES = V2.classes
split_games = V2.games


def parse_labels(path, on_unknown="error"):
    """A SoccerNet-v2 labels file read as the dataset reads the labels of a game."""
    return V2.labels(path.parent.parent, path.parent.name, on_unknown)


# ----------------------------------------------------------------------------------------------------------------------
# Splits and games
# ----------------------------------------------------------------------------------------------------------------------
def test_official_split_lists_ship_with_the_project():
    sizes = {split: len(split_games(split)) for split in ("train", "valid", "test", "challenge")}
    assert sizes == {"train": 300, "valid": 100, "test": 100, "challenge": 50}
    every = [game for split in sizes for game in split_games(split)]
    assert len(set(every)) == 550
    assert "england_epl/2014-2015/2015-05-17 - 18-00 Manchester United 1 - 1 Arsenal" in split_games("test")
    with pytest.raises(ValueError, match="'valid'"):
        split_games("val")


def test_custom_games_file_and_missing_games_listed_together(tmp_path):
    games = ["a league/2015-2016/2015-08-16 - 18-00 Atl. Madrid 3 - 0 St-Etienne", "x/y/z"]
    games_file = tmp_path / "mine.txt"
    games_file.write_text("# my split\n" + "\n".join(games) + "\n\n")
    assert read_games_file(games_file) == games
    (tmp_path / "root" / games[0]).mkdir(parents=True)
    (tmp_path / "root" / games[0] / "Labels-v2.json").write_text("{}")
    assert V2.discover(tmp_path / "root") == [games[0]]
    (tmp_path / "preds").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        score(V2, tmp_path / "root", tmp_path / "preds", games + ["p/q/r"])
    assert all(game in str(error.value) for game in ["x/y/z", "p/q/r"]) and "2 of 3 games" in str(error.value)


# ----------------------------------------------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------------------------------------------
def write_labels(path, annotations):
    path.write_text(json.dumps({"UrlLocal": "g/", "annotations": annotations}))
    return path


GOOD = {"gameTime": "2 - 01:26", "label": "Ball out of play", "position": "86276", "team": "away",
        "visibility": "not shown"}


def test_labels_parse_into_typed_records(tmp_path):
    labels = parse_labels(write_labels(tmp_path / "Labels-v2.json", [GOOD]))
    assert labels.annotations == [Annotation(half=2, position_ms=86276, label=CLASSES.index("Ball out of play"),
                                             visible=False, team="away")]
    assert CLASSES[0] == "Penalty" and CLASSES[16] == "Yellow->red card" and len(CLASSES) == 17


@pytest.mark.parametrize("change, message", [
    ({"label": "Throw in"}, "annotation 1: unknown 'label' 'Throw in'; did you mean 'Throw-in'?"),
    ({"position": "86.5"}, "annotation 1: 'position' must be integer milliseconds"),
    ({"gameTime": "3 - 01:26"}, "annotation 1: 'gameTime' must give half 1 or 2"),
    ({"team": None}, "annotation 1: missing key 'team'"),
])
def test_malformed_labels_name_file_index_and_field(tmp_path, change, message):
    bad = dict(GOOD)
    for key, value in change.items():
        if value is None:
            del bad[key]
        else:
            bad[key] = value
    with pytest.raises(LabelError) as error:
        parse_labels(write_labels(tmp_path / "Labels-v2.json", [GOOD, bad]))
    assert "Labels-v2.json" in str(error.value) and message in str(error.value)


def test_bad_json_is_named(tmp_path):
    path = tmp_path / "Labels-v2.json"
    path.write_text("{not json")
    with pytest.raises(LabelError, match="Labels-v2.json: not valid JSON"):
        parse_labels(path)


def test_unknown_labels_can_be_counted_instead(tmp_path):
    labels = parse_labels(write_labels(tmp_path / "Labels-v2.json", [GOOD, dict(GOOD, label="Pass")]),
                          on_unknown="warn")
    assert len(labels.annotations) == 1 and labels.unknown_labels == 1


# ----------------------------------------------------------------------------------------------------------------------
# Targets
# ----------------------------------------------------------------------------------------------------------------------
def annotation(half, ms, label=0):
    return Annotation(half=half, position_ms=ms, label=label, visible=True, team="home")


def test_frame_targets_mark_frames_within_half_a_second():
    # an action at 10.0 s marks frames 9.5, 10.0, 10.5 (|d| <= 0.5); one at 10.2 s marks 10.0 and 10.5 only
    targets = frame_targets([annotation(1, 10_000, 2), annotation(1, 10_200, 5)], half=1, first_frame=0,
                            num_frames=40, num_classes=17, fps=2)
    assert np.flatnonzero(targets[:, 2]).tolist() == [19, 20, 21]
    assert np.flatnonzero(targets[:, 5]).tolist() == [20, 21]
    assert targets.sum() == 5


def test_frame_targets_at_12_5_fps_mark_the_frames_within_the_radius():
    # 80 ms frames, radius 0.12 s: an action at 10.0 s marks 9.92, 10.0, 10.08 s; one at 10.05 s 10.0, 10.08, 10.16 s
    targets = frame_targets([annotation(1, 10_000, 2), annotation(1, 10_050, 5)], half=1, first_frame=100,
                            num_frames=50, num_classes=12, fps=Fraction(25, 2), radius=0.12)
    assert (np.flatnonzero(targets[:, 2]) + 100).tolist() == [124, 125, 126]
    assert (np.flatnonzero(targets[:, 5]) + 100).tolist() == [125, 126, 127]


def test_rates_convert_seconds_to_whole_tokens_and_name_the_key_otherwise():
    assert exact_fps(12.5) == Fraction(25, 2) and exact_fps("30000/1001") == exact_fps(29.97002997) == Fraction(
        30000, 1001)
    ball, v2 = Rates.of(12.5), Rates.of(2)
    assert ball.token_seconds == Fraction(4, 25) and ball.tokens(10.24, "k") == 64 and ball.frames(5.12, "k") == 64
    assert v2.tokens(64, "k") == 64 and v2.frame_at(2700.3) == 5401 and ball.frame_at(2700.3) == 33754
    with pytest.raises(ConfigError, match=r"eval.window_stride_seconds=5: .* a token is 0.16 s, so this holds 31.250 "
                                          r"tokens; expected a whole number of tokens, e.g. 4.96 or 5.12 s"):
        ball.tokens(5, "eval.window_stride_seconds")
    assert [fps_to_json(exact_fps(value)) for value in (2, 12.5, "30000/1001")] == [2, 12.5, "30000/1001"]


def test_frame_targets_at_window_edges_and_half_boundaries():
    labels = [annotation(1, 64_000, 1), annotation(2, 0, 3), annotation(1, 31_700, 4)]
    # window of frames 64..191 (32 s to 96 s): the 31.7 s action reaches frame 64 (32.0 s) only
    window = frame_targets(labels, half=1, first_frame=64, num_frames=128, num_classes=17, fps=2)
    assert np.flatnonzero(window[:, 4]).tolist() == [0]
    assert np.flatnonzero(window[:, 1]).tolist() == [63, 64, 65]  # 63.5, 64.0, 64.5 s
    assert window[:, 3].sum() == 0  # a second-half label never marks first-half frames
    second = frame_targets(labels, half=2, first_frame=0, num_frames=4, num_classes=17, fps=2)
    assert np.flatnonzero(second[:, 3]).tolist() == [0, 1]  # 0.0 and 0.5 s; nothing before the half starts


def test_token_pooling_is_an_or_over_frame_pairs():
    frames = np.zeros((6, 2), np.float32)
    frames[1, 0] = frames[2, 0] = frames[5, 1] = 1
    assert pool_tokens(frames).tolist() == [[1, 0], [1, 0], [0, 1]]
    batched = np.stack([frames, frames])
    assert pool_tokens(batched).shape == (2, 3, 2)


# ----------------------------------------------------------------------------------------------------------------------
# The generated mini-SoccerNet, read back through every layer
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini")
    games = generate(root, games=3, seconds=24, seed=7, bank_dim=64)
    return root, games


@pytest.mark.slow
def test_generated_layout_and_schemas(mini):
    root, games = mini
    assert V2.discover(root) == sorted(games)
    assert sum(len(read_games_file(root / f"{split}.txt")) for split in ("train", "valid", "test")) == 3
    for game in games:
        league, season, name = game.split("/")
        assert season[4] == "-" and " - " in name
        for half in (1, 2):
            assert (root / game / f"{half}_224p.mkv").is_file()
            bank = np.load(root / game / f"{half}_{BANK_NAME}")
            assert bank.shape == (24, 64) and bank.dtype == np.float32
        document = json.loads((root / game / "Labels-v2.json").read_text())
        assert all(isinstance(value, str) for entry in document["annotations"] for value in entry.values())
        parse_labels(root / game / "Labels-v2.json")  # strict parse succeeds


@pytest.mark.slow
def test_generation_is_deterministic_for_any_number_of_workers_and_unlabelled_games(mini, tmp_path):
    """Two workers instead of one, and 2 unlabelled games beside the 3 labelled ones: the labelled games come out the
    same (labels, banks, splits), so a world with unlabelled video differs from the plain one by those games only."""
    root, games = mini
    again = generate(tmp_path, games=3, seconds=24, seed=7, content=Content(unlabelled=2), bank_dim=64, workers=2)
    assert again[:3] == games and len(set(again)) == 5
    for game in games:
        assert (tmp_path / game / "Labels-v2.json").read_text() == (root / game / "Labels-v2.json").read_text()
        assert np.array_equal(np.load(tmp_path / game / f"1_{BANK_NAME}"), np.load(root / game / f"1_{BANK_NAME}"))
    for split in ("train", "valid", "test"):
        assert read_games_file(tmp_path / f"{split}.txt") == read_games_file(root / f"{split}.txt")
    assert read_games_file(tmp_path / "unlabelled.txt") == again[3:]
    assert read_games_file(tmp_path / "pretrain.txt") == read_games_file(root / "train.txt") + again[3:]
    for game in again[3:]:  # video and bank for stages 1 and 2, no labels
        assert not (tmp_path / game / "Labels-v2.json").exists()
        assert (tmp_path / game / "2_224p.mkv").is_file()
        assert np.load(tmp_path / game / f"2_{BANK_NAME}").shape == (24, 64)
    assert V2.discover(tmp_path) == sorted(games)  # a labels file marks a labelled game


def test_decoded_frames_show_each_event_glyph(mini):
    root, games = mini
    source = VideoSource(V2, root)
    checked = 0
    for game in games:
        for event in parse_labels(root / game / "Labels-v2.json").annotations:
            if not event.visible:
                continue
            frame_index = round(event.position_ms / 500)  # the 2 fps frame nearest the event
            if frame_index >= source.num_frames(game, event.half):
                continue
            frame = source.read(game, event.half, frame_index, 1)[0].float()
            top, left = glyph_origin(event.label)
            inside = frame[top:top + GLYPH, left:left + GLYPH][torch.from_numpy(GLYPHS[event.label])]
            colour_error = (inside.mean(0) - torch.from_numpy(PALETTE[event.label])).abs().max()
            assert colour_error < 20, f"{game} {event}: glyph colour off by {colour_error}"
            checked += 1
    assert checked >= 3
    assert source.num_frames(games[0], 1) == 48


def test_feature_bank_rows_carry_their_events(mini):
    root, games = mini
    # rows of seconds with an event are, on average, further from the bank mean than rows without
    with_event, without = [], []
    for game in games:
        events = parse_labels(root / game / "Labels-v2.json").annotations
        bank = np.load(root / game / f"1_{BANK_NAME}")
        seconds = {event.position_ms // 1000 for event in events if event.half == 1}
        norms = np.linalg.norm(bank - bank.mean(0), axis=1)
        with_event += [norms[s] for s in seconds if s < len(bank)]
        without += [norms[s] for s in range(len(bank)) if all(abs(s - e) > 2 for e in seconds)]
    assert np.mean(with_event) > 1.3 * np.mean(without)


@pytest.mark.slow
def test_store_matches_the_video_and_resumes(mini, tmp_path):
    root, games = mini
    store = tmp_path / "store"
    assert prepare(V2, root, store, games) == 6
    assert prepare(V2, root, store, games) == 0  # everything done: nothing redone
    (store / games[0] / "2.json").unlink()  # as if killed before finishing that half
    assert prepare(V2, root, store, games) == 1
    source, video = StoreSource(store), VideoSource(V2, root)
    assert source.num_frames(games[0], 1) == video.num_frames(games[0], 1) == 48
    stored = source.read(games[0], 1, 10, 20)
    decoded = resize_frames(video.read(games[0], 1, 10, 20), 224).permute(0, 2, 3, 1)
    assert stored.shape == decoded.shape == (20, 224, 224, 3)
    assert (stored.float() - decoded.float()).abs().mean() < 4  # near-transparent re-encoding
    assert source.pixel_aspect(games[0], 1) == pytest.approx(398 / 224)
    data = FramesConfig(root=str(root), source="store", store=str(store), train_split="train")
    assert build_source(data, V2).num_frames(games[0], 2) == 48


@pytest.mark.slow
def test_store_windows_travel_as_yuv_planes_and_convert_to_the_same_frames(mini, tmp_path):
    """What the loader sends from a store at the model's size (YUV planes, converted per batch on the training
    device) equals what it sent before (PyAV's RGB frames): the issue's bound is a mean of 0.5 and a maximum of 2
    levels; libswscale's x86 arithmetic, which data/colour.py reproduces, gives 0 on this project's machines."""
    root, games = mini
    prepare(V2, root, tmp_path / "s64", games[:1], Preparation(size=(64, 64)))
    prepare(V2, root, tmp_path / "s32x64", games[:1], Preparation(size=(32, 64)))
    store = StoreSource(tmp_path / "s64")
    halves = [(games[0], 1), (games[0], 2)]
    assert planes_fit(store, halves, 64)
    assert not planes_fit(store, halves, 32)  # resized in the loader, which needs RGB
    assert not planes_fit(StoreSource(tmp_path / "s32x64"), halves, 32)
    assert not planes_fit(VideoSource(V2, root), halves, 64)
    segments = [Segment(games[0], half, first) for half, first in ((1, 0), (1, 21), (2, 30))]
    rgb = WindowDataset(store, 16, 64)
    planes = WindowDataset(store, 16, 64, yuv420=True)
    assert planes[segments[0]][YUV420_KEY].shape == (16, 96, 64)
    collate = torch.utils.data.default_collate
    before = collate([rgb[segment] for segment in segments])["frames"]  # (3, 16, 3, 64, 64)
    after = batch_frames(collate([planes[segment] for segment in segments]), torch.device("cpu"))
    assert after.shape == before.shape and after.dtype == torch.uint8
    difference = (after.int() - before.int()).abs()
    assert difference.float().mean() <= 0.5 and difference.max() <= 2, (difference.float().mean(), difference.max())
    assert torch.equal(batch_frames({"frames": before}, torch.device("cpu")), before)


@pytest.mark.slow
@pytest.mark.parametrize("kind, size", [("store", (64, 64)), ("store", (224, 224)), ("jpeg", None)])
def test_prepared_frames_are_the_same_bytes_every_time_with_any_workers(mini, tmp_path, kind, size):
    """Same videos, same bytes: the quick start gives the same table twice only if its store does."""
    root, games = mini

    def files(out):
        return {path.relative_to(out).as_posix(): path.read_bytes() for path in sorted(out.rglob("*"))
                if path.is_file()}

    runs = []
    for index, workers in enumerate((1, 2, 1)):
        out = tmp_path / f"run{index}"
        prepare(V2, root, out, games[:2], Preparation(kind, size=size), workers=workers)
        runs.append(files(out))
    assert len(runs[0]) == 8 if kind == "store" else len(runs[0]) > 8
    assert runs[0] == runs[1] == runs[2]


def test_jpeg_clips_decoded_a_batch_at_a_time_are_the_frames_the_workers_cut(mini, tmp_path):
    """Stage 1 on a GPU sends the clips' JPEG files and decodes them per batch (data/jpeg_batches.py); on the CPU
    that path gives exactly the views the workers cut today, crop for crop."""
    root, games = mini
    prepare(V2, root, tmp_path / "jpeg", games[:1], Preparation("jpeg", size=None))
    source = JpegFolderSource(tmp_path / "jpeg")
    samples = [Sample(Segment(games[0], half, first), seed) for half, first, seed in ((1, 0, 5), (1, 31, 6),
                                                                                     (2, 12, 7), (2, 46, 8))]
    decoded = ClipPairDataset(source, 64)
    encoded = ClipPairDataset(source, 64, encoded=True)
    item = encoded[samples[0]]
    assert [data.dtype for data in item[ENCODED_KEY]] == [torch.uint8] * 2 and item["crops"].shape == (2, 4)
    today = torch.utils.data.default_collate([decoded[sample] for sample in samples])  # (4, 2, 2, 3, 64, 64)
    batched = clip_views(collate_encoded([encoded[sample] for sample in samples]), torch.device("cpu"), 64)
    assert batched.shape == today.shape == (4, 2, 2, 3, 64, 64) and torch.equal(batched, today)
    assert not torch.equal(today[:, 0], today[:, 1])  # two different crops per clip
    broken = collate_encoded([encoded[sample] for sample in samples])
    broken[ENCODED_KEY][3] = torch.zeros(10, dtype=torch.uint8)  # a file that a disk cut short
    with pytest.raises(VideoError, match=re.escape(f"{broken['paths'][3]}: cannot decode JPEG")):
        clip_views(broken, torch.device("cpu"), 64)


def test_jpeg_folders_are_read_and_checked(mini, tmp_path):
    import torchvision
    root, games = mini
    video = VideoSource(V2, root)
    frames = video.read(games[0], 1, 0, 6)
    folder = tmp_path / "frames" / games[0] / "1"
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        torchvision.io.write_jpeg(frame.permute(2, 0, 1).contiguous(), str(folder / f"{index + 1:08d}.jpg"), 95)
    source = JpegFolderSource(tmp_path / "frames")
    assert source.num_frames(games[0], 1) == 6
    read = source.read(games[0], 1, 2, 3)
    assert read.shape == (3, 224, 398, 3) and (read.float() - frames[2:5].float()).abs().mean() < 4
    (folder / "00000003.jpg").unlink()
    with pytest.raises(ValueError, match="without gaps"):
        JpegFolderSource(tmp_path / "frames").num_frames(games[0], 1)
    with pytest.raises(ValueError, match="data.store"):
        build_source(FramesConfig(root=str(root), source="store", train_split="train"), V2)
