"""copy_verified and iter_verified: read, hash and write at once, verified.

The sources here are in-memory stand-ins with the ``readinto`` of
``HttpSource``; small buffers make many of them cycle through the pool.
"""

import hashlib
import os
import threading

import pytest

from image_agent import exception
from image_agent.data import pipeline
from image_agent.data import verify

DATA = os.urandom(100_003)


class MemorySource:
    """``data`` handed out ``step`` bytes at a time at most."""

    def __init__(self, data, step=7_001, fail_at=None, error=None):
        self.data = data
        self.step = step
        self.offset = 0
        self.fail_at = fail_at
        self.error = error
        self.closed = False
        self.threads = set()

    def readinto(self, view):
        self.threads.add(threading.current_thread().name)
        if self.fail_at is not None and self.offset >= self.fail_at:
            raise self.error
        count = min(len(view), self.step, len(self.data) - self.offset)
        view[:count] = self.data[self.offset : self.offset + count]
        self.offset += count
        return count

    def close(self):
        self.closed = True


def hasher_for(data, **image):
    image.setdefault('id', 'i')
    image.setdefault('os_hash_algo', 'sha512')
    image.setdefault('os_hash_value', hashlib.sha512(data).hexdigest())
    return verify.ImageHasher(image)


class Sink:
    """A write that records the bytes, the buffers and its thread."""

    def __init__(self, fail_after=None):
        self.data = bytearray()
        self.buffers = set()
        self.threads = set()
        self.fail_after = fail_after

    def __call__(self, view):
        self.threads.add(threading.current_thread().name)
        self.buffers.add(id(view.obj))
        if self.fail_after is not None and len(self.data) >= self.fail_after:
            raise OSError(28, 'No space left on device')
        self.data += view


def copy(source, sink, data=DATA, **kwargs):
    kwargs.setdefault('buffer_size', 16 * 1024)
    kwargs.setdefault('buffers', 3)
    return pipeline.copy_verified(source, hasher_for(data), sink, **kwargs)


class TestCopyVerified:
    def test_every_byte_arrives_in_order_through_a_few_buffers(self):
        source, sink = MemorySource(DATA), Sink()
        assert copy(source, sink) == len(DATA)
        assert bytes(sink.data) == DATA
        # Seven buffers' worth went through three reused buffers.
        assert len(sink.buffers) <= 3
        assert source.closed

    def test_reading_hashing_and_writing_have_threads_of_their_own(self):
        source, sink = MemorySource(DATA), Sink()
        copy(source, sink)
        assert sink.threads == {'image-agent-write'}
        assert source.threads == {'image-agent-read'}

    @pytest.mark.parametrize('niceness', [10, 3, 0])
    def test_those_threads_are_nicer_than_the_caller(self, config, niceness):
        config.config(group='agent', transfer_niceness=niceness)
        seen = []

        def write(view):
            tid = threading.get_native_id()
            seen.append(os.getpriority(os.PRIO_PROCESS, tid))

        copy(MemorySource(DATA), write)
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert set(seen) == {min(19, mine + niceness)}

    def test_a_mismatch_is_raised_after_every_byte_was_written(self):
        sink = Sink()
        with pytest.raises(exception.ImageChecksumMismatch):
            copy(MemorySource(b'X' * len(DATA)), sink)
        assert len(sink.data) == len(DATA)

    def test_a_write_failure_stops_the_reading(self):
        source = MemorySource(DATA * 20)
        with pytest.raises(OSError) as info:
            copy(source, Sink(fail_after=32 * 1024), data=DATA * 20)
        assert info.value.errno == 28
        assert source.offset < len(DATA) * 20
        assert source.closed

    def test_a_source_failure_is_raised_and_the_stages_stop(self):
        error = exception.ImageDownloadFailed(image_id='i', reason='gone')
        source = MemorySource(DATA, fail_at=50_000, error=error)
        before = threading.active_count()
        with pytest.raises(exception.ImageDownloadFailed):
            copy(source, Sink())
        assert threading.active_count() == before
        assert source.closed

    def test_other_consumers_see_every_chunk_beside_the_hash(self):
        seen, sink = Sink(), Sink()
        copy(MemorySource(DATA), sink, consumers=[seen])
        assert bytes(seen.data) == DATA
        assert seen.threads == {'image-agent-consume-1'}

    def test_a_failing_consumer_stops_the_copy_with_its_error(self):
        def refuse(view):
            raise exception.ImageUnacceptable(image_id='i', reason='no')

        sink = Sink()
        with pytest.raises(exception.ImageUnacceptable):
            copy(
                MemorySource(DATA * 20),
                sink,
                data=DATA * 20,
                consumers=[refuse],
            )
        assert len(sink.data) < len(DATA) * 20

    def test_cancel_raises_cancelled(self):
        cancel = threading.Event()
        cancel.set()
        with pytest.raises(pipeline.Cancelled):
            copy(MemorySource(DATA), Sink(), cancel=cancel)

    def test_progress_counts_written_bytes(self):
        seen = []
        copy(MemorySource(DATA), Sink(), progress=seen.append)
        assert seen == sorted(seen)
        assert seen[-1] == len(DATA)

    def test_an_image_without_hash_is_copied_with_a_warning(self, caplog):
        sink = Sink()
        hasher = verify.ImageHasher({'id': 'nohash'})
        pipeline.copy_verified(MemorySource(DATA), hasher, sink)
        assert bytes(sink.data) == DATA
        assert 'has no hash in Glance' in caplog.text

    def test_the_md5_checksum_is_the_fallback(self):
        md5 = hashlib.md5(DATA, usedforsecurity=False).hexdigest()
        hasher = verify.ImageHasher({'id': 'i', 'checksum': md5})
        pipeline.copy_verified(MemorySource(DATA), hasher, Sink())
        bad = verify.ImageHasher({'id': 'i', 'checksum': '0' * 32})
        with pytest.raises(exception.ImageChecksumMismatch):
            pipeline.copy_verified(MemorySource(DATA), bad, Sink())

    def test_an_empty_source_is_zero_bytes(self):
        sink = Sink()
        assert copy(MemorySource(b''), sink, data=b'') == 0
        assert sink.data == b''


