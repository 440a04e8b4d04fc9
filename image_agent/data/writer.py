"""Writing a stream of image chunks to a local file, all or nothing.

The bytes go to a temporary file in the destination's directory, created
exclusively and locked while it is written. Only after the stream ended
(and so was verified: the image service raises after the last chunk when
the hash differs) is the file ``fsync``ed, renamed into place and the
directory ``fsync``ed. On any failure the temporary file is removed and the
destination is left as it was.
"""

import contextlib
import errno
import fcntl
import grp
import os
import stat
import threading

from oslo_log import log as logging

from image_agent import exception
from image_agent import paths
from image_agent import space
from image_agent.data import direct as direct_mod
from image_agent.data import pipeline
from image_agent.data import verify
from image_agent.i18n import _

LOG = logging.getLogger(__name__)

READ_CHUNK = 4 * 1024 * 1024
# Written bytes after which their writeback is started (see below).
WRITEBACK_STEP = 32 * 1024 * 1024


class SizeMismatch(Exception):
    """The stream ended at another length than announced."""


class TooManyBytes(SizeMismatch):
    """The stream went past the bytes it may write: it was cut there."""


def parse_mode(value: str) -> int:
    """``[agent] file_mode`` ("0644") as permission bits."""
    try:
        mode = int(value, 8)
    except (TypeError, ValueError) as e:
        raise exception.InvalidConfigurationValue(
            option='[agent] file_mode', value=value, reason=str(e)
        ) from e
    if mode & ~0o7777:
        raise exception.InvalidConfigurationValue(
            option='[agent] file_mode',
            value=value,
            reason=_('not a permission mode'),
        )
    return mode


def parse_group(value: str | None) -> int | None:
    """``[agent] file_group`` (a group name or id) as a group id."""
    if not value:
        return None
    if value.isdigit():
        return int(value)
    try:
        return grp.getgrnam(value).gr_gid
    except KeyError as e:
        raise exception.InvalidConfigurationValue(
            option='[agent] file_group',
            value=value,
            reason=_('no such group'),
        ) from e


def matches_image(
    path: str,
    image: dict,
    seen: os.stat_result,
    hasher: verify.ImageHasher | None = None,
) -> bool:
    """Whether the file at ``path`` holds exactly the image's bytes.

    ``seen`` is the ``lstat`` of ``path``: the file opened (without
    following a link, without blocking on a FIFO) must be that very file.
    Only a file nobody but the agent can change is vouched for: owned by
    the agent's user, writable by nobody else. Size first (cheap), then the
    hash Glance recorded, read from the descriptor checked. An image
    without a hash never matches: its identity cannot be proven.
    ``hasher``: the download's own (restarted here), else a new one.
    """
    hasher = hasher or verify.ImageHasher(image)
    if hasher.expected is None or image.get('size') != seen.st_size:
        return False
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    with os.fdopen(fd, 'rb', buffering=0) as f:
        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or (st.st_dev, st.st_ino) != (seen.st_dev, seen.st_ino)
            or st.st_uid != os.geteuid()
            or st.st_mode & 0o022
            or st.st_size != seen.st_size
        ):
            return False
        hasher.restart()
        while chunk := f.read(READ_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest == hasher.expected


def _start_writeback(fd: int, start: int, end: int) -> None:
    """Start writing ``[start, end)`` to disk now, without waiting.

    On Linux, POSIX_FADV_DONTNEED starts the writeback of dirty pages and
    drops clean ones: the final fsync then finds little left to do (disk
    writes overlap with receiving and hashing), and a multi-GB image does
    not push everything else out of the page cache. The range before
    ``start``, written back meanwhile, is dropped too.
    """
    begin = max(0, start - WRITEBACK_STEP)
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, begin, end - begin, os.POSIX_FADV_DONTNEED)


