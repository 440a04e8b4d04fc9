"""Kernel-speed copies of local image files, verified while they run.

Used for the two local sources of a download: a ``file://`` location of the
image readable on this host (when ``[glance] allowed_direct_url_schemes``
contains ``file``) and the agent's image cache. The bytes never pass
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
import contextlib
import errno
import fcntl
import os
import queue
import stat
import threading
from typing import Any
import urllib.parse

from oslo_log import log as logging

from image_agent.image import pipeline
from image_agent.image import verify as verify_mod

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

Cancelled = pipeline.Cancelled


def file_location(image: dict[str, Any], allowed_schemes) -> str | None:
    """The path of a ``file://`` location of ``image`` readable here.

    None unless ``file`` is an allowed scheme and one of ``direct_url`` and
    ``locations`` names a readable regular file.
    """
    if 'file' not in (allowed_schemes or ()):
        return None
    urls = [image.get('direct_url')]
    urls += [loc.get('url') for loc in image.get('locations') or ()]
    for url in filter(None, urls):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != 'file' or parsed.netloc not in ('', 'localhost'):
            continue
        path = urllib.parse.unquote(parsed.path)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and os.access(path, os.R_OK):
            return path
    return None


def without_file_locations(image: dict[str, Any]) -> dict[str, Any]:
    """``image`` without its ``file://`` locations (for a fallback)."""
    image = dict(image)
    if str(image.get('direct_url') or '').startswith('file:'):
        image['direct_url'] = None
    if image.get('locations'):
        image['locations'] = [
            loc
            for loc in image['locations']
            if not str(loc.get('url') or '').startswith('file:')
        ]
    return image


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

    def __init__(self, fd: int, hasher: verify_mod.ImageHasher | None) -> None:
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
    image: dict[str, Any],
    progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    reflink: bool = True,
    verify: bool = True,
) -> tuple[int, str]:
    """Copy the image at ``src_fd`` to the empty ``dst_fd``, verified.

    Returns the size and how the bytes were copied (``reflink``,
    ``copy_file_range`` or ``read_write``). Raises ImageChecksumMismatch
    when the copied bytes are not the image Glance recorded, OSError when
    the copy fails, Cancelled when ``cancel`` is set.

    ``verify=False`` (for a source this same caller has just verified and
    still holds) checks the size only.
    """
    size = os.fstat(src_fd).st_size
    expected = image.get('size')
    if expected is not None and size != expected:
        raise OSError(
            errno.EIO,
            'the source has %d bytes, the image %d' % (size, expected),
        )
    hasher = verify_mod.ImageHasher(image) if verify else None
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
                    raise Cancelled()
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
                'Image %s copied without a hash to check', image.get('id')
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


@contextlib.contextmanager
def open_source(path: str):
    """A read-only descriptor of a regular file (no FIFO, no device)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, 'not a regular file: %s' % path)
        yield fd
    finally:
        os.close(fd)
