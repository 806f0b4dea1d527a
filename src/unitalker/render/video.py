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
    size: int = 512,
    heads: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    overwrite: bool = False,
    crf: int = 20,
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
        size: panel size in pixels (rounded up to even for yuv420p).
        heads: which heads and in what order (default: all).
        progress: called as ``progress(frames_done, frames_total)``.
        overwrite: replace an existing file.
        crf: x264 quality (lower is better, 18-23 is visually clean).

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
    size = size + size % 2
    resampled = {k: resample_animation(results[k], fps, n_frames) for k in keys if k in results}
    layout = build_layout(resampled, size, keys)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.partial-", suffix=".mp4", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    _chmod_default(tmp)
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            vstream = container.add_stream("libx264", rate=rate)
            vstream.width, vstream.height = layout.width, layout.height
            vstream.pix_fmt = "yuv420p"
            vstream.options = {"crf": str(crf), "preset": "veryfast"}
            astream = None
            if audio is not None:
                astream = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
            sent = 0  # audio samples muxed so far
            for i in range(n_frames):
                frame = av.VideoFrame.from_ndarray(layout.frame(i), format="rgb24")
                frame.pts = i
                container.mux(vstream.encode(frame))
                if astream is not None:
                    # Interleave: push the audio that plays until the end of this frame.
                    upto = (
                        len(audio)
                        if i == n_frames - 1
                        else min(len(audio), round((i + 1) / fps * SAMPLE_RATE))
                    )
                    if upto > sent:
                        container.mux(astream.encode(_audio_frame(av, audio[sent:upto], sent)))
                        sent = upto
                if progress is not None:
                    progress(i + 1, n_frames)
            container.mux(vstream.encode(None))
            if astream is not None:
                container.mux(astream.encode(None))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        layout.close()
    log.info("wrote %s: %d frames at %.3g fps, %d panel(s)", path, n_frames, fps, len(keys))
    return path


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
