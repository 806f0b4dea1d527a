"""Per-frame viseme labels from A2F-Synth's phoneme timelines.

A2F-Synth keeps the phoneme timeline of every clip beside the data
(``<generated root>/_timelines/<dataset>/<clip>.json``, :mod:`unitalker.synth.generate`).
:func:`frame_visemes` turns one into a viseme class per motion frame, the target of the
optional viseme classifier on the audio encoder (``model.visemes`` with ``loss.viseme``:
a phonetic auxiliary loss that asks the encoder for the mouth shape's class whatever
the voice, where the motion losses weigh a class by its few millimetres).

Classes are :data:`unitalker.synth.articulation.VISEMES` (``sil`` first); frames without
a timeline get :data:`IGNORE`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

IGNORE = -1  # the class of a frame without a label (cross-entropy's ignore_index)


def viseme_classes() -> tuple[str, ...]:
    """The viseme class names, index = class (the articulation model's visemes)."""
    from unitalker.synth.articulation import VISEMES

    return VISEMES


def timeline_path(audio_path: str | Path, dataset: str) -> Path | None:
    """The A2F-Synth timeline of a clip, or None: ``_timelines/<dataset>/<stem>.json`` in
    one of the three folders above the clip's audio folder (release layouts link to the
    generated files, so the link's target is searched too; a 3D-ETF-style layout puts
    the audio two folders down in its dataset folder)."""
    p = Path(audio_path)
    for base in dict.fromkeys([p, p.resolve()]):
        for folder in list(base.parents)[1:4]:
            cand = folder / "_timelines" / dataset / f"{p.stem}.json"
            if cand.is_file():
                return cand
    return None


def frame_visemes(phonemes: Sequence[Sequence[Any]], n_frames: int, fps: float) -> np.ndarray:
    """int64 ``[n_frames]``: the viseme class of the phone under each frame's time
    (frame ``k`` at ``k / fps``) of a ``[[phone, start, end], ...]`` timeline; frames
    after its end are ``sil``, a zero-length phone is never a frame's.
    """
    from unitalker.synth.articulation import VISEMES, phoneme_to_viseme

    index = {v: i for i, v in enumerate(VISEMES)}
    out = np.full(n_frames, index["sil"], np.int64)
    t = np.arange(n_frames) / float(fps)
    for ph, start, end in phonemes:
        if end <= start:
            continue
        out[(t >= start) & (t < end)] = index[phoneme_to_viseme(str(ph))]
    return out


def clip_visemes(audio_path: str | Path, dataset: str, n_frames: int, fps: float) -> np.ndarray:
    """The viseme labels ``[n_frames]`` of one clip, all :data:`IGNORE` without a timeline."""
    path = timeline_path(audio_path, dataset)
    if path is None:
        return np.full(n_frames, IGNORE, np.int64)
    try:
        phonemes = json.loads(path.read_text())["phonemes"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not an A2F-Synth timeline ({e})") from e
    return frame_visemes(phonemes, n_frames, fps)


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """float32 ``[T, C]``; an :data:`IGNORE` frame is all zeros."""
    out = np.zeros((len(labels), n_classes), np.float32)
    ok = labels >= 0
    out[np.nonzero(ok)[0], labels[ok]] = 1.0
    return out


def from_soft(soft: np.ndarray) -> np.ndarray:
    """int64 ``[T]`` from ``[T, C]`` (one-hot rows after time warps, which interpolate
    them): the strongest class, :data:`IGNORE` where the labelled share is under half."""
    labels = soft.argmax(axis=1).astype(np.int64)
    labels[soft.sum(axis=1) < 0.5] = IGNORE
    return labels
