"""Receiving, hashing and writing image bytes at the same time.

Hashing is the slowest step of a verified download (sha512 runs at about
0.6-0.8 GB/s on one core; loopback HTTP and the page cache are faster), so
it must never wait for the network or the disk. ``copy_verified`` reads
into a few large reusable buffers; each filled buffer goes to a hash thread
and a write thread at once, while a reading thread fills the next one (the
caller only waits). ``readinto``, ``hashlib`` and ``os.write`` release the
GIL on large buffers, so the three really run in parallel; they run nicer
than the agent's RPC threads (``[agent] transfer_niceness``). Memory stays
flat: the buffers are allocated once per transfer whatever the image size,
as anonymous mappings returned to the system at the end.
"""

from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import mmap
import os
import queue
import threading
import time
from typing import Protocol

from image_agent import conf
from image_agent.image import verify

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


def _lower_priority() -> None:
    """Make the calling thread nicer by ``[agent] transfer_niceness``.

    The threads of a transfer keep whole cores busy for as long as it
    lasts; the agent's RPC threads and the host's other services should go
    first when the CPUs are all busy. Linux sets niceness per thread.
    """
    niceness = CONF.agent.transfer_niceness
    if not niceness:
        return
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + niceness))


class Cancelled(Exception):
    """The transfer was abandoned (the agent is shutting down)."""


class Source(Protocol):
    """Where bytes come from: ``HttpSource``, or a local file.

    A source may also have ``abort()``, callable from another thread to
    end a read that blocks (see ``_Watchdog``).
    """

    def readinto(self, view: memoryview) -> int: ...

    def close(self) -> None: ...


Write = Callable[[memoryview], object]


class BufferPool:
    """A fixed set of large buffers, lent out and given back."""

    def __init__(self, count: int, size: int) -> None:
        self.size = size
        self._buffers = [mmap.mmap(-1, size) for _ in range(count)]
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for buffer in self._buffers:
            self._free.put(buffer)

    def get(self, stop: threading.Event) -> mmap.mmap | None:
        """A free buffer, or None once ``stop`` is set."""
        while not stop.is_set():
            with contextlib.suppress(queue.Empty):
                return self._free.get(timeout=0.1)
        return None

    def put(self, buffer: mmap.mmap) -> None:
        self._free.put(buffer)

    def close(self) -> None:
        """Unmap the buffers (those still viewed are left to the GC)."""
        for buffer in self._buffers:
            with contextlib.suppress(BufferError):
                buffer.close()
        self._buffers = []


