"""Recorded human speech for training (unitalker.synth.recorded): each Debian source is read
in its package's layout, words are checked and aligned, and a pool feeds the voices
generator's ``recorded`` clips. The packages' speech is stood in for by eSpeak NG clips
written in their layouts."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from unitalker.synth import recorded
from unitalker.synth.recorded import RECORDED_SOURCES, build_pool, spell_number


def _ogg(words: str, voice: str = "en-us+m3") -> bytes:
    """eSpeak NG speaking ``words``, as the packages' Ogg Vorbis files."""
    import io

    import soundfile as sf

    from unitalker.synth.tts import synthesize

    res = synthesize(words, voice)
    buf = io.BytesIO()
    sf.write(buf, np.asarray(res.audio, np.float32), res.sr, format="OGG", subtype="VORBIS")
    return buf.getvalue()


@pytest.fixture(scope="module")
def package_roots(tmp_path_factory) -> dict[str, Path]:
    """The four sources' folders as their packages lay them out, with a few clips each."""
    base = tmp_path_factory.mktemp("recorded_packages")
    kt = base / "ktuberling" / "sounds"
    (kt / "en").mkdir(parents=True)
    (kt / "en.soundtheme").write_text(
        '<language code="en">\n'
        '    <sound name="ball" file="en/ball.ogg" />\n'
        '    <sound name="pizzeria_olive" file="en/pizzeria_olive.ogg" />\n'
        '    <sound name="egypt_palmtree" file="en/egypt_palmtree.ogg" />\n'
        '    <sound name="hat" file="en/hat.ogg" />\n'  # listed, file missing: skipped
        "</language>\n"
    )
    for name, words in (
        ("ball", "ball"),
        ("pizzeria_olive", "olive"),
        ("egypt_palmtree", "palm tree"),
    ):
        (kt / "en" / f"{name}.ogg").write_bytes(_ogg(words))
    kl = base / "klettres"
    for lang, word in (("en", "me"), ("en_GB", "pet")):
        (kl / lang / "syllab").mkdir(parents=True)
        (kl / lang / "syllab" / f"{word}.ogg").write_bytes(_ogg(word, "en-gb-x-rp+f3"))
    (kl / "en" / "syllab" / "zap.ogg").write_bytes(b"not an Ogg file")  # a damaged file
    wz = base / "warzone2100"
    wz.mkdir()
    with zipfile.ZipFile(wz / "base.wz", "w") as z:
        z.writestr(
            "audio/audio.cfg",
            'audio_module\n{\n\taudio\t"beep1.ogg"\t\toneshot  30 1800\t/*Close Window*/\n'
            '\taudio\t"pcv335.ogg" \toneshot\t100 1800  /*Construction Started*/\n'
            '\taudio\t"pcv440.ogg" \toneshot\t100 1800  /*10 Minutes Remaining*/\n'
            '\taudio\t"pcv397.ogg" \toneshot\t100 1800  /*LZ 1*/\n}\n',
        )
        z.writestr("audio/sfx/beep1.ogg", _ogg("beep"))
        z.writestr("audio/memressp/struct/pcv335.ogg", _ogg("construction started"))
        z.writestr("audio/memressp/missmesg/pcv440.ogg", _ogg("ten minutes remaining"))
        z.writestr("audio/memressp/missmesg/pcv397.ogg", _ogg("L Z one"))
    hw = base / "hedgewars"
    (hw / "Default").mkdir(parents=True)
    (hw / "Pirate").mkdir()
    (hw / "Default" / "Takecover.ogg").write_bytes(_ogg("take cover"))
    (hw / "Default" / "Laugh.ogg").write_bytes(_ogg("ha ha ha"))  # not speech: not listed
    # a character that says other words than its file name: the check leaves it out
    (hw / "Pirate" / "Hello.ogg").write_bytes(_ogg("research facility required"))
    (hw / "Pirate" / "Leavemealone.ogg").write_bytes(_ogg("leave me alone", "en-gb-x-rp+f3"))
    return {
        "ktuberling": kt,
        "klettres": kl,
        "warzone2100": wz,
        "hedgewars": hw,
    }


@pytest.fixture(scope="module")
def pool_dir(package_roots, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("recorded_pool")
    calls = []
    build_pool(out, roots=package_roots, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 12) for i in range(1, 13)]  # one call per listed recording
    return out


def test_spell_number():
    assert [spell_number(n) for n in (0, 7, 13, 20, 42, 99)] == [
        "zero",
        "seven",
        "thirteen",
        "twenty",
        "forty two",
        "ninety nine",
    ]
    with pytest.raises(ValueError, match="0-99"):
        spell_number(100)


