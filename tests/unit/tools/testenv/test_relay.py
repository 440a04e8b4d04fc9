"""The relay the suites put before Glance (``tools.testenv.relay``).

Against a small HTTP server on loopback (no deployment): what it passes
on and records, and each fault it injects, so that a test relying on it
fails for the agent's reasons, not the relay's.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import time

import pytest

from tools.testenv.relay import Relay

DATA = bytes(range(256)) * 1024  # 256 KiB


class Origin(http.server.ThreadingHTTPServer):
    """Serves DATA at ``.../file`` and a small JSON elsewhere; keeps the
    bodies it was sent (either framing)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                body = DATA if self.path.endswith('/file') else b'{"a": 1}'
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:  # noqa: N802
                origin.bodies.append(self._body())
                self.send_response(204)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def _body(self) -> bytes:
                if self.headers.get('Transfer-Encoding') != 'chunked':
                    return self.rfile.read(int(self.headers['Content-Length']))
                body = b''
                while size := int(self.rfile.readline().strip(), 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
                return body

        super().__init__(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d' % self.server_address[1]


@pytest.fixture(scope='module')
def origin():
    server = Origin()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def relay(origin):
    with Relay.to(origin.url) as relay:
        yield relay


def get(relay: Relay, path: str, headers=None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection('127.0.0.1', relay.port, timeout=10)
    try:
        conn.request('GET', path, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def test_answers_pass_on_and_requests_are_recorded(relay):
    status, body = get(relay, '/v2/images/i/file', {'X-Auth-Token': 't'})
    assert (status, body) == (200, DATA)
    [request] = relay.requests
    assert (request.method, request.path) == ('GET', '/v2/images/i/file')
    assert request.header('x-auth-token') == 't'
    assert request.header('Range') is None
    assert relay.file_requests == [request]
    assert relay.file_bytes == len(DATA)
    assert relay.answer_bytes > len(DATA)  # the head too


def test_request_bodies_stream_through_in_either_framing(relay, origin):
    conn = http.client.HTTPConnection('127.0.0.1', relay.port, timeout=10)
    conn.request('PUT', '/v2/images/i/file', body=DATA)
    assert conn.getresponse().status == 204
    conn.close()
    conn = http.client.HTTPConnection('127.0.0.1', relay.port, timeout=10)
    conn.request('PUT', '/v2/images/j/file', body=iter([DATA[:1000], DATA]))
    assert conn.getresponse().status == 204
    conn.close()
    assert origin.bodies[-2:] == [DATA, DATA[:1000] + DATA]


def test_rate_slows_answers(relay):
    relay.rate = 1024 * 1024
    started = time.monotonic()
    assert get(relay, '/v2/images/i/file')[1] == DATA
    assert time.monotonic() - started >= 0.2


def test_a_lost_answer_reached_the_server(relay):
    relay.lose = lambda request: request.path.endswith('/file')
    assert get(relay, '/v2/images/i')[0] == 200
    with pytest.raises(http.client.RemoteDisconnected):
        get(relay, '/v2/images/i/file')
    assert len(relay.requests) == 2
    assert relay.file_bytes == 0


def test_a_halved_answer_breaks_off_mid_body(relay):
    relay.halve = True
    with pytest.raises(http.client.IncompleteRead) as info:
        get(relay, '/v2/images/i/file')
    assert len(info.value.partial) == len(DATA) // 2


def test_cut_breaks_off_the_answers_in_flight(relay):
    relay.rate = 64 * 1024
    outcome = []

    def download():
        try:
            outcome.append(get(relay, '/v2/images/i/file'))
        except (http.client.HTTPException, OSError) as e:
            outcome.append(e)

    thread = threading.Thread(target=download)
    thread.start()
    deadline = time.monotonic() + 10
    while relay.file_bytes < 16 * 1024:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    relay.cut()
    thread.join(10)
    assert isinstance(outcome[0], http.client.IncompleteRead)
    assert get(relay, '/v2/images/i/file')[1] == DATA  # at full speed


def test_data_answers_can_be_rechunked_overlong_or_cut(relay):
    relay.chunked = True
    assert get(relay, '/v2/images/i/file')[1] == DATA
    assert b'Transfer-Encoding: chunked' in relay.answer_heads[-1]
    relay.extra = 1000
    assert get(relay, '/v2/images/i/file')[1] == DATA + b'\xee' * 1000
    relay.chunked, relay.extra, relay.cut_after = False, 0, 5000
    with pytest.raises(http.client.IncompleteRead) as info:
        get(relay, '/v2/images/i/file')
    assert len(info.value.partial) == 5000
    assert get(relay, '/v2/images/i')[1] == b'{"a": 1}'  # metadata whole


def test_a_stalled_data_request_gets_no_answer(relay):
    relay.stall = True
    conn = http.client.HTTPConnection('127.0.0.1', relay.port, timeout=0.5)
    conn.request('GET', '/v2/images/i/file')
    with pytest.raises(TimeoutError):
        conn.getresponse()
    conn.close()
    assert len(relay.file_requests) == 1
    assert relay.file_bytes == 0


def test_total_rate_is_shared_by_every_answer(origin):
    with Relay.to(origin.url, total_rate=1024 * 1024) as relay:
        started = time.monotonic()
        calls = [
            threading.Thread(
                target=get, args=(relay, '/v2/images/%d/file' % i)
            )
            for i in range(2)
        ]
        for call in calls:
            call.start()
        for call in calls:
            call.join(10)
        # 2 x 256 KiB through one 1 MiB/s link: half a second at least.
        assert time.monotonic() - started >= 0.45
        assert relay.file_bytes == 2 * len(DATA)
