from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The tiny preset, generated once per test session."""
    from unitalker.synth.generate import generate

    out = tmp_path_factory.mktemp("synth_tiny")
    generate(out, "tiny", seed=0, workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_release(tiny_dir, tmp_path_factory):
    """The tiny preset in the release layout (as ``scripts/prepare_synth.sh``), once."""
    from unitalker.cli import main

    release = tmp_path_factory.mktemp("synth_tiny_release")
    for layout, folder, key, conv in (
        ("biwi", "S0_synbiwi", "S0", "synth_head_vertices"),
        ("vocaset", "S1_synvoca", "S1", "synth_head2_vertices"),
        ("3detf", "S2_syn3detf", "S2", "synth_arkit52"),
    ):
        rc = main(
            [
                "data",
                "convert",
                layout,
                str(tiny_dir / folder),
                str(release / key),
                "--dataset",
                key,
                "--convention",
                conv,
                "--mode",
                "symlink",
            ]
        )
        assert rc == 0, layout
    for folder in ("S3_synflame", "S4_synmandarin", "S5_synsong"):
        (release / folder).symlink_to(tiny_dir / folder)
    # one small PCA for the vertex heads, as the script does (else every model fits one)
    rc = main(
        [
            "pca",
            "fit",
            str(release / "S0"),
            "-o",
            str(release / "S0" / "pca.npz"),
            "--components",
            "8",
        ]
    )
    assert rc == 0
    return release