def test_each_source_lists_its_clips_with_their_words(package_roots):
    listed = {
        name: [(c.speaker, c.name, c.text) for c in s.clips(package_roots[name])]
        for name, s in RECORDED_SOURCES.items()
    }
    assert listed["ktuberling"] == [
        ("ktuberling", "ball", "ball"),
        ("ktuberling", "pizzeria_olive", "olive"),
        ("ktuberling", "egypt_palmtree", "palm tree"),  # CMUdict's spelling
    ]
    assert listed["klettres"] == [
        ("klettres-en", "me", "me"),
        ("klettres-en", "zap", "zap"),
        ("klettres-en_GB", "pet", "pet"),
    ]
    # the announcer's messages only (not the beeps), numbers and acronyms spelt out
    assert listed["warzone2100"] == [
        ("warzone2100", "pcv335.ogg", "Construction Started"),
        ("warzone2100", "pcv440.ogg", "ten Minutes Remaining"),
        ("warzone2100", "pcv397.ogg", "L Z one"),
    ]
    assert listed["hedgewars"] == [
        ("hedgewars-Default", "Default/Takecover", "take cover"),
        ("hedgewars-Pirate", "Pirate/Hello", "hello"),
        ("hedgewars-Pirate", "Pirate/Leavemealone", "leave me alone"),
    ]
    clip = next(RECORDED_SOURCES["warzone2100"].clips(package_roots["warzone2100"]))
    assert clip.read()[:4] == b"OggS"  # read from inside base.wz


def test_missing_packages_are_named(tmp_path):
    roots = {name: tmp_path / name for name in RECORDED_SOURCES}
    assert recorded.missing_sources(roots) == [s.package for s in RECORDED_SOURCES.values()]
    with pytest.raises(recorded.RecordedUnavailable, match="apt-get install ktuberling-data"):
        build_pool(tmp_path / "pool", roots=roots)
    assert not (tmp_path / "pool").exists()


def test_speech_coverage_tells_aligned_words_from_sound_left_outside():
    """Aligned to its own words a clip's loud frames lie inside them; aligned to a short
    other phrase most of its sound is left in silence."""
    import io

    from unitalker.audio import load_audio
    from unitalker.synth.align import align

    audio = load_audio(io.BytesIO(_ogg("research facility required")), 16000, name="x.ogg")
    own = recorded.speech_coverage(audio, 16000, align(audio, 16000, "research facility required"))
    other = recorded.speech_coverage(audio, 16000, align(audio, 16000, "hello"))
    assert own >= recorded.MIN_COVERAGE > 0.5 > other
    assert recorded.speech_coverage(audio, 16000, [("_", 0.0, len(audio) / 16000)]) == 0.0
    assert recorded.speech_coverage(audio, 16000, [("a", 0.0, len(audio) / 16000)]) == 1.0


def test_the_pool_keeps_aligned_clips_and_says_what_it_left_out(pool_dir):
    import soundfile as sf

    doc = json.loads((pool_dir / "pool.json").read_text())
    kept = {(c["source"], c["name"]) for c in doc["clips"]}
    assert {
        ("hedgewars", "Default/Takecover"),
        ("hedgewars", "Pirate/Leavemealone"),
        ("ktuberling", "egypt_palmtree"),
        ("warzone2100", "pcv335.ogg"),
    } <= kept
    # its file name says "hello", its audio other words: they fall outside the alignment
    assert ("hedgewars", "Pirate/Hello") not in kept
    skipped = {s["clip"]: s["reason"] for s in doc["skipped"]}
    assert "cover 1" in skipped["hedgewars:Pirate/Hello"]  # 10-19 % of the loud frames
    assert "zap" in skipped.pop("klettres:zap")  # does not decode: named, left out
    assert all("of the loud frames" in r for r in skipped.values())
    assert len(kept) + len(skipped) == 11  # every other listed clip, kept or left out
    assert doc["sources"]["hedgewars"] == {"package": "hedgewars-data", "licence": "GFDL-1.3"}
    for c in doc["clips"]:
        audio, sr = sf.read(pool_dir / c["wav"])
        assert sr == 16000 and len(audio) / sr == pytest.approx(c["seconds"], abs=1e-4)
        tl = c["phonemes"]
        assert tl[0][1] == 0.0 and tl[-1][2] == pytest.approx(c["seconds"], abs=1e-3)
        assert all(a[2] == pytest.approx(b[1]) for a, b in zip(tl, tl[1:], strict=False))
        assert any(p != "_" for p, _, _ in tl) and c["coverage"] >= recorded.MIN_COVERAGE
    palm = next(c for c in doc["clips"] if c["name"] == "egypt_palmtree")
    assert [p for p, _, _ in palm["phonemes"] if p in "pbm"] == ["p", "m"]


