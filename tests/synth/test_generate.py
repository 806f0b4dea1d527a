"""The tiny preset: layouts, contents, determinism, CLI."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from unitalker import conventions


def test_layouts(tiny_dir):
    d = tiny_dir
    # BIWI (CodeTalker)
    b = d / "S0_synbiwi"
    tpl = pickle.loads((b / "templates.pkl").read_bytes())
    assert set(tpl) == {"F2", "M3"}
    v = conventions.get("synth_head_vertices").n_vertices
    assert all(t.shape == (v, 3) for t in tpl.values())
    arr = np.load(b / "vertices_npy" / "F2_e01.npy")
    assert arr.ndim == 2 and arr.shape[1] == v * 3
    assert (b / "wav" / "F2_e37.wav").exists()
    import soundfile as sf

    info = sf.info(str(b / "wav" / "F2_e01.wav"))
    assert info.samplerate == 44100
    assert abs(arr.shape[0] - round(info.duration * 25)) <= 1
    # VOCASET (FaceFormer), 60 fps
    vo = d / "S1_synvoca"
    names = sorted(p.stem for p in (vo / "vertices_npy").glob("*.npy"))
    assert all(n.startswith("FaceTalk_") and "_TA_sentence" in n for n in names)
    x = np.load(vo / "vertices_npy" / f"{names[0]}.npy")
    dur = sf.info(str(vo / "wav" / f"{names[0]}.wav")).duration
    assert abs(x.shape[0] - round(dur * 60)) <= 1
    # 3D-ETF
    bs = sorted((d / "S2_syn3detf" / "HDTF" / "blendshape").glob("*.npy"))
    assert bs and np.load(bs[0]).shape[1] == 52
    assert (d / "S2_syn3detf" / "HDTF" / "audio" / f"{bs[0].stem}.wav").exists()
    # release layout
    for folder, conv in (
        ("S3_synflame", "synth_flame_params"),
        ("S4_synmandarin", "synth_arkit52"),
        ("S5_synsong", "synth_arkit52"),
    ):
        root = d / folder
        ids = np.load(root / "id_template.npy")
        for split in ("train", "val", "test"):
            doc = json.loads((root / f"{split}.json").read_text())
            assert doc["info"]["id_list"] == list(range(len(ids)))
            assert doc["data"]
            for item in doc["data"]:
                assert list(item) == [
                    "annot_path",
                    "audio_path",
                    "id",
                    "annot_type",
                    "dataset",
                    "fps",
                ]
                assert item["annot_type"] == conv and 0 <= item["id"] < len(ids)
                a = np.load(root / item["annot_path"])
                assert a.shape[1] == conventions.get(conv).dim
                assert (root / item["audio_path"]).exists()
    summary = json.loads((d / "summary.json").read_text())
    assert [t["key"] for t in summary["datasets"]] == ["S0", "S1", "S2", "S3", "S4", "S5"]
    assert {t["fps"] for t in summary["datasets"]} >= {25.0, 30.0, 60.0}
    assert "| S0 |" in (d / "README.md").read_text()


def test_bilabial_closure_in_generated_data(tiny_dir):
    """Mouth gap on the rendered mesh is ~0 in the middle of every long-enough m/b/p."""
    from unitalker.synth import conventions as sc
    from unitalker.synth.mesh import mouth_gap

    pairs = sc.asset("head")["slit_pairs"]
    pair = tuple(int(i) for i in pairs[len(pairs) // 2])
    tl = json.loads((tiny_dir / "_timelines" / "S0" / "F2_e01.json").read_text())
    v = np.load(tiny_dir / "S0_synbiwi" / "vertices_npy" / "F2_e01.npy").reshape(
        tl["n_frames"], -1, 3
    )
    gap = mouth_gap(v, pair)
    checked = 0
    for ph, s, e in tl["phonemes"]:
        if ph in ("m", "b", "p") and e - s > 0.06:
            checked += 1
            assert abs(gap[round(0.5 * (s + e) * 25)]) < 0.003, (ph, s, e)
    assert gap.max() > 0.01


def test_deterministic(tiny_dir, tmp_path):
    from unitalker.synth.generate import generate

    generate(tmp_path / "again", "tiny", seed=0, workers=2)
    a = sorted(p.relative_to(tiny_dir) for p in tiny_dir.rglob("*") if p.is_file())
    b = sorted(
        p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file()
    )
    assert a == b
    for rel in a:
        assert (tiny_dir / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel


def test_cli_refuses_non_empty(tmp_path, capsys):
    from unitalker.cli import main

    (tmp_path / "x.txt").write_text("keep me")
    assert main(["synth", "generate", "--preset", "tiny", "-o", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "x.txt").read_text() == "keep me"
    with pytest.raises(SystemExit):
        main(["synth", "generate", "--preset", "huge", "-o", str(tmp_path)])


def test_3detf_split_of_summary_and_manifest_agree(tiny_dir, tmp_path):
    """The tiny S2 states its split (train 0 / val 3 / test 3 in summary.json) and the
    3D-ETF converter honours it instead of cutting by ratio."""
    from unitalker.data.convert import convert_3detf

    summary = json.loads((tiny_dir / "summary.json").read_text())
    (s2,) = [t for t in summary["datasets"] if t["key"] == "S2"]
    report = convert_3detf(
        tiny_dir / "S2_syn3detf",
        tmp_path / "S2",
        dataset="S2",
        convention="synth_arkit52",
        mode="symlink",
    )
    assert not report.skipped
    root = tmp_path / "S2" / "S2"
    got = {
        s: len(json.loads((root / f"{s}.json").read_text())["data"])
        if (root / f"{s}.json").exists()
        else 0
        for s in ("train", "val", "test")
    }
    assert got == s2["splits"]
    assert s2["splits"] == {"train": 0, "val": 3, "test": 3}


@pytest.mark.parametrize("action", ["generate", "voices"])
def test_cli_without_the_synth_extra_names_it(action, tmp_path, capsys, monkeypatch):
    import sys

    from unitalker.cli import main
    from unitalker.synth import tts

    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import fails: not installed
    out = tmp_path / "out"
    assert main(["synth", action, "--preset", "tiny", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'unitalker[synth]'" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(tts.EspeakUnavailable, match=r"unitalker\[synth\]"):
        tts.synthesize("hello")


def test_voices_cli_takes_xlh_and_tables_every_engine(tmp_path, capsys, monkeypatch):
    """`synth voices --preset xlh` reaches the generator with its options, and the printed
    table has a column per engine (Piper's, Pico's, the formant engine's and the recorded
    speech's included; a summary written before those existed shows 0 there)."""
    from unitalker.cli import main
    from unitalker.synth import voices

    seen = {}
    engines = {
        "espeak": 41,
        "kokoro": 45,
        "piper": 34,
        "pico": 48,
        "formant": 0,
        "recorded": 60,
        "sam": 0,
    }
    old = {"espeak": 4, "kokoro": 2, "sam": 6}

    def fake(progress=None, pool_progress=None, **kwargs):
        seen.update(kwargs)
        for done in range(3):  # the recorded-speech pool, then the clips
            pool_progress(done, 2)
        progress(1, 1)
        row = {"key": "V0", "convention": "synth_head_vertices", "split": "train"}
        row |= {"clips": 216, "seconds": 1146.2, "engines": engines}
        test = {"key": "V0", "convention": "synth_head_vertices", "split": "test"}
        test |= {"clips": 6, "seconds": 30.0, "engines": old}
        return {"table": [row, test], "total_hours": 0.25}

    monkeypatch.setattr(voices, "generate_voices", fake)
    out = tmp_path / "vox"
    assert main(["synth", "voices", "--preset", "xlh", "-o", str(out), "--overwrite"]) == 0
    assert seen["preset"] == "xlh" and seen["overwrite"] and seen["out_dir"] == str(out)
    captured = capsys.readouterr()
    assert "recorded-speech pool" in captured.err and "2/2" in captured.err
    lines = captured.out.splitlines()
    assert "| espeak | kokoro | piper | pico | formant | recorded | sam |" in lines[0]
    assert lines[2].endswith("| 1146.2 | 41 | 45 | 34 | 48 | 0 | 60 | 0 |")
    assert lines[3].endswith("| 30.0 | 4 | 2 | 0 | 0 | 0 | 0 | 6 |")
