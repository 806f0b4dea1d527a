"""The fuzz suite's bookkeeping: how many inputs each target saw, and how each ended."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

# target -> outcome ("ok" or the project's exception class name) -> count
OUTCOMES: dict[str, Counter] = defaultdict(Counter)


@pytest.fixture(scope="session")
def record():
    def add(target: str, outcome: str) -> None:
        OUTCOMES[target][outcome] += 1

    return add


def pytest_terminal_summary(terminalreporter):
    if not OUTCOMES:
        return
    terminalreporter.section("fuzz inputs per target (uncaught: the failed tests above)")
    for target, counts in sorted(OUTCOMES.items()):
        total = sum(counts.values())
        parts = ", ".join(f"{k} {v}" for k, v in counts.most_common())
        terminalreporter.write_line(f"{target}: {total} inputs: {parts}")


def pytest_collection_modifyitems(config, items):
    # A long run (--fuzz 10000) is one test per target that may take longer than the
    # suite's per-test timeout: lift it for these tests only.
    n = config.getoption("--fuzz")
    if n is not None and n > 1000:
        here = Path(__file__).parent
        for item in items:
            if here in Path(item.fspath).parents:
                item.add_marker(pytest.mark.timeout(0))
