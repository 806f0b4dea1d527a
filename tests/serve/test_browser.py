"""The viewer page in headless Chromium (Debian's), against the real server."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from serve_testdata import BS, RIG, VERT, write_clip

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"Chromium not installed at {CHROMIUM} (apt-get install -y chromium)",
)
ARGS = [
    "--use-angle=swiftshader",  # software WebGL: no GPU on CI machines
    "--enable-unsafe-swiftshader",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
    "--use-fake-device-for-media-stream",  # a synthetic microphone (beeps)
    "--no-sandbox",
]


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        ctx = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 760})
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on(
            "response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None
        )
        page.errors = errors
        page.goto(server.url + "/")
        page.wait_for_selector("#heads input", timeout=15000)
        yield page
        browser.close()


def canvas_hash(page) -> str:
    url = page.evaluate("document.querySelector('#mesh').toDataURL('image/png')")
    return hashlib.sha1(url.encode()).hexdigest()


def test_upload_play_animates_and_downloads(page, tmp_path):
    clip = tmp_path / "talk.wav"
    write_clip(clip, 3.0)
    assert page.locator("#heads input").count() == 3
    page.set_input_files("#file", str(clip))
    page.click("#animate")
    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=30000)
    assert page.evaluate("Object.keys(window.__unitalker.result).sort()") == sorted([VERT, RIG, BS])
    assert page.input_value("#view-head") == VERT
    assert page.input_value("#curve-head") in (RIG, BS)
    still = canvas_hash(page)
    page.click("#play")
    page.wait_for_function("document.querySelector('#player').currentTime > 0.3", timeout=15000)
    a = canvas_hash(page)
    page.wait_for_function("document.querySelector('#player').currentTime > 1.2", timeout=15000)
    b = canvas_hash(page)
    assert len({still, a, b}) == 3, "the face did not move while the audio played"
    assert page.evaluate("window.__unitalker.framesDrawn") > 5
    # The rig head (blendshapes evaluated in the browser) renders too.
    page.select_option("#view-head", RIG)
    c = canvas_hash(page)
    page.wait_for_timeout(300)
    assert canvas_hash(page) != c or page.evaluate("document.querySelector('#player').ended")
    # Orbit with the mouse changes the view.
    page.evaluate("document.querySelector('#player').pause()")
    page.wait_for_timeout(100)
    before = canvas_hash(page)
    box = page.locator("#mesh").bounding_box()
    page.mouse.move(box["x"] + 200, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 350, box["y"] + 220, steps=5)
    page.mouse.up()
    assert canvas_hash(page) != before
    # Downloads hit /v1/animate with the chosen format.
    with page.expect_download(timeout=30000) as dl:
        page.click("#downloads button[data-format=npz]")
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    assert path.name == "talk.npz"
    with np.load(path) as z:
        assert len(z.files) >= 3
    with page.expect_download(timeout=30000) as dl:
        page.click("#downloads button[data-format=glb]")
    assert dl.value.suggested_filename == "talk_glb.zip"
    dl.value.save_as(tmp_path / "g.zip")
    assert zipfile.is_zipfile(tmp_path / "g.zip")
    assert not page.errors, page.errors


def test_live_microphone_stream(page):
    """Chromium's fake microphone -> AudioWorklet -> WebSocket -> frames on the canvas."""
    page.click("#live")
    page.wait_for_function(
        "window.__unitalker.live && window.__unitalker.live.received > 10", timeout=20000
    )
    a = canvas_hash(page)
    page.wait_for_function("window.__unitalker.live.received > 40", timeout=20000)
    assert canvas_hash(page) != a
    page.click("#live")
    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=20000)
    assert "live ended" in page.text_content("#status")
    assert not page.errors, page.errors


def test_words_go_with_the_upload(page, tmp_path):
    """The words field is sent as the request's ``text``: this test model's heads cannot
    take words, so the server's refusal is what the page shows; emptied, the clip animates."""
    clip = tmp_path / "talk.wav"
    write_clip(clip, 1.0)
    page.set_input_files("#file", str(clip))
    page.fill("#words", "bob made a map")
    page.click("#animate")
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=30000)
    assert "422 bad_text" in page.text_content("#status")
    assert "A2F-Synth heads only" in page.text_content("#status")
    assert page.errors and all("422" in e or "Unprocessable" in e for e in page.errors)
    page.errors.clear()
    page.fill("#words", "")
    page.click("#animate")
    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=30000)
    assert not page.errors, page.errors
