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
"""

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import os
import re
import stat
import threading
import time
from typing import Any

from oslo_log import log as logging

from image_agent import exception
from image_agent import paths
from image_agent.data import verify
from image_agent.i18n import _

LOG = logging.getLogger(__name__)

# Entries and their directory are the agent's alone: a private image in
# the cache is readable by no other local user.
MODE = 0o400
DIRECTORY_MODE = 0o700
_NAME = re.compile(
    r'(?P<id>[A-Za-z0-9][A-Za-z0-9_-]{0,127})'
    r'\.(?P<algo>[a-z0-9_]{2,16})-(?P<hash>[0-9a-f]{16,256})'
)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One cached image."""

    image_id: str
    algorithm: str
    hash: str
    path: str
    size: int
    last_used: float

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def as_dict(self, in_use: bool = False) -> dict[str, Any]:
        return {
            'image_id': self.image_id,
            'os_hash_algo': self.algorithm,
            'os_hash_value': self.hash,
            'path': self.path,
            'size': self.size,
            'last_used': datetime.datetime.fromtimestamp(
                self.last_used, datetime.UTC
            ).isoformat(),
            'in_use': in_use,
        }


def entry_name(image: dict[str, Any]) -> str | None:
    """The cache file name of ``image``; None when it cannot be cached.

    Only images with a multihash (or an md5 checksum) are cached: an entry
    must be provable.
    """
    image_id = str(image.get('id') or '')
    recorded = verify.recorded_hash(image)
    if recorded is None:
        return None
    algo, value = recorded
    name = '%s.%s-%s' % (image_id, str(algo).lower(), str(value).lower())
    if not _NAME.fullmatch(name):
        return None
    return name


class ImageCache:
    """The cache directory of one agent."""

    def __init__(self, directory: str, max_size: int = 0) -> None:
        """``max_size`` in bytes; 0 means no limit."""
        self.directory = os.path.realpath(directory)
        self.max_size = max_size
        self._lock = threading.Lock()
        # Bytes promised to entries being written (counted against the
        # limit before they exist).
        self._reserved = 0

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

    def _entry(self, name: str) -> Entry | None:
        match = _NAME.fullmatch(name)
        if not match:
            return None
        path = os.path.join(self.directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return Entry(
            match['id'],
            match['algo'],
            match['hash'],
            path,
            st.st_size,
            st.st_mtime,
        )

    def entries(self) -> list[Entry]:
        """Every complete entry, least recently used first."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        found = [e for e in map(self._entry, names) if e is not None]
        return sorted(found, key=lambda e: (e.last_used, e.name))

    def written(self, destination: paths.Destination, size: int) -> Entry:
        """The entry just written to ``destination`` (no need to look)."""
        match = _NAME.fullmatch(destination.name)
        return Entry(
            match['id'],
            match['algo'],
            match['hash'],
            destination.path,
            size,
            time.time(),
        )

    def lookup(self, image: dict[str, Any]) -> Entry | None:
        """The entry of ``image`` (same id and hash), if cached."""
        name = entry_name(image)
        return self._entry(name) if name else None

    def in_use(self, entry: Entry) -> bool:
        """Whether someone holds ``entry`` open for reading."""
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def status(self) -> dict[str, Any]:
        entries = self.entries()
        return {
            'directory': self.directory,
            'max_size': self.max_size,
            'size': sum(e.size for e in entries),
            'entries': [e.as_dict(self.in_use(e)) for e in entries],
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

    @contextlib.contextmanager
    def reserve(self, size: int, keep: str | None = None):
        """Make room for a new entry of ``size`` bytes while it is written.

        Evicts least recently used entries (never one in use, never
        ``keep``) until ``size`` fits under the limit. Raises CacheFull
        when it cannot.
        """
        with self._lock:
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
            with self._lock:
                self._reserved -= size

    def _evict_until(self, target: int, keep: str | None) -> None:
        """Evict LRU entries until the cache (with what is reserved for
        entries being written) holds at most ``target`` bytes."""
        entries = self.entries()
        used = sum(e.size for e in entries) + self._reserved
        for entry in entries:
            if used <= target:
                return
            if entry.name == keep:
                continue
            if self._remove(entry):
                used -= entry.size
        if used > target:
            raise exception.CacheFull(
                size=used - target,
                limit=self.max_size,
                reason=_('the entries in the cache are in use'),
            )

    def _remove(self, entry: Entry) -> bool:
        """Unlink ``entry`` unless it is in use; whether it was removed."""
        try:
            fd = os.open(
                entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            )
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

    def evict(self, image_id: str) -> list[dict[str, Any]]:
        """Remove every entry of ``image_id``; return what was removed.

        Raises CacheEntryInUse when an entry is being read.
        """
        removed = []
        with self._lock:
            for entry in self.entries():
                if entry.image_id != image_id:
                    continue
                if not self._remove(entry):
                    raise exception.CacheEntryInUse(image_id=image_id)
                removed.append(entry.as_dict())
        return removed

    def discard(self, entry: Entry) -> None:
        """Remove a damaged entry (it failed its hash check)."""
        LOG.warning('Removing damaged cache entry %s', entry.path)
        with self._lock:
            self._remove(entry)
