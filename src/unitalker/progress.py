"""Progress reporting for library code, which draws no bars: the CLI draws them.

Long loops take ``progress: StageProgress | None`` and call ``progress(stage, done,
total)`` (``stage`` names the pass, e.g. ``"PCA fit arkit52"``); :func:`track` does that
around an iterable. ``unitalker.commands`` turns the calls into tqdm bars.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

StageProgress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: ``done`` of ``total`` items of ``stage`` finished."""


def track(items: Sequence[T], stage: str, progress: StageProgress | None) -> Iterator[T]:
    """Yield ``items``, reporting ``(stage, 0, n)`` first and ``(stage, i + 1, n)`` after each."""
    n = len(items)
    if progress is not None:
        progress(stage, 0, n)
    for i, item in enumerate(items):
        yield item
        if progress is not None:
            progress(stage, i + 1, n)
