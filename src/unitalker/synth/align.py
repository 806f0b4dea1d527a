"""Forced alignment of English speech to phones with PocketSphinx (offline).

The ``pocketsphinx`` wheel ships an en-us acoustic model, a phone language model and
CMUdict, so any English audio whose words are known (a TTS engine without timing
events, recorded speech) gets a phone timeline::

    timeline = align(audio, sr, "front center")   # [(ipa, start_s, end_s), ...]

PocketSphinx works at 16 kHz in 10 ms frames, so boundaries are quantised to 10 ms.
Phones are returned as IPA (ARPAbet mapped by :data:`ARPABET_IPA`), silences as
``"_"``; the timeline is contiguous and covers the whole clip, like eSpeak's, and
drives :func:`unitalker.synth.articulation.timeline_to_articulation` directly.
"""

from __future__ import annotations

import logging
import re
import threading

import numpy as np

log = logging.getLogger(__name__)

Timeline = list[tuple[str, float, float]]

# CMUdict / PocketSphinx en-us ARPAbet -> IPA (stress is not in the phone set).
ARPABET_IPA: dict[str, str] = {
    "AA": "ɑ",
    "AE": "æ",
    "AH": "ʌ",
    "AO": "ɔ",
    "AW": "aʊ",
    "AY": "aɪ",
    "EH": "ɛ",
    "ER": "ɚ",
    "EY": "eɪ",
    "IH": "ɪ",
    "IY": "i",
    "OW": "oʊ",
    "OY": "ɔɪ",
    "UH": "ʊ",
    "UW": "u",
    "B": "b",
    "CH": "tʃ",
    "D": "d",
    "DH": "ð",
    "F": "f",
    "G": "ɡ",
    "HH": "h",
    "JH": "dʒ",
    "K": "k",
    "L": "l",
    "M": "m",
    "N": "n",
    "NG": "ŋ",
    "P": "p",
    "R": "ɹ",
    "S": "s",
    "SH": "ʃ",
    "T": "t",
    "TH": "θ",
    "V": "v",
    "W": "w",
    "Y": "j",
    "Z": "z",
    "ZH": "ʒ",
    "SIL": "_",
}

_FRAME_S = 0.01
_SR = 16000
_LOCK = threading.Lock()
_DECODERS: dict[tuple[bool, bool], object] = {}


class AlignmentError(ValueError):
    """The audio / text pair could not be aligned (unknown words, no speech found)."""


def words_of(text: str) -> list[str]:
    """Lower-case words of ``text`` as CMUdict spells them (letters and apostrophes)."""
    return re.findall(r"[a-z']+", text.lower().replace("-", " "))


def _decoder(wide: bool, fillers: bool = True):
    if (wide, fillers) not in _DECODERS:
        from pocketsphinx import Decoder

        # wide beams (the retry): synthetic voices can be far from the acoustic model's
        # training speech; about 3x slower than the defaults
        beams = {"beam": 1e-100, "wbeam": 1e-80, "pbeam": 1e-80} if wide else {}
        if not fillers:  # no optional silences / noises between words
            beams["fsgusefiller"] = False
        _DECODERS[wide, fillers] = Decoder(samprate=_SR, bestpath=False, loglevel="FATAL", **beams)
    return _DECODERS[wide, fillers]


def _run(d, words: list[str], pcm: bytes):  # noqa: ANN001, ANN202 - pocketsphinx objects
    d.set_align_text(" ".join(words))
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    if d.hyp() is None:
        return None
    d.set_alignment()
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    return d.get_alignment()


def align(
    audio: np.ndarray, sr: int, text: str, *, pad_s: float = 0.3, without_fillers: bool = False
) -> Timeline:
    """Force-align ``audio`` (mono float) to the words of ``text``.

    Args:
        audio: mono float samples in [-1, 1] at ``sr``.
        sr: sample rate.
        text: the words spoken (English; punctuation is ignored).
        pad_s: silence added on both sides before aligning (PocketSphinx places the
            first word at frame 0 otherwise); removed from the result.
        without_fillers: when both tries fail, a third without the optional silences
            and noises between words (PocketSphinx then finds a path for some clips it
            otherwise cannot align; pauses are absorbed by the phones beside them, whose
            inner boundaries stay where the sound puts them). Off by default, so that the
            timelines the datasets were made with do not change.

    Returns:
        ``[(ipa_phone, start_s, end_s), ...]``, contiguous, covering ``len(audio) / sr``.

    Raises:
        AlignmentError: a word is not in CMUdict, or the decoder finds no alignment.
    """
    from unitalker.audio import resample

    words = words_of(text)
    if not words:
        raise AlignmentError(f"no words to align in {text!r}")
    dur = len(audio) / sr
    y = resample(np.asarray(audio, np.float32), sr, _SR) if sr != _SR else np.asarray(audio)
    pad = np.zeros(int(pad_s * _SR), np.float32)
    y = np.concatenate([pad, y, pad])
    pcm = (np.clip(y, -1, 1) * 32767).astype(np.int16).tobytes()
    with _LOCK:
        d = _decoder(False)
        missing = [w for w in words if d.lookup_word(w) is None]
        if missing:
            raise AlignmentError(
                f"words not in the PocketSphinx dictionary: {sorted(set(missing))}"
            )
        al = None
        tries = [(False, True), (True, True)] + ([(True, False)] if without_fillers else [])
        for wide, fillers in tries:
            try:
                al = _run(_decoder(wide, fillers), words, pcm)
            except (RuntimeError, ValueError) as e:
                log.debug("alignment failed (wide beams: %s, fillers: %s): %s", wide, fillers, e)
                al = None
            if al is not None:
                break
        if al is None:
            raise AlignmentError(f"PocketSphinx found no alignment for {text!r}")
        phones = [(p.name, p.start, p.duration) for w in al for p in w]
    if not phones:
        raise AlignmentError(f"PocketSphinx found no alignment for {text!r}")
    out: Timeline = []
    t_last = 0.0
    for name, start, n in phones:
        s = max(0.0, start * _FRAME_S - pad_s)
        e = min(dur, (start + n) * _FRAME_S - pad_s)
        if e <= s:
            continue
        s = max(s, t_last)
        ipa = ARPABET_IPA.get(re.sub(r"\d", "", name.upper()), "_")
        if s > t_last:
            out.append(("_", t_last, s))
        out.append((ipa, s, e))
        t_last = e
    if t_last < dur:
        out.append(("_", t_last, dur))
    # merge consecutive silences
    merged: Timeline = []
    for seg in out:
        if merged and seg[0] == "_" and merged[-1][0] == "_":
            merged[-1] = ("_", merged[-1][1], seg[2])
        else:
            merged.append(seg)
    log.debug("aligned %d phones over %.2f s", len(merged), dur)
    return merged
