"""Incremental inference for the WebSocket stream.

:func:`make_streamer` returns :class:`unitalker.inference.streaming.Streamer` when that
module exists, else :class:`WindowStreamer`, a minimal equivalent with the same interface
(``push(samples) -> {head: new frames [n, D]}``, ``flush()``).

:class:`WindowStreamer` re-runs the (non-causal) model on the last ``context +
lookahead`` seconds each time audio arrives and emits the frames whose time is at least
``lookahead`` seconds behind the newest sample; :meth:`flush` emits the rest so a stream
ends with exactly the frame count of offline inference (``round(seconds * fps)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from unitalker import conventions
from unitalker.audio import SAMPLE_RATE, frame_count


class WindowStreamer:
    """Sliding-window streaming over any model with UniTalker's ``forward``.

    Args:
        model: the model.
        heads: head names (default: all).
        identity: identity name / index / None for the pivot.
        lookahead: seconds of future audio a frame waits for.
        context: seconds of past audio the model sees besides the look-ahead.
        fps: per-head output rates (default: the conventions').
    """

    def __init__(
        self,
        model: Any,
        heads: Sequence[str] | None = None,
        identity: str | int | None = None,
        lookahead: float = 0.2,
        context: float = 2.0,
        fps: dict[str, float] | None = None,
    ) -> None:
        import torch

        self._torch = torch
        self.model = model
        self.heads = list(heads) if heads is not None else list(model.heads)
        for h in self.heads:
            if h not in model.heads:
                raise KeyError(f"unknown head {h!r}; this model has: {', '.join(model.heads)}")
        self.identity = model.identity_index(identity)
        self.rates = {h: float((fps or {}).get(h, conventions.get(h).fps)) for h in self.heads}
        self.lookahead = int(round(lookahead * SAMPLE_RATE))
        self.window = int(round(context * SAMPLE_RATE)) + self.lookahead
        self._buf = np.zeros(0, dtype=np.float32)  # the last `window` samples
        self._buf_start = 0  # absolute sample index of _buf[0]
        self.n_samples = 0
        self.emitted = dict.fromkeys(self.heads, 0)

    def push(self, samples: np.ndarray) -> dict[str, np.ndarray]:
        """Add 16 kHz float samples; return the frames that became ready (maybe none)."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if samples.size:
            self._buf = np.concatenate([self._buf, samples])
            self.n_samples += samples.size
            drop = max(0, self._buf.size - self.window)
            if drop:
                self._buf = self._buf[drop:]
                self._buf_start += drop
        ready = {
            h: max(0, int((self.n_samples - self.lookahead) / SAMPLE_RATE * r))
            for h, r in self.rates.items()
        }
        return self._emit(ready)

    def flush(self) -> dict[str, np.ndarray]:
        """Emit every remaining frame (the stream is over)."""
        if self.n_samples == 0:
            return {h: np.zeros((0, conventions.get(h).dim), np.float32) for h in self.heads}
        ready = {h: frame_count(self.n_samples, r) for h, r in self.rates.items()}
        return self._emit(ready)

    def _emit(self, ready: dict[str, int]) -> dict[str, np.ndarray]:
        if all(ready[h] <= self.emitted[h] for h in self.heads):
            return {}
        torch = self._torch
        s0 = self._buf_start
        with torch.inference_mode():
            audio = torch.from_numpy(self._buf).to(self.model.device)[None]
            out = self.model(audio, heads=self.heads, identity=self.identity, fps=self.rates)
        result = {}
        for h in self.heads:
            if ready[h] <= self.emitted[h]:
                continue
            motion = out[h].motion[0].float().cpu().numpy()  # [T_window, D]
            first = round(s0 / SAMPLE_RATE * self.rates[h])  # global index of motion[0]
            idx = np.clip(np.arange(self.emitted[h], ready[h]) - first, 0, len(motion) - 1)
            result[h] = motion[idx]
            self.emitted[h] = ready[h]
        return result


def make_streamer(model: Any, **kwargs: Any) -> Any:
    """The project's streamer when available, else :class:`WindowStreamer`."""
    try:
        from unitalker.inference.streaming import Streamer
    except ImportError:
        return WindowStreamer(model, **kwargs)
    return Streamer(model, **kwargs)


class LinearResampler:
    """Stateful linear-interpolation resampler for chunked audio (any rate -> 16 kHz).

    Used only when a stream is not sent at 16 kHz; chunk boundaries leave no seams. It
    does not low-pass before decimating, so send 16 kHz (the viewer does) for best quality.
    """

    def __init__(self, sr: int, target: int = SAMPLE_RATE) -> None:
        self.step = sr / target  # input samples per output sample
        self._pos = 0.0  # position of the next output sample, relative to _prev's index
        self._prev = np.zeros(0, dtype=np.float32)  # last input sample of the previous chunk

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.concatenate([self._prev, np.asarray(x, dtype=np.float32)])
        if x.size < 2:
            self._prev = x
            return np.zeros(0, dtype=np.float32)
        n_out = int(np.floor((x.size - 1 - self._pos) / self.step)) + 1
        n_out = max(0, n_out)
        t = self._pos + self.step * np.arange(n_out)
        out = np.interp(t, np.arange(x.size), x).astype(np.float32)
        self._pos = self._pos + self.step * n_out - (x.size - 1)
        self._prev = x[-1:]
        return out
