from __future__ import annotations

from pathlib import Path

import pytest
from datafixtures import make_release


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return make_release(tmp_path / "unitalker_data_release_V1")
