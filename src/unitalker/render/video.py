"""Preview videos: heads side by side, h264 + AAC, written atomically with PyAV."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from unitalker.animation import Animation
from unitalker.audio import SAMPLE_RATE

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0
_PRESET = "veryfast"
ProgressFn = Callable[[int, int], None]


def resample_animation(animation: Animation, fps: float, n_frames: int) -> Animation:
    """The head at ``fps`` for ``n_frames`` frames: linear interpolation in time.

    Frame ``j`` is the head at ``t = j / fps``; past the head's end the last frame holds.
    Linear in the data is linear in the vertices (a rig is linear too), so this is
    the same as interpolating the meshes.
    """
    src = animation.data
    if animation.fps == fps and len(src) == n_frames:
        return animation
    pos = np.arange(n_frames, dtype=np.float64) * (animation.fps / fps)
    pos = np.clip(pos, 0, len(src) - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, len(src) - 1)
    w = (pos - i0)[:, None].astype(np.float32)
    data = src[i0] * (1 - w) + src[i1] * w
    return Animation(animation.convention, fps, data, animation.identity, dict(animation.meta))


MAX_PANEL = 512
MAX_WIDTH = 1536


def panel_size(n_panels: int) -> int:
    """The default panel size: 512 pixels, less when more than 3 panels, so that the
    preview is at most 1536 pixels wide (it fits a laptop or 1080p screen unscaled, and
    each pixel drawn is rendering and encoding time: 4 panels of 384 cost about 60 % of
    4 panels of 512). Never below 128; even, for yuv420p."""
    return max(128, min(MAX_PANEL, MAX_WIDTH // max(1, n_panels))) // 2 * 2


def _video_rate(fps: float) -> Fraction:
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


def render_video(
    results: Mapping[str, Animation],
    audio: np.ndarray | None,
    path: str | Path,
    *,
    fps: float | None = None,
    size: int | None = None,
    heads: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    overwrite: bool = False,
    crf: int = 20,
    idle: bool = True,
    preset: str | None = None,
) -> Path:
    """Render heads side by side into an mp4 with the audio.

    Args:
        results: ``{convention: Animation}``.
        audio: float32 ``[S]`` mono at 16 kHz, or None for a silent video. With audio the
            video lasts as long as the audio; without, as long as the longest head.
        path: the ``.mp4`` to write (atomically: a temp file in the same folder, then
            ``os.replace``).
        fps: video frame rate (default: the highest head fps, else 30). Heads are
            resampled to it linearly in time.
        size: panel size in pixels (rounded up to even for yuv420p; default:
            :func:`panel_size` of the number of panels).
        heads: which heads and in what order (default: all).
        progress: called as ``progress(frames_done, frames_total)``.
        overwrite: replace an existing file.
        crf: x264 quality (lower is better, 18-23 is visually clean).
        preset: x264 speed preset (default ``veryfast``).
        idle: synth heads blink and sway slightly (render-time only, never in the data;
            see :mod:`unitalker.synth.dressing`). False draws exactly the data.

    Returns:
        The written path.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        RendererUnavailable: a head has a mesh and no EGL context can be made.
    """
    import av

    from unitalker.render.layout import build_layout

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (use overwrite / --overwrite to replace)")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a video file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder {path.parent} does not exist")
    if not results:
        raise ValueError("nothing to render: no heads in the results")
    keys = list(heads) if heads else list(results)
    fps = (
        float(fps)
        if fps
        else max((results[k].fps for k in keys if k in results), default=DEFAULT_FPS)
    )
    rate = _video_rate(fps)
    fps = float(rate)
    if audio is not None:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        n_frames = max(1, round(len(audio) / SAMPLE_RATE * fps))
    else:
        n_frames = max(1, max(round(results[k].duration * fps) for k in keys if k in results))
    size = panel_size(len(keys)) if size is None else size + size % 2
    resampled = {k: resample_animation(results[k], fps, n_frames) for k in keys if k in results}
    layout = build_layout(resampled, size, keys, idle=idle)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.partial-", suffix=".mp4", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    _chmod_default(tmp)
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            vstream = container.add_stream("libx264", rate=rate)
            vstream.width, vstream.height = layout.width, layout.height
            vstream.pix_fmt = "yuv420p"
            vstream.options = {"crf": str(crf), "preset": preset or _PRESET}
            astream = None
            if audio is not None:
                astream = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
            encoder = _Encoder(av, container, vstream, astream, audio, fps, n_frames)
            try:
                for i in range(n_frames):
                    # The frame is converted to yuv now (from_ndarray copies), so the
                    # layout's canvas can be redrawn while the encoder thread works.
                    frame = av.VideoFrame.from_ndarray(layout.frame(i), format="rgb24")
                    frame.pts = i
                    encoder.put(frame)
                    if progress is not None:
                        progress(i + 1, n_frames)
            finally:
                encoder.finish()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        layout.close()
    log.info("wrote %s: %d frames at %.3g fps, %d panel(s)", path, n_frames, fps, len(keys))
    return path


class _Encoder:
    """Encodes and muxes video frames (and the audio up to each frame) in a thread.

    The video is encoded while the next frames render: x264 and PyAV release the GIL,
    so on two cores encoding overlaps the (numpy + llvmpipe) rendering. A short queue
    bounds memory; an encoder error is re-raised in the caller at the next ``put`` or at
    ``finish``.
    """

    def __init__(self, av, container, vstream, astream, audio, fps, n_frames) -> None:  # noqa: ANN001
        import queue
        import threading

        self.av, self.container, self.vstream, self.astream = av, container, vstream, astream
        self.audio, self.fps, self.n_frames = audio, fps, n_frames
        self.sent = 0  # audio samples muxed so far
        self.error: BaseException | None = None
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.thread = threading.Thread(target=self._run, name="unitalker-encode", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                frame = self.queue.get()
                if frame is None:
                    break
                self._mux(frame)
            self.container.mux(self.vstream.encode(None))
            if self.astream is not None:
                self._push_audio(len(self.audio))
                self.container.mux(self.astream.encode(None))
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            self.error = e
            while self.queue.get() is not None:  # drain so the producer never blocks
                pass

    def _mux(self, frame) -> None:  # noqa: ANN001
        self.container.mux(self.vstream.encode(frame))
        if self.astream is not None:
            # Interleave: push the audio that plays until the end of this frame.
            i = frame.pts
            upto = (
                len(self.audio)
                if i == self.n_frames - 1
                else min(len(self.audio), round((i + 1) / self.fps * SAMPLE_RATE))
            )
            self._push_audio(upto)

    def _push_audio(self, upto: int) -> None:
        if upto > self.sent:
            chunk = _audio_frame(self.av, self.audio[self.sent : upto], self.sent)
            self.container.mux(self.astream.encode(chunk))
            self.sent = upto

    def put(self, frame) -> None:  # noqa: ANN001
        if self.error is not None:
            raise self.error
        self.queue.put(frame)

    def finish(self) -> None:
        """Flush and wait; re-raises an encoder error."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if self.error is not None:
            raise self.error


def _chmod_default(path: Path) -> None:
    # mkstemp creates 0600 files; give the video the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _audio_frame(av: object, samples: np.ndarray, pts: int) -> object:
    frame = av.AudioFrame.from_ndarray(  # type: ignore[attr-defined]
        np.ascontiguousarray(samples, dtype=np.float32)[None], format="fltp", layout="mono"
    )
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    return frame
