"""A split file of the wrong shape is a ManifestError naming the file and the field."""

from __future__ import annotations

import json

import pytest

from unitalker.data.manifest import ManifestError, read_split_file

OK = {
    "annot_path": "a.npy",
    "audio_path": "b.wav",
    "id": 0,
    "annot_type": "3DETF_blendshape_weight",
    "fps": 30,
}


@pytest.mark.parametrize(
    "doc, field",
    [
        ([], "got a JSON list"),
        ({"info": 5, "data": []}, "info:"),
        ({"data": {"a": 1}}, "data:"),
        ({"info": {"id_list": [1, [2]]}, "data": [OK]}, "info.id_list[1]"),
        ({"data": [{**OK, "fps": "25"}]}, "entry 0: fps:"),
        ({"data": [{**OK, "id": 10**40}]}, "entry 0: id:"),
        ({"data": [{**OK, "id": True}]}, "entry 0: id:"),
        ({"data": [{**OK, "fps": 10**400}]}, "unsupported fps"),
        ({"data": [{**OK, "audio_path": 5}]}, "entry 0: audio_path:"),
        ({"data": [{**OK, "annot_path": "x\x00y"}]}, "NUL"),
        ({"data": [{**OK, "dataset": ["D6"]}]}, "entry 0: dataset:"),
    ],
)
def test_wrong_shapes_name_file_and_field(tmp_path, doc, field):
    f = tmp_path / "train.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(ManifestError) as e:
        read_split_file(f)
    assert str(f) in str(e.value) and field in str(e.value), str(e.value)


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b"[" * 100_000, b'{"data": ' + b"[" * 50_000])
def test_unreadable_json(tmp_path, raw):
    f = tmp_path / "train.json"
    f.write_bytes(raw)
    with pytest.raises(ManifestError, match="not a valid JSON split file"):
        read_split_file(f)


def test_data_check_collects_instead_of_raising(tmp_path, capsys):
    from unitalker.cli import main

    d = tmp_path / "D6"
    d.mkdir()
    (d / "train.json").write_text(json.dumps({"info": 5, "data": "x"}))
    (d / "val.json").write_text(json.dumps({"data": [{**OK, "audio_path": "a" * 300 + "/b.wav"}]}))
    assert main(["data", "check", str(d)]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert "train.json: info:" in out.out and "problem(s)" in out.out
