"""Held-out voice / engine evaluation, a recorded-speech check and label-free checks.

* :func:`unseen_report`: LVE / MVE per dataset on ``test`` (seen voices),
  ``test_unseen_voice`` and ``test_unseen_engine`` (A2F-Synth voices, V0-V3), each
  against the static-template baseline, and ``gap = unseen / seen`` (model LVE on the
  unseen split over model LVE on ``test``, same subjects and sentences).
* :func:`speech_check`: recorded human speech (by default the voice clips of Debian's
  ``alsa-utils``, ``/usr/share/sounds/alsa/*.wav``; :data:`SPEECH_SETS` adds the read
  speech of ``pocketsphinx-testdata``), force-aligned with PocketSphinx,
  labels from the project's articulation model, scored like the synthetic test sets;
  plus the label-free checks and, where the words have /p/ /b/ /m/, their closures.
* :func:`label_free`: on any audio, per head: the correlation of mouth opening with
  loudness in dB, and the mouth opening in frames 40 dB below the clip's peak (silence)
  against the rule "median <= the static template's + 0.02 of the open range".
* :func:`pause_check`: the same rule inside a second of room-level noise added before
  and after a clip (a pause, not the clip's quiet consonants).

Mouth opening is measured on vertices (any convention with a vertex map): the distance
between the upper- and lower-lip midline vertices (lip vertices nearest the mouth's
centre line, the highest and lowest of them in the open pose), minus that distance in
the template; the "open range" is that opening for a wide-open /a/ of the A2F-Synth
articulation model rendered in the convention. For ARKit heads ``jawOpen`` (0-1, open
range 1) is reported too.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

UNSEEN_SPLITS: tuple[str, ...] = ("test_unseen_voice", "test_unseen_engine")
ALSA_SOUNDS = Path("/usr/share/sounds/alsa")
# Debian's pocketsphinx-testdata: read speech (LibriVox) and spoken card names, transcribed
POCKETSPHINX_TESTDATA = Path("/usr/share/pocketsphinx/test/data")
SILENCE_DB = 40.0  # frames this far below the clip's peak are silence
SILENCE_TOL = 0.02  # of the open range
PAUSE_PAD_S = 1.0  # seconds of near-silence added before and after a clip (the pause check)
PAUSE_NOISE = 1e-3  # its white-noise level (-60 dBFS RMS): a quiet room, not digital zero


# --------------------------------------------------------------------------------------
# unseen voices / engine


@dataclass
class GapRow:
    """One dataset on one split: model and static-baseline LVE / MVE, and the gap."""

    dataset: str
    convention: str
    split: str
    sequences: int
    lve: float
    lve_static: float
    mve: float
    mve_static: float
    gap: float | None = None  # LVE(split) / LVE(test); None on the seen split itself
    gap_mve: float | None = None

    @property
    def lve_ratio(self) -> float:
        return self.lve / self.lve_static if self.lve_static else float("nan")

    @property
    def mve_ratio(self) -> float:
        return self.mve / self.mve_static if self.mve_static else float("nan")


@dataclass
class UnseenReport:
    rows: list[GapRow]
    seen_split: str = "test"
    averaging: str = "pooled"
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "seen_split": self.seen_split,
            "averaging": self.averaging,
            "gap": "model LVE on the split / model LVE on the seen split (same subjects, sentences)",
            "rows": [
                {**asdict(r), "lve_ratio": r.lve_ratio, "mve_ratio": r.mve_ratio} for r in self.rows
            ],
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def write_csv(self, path: str | Path) -> None:
        from unitalker.evaluation.evaluate import write_rows_csv

        write_rows_csv(path, self.to_dict()["rows"])

    def table(self) -> str:
        """Markdown table: dataset, convention, split, seqs, LVE, static, ratio, MVE, static, ratio, gap."""
        lines = [
            "| dataset | convention | split | seqs | LVE | LVE static | ratio | MVE | MVE static | ratio | gap |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in self.rows:
            gap = "" if r.gap is None else f"{r.gap:.2f}"
            lines.append(
                f"| {r.dataset} | `{r.convention}` | {r.split} | {r.sequences} | {r.lve:.3e} | "
                f"{r.lve_static:.3e} | {r.lve_ratio:.2f} | {r.mve:.3e} | {r.mve_static:.3e} | "
                f"{r.mve_ratio:.2f} | {gap} |"
            )
        lines.append(f"\n({self.averaging} over frames; gap = LVE(split) / LVE({self.seen_split}))")
        return "\n".join(lines)


def unseen_report(
    model: Any,
    manifest: str | Path | Any,
    *,
    seen_split: str = "test",
    unseen_splits: Sequence[str] = UNSEEN_SPLITS,
    datasets: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> UnseenReport:
    """Evaluate ``model`` and the static baseline on the seen and unseen splits.

    Datasets without an unseen split are skipped (a root of S0-S5 and V0-V3 reports
    V0-V3). Raises ValueError when no dataset has any of ``unseen_splits``.
    """
    from unitalker.data import load_manifest
    from unitalker.evaluation.evaluate import evaluate

    m = load_manifest(manifest)
    present = [s for s in unseen_splits if m.has_split(s)]
    if not present:
        raise ValueError(
            f"{m.path}: no split {list(unseen_splits)} (generate them with `unitalker synth voices`)"
        )
    keys = set(datasets) if datasets else None
    with_unseen: set[str] = set()
    for s in present:
        with_unseen |= {p.dataset for p in m.split(s).parts}
    keys = with_unseen if keys is None else keys & with_unseen
    if not keys:
        raise ValueError(f"none of the datasets {sorted(datasets)} has an unseen split")
    ds = tuple(sorted(keys))
    values: dict[tuple[str, str, str], tuple[float, float, int, str]] = {}
    for split in (seen_split, *present):
        for static in (False, True):
            rep, _ = evaluate(
                None if static else model,
                m,
                split=split,
                datasets=ds,
                static_baseline=static,
                progress=progress,
            )
            for r in rep.results:
                values[(r.dataset, split, "static" if static else "model")] = (
                    r.summary.pooled["LVE"],
                    r.summary.pooled["MVE"],
                    r.summary.n_sequences,
                    r.convention,
                )
    rows = []
    for key in ds:
        seen = values.get((key, seen_split, "model"))
        for split in (seen_split, *present):
            mod, st = values.get((key, split, "model")), values.get((key, split, "static"))
            if mod is None or st is None:
                continue
            gap = gap_m = None
            if split != seen_split and seen is not None:
                gap, gap_m = mod[0] / seen[0], mod[1] / seen[1]
            rows.append(
                GapRow(key, mod[3], split, mod[2], mod[0], st[0], mod[1], st[1], gap, gap_m)
            )
    return UnseenReport(rows, seen_split)


# --------------------------------------------------------------------------------------
# mouth opening and label-free checks


@dataclass(frozen=True)
class MouthGauge:
    """How a convention's vertices give a mouth opening (see the module notes)."""

    convention: str
    upper: int
    lower: int
    rest: float  # upper-lower distance of the template
    open_range: float  # opening of a wide-open /a/


