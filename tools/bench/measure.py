"""One measurement each: a timed download, a hash, a latency, an RSS peak.

Every function measures one thing once and cleans up after itself; the
suite interleaves and repeats them.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import hashlib
import os
import subprocess
import threading
import time

import glanceclient
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint

from tools.bench import environment

HASH_PIECE = 4 * 1024 * 1024


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def agent_download(env, host: str, image: dict, path: str) -> float:
    """Seconds of one download through the agent (verified, fsynced)."""
    try:
        return timed(
            lambda: env.api.download(env.context, image['id'], path, host=host)
        )
    finally:
        _remove(path)


def glance_client(env) -> glanceclient.Client:
    """A python-glanceclient v2 client with the caller's token."""
    return glanceclient.Client(
        '2',
        session=ks_session.Session(),
        auth=token_endpoint.Token(None, env.token),
        endpoint_override=env.glance_url,
    )


def glanceclient_download(client, image: dict, path: str, sync: bool) -> float:
    """The reference's path: ``images.data()`` with its own checksum,
    every chunk written to a file (fsynced on disk, as Cinder does)."""

    def run() -> None:
        body = client.images.data(image['id'])
        with open(path, 'wb') as f:
            for chunk in body:
                f.write(chunk)
            if sync:
                f.flush()
                os.fsync(f.fileno())

    try:
        return timed(run)
    finally:
        _remove(path)


def curl_download(env, image: dict, path: str, sync: bool) -> float:
    """curl of the same URL; on disk followed by an fsync of the file."""

    def run() -> None:
        subprocess.run(
            [
                'curl',
                '-sf',
                '-H',
                'X-Auth-Token: ' + env.token,
                '-o',
                path,
                env.file_url(image['id']),
            ],
            check=True,
        )
        if sync:
            subprocess.run(['sync', path], check=True)

    try:
        return timed(run)
    finally:
        _remove(path)


def hash_input(size: int) -> memoryview:
    """``size`` bytes to hash in memory: a random 16 MiB block repeated
    (sha512's rate does not depend on the bytes, but every page is a real
    one, as a downloaded file's are)."""
    block = os.urandom(min(size, 16 * 1024 * 1024))
    whole, rest = divmod(size, len(block))
    return memoryview(bytearray(block) * whole + block[:rest])


def _sha512(data: memoryview) -> None:
    digest = hashlib.sha512()
    for start in range(0, len(data), HASH_PIECE):
        digest.update(data[start : start + HASH_PIECE])


def sha512_memory(data: memoryview) -> float:
    """Seconds to hash ``data`` in memory, in 4 MiB pieces."""
    return timed(lambda: _sha512(data))


def curl_and_sha512(
    env, image: dict, path: str, sync: bool, data: memoryview
) -> float:
    """Seconds until both ``curl_download`` and ``sha512_memory`` of as
    many bytes, started together, have ended: the two jobs of a verified
    download at once, sharing the CPUs with each other and Glance, with
    nothing connecting them (the machine's limit for the agent, which
    must do both)."""
    hashing = threading.Thread(target=_sha512, args=(data,))

    def run() -> None:
        hashing.start()
        try:
            curl_download(env, image, path, sync)
        finally:
            hashing.join()

    return timed(run)


def latencies_ms(call: Callable[[], object], count: int) -> list[float]:
    """Milliseconds of ``count`` sequential calls."""
    result = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        result.append((time.perf_counter() - started) * 1000)
    return result


class RssPeak:
    """Samples a process's RSS every few ms; ``growth`` over the start."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid = pid
        self.baseline = environment.rss_bytes(pid)
        self.peak = self.baseline
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, environment.rss_bytes(self.pid))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, environment.rss_bytes(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


class Pinger:
    """Calls ``call`` every ``interval`` seconds in a thread, as a monitor
    would ping; keeps the latencies. (Back to back, the pings themselves
    would take a good part of a small machine's CPUs from what they
    watch.)"""

    def __init__(
        self, call: Callable[[], object], interval: float = 0.01
    ) -> None:
        self.latencies: list[float] = []
        self._call = call
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Pinger:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            started = time.perf_counter()
            self._call()
            self.latencies.append((time.perf_counter() - started) * 1000)