def test_speakers_are_drawn_by_the_square_root_of_their_seconds(pool_dir):
    pool = recorded.RecordedPool.load(pool_dir)
    assert "hedgewars-Default" in pool.speakers and "warzone2100" in pool.speakers
    sec = {s: sum(c["seconds"] for c in pool.clips if c["speaker"] == s) for s in pool.speakers}
    w = pool.speaker_weights()
    assert w.sum() == pytest.approx(1.0)
    for i, s in enumerate(pool.speakers):
        for j, t in enumerate(pool.speakers):
            assert w[i] / w[j] == pytest.approx(np.sqrt(sec[s] / sec[t]))
    speaker, clips = pool.draw(np.random.default_rng(0))
    assert 1 <= len(clips) <= 4 and {c["speaker"] for c in clips} == {speaker}
    assert len({c["wav"] for c in clips}) == len(clips)  # no clip twice


def test_xlh_voices_plan_is_xl_plus_recorded_training_clips():
    from unitalker.synth.voices import VOICE_PRESETS, plan_voices

    xl, xlh = plan_voices("xl", 0), plan_voices("xlh", 0)
    assert xlh[: len(xl)] == xl
    extra = xlh[len(xl) :]
    n_subj, *_, n_recorded = VOICE_PRESETS["xlh"]
    assert VOICE_PRESETS["xlh"][:5] == VOICE_PRESETS["xl"][:5]
    assert len(extra) == 4 * n_subj * n_recorded > 0
    assert {j.split for j in extra} == {"train"} and {j.engine for j in extra} == {"recorded"}
    assert len({j.clip_name for j in xlh}) == len(xlh) and len({j.seed for j in xlh}) == len(xlh)
    assert len({j.sentence_seed for j in extra}) == len(extra)  # each draws its own speaker


def test_a_recorded_training_clip_is_written_labelled_and_relabelled(
    pool_dir, tmp_path, monkeypatch
):
    """A recorded clip joins two to four recordings of one speaker with pauses, is
    labelled like any engine's clip, is kept when done, and relabel_voices replays it to
    the same labels."""
    import shutil

    from unitalker.audio import load_audio
    from unitalker.evaluation.voices import timeline_lag_ms
    from unitalker.synth import voices

    shutil.copytree(pool_dir, tmp_path / voices.RECORDED_POOL)
    jobs = [
        dataclasses.replace(j, out_dir=str(tmp_path))
        for j in voices.plan_voices("xlh", 0)
        if j.engine == "recorded"
    ][:2]
    rows = [voices._run_voice_job(j) for j in jobs]
    pool = recorded.RecordedPool.load(tmp_path / voices.RECORDED_POOL)
    for job, row in zip(jobs, rows, strict=True):
        ds = voices.voice_dataset(job.key)
        audio = load_audio(tmp_path / ds.folder / row["audio"], voices.SR_OUT)
        labels = np.load(tmp_path / ds.folder / row["annot"])
        assert row["engine"] == "recorded" and row["voice"] in pool.speakers
        assert len(labels) == row["frames"] == round(len(audio) / voices.SR_OUT * ds.fps)
        rec = json.loads((tmp_path / "_timelines" / ds.key / f"{job.clip_name}.json").read_text())
        own = {c["text"] for c in pool.clips if c["speaker"] == row["voice"]}
        assert 1 <= len(rec["pieces"]) <= 4 and set(rec["pieces"]) <= own
        assert rec["text"] == " ".join(rec["pieces"])
        tl = rec["phonemes"]
        assert tl[0][0] == "_" and tl[-1][0] == "_"  # the lead and tail pauses
        assert tl[-1][2] == pytest.approx(len(audio) / voices.SR_OUT, abs=1e-3)
        # the joined timeline sits on the joined sound as the pieces' own timelines sit on
        # theirs (PocketSphinx's placement of a lone word varies with the fixture's Vorbis
        # encoding, which is not the same bit for bit from one process to the next)
        own_lags = [
            timeline_lag_ms(
                load_audio(tmp_path / voices.RECORDED_POOL / c["wav"], voices.SR_OUT),
                voices.SR_OUT,
                c["phonemes"],
            )
            for c in pool.clips
            if c["speaker"] == row["voice"] and c["text"] in rec["pieces"]
        ]
        lag = timeline_lag_ms(audio, voices.SR_OUT, tl)
        assert min(abs(lag - o) for o in own_lags) <= 30, (lag, own_lags)
        assert voices._run_voice_job(job) == row  # done: kept
    before = [
        np.load(tmp_path / voices.voice_dataset(j.key).folder / r["annot"])
        for j, r in zip(jobs, rows, strict=True)
    ]
    for j, r in zip(jobs, rows, strict=True):  # spoil the labels, then relabel
        np.save(tmp_path / voices.voice_dataset(j.key).folder / r["annot"], np.zeros(1, np.float32))
    monkeypatch.setattr(voices, "plan_voices", lambda preset, seed, out_dir=".": jobs)
    assert voices.relabel_voices(tmp_path, "xlh") == len(jobs)
    for j, r, b in zip(jobs, rows, before, strict=True):
        np.testing.assert_allclose(
            np.load(tmp_path / voices.voice_dataset(j.key).folder / r["annot"]),
            b,
            rtol=1e-5,
            atol=1e-6,
        )
