"""PyAV decoding by timestamp: frame-exact on lossless videos, windows, and every error path."""

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

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


def fps_filter_frames(path, fps: int | Fraction = 2) -> list[int]:
    """Source indices of the frames FFmpeg's own fps filter (`ffmpeg -vf fps=2`, the official extraction) emits."""
    indices = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        source = graph.add_buffer(template=stream)
        rate = graph.add("fps", str(fps))
        sink = graph.add("buffersink")
        source.link_to(rate)
        rate.link_to(sink)
        graph.configure()

        def drain():
            while True:
                try:
                    frame = graph.pull()
                except (av.error.BlockingIOError, av.error.EOFError):
                    return
                image = frame.to_ndarray(format="rgb24")
                indices.append(int(image[0, 0, 0]) + 256 * int(image[0, 0, 1]))

        for frame in container.decode(stream):
            graph.push(frame)
            drain()
        graph.push(None)
        drain()
    return indices


def write_vfr(path, times_ms: list[int]) -> None:
    """A lossless variable-frame-rate file: frame i at times_ms[i]."""
    frames = indexed_frames(len(times_ms))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=1000)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "rgb24"
        stream.options = {"qp": "0"}
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, time in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(frames[index], format="rgb24")
            frame.pts, frame.time_base = time, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.parametrize("rate, count", [(25, 25 * 12), (Fraction(30000, 1001), 30 * 12), (50, 50 * 12),
                                         (25, 25 * 12 + 6), (25, 25 * 12 + 7), (Fraction(24000, 1001), 24 * 9)])
def test_frames_are_those_of_ffmpegs_fps_filter(tmp_path, rate, count):
    path = tmp_path / "1_224p.mkv"
    write_video(path, indexed_frames(count), rate, gop=25, **LOSSLESS)
    official = fps_filter_frames(path)
    decoded, times = read_frames(path, fps=2.0)
    assert source_index(decoded) == official  # every frame, and as many as the filter emits
    np.testing.assert_allclose(times, np.arange(len(official)) / 2)
    assert probe_video(path).num_frames(2.0) == len(official)
    for first in range(0, len(official), 3):  # a window read from any place (a seek) gives the same frames
        window, _ = read_frames(path, fps=2.0, first=first, count=5)
        assert source_index(window) == official[first:first + 5]


@pytest.mark.parametrize("rate, target", [
    (25, Fraction(25, 2)), (50, Fraction(25, 2)), (Fraction(30000, 1001), Fraction(25, 2)),  # Ball Action Spotting
    (Fraction(30000, 1001), Fraction(30000, 1001)), (Fraction(60000, 1001), Fraction(30000, 1001)),  # NTSC
    (25, Fraction(30000, 1001)), (50, 25)])  # upsampling repeats frames; halving a 50 fps source
def test_any_rate_takes_the_frames_of_ffmpegs_fps_filter(tmp_path, rate, target):
    path = tmp_path / "video.mkv"
    write_video(path, indexed_frames(int(rate * 7) + 3), rate, gop=25, **LOSSLESS)
    official = fps_filter_frames(path, target)
    decoded, times = read_frames(path, fps=target)
    assert source_index(decoded) == official
    np.testing.assert_allclose(times, np.arange(len(official)) / float(target))
    assert probe_video(path).num_frames(target) == len(official)
    for first in range(0, len(official), 7):
        assert source_index(read_frames(path, fps=target, first=first, count=6)[0]) == official[first:first + 6]


def test_at_25_fps_frame_k_is_the_last_source_frame_before_k_over_2_plus_a_quarter(video_25fps):
    path, _ = video_25fps
    decoded, _ = read_frames(path, fps=2.0)
    assert source_index(decoded)[:4] == [6, 18, 31, 43]  # 0.24, 0.72, 1.24, 1.72 s: not 0, 12, 25, 37


def test_variable_frame_rate_follows_the_fps_filter(tmp_path):
    path = tmp_path / "vfr.mkv"
    # irregular gaps, a burst of close frames, and a 1.3 s hole the filter fills by repeating a frame
    write_vfr(path, [0, 100, 450, 520, 990, 1400, 1510, 2100, 2300, 3600, 3700, 3750, 4990, 5020])
    official = fps_filter_frames(path)
    decoded, _ = read_frames(path, fps=2.0)
    assert source_index(decoded) == official
    assert official.count(8) >= 2  # the hole repeats the frame before it
    for first in range(len(official)):
        assert source_index(read_frames(path, fps=2.0, first=first, count=3)[0]) == official[first:first + 3]


def test_window_equals_the_same_frames_of_a_full_read(video_25fps):
    path, _ = video_25fps
    full, _ = read_frames(path, fps=2.0)
    window, times = read_frames(path, fps=2.0, first=9, count=10)  # seeks past several keyframes
    assert np.array_equal(window.numpy(), full[9:19].numpy())
    np.testing.assert_allclose(times, np.arange(9, 19) / 2)
    tail, _ = read_frames(path, fps=2.0, first=20, count=10)  # runs past the end: cut at the last frame
    assert tail.shape[0] == 4


def test_frames_come_back_at_the_video_size(video_25fps):
    path, _ = video_25fps
    frames, _ = read_frames(path, fps=2.0, first=0, count=3)
    assert frames.shape == (3, 32, 48, 3) and frames.dtype == torch.uint8


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.mkv"):
        read_frames(tmp_path / "absent.mkv", fps=2.0)


def test_garbage_bytes_are_a_clear_error(tmp_path):
    path = tmp_path / "garbage.mkv"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="garbage.mkv"):
        read_frames(path, fps=2.0)


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


def sharp_frames(count: int) -> np.ndarray:
    """398x224 frames with what makes resizers disagree: 1-2 px pitch lines, a score overlay, fine grass stripes."""
    rng = np.random.default_rng(0)
    frames = np.zeros((count, 224, 398, 3), np.uint8)
    for index in range(count):
        frame = frames[index]
        frame[:] = (40, 120 + 3 * index % 30, 50)
        frame[:, (np.arange(398) // 3) % 2 == 0] += 12  # mowing stripes at the pixel scale
        frame[:, 60 + index:62 + index] = 235  # a vertical pitch line, moving
        frame[100 + index % 7] = 235
        frame[8:40, 12:300] = rng.integers(0, 2, (32, 288, 1)) * 255  # black-and-white overlay text
    return frames


def test_frames_are_resized_as_the_official_code_resizes(tmp_path):
    from torchvision.transforms.v2 import functional

    from data.prepare import stored_frame
    from data.video import resized_rgb

    path = tmp_path / "sharp.mkv"
    write_video(path, sharp_frames(12), 25, options={"crf": "18"})  # yuv420p H.264, as SoccerNet's files
    differences, scaler_differences = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            full = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)  # the official: full RGB...
            official = functional.resize(full, [224, 224], antialias=True).float()  # ...then torchvision
            stored = torch.from_numpy(stored_frame(frame, (224, 224)).to_ndarray(format="rgb24")).permute(2, 0, 1)
            spotted = resized_rgb(frame, (224, 224), height=224)
            differences += [(stored.float() - official).abs().mean(), (spotted.float() - official).abs().mean()]
            # resizing inside PyAV's scaler while converting from YUV (what this project did before) is not it
            scaler = frame.to_ndarray(format="rgb24", width=224, height=224, interpolation="BILINEAR")
            scaler_differences.append((torch.from_numpy(scaler).permute(2, 0, 1).float() - official).abs().mean())
    assert max(differences) < 0.5
    assert min(scaler_differences) > 0.5  # the tolerance above tells the two apart
