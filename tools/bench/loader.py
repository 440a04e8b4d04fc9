"""Downloads run inside the raw no-op server (``noop_server``): the
plainest verified download in Python, one thread each (read, sha512,
write), so that the server's calls can be timed while its own process
moves bytes, as the agent's does."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import requests

PIECE = 1024 * 1024


def download(url: str, token: str, path: str) -> None:
    """``url`` into ``path``, hashed on the way, in this thread; the file
    is removed at the end."""
    digest = hashlib.sha512()
    view = memoryview(bytearray(PIECE))
    with requests.get(
        url, headers={'X-Auth-Token': token}, stream=True, timeout=60
    ) as response:
        response.raise_for_status()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while count := response.raw.readinto(view):
                digest.update(view[:count])
                os.write(fd, view[:count])
        finally:
            os.close(fd)
            os.unlink(path)


class Load:
    """Downloads running in this process, a thread each."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._started = 0.0

    def start(self, url: str, token: str, paths: list[str]) -> None:
        self._errors = []
        self._threads = [
            threading.Thread(target=self._run, args=(url, token, path))
            for path in paths
        ]
        self._started = time.perf_counter()
        for thread in self._threads:
            thread.start()

    def _run(self, url: str, token: str, path: str) -> None:
        try:
            download(url, token, path)
        except Exception as e:  # noqa: BLE001 - reported by wait()
            self._errors.append(e)

    def wait(self) -> float:
        """Seconds from ``start`` until every download ended; the first
        failure raised instead (a rate of failed downloads means nothing)."""
        for thread in self._threads:
            thread.join()
        if self._errors:
            raise self._errors[0]
        return time.perf_counter() - self._started
