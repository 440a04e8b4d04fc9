"""The agent's local image cache: verified images by id, LRU-evicted.

One directory (``[agent] cache_dir``, inside the download roots) holds one
file per cached image, named ``<image_id>.<algo>-<hash>`` after the hash
Glance recorded for it. The names are the index: nothing else is stored, so
there is no index to lose or corrupt in a crash. A cache entry is written
like any download (a temporary file, verified, fsynced, renamed into
place), so a name always stands for a complete, verified file; temporary
files left by a crash are removed at start like every other. Entries are
read-only and private (mode 0400 in a 0700 directory).

The time an entry was last used is its modification time (set on every
use; the data itself never changes). When a new entry would take the
cache over ``[agent] cache_max_size``, the least recently used entries are
removed first. An entry being read is never removed: readers hold a shared
``flock`` on it for as long as they read, and eviction takes the exclusive
lock without waiting before it unlinks, skipping entries it cannot lock.
A reader that locked an entry which was unlinked just before (link count
0) treats it as a miss.

A download served from the cache is a copy, never a hard link to the
entry: a hard link shares the inode, so a later write to the destination
(a disk image is written to) would change the cached image under every
later download. The copy is a reflink where the filesystem can (blocks
shared copy-on-write: as cheap as a link, and safe) and otherwise the
kernel's ``copy_file_range`` (see ``data.localcopy``), hashed while it runs.

The names and their parsing are in ``entries``, making room (eviction and
reservations) in ``eviction``.
"""

import contextlib
import errno
import fcntl
import os
from typing import Any

from oslo_log import log as logging

from image_agent import exception
from image_agent import paths
from image_agent.cache import entries
from image_agent.cache import eviction
from image_agent.cache.entries import Entry
from image_agent.cache.entries import entry_name
from image_agent.i18n import _

__all__ = [
    'DIRECTORY_MODE',
    'MODE',
    'Entry',
    'ImageCache',
    'entry_name',
]

LOG = logging.getLogger(__name__)

# Entries and their directory are the agent's alone: a private image in
# the cache is readable by no other local user.
MODE = 0o400
DIRECTORY_MODE = 0o700


class ImageCache:
    """The cache directory of one agent."""

    def __init__(self, directory: str, max_size: int = 0) -> None:
        """``max_size`` in bytes; 0 means no limit."""
        self.directory = os.path.realpath(directory)
        self._room = eviction.Room(self.directory, max_size)

    @property
    def max_size(self) -> int:
        return self._room.max_size

    def ensure_directory(self) -> None:
        os.makedirs(self.directory, mode=DIRECTORY_MODE, exist_ok=True)
        # A directory made by an older agent (0755) becomes private too.
        try:
            os.chmod(self.directory, DIRECTORY_MODE)
        except OSError as e:
            LOG.warning('Cannot make %s private: %s', self.directory, e)

    def contains(self, path: str) -> bool:
        """Whether ``path`` (resolved) is the cache directory or inside it."""
        return path == self.directory or path.startswith(self.directory + '/')

    def destination(self, image: dict[str, Any]) -> paths.Destination:
        name = entry_name(image)
        if name is None:
            raise exception.Invalid(
                reason=_('image %s has no hash: it cannot be cached')
                % image.get('id')
            )
        path = os.path.join(self.directory, name)
        return paths.Destination(path, self.directory, name)

    # -- reading the index ---------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every complete entry, least recently used first."""
        return entries.listing(self.directory)

    def written(self, destination: paths.Destination, size: int) -> Entry:
        """The entry just written to ``destination`` (no need to look)."""
        return entries.written(destination.path, destination.name, size)

    def lookup(self, image: dict[str, Any]) -> Entry | None:
        """The entry of ``image`` (same id and hash), if cached."""
        name = entry_name(image)
        return entries.find(self.directory, name) if name else None

    def in_use(self, entry: Entry) -> bool:
        """Whether someone holds ``entry`` open for reading."""
        return entries.in_use(entry)

    def status(self) -> dict[str, Any]:
        found = self.entries()
        return {
            'directory': self.directory,
            'max_size': self.max_size,
            'size': sum(e.size for e in found),
            'entries': [e.as_dict(self.in_use(e)) for e in found],
        }

    # -- using entries -------------------------------------------------------

    @contextlib.contextmanager
    def open(self, entry: Entry):
        """A descriptor of ``entry``, kept from eviction while it is open.

        Marks the entry used now. Raises FileNotFoundError when the entry
        is gone (evicted meanwhile).
        """
        fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if os.fstat(fd).st_nlink == 0:
                raise FileNotFoundError(
                    errno.ENOENT, 'evicted meanwhile', entry.path
                )
            with contextlib.suppress(OSError):
                os.utime(fd)
            yield fd
        finally:
            os.close(fd)

    def touch(self, entry: Entry) -> None:
        with contextlib.suppress(OSError):
            os.utime(entry.path)

    # -- making room ---------------------------------------------------------

    def reserve(self, size: int, keep: str | None = None):
        """Make room for a new entry of ``size`` bytes while it is written
        (a context manager).

        Evicts least recently used entries (never one in use, never
        ``keep``) until ``size`` fits under the limit. Raises CacheFull
        when it cannot.
        """
        return self._room.reserve(size, keep)

    def evict(self, image_id: str) -> list[dict[str, Any]]:
        """Remove every entry of ``image_id``; return what was removed.

        Raises CacheEntryInUse when an entry is being read.
        """
        removed = []
        with self._room.lock:
            for entry in self.entries():
                if entry.image_id != image_id:
                    continue
                if not eviction.remove(entry):
                    raise exception.CacheEntryInUse(image_id=image_id)
                removed.append(entry.as_dict())
        return removed

    def discard(self, entry: Entry) -> None:
        """Remove a damaged entry (it failed its hash check)."""
        LOG.warning('Removing damaged cache entry %s', entry.path)
        with self._room.lock:
            eviction.remove(entry)
