"""PyAV decoding by timestamp: frame-exact on lossless videos, windows, and every error path."""

from fractions import Fraction

import av
import numpy as np
import pytest

from data.video import VideoError, probe_video, read_frames, write_video

LOSSLESS = {"codec": "libx264rgb", "pix_fmt": "rgb24", "options": {"qp": "0", "preset": "ultrafast"}}


def indexed_frames(count: int, height: int = 32, width: int = 48) -> np.ndarray:
    """Frames whose red channel encodes their index, so a decoded frame says which source frame it is."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    for index in range(count):
        frames[index, ..., 0] = index % 256
        frames[index, ..., 1] = index // 256
        frames[index, :, : width // 2, 2] = 200
    return frames


def source_index(frames) -> list[int]:
    return (frames[:, 0, 0, 0].int() + 256 * frames[:, 0, 0, 1].int()).tolist()


@pytest.fixture(scope="module")
def video_25fps(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "1_224p.mkv"
    frames = indexed_frames(25 * 12)  # 12 s
    write_video(path, frames, 25, gop=25, **LOSSLESS)
    return path, frames


def test_lossless_video_decodes_frame_exactly(video_25fps):
    path, frames = video_25fps
    decoded, times = read_frames(path, fps=25.0)
    assert decoded.shape == frames.shape and np.array_equal(decoded.numpy(), frames)
    np.testing.assert_allclose(times, np.arange(len(frames)) / 25)


def test_two_fps_picks_the_frame_nearest_each_half_second(video_25fps):
    path, _ = video_25fps
    info = probe_video(path)
    assert info.duration == pytest.approx(12.0) and info.num_frames(2.0) == 24
    decoded, times = read_frames(path, fps=2.0)
    assert decoded.shape[0] == 24
    np.testing.assert_allclose(times, np.arange(24) / 2)
    # k / 2 s is source frame 12.5 k: ties (odd k) go to the earlier frame
    assert source_index(decoded) == [int(np.floor(12.5 * k)) for k in range(24)]


def test_window_equals_the_same_frames_of_a_full_read(video_25fps):
    path, _ = video_25fps
    full, _ = read_frames(path, fps=2.0)
    window, times = read_frames(path, fps=2.0, first=9, count=10)  # seeks past several keyframes
    assert np.array_equal(window.numpy(), full[9:19].numpy())
    np.testing.assert_allclose(times, np.arange(9, 19) / 2)
    tail, _ = read_frames(path, fps=2.0, first=20, count=10)  # runs past the end: cut at the last frame
    assert tail.shape[0] == 4


def test_resize_on_decode(video_25fps):
    path, _ = video_25fps
    resized, _ = read_frames(path, fps=2.0, first=0, count=3, size=(16, 20))
    assert resized.shape == (3, 16, 20, 3)


def test_timestamps_not_an_assumed_rate(tmp_path):
    # 29.97 fps: k / 2 s is source frame 14.985 k; nearest frames are 0, 15, 30, 45
    path = tmp_path / "ntsc.mkv"
    write_video(path, indexed_frames(50), Fraction(30000, 1001), **LOSSLESS)
    decoded, _ = read_frames(path, fps=2.0)
    assert source_index(decoded) == [0, 15, 30, 45]


def test_variable_frame_rate_uses_each_frame_timestamp(tmp_path):
    # frames at irregular times (ms): the reader must look at pts, not count frames
    path = tmp_path / "vfr.mkv"
    times_ms = [0, 100, 450, 520, 990, 1400, 1510, 2100]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=1000)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "rgb24"
        stream.options = {"qp": "0"}
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, time in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(indexed_frames(len(times_ms))[index], format="rgb24")
            frame.pts, frame.time_base = time, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    decoded, _ = read_frames(path, fps=2.0)
    # targets 0, 0.5, 1.0, 1.5, 2.0 s -> nearest frames at 0, 0.52 (not 0.45), 0.99, 1.51, 2.1 s
    assert source_index(decoded)[:5] == [0, 3, 4, 6, 7]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.mkv"):
        read_frames(tmp_path / "absent.mkv")


def test_garbage_bytes_are_a_clear_error(tmp_path):
    path = tmp_path / "garbage.mkv"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="garbage.mkv"):
        read_frames(path)


def test_file_without_video_stream_is_a_clear_error(tmp_path):
    path = tmp_path / "audio.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(VideoError, match="no video stream"):
        probe_video(path)


def test_truncated_file_is_detected(video_25fps, tmp_path):
    path, _ = video_25fps
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(VideoError, match="cut.mkv"):
        read_frames(cut, fps=2.0)
