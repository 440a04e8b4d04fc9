"""An HTTP relay in front of one Glance server that counts image bytes.

``Relay`` forwards each request (one per connection: it asks the server to
close) and relays the answer, optionally at a limited rate (``rate`` per
answer, ``total_rate`` for all answers at once: a shared NIC), optionally
re-framed as ``Transfer-Encoding: chunked`` without a Content-Length (a
stream of unknown size). It counts the body bytes of the image data
answers (``GET .../file``) it passed on, which is how tests and benchmarks
see how many bytes a download really took from Glance.

Misbehaving servers, for image data answers only: ``extra`` bytes sent
after the image's (with ``chunked``: more bytes than the size),
``cut_after`` body bytes per answer and then the connection closed (a
server that trickles a little and breaks off), ``stall`` (the request is
held without an answer until the client goes away). Stdlib only.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    """An HTTP head (up to the blank line) and what came after it."""
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b'', b''
        data += chunk
    head, _, rest = data.partition(b'\r\n\r\n')
    return head, rest


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b'\r\n')[1:]:
        key, _, value = line.partition(b':')
        if key.strip().lower() == name:
            return value.strip()
    return None


def _without(head: bytes, *names: bytes) -> list[bytes]:
    return [
        line
        for line in head.split(b'\r\n')
        if line.partition(b':')[0].strip().lower() not in names
    ]


class Relay:
    """Relays to ``target`` (host, port); ``rate`` bytes/s when given."""

    def __init__(
        self,
        target: tuple[str, int],
        rate: int | None = None,
        chunked: bool = False,
        extra: int = 0,
        cut_after: int | None = None,
        stall: bool = False,
        total_rate: int | None = None,
    ) -> None:
        self.target = target
        self.rate = rate
        self._pacer = _Pacer(total_rate) if total_rate else None
        self.chunked = chunked
        self.extra = extra
        self.cut_after = cut_after
        self.stall = stall
        self.file_bytes = 0  # body bytes of image data answers passed on
        self.file_requests: list[bytes] = []  # their request heads
        self.answer_heads: list[bytes] = []  # the heads sent to the client
        self._lock = threading.Lock()
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.url = 'http://127.0.0.1:%d' % self._listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @classmethod
    def to(cls, url: str, **kwargs) -> Relay:
        host, port = url.split('//', 1)[1].rsplit(':', 1)
        return cls((host, int(port)), **kwargs)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._serve, args=(client,), daemon=True
            ).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head, body = _read_head(client)
            if not head:
                return
            length = int(_header(head, b'content-length') or 0)
            while len(body) < length:
                chunk = client.recv(65536)
                if not chunk:
                    return
                body += chunk
            lines = _without(head, b'connection')
            request = b'\r\n'.join([*lines, b'Connection: close'])
            is_file = lines[0].split(b' ')[1].split(b'?')[0].endswith(b'/file')
            if is_file:
                with self._lock:
                    self.file_requests.append(head)
                if self.stall:
                    self._hold(client)
                    return
            try:
                upstream = socket.create_connection(self.target, timeout=60)
            except OSError:
                return  # the client sees its connection closed
            with upstream:
                upstream.sendall(request + b'\r\n\r\n' + body)
                self._answer(upstream, client, is_file)

    def _hold(self, client: socket.socket) -> None:
        """Answer nothing until the client or the relay closes."""
        client.settimeout(0.2)
        while not self._closed.is_set():
            try:
                if not client.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _answer(self, upstream, client, is_file: bool) -> None:
        head, rest = _read_head(upstream)
        if not head:
            return
        if self.chunked:
            lines = _without(head, b'content-length', b'transfer-encoding')
            head = b'\r\n'.join([*lines, b'Transfer-Encoding: chunked'])
        with self._lock:
            self.answer_heads.append(head)
        try:
            client.sendall(head + b'\r\n\r\n')
            data = rest
            left = self.cut_after if is_file else None
            while left is None or left > 0:
                if left is not None:
                    data = data[:left]
                    left -= len(data)
                if data:
                    self._send(client, data, is_file)
                if left == 0:
                    return  # cut: the client sees its answer end early
                data = upstream.recv(65536)
                if not data:
                    break
            if is_file and self.extra:
                self._send_extra(client)
            if self.chunked:
                client.sendall(b'0\r\n\r\n')
        except OSError:
            pass
        finally:
            # An upstream that died ends the client's answer early.
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)

    def _send_extra(self, client) -> None:
        """``extra`` bytes more than the image's, until the client stops."""
        junk = b'\xee' * 65536
        left = self.extra
        while left > 0:
            self._send(client, junk[:left], True)
            left -= len(junk)

    def _send(self, client, data: bytes, is_file: bool) -> None:
        block = len(data) if self.rate is None else max(1, self.rate // 50)
        if self._pacer is not None:
            block = min(block, self._pacer.block)
        for start in range(0, len(data), block):
            piece = data[start : start + block]
            if self._pacer is not None:
                self._pacer.wait(len(piece))
            if self.chunked:
                client.sendall(b'%x\r\n%s\r\n' % (len(piece), piece))
            else:
                client.sendall(piece)
            if is_file:
                with self._lock:
                    self.file_bytes += len(piece)
            if self.rate:
                time.sleep(len(piece) / self.rate)


class _Pacer:
    """Spaces the pieces of every answer so that together they flow at
    ``rate`` bytes/s at most."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.block = max(1, rate // 200)
        self._lock = threading.Lock()
        self._free_at = time.monotonic()

    def wait(self, size: int) -> None:
        """Reserve the next ``size`` bytes of the link; wait for them."""
        with self._lock:
            start = max(time.monotonic(), self._free_at)
            self._free_at = start + size / self.rate
            end = self._free_at
        delay = end - time.monotonic()
        if delay > 0:
            time.sleep(delay)
