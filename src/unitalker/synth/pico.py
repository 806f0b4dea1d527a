"""SVOX Pico (``pico2wave``), a fourth training engine, timed by forced alignment.

SVOX Pico is the small synthesizer of early Android releases: HMM-based statistical
parametric speech (spectra and durations generated from models of one recorded speaker
per language, then vocoded), nothing in common with eSpeak NG's formant rules, SAM's
formant tables, or the neural Kokoro and Piper but the language. Debian ships it as
``libttspico-utils`` (the ``pico2wave`` command, with the ``libttspico-data`` voices;
Apache-2.0, in Debian's ``non-free`` component because the voice data come without
their sources): ``apt-get install libttspico-utils`` once that component is enabled
(``.ci/run`` does it).

Voices: the two English ones, ``en-US`` (``lh0``) and ``en-GB`` (``kh0``), both female,
16 kHz. Variety comes from Pico's own markup, drawn per clip by the caller:
``<speed level="S">`` (percent of the voice's rate) and ``<pitch level="P">`` (percent
of its pitch).

Timing: ``pico2wave`` writes audio only, so the clip is force-aligned to its words with
PocketSphinx (:func:`unitalker.synth.align.align`, 10 ms steps; on eSpeak NG speech its
bilabial onsets lie within 40 ms, median, of eSpeak's own events). A sentence with a
word outside CMUdict raises :class:`~unitalker.synth.align.AlignmentError`, and the
voices generator draws another sentence.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from unitalker.synth.tts import SynthResult

PICO_SR = 16000
VOICES: tuple[str, ...] = ("en-US", "en-GB")
SPEED_RANGE = (20, 500)  # what Pico's <speed> accepts (percent)
PITCH_RANGE = (50, 200)  # and its <pitch>


class PicoUnavailable(RuntimeError):
    """``pico2wave`` (Debian's ``libttspico-utils``) is not installed."""


def available() -> bool:
    """Whether ``pico2wave`` is on the PATH."""
    return shutil.which("pico2wave") is not None


def render(text: str, voice: str = "en-US", *, speed: int = 100, pitch: int = 100) -> np.ndarray:
    """Speak ``text`` with ``pico2wave``: float32 audio ``[S]`` at 16 kHz."""
    import soundfile as sf

    if voice not in VOICES:
        raise ValueError(f"Pico has no English voice {voice!r}; voices: {list(VOICES)}")
    for name, v, (lo, hi) in (("speed", speed, SPEED_RANGE), ("pitch", pitch, PITCH_RANGE)):
        if not lo <= int(v) <= hi:
            raise ValueError(f"Pico {name} {v} is outside {lo}-{hi} (percent)")
    exe = shutil.which("pico2wave")
    if exe is None:
        raise PicoUnavailable(
            "the Pico engine needs pico2wave: apt-get install libttspico-utils (Debian "
            "non-free component)"
        )
    markup = (
        f'<speed level="{int(speed)}"><pitch level="{int(pitch)}">{escape(text)}</pitch></speed>'
    )
    with tempfile.TemporaryDirectory(prefix="unitalker-pico-") as tmp:
        wav = Path(tmp) / "out.wav"  # pico2wave wants a .wav name
        res = subprocess.run(
            [exe, "-l", voice, "-w", str(wav), markup], capture_output=True, timeout=120
        )
        if res.returncode != 0 or not wav.is_file():
            err = res.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"pico2wave failed on {text!r} ({voice}): {err}")
        audio, sr = sf.read(str(wav), dtype="float32", always_2d=False)
    if sr != PICO_SR:  # the voices are 16 kHz; guard against another build
        from unitalker.audio import resample

        audio = resample(audio, sr, PICO_SR)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if not len(audio) or float(np.abs(audio).max()) == 0.0:
        raise RuntimeError(f"pico2wave wrote no sound for {text!r} ({voice})")
    return np.ascontiguousarray(audio, np.float32)


def synthesize(
    text: str, voice: str = "en-US", *, speed: float = 100, pitch: float = 100
) -> SynthResult:
    """Speak ``text`` and time its phones by forced alignment (see the module notes).

    The timeline covers the whole clip, Pico's own lead and tail silences as ``_``.
    """
    from unitalker.synth.align import align

    audio = render(text, voice, speed=int(speed), pitch=int(pitch))
    timeline = align(audio, PICO_SR, text)
    return SynthResult(audio, PICO_SR, timeline, text=text, voice=voice)
