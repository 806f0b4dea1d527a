"""Stream helpers for the WebSocket endpoint.

The incremental inference itself is :class:`unitalker.inference.streaming.Streamer`
(``push(samples) -> {head: new final frames}``, ``flush()``); this module adds what the
wire needs: :class:`LinearResampler` for streams not sent at 16 kHz.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from unitalker.audio import SAMPLE_RATE

if TYPE_CHECKING:
    from unitalker.models.protocol import TalkerModel


def make_streamer(model: TalkerModel, **kwargs: Any) -> Any:
    """A :class:`~unitalker.inference.streaming.Streamer` for one WebSocket session."""
    from unitalker.inference.streaming import Streamer

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
