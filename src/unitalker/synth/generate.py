"""Generate A2F-Synth datasets on disk, in the real community / release layouts.

``generate(out_dir, preset="tiny", seed=0)`` writes one folder per dataset
(:mod:`unitalker.synth.presets`), ``summary.json`` and ``README.md`` with the table, and
``_timelines/<key>/<clip>.json`` (the phoneme timeline and text of every clip). Output
is byte-identical for the same preset and seed: every clip has its own RNG seeded from
``(seed, dataset, subject, clip)``, whichever worker renders it.

Layouts (formats.md Sec. 2):

* ``biwi`` (CodeTalker): ``vertices_npy/<SUBJ>_eNN.npy`` ``[T, V*3]`` at 25 fps,
  ``wav/<SUBJ>_eNN.wav`` (44.1 kHz), ``templates.pkl`` (subject -> ``[V, 3]``).
* ``vocaset`` (FaceFormer): ``vertices_npy/<subject>_sentenceNN.npy`` at 60 fps,
  ``wav/...wav`` (22.05 kHz), ``templates.pkl``.
* ``3detf``: ``<root>/HDTF/audio/<spk>_<NNN>.wav`` + ``<root>/HDTF/blendshape/<spk>_<NNN>.npy`` ``[T, 52]``,
  and the split as ``<root>/HDTF/{train,val,test}.txt`` (clip stems), which
  ``unitalker data convert 3detf`` honours.
* ``release``: ``train.json``/``val.json``/``test.json``, ``annot/*.npy``, ``audio/*.wav``
  (16 kHz), ``id_template.npy`` ``[n_subjects, dim]`` (zeros: these conventions are
  identity-free). ``info.id_list`` lists every local subject id of the dataset.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unitalker.synth.presets import DATASETS, PRESETS, VARIANTS_F, VARIANTS_M, VOICES, DatasetSpec

log = logging.getLogger(__name__)

AUDIO_SR = {"biwi": 44100, "vocaset": 22050, "3detf": 16000, "release": 16000}


@dataclass(frozen=True)
class ClipJob:
    """One clip to render (picklable, carries everything a worker needs)."""

    out_dir: str
    key: str
    subject: str
    subject_index: int
    clip_index: int
    clip_name: str
    sentence_seed: tuple[int, ...]
    seed: tuple[int, ...]
    split: str


def _speaker(spec: DatasetSpec, subject: str, si: int, seed: int) -> dict:
    from unitalker.synth.articulation import SpeakerStyle

    rng = np.random.default_rng([seed, int(spec.key[1:]), si, 1])
    lang = spec.languages[si % len(spec.languages)]
    female = (
        subject.startswith("F") and spec.layout == "biwi" or (spec.layout != "biwi" and si % 2 == 0)
    )
    variants = VARIANTS_F if female else VARIANTS_M
    base = VOICES[lang][int(rng.integers(len(VOICES[lang])))]
    return {
        "lang": lang,
        "voice": f"{base}+{variants[int(rng.integers(len(variants)))]}",
        "rate": int(rng.integers(135, 200)),
        "pitch": int(rng.integers(30, 75)),
        "range": int(rng.integers(35, 85)),
        "style": SpeakerStyle.random(rng),
        "identity_seed": int(rng.integers(2**31)),
    }


def plan(preset: str, seed: int, out_dir: str | Path = ".") -> list[ClipJob]:
    """The ordered list of clips of a preset."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {PRESETS}")
    from unitalker.synth.presets import VOCA_TEST, VOCA_VAL

    jobs = []
    for di, spec in enumerate(DATASETS):
        subjects = spec.subjects[preset]
        n = spec.clips[preset]
        for si, subj in enumerate(subjects):
            if spec.layout == "biwi":
                ids = [1, 2, 33, 37] if preset == "tiny" else list(range(1, n + 1))
                names = [
                    (f"{subj}_e{i:02d}", i, "train" if i <= 32 else "val" if i <= 36 else "test")
                    for i in ids
                ]
            elif spec.layout == "vocaset":
                held = subj in VOCA_VAL or subj in VOCA_TEST
                ids = list(range(21, 21 + max(1, n // 2))) if held else list(range(1, n + 1))
                split = "val" if subj in VOCA_VAL else "test" if subj in VOCA_TEST else "train"
                names = [(f"{subj}_sentence{i:02d}", i, split) for i in ids]
            else:
                names = [
                    (
                        f"{subj}_{i:03d}",
                        1000 * si + i,
                        "test" if i == n - 1 else "val" if i == n - 2 else "train",
                    )
                    for i in range(n)
                ]
            for ci, (name, sent_id, split) in enumerate(names):
                # BIWI / VOCASET: sentence eNN has the same text for every subject
                jobs.append(
                    ClipJob(
                        str(out_dir),
                        spec.key,
                        subj,
                        si,
                        ci,
                        name,
                        (seed, di, sent_id, 2),
                        (seed, di, si, ci, 3),
                        split,
                    )
                )
    return jobs


def _write_audio(path: Path, audio: np.ndarray, sr_in: int, sr_out: int) -> None:
    from unitalker.audio import resample, write_wav

    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, resample(audio, sr_in, sr_out), sr_out)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)


def synth_clip(spec: DatasetSpec, job: ClipJob, speaker: dict) -> tuple:
    """TTS (or singing) -> timeline -> articulation at the native fps -> convention data."""
    from unitalker.synth import text, tts
    from unitalker.synth.articulation import audio_features, timeline_to_articulation
    from unitalker.synth.conventions import render

    rng = np.random.default_rng(list(job.seed))
    srng = np.random.default_rng(list(job.sentence_seed))
    target = float(srng.uniform(*spec.seconds))
    if spec.domain == "song":
        n_notes = max(4, round(target / 0.6))
        words, notes, durs = text.song(speaker["lang"], srng, n_notes)
        base = (
            speaker["voice"]
            if speaker["lang"] != "zh"
            else "cmn-latn-pinyin+" + speaker["voice"].split("+")[1]
        )
        res = tts.sing(
            words,
            notes,
            durs,
            base,
            rate=speaker["rate"],
            base_midi=55 + (speaker["pitch"] - 50) // 4,
        )
    else:
        res = tts.synthesize(
            text.paragraph(speaker["lang"], srng, target),
            speaker["voice"],
            rate=speaker["rate"],
            pitch=speaker["pitch"],
            pitch_range=speaker["range"],
        )
    audio = res.audio
    if rng.random() < 0.3:
        audio = tts.augment(audio, rng)
    n = max(1, round(len(audio) / res.sr * spec.fps))
    f0, energy = audio_features(audio, res.sr, spec.fps, n)
    curves = timeline_to_articulation(
        res.phonemes, spec.fps, speaker["style"], seed=rng, n_frames=n, f0=f0, energy=energy
    )
    ident = speaker["identity_seed"] if spec.layout in ("biwi", "vocaset") else None
    data = render(spec.convention, curves, ident)
    return res, audio, data


def _run_job(job: ClipJob) -> dict:
    from unitalker.synth.presets import spec as get_spec

    spec = get_spec(job.key)
    seed = job.seed[0]
    speaker = _speaker(spec, job.subject, job.subject_index, seed)
    res, audio, data = synth_clip(spec, job, speaker)
    root = Path(job.out_dir) / spec.folder
    sr_out = AUDIO_SR[spec.layout]
    if spec.layout in ("biwi", "vocaset"):
        wav_rel, annot_rel = f"wav/{job.clip_name}.wav", f"vertices_npy/{job.clip_name}.npy"
    elif spec.layout == "3detf":
        wav_rel, annot_rel = (
            f"HDTF/audio/{job.clip_name}.wav",
            f"HDTF/blendshape/{job.clip_name}.npy",
        )
    else:
        wav_rel, annot_rel = f"audio/{job.clip_name}.wav", f"annot/{job.clip_name}.npy"
    _write_audio(root / wav_rel, audio, res.sr, sr_out)
    _save_npy(root / annot_rel, data)
    tl_path = Path(job.out_dir) / "_timelines" / spec.key / f"{job.clip_name}.json"
    tl_path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "text": res.text,
        "voice": speaker["voice"],
        "language": speaker["lang"],
        "domain": spec.domain,
        "fps": spec.fps,
        "n_frames": int(len(data)),
        "seconds": round(len(audio) / res.sr, 6),
        "phonemes": [[p, round(s, 6), round(e, 6)] for p, s, e in res.phonemes],
        "words": [[w, round(s, 6)] for w, s in res.words],
    }
    tl_path.write_text(json.dumps(record, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    return {
        "key": job.key,
        "subject": job.subject,
        "subject_index": job.subject_index,
        "clip": job.clip_name,
        "split": job.split,
        "audio": wav_rel,
        "annot": annot_rel,
        "seconds": record["seconds"],
        "frames": int(len(data)),
        "language": speaker["lang"],
        "identity_seed": speaker["identity_seed"],
    }


def _finish_dataset(out: Path, spec: DatasetSpec, rows: list[dict], preset: str) -> None:
    from unitalker.synth.conventions import identity_template

    root = out / spec.folder
    subjects = spec.subjects[preset]
    if spec.layout in ("biwi", "vocaset"):
        seeds = {r["subject"]: r["identity_seed"] for r in rows}
        templates = {
            s: np.asarray(identity_template(spec.convention, seeds[s]), np.float32)
            for s in subjects
        }
        (root / "templates.pkl").write_bytes(pickle.dumps(templates, protocol=4))
    elif spec.layout == "3detf":  # state the split, so the converter need not guess it
        for split in ("train", "val", "test"):
            stems = [Path(r["annot"]).stem for r in rows if r["split"] == split]
            (root / "HDTF" / f"{split}.txt").write_text("".join(f"{x}\n" for x in stems))
    elif spec.layout == "release":
        from unitalker import conventions

        dim = conventions.get(spec.convention).dim
        np.save(
            root / "id_template.npy", np.zeros((len(subjects), dim), np.float32), allow_pickle=False
        )
        for split in ("train", "val", "test"):
            data = [
                {
                    "annot_path": r["annot"],
                    "audio_path": r["audio"],
                    "id": r["subject_index"],
                    "annot_type": spec.convention,
                    "dataset": spec.key,
                    "fps": spec.fps,
                }
                for r in rows
                if r["split"] == split
            ]
            doc = {"info": {"id_list": list(range(len(subjects)))}, "data": data}
            (root / f"{split}.json").write_text(json.dumps(doc, indent=1) + "\n")


def summarize(rows: list[dict], preset: str, seed: int) -> dict:
    """Per-dataset table (hours, sequences, speakers, languages, fps, convention)."""
    table = []
    for spec in DATASETS:
        r = [x for x in rows if x["key"] == spec.key]
        secs = sum(x["seconds"] for x in r)
        table.append(
            {
                "key": spec.key,
                "name": spec.name,
                "folder": spec.folder,
                "layout": spec.layout,
                "convention": spec.convention,
                "fps": spec.fps,
                "domain": spec.domain,
                "languages": sorted({x["language"] for x in r}),
                "speakers": len({x["subject"] for x in r}),
                "sequences": len(r),
                "frames": sum(x["frames"] for x in r),
                "seconds": round(secs, 3),
                "hours": round(secs / 3600, 4),
                "splits": {
                    s: sum(1 for x in r if x["split"] == s) for s in ("train", "val", "test")
                },
            }
        )
    total = round(sum(t["seconds"] for t in table), 3)
    return {
        "preset": preset,
        "seed": seed,
        "total_seconds": total,
        "total_hours": round(total / 3600, 4),
        "datasets": table,
    }


def summary_markdown(summary: dict) -> str:
    """The summary as a Markdown table."""
    lines = [
        "| key | name | convention | layout | fps | languages | domain | speakers | sequences | hours |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in summary["datasets"]:
        lines.append(
            f"| {t['key']} | {t['name']} | {t['convention']} | {t['layout']} | {t['fps']:g} | "
            f"{' '.join(t['languages'])} | {t['domain']} | {t['speakers']} | {t['sequences']} | "
            f"{t['hours']:.3f} |"
        )
    lines.append(
        f"| **all** | | | | | | | | {sum(t['sequences'] for t in summary['datasets'])} | "
        f"{summary['total_hours']:.3f} |"
    )
    return "\n".join(lines)


def run_jobs(
    fn: Callable[[Any], dict],
    jobs: list,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """``[fn(job) for job in jobs]``, in ``workers`` processes when more than one, in
    order, calling ``progress(done, total)`` after each job."""
    rows: list[dict] = []
    if workers > 1:
        import multiprocessing as mp

        # spawn: eSpeak's global state must not be inherited half-initialised
        with mp.get_context("spawn").Pool(workers) as pool:
            for row in pool.imap(fn, jobs, chunksize=1):
                rows.append(row)
                if progress:
                    progress(len(rows), len(jobs))
    else:
        for job in jobs:
            rows.append(fn(job))
            if progress:
                progress(len(rows), len(jobs))
    return rows


def generate(
    out_dir: str | Path,
    preset: str = "tiny",
    seed: int = 0,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generate a preset into ``out_dir``.

    Args:
        out_dir: output folder; must be empty or absent unless ``overwrite``
            (files are then overwritten in place; nothing is deleted).
        preset: ``tiny`` (seconds) or ``bench`` (~1.1 h of audio).
        seed: master seed; same seed -> byte-identical files.
        workers: processes (each initialises its own eSpeak).
        progress: called as ``progress(done, total)`` after every clip.

    Returns:
        The summary dict (also written to ``summary.json``).
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} is not empty (pass overwrite=True / --overwrite to write into it)"
        )
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan(preset, seed, out)
    rows = run_jobs(_run_job, jobs, workers, progress)
    for spec in DATASETS:
        _finish_dataset(out, spec, [r for r in rows if r["key"] == spec.key], preset)
    summary = summarize(rows, preset, seed)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    readme = (
        f"# A2F-Synth ({preset} preset, seed {seed})\n\nGenerated by `unitalker synth generate`. "
        "Procedural: eSpeak NG speech / singing, phoneme-timeline articulation, rendered in the "
        "synth conventions. See docs/a2f-synth.md.\n\n" + summary_markdown(summary) + "\n"
    )
    (out / "README.md").write_text(readme)
    return summary
