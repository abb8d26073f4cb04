"""Frame rates: how many frames per second every stage reads, and how frames, tokens and seconds convert.

The rate is a config value, `data.fps` (exact, as a Fraction): 2 for SoccerNet-v2 (the official extraction's
`ffmpeg -vf fps=2`, so a token is one second), 12.5 for Ball Action Spotting (its 25 fps source, every second frame,
as every BAS winner reads it, so a token is 0.16 s). A token always covers FRAMES_PER_TOKEN frames: the tube depth of
both architectures' patch embedding. Frame k of a video is at k / fps seconds. Durations a config gives in seconds
(windows, strides) must hold whole tokens at that rate, checked when the run starts (`Rates.tokens`).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

from utils.config import ConfigError

DEFAULT_FPS = Fraction(2)  # data.fps's default: SoccerNet-v2's official extraction, and every released checkpoint
FRAMES_PER_TOKEN = 2  # frames per token: the tubelet depth of the patch embedding (configs/architectures.py)


def exact_fps(value: float | str | Fraction) -> Fraction:
    """A config's rate as an exact Fraction: 2 -> 2, 12.5 -> 25/2, 29.97002997 or '30000/1001' -> 30000/1001."""
    return Fraction(str(value)).limit_denominator(1001)


def fps_to_json(fps: Fraction) -> int | float | str:
    """A rate as JSON holds it exactly: 2, 12.5, or '30000/1001' (read back by `exact_fps`)."""
    if fps.denominator == 1:
        return int(fps)
    return float(fps) if Fraction(float(fps)) == fps else str(fps)


@dataclasses.dataclass(frozen=True)
class Rates:
    """The read rate and the token depth of a run; every conversion between seconds, frames and tokens."""

    fps: Fraction = DEFAULT_FPS
    frames_per_token: int = FRAMES_PER_TOKEN

    @classmethod
    def of(cls, fps: float | str | Fraction) -> Rates:
        """The rates of a config's data.fps (frames_per_token is the architecture's)."""
        return cls(exact_fps(fps))

    @property
    def token_seconds(self) -> Fraction:
        """Seconds per token: 1 at 2 fps, 0.16 at 12.5 fps."""
        return self.frames_per_token / self.fps

    def frame_at(self, seconds: float) -> int:
        """The frame nearest a time: where a half that starts `seconds` into a whole-match file begins."""
        return int(round(Fraction(str(seconds)) * self.fps))

    def tokens(self, seconds: float, key: str) -> int:
        """Whole tokens in a duration the config `key` gives in seconds, or a ConfigError naming the key and the
        nearest durations that hold whole tokens."""
        tokens = Fraction(str(seconds)) / self.token_seconds
        if tokens.denominator != 1:
            low, high = (int(tokens) * self.token_seconds, (int(tokens) + 1) * self.token_seconds)
            raise ConfigError(f"{key}={seconds}: at data.fps={float(self.fps):g} a token is "
                              f"{float(self.token_seconds):g} s, so this holds {float(tokens):.3f} tokens; expected "
                              f"a whole number of tokens, e.g. {float(low):g} or {float(high):g} s")
        return int(tokens)

    def frames(self, seconds: float, key: str) -> int:
        """Frames of a duration the config `key` gives in seconds: whole tokens of frames_per_token frames."""
        return self.tokens(seconds, key) * self.frames_per_token
