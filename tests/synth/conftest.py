from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The tiny preset, generated once per test session."""
    from unitalker.synth.generate import generate

    out = tmp_path_factory.mktemp("synth_tiny")
    generate(out, "tiny", seed=0, workers=1)
    return out
