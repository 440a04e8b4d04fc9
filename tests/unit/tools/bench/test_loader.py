"""The raw server's own downloads (tools.bench.loader): every byte read,
hashed, written, and nothing left behind."""

import http.server
import os
import threading

import pytest

from tools.bench import loader

BODY = os.urandom(3 * loader.PIECE + 17)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        if self.headers.get('X-Auth-Token') != 'token':
            self.send_error(401)
            return
        self.send_response(200)
        self.send_header('Content-Length', str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


@pytest.fixture
def server_url():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d/file' % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_downloads_run_together_and_leave_no_file(server_url, tmp_path):
    written = []
    real_write = os.write

    def counting_write(fd, data):
        written.append(len(data))
        return real_write(fd, data)

    load = loader.Load()
    paths = [str(tmp_path / ('d%d' % i)) for i in range(4)]
    loader.os.write, saved = counting_write, loader.os.write
    try:
        load.start(server_url, 'token', paths)
        assert load.wait() > 0
    finally:
        loader.os.write = saved
    assert sum(written) == 4 * len(BODY)
    assert os.listdir(tmp_path) == []


def test_a_refused_download_leaves_no_file(server_url, tmp_path):
    with pytest.raises(loader.requests.HTTPError):
        loader.download(server_url, 'wrong', str(tmp_path / 'd'))
    assert os.listdir(tmp_path) == []