def _open_pose_vertices(convention: str) -> tuple[np.ndarray, np.ndarray]:
    """Template and wide-open /a/ vertices ``[V, 3]`` of a synth convention (mean identity)."""
    from unitalker.geometry import vertices as to_vertices
    from unitalker.synth.articulation import CURVES
    from unitalker.synth.conventions import render

    curves = {c: np.zeros(2, np.float32) for c in CURVES}
    curves["jaw_open"] = np.array([0.0, 0.8], np.float32)  # /a/'s jaw target
    data = render(convention, curves, None)
    v = to_vertices(convention, data)
    return v[0], v[1]


def _region(convention: str, region: str) -> np.ndarray | None:
    """A synth convention's registered ``lip`` / ``upper_face`` indices (None if none)."""
    from unitalker import conventions

    found = conventions.find_region(convention, region)
    return None if found is None else found.indices


def mouth_gauge(convention: str) -> MouthGauge:
    """The lip midline vertex pair of a synth convention and its open range."""
    rest_v, open_v = _open_pose_vertices(convention)
    lip = _region(convention, "lip")
    idx = np.arange(len(rest_v)) if lip is None else np.asarray(lip)
    x = rest_v[idx, 0]
    centre = idx[np.abs(x - np.median(x)) <= np.percentile(np.abs(x - np.median(x)), 15)]
    moved = open_v[centre, 1] - rest_v[centre, 1]
    lower = int(centre[np.argmin(moved)])  # moves down most when the jaw opens
    upper_cands = centre[np.abs(moved) < 0.25 * np.abs(moved).max()]
    if len(upper_cands) == 0:
        upper_cands = centre
    # the upper-lip vertex closest to the lower one at rest
    upper = int(upper_cands[np.argmin(np.linalg.norm(rest_v[upper_cands] - rest_v[lower], axis=1))])
    rest = float(np.linalg.norm(rest_v[upper] - rest_v[lower]))
    opened = float(np.linalg.norm(open_v[upper] - open_v[lower]))
    return MouthGauge(convention, upper, lower, rest, max(opened - rest, 1e-9))


