"""The two rates every stage shares, defined once; everything else is derived from them.

A change of frame rate (SoccerNet works often try 1, 4 or 25 fps) changes FPS here and nothing else: frame k of a
half is at k / FPS seconds, a window of S seconds holds S x FPS frames, a token covers FRAMES_PER_TOKEN frames.
"""

FPS = 2  # frames per second read from every half: the official extraction's `ffmpeg -vf fps=2`
FRAMES_PER_TOKEN = 2  # frames per token: one 1-second clip, the tubelet depth of the patch embedding
SECONDS_PER_TOKEN = FRAMES_PER_TOKEN / FPS  # 1.0: one token per second, one feature-bank row per second at 1 fps


def frame_at(seconds: float) -> int:
    """The frame nearest a time: where a half that starts `seconds` into a whole-match file begins."""
    return int(round(seconds * FPS))
