from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unitalker import conventions
from unitalker.models.heads import head_out_dim

ORIGINAL = {
    "BIWI_23370_vertices": ("vertices", 70110, 0.2, True, 25),
    "FLAME_5023_vertices": ("vertices", 15069, 1.0, True, 30),
    "meshtalk_6172_vertices": ("vertices", 18516, 0.001, True, 30),
    "3DETF_blendshape_weight": ("blendshapes", 52, 1.0, False, 30),
    "flame_params_from_dadhead": ("params", 413, 1.0, False, 30),
    "inhouse_blendshape_weight": ("blendshapes", 51, 1.0, False, 30),
}


@pytest.mark.parametrize("name", sorted(ORIGINAL))
def test_original_conventions_match_release(name):
    c = conventions.get(name)
    kind, dim, scale, pca, fps = ORIGINAL[name]
    assert (c.kind, c.dim, c.scale, c.pca, c.fps) == (kind, dim, scale, pca, fps)


def test_original_datasets():
    subjects = {"D0": 6, "D1": 12, "D2": 13, "D3": 141, "D4": 24, "D5": 719, "D6": 8, "D7": 11}
    for key, n in subjects.items():
        assert conventions.get_dataset(key).n_subjects == n
    assert sum(subjects.values()) == 934  # the paper's speaker count
    assert [conventions.get_dataset(k).repeat for k in conventions.ORIGINAL_DATASETS] == [
        10,
        5,
        4,
        1,
        1,
        1,
        1,
        1,
    ]
    assert conventions.get_dataset("D3").convention == conventions.get_dataset("D4").convention
    assert conventions.get_dataset("D6").convention == conventions.get_dataset("D7").convention


@pytest.mark.parametrize("name", conventions.names())
def test_every_convention_gets_a_head_of_the_right_size(name):
    from unitalker.models.config import DecoderConfig, EncoderConfig, ModelConfig
    from unitalker.models.unitalker import UniTalker, default_heads

    conv = conventions.get(name)
    cfg = ModelConfig(
        encoder=EncoderConfig(hidden_size=16, n_layers=1, n_heads=2, n_mels=16),
        decoder=DecoderConfig(hidden=8, id_dim=4),
        heads=default_heads([name], 512),
    )
    model = UniTalker(cfg).eval()
    head = model.out_head_dict[name]
    assert head.out_features == head_out_dim(conv.dim, conv.pca, 512)
    assert torch.count_nonzero(head.weight) == 0 and torch.count_nonzero(head.bias) == 0
    out = model(torch.randn(1, 8000), heads=[name])[name]
    assert out.motion.shape == (1, round(0.5 * conv.fps), conv.dim)
    # zero heads output the template
    assert torch.allclose(out.motion, model.template(name).expand_as(out.motion))


def test_register_from_yaml_and_json(tmp_path):
    np.save(tmp_path / "faces.npy", np.array([[0, 1, 2]], dtype=np.int32))
    (tmp_path / "conv.yaml").write_text(
        "conventions:\n"
        "  - name: test_user_vertices\n    kind: vertices\n    dim: 9\n    fps: 24\n    pca: true\n"
        "    resources: {faces: faces.npy}\n"
        "datasets:\n  - {key: U0, name: mine, convention: test_user_vertices, n_subjects: 2, native_fps: 24}\n"
    )
    (c,) = conventions.register_from_file(tmp_path / "conv.yaml")
    assert conventions.get("test_user_vertices") is c
    assert c.n_vertices == 3 and c.resource("faces").tolist() == [[0, 1, 2]]
    assert conventions.get_dataset("U0").convention == "test_user_vertices"
    (tmp_path / "c.json").write_text(
        json.dumps(
            {
                "name": "test_user_bs",
                "kind": "blendshapes",
                "dim": 2,
                "fps": 30,
                "channel_names": ["a", "b"],
            }
        )
    )
    conventions.register_from_file(tmp_path / "c.json")
    assert conventions.get("test_user_bs").channel_names == ("a", "b")


@pytest.mark.parametrize(
    "body, match",
    [
        ({"name": "x1", "kind": "mesh", "dim": 3, "fps": 30}, "kind"),
        ({"name": "x2", "kind": "vertices", "dim": 4, "fps": 30}, "multiple of 3"),
        (
            {"name": "x3", "kind": "blendshapes", "dim": 2, "fps": 30, "channel_names": ["a"]},
            "channel names",
        ),
        ({"name": "x4", "kind": "vertices", "dim": 3, "fps": 30, "colour": 1}, "unknown keys"),
        ({"name": "x5", "kind": "params", "dim": 3}, "missing"),
    ],
)
def test_bad_convention_files_name_the_file(tmp_path, body, match):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(body))
    with pytest.raises(ValueError, match=match) as e:
        conventions.register_from_file(f)
    assert "bad.json" in str(e.value)


def test_unknown_convention_lists_registered():
    with pytest.raises(KeyError, match="FLAME_5023_vertices"):
        conventions.get("nope")


def test_conflicting_registration_is_refused():
    c = conventions.get("FLAME_5023_vertices")
    import dataclasses

    with pytest.raises(ValueError, match="already registered"):
        conventions.register(dataclasses.replace(c, fps=60.0))
