"""Highlight clips hold exactly the frames asked for, stream-copied or re-encoded, at any frame rate; the reel holds
every clip's frames once, in time order; a browser-playable copy keeps every frame at its time."""

from fractions import Fraction

import av
import numpy as np
import pytest

from data.video import probe_video, write_video
from spot.clips import Highlight, merged_ranges, playable_copy, write_clip, write_highlights

BITS = 11  # frame index written as 11 black / white bands: survives lossy encoding
HEIGHT, WIDTH = 64, 176


def coded(index: int) -> np.ndarray:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(BITS):
        if index >> bit & 1:
            image[:, bit * WIDTH // BITS:(bit + 1) * WIDTH // BITS] = 255
    return image


def read_coded(path) -> list[tuple[float, int]]:
    """(time from the stream's start, coded index) of every frame of a file, in presentation order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        out = []
        for frame in container.decode(stream):
            image = frame.to_ndarray(format="rgb24")
            bands = [image[:, bit * image.shape[1] // BITS:(bit + 1) * image.shape[1] // BITS].mean() > 127
                     for bit in range(BITS)]
            out.append((float((frame.pts - start) * frame.time_base), sum(1 << bit for bit, on in enumerate(bands)
                                                                           if on)))
        return out


def variable_rate_video(path, seconds: float):
    """Frames 30 to 50 ms apart (a phone's variable frame rate), in a 1/1000 time base, a keyframe every second."""
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.codec_context.gop_size = 25
        stream.options = {"preset": "ultrafast"}
        time_ms, index = 0, 0
        while time_ms < seconds * 1000:
            frame = av.VideoFrame.from_ndarray(coded(index), format="rgb24")
            frame.pts, frame.time_base = time_ms, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
            time_ms += int(rng.integers(30, 51))
            index += 1
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module", params=["25", "29.97", "50", "variable"])
def source(request, tmp_path_factory):
    """(video, its frames as (time, index)): 20 s, a keyframe every second (B-frames on: x264's default)."""
    folder = tmp_path_factory.mktemp("clips")
    if request.param == "variable":
        path = variable_rate_video(folder / "phone.mp4", 20)
    else:
        fps = {"25": 25, "29.97": 30000 / 1001, "50": 50}[request.param]
        path = write_video(folder / f"broadcast_{request.param}.mp4", (coded(i) for i in range(int(20 * fps))),
                           fps, gop=round(fps), options={"preset": "ultrafast"})
    frames = read_coded(path)
    assert [index for _, index in frames] == list(range(len(frames)))  # the code reads back
    return path, frames


def expected_in(frames, start, end):
    return [index for time, index in frames if start - 1e-9 <= time < end - 1e-9]


def check_clip(clip, frames, start, end):
    got = read_coded(clip)
    wanted = expected_in(frames, start, end)
    assert [index for _, index in got] == wanted  # exactly the frames shown in [start, end), none twice
    period = max(b - a for (a, _), (b, _) in zip(frames, frames[1:]))
    source_time = dict((index, time) for time, index in frames)
    assert abs(source_time[wanted[0]] - start) <= period and abs(source_time[wanted[-1]] + period - end) <= period
    # timed from 0, each frame as far from the first as in the source
    offsets = np.array([time for time, _ in got]) - np.array([source_time[index] - source_time[wanted[0]]
                                                              for index in wanted])
    assert np.abs(offsets).max() < 2e-3


def test_a_clip_from_a_keyframe_is_copied_and_exact(source, tmp_path):
    path, frames = source
    info = probe_video(path, index=True)
    keyframes = sorted(info.seconds(info.packets.pts[info.packets.keyframe]))
    start, end = keyframes[3], keyframes[7]  # whole GOPs
    assert write_clip(path, start, end, tmp_path / "copied.mp4", info) == "copied"
    check_clip(tmp_path / "copied.mp4", frames, start, end)


@pytest.mark.parametrize("start, end", [(3.3, 8.77), (0.0, 2.5), (17.41, 20.0), (6.02, 6.3)])
def test_a_clip_anywhere_is_exact_to_the_frame(source, tmp_path, start, end):
    path, frames = source
    how = write_clip(path, start, end, tmp_path / "clip.mp4")
    if start not in (0.0,):
        assert how == "re-encoded"  # not on a keyframe: copying would start at the wrong frame
    check_clip(tmp_path / "clip.mp4", frames, start, end)


def test_highlights_and_their_reel(source, tmp_path):
    path, frames = source
    highlights = [Highlight(1, seconds, label, 0.9, path, 0.0)
                  for seconds, label in ((4.0, "Goal"), (5.5, "Shots on target"), (15.0, "Yellow->red card"))]
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "half1_00m09.0s_Goal.mp4").write_bytes(b"an earlier run's clip")  # replaced, not kept
    written = write_highlights(tmp_path, highlights, before=1.5, after=2.0)
    assert sorted(path.name for path in (tmp_path / "clips").iterdir()) == sorted(
        clip["file"].split("/")[1] for clip in written)
    assert [clip["file"] for clip in written] == ["clips/half1_00m04.0s_Goal.mp4",
                                                  "clips/half1_00m05.5s_Shots-on-target.mp4",
                                                  "clips/half1_00m15.0s_Yellow-red-card.mp4"]
    for clip in written:
        check_clip(tmp_path / clip["file"], frames, clip["seconds"] - 1.5, clip["seconds"] + 2.0)
    # the first two overlap: the reel shows 2.5 s to 7.5 s once, then 13.5 s to 17 s
    reel = [index for _, index in read_coded(tmp_path / "highlights.mp4")]
    assert reel == expected_in(frames, 2.5, 7.5) + expected_in(frames, 13.5, 17.0)


def test_overlapping_ranges_of_one_file_are_merged_in_order(tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    assert merged_ranges([(a, 0, 5), (a, 4, 8), (a, 9, 10), (b, 9.5, 12), (b, 11, 11.5)]) == [
        (a, 0, 8), (a, 9, 10), (b, 9.5, 12)]


def test_a_playable_copy_keeps_every_frame_at_its_time(tmp_path):
    avi = write_video(tmp_path / "camera.avi", (coded(i) for i in range(90)), 30, codec="mpeg4")
    copy = playable_copy(avi, tmp_path / "video.mp4")
    with av.open(str(copy)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    original, copied = read_coded(avi), read_coded(copy)
    assert [index for _, index in copied] == [index for _, index in original]
    assert np.abs(np.array([t for t, _ in copied]) - np.array([t for t, _ in original])).max() < 2e-3


def test_a_clip_of_a_codec_browsers_do_not_play_is_re_encoded(tmp_path):
    avi = write_video(tmp_path / "camera.avi", (coded(i) for i in range(60)), 30, codec="mpeg4", gop=30)
    frames = read_coded(avi)
    assert write_clip(avi, 1.0, 2.0, tmp_path / "clip.mp4") == "re-encoded"  # starts on a keyframe, yet not copied
    with av.open(str(tmp_path / "clip.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    check_clip(tmp_path / "clip.mp4", frames, 1.0, 2.0)
