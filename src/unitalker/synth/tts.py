"""eSpeak NG through ctypes: audio plus an exact phoneme timeline, and a sung mode.

The library and its data come from the ``espeakng-loader`` wheel, so nothing is
installed system-wide. eSpeak's state is global to the process: one :class:`_Engine`
is initialised lazily per process and every call holds :data:`_LOCK`.

With ``espeakINITIALIZE_PHONEME_EVENTS`` the synth callback receives one
``espeakEVENT_PHONEME`` per phoneme with its eSpeak mnemonic (``'aI``, ``tS``, ``_:``)
and its sample position; a phoneme lasts until the next one starts. Word and sentence
events are kept too.

Determinism: eSpeak NG keeps wave-generator state between utterances (so an utterance
depends on what was spoken before) and draws from libc's ``rand()``. Each
:func:`synthesize` therefore unloads and reloads the library (a fresh copy of its
static state, ~5 ms) and seeds ``srand``: the same text and parameters give the same
samples, in any process and in any order.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

ESPEAK_SR = 22050  # Hz, eSpeak NG's fixed output rate (checked at initialisation)

INSTALL_HINT = "eSpeak NG synthesis needs the 'synth' extra: pip install 'unitalker[synth]'"


class EspeakUnavailable(ImportError):
    """``espeakng-loader`` (the ``synth`` extra) is not installed."""


def require_espeak() -> types.ModuleType:
    """The ``espeakng_loader`` module, or :class:`EspeakUnavailable` naming the extra."""
    try:
        import espeakng_loader
    except ImportError as e:
        raise EspeakUnavailable(f"{INSTALL_HINT} ({e})") from e
    return espeakng_loader


# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_EV_LIST_TERMINATED, _EV_WORD, _EV_SENTENCE, _EV_END, _EV_PHONEME = 0, 1, 2, 5, 7
_P_RATE, _P_VOLUME, _P_PITCH, _P_RANGE, _P_WORDGAP = 1, 2, 3, 4, 7

_LOCK = threading.RLock()

Timeline = list[tuple[str, float, float]]

# marks a neural TTS reads as tokens of their own (eSpeak NG IPA)
_IPA_STRESS = frozenset("ˈˌ")
_IPA_LENGTH = frozenset("ːˑ")
IPA_PAUSES = frozenset(',.!?;:—…"()“”')


def duration_session(model, duration_tensor: str, elem_type: int, threads_env: str):  # noqa: ANN001, ANN201
    """An onnxruntime CPU session of a TTS graph (an ``onnx.ModelProto``) with its internal
    per-token duration tensor ``duration_tensor`` (of ONNX type ``elem_type``) added as a
    second output; intra-op threads from ``$threads_env`` (default 1: one per worker)."""
    import onnx
    import onnxruntime as ort

    model.graph.output.append(onnx.helper.make_tensor_value_info(duration_tensor, elem_type, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get(threads_env, "1"))
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def durations_timeline(
    names: list[str],
    frames: list[int] | np.ndarray,
    frame_samples: int,
    sr: int,
    silent: frozenset[str] | set[str],
    rename: dict[str, str] | None = None,
) -> Timeline:
    """Per-token frame counts of a duration model (Kokoro, Piper) -> a phone timeline in
    seconds (a frame is ``frame_samples`` samples at ``sr``).

    A stress mark is merged into the next phone, a length mark or a word space into the
    previous one; tokens in ``silent`` (punctuation, start / end tokens) are silence
    (``_``), and neighbouring silences are one. ``rename`` maps a token to the IPA the
    articulation model reads. Tokens of no frames are dropped.
    """
    segs: list[list] = []  # [phone, start_frame, end_frame]
    stress, stress_start = "", None
    t = 0
    for name, n in zip(names, frames, strict=True):
        s, e = t, t + int(n)
        t = e
        if name in _IPA_STRESS:  # belongs to the next phone
            stress += name
            stress_start = s if stress_start is None else stress_start
        elif name in silent:
            segs.append(["_", stress_start if stress_start is not None else s, e])
            stress, stress_start = "", None
        elif name in _IPA_LENGTH or name == " ":  # lengthens / closes the previous phone
            if segs:
                segs[-1][2] = e
            else:
                segs.append(["_", s, e])
        else:
            start = stress_start if stress_start is not None else s
            segs.append([stress + (rename or {}).get(name, name), start, e])
            stress, stress_start = "", None
    out: Timeline = []
    for name, s, e in segs:
        if e <= s:
            continue
        if out and name == "_" and out[-1][0] == "_":
            out[-1] = ("_", out[-1][1], e * frame_samples / sr)
            continue
        out.append((name, s * frame_samples / sr, e * frame_samples / sr))
    return out


def shift_phones(tl: Timeline, dt: float, min_s: float = 0.01) -> Timeline:
    """Move every boundary between two phones by ``dt`` seconds (negative: earlier);
    boundaries with a silence (``_``) on either side stay, and no phone gets shorter
    than ``min_s`` (a boundary moves only as far as that allows).

    Kokoro's and Piper's token intervals come late against their sound
    (:data:`unitalker.synth.kokoro.PHONE_SHIFT_S`,
    :data:`unitalker.synth.piper.PHONE_SHIFT_S`): a phone after a pause starts about
    where its interval does, but inside a stretch of speech each phone is heard some tens
    of milliseconds before its interval. This moves the inner boundaries onto the sound.
    """
    out = [list(seg) for seg in tl]
    for i in range(1, len(out)):
        a, b = out[i - 1], out[i]
        if a[0] == "_" or b[0] == "_" or abs(a[2] - b[1]) > 1e-9:
            continue
        lo = a[1] + min_s  # the phone before keeps min_s
        hi = b[2] - min_s  # and so does this one
        if lo > hi:
            continue
        t = min(max(a[2] + dt, lo), hi)
        a[2] = b[1] = t
    return [(str(p), float(s), float(e)) for p, s, e in out]


class _Event(ctypes.Structure):
    # espeak_EVENT: type, unique_identifier, text_position, length, audio_position (ms),
    # sample, user_data, then a union {int number; const char *name; char string[8]}.
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass
class SynthResult:
    """One synthesised utterance.

    Attributes:
        audio: float32 ``[S]`` at ``sr``.
        sr: sample rate (22050).
        phonemes: ``[(mnemonic, start_s, end_s), ...]`` covering the whole clip.
        words: ``[(word, start_s), ...]``.
        sentences: sentence start times in seconds.
        text: the input text.
        voice: the eSpeak voice name.
    """

    audio: np.ndarray
    sr: int
    phonemes: Timeline
    words: list[tuple[str, float]] = field(default_factory=list)
    sentences: list[float] = field(default_factory=list)
    text: str = ""
    voice: str = ""

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sr


class _Engine:
    """The process-wide eSpeak NG instance (use :func:`engine`)."""

    def __init__(self) -> None:
        espeakng_loader = require_espeak()
        self.data_path = Path(espeakng_loader.get_data_path())
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        sr = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            200,
            str(self.data_path).encode(),
            _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT,
        )
        if sr != ESPEAK_SR:
            raise RuntimeError(
                f"eSpeak NG failed to initialise (returned {sr}) with data {self.data_path}"
            )
        self.lib = lib
        self._samples: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, bytes]] = []
        self._cb = _CALLBACK(self._on_audio)  # keep a reference: eSpeak holds the pointer
        lib.espeak_SetSynthCallback(self._cb)
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p

    def close(self) -> None:
        """Unload the library so the next engine starts from fresh static state."""
        import _ctypes

        self.lib.espeak_Terminate()
        _ctypes.dlclose(self.lib._handle)

    def _on_audio(self, wav, n, events) -> int:  # noqa: ANN001 - ctypes signature
        if n > 0:
            self._samples.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            ev = events[i]
            ident = bytes(ev.id) if ev.type == _EV_PHONEME else b""
            self._events.append((ev.type, ev.sample, ev.text_position, ident, ev.length))
            i += 1
        return 0

    def synth(
        self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, word_gap: int
    ) -> SynthResult:
        """Synthesise ``text`` (UTF-8) with one voice and parameter set."""
        with _LOCK:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r} (see voices_available())")
            for param, value in (
                (_P_RATE, rate),
                (_P_PITCH, pitch),
                (_P_RANGE, pitch_range),
                (_P_WORDGAP, word_gap),
                (_P_VOLUME, 100),
            ):
                self.lib.espeak_SetParameter(param, int(value), 0)
            self._samples, self._events = [], []
            raw = text.encode("utf-8") + b"\0"
            buf = ctypes.create_string_buffer(raw)
            err = self.lib.espeak_Synth(
                buf, len(raw), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
            )
            self.lib.espeak_Synchronize()
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed ({err}) for {text!r}")
            samples = np.concatenate(self._samples) if self._samples else np.zeros(0, np.int16)
            events = list(self._events)
        audio = samples.astype(np.float32) / 32768.0
        return _build_result(audio, events, text, voice)

    def phonemes(self, text: str, voice: str, ipa: bool = True) -> list[str]:
        """Phonemes of ``text`` per clause (``espeak_TextToPhonemes``), words space-separated."""
        with _LOCK:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r} (see voices_available())")
            buf = ctypes.create_string_buffer(text.encode("utf-8") + b"\0")
            ptr = ctypes.c_char_p(ctypes.addressof(buf))
            out = []
            while ptr.value:
                res = self.lib.espeak_TextToPhonemes(
                    ctypes.byref(ptr), _CHARS_UTF8, 0x02 if ipa else 0
                )
                if res:
                    out.append(res.decode("utf-8", "replace").strip())
            return [c for c in out if c]


def _build_result(audio: np.ndarray, events: list, text: str, voice: str) -> SynthResult:
    n = len(audio)
    dur = n / ESPEAK_SR
    raw = text.encode("utf-8")
    ph_starts: list[tuple[str, int]] = []
    words: list[tuple[str, float]] = []
    sentences: list[float] = []
    for etype, sample, text_pos, ident, length in events:
        if etype == _EV_PHONEME:
            name = ident.split(b"\0", 1)[0].decode("utf-8", "replace")
            ph_starts.append((name, min(sample, n)))
        elif etype == _EV_WORD:
            # text_position is 1-based in characters of the input (bytes for UTF-8 input).
            word = raw[max(text_pos - 1, 0) : max(text_pos - 1, 0) + length].decode(
                "utf-8", "replace"
            )
            words.append((word, min(sample, n) / ESPEAK_SR))
        elif etype == _EV_SENTENCE:
            sentences.append(min(sample, n) / ESPEAK_SR)
    timeline: Timeline = []
    if ph_starts and ph_starts[0][1] > 0:
        timeline.append(("_", 0.0, ph_starts[0][1] / ESPEAK_SR))
    for i, (name, s) in enumerate(ph_starts):
        e = ph_starts[i + 1][1] if i + 1 < len(ph_starts) else n
        if e > s:  # eSpeak emits zero-length markers (e.g. the final "_"): drop them
            timeline.append((name, s / ESPEAK_SR, e / ESPEAK_SR))
    if not timeline:
        timeline = [("_", 0.0, dur)]
    elif timeline[-1][2] < dur:
        timeline.append(("_", timeline[-1][2], dur))
    return SynthResult(audio, ESPEAK_SR, timeline, words, sentences, text, voice)


_ENGINE: _Engine | None = None


def engine(*, fresh: bool = False, seed: int = 0) -> _Engine:
    """The process's eSpeak NG engine, initialised on first use.

    Args:
        fresh: unload the current instance first, so no state of earlier utterances
            remains, and seed libc's ``rand()`` with ``seed``.
    """
    global _ENGINE
    with _LOCK:
        if fresh:
            if _ENGINE is not None:
                _ENGINE.close()
                _ENGINE = None
            ctypes.CDLL(None).srand(ctypes.c_uint(seed))
        if _ENGINE is None:
            _ENGINE = _Engine()
            log.debug("eSpeak NG initialised from %s", _ENGINE.data_path)
        return _ENGINE


def voices_available() -> list[str]:
    """Voice variant names found in the data folder (``voices/!v``), sorted."""
    folder = Path(require_espeak().get_data_path()) / "voices" / "!v"
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def synthesize(
    text: str,
    voice: str = "en",
    *,
    rate: int = 165,
    pitch: int = 50,
    pitch_range: int = 50,
    word_gap: int = 0,
    seed: int = 0,
) -> SynthResult:
    """Speak ``text`` with eSpeak NG and return audio plus the phoneme timeline.

    Args:
        text: UTF-8 text (pinyin with tone digits for ``cmn-latn-pinyin``).
        voice: a language or ``language+variant`` (``en-us+m2``, ``de+f3``).
        rate: words per minute (80-450).
        pitch: base pitch 0-100.
        pitch_range: intonation range 0-100 (0 = monotone).
        word_gap: extra pause between words in units of 10 ms.
        seed: seed of eSpeak's random jitter (libc ``srand``).

    Returns:
        :class:`SynthResult` at 22050 Hz.
    """
    with _LOCK:  # reset + synth as one step: no other thread may speak in between
        return engine(fresh=True, seed=seed).synth(text, voice, rate, pitch, pitch_range, word_gap)


def phonemize(text: str, voice: str = "en-us", *, ipa: bool = True) -> list[str]:
    """eSpeak NG's phonemes of ``text``, one string per clause (IPA unless ``ipa=False``).

    Example: ``phonemize("Hello there.")`` -> ``["həlˈoʊ ðˈɛɹ"]``.
    """
    with _LOCK:
        return engine(fresh=True).phonemes(text, voice, ipa)


# --------------------------------------------------------------------------------------
# Singing: one syllable per note, vowels held to the note length.

_VOWEL_START = set("aeiouAEIOUV0@3&Y8WyQ")


def is_vowel(mnemonic: str) -> bool:
    """Whether an eSpeak mnemonic (or IPA symbol) is a vowel or diphthong."""
    core = re.sub(r"^[',%=ˈˌ]+", "", mnemonic)
    return bool(core) and (core[0] in _VOWEL_START or core[0] in "ɑæʌɛəɪɔʊøœɜɐɒ")


def _ola_stretch(x: np.ndarray, n_out: int, sr: int) -> np.ndarray:
    """Time-stretch ``x`` to ``n_out`` samples by windowed overlap-add (pitch kept)."""
    win = int(0.030 * sr)
    if len(x) < win + 2 or n_out <= len(x):
        idx = np.linspace(0, len(x) - 1, max(n_out, 1)).round().astype(int) if len(x) else None
        return x[idx] if idx is not None else np.zeros(n_out, np.float32)
    hop_out = win // 2
    n_frames = int(np.ceil((n_out - win) / hop_out)) + 1
    starts = np.linspace(0, len(x) - win, n_frames).round().astype(int)
    w = np.hanning(win).astype(np.float32)
    out = np.zeros(hop_out * (n_frames - 1) + win, np.float32)
    norm = np.zeros_like(out)
    for k, s in enumerate(starts):
        o = k * hop_out
        out[o : o + win] += x[s : s + win] * w
        norm[o : o + win] += w
    out /= np.maximum(norm, 1e-3)
    return out[:n_out]


def sing(
    syllables: list[str],
    midi_notes: list[int],
    durations: list[float],
    voice: str = "en",
    *,
    rate: int = 140,
    base_midi: int = 57,
) -> SynthResult:
    """Sing syllables on a melody: each syllable is synthesised at its note's pitch, and
    its vowel portion is stretched so the syllable lasts its note; the phoneme timeline
    is rebuilt exactly from the stretched pieces.

    Args:
        syllables: one text syllable per note.
        midi_notes: MIDI note per syllable (mapped to eSpeak's 0-100 pitch around
            ``base_midi``).
        durations: note lengths in seconds.
        voice: eSpeak voice.
        rate: speaking rate for the consonants.
        base_midi: the note sung at eSpeak pitch 50.
    """
    if not (len(syllables) == len(midi_notes) == len(durations)):
        raise ValueError("sing(): syllables, midi_notes and durations differ in length")
    pieces: list[np.ndarray] = []
    timeline: Timeline = []
    words: list[tuple[str, float]] = []
    t0 = 0
    for syl, note, dur in zip(syllables, midi_notes, durations, strict=True):
        pitch = int(np.clip(50 + (note - base_midi) * 4, 0, 99))
        res = synthesize(syl, voice, rate=rate, pitch=pitch, pitch_range=0)
        sr = res.sr
        # trim eSpeak's leading/trailing pauses: keep from first to last non-pause phoneme
        body = [p for p in res.phonemes if not p[0].startswith("_")]
        if not body:
            continue
        a0, a1 = int(body[0][1] * sr), int(body[-1][2] * sr)
        vowel_i = [i for i, p in enumerate(body) if is_vowel(p[0])]
        target = max(int(dur * sr), a1 - a0)
        audio_parts: list[np.ndarray] = []
        words.append((syl, t0 / sr))
        for i, (ph, s, e) in enumerate(body):
            seg = res.audio[int(s * sr) : int(e * sr)]
            n = len(seg)
            if vowel_i and i == vowel_i[-1]:
                n = len(seg) + (target - (a1 - a0))
                seg = _ola_stretch(seg, n, sr)
            start = t0 + sum(len(p) for p in audio_parts)
            audio_parts.append(seg.astype(np.float32))
            timeline.append((ph, start / sr, (start + n) / sr))
        syl_audio = np.concatenate(audio_parts)
        fade = min(len(syl_audio) // 4, int(0.005 * sr))
        if fade > 1:  # short fades avoid clicks at the joins
            syl_audio[:fade] *= np.linspace(0, 1, fade, dtype=np.float32)
            syl_audio[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
        pieces.append(syl_audio)
        t0 += len(syl_audio)
    lead = np.zeros(int(0.25 * ESPEAK_SR), np.float32)
    audio = np.concatenate([lead, *pieces, lead])
    shift = len(lead) / ESPEAK_SR
    tl: Timeline = [("_", 0.0, shift)]
    tl += [(p, s + shift, e + shift) for p, s, e in timeline]
    tl.append(("_", tl[-1][2], len(audio) / ESPEAK_SR))
    words = [(w, s + shift) for w, s in words]
    return SynthResult(audio, ESPEAK_SR, tl, words, [shift], " ".join(syllables), voice)


def augment(
    audio: np.ndarray,
    rng: np.random.Generator,
    *,
    noise_db: tuple[float, float] = (-50, -30),
    gain_db: tuple[float, float] = (-6, 3),
) -> np.ndarray:
    """Light augmentation: random gain and white noise at a random level (dBFS)."""
    gain = 10 ** (rng.uniform(*gain_db) / 20)
    noise = 10 ** (rng.uniform(*noise_db) / 20)
    out = audio * gain + rng.standard_normal(len(audio)).astype(np.float32) * noise
    return np.clip(out, -1, 1).astype(np.float32)
