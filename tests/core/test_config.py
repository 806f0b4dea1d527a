from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from unitalker.config import ConfigError, apply_overrides, from_dict, load_config, to_dict


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-4
    betas: tuple[float, ...] = (0.9, 0.999)


@dataclass(frozen=True)
class Cfg:
    name: str = "x"
    steps: int = 10
    optim: Optim = field(default_factory=Optim)
    tags: dict[str, int] = field(default_factory=dict)
    path: str | None = None


def test_overrides_are_type_checked(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("name: run\noptim:\n  lr: 0.001\n")
    cfg = load_config(Cfg, f, ["optim.lr=3e-4", "steps=5", "tags.a=2", "path=null"])
    assert cfg == Cfg(name="run", steps=5, optim=Optim(lr=3e-4), tags={"a": 2})
    assert from_dict(Cfg, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "override, match",
    [
        ("optim.lrr=1", "unknown key"),
        ("steps=1.5", "integer"),
        ("optim.lr=fast", "number"),
        ("name=3", "string"),
        ("optim.betas=0.9", "list"),
        ("noequals", "key.path=value"),
        ("steps=true", "integer"),
    ],
)
def test_bad_overrides_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(Cfg, None, [override])


def test_bad_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("steps: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(Cfg, f)
    with pytest.raises(FileNotFoundError):
        load_config(Cfg, tmp_path / "missing.yaml")
    assert apply_overrides({"a": {"b": 1}}, ["a.b=2"]) == {"a": {"b": 2}}
