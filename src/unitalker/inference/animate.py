"""Offline inference: one clip in, every requested head out, long audio in windows.

Long clips run in overlapping windows (the original demo's 25 s windows with a 20 s hop)
merged with a linear cross-fade over the overlap, so memory stays bounded and seams do not
jump. Each window is one encoder pass for all heads.

Two window layouts (``windows=``):

* ``ours`` (default): window starts on a grid where every head has a whole frame, the
  last window aligned to the clip's end (so it is a full window, not a short tail), the
  earlier window alone until the last ``fade`` frames of the overlap, then a linear
  cross-fade; the frame count is the offline rule ``round(seconds * fps)``.
* ``original``: the original demo's loop exactly (``main/demo.py`` of the authors' code,
  :func:`demo_windows` / :func:`demo_merge`): windows at 0, 20, 40 s... of 25 s, the last
  one as long as the audio that remains; the clip is normalised once as a whole and then
  again per window (the demo calls the feature extractor on both); the 5 s overlap blended
  with ``linspace(1, 0, 5 * fps)``; frame count ``len(last) + 20 * fps * (windows - 1)``.
  docs/formats.md compares the two at the seams.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from unitalker import conventions
from unitalker.animation import Animation
from unitalker.audio import SAMPLE_RATE, frame_count, load_audio, prepare_waveform
from unitalker.inference.precision import PRECISIONS, for_precision

if TYPE_CHECKING:
    from unitalker.models.protocol import TalkerModel

log = logging.getLogger(__name__)

WINDOW_SECONDS = 25.0
OVERLAP_SECONDS = 5.0
# Results larger than this are streamed to .npy files and returned memory-mapped (all six
# B-size heads make ~11 MB per second of audio: about 25 s of audio at the default).
MEMMAP_BYTES = 256 * 2**20
WINDOW_LAYOUTS = ("ours", "original")


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start samples of windows covering ``n_samples`` (the last one ends at the end)."""
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window, hop))
    starts.append(n_samples - window)
    return sorted(set(starts))


def crossfade_merge(pieces: list[tuple[int, np.ndarray]], n_frames: int, fade: int) -> np.ndarray:
    """Merge window outputs ``(start_frame, [t, C])`` into ``[n_frames, C]``.

    Where two windows overlap, the earlier one fades out linearly over (at most) ``fade``
    frames at the end of the overlap and the later one fades in; elsewhere the covering
    window is used as is.
    """
    c = pieces[0][1].shape[1]
    acc = np.zeros((n_frames, c), dtype=np.float64)
    wsum = np.zeros((n_frames, 1), dtype=np.float64)
    for i, (start, arr) in enumerate(pieces):
        t = min(len(arr), n_frames - start)
        w = np.ones(t)
        if i > 0:  # fade in over the overlap with the previous window
            prev_start, prev = pieces[i - 1]
            overlap = max(0, prev_start + len(prev) - start)
            f = min(fade, overlap, t)
            if f > 0:
                # Before the fade starts, the previous window alone is used.
                w[: overlap - f] = 0.0
                w[overlap - f : overlap] = np.linspace(0, 1, f + 2)[1:-1]
        if i + 1 < len(pieces):  # fade out towards the next window
            nxt = pieces[i + 1][0]
            overlap = max(0, start + t - nxt)
            f = min(fade, overlap)
            if f > 0:
                w[t - f :] = np.minimum(w[t - f :], np.linspace(1, 0, f + 2)[1:-1])
        acc[start : start + t] += arr[:t] * w[:, None]
        wsum[start : start + t, 0] += w
    return (acc / np.maximum(wsum, 1e-8)).astype(np.float32)


def frame_grid(rates: Sequence[float], sr: int = SAMPLE_RATE) -> int:
    """Smallest sample step at which every rate in ``rates`` has a whole frame.

    Window starts on this grid make each window's frame ``j`` exactly global frame
    ``start_frame + j`` for every head (25 and 30 fps: 3200 samples = 0.2 s). Returns 1 when
    no grid of at most 2 s exists (odd rates); starts are then rounded to the nearest frame.
    """
    step = 1
    for r in rates:
        period = Fraction(sr) / Fraction(r).limit_denominator(1001)  # samples per frame
        step = math.lcm(step, period.numerator)
    return step if step <= 2 * sr else 1


