"""A2F-Synth speech written as Live Link Face takes: test fixtures and the fine-tuning curve.

One synthetic performer (a fixed voice and articulation style, not one of the bench
preset's speakers) reads a new paragraph per take; its ARKit weights (the
``synth_arkit52`` rendering at the take's rate) become the CSV's 52 blendshape columns
in Live Link order, plus a slow head sway and eye rotations that follow the gaze
channels, and its speech becomes the audio track of the take's ``.mov`` (or a ``.wav``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from unitalker.conventions import ARKIT52_EMOTALK, LIVE_LINK_ORDER, arkit_key

log = logging.getLogger(__name__)

PERFORMER_STYLE = {
    "jaw_gain": 1.35,
    "lip_gain": 1.2,
    "round_gain": 1.3,
    "spread_gain": 0.65,
    "asymmetry": 0.2,
    "jaw_lead_s": 0.07,
    "coarticulation": 0.8,
}
"""An articulation style outside the bench speakers' ranges (wide jaw, rounded lips,
lopsided spread): a new identity the bundled model has to adapt to."""


def _to_live_link(weights: np.ndarray) -> np.ndarray:
    index = {arkit_key(n).lower(): i for i, n in enumerate(ARKIT52_EMOTALK)}
    return weights[:, [index[arkit_key(n).lower()] for n in LIVE_LINK_ORDER]]


def _rotations(weights: np.ndarray, fps: float, rng: np.random.Generator) -> np.ndarray:
    """``[T, 9]`` head yaw/pitch/roll (a slow sway) and eye yaw/pitch/roll (from gaze)."""
    n = len(weights)
    t = np.arange(n) / fps
    head = [
        a * np.sin(2 * np.pi * f * t + p)
        for a, f, p in zip(
            rng.uniform(0.02, 0.08, 3),
            rng.uniform(0.1, 0.4, 3),
            rng.uniform(0, 6.3, 3),
            strict=True,
        )
    ]
    w = {name: weights[:, i] for i, name in enumerate(ARKIT52_EMOTALK)}
    yaw = 0.5 * (w["eyeLookOutLeft"] - w["eyeLookInLeft"])
    pitch = 0.4 * (w["eyeLookDownLeft"] - w["eyeLookUpLeft"])
    zero = np.zeros(n)
    return np.stack([*head, yaw, pitch, zero, yaw, pitch, zero], 1).astype(np.float32)


def generate_takes(
    out: str | Path,
    n_takes: int,
    *,
    seconds: float = 15.0,
    fps: float = 60.0,
    seed: int = 0,
    video: str | None = ".mov",
    wav_every: int = 0,
    prefix: str = "Slate",
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write ``n_takes`` take folders ``OUT/<prefix>_<k>/`` of about ``seconds`` each.

    Args:
        fps: the takes' frame rate (the app records 60 or 30).
        seed: picks the texts (and the head sway); the performer is always the same.
        video: container of the audio track (``.mov``, ``.mp4``), or None (wav only).
        wav_every: every k-th take also gets a ``.wav`` (0: none; forced when no video).

    Returns:
        the take folders, in order.
    """
    from unitalker.data.livelinkface import write_take
    from unitalker.synth.articulation import SpeakerStyle
    from unitalker.synth.generate import ClipJob, synth_clip
    from unitalker.synth.presets import spec as get_spec

    out = Path(out)
    spec = dataclasses.replace(get_spec("S2"), fps=float(fps), seconds=(seconds, seconds + 1.0))
    speaker = {
        "lang": "en",
        "voice": "en-gb-x-rp+m3",
        "rate": 150,
        "pitch": 42,
        "range": 60,
        "style": SpeakerStyle(**PERFORMER_STYLE),
        "identity_seed": 0,
    }
    paths = []
    for k in range(n_takes):
        job = ClipJob(
            str(out),
            "S2",
            "performer",
            0,
            k,
            f"{prefix}_{k}",
            (seed, 77, k, 2),
            (seed, 77, k, 3),
            "train",
        )
        res, audio, weights = synth_clip(spec, job, speaker)
        rng = np.random.default_rng([seed, k, 5])
        channels = np.concatenate([_to_live_link(weights), _rotations(weights, fps, rng)], 1)
        wav = video is None or (wav_every > 0 and k % wav_every == 0)
        name = f"{prefix}_{k}_iPhone"
        start = (10 + k % 8, (7 * k) % 60, (13 * k) % 60, k % int(fps))
        paths.append(
            write_take(
                out / f"{prefix}_{k}",
                channels,
                fps,
                audio,
                res.sr,
                name=name,
                start=start,
                video=video,
                wav=wav,
            )
        )
        if progress is not None:
            progress(k + 1, n_takes)
    log.info("wrote %d Live Link Face takes to %s", n_takes, out)
    return paths
