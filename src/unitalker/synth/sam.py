"""SAM (Software Automatic Mouth, 1982) through Node.js and the npm package ``sam-js``.

A formant synthesizer with its own English letter-to-sound rules, 8-bit output at
22.05 kHz, nothing in common with eSpeak NG or Kokoro but the language. SAM reports no
timing, so every utterance is force-aligned to phones with PocketSphinx
(:mod:`unitalker.synth.align`); boundaries are therefore approximate (10 ms frames,
aligner errors on a voice this far from natural speech), unlike the exact timelines
of the other engines.

Install: ``npm install --prefix ~/.cache/unitalker/node sam-js@0.3.1`` (or point
``UNITALKER_NODE_MODULES`` at a ``node_modules`` folder holding ``sam-js``).

Voices: SAM's documented presets (:data:`VOICES`, pitch / speed / mouth / throat),
optionally jittered by the caller.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from unitalker.synth.tts import SynthResult

SAM_SR = 22050

# the presets of SAM's manual: (pitch, speed, mouth, throat)
VOICES: dict[str, tuple[int, int, int, int]] = {
    "sam": (64, 72, 128, 128),
    "elf": (64, 72, 110, 160),
    "little_robot": (60, 92, 190, 190),
    "stuffy_guy": (72, 82, 105, 110),
    "little_old_lady": (32, 82, 145, 145),
    "extra_terrestrial": (64, 100, 200, 150),
}

_JS = """
const SamJs = require(process.argv[1]);
const o = JSON.parse(process.argv[2]);
const b = new SamJs(o).buf8(o.text);
if (b === false) { process.stderr.write('SAM could not speak the text'); process.exit(2); }
process.stdout.write(Buffer.from(b));
"""


class SamUnavailable(RuntimeError):
    """Node.js or the ``sam-js`` npm package is missing."""


def module_dir() -> Path | None:
    """The ``sam-js`` package folder, or None."""
    roots = [
        os.environ.get("UNITALKER_NODE_MODULES", ""),
        str(Path.home() / ".cache" / "unitalker" / "node" / "node_modules"),
    ]
    for r in roots:
        if r and (Path(r) / "sam-js" / "package.json").is_file():
            return Path(r) / "sam-js"
    return None


def available() -> bool:
    """Whether ``node`` and ``sam-js`` are installed."""
    return shutil.which("node") is not None and module_dir() is not None


def render(
    text: str, pitch: int = 64, speed: int = 72, mouth: int = 128, throat: int = 128
) -> np.ndarray:
    """SAM's audio for ``text``: float32 ``[S]`` at 22.05 kHz (no timing)."""
    node = shutil.which("node")
    mod = module_dir()
    if node is None or mod is None:
        raise SamUnavailable(
            "the SAM engine needs Node.js and `npm install --prefix ~/.cache/unitalker/node sam-js@0.3.1`"
        )
    opts = {
        "text": text,
        "pitch": int(pitch),
        "speed": int(speed),
        "mouth": int(mouth),
        "throat": int(throat),
    }
    proc = subprocess.run(
        [node, "-e", _JS, str(mod), json.dumps(opts)], capture_output=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"sam-js failed on {text!r}: {proc.stderr.decode(errors='replace')[:300]}"
        )
    u8 = np.frombuffer(proc.stdout, np.uint8)
    return ((u8.astype(np.float32) - 128.0) / 128.0).astype(np.float32)


def synthesize(text: str, voice: str = "sam", **overrides: int) -> SynthResult:
    """Speak ``text`` with a SAM preset (``overrides`` replace pitch / speed / mouth /
    throat) and force-align it; see the module notes on timing."""
    from unitalker.synth.align import align

    if voice not in VOICES:
        raise ValueError(f"SAM has no voice {voice!r}; voices: {sorted(VOICES)}")
    p = dict(zip(("pitch", "speed", "mouth", "throat"), VOICES[voice], strict=True))
    p.update(overrides)
    # SAM reads digits and some punctuation oddly: speak letters, spaces and . , ? !
    clean = "".join(c for c in text if c.isalpha() or c in " .,?!'").strip()
    audio = render(clean.upper(), **p)
    # a little silence around the utterance (SAM starts and stops abruptly)
    pad = np.zeros(int(0.15 * SAM_SR), np.float32)
    audio = np.concatenate([pad, audio, pad])
    tl = align(audio, SAM_SR, clean)
    return SynthResult(audio, SAM_SR, tl, text=text, voice=voice)
