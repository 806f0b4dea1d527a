"""Hub-style model folders: save_pretrained / from_pretrained, read by huggingface_hub's own
tools (model card, cache) and left alone by transformers; hub ids through a local cache."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unitalker.models.checkpoint import (
    CONFIG,
    LEGACY_CONFIG,
    MODEL_CARD,
    WEIGHTS,
    CheckpointError,
    load_model,
    save_model,
)
from unitalker.models.unitalker import UniTalker

REPO = "someone/unitalker-tiny"
SRC = Path(__file__).resolve().parents[2] / "src"


def _same(a: UniTalker, b: UniTalker) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    audio = torch.randn(1, 16000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x, y = a(audio), b(audio)
    assert all(torch.equal(x[h].motion, y[h].motion) for h in x)


def populate_hf_cache(cache: Path, repo_id: str, folder: Path, commit: str = "a" * 40) -> Path:
    """Lay ``folder``'s files out as huggingface_hub's cache does after a download:
    ``models--owner--name/blobs/<sha256>``, ``snapshots/<commit>/<file>`` -> the blob,
    ``refs/main`` = the commit. Returns the snapshot folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in sorted(folder.iterdir()):
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    (repo / "refs" / "main").write_text(commit)
    return snap


@pytest.fixture
def published(tmp_path, tiny_model) -> Path:
    return tiny_model.save_pretrained(tmp_path / "unitalker-tiny", extra={"note": "hub"})


def test_save_pretrained_layout_and_round_trip(published, tiny_model) -> None:
    assert sorted(p.name for p in published.iterdir()) == sorted([WEIGHTS, CONFIG, MODEL_CARD])
    loaded = UniTalker.from_pretrained(published)
    _same(tiny_model, loaded)
    assert loaded.meta["extra"] == {"note": "hub"}
    assert loaded.device == torch.device("cpu")
    # save -> load -> save keeps the metadata (stored once, not nested in "meta")
    again = loaded.save_pretrained(published.parent / "again")
    meta = json.loads((again / CONFIG).read_text())
    assert meta["extra"] == {"note": "hub"} and "extra" not in meta["meta"]


def test_model_card_reads_in_huggingface_hub(published, tiny_model) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(published / MODEL_CARD)
    assert card.data.library_name == "unitalker"
    assert "unitalker" in card.data.tags
    for h in tiny_model.heads:
        assert f"`{h}`" in card.text
    # An existing card (the user's) is never replaced.
    (published / MODEL_CARD).write_text("# mine\n")
    tiny_model.save_pretrained(published)
    assert (published / MODEL_CARD).read_text() == "# mine\n"


def test_transformers_does_not_misread_the_folder(published, tiny_model, tmp_path) -> None:
    """No config.json: transformers finds no config of its own instead of misparsing ours.

    The old layout shows why it was renamed: transformers guesses a model type from the
    folder's name and builds that config from our JSON (every key of ours an attribute)."""
    from transformers import AutoConfig

    assert not (published / LEGACY_CONFIG).exists()
    with pytest.raises(ValueError, match="Unrecognized model"):
        AutoConfig.from_pretrained(str(published))
    named = tiny_model.save_pretrained(tmp_path / "unitalker-wavlm")  # "wavlm" in the name
    cfg = AutoConfig.from_pretrained(str(named))
    assert not hasattr(cfg, "conventions") and not hasattr(cfg, "format")
    (named / CONFIG).rename(named / LEGACY_CONFIG)  # as unitalker 0.1 wrote it
    old = AutoConfig.from_pretrained(str(named))
    assert type(old).__name__ == "WavLMConfig" and hasattr(old, "conventions")  # misparsed


def test_old_layout_still_loads_and_resaves_to_the_new(tmp_path, tiny_model) -> None:
    old = save_model(tiny_model, tmp_path / "old")
    (old / CONFIG).rename(old / LEGACY_CONFIG)  # the layout of unitalker 0.1
    loaded = UniTalker.from_pretrained(old)
    _same(tiny_model, loaded)
    loaded.save_pretrained(old)  # in place: the folder moves to the new layout
    assert sorted(p.name for p in old.iterdir()) == sorted([WEIGHTS, CONFIG, MODEL_CARD])
    _same(tiny_model, load_model(old, device="cpu"))


def test_bundled_model_by_name() -> None:
    m = UniTalker.from_pretrained("default")
    assert "synth_arkit52" in m.heads


def test_a_foreign_config_json_is_not_ours(tmp_path, tiny_model) -> None:
    """A transformers config.json next to our files is ignored; alone it is a clear error."""
    from transformers import WavLMConfig

    folder = tiny_model.save_pretrained(tmp_path / "both")
    WavLMConfig().save_pretrained(str(folder))  # writes folder/config.json
    _same(tiny_model, UniTalker.from_pretrained(folder))
    (folder / CONFIG).unlink()
    with pytest.raises(CheckpointError, match="not a unitalker config"):
        UniTalker.from_pretrained(folder)


def test_hub_id_through_a_local_cache(tmp_path, published, tiny_model) -> None:
    from huggingface_hub import hf_hub_download, scan_cache_dir

    cache = tmp_path / "hf" / "hub"
    snap = populate_hf_cache(cache, REPO, published)
    # huggingface_hub itself sees a valid cached repo with our files
    info = scan_cache_dir(cache)
    assert not info.warnings
    (repo,) = info.repos
    assert repo.repo_id == REPO and repo.repo_type == "model"
    assert {f.file_name for f in next(iter(repo.revisions)).files} == {WEIGHTS, CONFIG, MODEL_CARD}
    got = hf_hub_download(REPO, CONFIG, cache_dir=cache, local_files_only=True)
    assert Path(got) == snap / CONFIG
    loaded = UniTalker.from_pretrained(REPO, cache_dir=cache, local_files_only=True)
    _same(tiny_model, loaded)
    with pytest.raises(CheckpointError, match="could not be fetched"):
        UniTalker.from_pretrained("someone/absent", cache_dir=cache, local_files_only=True)
    with pytest.raises(CheckpointError, match=r"neither a bundled model.*repo id"):
        load_model("not a model", device="cpu")


def test_hub_repo_without_weights_is_not_a_model(tmp_path) -> None:
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / MODEL_CARD).write_text("---\nlibrary_name: other\n---\n")
    cache = tmp_path / "hub"
    populate_hf_cache(cache, "someone/other", folder)
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_model("someone/other", cache_dir=cache, local_files_only=True)


def test_animate_cli_takes_a_hub_id(tmp_path, published) -> None:
    """`unitalker animate -m OWNER/NAME` in a fresh process with HF_HOME and HF_HUB_OFFLINE=1:
    the model comes from the cache, nothing from the network."""
    import numpy as np
    import soundfile as sf

    populate_hf_cache(tmp_path / "hf" / "hub", REPO, published)
    wav = tmp_path / "a.wav"
    sf.write(str(wav), np.sin(np.linspace(0, 400, 8000)).astype(np.float32) * 0.3, 16000)
    env = os.environ | {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(SRC),
    }
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "unitalker",
            "animate",
            str(wav),
            "-m",
            REPO,
            "-o",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "out" / "a.npz").exists()
