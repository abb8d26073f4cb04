"""Players and a ball on the generated pitch (data/synthetic_players.py): they run like players, the ball goes from
one to another, they pan with the pitch, and the same seed draws the same match."""

import numpy as np

from data.synthetic import HEIGHT, WIDTH, Content, render_half, sample_events
from data.synthetic_players import BALL, PIXELS_PER_METRE, PLAYER_H, PLAYER_W, RUN_SPEED, sample_players
from tests.conftest import run_script

FPS = 25


def test_players_run_on_the_grass_at_football_speeds_and_the_ball_is_passed_between_them():
    scene, grass_top = (384, 1194), 96
    match = sample_players(np.random.default_rng(0), 22, 30 * FPS, FPS, scene, grass_top)
    assert match.players.shape == (30 * FPS, 22, 2) and match.ball.shape == (30 * FPS, 2)
    x, y = match.players[..., 0], match.players[..., 1]
    assert x.min() >= 0 and x.max() <= scene[1] - PLAYER_W and y.min() >= grass_top and y.max() <= scene[0] - PLAYER_H
    speeds = np.hypot(*np.diff(match.players, axis=0).transpose(2, 0, 1)) * FPS / PIXELS_PER_METRE  # m/s
    assert 0.5 * RUN_SPEED < np.median(speeds) < 1.5 * RUN_SPEED and speeds.max() < 2 * RUN_SPEED
    # smooth paths: a player's heading turns little from one frame to the next
    steps = np.diff(match.players, axis=0)
    headings = np.unwrap(np.arctan2(steps[..., 1], steps[..., 0]), axis=0)
    assert np.median(np.abs(np.diff(headings, axis=0))) < 0.3
    # the ball is at a player's feet or flying between two: it changes carrier every 1 to 3 s
    feet = match.players + np.array([PLAYER_W / 2, PLAYER_H])
    nearest = np.linalg.norm(feet - match.ball[:, None], axis=2)  # (F, P)
    held = nearest.min(axis=1) < 1e-3
    carriers = nearest.argmin(axis=1)[held]
    passes = np.count_nonzero(np.diff(carriers))
    assert 0.6 < held.mean() < 1 and 30 / 3 - 2 <= passes <= 30 / 1, (held.mean(), passes)
    again = sample_players(np.random.default_rng(0), 22, 30 * FPS, FPS, scene, grass_top)
    assert np.array_equal(again.players, match.players) and np.array_equal(again.ball, match.ball)


def test_a_half_with_players_draws_them_in_two_kits_over_the_same_pitch():
    events = sample_events(np.random.default_rng(1), 8, 12)
    plain = np.stack(list(render_half(np.random.default_rng(2), 8, events)))
    crowd = np.stack(list(render_half(np.random.default_rng(2), 8, events, content=Content(players=22))))
    assert plain.shape == crowd.shape == (8 * FPS, HEIGHT, WIDTH, 3)
    changed = np.any(crowd != plain, axis=3)  # (F, H, W): where players or the ball are
    # a few players in view, each about 12 x 26 px: a small share of the frame, in every frame
    share = changed.mean(axis=(1, 2))
    assert share.min() > 0 and share.max() < 0.1, (share.min(), share.max())
    colours = {tuple(pixel) for pixel in crowd[changed]}
    assert 2 <= len(colours) <= 3 + len(events) * 2  # two kits (and the ball when in view), glyphs drawn over them
    again = np.stack(list(render_half(np.random.default_rng(2), 8, events, content=Content(players=22))))
    assert np.array_equal(again, crowd)
    assert BALL < PLAYER_W < PLAYER_H


def test_players_on_another_layout_than_the_mini_soccernet_are_refused(tmp_path):
    failed = run_script(["-m", "data.synthetic", "--out", str(tmp_path / "bas"), "--dataset", "soccernet_ball_2024",
                         "--players", "22"], check=False)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "--players 22 with --dataset soccernet_ball_2024" in failed.stderr and not (tmp_path / "bas").exists()
