"""The ``unitalker`` command line: every subcommand, and the only place that prints.

Each subcommand lives in :mod:`unitalker.commands` as a module with
``add_parser(subparsers)``; the parser is built from whatever modules are present, and a
module's heavy imports happen inside its handler, so ``unitalker --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import pkgutil
import sys

from unitalker import __version__


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unitalker",
        description="Audio-driven 3D facial animation in every annotation convention (UniTalker).",
    )
    parser.add_argument("--version", action="version", version=f"unitalker {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import unitalker.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"unitalker.commands.{info.name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        rc = args.func(args)
    except CLIError as e:
        _close_progress_bars()
        print(f"unitalker {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, KeyError, OSError) as e:
        # Library errors carry the file and the problem; show them plainly.
        _close_progress_bars()
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            msg = _os_error_text(e)
        print(f"unitalker {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return int(rc or 0)


def _close_progress_bars() -> None:
    """End any open tqdm bar, so an error starts on its own line (no glued fragments)."""
    tqdm_mod = sys.modules.get("tqdm")
    if tqdm_mod is None:
        return
    for bar in list(getattr(tqdm_mod.tqdm, "_instances", ())):
        with contextlib.suppress(Exception):  # best effort while reporting another error
            bar.close()
    sys.stderr.flush()


def _os_error_text(e: OSError) -> str:
    """``[Errno 28] No space left on device: 'x'`` -> what happened, where, what to do."""
    import errno

    where = f"{e.filename}: " if e.filename else ""
    if e.errno == errno.ENOSPC:
        what = (
            e.strerror
            if e.strerror and "space" in e.strerror.lower()
            else "no space left on device"
        )
        return f"{where}{what}; free some disk space (or write elsewhere) and retry"
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"{where}permission denied"
    if e.errno == errno.EROFS:
        return f"{where}read-only file system"
    return f"{where}{e.strerror or e}"


if __name__ == "__main__":
    sys.exit(main())
