"""Regenerate docs/img/synth_*.png (one clip per synth convention). Run from the repo root:
``PYTHONPATH=src python docs/make_synth_plots.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unitalker.synth import conventions as sc
from unitalker.synth import tts
from unitalker.synth.articulation import SpeakerStyle, audio_features, timeline_to_articulation
from unitalker.synth.plots import plot_clip

OUT = Path(__file__).parent / "img"
CLIPS = {
    sc.ARKIT: ("My mom bought a blue umbrella.", "en-us+m2", 30.0),
    sc.HEAD: ("Papa wants the moon.", "en+f4", 25.0),
    sc.HEAD2: ("Bonjour, ma petite pomme.", "fr+m3", 60.0),
    sc.FLAME: ("wo3 men2 mai3 mian4 bao1.", "cmn-latn-pinyin", 30.0),
}

if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for conv, (text, voice, fps) in CLIPS.items():
        r = tts.synthesize(text, voice)
        n = max(1, round(r.duration * fps))
        f0, en = audio_features(r.audio, r.sr, fps, n)
        curves = timeline_to_articulation(
            r.phonemes, fps, SpeakerStyle(), seed=0, n_frames=n, f0=f0, energy=en
        )
        data = sc.render(conv, curves, identity_seed=1 if conv in (sc.HEAD, sc.HEAD2) else None)
        plot_clip(
            OUT / f"{conv}.png",
            r.audio,
            r.sr,
            r.phonemes,
            conv,
            data,
            fps,
            f"{conv} @ {fps:g} fps - {voice}: {text}",
        )
        print(OUT / f"{conv}.png")  # noqa: T201
    # the sung domain, rendered as ARKit
    s = tts.sing(
        ["la", "mo", "pi", "bu", "ma"], [57, 60, 64, 62, 60], [0.4, 0.6, 0.5, 0.4, 1.0], "es"
    )
    n = round(s.duration * 30)
    curves = timeline_to_articulation(s.phonemes, 30, SpeakerStyle(), seed=0, n_frames=n)
    plot_clip(
        OUT / "synth_song_arkit52.png",
        s.audio,
        s.sr,
        s.phonemes,
        sc.ARKIT,
        sc.render(sc.ARKIT, curves),
        30,
        "song domain (sung syllables, held vowels) - synth_arkit52",
    )
    _ = np
