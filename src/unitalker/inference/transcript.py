"""Lip closures from a transcript: when the words are known, close the lips on /p/ /b/ /m/.

On speech it has not heard, the model's lips often stay apart on bilabials (on read human
speech the bundled model closes 18-24 % of them, where the articulation labels of the
same alignment close 91-100 %; docs/a2f-synth.md). A user who has the words (dialogue
lines, subtitles, a script) can give them: :func:`with_words` force-aligns the audio to the
words with PocketSphinx (English, :func:`timeline`) and :func:`close_bilabials` renders the
project's articulation model on that timeline and moves each head's *mouth* toward it, in
proportion to the articulation model's own lip-closure curve (``lip_close``: 1 inside a
bilabial, easing in and out with its coarticulation, 0 elsewhere), with the jaw held at
most :data:`JAW_AT_CLOSURE` open where the lips shut. Everything else the model produced
is kept: away from bilabials the output is unchanged to the last bit, and at them only the
jaw and mouth move.

"The mouth" is the same in every A2F-Synth convention, which are all linear in ARKit-52
weights (:func:`unitalker.synth.conventions.render`): the correction is the least-squares
combination of the jaw and mouth channels' shapes (:data:`MOUTH_CHANNELS`) that brings the
frame to the label's mouth, so blinks, brows and gaze of the output are not touched.
Heads of other conventions have no articulation rig and are refused.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from unitalker.animation import Animation
from unitalker.conventions import ARKIT52_EMOTALK

#: ARKit-52 channels that make up the mouth (the registry's jaw* and mouth* channels):
#: the correction is a combination of these.
MOUTH_CHANNELS: tuple[str, ...] = tuple(
    n for n in ARKIT52_EMOTALK if n.startswith(("jaw", "mouth"))
)


#: the most the jaw stays open where the lips close (jawOpen units)
JAW_AT_CLOSURE = 0.25
#: seconds of speech either side of a bilabial that shape its closure (the labels are
#: rendered from these phones only)
CONTEXT_S = 1.0
#: a bilabial longer than this (s) in an alignment without pauses has absorbed one ...
MAX_BILABIAL_S = 0.25
#: ... and is cut to this much (s) next to its speech
HELD_BILABIAL_S = 0.1


class TranscriptError(ValueError):
    """The words could not be used: a head without an articulation rig, or no alignment."""


def supported(convention: str) -> bool:
    """Whether ``convention`` has the articulation rig :func:`close_bilabials` needs."""
    from unitalker.synth.conventions import ARKIT, FLAME, HEAD, HEAD2

    return convention in (ARKIT, FLAME, HEAD, HEAD2)


@functools.lru_cache(maxsize=8)
def _mouth_basis(convention: str) -> np.ndarray:
    """``[M, dim]``: each mouth channel's shape in ``convention`` (a unit weight rendered,
    minus the neutral render)."""
    eye = np.zeros((len(MOUTH_CHANNELS) + 1, len(ARKIT52_EMOTALK)), np.float32)
    for k, name in enumerate(MOUTH_CHANNELS):
        eye[k, ARKIT52_EMOTALK.index(name)] = 1.0  # the last row stays neutral
    out = _render_arkit(convention, eye).astype(np.float64)
    return np.ascontiguousarray(out[:-1] - out[-1:])


def _render_arkit(convention: str, weights: np.ndarray) -> np.ndarray:
    """ARKit-52 weights ``[T, 52]`` in ``convention`` on the mean identity ``[T, dim]``."""
    from unitalker.synth.conventions import (
        ARKIT,
        FLAME,
        TOPOLOGY_OF,
        arkit_to_flame,
        asset,
        identity_template,
    )

    if convention == ARKIT:
        return weights
    if convention == FLAME:
        return arkit_to_flame(weights)
    basis = asset(TOPOLOGY_OF[convention])["rig_basis"]
    tpl = identity_template(convention, None).reshape(-1)
    return weights @ basis.reshape(basis.shape[0], -1) + tpl[None]


def timeline(audio16: np.ndarray, text: str) -> list[tuple[str, float, float]]:
    """``[(phone, start_s, end_s), ...]`` of the words ``text`` in 16 kHz ``audio16``.

    Where PocketSphinx finds no alignment with pauses between the words, one without them
    is tried (:func:`unitalker.synth.align.align`, ``without_fillers``); its pauses are
    absorbed by the phones beside them, so a bilabial longer than
    :data:`MAX_BILABIAL_S` is cut to the :data:`HELD_BILABIAL_S` next to the speech it
    releases into (after a pause) or follows (before one), and one with speech on both
    sides means the alignment is not to be trusted.

    Raises:
        TranscriptError: no words, a word PocketSphinx does not know, or no alignment.
    """
    from unitalker.audio import SAMPLE_RATE
    from unitalker.synth.align import AlignmentError, align

    audio = np.asarray(audio16, np.float32)
    try:
        return align(audio, SAMPLE_RATE, text)
    except AlignmentError as e:
        first = e
    try:
        phones = align(audio, SAMPLE_RATE, text, without_fillers=True)
    except AlignmentError:
        raise TranscriptError(f"cannot align the words to the audio: {first}") from first
    return _cut_long_bilabials(phones, text)


def _cut_long_bilabials(
    phones: list[tuple[str, float, float]], text: str
) -> list[tuple[str, float, float]]:
    from unitalker.synth.articulation import phoneme_to_viseme

    out = list(phones)
    for k in reversed(range(len(phones))):  # from the end: a split keeps earlier indices
        p, s, e = phones[k]
        if e - s <= MAX_BILABIAL_S or phoneme_to_viseme(str(p)) != "PP":
            continue
        before = k > 0 and phones[k - 1][0] != "_" and s > 1e-3
        after = k + 1 < len(phones) and phones[k + 1][0] != "_"
        if before and after:
            raise TranscriptError(
                f"cannot align the words to the audio: PocketSphinx finds no alignment "
                f"for {text!r} with pauses, and without them a /{p}/ of {e - s:.2f} s "
                f"at {s:.2f} s (not to be trusted)"
            )
        if after:  # a pause, then the closure that releases into the next phone
            out[k : k + 1] = [("_", s, e - HELD_BILABIAL_S), (p, e - HELD_BILABIAL_S, e)]
        else:  # the closure, then a pause (or the end)
            out[k : k + 1] = [(p, s, s + HELD_BILABIAL_S), ("_", s + HELD_BILABIAL_S, e)]
    return _merged(out) if len(out) != len(phones) else out


def _merged(phones: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    out: list[tuple[str, float, float]] = []
    for p, s, e in phones:
        if out and p == "_" and out[-1][0] == "_":
            out[-1] = ("_", out[-1][1], e)
        else:
            out.append((p, s, e))
    return out


def close_bilabials(
    results: Mapping[str, Animation],
    phones: Sequence[tuple[str, float, float]],
    templates: Mapping[str, np.ndarray],
    *,
    strength: float = 1.0,
) -> dict[str, Animation]:
    """Each head's output with its mouth moved toward the articulation labels of
    ``phones`` wherever those close the lips: fully inside each aligned /p/ /b/ /m/, and
    by the labels' ``lip_close`` curve as it eases in and out around them.

    Args:
        results: ``{head: Animation}`` (``data`` ``[T, dim]``), as :func:`animate` returns.
        phones: the words' phone timeline (:func:`timeline`).
        templates: ``{head: [dim]}``, the neutral face each head's output moves from (the
            model's template of the head; zeros for ARKit and FLAME-like parameters).
        strength: 0 = unchanged, 1 (default) = the label's mouth where it is fully closed.

    Returns:
        ``{head: Animation}``, new arrays (the inputs are not modified); each has
        ``meta["transcript"]``: ``{"bilabials": N, "frames": F}`` (frames changed).

    Raises:
        TranscriptError: a head of a convention without an articulation rig.
    """
    from unitalker.evaluation.closures import bilabial_intervals
    from unitalker.synth.conventions import articulation_to_arkit

    _refuse_unsupported([a.convention for a in results.values()])
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    intervals = bilabial_intervals(phones)
    out = {}
    cache: dict[tuple[float, int], dict[str, np.ndarray]] = {}
    for head, anim in results.items():
        key = (anim.fps, anim.n_frames)
        if key not in cache:  # the heads at one frame rate share the labels
            cache[key] = _curves_near(phones, intervals, anim.fps, anim.n_frames)
        curves = cache[key]
        weight = np.clip(curves["lip_close"], 0.0, 1.0)
        t = np.arange(anim.n_frames) / anim.fps
        for s0, e0 in intervals:
            weight[(t >= s0) & (t <= e0)] = 1.0
        weight *= float(strength)
        frames = np.flatnonzero(weight > 1e-3)
        data = _writable_copy(anim.data)
        if len(frames):
            sub = {k: v[frames] for k, v in curves.items()}
            # lips shut with the jaw nearly shut: the articulation model keeps the jaw of
            # the neighbouring vowels at a bilabial's edges (up to 0.7 open), a pose whose
            # lips close against an open jaw (mouthClose), which the preview's jaw-borne
            # teeth poke through
            close = np.clip(sub["lip_close"], 0.0, 1.0)
            sub["jaw_open"] = sub["jaw_open"] + close * (
                np.minimum(sub["jaw_open"], JAW_AT_CLOSURE) - sub["jaw_open"]
            )
            label = articulation_to_arkit(sub)
            basis = _mouth_basis(anim.convention)  # [M, dim]
            neutral = _render_arkit(anim.convention, np.zeros((1, label.shape[1]), np.float32))
            lab = _render_arkit(anim.convention, label).astype(np.float64) - neutral
            pred = data[frames].astype(np.float64) - np.asarray(templates[head], np.float64)
            # the mouth-channel weights that take the frame's mouth to the label's (least
            # squares over the head's coordinates)
            a = np.linalg.lstsq(basis.T, (lab - pred).T, rcond=None)[0].T  # [F, M]
            data[frames] += (weight[frames, None] * (a @ basis)).astype(np.float32)
        meta = dict(anim.meta, transcript={"bilabials": len(intervals), "frames": len(frames)})
        out[head] = replace(anim, data=data, meta=meta)
    return out


def _curves_near(
    phones: Sequence[tuple[str, float, float]],
    intervals: Sequence[tuple[float, float]],
    fps: float,
    n_frames: int,
) -> dict[str, np.ndarray]:
    """The articulation curves ``{name: [n_frames]}`` of ``phones`` within
    :data:`CONTEXT_S` of a bilabial, zero (rest, lips apart) elsewhere.

    The articulation model blends every phone into every frame (its cost and memory grow
    with frames x phones: minutes of speech would take gigabytes), but a phone's pull
    fades within a few hundred milliseconds; so each run of bilabials is rendered from the
    phones around it only, in its own window of frames."""
    from unitalker.synth.articulation import CURVES, timeline_to_articulation

    out = {name: np.zeros(n_frames, np.float32) for name in CURVES}
    runs: list[list[float]] = []
    for s0, e0 in intervals:
        if runs and s0 - runs[-1][1] < 2 * CONTEXT_S:
            runs[-1][1] = max(runs[-1][1], e0)
        else:
            runs.append([s0, e0])
    for s0, e0 in runs:
        i0 = max(0, int(np.floor((s0 - CONTEXT_S) * fps)))
        i1 = min(n_frames, int(np.ceil((e0 + CONTEXT_S) * fps)) + 1)
        if i1 <= i0:
            continue
        t0, t1 = i0 / fps, i1 / fps
        sub = [(p, max(a, t0) - t0, min(b, t1) - t0) for p, a, b in phones if b > t0 and a < t1]
        curves = timeline_to_articulation(sub, fps, seed=0, n_frames=i1 - i0)
        for name in CURVES:
            out[name][i0:i1] = curves[name]
    return out


def _writable_copy(data: np.ndarray) -> np.ndarray:
    """A float32 copy of ``data`` to change; a memory-mapped result (long audio) is copied
    into an anonymous temporary file, so that memory stays flat as in :func:`animate`."""
    if not isinstance(data, np.memmap):
        return np.array(data, dtype=np.float32)
    import tempfile

    with tempfile.TemporaryFile(prefix="unitalker-words-") as f:  # gone when unmapped
        out = np.memmap(f, dtype=np.float32, mode="w+", shape=data.shape)
    for i in range(0, len(data), 4096):
        out[i : i + 4096] = data[i : i + 4096]
    return out


def _refuse_unsupported(conventions_: Sequence[str]) -> None:
    bad = [c for c in conventions_ if not supported(c)]
    if bad:
        raise TranscriptError(
            f"words close the lips of A2F-Synth heads only; {', '.join(bad)} cannot take them "
            "(no articulation rig)"
        )


def check_heads(model: object, heads: Sequence[str]) -> None:
    """Refuse, before any work, heads of ``model`` that cannot take words.

    Raises:
        TranscriptError: a head without an articulation rig, or a vertex head whose
            template the model hides (:func:`templates_for`).
    """
    _refuse_unsupported(heads)
    templates_for(model, heads)


def templates_for(model: object, heads: Sequence[str]) -> dict[str, np.ndarray]:
    """``{head: [dim]}``: the template each head's output of ``model`` is built on (what
    :func:`close_bilabials` measures the mouth from).

    Raises:
        TranscriptError: a vertex head of a model that does not expose its templates (an
            exported ONNX graph holds them as constants).
    """
    from unitalker import conventions

    out = {}
    for h in heads:
        get = getattr(model, "template", None)
        if get is not None:
            tpl = get(h)
            if hasattr(tpl, "detach"):  # a torch tensor
                tpl = tpl.detach().float().cpu().numpy()
            out[h] = np.asarray(tpl, np.float64).reshape(-1)
        elif conventions.get(h).kind != "vertices":
            out[h] = np.zeros(conventions.get(h).dim)  # parameters: the template is zero
        else:
            raise TranscriptError(
                f"head {h}: this model does not expose its template (an ONNX export); use "
                "the torch backend for words with vertex heads"
            )
    return out


def with_words(
    model: object,
    results: Mapping[str, Animation],
    audio: str | Path | np.ndarray,
    text: str,
    *,
    sr: int | None = None,
    strength: float = 1.0,
) -> dict[str, Animation]:
    """``model.animate``'s ``results`` for ``audio`` with the lips closed on the bilabials
    of ``text`` (what ``unitalker animate --text`` writes): align, then
    :func:`close_bilabials` from the model's templates.

    Args:
        model: the model that made ``results`` (its head templates are read).
        results: ``{head: Animation}``.
        audio: the same audio: a file, or samples at ``sr`` (default 16 kHz).
        text: the words said (English).
        sr: sample rate of in-memory samples.
        strength: see :func:`close_bilabials`.

    Raises:
        TranscriptError: words that do not align, or a head that cannot take them.
    """
    from unitalker.audio import SAMPLE_RATE, load_audio, prepare_waveform

    if isinstance(audio, (str, Path)):
        wav = load_audio(audio)
    else:
        wav = prepare_waveform(np.asarray(audio), sr or SAMPLE_RATE)
    phones = timeline(wav, text)
    return close_bilabials(results, phones, templates_for(model, list(results)), strength=strength)
