"""A tiny data set in the original release layout, written by the tests themselves.

Three small conventions are registered: ``tt_verts`` (12 vertices, PCA, lip / upper-face
regions), ``tt_bs`` (4 blendshapes with a rig on the same mesh) and ``tt_params`` (3
parameters, no mesh). Motion follows the audio's loudness, so a model can learn it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unitalker import conventions

SR = 16000
N_VERTS = 12


def register_test_conventions(res_dir: Path) -> None:
    res_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(123)
    mean = rng.normal(size=(N_VERTS, 3)).astype(np.float32)
    basis = (rng.normal(size=(4, N_VERTS, 3)) * 0.1).astype(np.float32)
    np.savez(
        res_dir / "mesh.npz",
        neutral=mean,
        rig_basis=basis,
        lips=np.arange(0, 4),
        upper=np.arange(6, 12),
    )
    r = lambda k: f"{res_dir / 'mesh.npz'}:{k}"  # noqa: E731
    region = (("lip_indices", r("lips")), ("upper_face_indices", r("upper")))
    convs = [
        conventions.Convention(
            "tt_verts", "vertices", N_VERTS * 3, 25.0, 1.0, pca=True, resources=region
        ),
        conventions.Convention(
            "tt_bs",
            "blendshapes",
            4,
            30.0,
            1.0,
            resources=tuple(
                sorted(region + (("rig_meanshape", r("neutral")), ("rig_basis", r("rig_basis"))))
            ),
        ),
        conventions.Convention("tt_params", "params", 3, 30.0, 1.0),
    ]
    for c in convs:
        conventions.register(c, overwrite=True)


def _clip(rng: np.random.Generator, seconds: float, fps: float, dim: int, proj: np.ndarray):
    n = int(seconds * SR)
    t = np.arange(n) / SR
    env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1.0, 3.0) * t + rng.uniform(0, 6))
    audio = (env * np.sin(2 * np.pi * rng.uniform(150, 400) * t)).astype(np.float32) * 0.3
    frames = int(round(seconds * fps))
    e = env[(np.arange(frames) / fps * SR).astype(int).clip(0, n - 1)]
    feats = np.stack([e, e**2, np.ones_like(e)], 1)  # [T, 3]
    return audio, (feats @ proj[:, :dim]).astype(np.float32)


def write_dataset(
    root: Path,
    key: str,
    convention: str,
    n_subjects: int = 2,
    clips: int = 3,
    seconds: float = 1.0,
    seed: int = 0,
) -> Path:
    """One dataset folder with train / val / test split files."""
    conv = conventions.get(convention)
    rng = np.random.default_rng(seed)
    folder = root / key
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    (folder / "annot").mkdir(parents=True, exist_ok=True)
    proj = rng.normal(size=(3, conv.dim)).astype(np.float32) * 0.2
    templates = rng.normal(size=(n_subjects, conv.dim)) * (0.5 if conv.kind == "vertices" else 0)
    np.save(folder / "id_template.npy", templates.astype(np.float32))
    ids = [f"{key.lower()}s{i}" for i in range(n_subjects)]
    for split, n_clips in (("train", clips), ("val", 1), ("test", 1)):
        data = []
        for s in range(n_subjects):
            for c in range(n_clips):
                audio, motion = _clip(rng, seconds, conv.fps, conv.dim, proj)
                motion = motion + templates[s].astype(np.float32)
                name = f"{split}_{s}_{c}"
                np.save(folder / "audio" / f"{name}.npy", audio)
                np.save(folder / "annot" / f"{name}.npy", motion)
                data.append(
                    {
                        "annot_path": f"annot/{name}.npy",
                        "audio_path": f"audio/{name}.npy",
                        "id": s,
                        "annot_type": convention,
                        "dataset": key,
                        "fps": conv.fps,
                    }
                )
        (folder / f"{split}.json").write_text(json.dumps({"info": {"id_list": ids}, "data": data}))
    return folder


def write_release(root: Path, res_dir: Path | None = None) -> Path:
    """Three datasets (one per test convention) under ``root``."""
    register_test_conventions(res_dir or root / "_res")
    write_dataset(root, "TA", "tt_verts", seed=1)
    write_dataset(root, "TB", "tt_bs", seed=2)
    write_dataset(root, "TC", "tt_params", seed=3)
    return root


TINY = [
    "model.encoder.hidden_size=32",
    "model.encoder.n_layers=1",
    "model.encoder.n_heads=2",
    "model.encoder.n_mels=20",
    "model.decoder.hidden=24",
    "model.decoder.id_dim=8",
    "model.pca_components=8",
    "log.tensorboard=false",
    "log.every=1",
    "data.val_split=",
]


def tiny_config(root: Path, out: Path, *overrides: str):
    from unitalker.config import load_config
    from unitalker.training.config import TrainConfig

    return load_config(
        TrainConfig, None, [f"data.manifest={root}", f"out_dir={out}", *TINY, *overrides]
    )
