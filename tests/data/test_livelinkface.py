"""Live Link Face takes (CSV + .mov audio track or .wav) into the manifest format."""

from __future__ import annotations

import numpy as np
import pytest

from unitalker import conventions
from unitalker.audio import load_audio
from unitalker.cli import main
from unitalker.conventions import ARKIT52_EMOTALK, LIVE_LINK_ORDER
from unitalker.data import load_manifest
from unitalker.data.dataset import ClipDataset
from unitalker.data.livelinkface import (
    CHANNELS,
    TakeError,
    convert_livelinkface,
    parse_timecode,
    read_take,
    write_take,
)

SR = 16000


def _channels(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    ch = 0.5 + 0.4 * np.sin(t * rng.uniform(0.02, 0.2, 61) + rng.uniform(0, 6, 61))
    ch[:, 52:] -= 0.5  # rotations around 0
    return ch.astype(np.float32)


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.3 * env * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(len(t))).astype(
        np.float32
    )


def test_parse_timecode():
    assert parse_timecode("14:03:21:12.500") == (14 * 3600 + 3 * 60 + 21, 12.5)
    assert parse_timecode("00:00:00:00") == (0, 0.0)
    for bad in ("14:03:21", "14:63:21:00.000", "x"):
        with pytest.raises(ValueError):
            parse_timecode(bad)


def test_hand_written_csv_in_the_apps_layout(tmp_path):
    """A CSV written literally (not by our writer): 60 fps, a dropped frame, 61 columns."""
    head = "Timecode,BlendShapeCount," + ",".join(CHANNELS)
    rows = []
    for tc, jaw in (("09:15:02:58.000", 0.1), ("09:15:02:59.000", 0.2), ("09:15:03:01.000", 0.4)):
        vals = ["0"] * 61
        vals[CHANNELS.index("JawOpen")] = str(jaw)
        vals[CHANNELS.index("HeadYaw")] = "-0.25"
        rows.append(f"{tc},61," + ",".join(vals))
    (tmp_path / "MySlate_7_iPhone.csv").write_text("\n".join([head, *rows]) + "\n")
    take = read_take(tmp_path, fps=60)
    assert take.fps == 60 and take.start == "09:15:02:58.000"
    jaw = take.channels[:, CHANNELS.index("JawOpen")]
    assert np.allclose(jaw, [0.1, 0.2, 0.3, 0.4])  # frame 03:00 was dropped: interpolated
    assert take.dropped == 1
    assert np.allclose(take.channels[:, CHANNELS.index("HeadYaw")], -0.25)
    assert take.audio is None


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_round_trip_with_dropped_frames_and_inferred_fps(tmp_path, fps):
    ch = _channels(int(2.5 * fps))
    write_take(tmp_path / "t", ch, fps, None, drop=(5, 6, 40))
    take = read_take(tmp_path / "t")  # fps inferred from the frame numbers
    assert take.fps == fps
    assert take.channels.shape == ch.shape and take.dropped == 3
    keep = np.setdiff1d(np.arange(len(ch)), [5, 6, 40])
    assert np.abs(take.channels[keep] - ch[keep]).max() < 1e-6
    assert np.abs(take.channels[5] - ch[5]).max() < 0.05  # interpolated from neighbours


def test_take_across_midnight(tmp_path):
    ch = _channels(90)
    write_take(tmp_path / "t", ch, 60.0, None, start=(23, 59, 59, 30))
    take = read_take(tmp_path / "t", fps=60)
    assert take.channels.shape == (90, 61)
    assert np.abs(take.channels - ch).max() < 1e-6


def test_convert_mov_audio_and_wav_takes_into_synth_arkit52(tmp_path):
    fps, secs = 60.0, 2.0
    takes = tmp_path / "takes"
    chans, audios = [], []
    for k, (video, wav) in enumerate(((".mov", False), (".mp4", False), (None, True))):
        ch, au = _channels(int(secs * fps), k), _speech(secs, k)
        write_take(
            takes / f"Slate_{k}", ch, fps, au, SR, name=f"Slate_{k}_iPhone", video=video, wav=wav
        )
        chans.append(ch)
        audios.append(au)
    report = convert_livelinkface(takes, tmp_path / "ds", subject="actor", split="train")
    assert report.counts["."] == {"train": 3}
    part = load_manifest(tmp_path / "ds").split("train").part("LLF")
    assert part.convention == "synth_arkit52" and part.id_list == ["actor"]
    by_name = {e.name.split("/")[-1]: e for e in part.entries}
    order = [
        CHANNELS.index(next(n for n in LIVE_LINK_ORDER if n.lower() == c.lower()))
        for c in ARKIT52_EMOTALK
    ]
    for k in range(3):
        e = by_name[f"Slate_{k}"]
        annot = np.load(e.annot_path)
        assert annot.shape == (int(secs * fps), 52) and e.fps == fps
        assert np.abs(annot - chans[k][:, order]).max() < 1e-6  # mapped by ARKit name
        got = load_audio(e.audio_path)
        assert abs(len(got) - len(audios[k])) < 0.05 * SR  # AAC adds a little padding
        n = min(len(got), len(audios[k]))
        lag = 0
        if k < 2:  # decoded from the video's AAC track: allow the codec's delay
            xc = [np.dot(got[d : d + n - 2000], audios[k][: n - 2000]) for d in range(0, 1600, 8)]
            lag = int(np.argmax(xc)) * 8
        r = np.corrcoef(got[lag : lag + n - 2000], audios[k][: n - 2000])[0, 1]
        assert r > 0.95, (k, r)
    # the loader brings the 60 fps annotation to the convention's 30 fps
    ds = ClipDataset(load_manifest(tmp_path / "ds"), "train", max_seconds=None, min_seconds=0.0)
    item = ds[0]
    assert item["motion"].shape == (int(secs * 30), 52)


