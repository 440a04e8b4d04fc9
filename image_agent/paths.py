"""Which local paths the agent may write downloads to and read uploads from.

A path is accepted only when it is absolute, canonical (no ``.`` or ``..``
component), free of NUL bytes, within the system's length limits, and when
the real location of its directory (symbolic links resolved) lies under one
of the configured roots. The checks are made on resolved paths and made
again on the opened directory or file, so a symbolic link swapped in between
cannot lead a write outside the roots.
"""

import dataclasses
import errno
import fcntl
import os
import re
import secrets
import stat

from oslo_log import log as logging

from image_agent import exception
from image_agent.i18n import _

LOG = logging.getLogger(__name__)

PATH_MAX = 4096
NAME_MAX = 255
# Temporary files are named ".<name>.image-agent-tmp-<8 random chars>".
TEMP_MARK = '.image-agent-tmp-'
_TEMP_NAME = re.compile(r'\..*' + re.escape(TEMP_MARK) + r'[A-Za-z0-9_-]{8}')
_TEMP_PREFIX_BYTES = NAME_MAX - len(TEMP_MARK) - 8 - 1
_DISPLAY_MAX = 300


def display(path: object) -> str:
    """``path`` made safe for a message: NUL and controls escaped, cut."""
    text = path if isinstance(path, str) else repr(path)
    text = text.encode('unicode_escape', 'backslashreplace').decode('ascii')
    if len(text) > _DISPLAY_MAX:
        text = text[:_DISPLAY_MAX] + '...'
    return text


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of our temporary file names."""
    return bool(_TEMP_NAME.fullmatch(name))


def temp_name(name: str) -> str:
    """A fresh temporary name for a download that will be called ``name``."""
    prefix = name.encode()[:_TEMP_PREFIX_BYTES].decode(errors='ignore')
    return '.%s%s%s' % (prefix, TEMP_MARK, secrets.token_urlsafe(6)[:8])


def fd_path(fd: int) -> str | None:
    """Where an open file or directory really is, or None if unknown."""
    try:
        return os.readlink('/proc/self/fd/%d' % fd)
    except OSError:
        return None


@dataclasses.dataclass(frozen=True)
class Destination:
    """A checked download destination: a real directory and a name in it."""

    requested: str
    directory: str
    name: str
    # The ``lstat`` of the file already there (None: there was none), set
    # by ``PathPolicy.with_existing`` once the download owns the path.
    existing: os.stat_result | None = None

    @property
    def path(self) -> str:
        return os.path.join(self.directory, self.name)


class PathPolicy:
    """The roots of one direction (downloads or uploads) and their rules."""

    def __init__(self, roots: list[str], purpose: str, excluded=()) -> None:
        """``excluded``: directories below the roots that are never used
        (the agent's image cache is no upload source)."""
        self.purpose = purpose
        self.excluded = [os.path.realpath(d) for d in excluded]
        self.roots = []
        for root in roots:
            if not os.path.isabs(root):
                raise exception.InvalidConfigurationValue(
                    option='[agent] %s_roots' % purpose,
                    value=root,
                    reason=_('roots must be absolute paths'),
                )
            self.roots.append(os.path.realpath(root))

    # -- checks ------------------------------------------------------------

    def _refuse(self, path: object, reason: str) -> exception.InvalidPath:
        return exception.InvalidPath(path=display(path), reason=reason)

    def _check_syntax(self, path: object) -> str:
        if not isinstance(path, str):
            raise self._refuse(path, _('a path must be a string'))
        if '\0' in path:
            raise self._refuse(path, _('it contains a NUL byte'))
        if not os.path.isabs(path):
            raise self._refuse(path, _('it is not absolute'))
        try:
            encoded = path.encode()
        except UnicodeEncodeError as e:
            raise self._refuse(path, _('it is not valid UTF-8')) from e
        if len(encoded) >= PATH_MAX:
            raise self._refuse(
                path, _('it is longer than %d bytes') % PATH_MAX
            )
        parts = path.split('/')
        if any(part in ('.', '..') for part in parts):
            raise self._refuse(path, _('"." and ".." are not allowed'))
        if any(len(part.encode()) > NAME_MAX for part in parts):
            raise self._refuse(
                path, _('a name in it is longer than %d bytes') % NAME_MAX
            )
        return path

    def is_inside(self, real_path: str | None) -> bool:
        """Whether a resolved path is one of the roots or below one."""
        if not real_path:
            return False
        return any(
            real_path == root or real_path.startswith(root.rstrip('/') + '/')
            for root in self.roots
        )

    def _check_inside(self, requested: str, real_path: str | None) -> None:
        excluded = real_path and any(
            real_path == d or real_path.startswith(d.rstrip('/') + '/')
            for d in self.excluded
        )
        if excluded or not self.is_inside(real_path):
            raise exception.PathNotAllowed(
                path=display(requested),
                roots=', '.join(self.roots) or _('none configured'),
            )

    # -- destinations ------------------------------------------------------

    def destination(self, path: object) -> Destination:
        """Check a download destination's path; the file need not exist.

        Its directory must exist, under a root. What is already at the path
        is looked at by ``with_existing``.
        """
        path = self._check_syntax(path)
        directory, name = os.path.split(path)
        if not name:
            raise self._refuse(path, _('it names a directory'))
        if is_temp_name(name):
            raise self._refuse(path, _('it is a temporary file name'))
        real_dir = os.path.realpath(directory)
        self._check_inside(path, real_dir)
        if not os.path.isdir(real_dir):
            raise self._refuse(path, _('its directory does not exist'))
        return Destination(path, real_dir, name)

    def with_existing(self, destination: Destination) -> Destination:
        """``destination`` with the file now there (see ``_existing``).

        Taken by the one download that owns the path (inside its shared
        transfer), so a caller that arrives as another finishes sees the
        finished file.
        """
        return dataclasses.replace(
            destination, existing=self._existing(destination)
        )

    def _existing(self, destination: Destination) -> os.stat_result | None:
        """The stat of an existing destination (None if absent), if usable:
        an existing destination must be a regular file."""
        try:
            st = os.lstat(destination.path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self._refuse(destination.requested, e.strerror) from e
        if stat.S_ISLNK(st.st_mode):
            raise self._refuse(
                destination.requested, _('it is a symbolic link')
            )
        if stat.S_ISDIR(st.st_mode):
            raise self._refuse(destination.requested, _('it is a directory'))
        if not stat.S_ISREG(st.st_mode):
            raise self._refuse(
                destination.requested, _('it is not a regular file')
            )
        return st

    def open_directory(self, destination: Destination) -> int:
        """Open the destination's directory and check where it really is."""
        try:
            fd = os.open(
                destination.directory,
                os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
            )
        except OSError as e:
            raise self._refuse(destination.requested, e.strerror) from e
        real = fd_path(fd)
        if real is not None and real != destination.directory:
            os.close(fd)
            raise self._refuse(destination.requested, _('its directory moved'))
        return fd

    # -- sources -----------------------------------------------------------

    def open_source(self, path: object):
        """Open an upload source for reading: an existing regular file.

        Returns a binary file object; the caller closes it.
        """
        path = self._check_syntax(path)
        real = os.path.realpath(path)
        self._check_inside(path, real)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(real, flags)
        except FileNotFoundError as e:
            raise exception.LocalFileNotFound(path=display(path)) from e
        except OSError as e:
            raise self._refuse(path, e.strerror) from e
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise self._refuse(path, _('it is not a regular file'))
            self._check_inside(path, fd_path(fd) or real)
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
            return os.fdopen(fd, 'rb')
        except BaseException:
            os.close(fd)
            raise


def remove_orphans(roots: list[str], depth: int) -> list[str]:
    """Remove temporary files a crashed agent left under ``roots``.

    A transfer in progress holds an exclusive lock on its temporary file;
    locked files are left alone, so agents sharing a root do not remove
    each other's work. Symbolic links are not followed.
    """
    removed = []
    for root in roots:
        base_depth = root.rstrip('/').count('/')
        for dirpath, dirnames, filenames in os.walk(root):
            if dirpath.rstrip('/').count('/') - base_depth >= depth:
                dirnames[:] = []
            for name in filenames:
                if is_temp_name(name) and _remove_if_unlocked(dirpath, name):
                    removed.append(os.path.join(dirpath, name))
    return removed


def _remove_if_unlocked(directory: str, name: str) -> bool:
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        os.unlink(path)
        LOG.info('Removed %s, left by an interrupted transfer', path)
        return True
    except OSError as e:
        LOG.warning('Could not remove orphaned file %s: %s', path, e)
        return False
    finally:
        os.close(fd)
