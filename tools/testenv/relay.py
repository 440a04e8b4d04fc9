"""The HTTP relay on loopback that tests and benchmarks put before a server.

The one proxy of the functional and fault suites and of ``tools/bench``.
``Relay`` forwards each request to its server (one per connection: it
asks the server to close, and streams request bodies of any framing) and
relays the answer. It records what passed, so a test can check what the
agent asked and how many bytes it really took from Glance:

- ``requests``: every request (``Request``: request line, headers);
- ``file_requests``: those for image data (``GET .../file``), and
  ``file_bytes``: the body bytes of their answers passed on;
- ``answer_bytes``: every byte sent back (heads and bodies),
  ``answer_heads``: the heads sent back.

Faults, each settable at any time:

- ``rate``: each answer flows at that many bytes/s; ``total_rate``: all
  answers together (a shared link);
- ``cut()``: every connection open now is broken off (a server or the
  network lost in the middle of a download);
- ``lose`` (True, or a predicate on the ``Request``): the server acts on
  the request and answers, the client hears nothing and its connection
  closes (a retry could duplicate a side effect);
- ``halve`` (the same): the answer is sent with half its body, then the
  connection closes;
- on image data answers: ``chunked`` (re-framed as
  ``Transfer-Encoding: chunked`` without a Content-Length: a stream of
  unknown size; applies to every answer), ``extra`` bytes sent after the
  image's, ``cut_after`` body bytes per answer and then the connection
  closed (a server that trickles and breaks off), ``stall`` (the request
  is held without an answer until the client goes away).

Stdlib only.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import dataclasses
import socket
import threading
import time

BLOCK = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Request:
    """One request as the relay received it (its head, without body)."""

    head: bytes

    @property
    def line(self) -> bytes:
        """The request line, e.g. ``b'GET /v2/images HTTP/1.1'``."""
        return self.head.split(b'\r\n', 1)[0]

    @property
    def method(self) -> str:
        return self.line.split(b' ')[0].decode()

    @property
    def path(self) -> str:
        return self.line.split(b' ')[1].decode()

    def header(self, name: str) -> str | None:
        """A header's value (the name in any case), or None."""
        value = _header(self.head, name.lower().encode())
        return None if value is None else value.decode()


Fault = bool | Callable[[Request], bool]


def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    """An HTTP head (up to the blank line) and what came after it."""
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = conn.recv(BLOCK)
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


