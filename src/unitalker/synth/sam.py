"""SAM (Software Automatic Mouth, 1982) through Node.js and the npm package ``sam-js``.

A formant synthesizer with its own English letter-to-sound rules, 8-bit output at
22.05 kHz, nothing in common with eSpeak NG or Kokoro but the language.

Timing is engine-native: SAM renders its phoneme list frame by frame (a phoneme of
length ``n`` is ``n`` frames, about 10 ms each at the default speed, longer for its
sampled consonants), and :func:`render_timed` runs sam-js with two probes added to its
unminified build (the sample position at which each frame starts, and the phoneme list
with lengths), so every phoneme's start and end are the samples where SAM begins and
ends it. The audio is checked to be byte-identical to the package's public ``buf8``.
Before 2026-12-03 the clips were force-aligned with PocketSphinx instead
(``timing="align"``, still available for comparison: approximate on a voice this far
from natural speech; docs/a2f-synth.md measures the difference).

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

Timeline = list[tuple[str, float, float]]

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

# The same, timed: sam-js's unminified build with two probes (the output position at
# which each frame starts; the parsed phoneme list) and its debug logging silenced.
# Prints JSON: the audio (base64 uint8), [name, frames] per phoneme, each frame's start.
_JS_TIMED = r"""
const fs = require('fs'), path = require('path'), Module = require('module');
const mod = process.argv[1], o = JSON.parse(process.argv[2]);
const file = path.join(mod, 'dist', 'samjs.common.js');
let src = fs.readFileSync(file, 'utf8');
const probes = [
  ['writer.get = () => {', 'writer.pos = () => bufferpos / 50 | 0;\n  writer.get = () => {'],
  ['while (frameCount) {\n    let flags = sampledConsonantFlag[pos];',
   'while (frameCount) {\n    if (__marks[pos] === undefined) __marks[pos] = Output.pos();\n' +
   '    let flags = sampledConsonantFlag[pos];'],
];
for (const [a, b] of probes) {
  if (src.split(a).length !== 2) {
    process.stderr.write('unexpected sam-js source (want version 0.3.1): no ' + JSON.stringify(a));
    process.exit(3);
  }
  src = src.replace(a, b);
}
src = 'let __marks = [];\n' + src +
  '\nmodule.exports.__t = {TextToPhonemes, Parser, Renderer, PhonemeNameTable, marks: () => __marks};';
const log = console.log;
console.log = () => {};
const m = new Module(file);
m.filename = file;
m.paths = Module._nodeModulePaths(path.dirname(file));
m._compile(src, file);
const T = m.exports.__t;
const phon = T.TextToPhonemes(o.text);
const parsed = phon === false ? false : T.Parser(phon);
if (parsed === false) { process.stderr.write('SAM could not speak the text'); process.exit(2); }
const buf = T.Renderer(parsed, o.pitch, o.mouth, o.throat, o.speed, false);
const ref = new (require(mod))(o).buf8(o.text);
if (ref.length !== buf.length || !ref.every((v, i) => v === buf[i])) {
  process.stderr.write('the timed sam-js build renders other audio than the package');
  process.exit(4);
}
process.stdout.write(JSON.stringify({
  audio: Buffer.from(buf).toString('base64'),
  phonemes: parsed.map(p => [T.PhonemeNameTable[p[0]], p[1]]),
  marks: T.marks().map(v => (v === undefined ? null : v)),
}));
"""

# SAM's phoneme names -> IPA (the symbols the articulation model reads). ``**`` is the
# continuation of the phoneme before it (the release stages of a plosive, of CH / J);
# YX / WX after a diphthong or long vowel is its off-glide, kept in that vowel (one
# phone, as eSpeak NG and the aligner write diphthongs); punctuation is a pause.
_SAM_IPA_TABLE = (
    "IY=i IH=ɪ EH=ɛ AE=æ AA=ɑ AH=ʌ AO=ɔ UH=ʊ AX=ə IX=ɪ ER=ɚ UX=u OH=o RX=ɹ LX=l WX=w "
    "YX=j WH=ʍ R*=ɹ L*=l W*=w Y*=j M*=m N*=n NX=ŋ DX=ɾ Q*=ʔ S*=s SH=ʃ F*=f TH=θ /H=h "
    "/X=h Z*=z ZH=ʒ V*=v DH=ð CH=tʃ J*=dʒ EY=eɪ AY=aɪ OY=ɔɪ AW=aʊ OW=oʊ UW=u B*=b "
    "D*=d G*=ɡ GX=ɡ P*=p T*=t K*=k KX=k UL=ə UM=ə UN=ə"
)
SAM_IPA: dict[str, str] = {
    **dict.fromkeys((" *", ".*", "?*", ",*", "-*"), "_"),
    **dict(pair.split("=") for pair in _SAM_IPA_TABLE.split()),
}
_GLIDES = {"YX": ("IY", "EY", "AY", "OY"), "WX": ("UW", "OW", "AW")}


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


def _node_run(script: str, text: str, p: dict[str, int]) -> bytes:
    node = shutil.which("node")
    mod = module_dir()
    if node is None or mod is None:
        raise SamUnavailable(
            "the SAM engine needs Node.js and `npm install --prefix ~/.cache/unitalker/node sam-js@0.3.1`"
        )
    opts = {"text": text, **{k: int(p[k]) for k in ("pitch", "speed", "mouth", "throat")}}
    proc = subprocess.run(
        [node, "-e", script, str(mod), json.dumps(opts)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"sam-js failed on {text!r}: {proc.stderr.decode(errors='replace')[:300]}"
        )
    return proc.stdout


def _to_float(u8: np.ndarray) -> np.ndarray:
    return ((u8.astype(np.float32) - 128.0) / 128.0).astype(np.float32)


def render(
    text: str, pitch: int = 64, speed: int = 72, mouth: int = 128, throat: int = 128
) -> np.ndarray:
    """SAM's audio for ``text``: float32 ``[S]`` at 22.05 kHz (no timing)."""
    p = {"pitch": pitch, "speed": speed, "mouth": mouth, "throat": throat}
    return _to_float(np.frombuffer(_node_run(_JS, text, p), np.uint8))


