"""Receiving, hashing and writing image bytes at the same time.

Hashing is the slowest step of a verified download (sha512 runs at about
0.6-0.8 GB/s on one core; loopback HTTP and the page cache are faster), so
it must never wait for the network or the disk. ``copy_verified`` reads
into a few large reusable buffers; each filled buffer goes to a hash thread
and a write thread at once, while a reading thread fills the next one (the
caller only waits). Other consumers of every chunk (an inspection of
the image's format, say) are stages beside the hash: see ``consumers``.
``readinto``, ``hashlib`` and ``os.write`` release the GIL on large
buffers, so the three really run in parallel; they run nicer than the
agent's RPC threads (``[agent] transfer_niceness``). Memory stays flat: the
buffers are allocated once per transfer whatever the image size, as
anonymous mappings returned to the system at the end. The threads and
buffers are in ``stages``.
"""

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
import io
import mmap
import threading
import time
from typing import Any
from typing import Protocol

from image_agent import conf
from image_agent.data import stages
from image_agent.data import verify

CONF = conf.CONF
MiB = 1024 * 1024
# 12 MiB in all per transfer: one buffer filling while another is hashed
# and written, one spare. The agent's memory must not grow with the image.
# Measured (tools/bench, 4 downloads at once on 2 cores): 3 x 4 MiB filled
# 1 MiB a read gave 0.92x one download's rate in aggregate, against 0.88x
# for 4 x 2 MiB filled 256 KiB a read: every read hands the GIL over, and
# under concurrency those hand-overs cost more than the copying.
BUFFER_SIZE = 4 * MiB
BUFFERS = 3
# A buffer is filled in pieces so that a cancel or a failed stage is seen
# soon, and a read that fails loses little; a buffer that fills slowly (a
# slow server) is handed on after FLUSH_AFTER seconds, so progress and
# writes keep moving.
READ_PIECE = 1 * MiB
FLUSH_AFTER = 0.5


class Cancelled(Exception):
    """The transfer was abandoned (the agent is shutting down)."""


class Source(Protocol):
    """Where bytes come from: ``HttpSource``, or a local file.

    A source may also have ``abort()``, callable from another thread to
    end a read that blocks (see ``stages.Watchdog``).
    """

    def readinto(self, view: memoryview) -> int: ...

    def close(self) -> None: ...


Write = stages.Write


def _fill(
    source: Source,
    buffer: mmap.mmap,
    stop: threading.Event,
    cancel: threading.Event | None,
) -> tuple[int, bool]:
    """Fill ``buffer``; return the byte count and whether the source ended."""
    filled = 0
    flush_at = time.monotonic() + FLUSH_AFTER
    with memoryview(buffer) as view:
        while filled < len(view):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            if stop.is_set() or (filled and time.monotonic() > flush_at):
                return filled, False
            piece = view[filled : filled + READ_PIECE]
            try:
                count = source.readinto(piece)
            finally:
                piece.release()
            if not count:
                return filled, True
            filled += count
    return filled, False


def _read_all(
    source: Source,
    pool: stages.BufferPool,
    running: stages.Stages,
    cancel: threading.Event | None,
) -> int:
    """Fill buffers from ``source`` and hand them to the stages."""
    total = 0
    ended = False
    watchdog = stages.Watchdog(source, running.failed, cancel)
    try:
        while not ended:
            buffer = pool.get(running.failed)
            if buffer is None:
                break
            count, ended = _fill(source, buffer, running.failed, cancel)
            if count:
                running.submit(buffer, count)
                total += count
            else:
                pool.put(buffer)
    except BaseException as e:
        running.abort()
        if cancel is not None and cancel.is_set():
            raise Cancelled() from e
        # A stage's own error tells why the reading was stopped.
        running.raise_failure()
        raise
    finally:
        watchdog.stop()
        source.close()
    return total


def copy_verified(
    source: Source,
    hasher: verify.ImageHasher,
    write: Write,
    progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    buffer_size: int = BUFFER_SIZE,
    buffers: int = BUFFERS,
    caller_writes: bool = False,
    consumers: Sequence[Write] = (),
) -> int:
    """Copy ``source`` to ``write``, hashing on the way; return the bytes.

    ``write`` is called from a thread of its own with views of buffers that
    are reused afterwards: it must not keep them. ``progress`` is called
    there too, with the bytes written so far. After the last byte the hash
    is checked (ImageChecksumMismatch), so a caller that makes the bytes
    visible only when this returns never shows unverified data.

    With ``caller_writes``, ``write`` and ``progress`` are called from the
    calling thread instead (reading and hashing still run beside it): for
    a caller's own file object, which may work only in the thread that
    made it (Cinder's ``eventlet.tpool.Proxy`` without monkey-patching
    waits on the hub of the thread that first used it).

    ``consumers`` also see every chunk, each in a thread of its own beside
    the hash (they must not keep the views either); one that raises stops
    the copy with its error.
    """
    hasher.restart()
    pool = stages.BufferPool(buffers, buffer_size)
    try:
        running = stages.Stages(
            pool, [hasher.update, *consumers], write, progress, caller_writes
        )

        def read() -> int:
            return _read_all(source, pool, running, cancel)

        if caller_writes:
            total = stages.read_while_writing_here(read, running)
        else:
            total = stages.in_thread('read', read)
        running.finish()
    finally:
        pool.close()
    hasher.verify()
    return total


def iter_verified(
    source: Source, hasher: verify.ImageHasher, chunk_size: int = BUFFER_SIZE
) -> Iterator[bytes]:
    """Yield the bytes of ``source`` as ``bytes`` chunks, hashed.

    For callers that want an iterator: everything happens in their thread.
    After the last chunk the hash is checked (ImageChecksumMismatch).
    """
    hasher.restart()
    buffer = bytearray(chunk_size)
    try:
        with memoryview(buffer) as view:
            while True:
                count, ended = _fill(source, buffer, threading.Event(), None)
                if count:
                    with view[:count] as chunk:
                        hasher.update(chunk)
                        data = chunk.tobytes()
                    yield data
                if ended:
                    break
    finally:
        source.close()
    hasher.verify()


def writer_for(data: Any) -> Write:
    """A ``write(view)`` for a caller's ``data`` object.

    Files and other io objects take the reused buffers' views directly (they
    copy or write before returning); anything else gets ``bytes`` of its
    own, since it might keep what it is given.
    """
    if isinstance(data, io.IOBase):
        return lambda view: _write_fully(data.write, view)
    return lambda view: data.write(view.tobytes())


def _write_fully(write: Callable, view: memoryview) -> None:
    while view:
        written = write(view)
        if written is None or written >= len(view):
            return
        view = view[written:]
