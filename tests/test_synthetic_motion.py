"""Events visible as movement over time (data/synthetic.py, `--events motion`; docs/TOY_STUDY.md, change 3): one disc,
the same for every class, crossing the frame in its class's direction and speed, so that the class is in the motion
and not in any one frame; and the same events, labels and bank as the glyph world of the same seed."""

import json
import math

import numpy as np

from data.synthetic import (DISC, HEIGHT, MOTION_TRACE, SOURCE_FPS, WIDTH, Content, generate, motion_velocity,
                            render_half)
from tests.conftest import run_script


def disc_centres(events: list[tuple], seconds: int = 6) -> dict[int, np.ndarray]:
    """{frame index: (x, y) centre of what the events drew}, from a half rendered with and without them."""
    empty = np.stack(list(render_half(np.random.default_rng(3), seconds, [], content=Content(events="motion"))))
    drawn = np.stack(list(render_half(np.random.default_rng(3), seconds, events, content=Content(events="motion"))))
    centres = {}
    for index in np.flatnonzero(np.any(drawn != empty, axis=(1, 2, 3))):
        ys, xs = np.nonzero(np.any(drawn[index] != empty[index], axis=2))
        centres[int(index)] = np.array([xs.mean(), ys.mean()])
    return centres


def test_a_moving_event_crosses_the_frame_at_its_class_velocity_for_1_5_s_whatever_its_class():
    shown = []  # how many frames each class's disc is drawn in
    for class_index in (2, 13):  # a slow one and a fast one, 40 degrees x 2 and x 4 round
        centres = disc_centres([(3000, class_index, True)])
        frames = sorted(centres)
        # drawn within MOTION_TRACE of the event, and nowhere else
        assert frames == list(range(math.ceil((3 - MOTION_TRACE) * SOURCE_FPS),
                                    math.floor((3 + MOTION_TRACE) * SOURCE_FPS) + 1))
        first, last = centres[frames[0]], centres[frames[-1]]
        velocity = (last - first) / ((frames[-1] - frames[0]) / SOURCE_FPS)  # px/s, measured on the frames
        assert np.allclose(velocity, motion_velocity(class_index), atol=3.0), (class_index, velocity)
        for centre in (first, last):  # the whole disc stays in the frame
            assert DISC <= centre[0] <= WIDTH - DISC and DISC <= centre[1] <= HEIGHT - DISC
        shown.append(len(frames))
    assert motion_velocity(2) != motion_velocity(11)  # same direction, two speeds
    assert math.isclose(np.hypot(*motion_velocity(2)) * 110 / 50, np.hypot(*motion_velocity(11)))
    assert shown[0] == shown[1]  # every class shows for as long


def test_a_motion_world_has_the_glyph_worlds_labels_and_bank_and_other_videos(tmp_path):
    glyphs = generate(tmp_path / "glyphs", games=2, seconds=8, seed=5, bank_dim=16)
    motion = generate(tmp_path / "motion", games=2, seconds=8, seed=5, content=Content(events="motion"), bank_dim=16)
    assert glyphs == motion
    for game in glyphs:
        labels = [json.loads((tmp_path / world / game / "Labels-v2.json").read_text())
                  for world in ("glyphs", "motion")]
        assert labels[0] == labels[1] and labels[0]["annotations"]
        videos = [(tmp_path / world / game / "1_224p.mkv").read_bytes() for world in ("glyphs", "motion")]
        assert videos[0] != videos[1]
        banks = [np.load(tmp_path / world / game / "1_baidu_soccer_embeddings.npy") for world in ("glyphs", "motion")]
        # the same class embeddings and noise; only the looks of the frames (the disc instead of a glyph) differ
        assert banks[0].shape == banks[1].shape and 0 < np.abs(banks[0] - banks[1]).max() < 10


def test_moving_events_on_another_layout_than_the_mini_soccernet_are_refused(tmp_path):
    failed = run_script(["-m", "data.synthetic", "--out", str(tmp_path / "bas"), "--dataset", "soccernet_ball_2025",
                         "--events", "motion"], check=False)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "--events motion with --dataset soccernet_ball_2025" in failed.stderr and not (tmp_path / "bas").exists()
