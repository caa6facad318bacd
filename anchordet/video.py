"""Video in and out with PyAV (``av``, whose wheels bundle FFmpeg): streaming, frame by frame.

``read_frames`` decodes a video file, a URL FFmpeg opens (rtsp://, http://, file:) or a capture
device (/dev/video0 through v4l2) into (3, H, W) float frames, one packet at a time.
``VideoWriter`` encodes pictures into a temporary file beside the target and renames it into
place when closed. ``predictor.predict_frames`` (``Predictor.predict_video``) joins them: frames go
through the model ``batch_size`` at a time and each result is yielded at once, so memory does not
grow with the video's length.
"""
from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import Tensor

from anchordet.errors import UserError
from anchordet.files import lock_temp_file, target_mode
from anchordet.progress import Progress

DEFAULT_FPS = Fraction(25)
PROGRESS_EVERY_S = 10.0  # seconds between progress lines when stderr is not a terminal


class VideoError(UserError):
    """A video that cannot be opened (or has no video stream)."""


class FrameError(UserError):
    """A frame that cannot be decoded: ``source`` and ``frame`` (its number, from 0) say which."""

    def __init__(self, source: str, frame: int, reason: str):
        super().__init__(f"{source}: frame {frame}: cannot decode it ({reason})")
        self.source, self.frame, self.reason = source, frame, reason


def _av():
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a dependency
        raise UserError("video needs PyAV: pip install av") from exc
    return av


def open_video(source: str | Path):
    """An input container for a file, URL or capture device; VideoError naming it otherwise."""
    av = _av()
    name = str(source)
    options = {}
    if name.startswith("/dev/video"):
        options["format"] = "v4l2"  # Linux capture devices
    elif "://" not in name and not name.startswith("file:") and not Path(name).is_file():
        raise VideoError(f"{name}: no such video file")
    try:
        container = av.open(name, "r", **options)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{name}: cannot open the video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{name}: has no video stream")
    return container


def video_fps(container) -> Fraction:
    rate = container.streams.video[0].average_rate
    return Fraction(rate) if rate else DEFAULT_FPS


def read_frames(source: str | Path, on_bad_frame: Callable[[FrameError], None] | None = None,
                container=None) -> Iterator[tuple[int, Tensor]]:
    """(frame number, (3, H, W) float32 RGB in [0, 1]) for every frame, decoded one packet at a time.

    Frame numbers come from the timestamps (so a frame lost to a broken packet leaves a gap), or
    count the frames when a stream has none. A packet that fails to decode raises ``FrameError``
    naming its frame, or is passed to ``on_bad_frame`` and skipped when that is given.
    """
    av = _av()
    container = container or open_video(source)
    stream = container.streams.video[0]
    number = _frame_numbering(stream)
    index = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                error = FrameError(str(source), number(packet.pts, index), str(exc))
                if on_bad_frame is None:
                    raise error from exc
                on_bad_frame(error)
                index = error.frame + 1
                continue
            for frame in frames:
                index = number(frame.pts, index)
                array = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
                yield index, torch.from_numpy(array).permute(2, 0, 1).float() / 255
                index += 1
    except av.error.FFmpegError as exc:  # demuxing itself failed (a broken file or stream)
        raise FrameError(str(source), index, str(exc)) from exc
    finally:
        container.close()


def _frame_numbering(stream) -> Callable[[int | None, int], int]:
    """pts -> frame number (pts - start) * time_base * fps, rounded; the running count without a pts."""
    rate, base = stream.average_rate, stream.time_base
    start = stream.start_time or 0

    def number(pts: int | None, fallback: int) -> int:
        if pts is None or not rate or not base:
            return fallback
        return max(0, round((pts - start) * base * rate))

    return number


class VideoWriter:
    """Encode RGB pictures (PIL images, any size: the first one fixes it) to ``path``.

    H.264 (libx264, yuv420p) for .mp4 / .mkv / .mov, VP9 for .webm; odd sides are padded by one
    black pixel (yuv420p needs even sides). Written to a temporary file in the same folder and
    renamed over ``path`` by ``close``; ``discard`` drops it. A writer that got no picture (a
    video of 0 frames) writes nothing: ``close`` discards it and returns None.
    """

    def __init__(self, path: str | Path, fps: Fraction = DEFAULT_FPS):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}",
                                         dir=self.path.parent)
        lock_temp_file(fd)  # FFmpeg writes by name; this descriptor only holds the lock
        self._lock_fd = fd
        self.fps = Fraction(fps).limit_denominator(1001)
        self._container, self._stream = None, None
        self.frames = 0
        try:
            self._container = _av().open(self._tmp, "w")
        except BaseException:
            self.discard()
            raise

    def write(self, picture) -> None:
        av = _av()
        if self._stream is None:
            codec = "libvpx-vp9" if self.path.suffix.lower() == ".webm" else "libx264"
            self._stream = self._container.add_stream(codec, rate=self.fps)
            self._stream.width, self._stream.height = picture.width + picture.width % 2, picture.height + picture.height % 2
            self._stream.pix_fmt = "yuv420p"
        size = (self._stream.width, self._stream.height)
        if picture.size != size:
            from PIL import Image

            padded = Image.new("RGB", size)
            padded.paste(picture.convert("RGB"), (0, 0))
            picture = padded
        frame = av.VideoFrame.from_image(picture.convert("RGB"))
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        """Flush the encoder and rename the file into place (None, and no file, without frames)."""
        if self._container is None:
            return self.path if self.frames else None
        if not self.frames:  # FFmpeg would write a file of 0 bytes, or a header without frames
            self.discard()
            return None
        try:
            if self._stream is not None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
            self._container.close()
            self._container = None
            os.chmod(self._tmp, target_mode(self.path))  # mkstemp's 0o600 -> what open() would give
            os.replace(self._tmp, self.path)
        except BaseException:
            self.discard()
            raise
        self._release()
        return self.path

    def discard(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # closing a half-written container may fail too: the file goes anyway
                pass
            self._container = None
        Path(self._tmp).unlink(missing_ok=True)
        self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class FrameProgress(Progress):
    """Frames done and frames per second (``anchordet.progress``): a tqdm bar on a terminal, else
    one line every ``PROGRESS_EVERY_S`` seconds and one at the end."""

    def __init__(self, name: str, total: int | None = None, stream=None, enabled: bool = True):
        super().__init__(total, name, every=0, every_s=PROGRESS_EVERY_S, unit="frame", enabled=enabled, stream=stream)

    @property
    def fps(self) -> float:
        return self.rate


def frames_of(source: Any, on_bad_frame) -> tuple[Iterator[tuple[int, Tensor]], Fraction, int | None, str]:
    """(frames, fps, frame count if known, name) of a path / URL / device or an iterable of images."""
    if isinstance(source, (str, Path)):
        container = open_video(source)
        stream = container.streams.video[0]
        total = int(stream.frames) or None
        return read_frames(source, on_bad_frame, container), video_fps(container), total, str(source)
    if isinstance(source, Iterable):
        from anchordet.data.image_io import as_image_tensor

        frames = ((i, as_image_tensor(item, f"frame {i}")) for i, item in enumerate(source))
        return frames, DEFAULT_FPS, None, "frames"
    raise UserError(f"cannot read a {type(source).__name__} as a video (give a path, URL, device or an "
                    f"iterable of frames)")
