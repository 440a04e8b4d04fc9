"""A real HTTP server standing in for Glance's ``/v2/images/<id>/file``.

Downloads stream through keystoneauth and http.client like they do against
Glance; only the server is ours. It serves the bytes the fake Glance of
``conftest`` holds, honours ``Range: bytes=N-`` and ``bytes=N-M`` the
way Glance does (206 with Content-Range; 416 past the end) and records
every request. A test scripts how the next requests are answered with
:class:`Answer`: break off after some bytes, ignore the range, stream
chunked without a length, answer a status, wait on a gate, or trickle.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import http.server
import re
import socket
import struct
import threading
import time
from typing import Any

_FILE_PATH = re.compile(r'^/v2/images/([^/]+)/file$')
_RANGE = re.compile(r'^bytes=(\d+)-(\d*)$')


@dataclasses.dataclass
class Answer:
    """How to answer one request (the defaults: like Glance)."""

    status: int | None = None  # answer this status with no body
    break_after: int | None = None  # body bytes sent before breaking off
    reset: bool = False  # break off with a TCP reset instead of a FIN
    ignore_range: bool = False  # answer 200 with everything
    range_start: int | None = None  # claim (and send from) another start
    send_from: int | None = None  # claim the range asked, send from here
    chunked: bool = False  # Transfer-Encoding: chunked, no Content-Length
    end_at: int | None = None  # chunked: end the body cleanly after N bytes
    gate: threading.Event | None = None  # wait for it before the body/status
    delay: float = 0.0  # seconds between blocks of the body
    block: int = 64 * 1024
    started: threading.Event | None = None  # set once the request came


@dataclasses.dataclass
class Request:
    server: str
    path: str
    headers: Any  # an http.client.HTTPMessage: case-insensitive


class Scripts:
    """What the stand-in servers share: the answers queued for the next
    requests (whichever server gets them), every request, the body bytes
    sent."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.sent = 0
        self.urls: list[str] = []  # the servers sharing this
        self._queue: collections.deque[Answer] = collections.deque()
        self._lock = threading.Lock()

    def add(self, *answers: Answer) -> None:
        with self._lock:
            self._queue.extend(answers)

    def next(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            return self._queue.popleft() if self._queue else Answer()

    def count(self, sent: int) -> None:
        with self._lock:
            self.sent += sent

    def ranges(self) -> list[str | None]:
        """The Range header of every request, in order."""
        return [r.headers.get('Range') for r in self.requests]

    def servers(self) -> list[str]:
        """The server of every request, in order."""
        return [r.server for r in self.requests]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server: _Server

    def log_message(self, *args) -> None:
        """Quiet."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        stub = self.server.stub
        request = Request(stub.url, self.path, self.headers)
        answer = stub.scripts.next(request)
        if answer.started is not None:
            answer.started.set()
        match = _FILE_PATH.match(self.path)
        if answer.status is not None:
            if answer.gate is not None:
                answer.gate.wait(30)
            return self._empty(answer.status)
        if not match or match.group(1) not in stub.glance.images:
            return self._empty(404)
        data = stub.glance.data.get(match.group(1))
        if data is None:
            return self._empty(204)
        self._send_body(answer, data)
        return None

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def _send_body(self, answer: Answer, data: bytes) -> None:
        start = 0
        total = len(data)
        wanted = _RANGE.match(self.headers.get('Range', ''))
        if wanted and not answer.ignore_range:
            start = int(wanted.group(1))
            if wanted.group(2):
                data = data[: int(wanted.group(2)) + 1]
            if start >= len(data):
                self.send_response(416)
                self.send_header('Content-Range', 'bytes */%d' % len(data))
                self.send_header('Content-Length', '0')
                self.end_headers()
                return
            if answer.range_start is not None:
                start = answer.range_start
            self.send_response(206)
            self.send_header(
                'Content-Range',
                'bytes %d-%d/%d' % (start, len(data) - 1, total),
            )
        else:
            self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        if answer.chunked:
            self.send_header('Transfer-Encoding', 'chunked')
        else:
            self.send_header('Content-Length', str(len(data) - start))
        self.end_headers()
        if answer.gate is not None:
            answer.gate.wait(30)
        if answer.send_from is not None:
            start = answer.send_from
        self._stream(answer, memoryview(data)[start:])

    def _stream(self, answer: Answer, body: memoryview) -> None:
        limit = len(body)
        for cut in (answer.break_after, answer.end_at):
            if cut is not None:
                limit = min(limit, cut)
        sent = 0
        while sent < limit:
            block = body[sent : min(limit, sent + answer.block)]
            if answer.chunked:
                self.wfile.write(b'%x\r\n' % len(block))
            self.wfile.write(block)
            if answer.chunked:
                self.wfile.write(b'\r\n')
            self.wfile.flush()
            sent += len(block)
            self.server.stub.scripts.count(len(block))
            if answer.delay:
                time.sleep(answer.delay)
        if answer.break_after is not None:
            self._break_off(answer.reset)
        elif answer.chunked:
            self.wfile.write(b'0\r\n\r\n')

    def _break_off(self, reset: bool) -> None:
        self.wfile.flush()
        if reset:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)
            )
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    stub: GlanceDataServer


class GlanceDataServer:
    """One stand-in Glance server on loopback, serving ``glance.data``."""

    def __init__(self, glance, scripts: Scripts) -> None:
        self.glance = glance
        self.scripts = scripts
        self._server = _Server(('127.0.0.1', 0), _Handler)
        self._server.stub = self
        self.url = 'http://127.0.0.1:%d' % self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