def loudness_db(
    audio: np.ndarray, sr: int, fps: float, n_frames: int, win_s: float = 0.04
) -> np.ndarray:
    """Per-frame RMS level in dB relative to the clip's loudest frame (``<= 0``), ``[T]``."""
    hop = sr / fps
    win = max(1, int(win_s * sr))
    x = np.pad(np.asarray(audio, np.float64), (win, win))
    idx = (np.arange(n_frames) * hop).astype(int)[:, None] + np.arange(win)[None, :] + win // 2
    rms = np.sqrt((x[np.minimum(idx, len(x) - 1)] ** 2).mean(1) + 1e-20)
    db = 20 * np.log10(rms)
    return (db - db.max()).astype(np.float32)


def timeline_lag_ms(
    audio: np.ndarray,
    sr: int,
    phonemes: Sequence[Sequence[Any]],
    lags_ms: range = range(-120, 65, 5),
) -> int:
    """Where a phone timeline sits against its sound: the shift of the timeline (ms, of
    ``lags_ms``; negative = the sound comes before the labels) at which "a vowel is
    labelled here" best correlates with the audio's level in dB, over the labelled
    speech within 50 dB of the peak (5 ms frames, 5 ms windows).
    """
    from unitalker.data.visemes import frame_visemes, viseme_classes

    fps = 200.0
    n = max(1, int(len(audio) / sr * fps))
    db = loudness_db(audio, sr, fps, n, win_s=0.005)
    vis = frame_visemes(phonemes, n, fps)
    names = viseme_classes()
    vowel = np.isin(vis, [names.index(v) for v in ("aa", "E", "ih", "oh", "ou")]).astype(float)
    best, best_r = 0, -2.0
    for ms in lags_ms:
        k = int(round(ms * fps / 1000))
        m = np.roll(vis != 0, k) & (db > -50)
        r = np.corrcoef(np.roll(vowel, k)[m], db[m])[0, 1] if m.sum() > 2 else np.nan
        if np.isfinite(r) and r > best_r:
            best, best_r = ms, float(r)
    return best


@dataclass
class LabelFree:
    """Label-free checks of one head on one clip."""

    convention: str
    frames: int
    silent_frames: int
    r_loudness: float  # Pearson r of opening vs loudness (dB, floored at -60)
    silence_open: float  # median opening in silent frames, in units of the open range
    silence_ok: bool  # silence_open <= SILENCE_TOL (the static template's opening is 0)
    pause_frames: int | None = None  # silent frames the aligner also calls a pause ("_")
    pause_open: float | None = None  # median opening there (open-range units)
    jaw_r_loudness: float | None = None  # ARKit: jawOpen vs loudness
    jaw_silence: float | None = None  # ARKit: median jawOpen in silent frames
    jaw_silence_ok: bool | None = None


def mouth_opening(
    convention: str, motion: np.ndarray, gauge: MouthGauge | None = None
) -> np.ndarray:
    """Opening per frame ``[T]`` in units of the open range (0 = template, 1 = wide /a/)."""
    from unitalker.geometry import vertices as to_vertices

    g = gauge or mouth_gauge(convention)
    v = to_vertices(convention, motion)
    d = np.linalg.norm(v[:, g.upper] - v[:, g.lower], axis=-1)
    return ((d - g.rest) / g.open_range).astype(np.float32)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) < 1e-7 or np.ptp(b) < 1e-7:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def label_free(
    convention: str,
    motion: np.ndarray,
    audio: np.ndarray,
    sr: int,
    fps: float,
    pauses: np.ndarray | None = None,
) -> LabelFree:
    """The two label-free checks of one head's output ``[T, dim]`` on its audio.

    ``pauses`` (bool ``[T]``, optional): frames an alignment calls silence; the opening
    in frames both silent and paused is reported too (low-energy consonants such as the
    closure of a final /t/ are "40 dB below the peak" without being pauses)."""
    from unitalker import conventions

    n = len(motion)
    db = np.maximum(loudness_db(audio, sr, fps, n), -60.0)
    opening = mouth_opening(convention, motion)
    silent = db <= -SILENCE_DB
    sil_open = float(np.median(opening[silent])) if silent.any() else float("nan")
    out = LabelFree(
        convention,
        n,
        int(silent.sum()),
        _pearson(opening, db),
        sil_open,
        bool(silent.any() and sil_open <= SILENCE_TOL),
    )
    if pauses is not None:
        both = silent & np.asarray(pauses[:n], bool)
        out.pause_frames = int(both.sum())
        out.pause_open = float(np.median(opening[both])) if both.any() else float("nan")
    conv = conventions.get(convention)
    names = list(conv.channel_names or ())
    if conv.kind == "blendshapes" and "jawOpen" in names:
        jaw = np.asarray(motion)[:, names.index("jawOpen")]
        out.jaw_r_loudness = _pearson(jaw, db)
        out.jaw_silence = float(np.median(jaw[silent])) if silent.any() else float("nan")
        out.jaw_silence_ok = bool(silent.any() and out.jaw_silence <= SILENCE_TOL)
    return out


