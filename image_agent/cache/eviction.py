"""Room in the cache: least recently used entries removed, never one in use.

Readers hold a shared ``flock`` on an entry for as long as they read;
removal takes the exclusive lock without waiting before it unlinks, and
skips entries it cannot lock. Bytes promised to entries being written
count against the limit before they exist.
"""

import contextlib
import errno
import fcntl
import os
import threading
import time

from oslo_log import log as logging

from image_agent import exception
from image_agent.cache import entries
from image_agent.i18n import _

# The cache's lines keep one logger, whichever module writes them.
LOG = logging.getLogger('image_agent.cache')


class Room:
    """The space of one cache directory under ``max_size`` bytes
    (0: no limit)."""

    def __init__(self, directory: str, max_size: int = 0) -> None:
        self.directory = directory
        self.max_size = max_size
        self.lock = threading.Lock()
        # Bytes promised to entries being written.
        self._reserved = 0

    @contextlib.contextmanager
    def reserve(self, size: int, keep: str | None = None):
        """Make room for a new entry of ``size`` bytes while it is written
        (see ``ImageCache.reserve``)."""
        with self.lock:
            if self.max_size:
                if size > self.max_size:
                    raise exception.CacheFull(
                        size=size,
                        limit=self.max_size,
                        reason=_('the image is larger than the cache'),
                    )
                self._evict_until(self.max_size - size, keep)
            self._reserved += size
        try:
            yield
        finally:
            with self.lock:
                self._reserved -= size

    def _evict_until(self, target: int, keep: str | None) -> None:
        """Evict LRU entries until the cache (with what is reserved for
        entries being written) holds at most ``target`` bytes."""
        found = entries.listing(self.directory)
        used = sum(e.size for e in found) + self._reserved
        for entry in found:
            if used <= target:
                return
            if entry.name == keep:
                continue
            if remove(entry):
                used -= entry.size
        if used > target:
            raise exception.CacheFull(
                size=used - target,
                limit=self.max_size,
                reason=_('the entries in the cache are in use'),
            )


def remove(entry: entries.Entry) -> bool:
    """Unlink ``entry`` unless it is in use; whether it was removed."""
    try:
        fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                LOG.debug('Not evicting %s: in use', entry.path)
                return False
            raise
        st = os.fstat(fd)
        try:
            current = os.lstat(entry.path)
        except FileNotFoundError:
            return True
        if (current.st_dev, current.st_ino) != (st.st_dev, st.st_ino):
            return False
        os.unlink(entry.path)
    finally:
        os.close(fd)
    LOG.info(
        'Evicted image %(id)s from the cache (%(size)d bytes, last used '
        '%(age).0f s ago)',
        {
            'id': entry.image_id,
            'size': entry.size,
            'age': time.time() - entry.last_used,
        },
    )
    return True
