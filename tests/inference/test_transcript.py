"""Lip closures from the words (``unitalker animate --text``,
:mod:`unitalker.inference.transcript`)."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
import soundfile as sf

from unitalker import conventions
from unitalker.animation import Animation
from unitalker.inference import transcript as T

SYNTH = [c for c in conventions.names() if T.supported(c)]
# "a m a" with pauses: one bilabial, 0.5-0.6 s
PHONES = [("_", 0.0, 0.3), ("a", 0.3, 0.5), ("m", 0.5, 0.6), ("a", 0.6, 0.8), ("_", 0.8, 1.2)]


def _open_mouth(conv: str) -> tuple[Animation, np.ndarray]:
    """An output with the jaw open 0.6 and the left eye half shut in every frame, and the
    convention's neutral (mean identity)."""
    from unitalker.synth.conventions import ARKIT52_EMOTALK

    fps = conventions.get(conv).fps
    n = int(round(1.2 * fps))
    w = np.zeros((n, 52), np.float32)
    w[:, ARKIT52_EMOTALK.index("jawOpen")] = 0.6
    w[:, ARKIT52_EMOTALK.index("eyeBlinkLeft")] = 0.5
    data = T._render_arkit(conv, w).astype(np.float32)
    neutral = T._render_arkit(conv, np.zeros((1, 52), np.float32))[0]
    return Animation(conv, fps, data), neutral


def test_every_synth_convention_is_supported_and_no_other():
    assert set(SYNTH) == {
        "synth_arkit52",
        "synth_head_vertices",
        "synth_head2_vertices",
        "synth_flame_params",
    }


@pytest.mark.parametrize("conv", SYNTH)
def test_lips_close_on_the_bilabial_and_nothing_else_moves(conv):
    """Where the articulation model shuts the lips, the output's lips shut, with the jaw
    nearly shut too (never a closure against an open jaw); frames where the labels do not
    close the lips are unchanged to the bit; the eyes never move."""
    from unitalker.evaluation.closures import CLOSURE_TOL
    from unitalker.evaluation.voices import mouth_opening
    from unitalker.synth.articulation import timeline_to_articulation

    anim, neutral = _open_mouth(conv)
    before = anim.data.copy()
    out = T.close_bilabials({conv: anim}, PHONES, {conv: neutral})[conv]
    np.testing.assert_array_equal(anim.data, before)  # the input is not modified
    t = np.arange(anim.n_frames) / anim.fps
    inside = (t >= 0.5) & (t <= 0.6)
    curves = timeline_to_articulation(PHONES, anim.fps, n_frames=anim.n_frames)
    shut = curves["lip_close"] > 0.99
    assert shut.any() and (shut <= inside).all()
    got = mouth_opening(conv, out.data)
    assert (mouth_opening(conv, anim.data)[inside] > 0.5).all()  # wide open before
    assert (got[shut] <= CLOSURE_TOL).all(), got[shut]
    assert (got[inside] < mouth_opening(conv, anim.data)[inside]).all()
    changed = np.abs(out.data - anim.data).max(1) > 0
    assert changed[inside].all() and not changed[t < 0.3].any() and not changed[t > 0.9].any()
    assert out.meta["transcript"] == {"bilabials": 1, "frames": int(changed.sum())}
    if conv == "synth_arkit52":
        from unitalker.synth.conventions import ARKIT52_EMOTALK

        other = [i for i, n in enumerate(ARKIT52_EMOTALK) if n not in T.MOUTH_CHANNELS]
        np.testing.assert_array_equal(out.data[:, other], anim.data[:, other])
        jaw = out.data[:, ARKIT52_EMOTALK.index("jawOpen")]
        assert (jaw[shut] <= T.JAW_AT_CLOSURE + 1e-6).all()
    elif conventions.get(conv).kind == "vertices":
        from unitalker.evaluation.voices import _region
        from unitalker.geometry import vertices

        upper = _region(conv, "upper_face")
        moved = np.abs(vertices(conv, out.data) - vertices(conv, anim.data))[:, upper]
        assert moved.max() < 1e-6


