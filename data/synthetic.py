"""A generated mini-SoccerNet: the official layout and schemas, with events that can be learnt from pixels.

    python -m data.synthetic --out DIR --games 6 --seconds 120 --seed 0
    python -m data.synthetic --out DIR --dataset soccernet_ball_2025     # or soccernet_ball_2023 / 2024, manifest

Writes, for each game `league/season/game/` (real-looking folder names):
- `1_224p.mkv`, `2_224p.mkv`: 398x224, 25 fps H.264 (PyAV), a textured pitch under a moving camera. Every event draws
  its class's glyph (a class-specific shape, colour and place on the frame) for the frames within 0.5 s of its
  timestamp, at half strength when the event is "not shown";
- `Labels-v2.json` in the official schema (string values, `position` in ms, both visibilities, teams);
- `1_baidu_soccer_embeddings.npy`, `2_baidu_soccer_embeddings.npy`: a 1 fps feature bank (rows = seconds) named like
  the Baidu features, whose rows encode what a frame encoder would see: the look of the frame (random Fourier
  features of its 4x4 grid of mean colours) and the events of their second (a class embedding), so that
  distillation teaches the video model things it can read off the pixels;
and at the top `train.txt`, `valid.txt`, `test.txt` (game paths, one per line). Deterministic for a seed.
`--players 22` adds running players and a ball (data/synthetic_players.py); `--events motion` shows each event as one
disc moving in its class's direction instead of a still glyph; `--unlabelled 30` adds 30 games written
without `Labels-v2.json`, listed in `unlabelled.txt`, and `pretrain.txt` (train's games and those) for stages 1 and 2,
the labelled games staying the same.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import multiprocessing
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data.catalog import BUILT_IN, V2_CLASSES as CLASSES
from data.labels import game_time
from data.synthetic_players import sample_players
from data.video import write_video
from utils.config import ConfigError
from utils.errors import run_entry_point

WIDTH, HEIGHT, SOURCE_FPS = 398, 224, 25
BANK_NAME = "baidu_soccer_embeddings.npy"
TRACE_SECONDS = 0.5  # a glyph is drawn within this distance of its event (the label radius, docs/METHOD.md section 4)
GAME_FOLDER = re.compile(r"^(\d{4}-\d{2}-\d{2}) - (\d{2}-\d{2}) (.+) (\d+) - (\d+) (.+)$")
GLYPH = 96  # glyph size in pixels (54 px wide once the frame is squashed to 224x224, 15 px at 64x64)
LABELS_FILE = BUILT_IN["soccernet_v2"].labels_file
MIN_GAP_SECONDS = 3.0  # events of a half are at least this far apart

LEAGUES = ("england_epl", "europe_uefa-champions-league", "france_ligue-1", "germany_bundesliga", "italy_serie-a",
           "spain_laliga")
TEAMS = ("Arsenal", "Chelsea", "Atl. Madrid", "Real Madrid", "Bayern Munich", "Dortmund", "Juventus", "AC Milan",
         "Paris SG", "Lyon", "Barcelona", "Man. United", "St-Etienne", "Inter")


def game_name(rng: np.random.Generator, index: int) -> str:
    """A real-looking `league/season/game` path: '2015-08-16 - 18-00 Chelsea 3 - 0 Atl. Madrid'."""
    league = LEAGUES[index % len(LEAGUES)]
    year = 2014 + index % 3
    home, away = rng.choice(len(TEAMS), size=2, replace=False)
    month, day, hour = 1 + index % 12, 1 + index % 28, 15 + index % 6
    return (f"{league}/{year}-{year + 1}/{year + (month < 7)}-{month:02d}-{day:02d} - {hour}-00 "
            f"{TEAMS[home]} {rng.integers(0, 5)} - {rng.integers(0, 5)} {TEAMS[away]}")


def _palette() -> np.ndarray:
    """17 well separated colours (hue wheel at two brightness levels)."""
    colours = []
    for index in range(len(CLASSES)):
        hue = (index * 7 % len(CLASSES)) / len(CLASSES)
        value = 1.0 if index % 2 else 0.7
        h6 = hue * 6
        x = 1 - abs(h6 % 2 - 1)
        r, g, b = [(1, x, 0), (x, 1, 0), (0, 1, x), (0, x, 1), (x, 0, 1), (1, 0, x)][int(h6) % 6]
        colours.append([255 * value * r, 255 * value * g, 255 * value * b])
    return np.array(colours, np.float32)


PALETTE = _palette()


def _glyph_mask(class_index: int) -> np.ndarray:
    """A class-specific binary shape: disc, square, ring, cross, triangle or bars, in several sizes."""
    yy, xx = np.mgrid[:GLYPH, :GLYPH] - (GLYPH - 1) / 2
    radius = np.hypot(yy, xx)
    kind = class_index % 6
    scale = 1.0 - 0.25 * (class_index // 6) / 2
    half = GLYPH / 2 * scale
    if kind == 0:
        mask = radius <= half
    elif kind == 1:
        mask = (abs(yy) <= half * 0.85) & (abs(xx) <= half * 0.85)
    elif kind == 2:
        mask = (radius <= half) & (radius >= half * 0.55)
    elif kind == 3:
        mask = ((abs(yy) <= half * 0.3) | (abs(xx) <= half * 0.3)) & (radius <= half)
    elif kind == 4:
        mask = (yy >= -half) & (yy <= half) & (abs(xx) <= (yy + half) / 2)
    else:
        mask = (np.sin(xx * math.pi / (half / 2)) > 0) & (abs(yy) <= half) & (abs(xx) <= half)
    return mask


GLYPHS = [_glyph_mask(c) for c in range(len(CLASSES))]


def glyph_origin(class_index: int) -> tuple[int, int]:
    """Top-left corner of a class's glyph: a 6 x 3 grid over the frame (17 of its 18 cells)."""
    column, row = class_index % 6, class_index // 6
    x = int(12 + column * (WIDTH - 24 - GLYPH) / 5)
    y = int(12 + row * (HEIGHT - 24 - GLYPH) / 2)
    return y, x


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """(height, width, 3) colour noise constant over cell x cell blocks, bilinearly smoothed by a box blur."""
    coarse = rng.normal(0, 1, (height // cell + 2, width // cell + 2, 3))
    field = np.kron(coarse, np.ones((cell, cell, 1)))[:height, :width]
    kernel = np.ones(cell) / cell  # separable box blur removes the block edges
    field = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), 1, field)
    return np.apply_along_axis(lambda col: np.convolve(col, kernel, mode="same"), 0, field)


