"""Fixtures: a tiny model with drawable test heads, served by a real uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_testdata import (
    HEADS,
    VERT,
    Running,
    register_test_conventions,
    run_server,
    uv_sphere,
    write_clip,
)
from tests.conftest import randomize, tiny_model_config


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    import torch

    from unitalker.models.checkpoint import save_model
    from unitalker.models.unitalker import UniTalker

    root = tmp_path_factory.mktemp("serve-model")
    register_test_conventions(root)
    torch.manual_seed(0)
    model = randomize(UniTalker(tiny_model_config(heads=HEADS)), scale=0.02).eval()
    verts, _ = uv_sphere()
    model.set_template(VERT, verts.reshape(-1))
    return save_model(model, root / "model")


@pytest.fixture(scope="session")
def model(model_dir):
    from unitalker.models.checkpoint import load_model

    return load_model(model_dir, device="cpu")


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("audio") / "speech.wav"
    write_clip(p, 1.5)
    return p


@pytest.fixture(scope="session")
def server(model) -> Iterator[Running]:
    from unitalker.serve import ServeSettings, create_app

    settings = ServeSettings(max_upload_mb=1.0, max_seconds=10.0, model_name="tiny")
    with run_server(create_app(model, settings)) as r:
        yield r