def aligned_window_starts(n_samples: int, window: int, hop: int, grid: int) -> list[int]:
    """:func:`window_starts` with every start on ``grid``; the last window may be up to
    ``grid`` samples longer than ``window`` so that it still reaches the end."""
    if grid <= 1:
        return window_starts(n_samples, window, hop)
    hop = max(grid, hop // grid * grid)
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window, hop))
    starts.append((n_samples - window) // grid * grid)
    return sorted(set(starts))


class CrossfadeMerger:
    """Incremental form of :func:`crossfade_merge` for windows that arrive in order.

    In memory (``path=None``) it holds only the merged ``[n_frames, C]`` float32 output
    (pre-allocated). With ``path`` it streams to an ``.npy`` file instead: frames before a
    new window's start can no longer change, so they are written out as each window
    arrives and only the frames of the last window stay in memory; :meth:`result` returns
    the file memory-mapped read-only. Both forms do the same float32 arithmetic, so their
    results are equal bit for bit. The blend: the earlier window alone until the last
    ``fade`` frames of the overlap, then a linear cross-fade whose two weights sum to one.
    """

    def __init__(self, n_frames: int, channels: int, fade: int, path: str | Path | None = None):
        self.n_frames, self.channels = n_frames, channels
        self.fade = fade
        self.end = 0  # frames merged so far
        self.path = None if path is None else Path(path)
        self._file = None
        if self.path is None:
            self.out = np.empty((n_frames, channels), dtype=np.float32)
            self._base = 0  # global frame of out[0]
        else:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in result()
            np.lib.format.write_array_header_1_0(
                self._file,
                {"descr": "<f4", "fortran_order": False, "shape": (n_frames, channels)},
            )
            self.out = np.empty((0, channels), dtype=np.float32)
            self._base = 0

    def _spill(self, upto: int) -> None:
        """Write frames ``[_base, upto)`` to the file and drop them from memory."""
        k = upto - self._base
        if self._file is None or k <= 0:
            return
        self._file.write(np.ascontiguousarray(self.out[:k]).data)
        self.out = self.out[k:]
        self._base = upto

    def add(self, start: int, arr: np.ndarray) -> None:
        n = self.n_frames
        start = min(max(0, start), self.end)
        t = min(len(arr), n - start)
        if t <= 0:
            return
        if self._file is not None:
            self._spill(start)  # no later window reaches before this one's start
            keep = self.out[: self.end - start]
            self.out = np.empty((max(t, len(keep)), self.channels), dtype=np.float32)
            self.out[: len(keep)] = keep
        b0 = self._base
        overlap = min(self.end - start, t)
        f = min(self.fade, overlap)
        if f > 0:
            w = np.linspace(0, 1, f + 2, dtype=np.float32)[1:-1, None]
            a, b = start + overlap - f - b0, start + overlap - b0
            self.out[a:b] = self.out[a:b] * (1 - w) + arr[overlap - f : overlap] * w
        self.out[start + overlap - b0 : start + t - b0] = arr[overlap:t]
        self.end = max(self.end, start + t)

    def result(self) -> np.ndarray:
        """``[n_frames, C]`` float32 (read-only memory-mapped when streamed to a file)."""
        if self._file is None:
            if self.end < len(self.out):  # a tie in frame rounding left the last frame(s) out
                self.out[self.end :] = self.out[self.end - 1] if self.end else 0.0
            return self.out
        if self.end < self.n_frames:  # same fill as above, on the in-memory tail
            tail = np.empty((self.n_frames - self._base, self.channels), dtype=np.float32)
            tail[: self.end - self._base] = self.out[: self.end - self._base]
            tail[self.end - self._base :] = tail[self.end - self._base - 1] if self.end else 0.0
            self.out = tail
            self.end = self.n_frames
        self._spill(self.n_frames)
        self._file.close()
        self._file = None
        self.out = np.empty((0, self.channels), dtype=np.float32)
        return np.load(self.path, mmap_mode="r")


def output_bytes(n_samples: int, heads: Sequence[str], rates: dict[str, float]) -> int:
    """Bytes of float32 output that :func:`animate` returns for ``n_samples`` of audio."""
    return sum(4 * frame_count(n_samples, rates[h]) * conventions.get(h).dim for h in heads)


def _spill_folder(spill_dir: str | Path | None) -> Path:
    if spill_dir is not None:
        p = Path(spill_dir)
        p.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="unitalker-", dir=p))
    return Path(tempfile.mkdtemp(prefix="unitalker-"))


