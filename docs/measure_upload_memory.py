"""Server memory for hostile uploads: RSS of a fresh ``unitalker serve`` before/after each.

Run from the repository root (a tiny random model is saved to a temp folder; no download):

    PYTHONPATH=src python docs/measure_upload_memory.py

Prints one markdown row per case: the answer, the RSS after the server came up, after the
request, and the peak (VmHWM). Each case gets a fresh server, so each peak is its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.hostile_inputs
from tests.hostile_inputs import wav_bytes  # noqa: E402


def _mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def make_inputs(root: Path) -> dict[str, tuple[Path, int]]:
    """``{case: (file, concurrent uploads)}``."""
    cases: dict[str, tuple[Path, int]] = {}
    p = root / "one_hz.wav"  # 32 KB: 16,000 samples whose header says 1 Hz
    p.write_bytes(wav_bytes(1, n=16000))
    cases["32 KB WAV claiming 1 Hz"] = (p, 1)
    p = root / "silence_4h.flac"
    with sf.SoundFile(p, "w", 16000, 1, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros(16000 * 60, np.int16)
        for _ in range(4 * 60):
            f.write(block)
    cases[f"4 h of silent FLAC ({p.stat().st_size // 1024} KB)"] = (p, 1)
    for rate in (16000, 192000):  # the same 100 s (within the limit) at two rates
        t = np.arange(rate * 100) / rate
        p = root / f"tone_{rate}_100s.flac"
        sf.write(p, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
        size = p.stat().st_size / (1 << 20)
        cases[f"{rate // 1000} kHz FLAC, 100 s ({size:.1f} MiB)"] = (p, 1)
    p = root / "big.wav"  # 24 MiB of 16 kHz PCM: 786 s, over the 120 s limit
    sf.write(p, np.zeros(12 << 20, np.int16), 16000, subtype="PCM_16")
    cases["24 MiB WAV (786 s), 4 uploads at once"] = (p, 4)
    return cases


def serve(ckpt: Path, port: int) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "unitalker",
        "serve",
        "-m",
        str(ckpt),
        "--device",
        "cpu",
        "--port",
        str(port),
        "--max-concurrency",
        "4",
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.3)


def main() -> None:
    from tests.inference.infer_testdata import save_tiny_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ckpt = save_tiny_checkpoint(root / "model")
        cases = make_inputs(root)
        print("| case | answer | RSS idle MiB | RSS after MiB | peak MiB | peak - idle |")
        print("|---|---|---|---|---|---|")
        for name, (path, n) in cases.items():
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            proc = serve(ckpt, port)
            try:
                idle = _mib(proc.pid, "VmRSS")
                data = path.read_bytes()

                def post(_: int, port=port, name=path.name, data=data) -> str:
                    r = httpx.post(
                        f"http://127.0.0.1:{port}/v1/animate",
                        files={"audio": (name, data, "application/octet-stream")},
                        data={"heads": "3DETF_blendshape_weight"},
                        timeout=600,
                    )
                    return f"{r.status_code} {r.json().get('error', 'ok')}"

                with ThreadPoolExecutor(n) as ex:
                    answers = sorted(set(ex.map(post, range(n))))
                after, peak = _mib(proc.pid, "VmRSS"), _mib(proc.pid, "VmHWM")
                print(
                    f"| {name} | {', '.join(answers)} | {idle:.0f} | {after:.0f} | "
                    f"{peak:.0f} | +{peak - idle:.0f} |",
                    flush=True,
                )
            finally:
                proc.terminate()
                proc.wait(30)


if __name__ == "__main__":
    main()
