"""Argparse helpers shared by the subcommands: numbers checked where they are parsed.

Every numeric option uses :class:`Number` as its ``type``, so ``--window -5`` or
``--chunk 0`` is refused by argparse (usage + exit 2) before any work, and ``%(type)s``
in a help string shows the accepted range (``--help`` says what is allowed).
"""

from __future__ import annotations

import argparse
import math


class Number:
    """An argparse ``type``: ``int`` or ``float`` within ``[lo, hi]`` (open ends optional).

    Args:
        kind: ``int`` or ``float``.
        lo / hi: bounds (None: unbounded on that side).
        lo_open / hi_open: exclude the bound itself (``> 0`` rather than ``>= 0``).

    ``__name__`` is the range in words (``"seconds > 0"`` style), which argparse puts in
    ``%(type)s`` of a help string.
    """

    def __init__(
        self,
        kind: type = float,
        lo: float | None = None,
        hi: float | None = None,
        *,
        lo_open: bool = False,
        hi_open: bool = False,
    ) -> None:
        if kind not in (int, float):
            raise TypeError("Number is for int or float")
        self.kind = kind
        self.lo, self.hi = lo, hi
        self.lo_open, self.hi_open = lo_open, hi_open
        self.__name__ = self.describe()

    def describe(self) -> str:
        """The accepted values in words, e.g. ``number in [0, 5]`` or ``integer >= 1``."""
        what = "integer" if self.kind is int else "number"
        lo, hi = _fmt(self.lo), _fmt(self.hi)
        if self.lo is not None and self.hi is not None:
            left = "(" if self.lo_open else "["
            right = ")" if self.hi_open else "]"
            return f"{what} in {left}{lo}, {hi}{right}"
        if self.lo is not None:
            return f"{what} {'>' if self.lo_open else '>='} {lo}"
        if self.hi is not None:
            return f"{what} {'<' if self.hi_open else '<='} {hi}"
        return what

    def contains(self, value: float) -> bool:
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    def __call__(self, text: str) -> int | float:
        try:
            value = int(text) if self.kind is int else float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a {self.describe()}") from None
        if self.kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite {self.describe()}")
        if not self.contains(value):
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range: expected a {self.describe()}"
            )
        return value

    def __repr__(self) -> str:
        return f"Number({self.describe()!r})"


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:g}" if isinstance(v, float) else str(v)


# The ranges used by several commands (one definition each).
SEED = Number(int, 0, 2**32 - 1)  # numpy's seed range
COUNT = Number(int, 1)  # clients, repeats, workers, threads, steps ...
NON_NEGATIVE_INT = Number(int, 0)
POSITIVE_SECONDS = Number(float, 0, lo_open=True)
NON_NEGATIVE_SECONDS = Number(float, 0)
PORT = Number(int, 0, 65535)
FPS = Number(float, 0, 1000, lo_open=True)  # unitalker.data.manifest.MAX_FPS
