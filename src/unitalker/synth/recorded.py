"""Recorded human speech for training: transcribed clips that Debian packages ship.

The synthetic engines of A2F-Synth voices are all machines, and the default model closes
their bilabials far more often than a human speaker's (docs/a2f-synth.md). Debian's
``main`` archive holds human voices whose words are known from the packages themselves:

* ``ktuberling``: KTuberling's English sound theme (``ktuberling-data``, GPL-2+): 72
  words (body parts, pizza toppings, things on the moon), one speaker; the words are the
  theme's sound names (``en.soundtheme``);
* ``klettres``: KLettres' English syllables and short words (``klettres-data``, GPL-2+),
  an American and a British speaker; the words are the file names;
* ``warzone2100``: Warzone 2100's announcer (``warzone2100-data``, GPL-2+): about 180
  game messages ("Research completed", "Power generator under attack"); the words are
  the comments of the game's ``audio/audio.cfg`` beside each file;
* ``hedgewars``: Hedgewars' English voice packs (``hedgewars-data``, sounds GFDL-1.3):
  ten acted characters (Default, British, Pirate, Singer, Robot, ...) saying about 45
  phrases each ("Take cover", "Leave me alone"); the words come from the file names
  (:data:`HEDGEWARS_WORDS`).

:func:`build_pool` lists every clip of the installed sources, force-aligns it with
PocketSphinx, keeps it where the aligned words cover the loud part of the audio
(:func:`speech_coverage`: an acted shout, a laugh or words other than the transcript's
leave loud frames outside the words, which would teach a closed mouth during sound) and
writes the pool (16 kHz wavs and their phone timelines) to a folder;
the voices generator (:mod:`unitalker.synth.voices`, preset ``xlh``) joins two to four
clips of one speaker with pauses into a training clip, labelled by the articulation model
of a subject like any engine's. These recordings train only: the real-speech checks of
``unitalker evaluate-speech`` use other packages (``alsa-utils``, ``pocketsphinx-testdata``).
"""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SR = 16000
# a clip is kept where at least this share of its loud frames (within LOUD_DB of its
# loudest 10 ms) lie inside the aligned words
MIN_COVERAGE = 0.8
LOUD_DB = 25.0

# KTuberling sound names that CMUdict does not spell as one word
KTUBERLING_WORDS = {
    "palmtree": "palm tree",
    "sphynx": "sphinx",
    "moonwalker": "moon walker",
    "fallingstar": "falling star",
    "brocolli": "broccoli",
}
# Hedgewars voice-pack file names -> the phrase (names of shouts, grunts and laughs are
# not listed: those clips are not used)
HEDGEWARS_WORDS = {
    "Amazing": "amazing",
    "Boring": "boring",
    "Brilliant": "brilliant",
    "Bugger": "bugger",
    "Byebye": "bye bye",
    "Comeonthen": "come on then",
    "Coward": "coward",
    "Cutitout": "cut it out",
    "Drat": "drat",
    "Enemydown": "enemy down",
    "Excellent": "excellent",
    "Fire": "fire",
    "Firstblood": "first blood",
    "Flawless": "flawless",
    "Flyaway": "fly away",
    "Gonnagetyou": "gonna get you",
    "Grenade": "grenade",
    "Hello": "hello",
    "Hurry": "hurry",
    "Illgetyou": "i'll get you",
    "Incoming": "incoming",
    "Justyouwait": "just you wait",
    "Kamikaze": "kamikaze",
    "Leavemealone": "leave me alone",
    "Melon": "melon",
    "Missed": "missed",
    "Nooo": "no",
    "Nutter": "nutter",
    "Ohdear": "oh dear",
    "Oops": "oops",
    "Ouch": "ouch",
    "Reinforcements": "reinforcements",
    "Revenge": "revenge",
    "Runaway": "run away",
    "Sameteam": "same team",
    "Solong": "so long",
    "Stupid": "stupid",
    "Takecover": "take cover",
    "Thisoneismine": "this one is mine",
    "Traitor": "traitor",
    "Uh-oh": "uh oh",
    "Victory": "victory",
    "Watchit": "watch it",
    "Watchthis": "watch this",
    "Whatthe": "what the",
    "Yessir": "yes sir",
    "Youllregretthat": "you'll regret that",
}
# the English packs (Default_uk is the Default speaker's British take)
HEDGEWARS_PACKS = (
    "Default",
    "Default_uk",
    "British",
    "Classic",
    "HillBilly",
    "Mobster",
    "Pirate",
    "Robot",
    "Singer",
    "Surfer",
)
_SMALL = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
)
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def spell_number(n: int) -> str:
    """0-99 in words ("42" -> "forty two"); larger numbers are refused."""
    if not 0 <= n < 100:
        raise ValueError(f"spell_number() handles 0-99, not {n}")
    if n < 20:
        return _SMALL[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens - 2] + ("" if ones == 0 else " " + _SMALL[ones])


