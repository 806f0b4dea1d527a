"""Run by test_train_kill in a subprocess: ``unitalker train`` on the tiny test release.

argv: release root, then the ``unitalker train`` arguments.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from train_fixtures import register_test_conventions  # noqa: E402

from unitalker.cli import main  # noqa: E402

root = Path(sys.argv[1])
register_test_conventions(root / "_res")
sys.exit(main(["train", *sys.argv[2:]]))
