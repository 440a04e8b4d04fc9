"""The threads and buffers of the stream copy (see ``pipeline``).

A fixed pool of large buffers; one thread per stage (the hash, any other
consumer, the write) working through the buffers in order; a watchdog that
aborts a blocked read when the copy must stop. Every thread runs nicer than
the agent's RPC threads (``[agent] transfer_niceness``).
"""

from collections.abc import Callable
from collections.abc import Sequence
import contextlib
import mmap
import os
import queue
import threading
from typing import Any

from image_agent import conf

CONF = conf.CONF

Write = Callable[[memoryview], object]


def lower_priority() -> None:
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


class Stage:
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
        lower_priority()
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


class Stages:
    """The consumers of each buffer (the hash first, then any others) and
    the write, each in a thread; a buffer is free again after all."""

    def __init__(
        self,
        pool: BufferPool,
        consumers: Sequence[Write],
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
        self.writer = Stage(
            'write',
            self._write_one,
            self._release,
            self.failed,
            threaded=not caller_writes,
        )
        self._stages = [
            Stage('consume-%d' % i if i else 'hash', c, self._release, f)
            for i, c in enumerate(consumers)
            for f in [self.failed]
        ]
        self._stages.append(self.writer)

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


class Watchdog:
    """Aborts the source when the transfer must stop while it reads.

    A read from a slow or stalled server can block for long; a cancel (the
    agent stops) or a failed stage (the disk is full) must not wait for it.
    """

    POLL = 0.1

    def __init__(
        self,
        source: Any,
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


def start(
    name: str,
    func: Callable[[], int],
    then: Callable[[], None] | None = None,
) -> Callable[[], int]:
    """Run ``func()`` in a nicer thread of its own, then ``then()``;
    return a function that waits for it and gives its result or error."""
    outcome: dict = {}

    def run() -> None:
        lower_priority()
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


def in_thread(name: str, func: Callable[[], int]) -> int:
    """``func()`` run by a nicer thread of its own; its result or error.

    The caller (an RPC worker) only waits: all the work of a transfer runs
    at the stages' lower priority.
    """
    return start(name, func)()


def read_while_writing_here(read: Callable[[], int], stages: Stages) -> int:
    """``read()`` in a thread of its own while this thread writes; however
    the reading ends, the writing here ends with it."""
    wait = start('read', read, then=stages.writer.finish)
    stages.writer.drain()
    return wait()
