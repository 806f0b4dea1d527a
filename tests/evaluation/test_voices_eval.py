"""The held-out voices report (gap columns), the label-free checks, the whole-clip fix,
and silence driving a tiny trained model's mouth to neutral."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def unseen_release(eval_release, tmp_path_factory) -> Path:
    """The evaluation release with unseen splits for TA and TB (copies of test)."""
    root = tmp_path_factory.mktemp("unseen_release")
    for key in ("TA", "TB", "TC"):
        shutil.copytree(eval_release / key, root / key)
    for key in ("TA", "TB"):
        for split in ("test_unseen_voice", "test_unseen_engine"):
            shutil.copy(root / key / "test.json", root / key / f"{split}.json")
    return root


@pytest.fixture(scope="module")
def trained(eval_release, tmp_path_factory):
    from train_fixtures import tiny_config

    from unitalker.models.checkpoint import load_model
    from unitalker.training.run import train

    out = tmp_path_factory.mktemp("voices_run")
    res = train(tiny_config(eval_release, out, "schedule.steps=1", "data.datasets=[TA, TB]"))
    return load_model(res.final_dir, "cpu"), res.final_dir


def test_unseen_report_has_gap_columns(trained, unseen_release, tmp_path):
    from unitalker.evaluation.voices import unseen_report

    model, _ = trained
    rep = unseen_report(model, unseen_release)
    splits = {(r.dataset, r.split) for r in rep.rows}
    assert splits == {
        (k, s) for k in ("TA", "TB") for s in ("test", "test_unseen_voice", "test_unseen_engine")
    }
    for r in rep.rows:
        assert r.lve_static > 0 and r.mve_static > 0
        if r.split == "test":
            assert r.gap is None
        else:  # the unseen splits are copies of test here: no gap
            assert r.gap == pytest.approx(1.0) and r.gap_mve == pytest.approx(1.0)
    table = rep.table()
    assert "| gap |" in table and "LVE static" in table and "test_unseen_engine" in table
    rep.write_json(tmp_path / "u.json")
    row = json.loads((tmp_path / "u.json").read_text())["rows"][1]
    assert {"lve", "lve_static", "lve_ratio", "mve", "mve_static", "mve_ratio", "gap"} <= set(row)


def test_unseen_report_cli(trained, unseen_release, tmp_path):
    from unitalker.cli import main

    _, model_dir = trained
    rc = main(
        [
            "evaluate",
            str(model_dir),
            str(unseen_release),
            "--unseen",
            "--csv",
            str(tmp_path / "u.csv"),
        ]
    )
    assert rc == 0
    head = (tmp_path / "u.csv").read_text().splitlines()[0]
    assert "gap" in head and "lve_static" in head


def test_unseen_report_without_unseen_splits_is_a_clear_error(trained, eval_release):
    from unitalker.evaluation.voices import unseen_report

    with pytest.raises(ValueError, match="test_unseen_voice"):
        unseen_report(trained[0], eval_release)


def test_whole_clip_is_run_and_trimmed(trained, eval_release):
    """The model sees the whole clip (not audio cut to the annotation) and the
    prediction is trimmed to the annotated frames."""
    import torch

    from unitalker.evaluation.evaluate import predict_clip

    model, _ = trained
    conv = "tt_verts"
    tpl = torch.zeros(36)
    audio = np.random.default_rng(0).standard_normal(16000 + 300).astype(np.float32) * 0.1
    out = predict_clip(model, audio, conv, 0, tpl, 24, 25.0)
    assert out.shape == (24, 36)
    full = predict_clip(model, audio, conv, 0, tpl, 25, 25.0)
    torch.testing.assert_close(out, full[:24])  # trimming, not stretching


def test_label_free_checks_on_synth_heads():
    """Opening follows loudness; a closed mouth in silence meets the rule, an open one not."""
    from unitalker.evaluation.voices import label_free, mouth_opening
    from unitalker.synth.articulation import timeline_to_articulation
    from unitalker.synth.conventions import render

    fps, sr = 30.0, 16000
    tl = [("_", 0.0, 0.6), ("a", 0.6, 1.0), ("m", 1.0, 1.15), ("a", 1.15, 1.6), ("_", 1.6, 2.4)]
    curves = timeline_to_articulation(tl, fps, seed=0, n_frames=72)
    t = np.arange(int(2.4 * sr)) / sr
    env = np.interp(t, np.arange(72) / fps, curves["jaw_open"])  # loudness follows the jaw
    audio = (np.sin(2 * np.pi * 180 * t) * env).astype(np.float32)
    for conv in ("synth_arkit52", "synth_head_vertices"):
        motion = render(conv, curves, None)
        op = mouth_opening(conv, motion)
        assert op.max() > 0.5 and op[:6].max() < 0.02  # /a/ open, silence closed
        lf = label_free(conv, motion, audio, sr, fps)
        assert lf.silent_frames > 10 and lf.silence_ok and lf.r_loudness > 0.5
        open_motion = motion.copy()
        open_motion[:] = motion[int(0.8 * fps)]  # mouth held open on /a/ throughout
        assert not label_free(conv, open_motion, audio, sr, fps).silence_ok
    assert lf.jaw_r_loudness is None  # vertices: no jawOpen channel
    arkit = label_free("synth_arkit52", render("synth_arkit52", curves, None), audio, sr, fps)
    assert arkit.jaw_silence_ok and arkit.jaw_r_loudness > 0.5


def test_alsa_clips_listing(tmp_path):
    from unitalker.evaluation.voices import alsa_clips

    for name in ("Front_Center.wav", "Noise.wav", "Rear_Left.wav"):
        (tmp_path / name).write_bytes(b"")
    assert alsa_clips(tmp_path) == [
        (tmp_path / "Front_Center.wav", "front center"),
        (tmp_path / "Rear_Left.wav", "rear left"),
    ]
    assert alsa_clips(tmp_path / "missing") == []


def _burst_release(root: Path) -> Path:
    """Tone bursts whose labels move the lips with the envelope and rest in silence."""
    from train_fixtures import register_test_conventions

    from unitalker import conventions

    register_test_conventions(root / "_res")
    conv = conventions.get("tt_verts")
    rng = np.random.default_rng(0)
    folder = root / "TS"
    (folder / "audio").mkdir(parents=True)
    (folder / "annot").mkdir(parents=True)
    direction = rng.normal(size=conv.dim).astype(np.float32) * 0.3
    np.save(folder / "id_template.npy", np.zeros((1, conv.dim), np.float32))
    data = []
    for c in range(6):
        sec = 1.2
        t = np.arange(int(sec * 16000)) / 16000
        env = np.clip(np.sin(np.pi * t / sec) * rng.uniform(0.7, 1.0), 0, 1)
        audio = (env * np.sin(2 * np.pi * rng.uniform(150, 300) * t) * 0.4).astype(np.float32)
        e = env[(np.arange(int(sec * conv.fps)) / conv.fps * 16000).astype(int)]
        np.save(folder / "audio" / f"c{c}.npy", audio)
        np.save(folder / "annot" / f"c{c}.npy", (e[:, None] * direction[None]).astype(np.float32))
        data.append(
            {
                "annot_path": f"annot/c{c}.npy",
                "audio_path": f"audio/c{c}.npy",
                "id": 0,
                "annot_type": "tt_verts",
                "dataset": "TS",
                "fps": conv.fps,
            }
        )
    (folder / "train.json").write_text(json.dumps({"info": {"id_list": ["s0"]}, "data": data}))
    return root


@pytest.mark.slow
def test_silence_drives_a_tiny_trained_model_to_neutral(tmp_path):
    """Trained with silence padding (neutral labels) and noise, a tiny model moves on a
    tone and rests in the silence after it (mean displacement < 15 % of the tone's)."""
    import torch
    from train_fixtures import tiny_config

    from unitalker.models.checkpoint import load_model
    from unitalker.training.run import train

    root = _burst_release(tmp_path / "data")
    aug = [
        f"data.augment.{k}"
        for k in (
            "p_tempo=0",
            "p_pitch=0",
            "p_vtln=0",
            "p_reverb=0",
            "p_band=0",
            "p_codec=0",
            "p_gain=0",
            "p_clip=0",
        )
    ]
    cfg = tiny_config(
        root,
        tmp_path / "run",
        "schedule.steps=80",
        "schedule.warmup_steps=1",
        "optim.lr=0.003",
        "data.batch_size=3",
        "data.augment.enabled=true",
        "data.augment.prob=1.0",
        "data.augment.p_silence=0.8",
        "data.augment.p_noise=0.5",
        "data.augment.snr_db=[25, 40]",
        "schedule.freeze_features=false",
        *aug,
    )
    model = load_model(train(cfg).final_dir, "cpu").eval()
    sr = 16000
    t = np.arange(int(0.8 * sr)) / sr
    tone = (np.sin(np.pi * t / 0.8) * np.sin(2 * np.pi * 220 * t) * 0.4).astype(np.float32)
    quiet = np.random.default_rng(1).standard_normal(int(1.6 * sr)).astype(np.float32) * 1e-4
    audio = np.concatenate([tone, quiet])
    n = round(len(audio) / sr * 25)
    with torch.no_grad():
        out = model(
            torch.as_tensor(audio)[None],
            heads=["tt_verts"],
            identity=torch.tensor([0]),
            templates={"tt_verts": torch.zeros(1, 36)},
            frames={"tt_verts": [n]},
        )
    disp = out["tt_verts"].motion[0].abs().mean(-1).numpy()  # distance from the neutral pose
    moving = disp[5:15].mean()  # the middle of the tone
    resting = np.median(disp[30:])  # 0.4 s after the tone ends, to the end
    assert moving > 0.02
    assert resting < 0.15 * moving


@pytest.mark.skipif(
    not Path("/usr/share/sounds/alsa/Front_Center.wav").is_file(),
    reason="apt-get install alsa-utils",
)
def test_speech_check_on_a_recorded_clip():
    """A recorded human clip is aligned, scored against the articulation labels and checked."""
    from unitalker.evaluation.voices import speech_check, speech_summary

    res = speech_check(
        _tiny_arkit_model(), [("/usr/share/sounds/alsa/Front_Center.wav", "front center")]
    )
    sc = res[0].scores["synth_arkit52"]
    assert sc["LVE_static"] > 0 and sc["frames"] == res[0].label_free["synth_arkit52"].frames
    lf = res[0].label_free["synth_arkit52"]
    assert lf.silent_frames > 0 and lf.jaw_silence is not None
    row = speech_summary(res)["synth_arkit52"]
    assert {"LVE", "LVE_static", "r_loudness", "silence_open_max", "pause_open_max"} <= set(row)
    # the labels' own checks, on the same frames, and their summary
    labels = res[0].labels_free["synth_arkit52"]
    assert labels.frames == lf.frames and np.isfinite(labels.r_loudness)
    assert row["r_loudness_labels"] == pytest.approx(labels.r_loudness)
    assert row["silence_open_labels_max"] == pytest.approx(labels.silence_open)


def test_pocketsphinx_clips_listing(tmp_path):
    """CMU Sphinx transcriptions ("<s> words </s> (id)") name each wav and give its words;
    a line whose wav is missing, and a malformed line, are skipped."""
    from unitalker.evaluation.voices import pocketsphinx_clips

    assert pocketsphinx_clips(tmp_path) == []
    lv, cards = tmp_path / "librivox", tmp_path / "cards"
    lv.mkdir()
    cards.mkdir()
    (lv / "transcription").write_text(
        "<s> he was not an ill disposed young man </s> (book-0880)\n"
        "<s> missing audio </s> (book-0890)\n"
        "no id on this line\n"
    )
    (cards / "cards.transcription").write_text("<s> Ten of  clubs  </s> (001)\n")
    for wav in (lv / "book-0880.wav", cards / "001.wav"):
        wav.write_bytes(b"")
    assert pocketsphinx_clips(tmp_path) == [
        (lv / "book-0880.wav", "he was not an ill disposed young man"),
        (cards / "001.wav", "ten of clubs"),
    ]


@pytest.mark.skipif(
    not (Path("/usr/share/pocketsphinx/test/data/librivox/transcription").is_file()),
    reason="apt-get install pocketsphinx-testdata",
)
def test_speech_check_on_read_speech():
    """A sentence read for LibriVox (pocketsphinx-testdata) is aligned and scored, and its
    bilabials ("disPosed", "Man") are found: the labels close both."""
    from unitalker.evaluation.voices import pocketsphinx_clips, speech_check, speech_summary

    clips = pocketsphinx_clips()
    assert len(clips) == 10
    clip = [c for c in clips if c[1] == "he was not an ill disposed young man"]
    res = speech_check(_tiny_arkit_model(), clip)
    row = speech_summary(res)["synth_arkit52"]
    assert row["bilabials"] == 2 and row["bilabials_closed_labels"] == 1.0
    assert row["LVE_static"] > 0 and np.isfinite(row["r_loudness_labels"])


def test_speech_set_cli_runs_a_set(monkeypatch, tmp_path, capsys):
    """``evaluate-speech MODEL --set NAME`` runs the set's clips with their words: the
    table, the bilabial line and the labels' own checks are printed, and the JSON has both
    the model's and the labels' label-free checks per clip."""
    import dataclasses

    import soundfile as sf

    from unitalker.cli import main
    from unitalker.evaluation import voices
    from unitalker.models.checkpoint import save_model
    from unitalker.synth.tts import synthesize

    res = synthesize("Bob made a map.", "en-us")
    wav = tmp_path / "bob.wav"
    sf.write(wav, res.audio, res.sr)
    rec = dataclasses.replace(voices.SPEECH_SETS["pocketsphinx"], clips=lambda: [(wav, res.text)])
    monkeypatch.setitem(voices.SPEECH_SETS, "pocketsphinx", rec)
    model_dir = save_model(_tiny_arkit_model(), tmp_path / "tiny")
    out = tmp_path / "speech.json"
    assert (
        main(["evaluate-speech", str(model_dir), "--set", "pocketsphinx", "--json", str(out)]) == 0
    )
    text = capsys.readouterr().out
    assert "| `synth_arkit52` |" in text and "bilabials (synth_arkit52): 5 aligned" in text
    assert "labels (synth_arkit52): r(opening, dB)" in text
    doc = json.loads(out.read_text())
    (clip,) = doc["clips"]
    assert clip["text"] == res.text
    assert set(clip["label_free"]) == set(clip["labels_free"]) == {"synth_arkit52"}
    assert "r_loudness_labels" in doc["summary"]["synth_arkit52"]


def test_speech_set_cli_offers_every_registered_set():
    """``evaluate-speech --set`` offers exactly the sets of ``voices.SPEECH_SETS`` (the CLI
    lists them literally so that building the parser imports nothing heavy)."""
    import argparse

    from unitalker.cli import build_parser
    from unitalker.evaluation.voices import SPEECH_SETS

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    (sets,) = [a for a in sub.choices["evaluate-speech"]._actions if a.dest == "sets"]
    assert tuple(sets.choices) == tuple(SPEECH_SETS)


def test_speech_set_cli_errors(monkeypatch, capsys):
    """--set with audio files or with --text, and a set that is not installed (named or the
    default), are clear errors (exit 2, nothing run)."""
    import dataclasses

    from unitalker.cli import main
    from unitalker.evaluation import voices

    for name in ("alsa", "pocketsphinx"):
        empty = dataclasses.replace(voices.SPEECH_SETS[name], clips=lambda: [])
        monkeypatch.setitem(voices.SPEECH_SETS, name, empty)
    cases = [
        (["a.wav", "--set", "alsa"], "give audio files or --set, not both"),
        (["--set", "alsa", "--text", "front"], "--text needs audio files"),
        (["--set", "pocketsphinx"], "apt-get install pocketsphinx-testdata"),
        ([], "no audio given and no recorded clips in /usr/share/sounds/alsa"),
    ]
    for extra, message in cases:
        assert main(["evaluate-speech", "default", *extra]) == 2
        assert message in capsys.readouterr().err


class _EnvelopeModel:
    """A stand-in model whose ARKit jaw follows the audio's loudness (``closed=False``: a
    jaw that never closes), for the pause check."""

    heads = ["synth_arkit52"]
    pivot_index = 0

    def __init__(self, closed: bool = True):
        from types import SimpleNamespace

        import torch

        self.closed = closed
        self.config = SimpleNamespace(pivot=True)
        self.device = torch.device("cpu")

    def eval(self):
        return self

    def __call__(self, audio, heads, identity, templates, frames):
        from types import SimpleNamespace

        import torch

        from unitalker import conventions

        conv = heads[0]
        c = conventions.get(conv)
        n = frames[conv][0]
        hop = audio.shape[1] / n
        env = torch.stack(
            [audio[0, int(i * hop) : int((i + 1) * hop)].abs().mean() for i in range(n)]
        )
        jaw = (env / env.max()).clamp(0, 1) if self.closed else torch.full((n,), 0.6)
        out = torch.zeros(1, n, c.dim)
        out[0, :, c.channel_names.index("jawOpen")] = jaw
        return {conv: SimpleNamespace(motion=out)}


def test_pause_check_tells_a_closing_mouth_from_an_open_one():
    """In a second of room noise around speech-like bursts, a jaw that follows loudness is
    neutral (rule met) and one that stays open is not."""
    from unitalker.evaluation.voices import SILENCE_TOL, pause_check

    sr = 16000
    t = np.arange(sr) / sr
    burst = (0.5 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    closed = pause_check(_EnvelopeModel(), burst)["synth_arkit52"]
    open_ = pause_check(_EnvelopeModel(closed=False), burst)["synth_arkit52"]
    assert 0 <= closed <= SILENCE_TOL < open_


def test_speech_check_reports_bilabial_closures(tmp_path):
    """With words that hold /p/ /b/ /m/, each head gets the smallest openings of model and
    labels inside every aligned bilabial, and the summary their shares closed."""
    import soundfile as sf

    from unitalker.evaluation.voices import speech_check, speech_summary
    from unitalker.synth.tts import synthesize

    res = synthesize("Bob made a map.", "en-us")
    wav = tmp_path / "bob.wav"
    sf.write(wav, res.audio, res.sr)
    out = speech_check(_tiny_arkit_model(), [(wav, res.text)])
    cl = out[0].closures["synth_arkit52"]
    assert len(cl["model"]) == len(cl["labels"]) == 5  # B o B M ade a M a P
    assert max(cl["labels"]) <= 0.1  # the labels close every one
    row = speech_summary(out)["synth_arkit52"]
    assert row["bilabials"] == 5 and row["bilabials_closed_labels"] == 1.0
    assert 0.0 <= row["bilabials_closed"] <= 1.0


def _tiny_arkit_model():
    """A random-weight UniTalker with one synth_arkit52 head (fast; for the speech checks)."""
    import torch

    from unitalker.models.config import DecoderConfig, EncoderConfig, ModelConfig
    from unitalker.models.unitalker import UniTalker, default_heads

    torch.manual_seed(0)
    cfg = ModelConfig(
        encoder=EncoderConfig(family="builtin", hidden_size=32, n_layers=1, n_heads=2, n_mels=20),
        decoder=DecoderConfig(kind="tcn", hidden=24, id_dim=8),
        heads=default_heads(["synth_arkit52"], 16),
        identities=("T:0", "pivot"),
    )
    return UniTalker(cfg).eval()


def test_timeline_lag_finds_a_known_shift():
    """Loud vowels and quiet consonants alternate; a timeline 40 ms late (or on time) is
    found so by the vowel-loudness lag."""
    from unitalker.evaluation.voices import timeline_lag_ms

    sr = 16000
    rng = np.random.default_rng(0)
    tl, t, audio = [("_", 0.0, 0.3)], 0.3, [np.zeros(int(0.3 * sr))]
    for i in range(12):
        vowel, dur = i % 2 == 0, 0.12 if i % 2 == 0 else 0.08
        tl.append(("a" if vowel else "t", t, t + dur))
        audio.append(rng.normal(0, 0.3 if vowel else 0.01, int(round(dur * sr))))
        t += dur
    tl.append(("_", t, t + 0.3))
    x = np.concatenate([*audio, np.zeros(int(0.3 * sr))]).astype(np.float32)
    assert timeline_lag_ms(x, sr, tl) == 0
    late = [(p, s + 0.04, e + 0.04) for p, s, e in tl]
    assert timeline_lag_ms(x, sr, late) == -40


def test_speech_check_with_the_lips_closed_on_the_words(tmp_path, monkeypatch):
    """``close_lips``: the output scored is the one ``animate --text`` writes: a model
    whose mouth never closes gets its lips shut on every aligned bilabial (as the labels),
    and the added-pause check (no words) is the same as without."""
    import soundfile as sf

    from unitalker.evaluation import voices
    from unitalker.evaluation.closures import CLOSURE_TOL
    from unitalker.synth.conventions import ARKIT52_EMOTALK
    from unitalker.synth.tts import synthesize

    def open_mouth(model, audio16, heads=None):
        w = np.zeros((int(len(audio16) / 16000 * 30), 52), np.float32)
        w[:, ARKIT52_EMOTALK.index("jawOpen")] = 0.5
        return {"synth_arkit52": w}

    monkeypatch.setattr(voices, "predict_heads", open_mouth)
    res = synthesize("Bob made a map.", "en-us")
    wav = tmp_path / "bob.wav"
    sf.write(wav, res.audio, res.sr)
    model = _tiny_arkit_model()
    (plain,) = voices.speech_check(model, [(wav, res.text)])
    (fixed,) = voices.speech_check(model, [(wav, res.text)], close_lips=True)
    before, c = plain.closures["synth_arkit52"], fixed.closures["synth_arkit52"]
    assert len(c["model"]) == 5 and c["labels"] == before["labels"]
    assert (np.asarray(c["labels"]) <= CLOSURE_TOL).all()
    assert (np.asarray(before["model"]) > 0.5).all()
    assert (np.asarray(c["model"]) <= CLOSURE_TOL).all()
    assert fixed.padded_pause == plain.padded_pause
    assert fixed.scores["synth_arkit52"]["LVE"] < plain.scores["synth_arkit52"]["LVE"]
