"""Calls run in the background, and waiting for what they do.

Shared by the functional and the fault tests: a test starts a transfer,
waits until it is under way (bytes through a relay, a temporary file
growing), then acts on the agent, Glance or the broker.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

from image_agent import paths


class Background:
    """Run a call in a thread; keep its result or error and its timing."""

    def __init__(self, func, name: str = 'call') -> None:
        self.result = None
        self.error: BaseException | None = None
        self.started_at = time.monotonic()
        self.finished_at: float | None = None
        self._thread = threading.Thread(
            target=self._run, args=(func,), name=name, daemon=True
        )
        self._thread.start()

    def _run(self, func) -> None:
        try:
            self.result = func()
        except BaseException as e:  # noqa: BLE001 - kept for the test
            self.error = e
        self.finished_at = time.monotonic()

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def join(self, timeout: float = 60) -> Background:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), (
            'the call did not return within %.0f s' % timeout
        )
        return self


def wait_until(
    check, timeout: float = 30, what: str = 'a condition', interval=0.02
):
    """``check()``'s first true value, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, 'timed out waiting for ' + what
        time.sleep(interval)


def temp_files(*roots: str) -> list[str]:
    """Temporary download files (the agent's) under ``roots``."""
    found = []
    for root in roots:
        for directory, _, names in os.walk(root):
            found += [
                os.path.join(directory, n)
                for n in names
                if paths.is_temp_name(n)
            ]
    return found


def largest_temp_file(root: str) -> int:
    """The size of the largest temporary file under ``root``, or -1."""
    sizes = []
    for path in temp_files(root):
        with contextlib.suppress(OSError):
            sizes.append(os.lstat(path).st_size)
    return max(sizes, default=-1)


def download_under_way(api, ctxt, image_id, agent, name, written=0):
    """Start ``agent`` downloading ``image_id`` to ``name`` in its root;
    return (the call, the path) once ``written`` bytes are in the
    temporary file: a signal or a fault sent now lands mid-transfer."""
    path = os.path.join(agent.root, name)
    call = Background(
        lambda: api.download(ctxt, image_id, path, host=agent.host)
    )
    wait_until(
        lambda: largest_temp_file(agent.root) >= written,
        30,
        'the download to write',
    )
    return call, path
