"""Live Link Face UDP: packets a loopback receiver decodes on its own match the CSV export."""

from __future__ import annotations

import csv
import struct

import numpy as np
import pytest
from tests.livelink_receiver import Receiver, parse
from tests.meshdata import random_animation

from unitalker import conventions
from unitalker.animation import Animation
from unitalker.conventions import LIVE_LINK_ORDER, LIVE_LINK_ROTATIONS
from unitalker.export import get_writer, write_outputs
from unitalker.export.livelink_csv import timecode
from unitalker.export.livelink_udp import (
    CHANNELS,
    LiveLinkError,
    LiveLinkSender,
    decode_packet,
    encode_packet,
    frame_rate,
    parse_address,
)

ARKIT_REGISTRY = [
    c.name
    for c in conventions.all_conventions()
    if c.kind == "blendshapes" and get_writer("csv").fits(random_animation(c, 1))
]


def _csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_channels_are_the_live_link_61() -> None:
    assert len(CHANNELS) == 61
    assert CHANNELS[:52] == LIVE_LINK_ORDER and CHANNELS[52:] == LIVE_LINK_ROTATIONS
    assert CHANNELS[0] == "EyeBlinkLeft" and CHANNELS[17] == "JawOpen"
    assert CHANNELS[51] == "TongueOut" and CHANNELS[52] == "HeadYaw"
    assert CHANNELS[-1] == "RightEyeRoll"


def test_packet_layout_byte_by_byte() -> None:
    values = np.arange(61, dtype=np.float32) / 100
    pkt = encode_packet(values, frame=42, fps=30, subject="face", device_id="dev1")
    expected = (
        b"\x06"
        + b"\x00\x00\x00\x04dev1"
        + b"\x00\x00\x00\x04face"
        + struct.pack(">ifii", 42, 0.0, 30, 1)
        + b"\x3d"  # 61
        + struct.pack(">61f", *values)
    )
    assert pkt == expected
    back = decode_packet(pkt)
    assert (back.version, back.device_id, back.subject, back.frame, back.rate) == (
        6,
        "dev1",
        "face",
        42,
        (30, 1),
    )
    np.testing.assert_array_equal(back.values, values)
    assert back.seconds == pytest.approx(1.4)


def test_frame_rates_and_addresses() -> None:
    assert frame_rate(30) == (30, 1) and frame_rate(25.0) == (25, 1)
    assert frame_rate(29.97) == (30000, 1001) and frame_rate(59.94) == (60000, 1001)
    assert parse_address("127.0.0.1:11112") == ("127.0.0.1", 11112)
    assert parse_address("localhost") == ("localhost", 11111)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("host:port", "host:0", ":11111", "h:70000"):
        with pytest.raises(LiveLinkError, match="bad Live Link address"):
            parse_address(bad)


def test_malformed_packets_are_clear_errors() -> None:
    pkt = encode_packet(np.zeros(61), frame=0, fps=30, subject="s", device_id="d")
    with pytest.raises(LiveLinkError, match="version 5"):
        decode_packet(b"\x05" + pkt[1:])
    with pytest.raises(LiveLinkError, match="blendshapes"):
        decode_packet(pkt[:-4])
    with pytest.raises(LiveLinkError, match="malformed"):
        decode_packet(pkt[:7])
    with pytest.raises(LiveLinkError, match="61 values"):
        encode_packet(np.zeros(52), frame=0, fps=30, subject="s", device_id="d")
    with pytest.raises(LiveLinkError, match="subject name"):
        encode_packet(np.zeros(61), frame=0, fps=30, subject="", device_id="d")


@pytest.mark.parametrize("name", ARKIT_REGISTRY)
def test_sender_matches_csv_export(name: str, tmp_path) -> None:
    """Every ARKit convention: the 61 values, their order and the frame times a receiver
    decodes are the CSV export's rows (names by the CSV header, time by its Timecode)."""
    conv = conventions.get(name)
    anim = random_animation(conv, n_frames=40)
    (path,) = write_outputs({name: anim}, tmp_path, "clip", "csv")
    header, rows = _csv(path)
    with Receiver() as rx:
        with LiveLinkSender("127.0.0.1", rx.port, name, subject="take1", device_id="d") as tx:
            tx.send(anim.data[:25], 0)  # in two chunks, as a stream produces them
            tx.send(anim.data[25:], 25)
        rx.wait_for(40)
        packets = rx.stop()
    assert len(packets) == 40
    assert header[2:] == list(CHANNELS)  # the CSV's column order is the packet's
    for k, (p, row) in enumerate(zip(packets, rows, strict=True)):
        assert (p.version, p.subject, p.device_id, p.frame, p.sub_frame) == (6, "take1", "d", k, 0)
        assert p.rate == frame_rate(conv.fps)
        assert timecode(p.frame, p.rate[0] / p.rate[1]) == row[0]
        np.testing.assert_allclose(p.values, [float(x) for x in row[2:]], atol=1e-6)


def test_sender_refuses_non_arkit_heads() -> None:
    with pytest.raises(LiveLinkError, match="ARKit"):
        LiveLinkSender("127.0.0.1", 11111, "flame_params_from_dadhead")


def test_paced_sender_keeps_the_frame_clock(monkeypatch) -> None:
    """Pacing sleeps until k / fps after frame 0 (a fake clock: no wall-clock assertions)."""
    from unitalker.export import livelink_udp

    clock = {"t": 100.0}
    slept: list[float] = []
    monkeypatch.setattr(livelink_udp, "_clock", lambda: clock["t"])

    def sleep(s: float) -> None:
        slept.append(s)
        clock["t"] += s

    monkeypatch.setattr(livelink_udp, "_sleep", sleep)
    name = ARKIT_REGISTRY[0]
    anim = Animation(name, 25.0, np.zeros((5, conventions.get(name).dim)))
    with Receiver() as rx:
        with LiveLinkSender("127.0.0.1", rx.port, name, fps=25.0, pace=True) as tx:
            tx.send(anim.data, 0)
        rx.wait_for(5)
        packets = rx.stop()
    assert [p.frame for p in packets] == [0, 1, 2, 3, 4]
    assert clock["t"] == pytest.approx(100.0 + 4 / 25)
    assert slept[0] == 0 and all(s == pytest.approx(1 / 25) for s in slept[1:])


def test_receiver_parser_reads_ours() -> None:
    """The test receiver's own parser and unitalker's decoder agree."""
    pkt = encode_packet(np.linspace(0, 1, 61), frame=7, fps=29.97, subject="s", device_id="x")
    a, b = parse(pkt), decode_packet(pkt)
    assert (a.frame, a.rate, a.subject) == (b.frame, b.rate, b.subject) == (7, (30000, 1001), "s")
    np.testing.assert_array_equal(a.values, b.values)
