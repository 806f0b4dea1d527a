"""The writer interface, the format registry and the all-or-nothing output plan.

Every format is a :class:`Writer` registered by name (whisper's ``get_writer`` idea).
A writer either writes one file for all heads (``npz``, ``mp4``), one file per head
(``csv``, ``json``, ``glb``) or one folder of frame files per head (``obj``, ``ply``).

:func:`write_outputs` first plans every output path and checks them all (existing
files, a file where a folder is expected) before writing anything; then every writer
writes into a private staging folder inside ``out_dir``; only when all succeeded are
the staged outputs moved into place with ``os.replace``. A failure therefore leaves
neither partial files nor half of the requested formats behind.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from unitalker.animation import Animation

log = logging.getLogger(__name__)


class ExportError(ValueError):
    """An output cannot be written as asked; the message names the path or the head."""


class OutputExistsError(ExportError, FileExistsError):
    """An output path already exists and ``overwrite`` was not given."""


class Writer:
    """One output format.

    Subclasses set ``name`` / ``extension`` / ``layout`` and implement :meth:`fits` and
    either :meth:`write_head` (per-head layouts) or :meth:`write_all` (``combined``).

    Attributes:
        name: the format's name on the command line (``npz``, ``csv``...).
        extension: file extension without the dot.
        layout: ``combined`` (one file for all heads), ``file`` (one file per head) or
            ``sequence`` (one folder of frame files per head).
        needs_audio: included in ``all`` only when audio is given.
        writes_audio: the outputs reference the clip's audio, which is then written once
            next to them (``<stem>_audio.wav``) and named to :meth:`write_head` as
            ``audio_file`` (a path relative to the output folder).
        main_process: always written in the calling process (the mp4: its OpenGL context
            lives there); with ``parallel`` writing the other formats go to a child process
            meanwhile (see :func:`write_outputs`).
    """

    name: ClassVar[str]
    extension: ClassVar[str]
    layout: ClassVar[str] = "file"
    needs_audio: ClassVar[bool] = False
    writes_audio: ClassVar[bool] = False
    main_process: ClassVar[bool] = False
    description: ClassVar[str] = ""

    def unavailable(self) -> str | None:
        """Why this format cannot be written here (a missing optional package), or None."""
        return None

    def fits(self, animation: Animation) -> bool:
        """Whether this format can represent ``animation``."""
        raise NotImplementedError

    def why_not(self, animation: Animation) -> str:
        """A short reason for a head this format does not fit (for error messages)."""
        return f"{self.name} does not fit the {animation.conv.kind} convention {animation.convention!r}"

    def output_path(self, out_dir: Path, stem: str, convention: str | None) -> Path:
        """Final path of the output for one head (or for all heads when ``combined``)."""
        if self.layout == "combined":
            return out_dir / f"{stem}.{self.extension}"
        if self.layout == "sequence":
            return out_dir / f"{stem}_{convention}_{self.extension}"
        return out_dir / f"{stem}_{convention}.{self.extension}"

    def write_head(self, animation: Animation, path: Path) -> None:
        """Write one head to ``path`` (a file, or a new empty folder for ``sequence``)."""
        raise NotImplementedError

    def write_all(
        self, results: Mapping[str, Animation], path: Path, audio: np.ndarray | None
    ) -> None:
        """Write all heads to one file at ``path`` (``combined`` layout)."""
        raise NotImplementedError

    def write(
        self,
        results: Mapping[str, Animation],
        out_dir: str | Path,
        stem: str,
        *,
        audio: np.ndarray | None = None,
        overwrite: bool = False,
    ) -> list[Path]:
        """Write this format, with this writer's options, for every head it fits; see
        :func:`write_outputs`."""
        return write_outputs(results, out_dir, stem, [self], audio=audio, overwrite=overwrite)


def iter_rows(data: np.ndarray, max_bytes: int = 16 * 2**20) -> Iterable[np.ndarray]:
    """``data [T, C]`` in consecutive row blocks of at most ``max_bytes`` (at least one row).

    For memory-mapped input (long results, see :func:`unitalker.inference.animate.animate`)
    the pages of each block are released after it is used, so writing a file from a
    disk-backed array does not bring the whole array into memory.
    """
    rows = max(1, max_bytes // max(1, data.strides[0] if data.ndim else 1))
    release = _page_releaser(data)
    for i in range(0, len(data), rows):
        block = data[i : i + rows]
        yield block
        if release is not None:
            release(block)


def _page_releaser(data: np.ndarray):  # noqa: ANN202 - a small closure
    import mmap

    # Only shared mappings: dropping pages of a copy-on-write ("c") map would lose edits.
    if not isinstance(data, np.memmap) or getattr(data, "mode", None) not in ("r", "r+"):
        return None
    base = data
    while not isinstance(base, mmap.mmap) and getattr(base, "base", None) is not None:
        base = base.base
    if not isinstance(base, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return None
    start = np.frombuffer(base, dtype=np.uint8).ctypes.data
    page = mmap.PAGESIZE

    def release(block: np.ndarray) -> None:
        a = block.ctypes.data - start
        b = a + block.nbytes
        a0 = a // page * page
        if b > a0:
            base.madvise(mmap.MADV_DONTNEED, a0, min(len(base), -(-b // page) * page) - a0)

    return release


_WRITERS: dict[str, type[Writer]] = {}
_ORDER = ("npz", "csv", "json", "glb", "usd", "obj", "ply", "mp4")  # how formats are listed


def register_writer(cls: type[Writer]) -> type[Writer]:
    """Class decorator: make a writer available by its ``name``."""
    _WRITERS[cls.name] = cls
    return cls


def available_formats() -> list[str]:
    """Names accepted by :func:`get_writer` and :func:`write_outputs` (besides ``all``)."""
    _load_builtin_writers()
    return sorted(_WRITERS, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))


def get_writer(fmt: str, **options: Any) -> Writer:
    """The writer for a format name (``npz``, ``csv``, ``json``, ``glb``, ``usd``, ``obj``, ``ply``, ``mp4``),
    built with the format's ``options`` (e.g. ``glb``: ``max_error``, ``lossless``)."""
    _load_builtin_writers()
    try:
        cls = _WRITERS[fmt.lower()]
    except KeyError:
        raise ExportError(
            f"unknown output format {fmt!r}; available: {', '.join(_WRITERS)} (or 'all')"
        ) from None
    try:
        return cls(**options)
    except (TypeError, ValueError) as e:
        raise ExportError(f"bad options for {fmt}: {options}: {e}") from e