def test_all_channels_make_a_new_convention(tmp_path):
    write_take(
        tmp_path / "takes" / "A", _channels(60), 30.0, _speech(2.0), SR, wav=True, video=None
    )
    convert_livelinkface(tmp_path / "takes", tmp_path / "ds", channels="all", split="train")
    yaml_path = tmp_path / "ds" / "convention.yaml"
    (conv,) = conventions.register_from_file(yaml_path, overwrite=True)
    assert conv.name == "livelinkface61" and conv.dim == 61 and conv.fps == 30.0
    assert conv.channel_names == CHANNELS
    part = load_manifest(tmp_path / "ds").split("train").part("LLF")
    assert part.convention == "livelinkface61"
    assert np.load(part.entries[0].annot_path).shape == (60, 61)


def test_cli_convert_and_errors(tmp_path, capsys):
    write_take(tmp_path / "takes" / "A", _channels(60), 30.0, _speech(2.0), SR)
    rc = main(
        [
            "data",
            "convert",
            "livelinkface",
            str(tmp_path / "takes"),
            str(tmp_path / "ds"),
            "--split",
            "test",
            "--subject",
            "me",
        ]
    )
    assert rc == 0
    assert "1 subjects; clips: test 1" in capsys.readouterr().out
    # a take without audio is skipped and named; no take with audio at all is an error
    write_take(tmp_path / "mute" / "B", _channels(60), 30.0, None)
    with pytest.raises(TakeError, match="no take with audio"):
        convert_livelinkface(tmp_path / "mute", tmp_path / "ds2")
    assert not (tmp_path / "ds2").exists()  # nothing half-written
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.csv").write_text("Timecode,BlendShapeCount,JawOpen\n00:00:00:00.000,61,zz\n")
    with pytest.raises(TakeError, match=r"x.csv:2: not a number"):
        read_take(bad)
    (bad / "x.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(TakeError, match="no Live Link Face take"):
        convert_livelinkface(bad, tmp_path / "ds3")
    (bad / "x.csv").write_text(
        "Timecode,BlendShapeCount,JawOpen\n00:00:01:00.000,61,0\n00:00:00:10.000,61,0\n"
    )
    with pytest.raises(TakeError, match="backwards"):
        read_take(bad, fps=30)


def test_generated_takes_hold_a2f_synth_speech(tmp_path):
    """The fixture generator: A2F-Synth ARKit clips as takes, speech in the .mov track."""
    from unitalker.synth.takes import generate_takes

    (folder,) = generate_takes(tmp_path, 1, seconds=1.5, fps=60.0)
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["Slate_0_iPhone.csv", "Slate_0_iPhone.mov"]
    header = (folder / "Slate_0_iPhone.csv").read_text().splitlines()[0].split(",")
    assert header == ["Timecode", "BlendShapeCount", *CHANNELS] and len(header) == 63
    take = read_take(folder)
    assert take.fps == 60.0 and take.audio.suffix == ".mov"
    jaw = take.channels[:, CHANNELS.index("JawOpen")]
    assert jaw.max() > 0.2  # the performer speaks
    audio = load_audio(take.audio)
    assert abs(len(audio) / SR - take.seconds) < 0.1


@pytest.mark.slow
def test_recipe_adds_a_head_for_a_custom_channel_set(tmp_path):
    """configs/finetune-arkit.yaml with --channels all: a new 61-channel head on the default model."""
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[2] / "configs" / "finetune-arkit.yaml"
    for k in range(2):
        write_take(
            tmp_path / "takes" / f"T{k}",
            _channels(90, k),
            30.0,
            _speech(3.0, k),
            SR,
            wav=True,
            video=None,
        )
    convert_livelinkface(
        tmp_path / "takes", tmp_path / "ds", channels="all", split="train", subject="me"
    )
    rc = main(
        [
            "train",
            "--config",
            str(recipe),
            "--set",
            f"data.manifest={tmp_path / 'ds'}",
            "--set",
            f"conventions_files=[{tmp_path / 'ds' / 'convention.yaml'}]",
            "--set",
            "schedule.steps=2",
            "--set",
            "data.batch_size=2",
            "--set",
            f"out_dir={tmp_path / 'run'}",
        ]
    )
    assert rc == 0
    from unitalker.models.checkpoint import load_model

    model = load_model(tmp_path / "run" / "model", "cpu")
    assert "livelinkface61" in model.config.head_names
    assert "synth_arkit52" in model.config.head_names  # the default model's heads stay
    out = model.animate(_speech(1.0), sr=SR, heads=["livelinkface61"], identity="LLF:me")
    assert out["livelinkface61"].data.shape[1] == 61