def _warzone_words(comment: str) -> str:
    text = re.sub(r"\d+", lambda m: spell_number(int(m.group())), comment)
    text = re.sub(r"\bArtefact", "Artifact", text)
    text = re.sub(r"\bWarzone\b", "War Zone", text)
    return re.sub(r"\bLZ\b", "L Z", text)


@dataclass(frozen=True)
class RecordedClip:
    """One transcribed recording of a source: ``read()`` gives the file's bytes."""

    source: str
    speaker: str
    name: str
    text: str
    read: Callable[[], bytes]


def ktuberling_clips(root: Path) -> Iterator[RecordedClip]:
    """``root`` = KTuberling's ``sounds`` folder (``/usr/share/ktuberling/sounds``)."""
    theme = root / "en.soundtheme"
    if not theme.is_file():
        return
    for m in re.finditer(r'<sound\s+name="([^"]+)"\s+file="([^"]+)"', theme.read_text("utf-8")):
        name, rel = m.groups()
        word = name.split("_", 1)[-1]  # "pizzeria_olive" -> "olive"
        path = root / rel
        if path.is_file():
            yield RecordedClip(
                "ktuberling", "ktuberling", name, KTUBERLING_WORDS.get(word, word), path.read_bytes
            )


def klettres_clips(root: Path) -> Iterator[RecordedClip]:
    """``root`` = KLettres' data folder (``/usr/share/klettres``): ``en/syllab/*.ogg``
    (American) and ``en_GB/syllab/*.ogg`` (British), the word in the file name."""
    for lang in ("en", "en_GB"):
        for path in sorted((root / lang / "syllab").glob("*.ogg")):
            yield RecordedClip(
                "klettres", f"klettres-{lang}", path.stem, path.stem, path.read_bytes
            )


def warzone2100_clips(root: Path) -> Iterator[RecordedClip]:
    """``root`` = Warzone 2100's data folder (``/usr/share/games/warzone2100``): the
    announcer's ``pcvNNN.ogg`` messages in ``base.wz`` (a zip), with the words of each
    file's comment in ``audio/audio.cfg``."""
    wz = root / "base.wz"
    if not wz.is_file():
        return
    with zipfile.ZipFile(wz) as z:
        members = {Path(n).name: n for n in z.namelist()}
        cfg = z.read("audio/audio.cfg").decode("latin-1") if "audio.cfg" in members else ""
    seen = set()
    for m in re.finditer(r'audio\s+"(pcv\d+\.ogg)"[^\n]*?/\*\s*(.*?)\s*\*/', cfg):
        fname, comment = m.groups()
        if fname in seen or fname not in members or not comment.strip():
            continue
        seen.add(fname)

        def read(member: str = members[fname]) -> bytes:
            with zipfile.ZipFile(wz) as z:
                return z.read(member)

        yield RecordedClip("warzone2100", "warzone2100", fname, _warzone_words(comment), read)


