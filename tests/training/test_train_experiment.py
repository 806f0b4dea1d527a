from __future__ import annotations


def test_pivot_experiment_quick(release, tmp_path):
    from unitalker.training.experiments import pivot

    text = pivot(release, tmp_path, ["TA", "TB"], 2, quick=True)
    assert "pivot id" in text and (tmp_path / "pivot.md").exists()