class _Stage:
    """A thread applying ``work`` to each buffer it is given, in order.

    Not threaded, the stage is run by whoever calls ``drain``.
    """

    def __init__(
        self,
        name: str,
        work: Write,
        done: Callable[[mmap.mmap], None],
        failed: threading.Event,
        threaded: bool = True,
    ) -> None:
        self.error: BaseException | None = None
        self._work = work
        self._done = done
        self._failed = failed
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = None
        if threaded:
            self._thread = threading.Thread(
                target=self._run, name='image-agent-%s' % name, daemon=True
            )
            self._thread.start()

    def put(self, buffer: mmap.mmap, count: int) -> None:
        self._queue.put((buffer, count))

    def finish(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        _lower_priority()
        self.drain()

    def drain(self) -> None:
        """Work through the buffers until ``finish``."""
        while (item := self._queue.get()) is not None:
            buffer, count = item
            view = memoryview(buffer)[:count]
            try:
                if not self._failed.is_set():
                    self._work(view)
            except BaseException as e:
                self.error = e
                self._failed.set()
            finally:
                view.release()
                self._done(buffer)


class _Stages:
    """The hash and write stages; a buffer is free again after both."""

    def __init__(
        self,
        pool: BufferPool,
        hasher: verify.ImageHasher,
        write: Write,
        progress: Callable[[int], None] | None,
        caller_writes: bool = False,
    ) -> None:
        self.failed = threading.Event()
        self.written = 0
        self._pool = pool
        self._progress = progress
        self._pending: dict[int, int] = {}
        self._lock = threading.Lock()
        self._write = write
        self.writer = _Stage(
            'write',
            self._write_one,
            self._release,
            self.failed,
            threaded=not caller_writes,
        )
        self._stages = [
            _Stage('hash', hasher.update, self._release, self.failed),
            self.writer,
        ]

    def _write_one(self, view: memoryview) -> None:
        self._write(view)
        self.written += len(view)
        if self._progress is not None:
            self._progress(self.written)

    def _release(self, buffer: mmap.mmap) -> None:
        with self._lock:
            self._pending[id(buffer)] -= 1
            if self._pending[id(buffer)]:
                return
            del self._pending[id(buffer)]
        self._pool.put(buffer)

    def submit(self, buffer: mmap.mmap, count: int) -> None:
        with self._lock:
            self._pending[id(buffer)] = len(self._stages)
        for stage in self._stages:
            stage.put(buffer, count)

    def finish(self) -> None:
        """Wait for every buffer; raise the first failure of a stage."""
        for stage in self._stages:
            stage.finish()
        self.raise_failure()

    def abort(self) -> None:
        self.failed.set()
        for stage in self._stages:
            stage.finish()

    def raise_failure(self) -> None:
        for stage in self._stages:
            if stage.error is not None:
                raise stage.error


class _Watchdog:
    """Aborts the source when the transfer must stop while it reads.

    A read from a slow or stalled server can block for long; a cancel (the
    agent stops) or a failed stage (the disk is full) must not wait for it.
    """

    POLL = 0.1

    def __init__(
        self,
        source: Source,
        failed: threading.Event,
        cancel: threading.Event | None,
    ) -> None:
        self._abort = getattr(source, 'abort', None)
        self._failed = failed
        self._cancel = cancel
        self._finished = threading.Event()
        self._thread = None
        if self._abort is not None:
            self._thread = threading.Thread(
                target=self._run, name='image-agent-watchdog', daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._finished.wait(self.POLL):
            if self._failed.is_set() or (
                self._cancel is not None and self._cancel.is_set()
            ):
                self._abort()
                return

    def stop(self) -> None:
        self._finished.set()
        if self._thread is not None:
            self._thread.join()


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
    pool: BufferPool,
    stages: _Stages,
    cancel: threading.Event | None,
) -> int:
    """Fill buffers from ``source`` and hand them to the stages."""
    total = 0
    ended = False
    watchdog = _Watchdog(source, stages.failed, cancel)
    try:
        while not ended:
            buffer = pool.get(stages.failed)
            if buffer is None:
                break
            count, ended = _fill(source, buffer, stages.failed, cancel)
            if count:
                stages.submit(buffer, count)
                total += count
            else:
                pool.put(buffer)
    except BaseException as e:
        stages.abort()
        if cancel is not None and cancel.is_set():
            raise Cancelled() from e
        # A stage's own error tells why the reading was stopped.
        stages.raise_failure()
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
    """
    pool = BufferPool(buffers, buffer_size)
    try:
        stages = _Stages(pool, hasher, write, progress, caller_writes)

        def read() -> int:
            return _read_all(source, pool, stages, cancel)

        if caller_writes:
            total = _read_while_writing_here(read, stages)
        else:
            total = _in_thread('read', read)
        stages.finish()
    finally:
        pool.close()
    hasher.verify()
    return total


def _start(
    name: str,
    func: Callable[[], int],
    then: Callable[[], None] | None = None,
) -> Callable[[], int]:
    """Run ``func()`` in a nicer thread of its own, then ``then()``;
    return a function that waits for it and gives its result or error."""
    outcome: dict = {}

    def run() -> None:
        _lower_priority()
        try:
            outcome['result'] = func()
        except BaseException as e:
            outcome['error'] = e
        finally:
            if then is not None:
                then()

    thread = threading.Thread(
        target=run, name='image-agent-%s' % name, daemon=True
    )
    thread.start()

    def wait() -> int:
        thread.join()
        if 'error' in outcome:
            raise outcome['error']
        return outcome['result']

    return wait


def _in_thread(name: str, func: Callable[[], int]) -> int:
    """``func()`` run by a nicer thread of its own; its result or error.

    The caller (an RPC worker) only waits: all the work of a transfer runs
    at the stages' lower priority.
    """
    return _start(name, func)()


def _read_while_writing_here(read: Callable[[], int], stages: _Stages) -> int:
    """``read()`` in a thread of its own while this thread writes; however
    the reading ends, the writing here ends with it."""
    wait = _start('read', read, then=stages.writer.finish)
    stages.writer.drain()
    return wait()


def iter_verified(
    source: Source, hasher: verify.ImageHasher, chunk_size: int = BUFFER_SIZE
) -> Iterator[bytes]:
    """Yield the bytes of ``source`` as ``bytes`` chunks, hashed.

    For callers that want an iterator: everything happens in their thread.
    After the last chunk the hash is checked (ImageChecksumMismatch).
    """
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
