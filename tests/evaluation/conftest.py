from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "training"))

from train_fixtures import write_release  # noqa: E402


@pytest.fixture(scope="session")
def eval_release(tmp_path_factory) -> Path:
    return write_release(tmp_path_factory.mktemp("eval_release"))
