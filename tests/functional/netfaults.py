"""Network faults on loopback for functional tests.

``LoopbackProxy`` forwards each request to a real server and records what
was sent. With ``drop_responses`` (True, or a predicate on the request line)
it lets the server act on the request and answer, then closes the client's
connection without passing the answer on:
a request that surely reached the server but whose response was lost, the
case where a retry could duplicate a side effect.
"""

from collections.abc import Callable
import socket
import threading


def _read_http_request(conn: socket.socket) -> bytes:
    """Read one HTTP/1.1 request (headers and a Content-Length body)."""
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b'\r\n\r\n')
    length = 0
    chunked = False
    for line in head.split(b'\r\n')[1:]:
        name, _, value = line.partition(b':')
        if name.strip().lower() == b'content-length':
            length = int(value.strip())
        if name.strip().lower() == b'transfer-encoding':
            chunked = b'chunked' in value.lower()
    if chunked:
        while not body.endswith(b'0\r\n\r\n'):
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
    else:
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
    return head + b'\r\n\r\n' + body


def _with_connection_close(request: bytes) -> bytes:
    """Ask the server to close, so that reading to EOF reads it all."""
    head, _, body = request.partition(b'\r\n\r\n')
    lines = [
        line
        for line in head.split(b'\r\n')
        if not line.lower().startswith(b'connection:')
    ]
    lines.append(b'Connection: close')
    return b'\r\n'.join(lines) + b'\r\n\r\n' + body


class LoopbackProxy:
    """Forwards requests to ``target`` (host, port), one per connection."""

    def __init__(
        self,
        target: tuple[str, int],
        drop_responses: bool | Callable[[bytes], bool] = False,
    ) -> None:
        self.target = target
        self.drop_responses = drop_responses
        # Request lines, and the whole heads (headers) of the requests.
        self.requests: list[bytes] = []
        self.heads: list[bytes] = []
        self._server = socket.create_server(('127.0.0.1', 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self.url = 'http://127.0.0.1:%d' % self.port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> 'LoopbackProxy':
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    def _should_drop(self, request_line: bytes) -> bool:
        if callable(self.drop_responses):
            return self.drop_responses(request_line)
        return bool(self.drop_responses)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(30)
                request = _read_http_request(conn)
                if not request:
                    continue
                request = _with_connection_close(request)
                line = request.split(b'\r\n', 1)[0]
                self.requests.append(line)
                drop = self._should_drop(line)
                self.heads.append(request.partition(b'\r\n\r\n')[0])
                with socket.create_connection(self.target, 30) as upstream:
                    upstream.sendall(request)
                    while chunk := upstream.recv(65536):
                        # When dropping, the server acts and answers but
                        # the client hears nothing.
                        if not drop:
                            conn.sendall(chunk)


def dead_server_url() -> str:
    """A loopback URL on which nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return 'http://127.0.0.1:%d' % port