def formats_for(animation: Animation, *, audio: bool = False) -> list[str]:
    """The formats that fit one head.

    Args:
        animation: the head.
        audio: whether audio is available (``mp4`` is listed only then).
    """
    _load_builtin_writers()
    out = []
    for name in available_formats():
        w = _WRITERS[name]()
        if w.needs_audio and not audio:
            continue
        if w.fits(animation):
            out.append(name)
    return out


def _load_builtin_writers() -> None:
    # Importing the modules registers their writers (cheap: no heavy imports at module level).
    from unitalker.export import (  # noqa: F401
        glb,
        json_frames,
        livelink_csv,
        mesh_sequence,
        npz,
        usd,
        video,
    )


_SAFE_NAME = re.compile(r"^[A-Za-z0-9._+-]+$")


@dataclass
class _Item:
    writer: Writer
    heads: list[str]
    final: Path
    options: dict[str, str] = field(default_factory=dict)


class _AudioWriter(Writer):
    """The clip's audio as 16-bit wav, next to outputs that reference it (not a format)."""

    name = "wav"
    extension = "wav"
    layout = "combined"

    def fits(self, animation: Animation) -> bool:
        return True

    def output_path(self, out_dir: Path, stem: str, convention: str | None) -> Path:
        return out_dir / f"{stem}_audio.wav"

    def write_all(
        self, results: Mapping[str, Animation], path: Path, audio: np.ndarray | None
    ) -> None:
        from unitalker.audio import write_wav

        assert audio is not None
        write_wav(path, audio)


_WARNED: set[tuple[str, tuple[str, ...]]] = set()  # (format, skipped heads) already said


def _check_name(what: str, value: str) -> None:
    if not value or not _SAFE_NAME.match(value) or value in (".", ".."):
        raise ExportError(
            f"{what} {value!r} cannot be used in a file name (letters, digits, . _ + - only)"
        )


