"""Serving a cache entry while it is still being written.

A cache entry is written as a temporary file in the cache directory
(``.<entry name>.image-agent-tmp-XXXXXXXX``), then renamed into place. A
peer asking for an image this agent is downloading right now gets the
bytes written so far, and then the rest as they arrive: a tree of agents
streams an image down all its levels at once instead of level by level.

The bytes are not verified yet: the receiving agent hashes every byte
against Glance's hash anyway (a download that turns out wrong here turns
out wrong there too, and is thrown away there). The file is read through
its own descriptor, which keeps the bytes even once the file is renamed
(it became the entry) or unlinked (the download failed: the answer then
ends early, and the receiver resumes elsewhere). So does a file that
shrinks (its download started over from another source) or stops growing
for ``[peers] timeout`` seconds.
"""

import contextlib
import os
import time

from image_agent import paths

# Seconds between looks at a file that has no new bytes yet.
POLL = 0.02


def find(directory: str, entry_name: str) -> str | None:
    """The temporary file an entry named ``entry_name`` is written to."""
    example = paths.temp_name(entry_name)
    prefix = example[: example.rindex(paths.TEMP_MARK)]
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    for name in names:
        if name.startswith(prefix + paths.TEMP_MARK) and paths.is_temp_name(
            name
        ):
            return os.path.join(directory, name)
    return None


class GrowingFile:
    """A file read as it is written, up to ``size`` bytes."""

    def __init__(self, path: str, size: int, timeout: float) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self._size = size
        self._timeout = timeout
        self._position = 0

    def seek(self, offset: int) -> int:
        self._position = offset
        return offset

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes, waiting for the writer; ``b''`` at the end
        and when the writer gave up, started over or stalled."""
        left = self._size - self._position
        if left <= 0:
            return b''
        waited_since = time.monotonic()
        while True:
            st = os.fstat(self._fd)
            if st.st_size < self._position:
                return b''  # emptied: its download started over
            if st.st_size > self._position:
                count = min(size, left, st.st_size - self._position)
                data = os.pread(self._fd, count, self._position)
                self._position += len(data)
                return data
            if st.st_nlink == 0:
                return b''  # unlinked unfinished: its download failed
            if time.monotonic() - waited_since > self._timeout:
                return b''
            time.sleep(POLL)

    def close(self) -> None:
        """Close once (a second close must not hit a reused number)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