def test_words_without_bilabials_change_nothing_and_strength_scales():
    anim, neutral = _open_mouth("synth_arkit52")
    no_bilabial = [("_", 0.0, 0.3), ("a", 0.3, 0.8), ("_", 0.8, 1.2)]
    out = T.close_bilabials({"synth_arkit52": anim}, no_bilabial, {"synth_arkit52": neutral})
    np.testing.assert_array_equal(out["synth_arkit52"].data, anim.data)
    assert out["synth_arkit52"].meta["transcript"] == {"bilabials": 0, "frames": 0}
    zero = T.close_bilabials(
        {"synth_arkit52": anim}, PHONES, {"synth_arkit52": neutral}, strength=0
    )
    np.testing.assert_array_equal(zero["synth_arkit52"].data, anim.data)
    full = T.close_bilabials({"synth_arkit52": anim}, PHONES, {"synth_arkit52": neutral})
    half = T.close_bilabials(
        {"synth_arkit52": anim}, PHONES, {"synth_arkit52": neutral}, strength=0.5
    )
    np.testing.assert_allclose(
        half["synth_arkit52"].data - anim.data,
        0.5 * (full["synth_arkit52"].data - anim.data),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="strength"):
        T.close_bilabials({"synth_arkit52": anim}, PHONES, {"synth_arkit52": neutral}, strength=2)


def test_heads_without_an_articulation_rig_are_refused():
    anim = Animation("3DETF_blendshape_weight", 30.0, np.zeros((36, 52), np.float32))
    with pytest.raises(T.TranscriptError, match="3DETF_blendshape_weight"):
        T.close_bilabials({"3DETF_blendshape_weight": anim}, PHONES, {})

    class Model:
        def template(self, head):
            return np.zeros(conventions.get(head).dim)

    T.check_heads(Model(), ["synth_arkit52", "synth_head_vertices"])
    with pytest.raises(T.TranscriptError, match="A2F-Synth heads only.*BIWI_23370_vertices"):
        T.check_heads(Model(), ["synth_arkit52", "BIWI_23370_vertices"])
    with pytest.raises(T.TranscriptError, match="ONNX"):
        T.check_heads(object(), ["synth_head_vertices"])


def test_templates_for_a_model_and_for_one_that_hides_them():
    import torch

    class WithTemplates:
        def template(self, head):
            return torch.full((conventions.get(head).dim,), 0.5)

    got = T.templates_for(WithTemplates(), ["synth_head_vertices", "synth_arkit52"])
    assert got["synth_head_vertices"].shape == (6324,) and (got["synth_arkit52"] == 0.5).all()
    hidden = T.templates_for(object(), ["synth_arkit52", "synth_flame_params"])
    assert not hidden["synth_arkit52"].any() and hidden["synth_flame_params"].shape == (43,)
    with pytest.raises(T.TranscriptError, match="ONNX"):
        T.templates_for(object(), ["synth_head_vertices"])


def _bob(tmp_path):
    from unitalker.synth.tts import synthesize

    res = synthesize("Bob made a map.", "en-us")
    wav = tmp_path / "bob.wav"
    sf.write(wav, res.audio, res.sr)
    return wav, res.text


def test_timeline_of_spoken_words_and_words_it_cannot_align(tmp_path):
    from unitalker.audio import load_audio
    from unitalker.evaluation.closures import bilabial_intervals

    wav, text = _bob(tmp_path)
    audio = load_audio(wav)
    phones = T.timeline(audio, text)
    assert len(bilabial_intervals(phones)) == 5  # b, b, m, m, p
    assert phones[-1][2] == pytest.approx(len(audio) / 16000, abs=0.011)
    with pytest.raises(T.TranscriptError, match="not in the PocketSphinx dictionary"):
        T.timeline(audio, "zzyzx qwrtp")
    with pytest.raises(T.TranscriptError, match="no words"):
        T.timeline(audio, " ... ")


def test_a_sentence_aligned_only_without_pauses_keeps_its_bilabials_in_place():
    """PocketSphinx finds no path with pauses for this eSpeak NG sentence (it aligns "Bob
    made a map" and "map of the moon" but not the whole); without them it does, and the
    six bilabials land on eSpeak NG's own timing."""
    from unitalker.audio import prepare_waveform
    from unitalker.evaluation.closures import bilabial_intervals
    from unitalker.synth.align import AlignmentError, align
    from unitalker.synth.tts import synthesize

    res = synthesize("Bob made a map of the moon.", "en-us")
    audio = prepare_waveform(res.audio, res.sr)
    with pytest.raises(AlignmentError):  # the alignment with pauses: no path
        align(audio, 16000, res.text)
    got = bilabial_intervals(T.timeline(audio, res.text))
    want = bilabial_intervals(res.phonemes)
    assert len(got) == len(want) == 6
    for (s, e), (s0, e0) in zip(got, want, strict=True):
        assert abs(s - s0) < 0.07 and abs(e - e0) < 0.07, (got, want)