def plan_outputs(
    results: Mapping[str, Animation],
    out_dir: Path,
    stem: str,
    formats: Iterable[str | Writer] | str,
    *,
    audio: bool,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[_Item]:
    """Decide which file each (format, head) goes to; nothing is written. A writer
    instance among ``formats`` is used as it is (its options, not ``options``)."""
    _load_builtin_writers()
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    formats = list(formats)
    given = {f.name: f for f in formats if isinstance(f, Writer)}
    formats = [f.name if isinstance(f, Writer) else f.lower() for f in formats]
    if not formats:
        raise ExportError("no output format given")
    if not results:
        raise ExportError("nothing to export: no heads in the results")
    _check_name("stem", stem)
    for name in results:
        _check_name("convention name", name)
    want_all = "all" in formats
    names = list(dict.fromkeys(available_formats() if want_all else formats))
    items: list[_Item] = []
    for fmt in names:
        writer = given.get(fmt) or get_writer(fmt, **dict((options or {}).get(fmt, {})))
        missing = writer.unavailable()
        if missing:
            if want_all:
                log.info("skipping %s: %s", fmt, missing)
                continue
            raise ExportError(missing)
        if writer.needs_audio and not audio:
            if want_all:
                log.info("skipping %s: no audio given", fmt)
                continue
            log.warning("%s without audio: the video will be silent", fmt)
        fitting = [k for k, a in results.items() if writer.fits(a)]
        skipped = [k for k in results if k not in fitting]
        if skipped and fitting and not want_all:
            # Said once per process (a run over 100 files is one message, not 100 x heads).
            key = (fmt, tuple(skipped))
            if key not in _WARNED:
                _WARNED.add(key)
                reasons = sorted({writer.why_not(results[k]) for k in skipped})
                log.warning("skipping %s for %s: %s", fmt, ", ".join(skipped), "; ".join(reasons))
        if not fitting:
            if want_all:
                continue
            reasons = "; ".join(writer.why_not(a) for a in results.values())
            raise ExportError(f"format {fmt!r} fits none of the heads: {reasons}")
        if fmt == "mp4" and want_all:
            from unitalker.render import renderer

            if any(results[k].conv.has_mesh for k in fitting) and not renderer.egl_available():
                log.warning("skipping mp4: no EGL for offscreen rendering (%s)", renderer.EGL_HINT)
                continue
        if writer.layout == "combined":
            items.append(_Item(writer, fitting, writer.output_path(out_dir, stem, None)))
        else:
            items.extend(_Item(writer, [k], writer.output_path(out_dir, stem, k)) for k in fitting)
    referencing = [it for it in items if it.writer.writes_audio]
    if referencing and audio:
        sound = _AudioWriter()
        wav = sound.output_path(out_dir, stem, None)
        for it in referencing:
            it.options["audio_file"] = wav.name  # relative: the folder can move as a whole
        items.append(_Item(sound, list(results), wav))
    return items


def write_outputs(
    results: Mapping[str, Animation],
    out_dir: str | Path,
    stem: str,
    formats: Iterable[str | Writer] | str = ("npz",),
    *,
    audio: np.ndarray | None = None,
    overwrite: bool = False,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    parallel: bool = False,
    on_stage: StageFn | None = None,
) -> list[Path]:
    """Write ``results`` in each requested format, all or nothing.

    Args:
        results: ``{convention: Animation}`` as returned by inference.
        out_dir: output folder (created if missing; an existing *file* there is an error).
        stem: base name of the outputs: ``<stem>.npz``, ``<stem>_<convention>.csv``,
            ``<stem>_<convention>_obj/`` ...
        formats: format names or ``"all"`` (every format that fits each head; ``mp4``
            only with audio and a working renderer). A comma-separated string works too,
            and so does a :class:`Writer` instance (written with its own options).
        audio: float32 ``[S]`` mono at 16 kHz, muxed into ``mp4``.
        overwrite: replace existing outputs; otherwise an existing one is an error
            raised before anything is written.
        options: per-format writer options, e.g. ``{"glb": {"lossless": True}}`` or
            ``{"mp4": {"idle": False}}`` (each writer's constructor arguments).
        parallel: while this process renders the mp4, a forked child process writes the
            other formats (Linux only; elsewhere, and when there is no mp4 to overlap
            with, everything is written here one after the other). The files are the same
            either way. Off by default: forking a process that runs other threads (a
            server) is not safe in general; the ``animate`` command turns it on.
        on_stage: called as ``on_stage(name, wall_seconds, cpu_seconds)`` after each
            output is written (``name``: ``"glb synth_arkit52"``, ``"mp4"``...; the CPU
            time of the process that wrote it, all its threads), e.g. for a profile.

    Returns:
        The paths written (files, or folders for frame sequences), in plan order.

    Raises:
        ExportError: unknown format, a format that fits no head, a bad path.
        OutputExistsError: an output exists and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"output folder {out_dir} exists and is not a folder")
    for parent in out_dir.parents:
        if parent.exists() and not parent.is_dir():
            raise ExportError(f"cannot create output folder {out_dir}: {parent} is a file")
    items = plan_outputs(results, out_dir, stem, formats, audio=audio is not None, options=options)
    _check_targets(items, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{stem}.partial-", dir=out_dir))
    try:
        jobs = [(item, stage / item.final.name) for item in items]
        _write_jobs(jobs, results, audio, parallel=parallel, on_stage=on_stage)
        for item, tmp in jobs:
            _commit(tmp, item.final)
    finally:
        # The staging folder is ours alone (mkdtemp); whatever is left in it is partial.
        shutil.rmtree(stage, ignore_errors=True)
    return [it.final for it in items]


StageFn = Callable[[str, float, float], None]
_Job = tuple[_Item, Path]  # what to write, and its path in the staging folder


def _write_one(item: _Item, tmp: Path, results: Mapping[str, Animation], audio: Any) -> None:
    w = item.writer
    log.debug("writing %s -> %s", w.name, item.final)
    if w.layout == "combined":
        w.write_all({k: results[k] for k in item.heads}, tmp, audio)
    else:
        if w.layout == "sequence":
            tmp.mkdir()
        w.write_head(results[item.heads[0]], tmp, **item.options)


def _write_timed(
    jobs: list[_Job], results: Mapping[str, Animation], audio: Any
) -> list[tuple[str, float, float]]:
    """Write ``jobs`` one after the other; ``(name, wall, cpu)`` of each."""
    times = []
    for item, tmp in jobs:
        t, c = time.perf_counter(), time.process_time()
        _write_one(item, tmp, results, audio)
        name = item.writer.name
        if item.writer.layout != "combined":
            name += f" {item.heads[0]}"
        times.append((name, time.perf_counter() - t, time.process_time() - c))
    return times


def _write_jobs(
    jobs: list[_Job],
    results: Mapping[str, Animation],
    audio: Any,
    *,
    parallel: bool,
    on_stage: StageFn | None,
) -> None:
    here = [j for j in jobs if j[0].writer.main_process]
    rest = [j for j in jobs if not j[0].writer.main_process]
    results = _shared_vertices(results, rest if parallel else jobs)
    # Two processes, not two threads: the renderer (moderngl) holds the GIL while it
    # draws and reads back, so Python-heavy writers in a thread would wait for it.
    forked = parallel and here and rest and sys.platform.startswith("linux")
    child = _ForkedWriter(rest, results, audio) if forked else None
    try:
        times = _write_timed(here if child else jobs, results, audio)
    except BaseException:
        if child is not None:
            child.kill()
        raise
    if child is not None:
        times += child.wait()
    if on_stage is not None:
        for name, wall, cpu in times:
            on_stage(name, wall, cpu)


SHARED_VERTICES_MB = 64.0  # rig outputs up to this size are evaluated once for all writers
_MESH_WRITERS = frozenset({"obj", "ply", "glb", "usd"})  # the writers that read vertices


def _shared_vertices(results: Mapping[str, Animation], jobs: list[_Job]) -> dict[str, Animation]:
    """``results`` with the rigged heads (weights, parameters) that two or more of ``jobs``
    turn into vertices replaced by copies whose vertices are evaluated once, here: a
    FLAME-like rig costs 0.05-0.3 s per evaluation of a short clip, and four writers
    evaluated it each. Heads of vertex data need no rig; memory-mapped (long) results and
    vertices above :data:`SHARED_VERTICES_MB` are left to each writer, chunk by chunk."""
    readers: dict[str, int] = {}
    for item, _ in jobs:
        if item.writer.name in _MESH_WRITERS and item.writer.layout != "combined":
            readers[item.heads[0]] = readers.get(item.heads[0], 0) + 1
    out = dict(results)
    for k, n in readers.items():
        a = results[k]
        conv = a.conv
        if n < 2 or conv.kind == "vertices" or not conv.has_mesh or isinstance(a.data, np.memmap):
            continue
        n_vertices = _rig_vertex_count(conv)
        if n_vertices is None or a.n_frames * n_vertices * 12 / 2**20 > SHARED_VERTICES_MB:
            continue
        out[k] = a.with_vertices()
    return out


def _rig_vertex_count(conv: Any) -> int | None:
    from unitalker import geometry

    v = geometry.vertices(conv, np.zeros((1, conv.dim), np.float32))
    return None if v is None else int(v.shape[1])


class _ForkedWriter:
    """Writes jobs in a forked child process; :meth:`wait` re-raises its error here.

    Forked, so the child sees the results without copying or pickling them (memory-mapped
    ones included). It touches no OpenGL and sets torch to one thread (a forked child must
    not use the parent's thread pool); it ends with ``os._exit`` through multiprocessing,
    so no atexit handler of the parent runs twice.
    """

    def __init__(self, jobs: list[_Job], results: Mapping[str, Animation], audio: Any) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self.names = ", ".join(item.final.name for item, _ in jobs)
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_child_main, args=(send, jobs, results, audio), name="unitalker-write"
        )
        self._proc.daemon = True  # never outlives this process
        self._proc.start()
        send.close()

    def wait(self) -> list[tuple[str, float, float]]:
        try:
            status, payload = self._recv.recv()
        except EOFError:
            status, payload = "died", None
        finally:
            self._recv.close()
            self._proc.join()
        if status == "ok":
            return payload
        if status == "error":
            error, trace = payload
            log.debug("the writer process failed:\n%s", trace)
            raise error
        raise ExportError(
            f"the process writing {self.names} ended without a result "
            f"(exit code {self._proc.exitcode}; out of memory?)"
        )

    def kill(self) -> None:
        self._proc.kill()
        self._proc.join()
        self._recv.close()


def _child_main(send: Any, jobs: list[_Job], results: Mapping[str, Animation], audio: Any) -> None:
    import pickle
    import traceback

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    try:
        message: tuple[str, Any] = ("ok", _write_timed(jobs, results, audio))
    except BaseException as e:  # noqa: BLE001 - handed to the parent
        try:
            pickle.dumps(e)
        except Exception:  # noqa: BLE001 - an exception that does not pickle: say what it was
            e = ExportError(f"{type(e).__name__}: {e}")
        message = ("error", (e, traceback.format_exc()))
    send.send(message)
    send.close()


def _check_targets(items: list[_Item], overwrite: bool) -> None:
    existing = []
    for it in items:
        p = it.final
        if it.writer.layout == "sequence":
            if p.exists() and not p.is_dir():
                raise ExportError(f"{p} exists and is a file, but a folder of frames goes there")
            if p.is_dir() and any(p.iterdir()):
                if not overwrite:
                    existing.append(p)
                elif not _is_our_sequence(p, it.writer.extension):
                    raise ExportError(
                        f"{p} holds files that are not {it.writer.extension} frames; "
                        "refusing to replace it even with overwrite"
                    )
        elif p.exists():
            if p.is_dir():
                raise ExportError(f"{p} is a folder, but a {it.writer.name} file goes there")
            if not overwrite:
                existing.append(p)
    if existing:
        listed = ", ".join(str(p) for p in existing)
        raise OutputExistsError(f"output exists: {listed} (use overwrite / --overwrite to replace)")


def _is_our_sequence(folder: Path, ext: str) -> bool:
    pat = re.compile(rf"^.+_\d+\.{re.escape(ext)}$")
    return all(f.is_file() and pat.match(f.name) for f in folder.iterdir())


def _commit(tmp: Path, final: Path) -> None:
    if tmp.is_dir() and final.is_dir():
        # Replace an earlier frame sequence of ours (checked by _check_targets): delete
        # only its frame files, then the empty folder, never anything else.
        for f in final.iterdir():
            f.unlink()
        final.rmdir()
    os.replace(tmp, final)
