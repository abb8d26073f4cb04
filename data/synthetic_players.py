"""Players and a ball on the generated pitch (`python -m data.synthetic --players 22`): what moves in football video.

The generated world's first version was a textured pitch under a panning camera, and events drawn as glyphs; nothing
else moved. Real broadcast video is mostly players running and a ball passed between them, whether or not an action
is happening, and a clip differs from the next by that motion as much as by where the camera looks. Here, on the wide
scene the camera pans over (scene coordinates, so they move with the pitch when the camera pans):
- `count` players in two kits (the game's two team colours), upright 12 x 26 px figures at 224p (a broadcast
  player is about that), each running a smooth random walk (a velocity that turns and changes speed slowly) kept on
  the grass below the stands;
- a white ball, 7 px, carried by one player for 1 to 3 seconds and passed to one of the 3 nearest, travelling at
  12 to 24 m/s in scene pixels (the pitch's 40-px mowing stripes taken as 5 m).
The events' glyphs are drawn over them, as before; the feature bank describes the frames with players in them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

PLAYER_W, PLAYER_H, BALL = 12, 26, 7
PIXELS_PER_METRE = 8  # the pitch texture's mowing stripes are 40 px wide; taken as 5 m
RUN_SPEED = 5.0  # m/s, a player's typical speed (jogging to running)
KITS = np.array([[220, 30, 30], [30, 60, 200], [240, 240, 240], [20, 20, 20], [250, 200, 0], [120, 0, 160],
                 [0, 160, 200], [250, 120, 0]], np.float32)


@dataclasses.dataclass(frozen=True)
class Players:
    """Every player's and the ball's scene position (pixels, top-left of the figure) at every frame of a half."""

    players: np.ndarray  # (F, P, 2) float: x, y
    ball: np.ndarray  # (F, 2) float: x, y (the ball's centre)
    kits: np.ndarray  # (P, 3) uint8 colour of each player's shirt

    def draw(self, frame: np.ndarray, index: int, left: int, top: int) -> None:
        """Draw frame `index`'s players and ball on `frame` (H, W, 3), a view whose top-left is (left, top) in the
        scene; figures partly out of view are cut."""
        for (x, y), kit in zip(self.players[index], self.kits):
            _paint(frame, (int(x) - left, int(y) - top), (PLAYER_W, PLAYER_H), kit)
        x, y = self.ball[index]
        _paint(frame, (int(x) - left - BALL // 2, int(y) - top - BALL // 2), (BALL, BALL), (255, 255, 255))


def _paint(frame: np.ndarray, corner: tuple[int, int], size: tuple[int, int], colour) -> None:
    """Fill the (w, h) rectangle whose top-left is corner (x, y), cut to the frame."""
    (x, y), (w, h), (height, width) = corner, size, frame.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x0 < x1 and y0 < y1:
        frame[y0:y1, x0:x1] = colour


def sample_players(rng: np.random.Generator, count: int, frames: int, fps: int, scene: tuple[int, int],
                   grass_top: int) -> Players:
    """`count` players (half in each kit) and a ball over `frames` frames, inside a (height, width) scene whose grass
    starts at row `grass_top`."""
    height, width = scene
    low = np.array([0.0, grass_top], np.float32)
    high = np.array([width - PLAYER_W, height - PLAYER_H], np.float32)
    position = rng.uniform(low, high, (count, 2))
    heading = rng.uniform(0, 2 * np.pi, count)
    speed = np.full(count, RUN_SPEED * PIXELS_PER_METRE / fps)  # pixels per frame
    players = np.empty((frames, count, 2), np.float32)
    for index in range(frames):
        heading += rng.normal(0, 0.15, count)  # turns slowly: a smooth path, not jitter
        speed = np.clip(speed * np.exp(rng.normal(0, 0.05, count)), 0.2 * RUN_SPEED * PIXELS_PER_METRE / fps,
                        1.6 * RUN_SPEED * PIXELS_PER_METRE / fps)
        position += np.stack([np.cos(heading), np.sin(heading)], 1) * speed[:, None]
        out = (position < low) | (position > high)  # off the grass: turn back along that axis
        heading = np.where(out[:, 0], np.pi - heading, heading)
        heading = np.where(out[:, 1], -heading, heading)
        position = np.clip(position, low, high)
        players[index] = position
    home, away = rng.choice(len(KITS), 2, replace=False)
    kits = np.where((np.arange(count) % 2 == 0)[:, None], KITS[home], KITS[away]).astype(np.uint8)
    return Players(players, ball_path(rng, players, fps), kits)


def ball_path(rng: np.random.Generator, players: np.ndarray, fps: int) -> np.ndarray:
    """(F, 2) the ball's centre: at a carrier's feet for 1 to 3 seconds, then passed to one of the 3 players nearest
    to it."""
    frames, count = players.shape[:2]
    feet = players + np.array([PLAYER_W / 2, PLAYER_H], np.float32)
    ball = np.empty((frames, 2), np.float32)
    carrier, index = int(rng.integers(count)), 0
    while index < frames:
        hold = int(rng.uniform(1, 3) * fps)
        ball[index:index + hold] = feet[index:index + hold, carrier]
        index += hold
        if index >= frames:
            break
        start = ball[index - 1]
        distances = np.hypot(*(feet[index] - start).T)
        distances[carrier] = np.inf
        receiver = int(rng.choice(np.argsort(distances)[:3]))  # short passes, as most are: to one of the 3 nearest
        distance = float(np.hypot(*(feet[index, receiver] - start)))
        flight = max(1, int(distance / (rng.uniform(12, 24) * PIXELS_PER_METRE / fps)))
        for step in range(min(flight, frames - index)):  # towards where the receiver is at each frame
            share = (step + 1) / flight
            ball[index + step] = (1 - share) * start + share * feet[index + step, receiver]
        index += flight
        carrier = receiver
    return ball