def test_long_bilabials_of_a_pauseless_alignment_are_cut_or_refused():
    """A bilabial that absorbed a pause keeps HELD_BILABIAL_S next to its speech; one with
    speech on both sides is not trusted."""
    lead = [("p", 0.0, 0.6), ("a", 0.6, 0.8), ("_", 0.8, 1.0)]
    assert T._cut_long_bilabials(lead, "pa") == [
        ("_", 0.0, pytest.approx(0.5)),
        ("p", pytest.approx(0.5), 0.6),
        ("a", 0.6, 0.8),
        ("_", 0.8, 1.0),
    ]
    trail = [("a", 0.0, 0.2), ("m", 0.2, 1.0)]
    assert T._cut_long_bilabials(trail, "am") == [
        ("a", 0.0, 0.2),
        ("m", 0.2, pytest.approx(0.3)),
        ("_", pytest.approx(0.3), 1.0),
    ]
    short = [("a", 0.0, 0.2), ("m", 0.2, 0.3), ("a", 0.3, 0.5)]
    assert T._cut_long_bilabials(short, "ama") == short
    with pytest.raises(T.TranscriptError, match="not to be trusted"):
        T._cut_long_bilabials([("a", 0.0, 0.2), ("b", 0.2, 0.9), ("a", 0.9, 1.0)], "aba")


def _run(*args):
    from unitalker.cli import main

    return main(["animate", "-q", *map(str, args)])


def test_animate_with_words_closes_the_lips_of_the_default_model(tmp_path):
    """``--text``: the lips of every head close on the aligned bilabials, the rest of the
    motion is the model's; ``--text-beside`` reads the same words from the .txt beside the
    audio and gives the same result."""
    from unitalker.audio import load_audio
    from unitalker.evaluation.closures import CLOSURE_TOL, bilabial_intervals, closure_minima
    from unitalker.evaluation.voices import mouth_opening
    from unitalker.export import load_npz

    wav, text = _bob(tmp_path)
    assert _run(wav, "-o", tmp_path / "plain") == 0
    assert _run(wav, "--text", text, "-o", tmp_path / "words") == 0
    wav.with_suffix(".txt").write_text(text + "\n")
    assert _run(wav, "--text-beside", "-o", tmp_path / "beside") == 0
    plain = load_npz(tmp_path / "plain" / "bob.npz")
    words = load_npz(tmp_path / "words" / "bob.npz")
    beside = load_npz(tmp_path / "beside" / "bob.npz")
    intervals = bilabial_intervals(T.timeline(load_audio(wav), text))
    for head, anim in words.items():
        np.testing.assert_array_equal(anim.data, beside[head].data)
        assert anim.meta["transcript"]["bilabials"] == 5
        closed = closure_minima(mouth_opening(head, anim.data), anim.fps, intervals)
        before = closure_minima(mouth_opening(head, plain[head].data), anim.fps, intervals)
        assert (closed <= CLOSURE_TOL).sum() >= (before <= CLOSURE_TOL).sum()
        assert (closed <= CLOSURE_TOL).mean() >= 0.8, (head, closed)
        same = np.abs(anim.data - plain[head].data).max(1) == 0
        assert same.any() and not same.all()


