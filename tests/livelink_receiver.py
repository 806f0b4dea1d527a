"""A loopback UDP receiver with its own Live Link Face parser (independent of unitalker's)."""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass

import numpy as np


@dataclass
class Packet:
    version: int
    device_id: str
    subject: str
    frame: int
    sub_frame: float
    rate: tuple[int, int]
    values: np.ndarray  # [61]


def parse(data: bytes) -> Packet:
    """Packet version 6 as Unreal's AppleARKitFaceSupport reads it (big-endian)."""
    version = data[0]
    (n_dev,) = struct.unpack(">i", data[1:5])
    device = data[5 : 5 + n_dev].decode()
    pos = 5 + n_dev
    (n_sub,) = struct.unpack(">i", data[pos : pos + 4])
    subject = data[pos + 4 : pos + 4 + n_sub].decode()
    pos += 4 + n_sub
    frame, sub, num, den, count = struct.unpack(">ifiiB", data[pos : pos + 17])
    assert count == 61
    values = np.asarray(struct.unpack(">61f", data[pos + 17 :]), dtype=np.float32)
    return Packet(version, device, subject, frame, sub, (num, den), values)


class Receiver:
    """Collects datagrams on 127.0.0.1:<free port> in a thread until :meth:`stop`."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.packets: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.packets.append(data)

    def wait_for(self, n: int, timeout: float = 10.0) -> None:
        """Block until ``n`` packets arrived (bounded: fails after ``timeout`` seconds)."""
        import time

        end = time.monotonic() + timeout
        while len(self.packets) < n and time.monotonic() < end:
            time.sleep(0.01)

    def stop(self) -> list[Packet]:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        return [parse(p) for p in self.packets]

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._stop.is_set():
            self.stop()
