"""Outputs are all or nothing, never clobber user files, and fail with clear messages."""

from __future__ import annotations

import pytest
from tests.meshdata import random_animation

from unitalker import conventions
from unitalker.export import ExportError, OutputExistsError, write_outputs
from unitalker.export import glb as glb_module
from unitalker.export.usd import usd_available


def _listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_all_writes_every_fitting_format(sphere_anim, rig_anim, norig_conv, tmp_path) -> None:
    results = {a.convention: a for a in (sphere_anim, rig_anim, random_animation(norig_conv))}
    paths = write_outputs(results, tmp_path / "out", "clip", "all")  # no audio: no mp4
    names = {p.name for p in paths}
    s, r, n = sphere_anim.convention, rig_anim.convention, norig_conv.name
    assert names == {
        "clip.npz",
        *(f"clip_{k}.json" for k in results),
        f"clip_{r}.csv",
        f"clip_{n}.csv",
        f"clip_{s}.glb",
        f"clip_{r}.glb",
        f"clip_{s}_obj",
        f"clip_{r}_obj",
        f"clip_{s}_ply",
        f"clip_{r}_ply",
        *((f"clip_{s}.usd", f"clip_{r}.usd") if usd_available() else ()),
    }
    # Nothing else is left behind (no staging folder, no temp files).
    assert {p.split("/")[0] for p in _listing(tmp_path / "out")} == names


def test_existing_outputs_are_not_overwritten(sphere_anim, tmp_path) -> None:
    results = {sphere_anim.convention: sphere_anim}
    write_outputs(results, tmp_path, "clip", ["npz", "obj"])
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    with pytest.raises(OutputExistsError, match="clip.npz") as e:
        write_outputs(results, tmp_path, "clip", ["json", "npz", "obj"])
    assert "overwrite" in str(e.value)
    # Checked before anything was written: not even the json appeared.
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
    paths = write_outputs(results, tmp_path, "clip", ["json", "npz", "obj"], overwrite=True)
    assert all(p.exists() for p in paths)
    assert len(list(paths[2].iterdir())) == sphere_anim.n_frames


def test_overwrite_refuses_foreign_files_in_sequence_folder(sphere_anim, tmp_path) -> None:
    folder = tmp_path / f"clip_{sphere_anim.convention}_obj"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="refusing"):
        write_outputs(
            {sphere_anim.convention: sphere_anim}, tmp_path, "clip", "obj", overwrite=True
        )
    assert (folder / "notes.txt").read_text() == "mine"


def test_failure_leaves_no_partial_outputs(sphere_anim, rig_anim, tmp_path, monkeypatch) -> None:
    def boom(animation, **options):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(glb_module, "build_glb", boom)
    results = {sphere_anim.convention: sphere_anim, rig_anim.convention: rig_anim}
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_outputs(results, tmp_path, "clip", ["npz", "obj", "json", "glb", "ply"])
    assert _listing(tmp_path) == []


def test_file_where_folder_expected(sphere_anim, tmp_path) -> None:
    results = {sphere_anim.convention: sphere_anim}
    blocker = tmp_path / "out"
    blocker.write_text("a file")
    with pytest.raises(ExportError, match="not a folder"):
        write_outputs(results, blocker, "clip", "npz")
    with pytest.raises(ExportError, match="is a file"):
        write_outputs(results, blocker / "sub", "clip", "npz")
    seq = tmp_path / f"clip_{sphere_anim.convention}_ply"
    seq.write_text("a file")
    with pytest.raises(ExportError, match="folder of frames"):
        write_outputs(results, tmp_path, "clip", "ply", overwrite=True)
    assert seq.read_text() == "a file"


def test_folder_where_file_expected(sphere_anim, tmp_path) -> None:
    (tmp_path / "clip.npz").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        write_outputs(
            {sphere_anim.convention: sphere_anim}, tmp_path, "clip", "npz", overwrite=True
        )


def test_format_that_fits_no_head(tmp_path) -> None:
    params = random_animation(conventions.get("flame_params_from_dadhead"), 3)
    with pytest.raises(ExportError, match="fits none of the heads"):
        write_outputs({params.convention: params}, tmp_path, "p", "csv")
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("stem", ["", "../evil", "a/b", "x y"])
def test_bad_stem(stem, sphere_anim, tmp_path) -> None:
    with pytest.raises(ExportError, match="file name"):
        write_outputs({sphere_anim.convention: sphere_anim}, tmp_path, stem, "npz")


def test_nothing_to_export(tmp_path) -> None:
    with pytest.raises(ExportError, match="no heads"):
        write_outputs({}, tmp_path, "x", "npz")


def _tree_bytes(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("fmt", ["npz", "json", "csv", "glb", "obj", "ply"])
def test_writer_write_is_write_outputs(fmt, sphere_anim, rig_anim, tmp_path) -> None:
    """``get_writer(f).write`` writes the same files, byte for byte, as ``write_outputs``
    with ``[f]``, refuses to overwrite alike, and leaves no staging folder behind."""
    from unitalker.export import get_writer

    results = {a.convention: a for a in (sphere_anim, rig_anim)}
    via_writer = get_writer(fmt).write(results, tmp_path / "a", "w")
    via_outputs = write_outputs(results, tmp_path / "b", "w", [fmt])
    assert [p.name for p in via_writer] == [p.name for p in via_outputs] != []
    a, b = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert a == b and a
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(p.name for p in via_writer)
    with pytest.raises(OutputExistsError):
        get_writer(fmt).write(results, tmp_path / "a", "w")
    assert _tree_bytes(tmp_path / "a") == a


def test_writer_write_keeps_its_options(sphere_anim, tmp_path) -> None:
    """A writer built with options writes with them (glb lossless vs bounded error)."""
    from unitalker.export import get_writer

    results = {sphere_anim.convention: sphere_anim}
    (lossless,) = get_writer("glb", lossless=True).write(results, tmp_path / "l", "w")
    (default,) = write_outputs(results, tmp_path / "d", "w", ["glb"])
    (opt,) = write_outputs(
        results, tmp_path / "o", "w", ["glb"], options={"glb": {"lossless": True}}
    )
    assert lossless.read_bytes() == opt.read_bytes() != default.read_bytes()
