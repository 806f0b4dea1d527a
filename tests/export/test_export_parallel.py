"""``write_outputs(parallel=True)``: a forked child writes what the main process does not.

The mp4 is what stays in the main process; here the JSON writer is marked the same way
(no OpenGL needed), so the other formats go to the child.
"""

from __future__ import annotations

import os
import sys

import pytest

from unitalker.export import ExportError, write_outputs
from unitalker.export.json_frames import JsonWriter
from unitalker.export.livelink_csv import LiveLinkCsvWriter

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux only")

FORMATS = ["npz", "json", "csv", "obj", "glb"]


def _files(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture
def json_in_main(monkeypatch):
    monkeypatch.setattr(JsonWriter, "main_process", True)


def test_parallel_writes_the_same_files(json_in_main, rig_anim, sphere_anim, tmp_path) -> None:
    results = {a.convention: a for a in (rig_anim, sphere_anim)}
    stages = []
    serial = write_outputs(results, tmp_path / "a", "clip", FORMATS)
    parallel = write_outputs(
        results,
        tmp_path / "b",
        "clip",
        FORMATS,
        parallel=True,
        on_stage=lambda name, wall, cpu: stages.append(name),
    )
    assert [p.name for p in serial] == [p.name for p in parallel]
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    # Every output was timed once, from whichever process wrote it.
    assert sorted(stages) == sorted(
        ["npz"]
        + [
            f"{f} {k}"
            for f in ("json", "csv", "obj", "glb")
            for k in results
            if (f != "csv" or k == rig_anim.convention)
        ]
    )


def test_child_error_reaches_the_caller(json_in_main, rig_anim, tmp_path, monkeypatch) -> None:
    def boom(self, anim, path, **kw):
        raise ExportError(f"cannot write {path.name}: disk on fire")

    monkeypatch.setattr(LiveLinkCsvWriter, "write_head", boom)
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="disk on fire"):
        write_outputs({rig_anim.convention: rig_anim}, out, "clip", FORMATS, parallel=True)
    assert list(out.iterdir()) == []  # all or nothing: no output, no staging folder


def test_child_that_dies_is_an_export_error(json_in_main, rig_anim, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(LiveLinkCsvWriter, "write_head", lambda *a, **k: os._exit(3))
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="ended without a result.*exit code 3"):
        write_outputs({rig_anim.convention: rig_anim}, out, "clip", FORMATS, parallel=True)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("parallel", [False, True])
def test_rigged_vertices_evaluated_once_for_all_writers(
    json_in_main, tmp_path, monkeypatch, parallel
) -> None:
    """A parameter head read as vertices by several writers goes through its rig once
    (before the fork, so the child inherits it), and the files are those each writer
    writes alone; the caller's result keeps no cached vertices."""
    import numpy as np

    from unitalker import geometry
    from unitalker.animation import Animation

    rng = np.random.default_rng(0)
    conv = "synth_flame_params"
    from unitalker import conventions

    anim = Animation(conv, 25.0, rng.normal(0, 0.3, (12, conventions.get(conv).dim)))
    alone = tmp_path / "alone"
    for fmt in ("obj", "ply", "usd"):
        write_outputs({conv: anim}, alone, "clip", [fmt])
    calls = []
    real = geometry.vertices

    def counted(c, data):
        calls.append(len(data))
        return real(c, data)

    monkeypatch.setattr(geometry, "vertices", counted)
    write_outputs(
        {conv: anim}, tmp_path / "shared", "clip", ["obj", "ply", "usd"], parallel=parallel
    )
    assert calls.count(12) == 1  # the whole clip once (a 1-frame probe sizes the rig)
    a, b = _files(alone), _files(tmp_path / "shared")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert anim._vertices is None
