"""Tiny fixtures in every supported layout (real file names, dims and fps; few frames)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import soundfile as sf

BIWI_DIM = 23370 * 3
FLAME_DIM = 5023 * 3
MESHTALK_DIM = 6172 * 3


def write_wav(path: Path, seconds: float, sr: int = 44100, freq: float = 220.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * sr)) / sr
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


def write_npy(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)
    return path


def motion(frames: int, dim: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((frames, dim)) * 0.01 * scale).astype(np.float32)


def make_biwi(root: Path) -> Path:
    """CodeTalker BIWI layout: 2 train subjects, 1 Test-B subject; 15 frames at 25 fps."""
    templates = {}
    for s, seed in (("F2", 1), ("M3", 2), ("F3", 3), ("F4", 4), ("M4", 5), ("M5", 6), ("F1", 7)):
        templates[s] = np.full((23370, 3), seed, dtype=np.float32)
    (root / "vertices_npy").mkdir(parents=True)
    for subject in ("F2", "M3", "F1"):
        for sent in (1, 2, 33, 37):
            stem = f"{subject}_e{sent:02d}"
            write_npy(root / "vertices_npy" / f"{stem}.npy", motion(15, BIWI_DIM, sent))
            write_wav(root / "wav" / f"{stem}.wav", 0.6)
    # an annotation without audio: skipped and reported
    write_npy(root / "vertices_npy" / "M3_e03.npy", motion(15, BIWI_DIM))
    with open(root / "templates.pkl", "wb") as fh:
        pickle.dump(templates, fh, protocol=2)
    return root


VOCA_SUBJECTS = [
    f"FaceTalk_{s}_TA"
    for s in (
        "170728_03272",
        "170904_00128",
        "170725_00137",
        "170915_00223",
        "170811_03274",
        "170913_03279",
        "170904_03276",
        "170912_03278",
        "170811_03275",
        "170908_03277",
        "170809_00138",
        "170731_00024",
    )
]


def make_vocaset(root: Path) -> Path:
    """FaceFormer VOCASET layout at 60 fps: 36 frames (0.6 s)."""
    templates = {s: np.zeros((5023, 3), np.float32) + i for i, s in enumerate(VOCA_SUBJECTS)}
    with open(_mk(root) / "templates.pkl", "wb") as fh:
        pickle.dump(templates, fh)
    clips = [
        ("FaceTalk_170725_00137_TA", 1),
        ("FaceTalk_170725_00137_TA", 22),
        ("FaceTalk_170811_03275_TA", 1),
        ("FaceTalk_170811_03275_TA", 21),
        ("FaceTalk_170809_00138_TA", 30),
    ]
    for subject, sent in clips:
        stem = f"{subject}_sentence{sent:02d}"
        write_npy(root / "vertices_npy" / f"{stem}.npy", motion(36, FLAME_DIM, sent))
        write_wav(root / "wav" / f"{stem}.wav", 0.6, sr=22050)
    return root


def make_multiface(root: Path) -> Path:
    """FaceDiffuser Multiface layout, raw millimetre-like units, 30 fps, 18 frames."""
    templates = {
        "1": np.full((6172, 3), 100.0, np.float32),
        "2": np.full((6172, 3), 200.0, np.float32),
    }
    with open(_mk(root) / "templates.pkl", "wb") as fh:
        pickle.dump(templates, fh)
    for subject in (1, 2):
        for sent in (1, 2, 41, 46):
            stem = f"{subject:02d}_{sent:02d}"
            write_npy(
                root / "vertices_npy" / f"{stem}.npy",
                motion(18, MESHTALK_DIM, sent, 1000.0) + 100.0 * subject,
            )
            write_wav(root / "wav" / f"{stem}.wav", 0.6, sr=16000)
    return root


def make_3detf(root: Path) -> Path:
    """EmoTalk 3D-ETF layout: HDTF and RAVDESS, (T, 52) at 30 fps."""
    for i, stem in enumerate(
        ["WRA_Obama_000", "WRA_Obama_001", "RD_Radio1_000", "RD_Radio1_001", "WDA_Kim_000"]
    ):
        write_npy(
            root / "HDTF" / "blendshape" / f"{stem}.npy",
            np.random.default_rng(i).random((20 + i, 52)).astype(np.float32),
        )
        write_wav(root / "HDTF" / "audio" / f"{stem}.wav", (20 + i) / 30)
    for actor in (1, 2):
        for take in (1, 2, 3):
            stem = f"03-01-0{take}-01-01-01-{actor:02d}"
            write_npy(
                root / "RAVDESS" / "blendshape" / f"{stem}.npy",
                np.random.default_rng(actor * 10 + take).random((30, 52)).astype(np.float32),
            )
            write_wav(root / "RAVDESS" / "audio" / f"{stem}.wav", 1.0, sr=48000)
    return root


def make_folder(root: Path) -> Path:
    """Generic layout: in-house 51 blendshapes at 60 fps, two subjects."""
    for subj in ("alice", "bob"):
        for k in range(4):
            stem = f"{subj}_{k:03d}"
            write_npy(
                root / "annotations" / f"{stem}.npy",
                np.random.default_rng(k).random((60 + 6 * k, 51)).astype(np.float32),
            )
            write_wav(root / "audio" / f"{stem}.wav", (60 + 6 * k) / 60, sr=22050)
    return root


def make_release(root: Path) -> Path:
    """Original release layout: D5 (FLAME params, .npy audio) and D3 under D3D4_3DETF/."""
    d5 = root / "D5_unitalker_faceforensics++"
    ids = ["000", "001", "002"]
    write_npy(d5 / "id_template.npy", np.zeros((3, 413), np.float32))
    for split, n in (("train", 4), ("val", 1), ("test", 1)):
        data = []
        for k in range(n):
            name = f"{split}_{k}"
            write_npy(d5 / "annot" / f"{name}.npy", motion(30 + 3 * k, 413, k))
            write_npy(
                d5 / "audio" / f"{name}.npy",
                (0.1 * np.random.default_rng(k).standard_normal(16000 * (30 + 3 * k) // 30)).astype(
                    np.float32
                ),
            )
            data.append(
                {
                    "annot_path": f"annot/{name}.npy",
                    "audio_path": f"audio/{name}.npy",
                    "id": k % 3,
                    "annot_type": "flame_params_from_dadhead",
                    "dataset": "D5",
                    "fps": 30,
                }
            )
        (d5 / f"{split}.json").write_text(json.dumps({"info": {"id_list": ids}, "data": data}))
    d3 = root / "D3D4_3DETF" / "D3_HDTF"
    write_npy(d3 / "id_template.npy", np.zeros((2, 52), np.float32))
    for split, n in (("train", 3), ("val", 1), ("test", 1)):
        data = []
        for k in range(n):
            name = f"{split}_{k}"
            write_npy(
                d3 / "bs" / f"{name}.npy",
                np.random.default_rng(k).random((24, 52)).astype(np.float32),
            )
            write_wav(d3 / "wav" / f"{name}.wav", 0.8)
            data.append(
                {
                    "annot_path": f"bs/{name}.npy",
                    "audio_path": f"wav/{name}.wav",
                    "id": k % 2,
                    "annot_type": "3DETF_blendshape_weight",
                    "dataset": "D3",
                    "fps": 30,
                }
            )
        (d3 / f"{split}.json").write_text(
            json.dumps({"info": {"id_list": ["a", "b"]}, "data": data})
        )
    return root


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p
