"""Writing a stream of image chunks to a local file, all or nothing.

The bytes go to a temporary file in the destination's directory, created
exclusively and locked while it is written. Only after the stream ended
(and so was verified: the image service raises after the last chunk when
the hash differs) is the file ``fsync``ed, renamed into place and the
directory ``fsync``ed. On any failure the temporary file is removed and the
destination is left as it was.
"""

from collections.abc import Callable
from collections.abc import Iterable
import contextlib
import errno
import fcntl
import os
import queue
import threading

from oslo_log import log as logging

from image_agent import exception
from image_agent import paths
from image_agent.i18n import _
from image_agent.image import verify

LOG = logging.getLogger(__name__)

READ_CHUNK = 4 * 1024 * 1024
# Chunks (1 MiB from glanceclient) received ahead of the disk writes.
READ_AHEAD = 8
# Written bytes after which their writeback is started (see below).
WRITEBACK_STEP = 32 * 1024 * 1024


class Cancelled(Exception):
    """The agent is shutting down; the transfer was abandoned."""


class SizeMismatch(Exception):
    """The stream ended at another length than announced."""


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


def check_free_space(
    destination: paths.Destination, image_id: str, size: int, margin: int
) -> None:
    """Raise InsufficientSpace unless ``size`` + ``margin`` bytes are free."""
    st = os.statvfs(destination.directory)
    available = st.f_bavail * st.f_frsize
    if size + margin > available:
        raise exception.InsufficientSpace(
            path=destination.directory,
            image_id=image_id,
            needed=size + margin,
            available=available,
        )


def matches_image(path: str, image: dict, size: int) -> bool:
    """Whether the file at ``path`` holds exactly the image's bytes.

    Size first (cheap), then the hash Glance recorded. An image without a
    hash never matches: its identity cannot be proven.
    """
    hasher = verify.ImageHasher(image)
    if hasher.expected is None or image.get('size') != size:
        return False
    with open(path, 'rb') as f:
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


def write_atomically(
    destination: paths.Destination,
    dir_fd: int,
    chunks: Iterable[bytes],
    mode: int,
    overwrite: bool,
    cancel: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    expected_size: int | None = None,
    read_ahead: int = READ_AHEAD,
) -> int:
    """Write ``chunks`` to ``destination``; return the number of bytes.

    ``dir_fd`` is the opened destination directory: every name is resolved
    relative to it. Without ``overwrite`` an existing destination makes the
    final step fail with DestinationExists (a hard link is used so that the
    check and the rename are one atomic step). With ``expected_size``, a
    stream of another length fails with SizeMismatch. With ``read_ahead``,
    the stream is consumed that many chunks ahead in a thread of its own, so
    that receiving and hashing overlap with writing.
    """
    tmp = paths.temp_name(destination.name)
    fd = os.open(
        tmp,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
        dir_fd=dir_fd,
    )
    written = flushed = 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        source = ReadAhead(chunks, read_ahead) if read_ahead else chunks
        with contextlib.closing(_ClosingIterator(source)) as stream:
            for chunk in stream:
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                _write_all(fd, chunk)
                written += len(chunk)
                if written - flushed >= WRITEBACK_STEP:
                    _start_writeback(fd, flushed, written)
                    flushed = written
                if progress is not None:
                    progress(written)
        if expected_size is not None and written != expected_size:
            raise SizeMismatch(
                _('got %(got)d bytes, expected %(expected)d')
                % {'got': written, 'expected': expected_size}
            )
        os.fchmod(fd, mode)
        os.fsync(fd)
        _publish(tmp, destination, dir_fd, overwrite)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    finally:
        os.close(fd)
    os.fsync(dir_fd)
    return written


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class ReadAhead:
    """Iterate ``chunks`` in a thread of its own, ``depth`` chunks ahead.

    The image service's iterator receives and hashes; the caller writes.
    Both release the GIL for big buffers, so they overlap. An error of the
    source is raised to the caller at the point where it happened; ``close``
    stops the thread, which closes the source itself (a generator can only
    be closed by the thread that runs it).
    """

    def __init__(self, chunks: Iterable[bytes], depth: int) -> None:
        self._source = chunks
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(
            target=self._produce, name='image-agent-read-ahead', daemon=True
        )
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        iterator = iter(self._source)
        try:
            for chunk in iterator:
                if not self._put(chunk):
                    return
            self._put(_END)
        except BaseException as e:
            self._put(_Failure(e))
        finally:
            _close_quietly(iterator, self._source)

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._finished = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._finished = True
            raise item.error
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _close_quietly(*objects) -> None:
    for obj in objects:
        close = getattr(obj, 'close', None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


class _ClosingIterator:
    """An iterator whose ``close`` closes the underlying generator."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._source = chunks
        self._iter = iter(chunks)

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        return next(self._iter)

    def close(self) -> None:
        _close_quietly(self._iter, self._source)


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
