"""Clients that hold on: trickled or huge uploads, a WebSocket that stops reading.

Each is refused or closed after its configured limit, never holds a place for ever, and
does not stall the other clients. Raw sockets on loopback, every read with a timeout.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
import time
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from serve_testdata import BS, VERT, run_server
from tests.hostile_inputs import flac_bytes, tone

READ_TIMEOUT = 20.0  # bounds every blocking read in this file


def _connect(url: str, rcvbuf: int | None = None) -> socket.socket:
    u = urlparse(url)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(READ_TIMEOUT)
    s.connect((u.hostname, u.port))
    return s


def _post_head(length: int) -> bytes:
    return (
        "POST /v1/animate HTTP/1.1\r\nHost: test\r\n"
        "Content-Type: multipart/form-data; boundary=XyZ\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _read_response(s: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of one HTTP response (the server closes after errors)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    n = int(headers["content-length"])
    while len(body) < n:
        chunk = s.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    return int(lines[0].split()[1]), json.loads(body[:n])


def _upload(client: httpx.Client, content: bytes) -> httpx.Response:
    files = {"audio": ("a.flac", content, "application/octet-stream")}
    return client.post("/v1/animate", files=files, data={"heads": BS})


class Trickle:
    """An upload that declares a body and sends one byte every ``period`` seconds."""

    def __init__(self, url: str, period: float = 0.2) -> None:
        self.sock = _connect(url)
        self.sock.sendall(_post_head(100_000) + b"--XyZ\r\n")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(period,), daemon=True)
        self.thread.start()

    def _run(self, period: float) -> None:
        while not self.stop.wait(period):
            try:
                self.sock.sendall(b"x")
            except OSError:
                return

    def response(self) -> tuple[int, dict]:
        try:
            return _read_response(self.sock)
        finally:
            self.stop.set()
            self.thread.join(5)
            self.sock.close()


@pytest.fixture(scope="module")
def strict_server(model):
    """One job at a time, one more admitted; bodies must arrive within 4 s (time enough
    for the other upload of the trickle test on a loaded machine)."""
    from unitalker.serve import ServeSettings, create_app

    settings = ServeSettings(
        max_concurrency=1, queue_limit=1, max_upload_mb=1.0, upload_timeout_seconds=4.0
    )
    with run_server(create_app(model, settings)) as srv:
        yield srv


def test_huge_declared_length_is_413_at_once(strict_server):
    s = _connect(strict_server.url)
    try:
        s.sendall(_post_head(10**12))  # and never a byte of body
        status, body = _read_response(s)
    finally:
        s.close()
    assert status == 413 and body["error"] == "too_large"


def test_chunked_body_over_the_limit_is_counted(strict_server):
    def body():  # a well-formed multipart start, then 2.5 MiB in chunks, no Content-Length
        yield b'--XyZ\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'
        for _ in range(40):
            yield b"\0" * 65536

    with httpx.Client(base_url=strict_server.url, timeout=READ_TIMEOUT) as c:
        r = c.post(
            "/v1/animate",
            content=body(),
            headers={"content-type": "multipart/form-data; boundary=XyZ"},
        )
        assert r.status_code == 413 and r.json()["error"] == "too_large"
        assert c.get("/health").json()["jobs"]["receiving"] == 0


def test_trickling_upload_times_out_without_stalling_others(strict_server):
    clip = flac_bytes(tone(1.0))
    with httpx.Client(base_url=strict_server.url, timeout=READ_TIMEOUT) as c:
        slow = Trickle(strict_server.url)
        try:
            for _ in range(200):  # admitted (before its body) as soon as its headers arrive
                if c.get("/health").json()["jobs"]["receiving"] == 1:
                    break
                time.sleep(0.01)
            r = _upload(c, clip)  # the second place: served while the trickle goes on
            assert r.status_code == 200, r.text
            assert c.get("/health").json()["jobs"]["receiving"] == 1  # still trickling
        finally:
            status, body = slow.response()
        assert status == 408 and body["error"] == "timeout"
        assert "4 s" in body["detail"]
        assert c.get("/health").json()["jobs"]["receiving"] == 0  # its place given back
        assert _upload(c, clip).status_code == 200


def test_admission_before_the_body(model):
    """No place left: a new upload is refused from its headers, before any body is sent."""
    from unitalker.serve import ServeSettings, create_app

    settings = ServeSettings(max_concurrency=1, queue_limit=0, upload_timeout_seconds=1.5)
    with run_server(create_app(model, settings)) as srv:
        slow = Trickle(srv.url)
        try:
            for _ in range(200):
                if httpx.get(srv.url + "/health").json()["jobs"]["receiving"] == 1:
                    break
                time.sleep(0.01)
            s = _connect(srv.url)
            try:
                s.sendall(_post_head(50_000))  # body never sent
                status, body = _read_response(s)
            finally:
                s.close()
            assert status == 503 and body["error"] == "overloaded"
            assert "1 uploads arriving" in body["detail"]
        finally:
            assert slow.response()[0] == 408


# ---- WebSocket --------------------------------------------------------------------------


def _ws_open(url: str, rcvbuf: int | None = None) -> socket.socket:
    """A WebSocket handshake on a raw socket (so the test decides when, or if, to read)."""
    s = _connect(url, rcvbuf)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            "GET /v1/stream HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = s.recv(1)  # byte by byte: leave the first frames unread
        assert b, "closed during the handshake"
        head += b
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = np.resize(np.frombuffer(mask, np.uint8), n)
    return head + mask + (np.frombuffer(payload, np.uint8) ^ key).tobytes()


def _stream_normally(ws_url: str, seconds: float = 1.0) -> dict:
    from websockets.sync.client import connect

    pcm = (tone(seconds) * 32767).astype("<i2").tobytes()
    with connect(ws_url + "/v1/stream", open_timeout=READ_TIMEOUT) as ws:
        ws.send(json.dumps({"heads": [BS]}))
        assert json.loads(ws.recv(READ_TIMEOUT))["type"] == "ready"
        ws.send(pcm)
        ws.send(json.dumps({"type": "end"}))
        while True:
            m = json.loads(ws.recv(READ_TIMEOUT))
            if m["type"] in ("done", "error"):
                return m


def test_websocket_that_stops_reading_is_closed(model):
    """A client that sends audio but never reads is closed after the send timeout and its
    slot given back; meanwhile another stream runs to the end."""
    from unitalker.serve import ServeSettings, create_app

    settings = ServeSettings(max_streams=2, max_seconds=600, stream_send_timeout_seconds=1.0)
    with run_server(create_app(model, settings)) as srv:

        def streams() -> dict:
            return httpx.get(srv.url + "/health", timeout=READ_TIMEOUT).json()["streams"]

        s = _ws_open(srv.ws_url, rcvbuf=4096)
        try:
            s.sendall(_ws_frame(0x1, json.dumps({"heads": [VERT], "format": "json"}).encode()))
            second = (tone(1.0) * 32767).astype("<i2").tobytes()
            # Keep sending until the server gives up on it: the frames it cannot deliver
            # pile up in the socket buffers, whatever their size on this machine.
            for i in range(600):
                try:
                    s.sendall(_ws_frame(0x2, second))
                except OSError:  # the server has closed (or stopped reading from) it
                    break
                if i == 3:
                    assert _stream_normally(srv.ws_url)["type"] == "done"  # not stalled by it
                if i % 4 == 3 and streams()["closed_not_reading"] == 1:
                    break
            for _ in range(int(READ_TIMEOUT / 0.05)):
                if streams()["open"] == 0:
                    break
                time.sleep(0.05)
            assert streams() == {"open": 0, "max": 2, "closed_not_reading": 1}
            assert _stream_normally(srv.ws_url)["type"] == "done"
        finally:
            s.close()