class TestCallerWrites:
    """``caller_writes``: the calling thread writes, the others read and
    hash (for a caller's own file object, e.g. Cinder's tpool.Proxy)."""

    def test_the_calling_thread_writes_every_byte_in_order(self):
        source, sink = MemorySource(DATA), Sink()
        seen = []
        assert copy(
            source, sink, caller_writes=True, progress=seen.append
        ) == len(DATA)
        assert bytes(sink.data) == DATA
        assert sink.threads == {threading.current_thread().name}
        assert source.threads == {'image-agent-read'}
        assert seen[-1] == len(DATA)

    def test_the_calling_threads_priority_is_left_alone(self, config):
        config.config(group='agent', transfer_niceness=10)
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        copy(MemorySource(DATA), Sink(), caller_writes=True)
        assert os.getpriority(os.PRIO_PROCESS, tid) == before

    def test_a_write_failure_stops_the_reading(self):
        source = MemorySource(DATA * 20)
        before = threading.active_count()
        with pytest.raises(OSError) as info:
            copy(
                source,
                Sink(fail_after=32 * 1024),
                data=DATA * 20,
                caller_writes=True,
            )
        assert info.value.errno == 28
        assert source.offset < len(DATA) * 20
        assert threading.active_count() == before

    def test_a_source_failure_is_raised(self):
        error = exception.ImageDownloadFailed(image_id='i', reason='gone')
        source = MemorySource(DATA, fail_at=50_000, error=error)
        before = threading.active_count()
        with pytest.raises(exception.ImageDownloadFailed):
            copy(source, Sink(), caller_writes=True)
        assert threading.active_count() == before

    def test_a_mismatch_is_raised_after_every_byte_was_written(self):
        sink = Sink()
        with pytest.raises(exception.ImageChecksumMismatch):
            copy(MemorySource(b'X' * len(DATA)), sink, caller_writes=True)
        assert len(sink.data) == len(DATA)


class BlockingSource(MemorySource):
    """Gives one piece, then blocks (a stalled server) until aborted."""

    def __init__(self):
        super().__init__(DATA)
        self.aborted = threading.Event()

    def readinto(self, view):
        if self.offset:
            assert self.aborted.wait(10), 'never aborted'
            raise OSError('aborted')
        return super().readinto(view)

    def abort(self):
        self.aborted.set()


class TestWatchdog:
    def test_a_cancel_ends_a_blocked_read(self):
        cancel = threading.Event()
        source = BlockingSource()
        threading.Timer(0.2, cancel.set).start()
        with pytest.raises(pipeline.Cancelled):
            copy(source, Sink(), cancel=cancel)
        assert source.aborted.is_set()

    def test_a_failed_write_ends_a_blocked_read_with_its_own_error(self):
        source = BlockingSource()
        with pytest.raises(OSError) as info:
            copy(source, Sink(fail_after=0), buffer_size=1000)
        assert info.value.errno == 28
        assert source.aborted.is_set()


class TestIterVerified:
    def test_chunks_are_bytes_of_their_own(self):
        chunks = list(
            pipeline.iter_verified(
                MemorySource(DATA), hasher_for(DATA), chunk_size=10_000
            )
        )
        assert all(type(c) is bytes for c in chunks)
        assert b''.join(chunks) == DATA
        assert len(chunks) == 11

    def test_a_mismatch_comes_after_the_last_chunk(self):
        got = []
        with pytest.raises(exception.ImageChecksumMismatch):
            for chunk in pipeline.iter_verified(
                MemorySource(b'Y' * len(DATA)), hasher_for(DATA)
            ):
                got.append(chunk)
        assert len(b''.join(got)) == len(DATA)

    def test_abandoning_the_iterator_closes_the_source(self):
        source = MemorySource(DATA)
        chunks = pipeline.iter_verified(source, hasher_for(DATA), 1000)
        next(chunks)
        chunks.close()
        assert source.closed
