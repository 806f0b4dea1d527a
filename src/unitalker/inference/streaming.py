"""Streaming inference: audio arrives in chunks, final frames leave as soon as they can.

:class:`Streamer` keeps the recent audio. Each :meth:`Streamer.push` re-runs the model over
``[left context + audio not yet final + look-ahead]`` and returns the frames whose right
context (``lookahead`` seconds of audio after the frame) is now available; those frames
never change afterwards. :meth:`Streamer.flush` returns the rest at the end of the audio.

Window starts sit on a sample grid where every head has a whole frame (see
:func:`unitalker.inference.animate.frame_grid`), so window frame ``j`` is exactly global
frame ``start_frame + j`` and concatenated output has the offline frame count.

Latency = ``lookahead`` + the chunk size + one model run over ``context + chunk +
lookahead`` seconds.

Incremental mode (``incremental=True``, the default where the encoder allows it): the
encoder's local feature extractor (log-mel + conv stem of the built-in encoder, the conv
stack of HF encoders with a layer-norm stem) runs only on the new samples plus its
receptive-field overlap, and its output frames are cached; each run then starts at the
transformer. The waveform is standardised with the running mean and variance of the stream
so far (offline standardises each window), which is the only difference to recomputing
everything for encoders whose extractor is exactly local; when those statistics have moved
by more than 2 % since the cached frames were extracted (the first seconds of a stream,
above all after a leading silence), the window is extracted again with the new ones.
Encoders whose extractor is not local (a group norm over time: WavLM / wav2vec2 base)
recompute, as before.

Windowed mode (``windowed=True``, for a model whose encoder has a ``stream_window``): the
encoder's transformer runs with the banded attention it was also trained with
(:class:`~unitalker.models.config.EncoderConfig`), so a frame sees the same few frames
ahead whether the audio after them has arrived or not, and the left context it attends to
is bounded too. Off by default: on the models trained so far, full attention over the
window streams closer to the labels (docs/benchmarks.md, "Windowed encoder").
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from unitalker import conventions
from unitalker.audio import HOP_LENGTH, SAMPLE_RATE, frame_count
from unitalker.inference.animate import frame_grid

if TYPE_CHECKING:
    from unitalker.models.protocol import TalkerModel
    from unitalker.models.unitalker import UniTalker

log = logging.getLogger(__name__)

MIN_WINDOW = 400  # samples: the HF conv stack's receptive field (one encoder frame)
# Cached features are extracted again when the stream's standard deviation has changed by
# more than this fraction since (or its mean by this fraction of the deviation): a 2 %
# scale error is 0.17 dB on the log-mel features.
RESTANDARDISE = 0.02


def _moved(old: tuple[float, float], new: tuple[float, float]) -> bool:
    return abs(new[1] / old[1] - 1) > RESTANDARDISE or abs(new[0] - old[0]) > RESTANDARDISE * new[1]


class Streamer:
    """Incremental animation of a live 16 kHz mono stream.

    Args:
        model: a UniTalker (or :class:`~unitalker.inference.onnx.OnnxUniTalker`).
        heads: heads to produce (default: all of the model's).
        identity: None / ``"pivot"``, an index or an identity name.
        lookahead: seconds of audio after a frame that must have arrived before the frame
            is final. More look-ahead: closer to the offline result, more latency.
        context: seconds of past audio re-run with each window (left context).
        fps: per-head output rate overrides.
        max_step: at most this many seconds of new frames per model run (a large push is
            processed in several runs, so a window never exceeds
            ``context + max_step + lookahead``).
        windowed: run the encoder in its ``stream_window`` (default: full attention).

    Example::

        s = Streamer(model, heads=["3DETF_blendshape_weight"], lookahead=0.2)
        for chunk in chunks:                  # float32 16 kHz mono
            frames = s.push(chunk)            # {head: [n_new, C]}, n_new may be 0
        rest = s.flush()
    """

    def __init__(
        self,
        model: TalkerModel,
        heads: Sequence[str] | None = None,
        identity: int | str | None = None,
        lookahead: float = 0.2,
        context: float = 2.0,
        fps: dict[str, float] | None = None,
        *,
        max_step: float = 4.0,
        precision: str = "fp32",
        incremental: bool | None = None,
        windowed: bool = False,
    ):
        if lookahead < 0 or context < 0:
            raise ValueError("lookahead and context must be >= 0")
        self.model = model
        self.heads = list(heads) if heads is not None else list(model.heads)
        for h in self.heads:
            if h not in model.heads:
                raise KeyError(f"unknown head {h!r}; this model has: {', '.join(model.heads)}")
        self.identity = identity
        self._idx = model.identity_index(identity)
        self.fps = {h: float((fps or {}).get(h, conventions.get(h).fps)) for h in self.heads}
        self.lookahead = float(lookahead)
        self.context = float(context)
        self.precision = precision
        self._grid = frame_grid(list(self.fps.values()))
        if self._grid <= 1:
            raise ValueError(f"frame rates {sorted(set(self.fps.values()))} share no sample grid")
        self._la = int(round(lookahead * SAMPLE_RATE))
        self._ctx = int(round(context * SAMPLE_RATE))
        self._step = max(self._grid, int(max_step * SAMPLE_RATE) // self._grid * self._grid)
        self._buf = np.zeros(0, dtype=np.float32)
        self._offset = 0  # global sample index of _buf[0]
        self._received = 0  # samples pushed so far
        self._emitted = dict.fromkeys(self.heads, 0)  # frames returned so far, per head
        self._done = False
        self.run_times: list[float] = []  # seconds per model run (for latency reports)
        enc = getattr(model, "audio_encoder", None)
        edge = enc.feature_edge() if enc is not None else None
        if incremental and edge is None:
            raise ValueError(
                "incremental streaming needs a torch model whose encoder has a local feature "
                "extractor (built-in encoder, or an HF encoder with feat_extract_norm='layer')"
            )
        self.incremental = edge is not None if incremental is None else bool(incremental)
        has_window = getattr(enc, "stream_window", None) is not None
        if windowed and not has_window:
            raise ValueError(
                "windowed streaming needs a model whose encoder has a stream_window "
                "(a built-in encoder trained with data.augment.p_stream_window)"
            )
        self.windowed = bool(windowed)
        self._edge = edge or 0
        self._stats = np.zeros(3)  # count, sum, sum of squares of the samples received
        self._feats: torch.Tensor | None = None  # cached final feature frames [n, F]
        self._norm: tuple[float, float] = (0.0, 1.0)  # mean, std the cached frames used
        self.restandardised = 0  # windows extracted again with new statistics
        self._f0 = 0  # global feature frame of _feats[0]

    # ------------------------------------------------------------------------------------
    @property
    def received_seconds(self) -> float:
        return self._received / SAMPLE_RATE

    @property
    def emitted(self) -> dict[str, int]:
        """Frames returned so far, per head."""
        return dict(self._emitted)

    def push(self, samples: np.ndarray) -> dict[str, np.ndarray]:
        """Add audio; return the new final frames per head (``[n, C]``, ``n`` may be 0).

        Args:
            samples: float32 mono samples at 16 kHz (any chunk size).
        """
        if self._done:
            raise RuntimeError("push() after flush(): make a new Streamer for a new stream")
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not np.isfinite(x).all():
            raise ValueError("audio chunk contains NaN or infinite samples")
        self._buf = np.concatenate([self._buf, x])
        self._received += len(x)
        x64 = x.astype(np.float64)
        self._stats += (len(x), x64.sum(), np.dot(x64, x64))
        final_until = self._received - self._la  # a frame at or before this time is final
        targets = {
            h: max(
                0, min(math.floor(final_until * r / SAMPLE_RATE), frame_count(self._received, r))
            )
            for h, r in self.fps.items()
        }
        return self._emit(targets, end=self._received)

    def flush(self) -> dict[str, np.ndarray]:
        """End of audio: return every frame not yet returned (the offline frame count in all)."""
        if self._done:
            return self._empty()
        self._done = True
        if self._received == 0:
            return self._empty()
        targets = {h: frame_count(self._received, r) for h, r in self.fps.items()}
        return self._emit(targets, end=self._received)

    # ------------------------------------------------------------------------------------
    def _empty(self) -> dict[str, np.ndarray]:
        return {h: np.zeros((0, self._dim(h)), dtype=np.float32) for h in self.heads}

    def _dim(self, h: str) -> int:
        return conventions.get(h).dim

    def _emit(self, targets: dict[str, int], end: int) -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = {h: [] for h in self.heads}
        while any(targets[h] > self._emitted[h] for h in self.heads):
            # Start of the audio still needed: the earliest frame not yet returned, minus
            # the left context, rounded down to the frame grid.
            first = min(self._emitted[h] * SAMPLE_RATE / self.fps[h] for h in self.heads)
            s0 = max(0, int(first) - self._ctx) // self._grid * self._grid
            s0 = max(s0, self._offset // self._grid * self._grid)
            # Emit at most max_step seconds per run; the window still sees the look-ahead.
            step_end = int(first) // self._grid * self._grid + self._step
            s1 = min(end, step_end + self._la)
            stop = {
                h: min(targets[h], math.floor(step_end * self.fps[h] / SAMPLE_RATE))
                for h in self.heads
            }
            stop = {h: max(stop[h], self._emitted[h]) for h in self.heads}
            if s1 >= end:  # the window reaches the newest audio: it may emit all targets
                stop = dict(targets)
            out = self._run(s0, s1)
            for h in self.heads:
                g0 = round(s0 * self.fps[h] / SAMPLE_RATE)
                a, b = self._emitted[h] - g0, stop[h] - g0
                m = out[h]
                if b > len(m):  # window shorter than its frames (only at the very end)
                    m = np.concatenate([m, np.repeat(m[-1:], b - len(m), axis=0)])
                parts[h].append(m[a:b])
                self._emitted[h] = stop[h]
        self._trim()
        return {
            h: np.concatenate(parts[h]) if parts[h] else np.zeros((0, self._dim(h)), np.float32)
            for h in self.heads
        }

    def _run(self, s0: int, s1: int) -> dict[str, np.ndarray]:
        wav = self._buf[s0 - self._offset : s1 - self._offset]
        n = len(wav)
        if n < MIN_WINDOW:  # shorter than one encoder frame: pad (only a tiny last bit)
            wav = np.concatenate([wav, np.zeros(MIN_WINDOW - n, np.float32)])
        t0 = time.perf_counter()
        from unitalker.inference.precision import for_precision

        device = self.model.device
        runner, ctx = for_precision(self.model, self.precision)
        with torch.inference_mode(), ctx:
            feats = self._features(runner, s0, s1) if self.incremental and n >= MIN_WINDOW else None
            res = runner(
                torch.from_numpy(np.ascontiguousarray(wav)).to(device)[None],
                heads=self.heads,
                identity=self._idx,
                fps=self.fps,
                **({} if feats is None else {"features": feats[None]}),
                **({"windowed": True} if self.windowed else {}),
            )
        self.run_times.append(time.perf_counter() - t0)
        return {h: res[h].motion[0].float().cpu().numpy() for h in self.heads}

    def _features(self, runner: UniTalker, s0: int, s1: int) -> torch.Tensor | None:
        """Encoder features ``[T50, F]`` of samples ``[s0, s1)``, extracting only frames not
        cached yet (plus the extractor's edge); None when the cache cannot serve them.

        For an encoder that standardises its waveform, the cached frames were extracted
        with the running statistics of their time; when those have moved by more than
        :data:`RESTANDARDISE` since (mostly in the first seconds of a stream, where a
        leading silence makes the first estimate far too small), the whole window is
        extracted again with the current ones, so a window never mixes two scales."""
        enc = runner.audio_encoder
        edge = self._edge
        if s0 % HOP_LENGTH:
            return None
        f_a = s0 // HOP_LENGTH
        n_total = enc.output_lengths([s1])[0]  # frames of the audio up to s1
        f_b = f_a + enc.output_lengths([s1 - s0])[0]
        norm = self._standardisation() if enc.normalizes else None
        refresh = norm is not None and self._feats is not None and _moved(self._norm, norm)
        n_final = self._f0 + (0 if self._feats is None else len(self._feats))
        # Extract from `edge` frames before the first uncached one (at least one window);
        # a refresh extracts the whole window (its first frames see the conv's zero
        # padding, as a recomputed window's do)
        start = f_a if refresh else max(0, min(n_final - edge, (s1 - MIN_WINDOW) // HOP_LENGTH))
        f0 = f_a if refresh else self._f0
        if f_a < f0 or start * HOP_LENGTH < self._offset or f_b > n_total:
            return None
        if refresh:
            self.restandardised += 1
            self._feats, self._f0, n_final = None, f_a, f_a
        seg = self._buf[start * HOP_LENGTH - self._offset : s1 - self._offset]
        if norm is not None:
            if self._feats is None:
                self._norm = norm  # the scale of every frame cached from now on
            seg = (seg - norm[0]) / norm[1]
        x = torch.from_numpy(np.ascontiguousarray(seg, dtype=np.float32)).to(runner.device)
        new = enc.extract(x[None].to(runner.templates_dtype))[0]  # frames start..
        # Keep the frames from n_final on: those before were cached already, and the
        # first `edge` ones saw conv padding where there was audio.
        new = new[n_final - start : n_total - start]
        keep = n_total - edge - n_final  # frames of new that no later audio can change
        have = self._feats if self._feats is not None else new[:0]
        return self._store_and_slice(torch.cat([have, new]), self._f0, len(have) + keep, f_a, f_b)

    def _standardisation(self) -> tuple[float, float]:
        """Mean and standard deviation of the samples received so far."""
        cnt, tot, sq = self._stats
        mean = tot / cnt
        return mean, math.sqrt(max(sq / cnt - mean * mean, 0.0) + 1e-7)

    def _store_and_slice(
        self, feats: torch.Tensor, f0: int, n_keep: int, f_a: int, f_b: int
    ) -> torch.Tensor:
        self._feats, self._f0 = feats[: max(0, n_keep)], f0
        return feats[f_a - f0 : f_b - f0]

    def _trim(self) -> None:
        # Keep only what a later window can still need: the context before the earliest
        # frame not yet returned.
        first = min(self._emitted[h] * SAMPLE_RATE / self.fps[h] for h in self.heads)
        keep_from = max(0, int(first) - self._ctx) // self._grid * self._grid
        if keep_from > self._offset:
            self._buf = self._buf[keep_from - self._offset :]
            self._offset = keep_from
        if self._feats is not None and keep_from // HOP_LENGTH > self._f0:
            drop = min(len(self._feats), keep_from // HOP_LENGTH - self._f0)
            self._feats, self._f0 = self._feats[drop:], self._f0 + drop


def stream_array(
    streamer: Streamer, wav: np.ndarray, chunk: float = 0.1
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Feed ``wav`` to ``streamer`` in ``chunk``-second pieces; return all frames per head and
    the per-push compute times (seconds)."""
    n = max(1, int(chunk * SAMPLE_RATE))
    parts: dict[str, list[np.ndarray]] = {h: [] for h in streamer.heads}
    times = []
    for i in range(0, len(wav), n):
        t0 = time.perf_counter()
        out = streamer.push(wav[i : i + n])
        times.append(time.perf_counter() - t0)
        for h, v in out.items():
            parts[h].append(v)
    for h, v in streamer.flush().items():
        parts[h].append(v)
    return {h: np.concatenate(v) for h, v in parts.items()}, times
