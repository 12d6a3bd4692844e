"""A real MJPEG stream over HTTP (what IP cameras serve), and scaseg-run in a child process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]


class MjpegServer:
    """A multipart/x-mixed-replace MJPEG stream on 127.0.0.1 (how IP cameras serve video),
    served from threads of this process. After `drop_after` frames it cuts the connection in the
    middle of a frame and stops listening (the camera went away); `back_after_s` later it
    listens again on the same port and streams without end. With `stall`, it instead stops
    sending after `drop_after` frames and keeps the connection open (a frozen camera)."""

    def __init__(
        self, drop_after: int, back_after_s: float | None, fps: float = 50.0, stall: bool = False
    ):
        self.drop_after, self.back_after_s, self.period_s = drop_after, back_after_s, 1.0 / fps
        self.stall = stall
        self.port = 0
        self.dropped = threading.Event()
        self.served = 0
        self._server: ThreadingHTTPServer | None = None
        self._frames = [
            cv2.imencode(".jpg", np.full((48, 64, 3), (i * 9) % 256, np.uint8))[1].tobytes()
            for i in range(16)
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self, drop: bool = True) -> MjpegServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                with contextlib.suppress(OSError):  # the client went away
                    owner.stream(self.wfile, drop)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stream(self, out, drop: bool) -> None:
        while self._server is not None:
            jpg = self._frames[self.served % len(self._frames)]
            part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
            if drop and self.stall and self.served == self.drop_after:
                while self._server is not None:  # silent, connection open
                    time.sleep(0.05)
                return
            if drop and self.served == self.drop_after:
                out.write(part + jpg[: len(jpg) // 2])  # cut mid-frame, like a killed server
                out.flush()
                threading.Thread(target=self._go_down, daemon=True).start()
                return
            out.write(part + jpg + b"\r\n")
            out.flush()
            self.served += 1
            time.sleep(self.period_s)

    def _go_down(self) -> None:
        self.stop()
        self.dropped.set()
        if self.back_after_s is not None:
            time.sleep(self.back_after_s)
            self.start(drop=False)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The real scaseg-run in a child process (60 s limit), run from `cwd`."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
