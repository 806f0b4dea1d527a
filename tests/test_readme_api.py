"""The README's Python API snippet, run as written in a fresh process.

``speech.wav`` is the bundled example; ``OWNER/NAME`` is served from a Hugging Face
cache laid out by the test (``HF_HUB_OFFLINE=1``: nothing touches the network).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.models.test_hub import populate_hf_cache

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLE = ROOT / "examples" / "hello.wav"

# Checks on the snippet's own variables, appended to it.
CHECKS = """
import json as _json
import numpy as _np
from pathlib import Path as _Path
_out = {}
for _name, _anim in result.items():
    _out[_name] = [_anim.fps, list(_anim.data.shape)]
_v = result["synth_head_vertices"]
_out["verts"] = list(verts.shape)
_out["verts_t"] = len(_v.data)
_out["finite"] = bool(_np.isfinite(verts).all())
_out["saved"] = sorted(p.name for p in _Path("my-model").iterdir())
_out["hub_heads"] = sorted(model.heads)
print("CHECKS " + _json.dumps(_out))
"""


def readme_api_snippet() -> str:
    """The first ``python`` code block under the README's "Python API" heading."""
    text = README.read_text()
    section = text[text.index("## Python API") :]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m, "README: no python block under '## Python API'"
    return m.group(1)


def test_readme_python_api_snippet_runs(tmp_path) -> None:
    import soundfile as sf

    import unitalker
    from unitalker import conventions

    snippet = readme_api_snippet()
    assert 'animate("speech.wav")' in snippet and '"OWNER/NAME"' in snippet
    shutil.copy(EXAMPLE, tmp_path / "speech.wav")
    published = unitalker.load_model().save_pretrained(tmp_path / "published")
    populate_hf_cache(tmp_path / "hf" / "hub", "OWNER/NAME", published)
    work = tmp_path / "work"
    work.mkdir()
    shutil.move(tmp_path / "speech.wav", work / "speech.wav")
    (work / "snippet.py").write_text(snippet + CHECKS)
    env = os.environ | {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run(
        [sys.executable, "snippet.py"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    checks = json.loads(next(x for x in lines if x.startswith("CHECKS "))[len("CHECKS ") :])
    heads = {"synth_arkit52", "synth_head_vertices", "synth_head2_vertices", "synth_flame_params"}
    assert heads <= set(checks)
    # the printed lines are "name fps (T, C)" for each head, as the comment says
    seconds = sf.info(str(EXAMPLE)).duration
    for name in heads:
        fps, shape = checks[name]
        assert f"{name} {fps} ({shape[0]}, {shape[1]})" in lines
        assert shape[0] == round(seconds * fps)  # one frame per 1/fps of the clip
        assert shape[1] == conventions.get(name).dim
    assert checks["verts"][0] == checks["verts_t"] and checks["verts"][2] == 3
    assert checks["finite"]
    assert checks["saved"] == ["README.md", "model.safetensors", "unitalker.json"]
    assert heads <= set(checks["hub_heads"])
