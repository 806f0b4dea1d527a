"""tqdm bars for the library's ``progress(stage, done, total)`` callbacks."""

from __future__ import annotations

import sys
from typing import Any


class StageBars:
    """A :data:`unitalker.progress.StageProgress` callback: one tqdm bar per stage, on stderr.

    A new stage closes the previous stage's bar. Use as a context manager (or call
    :meth:`close`) so the last bar ends before the command prints its result.
    """

    def __init__(self, unit: str = "clip") -> None:
        self.unit = unit
        self._stage: str | None = None
        self._bar: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if self._bar is None or stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=total, desc=stage, unit=self.unit, file=sys.stderr)
        self._bar.total = total
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> StageBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