def hedgewars_clips(root: Path) -> Iterator[RecordedClip]:
    """``root`` = Hedgewars' voices folder (``/usr/share/games/hedgewars/Data/Sounds/
    voices``): the English packs, phrases of :data:`HEDGEWARS_WORDS`."""
    for pack in HEDGEWARS_PACKS:
        for path in sorted((root / pack).glob("*.ogg")):
            if path.stem in HEDGEWARS_WORDS:
                speaker = "hedgewars-" + pack.split("_")[0]  # Default_uk: the Default speaker
                yield RecordedClip(
                    "hedgewars",
                    speaker,
                    f"{pack}/{path.stem}",
                    HEDGEWARS_WORDS[path.stem],
                    path.read_bytes,
                )


@dataclass(frozen=True)
class RecordedSource:
    """A Debian package of transcribed human speech."""

    clips: Callable[[Path], Iterator[RecordedClip]]
    root: Path
    package: str
    licence: str


RECORDED_SOURCES: dict[str, RecordedSource] = {
    "ktuberling": RecordedSource(
        ktuberling_clips, Path("/usr/share/ktuberling/sounds"), "ktuberling-data", "GPL-2+"
    ),
    "klettres": RecordedSource(
        klettres_clips, Path("/usr/share/klettres"), "klettres-data", "GPL-2+"
    ),
    "warzone2100": RecordedSource(
        warzone2100_clips, Path("/usr/share/games/warzone2100"), "warzone2100-data", "GPL-2+"
    ),
    "hedgewars": RecordedSource(
        hedgewars_clips,
        Path("/usr/share/games/hedgewars/Data/Sounds/voices"),
        "hedgewars-data",
        "GFDL-1.3",
    ),
}


class RecordedUnavailable(RuntimeError):
    """A recorded-speech source's Debian package is not installed."""


def missing_sources(roots: dict[str, Path] | None = None) -> list[str]:
    """The Debian packages of :data:`RECORDED_SOURCES` whose data are not installed."""
    roots = roots or {}
    return [
        s.package
        for name, s in RECORDED_SOURCES.items()
        if next(iter(s.clips(Path(roots.get(name, s.root)))), None) is None
    ]


def speech_coverage(audio: np.ndarray, sr: int, timeline: list[tuple[str, float, float]]) -> float:
    """The share of ``audio``'s loud 10 ms frames (within :data:`LOUD_DB` of the loudest)
    that lie inside a phone of ``timeline`` (not ``_``): about 1 where the alignment
    covers the speech, low where the words leave sound outside them. Frames are the
    aligner's own 10 ms steps, not :func:`unitalker.evaluation.voices.loudness_db`'s
    windows centred on animation frames (with those, 3 of the 741 recordings here would
    be judged the other way, and the ``xlh`` data would change).
    """
    hop = sr // 100
    n = len(audio) // hop
    if n == 0:
        return 0.0
    frames = np.asarray(audio[: n * hop], np.float64).reshape(n, hop)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-18)
    loud = db > db.max() - LOUD_DB
    t = (np.arange(n) + 0.5) * hop / sr
    inside = np.zeros(n, bool)
    for phone, start, end in timeline:
        if phone != "_":
            inside |= (t >= start) & (t < end)
    return float((loud & inside).sum() / max(int(loud.sum()), 1))


