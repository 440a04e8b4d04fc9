"""Kernel-speed copies of local image files, verified while they run.

Used for the local sources of a download (``sources``): the agent's image
cache and a ``file://`` location of the image readable on this host. The
bytes never pass
through user space: the destination is first cloned (``FICLONE``, a reflink
that shares the blocks, on btrfs, XFS and other filesystems that support
it), otherwise copied by the kernel with ``os.copy_file_range`` (in-kernel,
no user-space buffers; NFS and some filesystems offload it to the server).
Only where neither works are the bytes read and written by us.

The copy is never trusted: a thread of its own reads back the destination
bytes already copied (from the page cache, just written) and hashes them
while the copy goes on, and the hash Glance recorded must match before the
caller publishes the file. A caller that falls back to another source on
any failure (the agent goes to Glance's API) loses nothing but the attempt.
"""

from collections.abc import Callable
import errno
import fcntl
import os
import queue
import stat
import threading

from oslo_log import log as logging

from image_agent.data import pipeline
from image_agent.data import verify

LOG = logging.getLogger(__name__)

# _IOW(0x94, 9, int): clone the whole source file into the destination.
FICLONE = 0x40049409
# Bytes copied per copy_file_range round: progress, cancel and the hashing
# thread get a look in between.
COPY_STEP = 32 * 1024 * 1024
# Bytes read back per hash update.
HASH_READ = 4 * 1024 * 1024
# copy_file_range errors that mean "not here": copy some other way.
_UNSUPPORTED = {
    errno.ENOSYS,
    errno.EXDEV,
    errno.EINVAL,
    errno.EOPNOTSUPP,
    errno.ENOTSUP,
    errno.EBADF,
    errno.EPERM,
}


def open_regular(path: str) -> int:
    """A read-only descriptor of the regular file at ``path``.

    A symbolic link, a FIFO, a device or a directory is refused (OSError)
    before anything is read from it: ``lstat`` first, so that no device is
    ever opened, then ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO swapped in meanwhile
    cannot block the open) and ``fstat`` on the descriptor, which must be
    the very file that ``lstat`` saw.
    """
    before = os.lstat(path)
    if not stat.S_ISREG(before.st_mode):
        raise OSError(errno.EINVAL, 'not a regular file: %s' % path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (
            before.st_dev,
            before.st_ino,
        ):
            raise OSError(errno.EINVAL, 'not a regular file: %s' % path)
        fcntl.fcntl(
            fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK
        )
    except BaseException:
        os.close(fd)
        raise
    return fd


def clone(src_fd: int, dst_fd: int) -> bool:
    """Reflink ``src_fd`` into ``dst_fd``; False where unsupported."""
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
    except OSError as e:
        LOG.debug('No reflink here (%s); copying', e)
        return False
    return True


def _read_write(src_fd: int, dst_fd: int, offset: int, count: int) -> int:
    """Copy ``count`` bytes at ``offset`` through user space."""
    done = 0
    while done < count:
        data = os.pread(src_fd, min(HASH_READ, count - done), offset + done)
        if not data:
            break
        view = memoryview(data)
        while view:
            written = os.pwrite(dst_fd, view, offset + done)
            view = view[written:]
            done += written
    return done


class _Hasher(threading.Thread):
    """Reads back and hashes the ranges of the destination already copied."""

    def __init__(self, fd: int, hasher: verify.ImageHasher | None) -> None:
        super().__init__(name='localcopy-hash', daemon=True)
        self._fd = fd
        self._hasher = hasher
        self.ranges: queue.SimpleQueue = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        buffer = bytearray(HASH_READ)
        view = memoryview(buffer)
        try:
            while (item := self.ranges.get()) is not None:
                offset, end = item
                if self._hasher is None:
                    continue
                while offset < end and not self.stop.is_set():
                    count = os.preadv(
                        self._fd,
                        [view[: min(HASH_READ, end - offset)]],
                        offset,
                    )
                    if not count:
                        raise OSError(errno.EIO, 'short read of the copy')
                    self._hasher.update(view[:count])
                    offset += count
        except BaseException as e:
            self.error = e
        finally:
            view.release()


def copy_verified(
    src_fd: int,
    dst_fd: int,
    expected: int | None,
    hasher: verify.ImageHasher | None,
    progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    reflink: bool = True,
) -> tuple[int, str]:
    """Copy the image at ``src_fd`` to the empty ``dst_fd``, verified.

    Returns the size and how the bytes were copied (``reflink``,
    ``copy_file_range`` or ``read_write``). Raises ImageChecksumMismatch
    when the copied bytes are not the image Glance recorded (``hasher``,
    restarted here), OSError when the source is not ``expected`` bytes long
    or the copy fails, Cancelled when ``cancel`` is set.

    ``hasher=None`` (for a source this same caller has just verified and
    still holds) checks the size only.
    """
    size = os.fstat(src_fd).st_size
    if expected is not None and size != expected:
        raise OSError(
            errno.EIO,
            'the source has %d bytes, the image %d' % (size, expected),
        )
    if hasher is not None:
        hasher.restart()
    reader = _Hasher(dst_fd, hasher)
    reader.start()
    method = 'copy_file_range'
    try:
        if reflink and size and clone(src_fd, dst_fd):
            method = 'reflink'
            reader.ranges.put((0, size))
            done = size
        else:
            done = 0
            while done < size:
                if cancel is not None and cancel.is_set():
                    raise pipeline.Cancelled()
                if reader.error is not None:
                    break
                count = min(COPY_STEP, size - done)
                copied = _copy_range(src_fd, dst_fd, done, count, method)
                if copied < 0:
                    method = 'read_write'
                    copied = _read_write(src_fd, dst_fd, done, count)
                if not copied:
                    raise OSError(errno.EIO, 'the source ended early')
                reader.ranges.put((done, done + copied))
                done += copied
                if progress is not None:
                    progress(done)
    except BaseException:
        reader.stop.set()
        raise
    finally:
        reader.ranges.put(None)
        reader.join()
    if reader.error is not None:
        raise reader.error
    if progress is not None:
        progress(done)
    if hasher is not None:
        hasher.verify()
        if hasher.expected is None:
            LOG.warning(
                'Image %s copied without a hash to check', hasher.image_id
            )
    return done, method


def _copy_range(
    src_fd: int, dst_fd: int, offset: int, count: int, method: str
) -> int:
    """copy_file_range of one step; -1 when the kernel cannot do it here."""
    if method != 'copy_file_range':
        return -1
    done = 0
    while done < count:
        try:
            copied = os.copy_file_range(
                src_fd,
                dst_fd,
                count - done,
                offset + done,
                offset + done,
            )
        except OSError as e:
            if done == 0 and offset == 0 and e.errno in _UNSUPPORTED:
                LOG.debug('copy_file_range unavailable (%s)', e)
                return -1
            raise
        if not copied:
            break
        done += copied
    return done
