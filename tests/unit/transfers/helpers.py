"""What the download tests share: counting Glance's answers."""

import hashlib
import os
import threading
import time

from image_agent import paths
from tests.unit.glance_http import Answer

DATA = b'0123456789' * 1000


def checks(glance_http):
    """Requests that asked Glance for a caller's right (one byte each)."""
    return [
        r
        for r in glance_http.requests
        if r.headers.get('Range') == 'bytes=0-0'
    ]


def image_bytes(glance_http):
    """Bytes of image data Glance sent, its answers to checks aside."""
    return glance_http.sent - len(checks(glance_http))


def fake_image(image_id, data):
    return {
        'id': image_id,
        'size': len(data),
        'os_hash_algo': 'sha512',
        'os_hash_value': hashlib.sha512(data).hexdigest(),
    }


def is_check(request):
    """Whether ``request`` only asked Glance for a caller's right."""
    return request.headers.get('Range') == 'bytes=0-0'


def leftovers(root):
    return [
        os.path.join(d, n)
        for d, _, names in os.walk(root)
        for n in names
        if paths.is_temp_name(n)
    ]


def helpers_wait(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.01)


class Gate:
    """Data answers that wait until the test opens the gate."""

    def __init__(self, glance_http, count=8):
        self.opened = threading.Event()
        self.started = threading.Semaphore(0)
        self._glance_http = glance_http
        glance_http.add(*[Answer(gate=self.opened) for _ in range(count)])
        self._before = len(glance_http.requests)
        threading.Thread(target=self._watch, daemon=True).start()

    @property
    def requests(self):
        return self._glance_http.requests[self._before :]

    @property
    def count(self):
        """Requests for the image's bytes."""
        return len(self.requests) - self.checks

    @property
    def checks(self):
        """Requests asking Glance whether a caller may download."""
        return sum(is_check(r) for r in self.requests)

    def _watch(self):
        seen = 0
        while seen < 8 and not self.opened.is_set():
            while seen < len(self.requests):
                seen += 1
                self.started.release()
            time.sleep(0.01)


def run_in_threads(n, func):
    results, errors = [None] * n, [None] * n

    def target(i):
        try:
            results[i] = func(i)
        except Exception as e:
            errors[i] = e

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results, errors