def build_pool(
    out_dir: str | Path,
    roots: dict[str, Path] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Decode, check and align every clip of every source into ``out_dir``.

    Writes ``out_dir/audio/NNNN.wav`` (mono, 16 kHz) and ``out_dir/pool.json`` (one entry a
    kept clip: source, speaker, name, words, seconds, wav, phone timeline, coverage), and
    returns the pool document, whose ``skipped`` lists each clip left out and why (audio
    that does not decode, a word not in CMUdict, no alignment, or a
    :func:`speech_coverage` below :data:`MIN_COVERAGE`). ``roots`` overrides a source's folder (tests).

    Raises:
        RecordedUnavailable: a source's package is not installed.
    """
    from unitalker.audio import AudioError, load_audio, write_wav
    from unitalker.synth.align import AlignmentError, align

    roots = roots or {}
    missing = missing_sources(roots)
    if missing:
        raise RecordedUnavailable(
            "recorded human speech needs the Debian packages "
            f"{', '.join(missing)}: apt-get install {' '.join(missing)}"
        )
    clips = [
        c for name, s in RECORDED_SOURCES.items() for c in s.clips(Path(roots.get(name, s.root)))
    ]
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    kept, skipped = [], []
    for i, clip in enumerate(clips):
        where = f"{clip.source}:{clip.name}"
        try:
            audio = load_audio(io.BytesIO(clip.read()), SR, name=clip.name)
            timeline = align(audio, SR, clip.text)
            coverage = speech_coverage(audio, SR, timeline)
            if coverage < MIN_COVERAGE:
                raise AlignmentError(
                    f"the aligned words {clip.text!r} cover {coverage:.0%} of the loud frames"
                )
        except (AudioError, AlignmentError) as e:  # undecodable, unknown word, no alignment
            skipped.append({"clip": where, "reason": str(e)})
            log.info("recorded speech: %s left out: %s", where, e)
        else:
            wav = f"audio/{len(kept):04d}.wav"
            write_wav(out / wav, audio, SR)
            kept.append(
                {
                    "source": clip.source,
                    "speaker": clip.speaker,
                    "name": clip.name,
                    "text": clip.text,
                    "seconds": round(len(audio) / SR, 6),
                    "wav": wav,
                    "coverage": round(coverage, 4),
                    "phonemes": [[p, round(s, 6), round(e, 6)] for p, s, e in timeline],
                }
            )
        if progress is not None:
            progress(i + 1, len(clips))
    doc = {
        "sources": {
            n: {"package": s.package, "licence": s.licence} for n, s in RECORDED_SOURCES.items()
        },
        "clips": kept,
        "skipped": skipped,
        "seconds": round(sum(c["seconds"] for c in kept), 3),
    }
    (out / "pool.json").write_text(json.dumps(doc, ensure_ascii=False, indent=0) + "\n", "utf-8")
    return doc


@dataclass
class RecordedPool:
    """A pool written by :func:`build_pool`, grouped by speaker."""

    root: Path
    clips: list[dict]

    @classmethod
    def load(cls, root: str | Path) -> RecordedPool:
        root = Path(root)
        doc = json.loads((root / "pool.json").read_text("utf-8"))
        return cls(root, doc["clips"])

    @property
    def speakers(self) -> list[str]:
        return sorted({c["speaker"] for c in self.clips})

    def speaker_weights(self) -> np.ndarray:
        """Each speaker's chance to be drawn: proportional to the square root of its
        seconds (the announcer's 180 messages do not drown the voice packs' 20-30)."""
        sec = np.array(
            [sum(c["seconds"] for c in self.clips if c["speaker"] == s) for s in self.speakers]
        )
        w = np.sqrt(sec)
        return w / w.sum()

    def draw(self, rng: np.random.Generator) -> tuple[str, list[dict]]:
        """One speaker (by :meth:`speaker_weights`) and two to four of its clips."""
        speakers = self.speakers
        speaker = speakers[int(rng.choice(len(speakers), p=self.speaker_weights()))]
        own = [c for c in self.clips if c["speaker"] == speaker]
        n = min(int(rng.integers(2, 5)), len(own))
        return speaker, [own[int(j)] for j in rng.choice(len(own), n, replace=False)]

    def audio(self, clip: dict) -> np.ndarray:
        import soundfile as sf

        audio, sr = sf.read(str(self.root / clip["wav"]), dtype="float32", always_2d=False)
        if sr != SR:
            raise ValueError(f"{self.root / clip['wav']}: {sr} Hz, the pool is {SR} Hz")
        return audio