# --------------------------------------------------------------------------------------
# recorded speech


def alsa_clips(folder: str | Path = ALSA_SOUNDS) -> list[tuple[Path, str]]:
    """The recorded voice clips of ``alsa-utils`` with their words ("Front_Center.wav" ->
    "front center"); ``Noise.wav`` is left out. Empty when the package is not installed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [
        (p, p.stem.replace("_", " ").lower())
        for p in sorted(folder.glob("*.wav"))
        if p.stem != "Noise"
    ]


def pocketsphinx_clips(folder: str | Path = POCKETSPHINX_TESTDATA) -> list[tuple[Path, str]]:
    """The transcribed recordings of Debian's ``pocketsphinx-testdata`` with their words:
    ``librivox/`` (five sentences of "Sense and Sensibility" read for LibriVox, 3-7 s) and
    ``cards/`` (five spoken card names, 1-3.5 s). Each folder's transcription lists one
    ``<s> words </s> (file id)`` a line (CMU Sphinx's format). Empty when the package is
    not installed; a transcription line without its ``.wav`` is skipped."""
    folder = Path(folder)
    out = []
    for sub, listing in (("librivox", "transcription"), ("cards", "cards.transcription")):
        path = folder / sub / listing
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            m = re.fullmatch(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\(([^()\s]+)\)\s*", line)
            if not m:
                continue
            wav = folder / sub / f"{m.group(2)}.wav"
            words = " ".join(m.group(1).lower().split())
            if words and wav.is_file():
                out.append((wav, words))
    return out


@dataclass(frozen=True)
class SpeechSet:
    """A set of recorded clips that a Debian package installs: ``clips()`` lists them with
    their words (empty when the package is not installed)."""

    clips: Callable[[], list[tuple[Path, str]]]
    folder: Path
    package: str


SPEECH_SETS: dict[str, SpeechSet] = {
    "alsa": SpeechSet(alsa_clips, ALSA_SOUNDS, "alsa-utils"),
    "pocketsphinx": SpeechSet(pocketsphinx_clips, POCKETSPHINX_TESTDATA, "pocketsphinx-testdata"),
}


@dataclass
class SpeechResult:
    """One recorded clip: scores per head and the label-free checks."""

    clip: str
    text: str
    seconds: float
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # conv -> LVE, MVE (+ static)
    label_free: dict[str, LabelFree] = field(default_factory=dict)
    # the same checks on the articulation labels of the alignment (only with words): what
    # a model that matched the labels exactly would score
    labels_free: dict[str, LabelFree] = field(default_factory=dict)
    padded_pause: dict[str, float] = field(default_factory=dict)  # conv -> see pause_check
    # conv -> smallest openings inside each aligned /p/ /b/ /m/ ({"model": [...], "labels":
    # [...]}, open-range units; see unitalker.evaluation.closures); only with words
    closures: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def pause_check(
    model: Any, audio16: np.ndarray, pad_s: float = PAUSE_PAD_S, noise: float = PAUSE_NOISE
) -> dict[str, float]:
    """The mouth in a real pause: ``pad_s`` seconds of room-level noise (``noise`` RMS,
    seeded) before and after the clip; per head, the median mouth opening (open-range
    units, 0 = template) over the middle 40 % of both pauses, away from the speech's
    anticipation and release. Rule: ``<= SILENCE_TOL``.

    On short clips the frames 40 dB below the peak (:func:`label_free`) are mostly
    low-energy consonants and the approach to the first vowel, where the articulation
    model's own labels are open too; this measures silence itself.
    """
    from unitalker import conventions
    from unitalker.audio import SAMPLE_RATE

    n = int(round(pad_s * SAMPLE_RATE))
    x = np.concatenate([np.zeros(n, np.float32), audio16, np.zeros(n, np.float32)])
    x = x + noise * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    out = {}
    for conv, pred in predict_heads(model, x).items():
        fps = conventions.get(conv).fps
        op = mouth_opening(conv, pred)
        a, b = int(0.3 * pad_s * fps), int(0.7 * pad_s * fps)
        mid = np.concatenate([op[a:b], op[len(op) - b : len(op) - a]])
        out[conv] = float(np.median(mid)) if len(mid) else float("nan")
    return out


def predict_heads(
    model: Any, audio16: np.ndarray, heads: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Run ``model`` on 16 kHz audio with the pivot identity and the mean template of
    each head: ``{convention: [T, dim]}`` at each convention's fps."""
    import torch

    from unitalker.evaluation.evaluate import predict_clip

    model.eval()
    ident = model.pivot_index if model.config.pivot else 0
    out = {}
    for conv in list(heads or model.heads):
        tpl = torch.as_tensor(_mean_template(conv), device=model.device)
        out[conv] = predict_clip(model, audio16, conv, ident, tpl).cpu().numpy()
    return out


def _mean_template(conv: str) -> np.ndarray:
    from unitalker import conventions
    from unitalker.synth.conventions import identity_template

    c = conventions.get(conv)
    if conv in ("synth_head_vertices", "synth_head2_vertices"):
        return identity_template(conv, None).reshape(-1) * np.float32(c.scale)
    return np.zeros(c.dim, np.float32)


def speech_check(
    model: Any,
    clips: Sequence[tuple[str | Path, str | None]] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    close_lips: bool = False,
) -> list[SpeechResult]:
    """Score ``model`` on recorded clips ``[(wav, words or None), ...]`` (default: the
    ``alsa-utils`` clips). With words, the clip is force-aligned (PocketSphinx) and the
    articulation model's labels (default speaker style, mean identity) give LVE / MVE
    against the static template; without, only the label-free checks run.

    ``close_lips``: on clips with words, score the output with its lips closed on the
    aligned bilabials, as ``unitalker animate --text`` writes it
    (:func:`unitalker.inference.transcript.close_bilabials`; the same alignment as the
    labels', so its closures are the labels' by construction). The added-pause check runs
    without words either way."""
    from unitalker.audio import SAMPLE_RATE, load_audio
    from unitalker.evaluation.closures import bilabial_intervals, closure_minima
    from unitalker.evaluation.metrics import score_sequence
    from unitalker.geometry import vertices as to_vertices
    from unitalker.synth.align import align
    from unitalker.synth.articulation import timeline_to_articulation
    from unitalker.synth.conventions import render

    clips = list(clips) if clips is not None else alsa_clips()
    if not clips:
        raise FileNotFoundError(
            f"no recorded clips given and none in {ALSA_SOUNDS} (apt-get install alsa-utils)"
        )
    from unitalker import conventions

    results = []
    for k, (path, words) in enumerate(clips):
        audio = load_audio(path)  # 16 kHz mono
        res = SpeechResult(Path(path).name, words or "", len(audio) / SAMPLE_RATE)
        preds = predict_heads(model, audio)
        res.padded_pause = pause_check(model, audio)
        tl = align(audio, SAMPLE_RATE, words) if words else None
        if close_lips and tl is not None:
            from unitalker.animation import Animation
            from unitalker.inference.transcript import close_bilabials

            fixed = close_bilabials(
                {c: Animation(c, conventions.get(c).fps, p) for c, p in preds.items()},
                tl,
                {c: _mean_template(c) for c in preds},
            )
            preds = {c: a.data for c, a in fixed.items()}
        for conv, pred in preds.items():
            fps = conventions.get(conv).fps
            pauses = None
            if tl is not None:
                t = np.arange(len(pred)) / fps
                pauses = np.zeros(len(pred), bool)
                for p, s0, e0 in tl:
                    if p == "_":
                        pauses |= (t >= s0) & (t < e0)
            res.label_free[conv] = label_free(conv, pred, audio, SAMPLE_RATE, fps, pauses)
            if tl is None:
                continue
            curves = timeline_to_articulation(tl, fps, seed=0, n_frames=len(pred))
            gt = render(conv, curves, None)
            res.labels_free[conv] = label_free(conv, gt, audio, SAMPLE_RATE, fps, pauses)
            bilabials = bilabial_intervals(tl)
            if bilabials:
                pm = closure_minima(mouth_opening(conv, pred), fps, bilabials)
                lm = closure_minima(mouth_opening(conv, gt), fps, bilabials)
                ok = np.isfinite(pm) & np.isfinite(lm)
                res.closures[conv] = {"model": pm[ok].tolist(), "labels": lm[ok].tolist()}
            tpl = _mean_template(conv)
            pv, gv = to_vertices(conv, pred), to_vertices(conv, gt)
            tv = to_vertices(conv, tpl[None])[0]
            lip, up = _region(conv, "lip"), _region(conv, "upper_face")
            s = score_sequence(res.clip, pv, gv, tv, lip, up)
            st = score_sequence(res.clip, np.repeat(tv[None], len(gv), 0), gv, tv, lip, up)
            res.scores[conv] = {
                "LVE": float(s.lve.mean()),
                "MVE": float(s.mve.mean()),
                "LVE_static": float(st.lve.mean()),
                "MVE_static": float(st.mve.mean()),
                "frames": len(gv),
            }
        results.append(res)
        if progress:
            progress(k + 1, len(clips))
    return results


def speech_summary(results: Sequence[SpeechResult]) -> dict[str, dict[str, float]]:
    """Per head over all clips: frame-pooled LVE / MVE (and static), mean r, silence (and,
    on aligned clips, the same two for the labels: ``r_loudness_labels``,
    ``silence_open_labels_max``), and (where the words hold /p/ /b/ /m/) the share of
    bilabials closed by model and labels."""
    from unitalker.evaluation.closures import CLOSURE_TOL

    out: dict[str, dict[str, float]] = {}
    convs = sorted({c for r in results for c in r.label_free})
    for c in convs:
        sc = [r.scores[c] for r in results if c in r.scores]
        lf = [r.label_free[c] for r in results if c in r.label_free]
        row: dict[str, float] = {}
        if sc:
            fr = np.array([s["frames"] for s in sc], float)
            for m in ("LVE", "MVE", "LVE_static", "MVE_static"):
                row[m] = float((np.array([s[m] for s in sc]) * fr).sum() / fr.sum())
            row["LVE_ratio"] = row["LVE"] / row["LVE_static"]
        rs = [x.r_loudness for x in lf if np.isfinite(x.r_loudness)]
        row["r_loudness"] = float(np.mean(rs)) if rs else float("nan")
        so = [x.silence_open for x in lf if np.isfinite(x.silence_open)]
        row["silence_open_max"] = float(np.max(so)) if so else float("nan")
        row["silence_ok"] = float(all(x.silence_ok for x in lf if x.silent_frames))
        ll = [r.labels_free[c] for r in results if c in r.labels_free]
        rs = [x.r_loudness for x in ll if np.isfinite(x.r_loudness)]
        if rs:
            row["r_loudness_labels"] = float(np.mean(rs))
        so = [x.silence_open for x in ll if np.isfinite(x.silence_open)]
        if so:
            row["silence_open_labels_max"] = float(np.max(so))
        po = [x.pause_open for x in lf if x.pause_open is not None and np.isfinite(x.pause_open)]
        if po:
            row["pause_open_max"] = float(np.max(po))
        pp = [r.padded_pause[c] for r in results if np.isfinite(r.padded_pause.get(c, np.nan))]
        if pp:
            row["padded_pause_max"] = float(np.max(pp))
            row["padded_pause_ok"] = float(row["padded_pause_max"] <= SILENCE_TOL)
        pm = [v for r in results for v in r.closures.get(c, {}).get("model", [])]
        if pm:
            lm = [v for r in results for v in r.closures.get(c, {}).get("labels", [])]
            row["bilabials"] = float(len(pm))
            row["bilabials_closed"] = float(np.mean(np.asarray(pm) <= CLOSURE_TOL))
            row["bilabials_closed_labels"] = float(np.mean(np.asarray(lm) <= CLOSURE_TOL))
        jr = [
            x.jaw_r_loudness
            for x in lf
            if x.jaw_r_loudness is not None and np.isfinite(x.jaw_r_loudness)
        ]
        if jr:
            row["jaw_r_loudness"] = float(np.mean(jr))
            js = [
                x.jaw_silence
                for x in lf
                if x.jaw_silence is not None and np.isfinite(x.jaw_silence)
            ]
            row["jaw_silence_max"] = float(np.max(js)) if js else float("nan")
        out[c] = row
    return out