def _write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class AtomicFile:
    """The temporary file of one download, published only if all went well.

    ``dir_fd`` is the opened destination directory: every name is resolved
    relative to it. Used as a context manager: ``write`` appends bytes (from
    any one thread); a clean exit checks the size (SizeMismatch when
    ``expected_size`` differs), applies the mode, fsyncs and moves the file
    into place (DestinationExists without ``overwrite`` when a file is
    there: a hard link makes the check and the move one atomic step); an
    exit by an exception removes the temporary file.

    A stream never writes past ``expected_size`` (or, when that is
    unknown, past the limit of its space ``reservation``): the write that
    would is refused with TooManyBytes, so a server that sends more than
    the image's size, or never stops, cannot fill the disk.
    """

    def __init__(
        self,
        destination: paths.Destination,
        dir_fd: int,
        mode: int,
        overwrite: bool,
        cancel: threading.Event | None = None,
        expected_size: int | None = None,
        reservation: space.Reservation | None = None,
        group: int | None = None,
        writeback: bool = True,
        direct: bool = False,
    ) -> None:
        self.destination = destination
        # False: the bytes stay in the page cache (a file read again at
        # once, e.g. converted, then removed: it may never reach the disk).
        self._writeback = writeback
        # True: full aligned buffers bypass the page cache (data.direct).
        self._direct = direct and writeback
        self._writes: direct_mod.DirectWrites | None = None
        self._group = group
        self.written = 0
        self._dir_fd = dir_fd
        self._mode = mode
        self._overwrite = overwrite
        self._cancel = cancel
        self._expected_size = expected_size
        self._reservation = reservation
        self._flushed = 0
        self._tmp = paths.temp_name(destination.name)
        self._fd = -1
        self._scratch = False

    def __enter__(self) -> 'AtomicFile':
        self._fd = os.open(
            self._tmp,
            os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=self._dir_fd,
        )
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._discard()
            raise
        if self._direct:
            self._writes = direct_mod.DirectWrites(self._fd)
        return self

    def fileno(self) -> int:
        """The temporary file, for copies made by the kernel (see
        ``localcopy``); ``copied`` then tells how far they went."""
        if self._writes is not None:
            self._writes.set(False)
        return self._fd

    def copied(self, total: int) -> None:
        """``total`` bytes are in the file, put there through ``fileno``."""
        self._check_room(total)
        self._count(total)
        self._flushed = total

    def scratch(self) -> None:
        """Remove the file at the end instead of publishing it: what it
        holds went elsewhere (converted into another ``AtomicFile``)."""
        self._scratch = True

    def reset(self) -> None:
        """Empty the file, to fill it again from another source."""
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._count(0)
        self._flushed = 0

    def write(self, data) -> None:
        """Append ``data`` (bytes or a memoryview), all of it."""
        if self._cancel is not None and self._cancel.is_set():
            raise pipeline.Cancelled()
        self._check_room(self.written + len(data))
        if self._writes is None:
            _write_all(self._fd, data)
        else:
            self._write_direct(data)
        self._count(self.written + len(data))
        if self._writeback and self.written - self._flushed >= WRITEBACK_STEP:
            _start_writeback(self._fd, self._flushed, self.written)
            self._flushed = self.written

    def _write_direct(self, data) -> None:
        """``data`` written with O_DIRECT when it is aligned, else through
        the page cache."""
        writes = self._writes
        view = memoryview(data)
        offset = self.written
        while view:
            writes.set(direct_mod.aligned(view, offset))
            try:
                done = os.write(self._fd, view)
            except OSError as e:
                if e.errno != errno.EINVAL or not writes.usable:
                    raise
                # Refused at a write although the flag was taken: the
                # filesystem does not do direct I/O after all.
                writes.refused()
                continue
            view = view[done:]
            offset += done

    def limit(self) -> int | None:
        """The most bytes this file may hold (None: no bound)."""
        if self._expected_size:
            return self._expected_size
        if self._reservation is not None:
            return self._reservation.limit
        return None

    def _check_room(self, total: int) -> None:
        limit = self.limit()
        if limit is not None and total > limit:
            raise TooManyBytes(
                _(
                    'the stream went past %(limit)d bytes, the %(what)s; it '
                    'was cut there'
                )
                % {
                    'limit': limit,
                    'what': _("image's size")
                    if self._expected_size
                    else _('space free for an image of unknown size'),
                }
            )

    def _count(self, total: int) -> None:
        self.written = total
        if self._reservation is not None:
            self._reservation.written = total

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self._scratch:
            self._discard()
            return
        try:
            if (
                self._expected_size is not None
                and self.written != self._expected_size
            ):
                raise SizeMismatch(
                    _('got %(got)d bytes, expected %(expected)d')
                    % {'got': self.written, 'expected': self._expected_size}
                )
            if self._group is not None:
                os.fchown(self._fd, -1, self._group)
            os.fchmod(self._fd, self._mode)
            os.fsync(self._fd)
            _publish(
                self._tmp, self.destination, self._dir_fd, self._overwrite
            )
        except BaseException:
            self._discard()
            raise
        os.close(self._fd)
        os.fsync(self._dir_fd)

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._tmp, dir_fd=self._dir_fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _publish(
    tmp: str, destination: paths.Destination, dir_fd: int, overwrite: bool
) -> None:
    """Move the finished temporary file to its final name."""
    name = destination.name
    if overwrite:
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return
    try:
        os.link(
            tmp,
            name,
            src_dir_fd=dir_fd,
            dst_dir_fd=dir_fd,
            follow_symlinks=False,
        )
    except FileExistsError as e:
        raise exception.DestinationExists(
            path=paths.display(destination.requested)
        ) from e
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
            raise
        # A filesystem without hard links: check, then rename.
        if _exists(name, dir_fd):
            raise exception.DestinationExists(
                path=paths.display(destination.requested)
            ) from e
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return
    os.unlink(tmp, dir_fd=dir_fd)


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True