def render_timed(
    text: str, pitch: int = 64, speed: int = 72, mouth: int = 128, throat: int = 128
) -> tuple[np.ndarray, Timeline]:
    """SAM's audio for ``text`` (as :func:`render`, byte for byte) and its phone timeline
    ``[(ipa, start_s, end_s), ...]``, contiguous over the audio, from the samples where
    SAM starts each of its frames (see the module notes)."""
    import base64

    p = {"pitch": pitch, "speed": speed, "mouth": mouth, "throat": throat}
    out = json.loads(_node_run(_JS_TIMED, text, p))
    audio = _to_float(np.frombuffer(base64.b64decode(out["audio"]), np.uint8))
    return audio, sam_timeline(out["phonemes"], out["marks"], len(audio))


def sam_timeline(
    phonemes: list[list], marks: list[int | None], n_samples: int, sr: int = SAM_SR
) -> Timeline:
    """The phone timeline of one SAM rendering.

    Args:
        phonemes: ``[[sam_name, n_frames], ...]`` in order (SAM's parsed phoneme list).
        marks: the output sample at which each frame starts; None where SAM skipped a
            frame (a sampled consonant takes two frames at once), and frames at the end
            that it never reached are missing: both are interpolated.
        n_samples: the rendered length (the end of the last frame).

    Returns:
        ``[(ipa, start_s, end_s), ...]``, contiguous from 0 to ``n_samples / sr``.
    """
    n_frames = int(sum(int(n) for _, n in phonemes))
    pos = np.full(n_frames + 1, np.nan)
    m = np.array([np.nan if v is None else float(v) for v in marks[:n_frames]])
    pos[: len(m)] = m
    pos[0] = 0.0 if np.isnan(pos[0]) else pos[0]
    pos[n_frames] = n_samples
    ok = ~np.isnan(pos)
    idx = np.arange(n_frames + 1)
    pos = np.maximum.accumulate(np.interp(idx, idx[ok], pos[ok]))
    pos[0] = 0.0
    merged: list[list] = []  # [sam_name, ipa, first_frame, end_frame]
    f = 0
    for name, n in phonemes:
        n = int(n)
        if n <= 0:
            continue
        prev = merged[-1] if merged else None
        if prev is not None and (
            name == "**"
            or (name in _GLIDES and prev[0] in _GLIDES[name])
            or (SAM_IPA.get(name, "_") == "_" and prev[1] == "_")
        ):
            prev[3] = f + n
        else:
            merged.append([name, SAM_IPA.get(name, "_"), f, f + n])
        f += n
    tl: Timeline = []
    for _, ipa, f0, f1 in merged:
        s, e = pos[f0] / sr, pos[f1] / sr
        if e > s:
            tl.append((ipa, float(s), float(e)))
    if not tl:
        return [("_", 0.0, n_samples / sr)]
    fixed: Timeline = []
    for k, (ipa, s, e) in enumerate(tl):  # contiguous: each start is the previous end
        s = 0.0 if k == 0 else fixed[-1][2]
        fixed.append((ipa, s, n_samples / sr if k == len(tl) - 1 else e))
    return fixed


def synthesize(
    text: str, voice: str = "sam", *, timing: str = "native", **overrides: int
) -> SynthResult:
    """Speak ``text`` with a SAM preset (``overrides`` replace pitch / speed / mouth /
    throat), with 0.15 s of silence on both sides.

    ``timing``: ``native`` (SAM's own frame positions, :func:`render_timed`) or
    ``align`` (PocketSphinx forced alignment of the audio, the earlier method; the audio
    is the same either way).
    """
    if voice not in VOICES:
        raise ValueError(f"SAM has no voice {voice!r}; voices: {sorted(VOICES)}")
    if timing not in ("native", "align"):
        raise ValueError(f"timing must be 'native' or 'align', got {timing!r}")
    p = dict(zip(("pitch", "speed", "mouth", "throat"), VOICES[voice], strict=True))
    p.update(overrides)
    # SAM reads digits and some punctuation oddly: speak letters, spaces and . , ? !
    clean = "".join(c for c in text if c.isalpha() or c in " .,?!'").strip()
    pad_s = 0.15  # a little silence around the utterance (SAM starts and stops abruptly)
    pad = np.zeros(int(pad_s * SAM_SR), np.float32)
    if timing == "native":
        speech, tl = render_timed(clean.upper(), **p)
        audio = np.concatenate([pad, speech, pad])
        t0, t1 = len(pad) / SAM_SR, (len(pad) + len(speech)) / SAM_SR
        timeline = [("_", 0.0, t0)] + [(ph, t0 + s, t0 + e) for ph, s, e in tl]
        timeline.append(("_", t1, len(audio) / SAM_SR))
        timeline = _merge_silences(timeline)
    else:
        from unitalker.synth.align import align

        audio = np.concatenate([pad, render(clean.upper(), **p), pad])
        timeline = align(audio, SAM_SR, clean)
    return SynthResult(audio, SAM_SR, timeline, text=text, voice=voice)


def _merge_silences(tl: Timeline) -> Timeline:
    out: Timeline = []
    for seg in tl:
        if seg[2] <= seg[1]:
            continue
        if out and seg[0] == "_" and out[-1][0] == "_":
            out[-1] = ("_", out[-1][1], seg[2])
        else:
            out.append(seg)
    return out