@torch.inference_mode()
def animate(
    model: TalkerModel,
    audio: str | Path | np.ndarray | torch.Tensor,
    sr: int | None = None,
    heads: Sequence[str] | None = None,
    identity: int | str | None = None,
    *,
    fps: dict[str, float] | None = None,
    window: float = WINDOW_SECONDS,
    overlap: float = OVERLAP_SECONDS,
    precision: str = "fp32",
    progress: Callable[[int, int], None] | None = None,
    memmap: bool | None = None,
    spill_dir: str | Path | None = None,
    windows: str = "ours",
) -> dict[str, Animation]:
    """Animate one clip with every requested head.

    Args:
        model: a :class:`~unitalker.models.protocol.TalkerModel`: a
            :class:`~unitalker.models.unitalker.UniTalker` or an
            :class:`~unitalker.inference.onnx.OnnxUniTalker`.
        audio: a file path (any format), or samples at ``sr`` (default 16 kHz).
        sr: sample rate of an in-memory waveform.
        heads: head names (default: all).
        identity: None / ``"pivot"``, an index, or a name like ``D1:FaceTalk_..``.
        fps: per-head output rate overrides.
        window: window length in seconds (<= 0: one pass over the whole clip).
        overlap: overlap between windows in seconds (the cross-fade length).
        precision: ``fp32`` or ``bf16`` (see :mod:`unitalker.inference.precision`).
        progress: called as ``progress(done_windows, total_windows)``.
        memmap: stream each head to an ``.npy`` file as windows finish and return it
            memory-mapped (read-only), so memory stays flat for any length. None (default):
            when the result exceeds :data:`MEMMAP_BYTES`.
        spill_dir: folder for those files (default: the system temp folder). A fresh
            ``unitalker-*`` folder is made inside it; the files are unlinked once mapped
            (Linux keeps the data until the arrays are freed), so nothing is left behind.
        windows: ``ours`` (default) or ``original`` (the original demo's fixed 25 s / 20 s
            windows and blend, reproduced exactly; ``window`` / ``overlap`` are then unused).

    Returns:
        ``{convention: Animation}``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if windows not in WINDOW_LAYOUTS:
        raise ValueError(f"windows must be one of {WINDOW_LAYOUTS}, got {windows!r}")
    if isinstance(audio, (str, Path)):
        wav = load_audio(audio)
    else:
        arr = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
        wav = prepare_waveform(arr, sr or SAMPLE_RATE)
    heads = list(heads) if heads is not None else list(model.heads)
    for h in heads:
        if h not in model.heads:
            raise KeyError(f"unknown head {h!r}; this model has: {', '.join(model.heads)}")
    rates = {h: float((fps or {}).get(h, conventions.get(h).fps)) for h in heads}
    idx = model.identity_index(identity)
    device = model.device
    n = len(wav)
    totals = {h: frame_count(n, rates[h]) for h in heads}

    name = "pivot" if identity in (None, "pivot") else str(identity)
    if windows == "original":
        merged = _animate_demo_windows(model, wav, heads, rates, idx, precision, progress)
        return {h: Animation(h, rates[h], merged[h], identity=name) for h in heads}

    win = int(window * SAMPLE_RATE) if window and window > 0 else n
    if window and window > 0 and not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, window), got {overlap} for window {window}")
    hop = max(1, win - int(overlap * SAMPLE_RATE))
    grid = frame_grid(list(rates.values()))
    starts = aligned_window_starts(n, win, hop, grid)
    runner, ctx = for_precision(model, precision)
    if memmap is None:
        memmap = output_bytes(n, heads, rates) > MEMMAP_BYTES
    folder = _spill_folder(spill_dir) if memmap else None
    mergers: dict[str, CrossfadeMerger] = {}
    for i, s0 in enumerate(starts):
        end = n if i == len(starts) - 1 else s0 + win
        chunk = torch.from_numpy(wav[s0:end]).to(device)[None]
        with ctx:
            out = runner(chunk, heads=heads, identity=idx, fps=rates)
        for h in heads:
            motion = out[h].motion[0].float().cpu().numpy()  # [t, C]
            if h not in mergers:
                mergers[h] = CrossfadeMerger(
                    totals[h],
                    motion.shape[1],
                    round(overlap * rates[h]),
                    None if folder is None else folder / f"{h}.npy",
                )
            mergers[h].add(round(s0 / SAMPLE_RATE * rates[h]), motion)
            del motion
        del out
        if progress is not None:
            progress(i + 1, len(starts))

    out = {h: Animation(h, rates[h], mergers[h].result(), identity=name) for h in heads}
    if folder is not None:
        if os.name == "posix":  # mapped files stay readable after unlinking
            for h in heads:
                (folder / f"{h}.npy").unlink()
            folder.rmdir()
        else:
            log.info("memory-mapped results kept in %s", folder)
    return out


# --------------------------------------------------------------------------------------
# The original demo's long-audio windows (``windows="original"``), kept apart from ours.

DEMO_WINDOW_SECONDS = 25
DEMO_OVERLAP_SECONDS = 5


def demo_windows(n_samples: int, sr: int = SAMPLE_RATE) -> list[tuple[int, int]]:
    """``(start, end)`` samples of the original demo's windows.

    ``1 + max(0, ceil((seconds - 25) / 20))`` windows of 25 s starting every 20 s; the last
    one ends where the audio does (it always holds more than the 5 s overlap).
    """
    a, b = DEMO_WINDOW_SECONDS, DEMO_OVERLAP_SECONDS
    reps = max(0, math.ceil((n_samples / sr - a) / (a - b))) + 1
    step, size = int((a - b) * sr), int(a * sr)
    return [(i * step, min(n_samples, i * step + size)) for i in range(reps)]


def demo_merge(pieces: Sequence[np.ndarray], fps: int) -> np.ndarray:
    """Merge the demo's window outputs ``[t_i, C]`` as the demo does.

    Window ``i`` covers frames ``[20 * fps * i, ...)``; over the 5 s overlap the earlier
    window's weight falls as ``linspace(1, 0, 5 * fps)`` (1 on the first overlapped frame,
    0 on the last) and the later one's rises as its complement; after the overlap the later
    window alone. The result has ``len(pieces[-1]) + 20 * fps * (len(pieces) - 1)`` frames.
    """
    if len(pieces) == 1:
        return pieces[0]
    win, fade = DEMO_WINDOW_SECONDS * fps, DEMO_OVERLAP_SECONDS * fps
    hop = win - fade
    for i, p in enumerate(pieces[:-1]):
        if len(p) != win:
            raise ValueError(f"demo window {i} has {len(p)} frames, expected {win} ({fps} fps)")
    if len(pieces[-1]) <= fade:
        raise ValueError(f"the last demo window has {len(pieces[-1])} frames, at most the overlap")
    fade_out = np.linspace(1, 0, fade)[:, None]  # float64, as the demo's weights
    last = pieces[-1]
    out = np.empty((len(last) + hop * (len(pieces) - 1), last.shape[-1]), dtype=last.dtype)
    out[:win] = pieces[0]
    end = win  # frames written so far
    for p in pieces[1:]:
        out[end - fade : end] = fade_out * out[end - fade : end] + (1 - fade_out) * p[:fade]
        out[end : end + hop] = p[fade:]
        end += hop
    return out


def _animate_demo_windows(
    model: TalkerModel,
    wav: np.ndarray,
    heads: list[str],
    rates: dict[str, float],
    idx: Any,
    precision: str,
    progress: Callable[[int, int], None] | None,
) -> dict[str, np.ndarray]:
    """Run ``model`` over :func:`demo_windows` and :func:`demo_merge` the outputs.

    The demo normalises the whole clip with the feature extractor, cuts it, and normalises
    each window again; the model normalises its input itself (the per-window call), so the
    whole clip is normalised here first with the encoder's own normalisation.
    """
    fps = {}
    for h in heads:
        if not float(rates[h]).is_integer():
            raise ValueError(f"windows='original' needs whole frame rates; {h} runs at {rates[h]}")
        fps[h] = int(rates[h])
    device = model.device
    enc = getattr(model, "audio_encoder", None)
    audio = torch.from_numpy(wav).to(device)[None]
    if enc is not None and hasattr(enc, "normalize"):
        audio = enc.normalize(audio, [audio.shape[1]])
    else:  # e.g. an ONNX graph: only the per-window normalisation happens
        log.warning("windows='original': cannot normalise the whole clip first for this model")
    runner, ctx = for_precision(model, precision)
    spans = demo_windows(len(wav))
    pieces: dict[str, list[np.ndarray]] = {h: [] for h in heads}
    for i, (s0, s1) in enumerate(spans):
        with ctx:
            out = runner(audio[:, s0:s1], heads=heads, identity=idx, fps=rates)
        for h in heads:
            pieces[h].append(out[h].motion[0].float().cpu().numpy())
        del out
        if progress is not None:
            progress(i + 1, len(spans))
    return {h: demo_merge(pieces[h], fps[h]) for h in heads}