def _applies(fault: Fault, request: Request) -> bool:
    return fault(request) if callable(fault) else bool(fault)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy a request body on until the client stops or is cut off."""
    with contextlib.suppress(OSError):
        while data := src.recv(BLOCK):
            dst.sendall(data)


class Relay:
    """Relays to ``target`` (host, port); see the module for the options."""

    def __init__(
        self,
        target: tuple[str, int],
        rate: int | None = None,
        chunked: bool = False,
        extra: int = 0,
        cut_after: int | None = None,
        stall: bool = False,
        lose: Fault = False,
        halve: Fault = False,
        total_rate: int | None = None,
    ) -> None:
        self.target = target
        self.rate = rate
        self._pacer = _Pacer(total_rate) if total_rate else None
        self.chunked = chunked
        self.extra = extra
        self.cut_after = cut_after
        self.stall = stall
        self.lose = lose
        self.halve = halve
        self.requests: list[Request] = []
        self.file_requests: list[Request] = []
        self.file_bytes = 0
        self.answer_bytes = 0
        self.answer_heads: list[bytes] = []
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.port = self._listener.getsockname()[1]
        self.url = 'http://127.0.0.1:%d' % self.port
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @classmethod
    def to(cls, url: str, **kwargs) -> Relay:
        """A relay before the server of ``url`` (``http://HOST:PORT``)."""
        host, port = url.split('//', 1)[1].rsplit(':', 1)
        return cls((host, int(port.rstrip('/'))), **kwargs)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def cut(self, rate: int | None = None) -> None:
        """Break off every connection open now; new ones flow at ``rate``."""
        self.rate = rate
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop accepting, and break off what is still open."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut(self.rate)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._serve, args=(client,), daemon=True
            ).start()

    def _track(self, sock: socket.socket, open_: bool = True) -> None:
        with self._lock:
            if open_:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        try:
            with client, contextlib.suppress(OSError):
                self._relay(client)
        finally:
            self._track(client, open_=False)

    def _relay(self, client: socket.socket) -> None:
        head, body = _read_head(client)
        if not head:
            return
        request = Request(head)
        path = request.line.split(b' ')[1].split(b'?')[0]
        is_file = path.endswith(b'/file')
        with self._lock:
            self.requests.append(request)
            if is_file:
                self.file_requests.append(request)
        if is_file and self.stall:
            self._hold(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=60)
        except OSError:
            return  # the client sees its connection closed
        self._track(upstream)
        try:
            self._forward(client, upstream, request, body, is_file)
        finally:
            upstream.close()
            self._track(upstream, open_=False)

    def _forward(self, client, upstream, request: Request, body, is_file):
        """The request on to the server, its answer back."""
        head = request.head
        lines = _without(head, b'connection')
        upstream.sendall(
            b'\r\n'.join([*lines, b'Connection: close', b'', body])
        )
        length = int(_header(head, b'content-length') or 0)
        if length > len(body) or _header(head, b'transfer-encoding'):
            threading.Thread(
                target=_pump, args=(client, upstream), daemon=True
            ).start()
        self._answer(upstream, client, request, is_file)

    def _hold(self, client: socket.socket) -> None:
        """Answer nothing until the client or the relay closes."""
        client.settimeout(0.2)
        while not self._closed.is_set():
            try:
                if not client.recv(BLOCK):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _answer(self, upstream, client, request: Request, is_file) -> None:
        try:
            head, data = _read_head(upstream)
            if not head:
                return
            if _applies(self.lose, request):
                while upstream.recv(BLOCK):
                    pass  # the server finishes; the client hears nothing
                return
            left = self.cut_after if is_file else None
            if _applies(self.halve, request):
                left = int(_header(head, b'content-length') or 0) // 2
            if self.chunked:
                lines = _without(head, b'content-length', b'transfer-encoding')
                head = b'\r\n'.join([*lines, b'Transfer-Encoding: chunked'])
            with self._lock:
                self.answer_heads.append(head)
            self._write(client, head + b'\r\n\r\n')
            self._body(upstream, client, data, left, is_file)
        except OSError:
            pass
        finally:
            # Cut, lost, or an upstream that died: the answer ends here.
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)

    def _body(self, upstream, client, data: bytes, left, is_file) -> None:
        """Relay the body, up to ``left`` bytes when given."""
        while left is None or left > 0:
            if left is not None:
                data = data[:left]
                left -= len(data)
            if data:
                self._send(client, data, is_file)
            if left == 0:
                return  # cut: the client sees its answer end early
            data = upstream.recv(BLOCK)
            if not data:
                break
        if is_file and self.extra:
            junk = b'\xee' * BLOCK
            for start in range(0, self.extra, BLOCK):
                self._send(client, junk[: self.extra - start], True)
        if self.chunked:
            self._write(client, b'0\r\n\r\n')

    def _send(self, client, data: bytes, is_file: bool) -> None:
        rate = self.rate
        block = len(data) if not rate else max(1, rate // 50)
        if self._pacer is not None:
            block = min(block, self._pacer.block)
        for start in range(0, len(data), block):
            piece = data[start : start + block]
            if self._pacer is not None:
                self._pacer.wait(len(piece))
            if is_file:
                with self._lock:
                    self.file_bytes += len(piece)
            if self.chunked:
                self._write(client, b'%x\r\n%s\r\n' % (len(piece), piece))
            else:
                self._write(client, piece)
            if rate:
                time.sleep(len(piece) / rate)

    def _write(self, client, data: bytes) -> None:
        # Counted first: a client that has read the bytes finds them
        # counted.
        with self._lock:
            self.answer_bytes += len(data)
        client.sendall(data)


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