def test_animate_words_errors(tmp_path, capsys):
    """Two inputs with --text, empty words, --text with --text-beside, and heads without a
    rig are refused before any work (exit 2); a file without its .txt, or whose words do
    not align, fails alone and writes nothing (exit 1)."""
    from tests.inference.infer_testdata import save_tiny_checkpoint

    wav, text = _bob(tmp_path)
    other = tmp_path / "other.wav"
    other.write_bytes(wav.read_bytes())
    out = tmp_path / "out"
    for args, message in [
        ((wav, other, "--text", text), "--text-beside"),
        ((wav, "--text", "  "), "--text is empty"),
        ((wav, "--text", text, "--text-beside"), "not allowed with"),
    ]:
        with pytest.raises(SystemExit) if "not allowed" in message else nullcontext():
            assert _run(*args, "-o", out) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()
    tiny = save_tiny_checkpoint(tmp_path / "tiny")
    assert _run(wav, "-m", tiny, "--text", text, "-o", out) == 2
    assert "A2F-Synth heads only" in capsys.readouterr().err and not out.exists()

    wav.with_suffix(".txt").write_text(text)
    assert _run(wav, other, "--text-beside", "-o", out) == 1
    err = capsys.readouterr().err
    assert f"{other.with_suffix('.txt')} does not exist" in err
    assert (out / "bob.npz").is_file() and not (out / "other.npz").exists()
    assert _run(other, "--text", "zzyzx qwrtp", "-o", tmp_path / "out2") == 1
    assert "not in the PocketSphinx dictionary" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())


def test_with_words_on_the_example_and_its_words_beside_it():
    """``with_words`` (the library's one call) closes the lips on the example's two
    bilabials ("aniMated", "froM"), whose words ``examples/hello.txt`` holds for
    ``--text-beside``; file and in-memory audio give the same."""
    from pathlib import Path

    import unitalker
    from unitalker.audio import load_audio

    wav = Path(__file__).parents[2] / "examples" / "hello.wav"
    words = wav.with_suffix(".txt").read_text().strip()
    model = unitalker.load_model(device="cpu")
    result = model.animate(str(wav))
    closed = T.with_words(model, result, str(wav), words)
    same = T.with_words(model, result, load_audio(wav), words, sr=16000)
    for head, anim in closed.items():
        assert anim.meta["transcript"]["bilabials"] == 2
        np.testing.assert_array_equal(anim.data, same[head].data)
        assert 0 < anim.meta["transcript"]["frames"] < anim.n_frames
        assert not np.array_equal(anim.data, result[head].data)
    with pytest.raises(T.TranscriptError):
        T.with_words(model, result, str(wav), "zzyzx")


def test_a_memory_mapped_result_stays_memory_mapped(tmp_path):
    """Long audio's results are memory-mapped (memory stays flat); so is their corrected
    copy, with the same values as an in-memory one, and the mapped input is untouched."""
    anim, neutral = _open_mouth("synth_head_vertices")
    path = tmp_path / "motion.npy"
    np.save(path, anim.data)
    mapped = Animation(anim.convention, anim.fps, np.load(path, mmap_mode="r"))
    templates = {anim.convention: neutral}
    got = T.close_bilabials({anim.convention: mapped}, PHONES, templates)[anim.convention]
    want = T.close_bilabials({anim.convention: anim}, PHONES, templates)[anim.convention]
    assert isinstance(got.data, np.memmap)
    np.testing.assert_array_equal(got.data, want.data)
    np.testing.assert_array_equal(np.load(path), anim.data)


def test_labels_rendered_near_the_bilabials_match_the_whole_clip():
    """The labels are rendered in windows around the bilabials (the articulation model
    costs frames x phones); where they close the lips they match a render of the whole
    clip, and the windows find the same frames to change."""
    from unitalker.evaluation.closures import bilabial_intervals
    from unitalker.synth.articulation import timeline_to_articulation

    phones, t = [], 0.0
    for k in range(12):  # "a m a" / "i b o p" with pauses of 0.3-3 s
        for p, d in [("a", 0.12), ("m", 0.07), ("a", 0.15), ("i", 0.1), ("b", 0.06), ("o", 0.2)]:
            phones.append((p, t, t + d))
            t += d
        pause = 0.3 if k % 3 else 3.0
        phones.append(("_", t, t + pause))
        t += pause
    fps, n = 30.0, int(t * 30)
    full = timeline_to_articulation(phones, fps, seed=0, n_frames=n)
    near = T._curves_near(phones, bilabial_intervals(phones), fps, n)
    changed = full["lip_close"] > 1e-3
    np.testing.assert_array_equal(changed, near["lip_close"] > 1e-3)
    for name in ("lip_close", "jaw_open", "lip_round", "lip_funnel"):
        np.testing.assert_allclose(near[name][changed], full[name][changed], atol=0.02)
