"""The cache's entries: named after the image and its hash, found by name.

The names are the index (``<image_id>.<algo>-<hash>``): an entry is a
regular file of the cache directory whose name matches, its size and
last use (modification time) are the file's.
"""

import dataclasses
import datetime
import fcntl
import os
import re
import stat
import time
from typing import Any

from image_agent.data import verify

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


def find(directory: str, name: str) -> Entry | None:
    """The entry named ``name`` in ``directory``, if it is one."""
    match = _NAME.fullmatch(name)
    if not match:
        return None
    path = os.path.join(directory, name)
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


def listing(directory: str) -> list[Entry]:
    """Every complete entry of ``directory``, least recently used first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [e for e in (find(directory, n) for n in names) if e is not None]
    return sorted(found, key=lambda e: (e.last_used, e.name))


def written(path: str, name: str, size: int) -> Entry:
    """The entry just written as ``name`` at ``path`` (no need to look)."""
    match = _NAME.fullmatch(name)
    return Entry(
        match['id'],
        match['algo'],
        match['hash'],
        path,
        size,
        time.time(),
    )


def in_use(entry: Entry) -> bool:
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