def _pitch_texture(rng: np.random.Generator) -> np.ndarray:
    """A wide scene the camera pans over: grey stands on top, grass with mowing stripes, pitch lines, and large colour
    fields. The large structures differ along the pitch, so every second of video has its own look (two crops of one
    clip share it: stage 1 has something to learn); the fine grain gives the codec real work. The stands are grey so
    that the fully saturated event glyphs stay the strongest colours in a frame."""
    height, width = HEIGHT + 160, WIDTH * 3
    grass = np.array([60.0, 130.0, 55.0]) + 6.0 * _smooth_noise(rng, height, width, 8)
    grass += 45.0 * _smooth_noise(rng, height, width, 96)  # large, slowly varying colour fields (muted next to glyphs)
    grass += ((np.arange(width) // 40) % 2)[None, :, None] * 18.0
    stands = height // 4
    blocks = np.repeat(rng.uniform(30, 200, (stands // 24 + 1, width // 36 + 1, 1)), 3, axis=2)
    grass[:stands] = np.kron(blocks, np.ones((24, 36, 1)))[:stands, :width]
    grass[:, ::300] = 230.0
    grass[height // 2 - 1:height // 2 + 1] = 230.0
    return np.clip(grass, 0, 255).astype(np.uint8)


def sample_events(rng: np.random.Generator, seconds: float, rate_per_minute: float) -> list[tuple[int, int, bool]]:
    """(position_ms, class, visible) for one half: roughly `rate_per_minute` events, at least MIN_GAP_SECONDS apart."""
    count = rng.poisson(rate_per_minute * seconds / 60)
    times = np.sort(rng.uniform(1.0, max(1.5, seconds - 1.0), count))
    kept: list[float] = []
    for time in times:
        if not kept or time - kept[-1] >= MIN_GAP_SECONDS:
            kept.append(float(time))
    # every class appears; frequent classes (ball out of play, throw-in, foul...) more often, as in SoccerNet
    weights = np.array([1, 2, 1, 2, 2, 3, 3, 4, 8, 6, 5, 4, 3, 3, 2, 1, 1], np.float64)
    classes = rng.choice(len(CLASSES), size=len(kept), p=weights / weights.sum())
    visible = rng.random(len(kept)) > 0.1
    return [(int(t * 1000), int(c), bool(v)) for t, c, v in zip(kept, classes, visible)]


@dataclasses.dataclass(frozen=True)
class Camera:
    """Broadcast-like shots: every 4-12 s the camera cuts to another place, then pans at its own speed."""

    cuts: np.ndarray  # (S,) cumulative cut times in seconds
    shots: np.ndarray  # (S, 4): start x, start y, x speed, y speed, all in [0, 1)

    def position(self, time: float) -> tuple[float, float]:
        """Where the view is at `time`, as fractions (x, y) of the texture's travel: bounces off the edges."""
        shot = int(np.searchsorted(self.cuts, time, side="right"))
        start_x, start_y, speed_x, speed_y = self.shots[shot]
        since = time - (self.cuts[shot - 1] if shot else 0.0)
        return abs((start_x + (speed_x - 0.5) * since / 20) % 2 - 1), abs((start_y + (speed_y - 0.5) * since / 10) % 2 - 1)


def sample_camera(rng: np.random.Generator, seconds: float) -> Camera:
    cuts = np.cumsum(rng.uniform(4, 12, int(seconds / 4) + 2))
    return Camera(cuts, rng.uniform(0, 1, (len(cuts), 4)))


@dataclasses.dataclass(frozen=True)
class Content:
    """What the generated games show besides the pitch: the events' rate, how they look, how many players run in
    every half, and how many more games come without labels."""

    rate_per_minute: float = 8.0
    players: int = 0  # with a ball (data/synthetic_players.py); 0: the pitch and the events only
    # games beyond the labelled ones, drawn the same way (their videos show events, their bank encodes them) but
    # written without a labels file: video for stages 1 and 2 only, as most real video is (docs/TOY_STUDY.md)
    unlabelled: int = 0
    # "glyphs": a class's shape and colour at a class's place, still, for a second; "motion": one disc, the same for
    # every class, crossing the frame for 1.5 s in a class's direction and speed from a random place, so that no
    # single frame tells the class (docs/TOY_STUDY.md, change 3)
    events: str = "glyphs"


EVENT_LOOKS = ("glyphs", "motion")
MOTION_TRACE = 0.75  # a moving event shows within this distance of its time: 1.5 s of movement
MOTION_SPEEDS = (50.0, 110.0)  # px/s at 224p: classes 0-8 slow, 9-16 fast, each in one of 9 directions
DISC = 20  # the moving disc's radius in px at 224p (about 6 x 11 px once squashed to 64x64)
DISC_MASK = np.hypot(*(np.mgrid[:2 * DISC + 1, :2 * DISC + 1] - DISC)) <= DISC


def motion_velocity(class_index: int) -> tuple[float, float]:
    """(x, y) px/s of a class's moving disc: one of 9 directions 40 degrees apart, at one of two speeds."""
    angle = 2 * math.pi * (class_index % 9) / 9
    speed = MOTION_SPEEDS[class_index // 9]
    return speed * math.cos(angle), speed * math.sin(angle)


def motion_centres(events: list[tuple]) -> np.ndarray:
    """(E, 2) where each event's disc is at its time (x, y): random, so that the whole path stays in the frame. Drawn
    from a stream seeded by the half's event times, not from the half's own, so that a motion world has the same
    events, labels and bank draws as the glyph world of its seed."""
    rng = np.random.default_rng([event[0] for event in events] + [len(events)])
    centres = np.empty((len(events), 2))
    for index, event in enumerate(events):
        reach = np.abs(motion_velocity(event[1])) * MOTION_TRACE + DISC + 2  # (x, y) half-extent of the path
        centres[index] = rng.uniform(reach, (WIDTH - reach[0], HEIGHT - reach[1]))
    return centres


def blend(region: np.ndarray, mask: np.ndarray, strength: float, colour: np.ndarray) -> None:
    """Paint `colour` over the masked pixels of `region` (a view into a frame), at `strength` (1: opaque)."""
    region[mask] = ((1 - strength) * region[mask] + strength * colour).astype(np.uint8)


def draw_glyph(frame: np.ndarray, class_index: int, strength: float, colour: np.ndarray) -> None:
    top, left = glyph_origin(class_index)
    blend(frame[top:top + GLYPH, left:left + GLYPH], GLYPHS[class_index], strength, colour)


def draw_disc(frame: np.ndarray, centre: np.ndarray, strength: float, colour: np.ndarray) -> None:
    x, y = int(round(centre[0])), int(round(centre[1]))
    blend(frame[y - DISC:y + DISC + 1, x - DISC:x + DISC + 1], DISC_MASK, strength, colour)


def render_half(rng: np.random.Generator, seconds: float, events: list[tuple], looks: list | None = None,
                fps: int = SOURCE_FPS, trace: float = TRACE_SECONDS, content: Content = Content()):
    """Yield the RGB frames of one half at `fps`. An event (position_ms, class, visible[, team]) draws its class's
    glyph within `trace` seconds of it, in the class's colour, inverted for team 1 (a generated "right" team); with
    `content.events == "motion"`, a light disc (dark for team 1) moving at its class's velocity within MOTION_TRACE
    seconds of it. `looks`, when given, receives for every whole second s the 4x4 grid of mean colours of the frame
    at s + 0.5 s (48 values in [-0.5, 0.5]): what the feature bank encodes. `content.players` > 0 adds that many
    running players and a ball passed between them (data/synthetic_players.py), drawn under the events."""
    texture = _pitch_texture(rng)
    camera = sample_camera(rng, seconds)
    num_frames = int(round(seconds * fps))
    crowd = None
    if content.players:  # their own stream, seeded from the half's
        crowd = sample_players(np.random.default_rng(rng.integers(2**63)), content.players, num_frames, fps,
                               texture.shape[:2], grass_top=texture.shape[0] // 4)
    motion = content.events == "motion"
    centres = motion_centres(events) if motion else None
    trace = MOTION_TRACE if motion else trace
    event_times = np.array([e[0] / 1000 for e in events])
    travel_x, travel_y = texture.shape[1] - WIDTH, texture.shape[0] - HEIGHT
    for index in range(num_frames):
        time = index / fps
        fraction_x, fraction_y = camera.position(time)
        x, y = int(travel_x * fraction_x), int(travel_y * fraction_y)
        frame = texture[y:y + HEIGHT, x:x + WIDTH].copy()
        if crowd is not None:
            crowd.draw(frame, index, x, y)
        if len(event_times):
            for event_index in np.flatnonzero(np.abs(event_times - time) <= trace):
                _, class_index, visible, *team = events[event_index]
                strength, right = (1.0 if visible else 0.5), bool(team and team[0] == 1)
                if motion:
                    velocity = np.array(motion_velocity(class_index))
                    draw_disc(frame, centres[event_index] + velocity * (time - event_times[event_index]), strength,
                              np.full(3, 20.0 if right else 235.0))
                else:
                    colour = 255 - PALETTE[class_index] if right else PALETTE[class_index]
                    draw_glyph(frame, class_index, strength, colour)
        if looks is not None and index % fps == fps // 2:
            grid = frame[:HEIGHT // 4 * 4, :WIDTH // 4 * 4].reshape(4, HEIGHT // 4, 4, WIDTH // 4, 3).mean(axis=(1, 3))
            looks.append(grid.reshape(-1) / 255.0 - 0.5)
        yield frame


@dataclasses.dataclass(frozen=True)
class BankBasis:
    """What the generated "pretrained features" encode, shared by every game of a dataset: a class embedding per
    action, and random Fourier features of the frame's look (its 4x4 grid of mean colours), so that, as with real
    frame-encoder features, the bank describes what is visible and distilling it teaches a video model things it
    can read off the pixels."""

    class_embeddings: np.ndarray  # (17, D)
    frequencies: np.ndarray  # (D, 48)
    phases: np.ndarray  # (D,)

    @classmethod
    def sample(cls, rng: np.random.Generator, dim: int) -> BankBasis:
        return cls(rng.normal(0, 1, (len(CLASSES), dim)) / math.sqrt(dim) * 4, rng.normal(0, 3.0, (dim, 48)),
                   rng.uniform(0, 2 * math.pi, dim))


def feature_bank(rng: np.random.Generator, seconds: float, events: list[tuple[int, int, bool]], basis: BankBasis,
                 looks: list[np.ndarray]) -> np.ndarray:
    """(floor(seconds), D) float32 at 1 fps: row s = features of the look of second s + the classes of the events in
    [s - 1, s + 2) seconds + a little noise. looks: from render_half, one (48,) vector per whole second."""
    rows, dim = int(math.floor(seconds)), basis.class_embeddings.shape[1]
    views = np.stack(looks[:rows])  # (rows, 48)
    # look features of norm ~8 whatever the width, beside event embeddings of norm ~12 (weight 1)
    bank = 8.0 * math.sqrt(2 / dim) * np.cos(views @ basis.frequencies.T + basis.phases)
    bank += 0.15 * rng.normal(0, 1, (rows, dim))
    for position_ms, class_index, _ in events:
        second = position_ms / 1000
        for row in range(max(0, int(second) - 1), min(rows, int(second) + 2)):
            weight = 1.0 if row == int(second) else 0.5
            bank[row] += 3.0 * weight * basis.class_embeddings[class_index]
    return bank.astype(np.float32)


def generate_game(root: Path, game: str, rng: np.random.Generator, seconds: float, content: Content,
                  basis: BankBasis, labelled: bool = True) -> None:
    folder = root / game
    folder.mkdir(parents=True, exist_ok=True)
    annotations = []
    for half in (1, 2):
        events = sample_events(rng, seconds, content.rate_per_minute)
        for position_ms, class_index, visible in events:
            annotations.append({"gameTime": game_time(half, position_ms), "label": CLASSES[class_index],
                                "position": str(position_ms),
                                "team": str(rng.choice(["home", "away", "not applicable"])),
                                "visibility": "visible" if visible else "not shown"})
        looks: list[np.ndarray] = []
        frames = render_half(rng, seconds, events, looks=looks, content=content)
        write_video(folder / f"{half}_224p.mkv", frames, SOURCE_FPS, gop=SOURCE_FPS,
                    options={"preset": "ultrafast", "crf": "20"})
        np.save(folder / f"{half}_{BANK_NAME}", feature_bank(rng, seconds, events, basis, looks))
    date, hour, home, home_goals, away_goals, away = GAME_FOLDER.match(game.split("/")[-1]).groups()
    document = {"UrlLocal": game + "/", "UrlYoutube": "", "gameHomeTeam": home, "gameAwayTeam": away,
                "gameDate": f"{date[8:10]}/{date[5:7]}/{date[:4]} - {hour.replace('-', ':')}",
                "gameScore": f"{home_goals} - {away_goals}", "annotations": annotations}
    if labelled:  # an unlabelled game draws the same annotations (the same random stream) and keeps them unwritten
        (folder / LABELS_FILE).write_text(json.dumps(document, indent=2), encoding="utf-8")


def _generate_job(job: tuple) -> None:
    out, name, game_seed, seconds, content, basis, labelled = job
    generate_game(out, name, np.random.default_rng(game_seed), seconds, content, basis, labelled)


def generate(out: str | Path, games: int, seconds: float, seed: int = 0, content: Content = Content(),
             bank_dim: int = 512, workers: int = 1) -> list[str]:
    """Write the dataset; returns the game paths. A quarter of the labelled games (at least one) go to valid and to
    test, the rest to train; with fewer than 3 games every split lists every game. `content.unlabelled` more games
    go to `unlabelled.txt`, and `pretrain.txt` lists train's and those (what stages 1 and 2 read); the labelled
    games are the same with or without them. Each game has its own random stream, so the output is the same for any
    number of worker processes."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    basis = BankBasis.sample(rng, bank_dim)
    names: list[str] = []
    for index in range(games + content.unlabelled):
        name = game_name(rng, index)
        while name in names:
            name = game_name(rng, index + 1000 * len(names))
        names.append(name)
    jobs = [(out, name, [seed, index], seconds, content, basis, index < games) for index, name in enumerate(names)]
    with multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        done = pool.imap_unordered(_generate_job, jobs) if workers > 1 else map(_generate_job, jobs)
        for _ in tqdm(done, total=len(jobs), desc="generating games", disable=None):  # a bar on a terminal only
            pass
    labelled, unlabelled = names[:games], names[games:]
    if games >= 3:
        held_out = max(1, int(round(games / 4)))
        split_games = {"train": labelled[:games - 2 * held_out],
                       "valid": labelled[games - 2 * held_out:games - held_out], "test": labelled[games - held_out:]}
    else:
        split_games = {"train": labelled, "valid": labelled, "test": labelled}
    if unlabelled:
        split_games.update(unlabelled=unlabelled, pretrain=split_games["train"] + unlabelled)
    for split, members in split_games.items():
        (out / f"{split}.txt").write_text("".join(f"{game}\n" for game in members), encoding="utf-8")
    return names


def main() -> None:
    from data import synthetic_datasets

    parser = argparse.ArgumentParser(description=__doc__ + synthetic_datasets.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="root folder to write")
    parser.add_argument("--dataset", default="soccernet_v2", choices=("soccernet_v2", *synthetic_datasets.GENERATORS),
                        help="which layout to generate (default: the mini-SoccerNet)")
    parser.add_argument("--games", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=120.0, help="duration of each half (each video)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--events-per-minute", type=float, default=None,
                        help="default: 8 for soccernet_v2, 40 for Ball Action Spotting, 10 for the manifest")
    parser.add_argument("--bank-dim", type=int, default=512, help="feature bank width (Baidu's is 8576)")
    parser.add_argument("--workers", type=int, default=1, help="games generated in parallel processes")
    parser.add_argument("--players", type=int, default=0, help="running players and a ball on the pitch "
                                                               "(data/synthetic_players.py; default: none)")
    parser.add_argument("--events", default="glyphs", choices=EVENT_LOOKS,
                        help="how an event shows: its class's glyph, still (default), or one disc moving in its "
                             "class's direction and speed (docs/TOY_STUDY.md, change 3)")
    parser.add_argument("--unlabelled", type=int, default=0,
                        help="more games without labels (unlabelled.txt; pretrain.txt = train's games and those), "
                             "for stages 1 and 2; default: none")
    args = parser.parse_args()
    if args.dataset == "soccernet_v2":
        if args.unlabelled < 0:
            raise ConfigError(f"--unlabelled {args.unlabelled}: expected a number of games, 0 or more")
        content = Content(args.events_per_minute or 8.0, args.players, args.unlabelled, args.events)
        games = generate(args.out, args.games, args.seconds, args.seed, content, args.bank_dim, workers=args.workers)
        splits = "train.txt, valid.txt, test.txt" + (", unlabelled.txt, pretrain.txt" if args.unlabelled else "")
        print(f"wrote {len(games)} games under {args.out} (splits: {splits})")
        return
    for flag, value in (("--players", args.players), ("--unlabelled", args.unlabelled),
                        ("--events", "" if args.events == "glyphs" else args.events)):
        if value:
            raise ConfigError(f"{flag} {value} with --dataset {args.dataset}: only the generated SoccerNet-v2 has "
                              f"it; leave {flag} out")
    generator = synthetic_datasets.GENERATORS[args.dataset]
    games, splits = generator(args.out, args.games, args.seconds, args.seed, args.events_per_minute)
    print(f"wrote {len(games)} games of {args.dataset} under {args.out} (splits: {', '.join(splits)})")


if __name__ == "__main__":
    run_entry_point(main)
