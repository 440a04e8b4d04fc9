"""Direct I/O: full aligned buffers bypass the page cache, the rest does
not, and the bytes are the same either way."""

import errno
import fcntl
import mmap
import os

import pytest

from image_agent import paths
from image_agent.data import direct
from image_agent.data import writer

MiB = 1024 * 1024


def buffer(size=MiB, fill=b'x'):
    """An mmap, as the download pipeline's buffers are (page-aligned)."""
    buf = mmap.mmap(-1, size)
    buf.write(os.urandom(size) if fill is None else fill * size)
    return memoryview(buf)


class TestAligned:
    def test_a_full_buffer_at_an_aligned_offset(self):
        assert direct.aligned(buffer(), 0)
        assert direct.aligned(buffer(), 4 * MiB)

    def test_an_unaligned_offset_length_or_address(self):
        view = buffer()
        assert not direct.aligned(view, 512)
        assert not direct.aligned(view[:12345], 0)
        assert not direct.aligned(view[1 : 1 + direct.ALIGN], 0)

    def test_read_only_bytes_and_empty_buffers_are_written_normally(self):
        assert not direct.aligned(b'x' * direct.ALIGN, 0)
        assert not direct.aligned(buffer()[:0], 0)


def flags(fd):
    return fcntl.fcntl(fd, fcntl.F_GETFL)


@pytest.fixture
def write(root):
    policy = paths.PathPolicy([str(root)], 'download')

    def write(name, chunks, seen=None):
        dest = policy.destination(str(root / name))
        dir_fd = policy.open_directory(dest)
        try:
            with writer.AtomicFile(
                dest, dir_fd, 0o600, False, direct=True
            ) as out:
                for chunk in chunks:
                    out.write(chunk)
                    if seen is not None:
                        seen.append(bool(flags(out._fd) & os.O_DIRECT))
            return out
        finally:
            os.close(dir_fd)

    return write


class TestDirectWrites:
    def test_full_buffers_direct_and_the_tail_through_the_cache(
        self, write, root
    ):
        chunks = [buffer(fill=None), buffer(fill=None), buffer()[:1000]]
        seen = []
        write('image', chunks, seen)
        try:
            assert seen == [True, True, False]
        except AssertionError:
            pytest.skip('the filesystem of the test root has no O_DIRECT')
        assert (root / 'image').read_bytes() == b''.join(
            bytes(c) for c in chunks
        )

    def test_after_an_unaligned_piece_the_next_buffers_are_not_direct(
        self, write, root
    ):
        seen = []
        chunks = [buffer()[:1000], buffer(), buffer()]
        write('image', chunks, seen)
        assert seen == [False, False, False]
        assert (root / 'image').stat().st_size == 1000 + 2 * MiB

    def test_a_kernel_copy_gets_the_file_without_the_flag(self, root):
        policy = paths.PathPolicy([str(root)], 'download')
        dest = policy.destination(str(root / 'copy'))
        dir_fd = policy.open_directory(dest)
        try:
            with writer.AtomicFile(
                dest, dir_fd, 0o600, False, direct=True
            ) as out:
                out.write(buffer())
                assert not flags(out.fileno()) & os.O_DIRECT
                out.write(buffer()[:10])
        finally:
            os.close(dir_fd)
        assert (root / 'copy').stat().st_size == MiB + 10

    def test_a_filesystem_refusing_the_flag_gets_normal_writes(
        self, monkeypatch
    ):
        real = fcntl.fcntl

        def refuse(fd, command, *args):
            if command == fcntl.F_SETFL and args[0] & os.O_DIRECT:
                raise OSError(errno.EINVAL, 'Invalid argument')
            return real(fd, command, *args)

        monkeypatch.setattr(fcntl, 'fcntl', refuse)
        r, w = os.pipe()
        try:
            writes = direct.DirectWrites(w)
            writes.set(True)
            assert not writes.usable
            assert not real(w, fcntl.F_GETFL) & os.O_DIRECT
        finally:
            os.close(r)
            os.close(w)

    def test_a_write_refused_after_the_flag_is_taken_is_made_again(
        self, write, root, monkeypatch
    ):
        real = os.write
        refused = []

        def write_once_refused(fd, data):
            if flags(fd) & os.O_DIRECT and not refused:
                refused.append(True)
                raise OSError(errno.EINVAL, 'Invalid argument')
            return real(fd, data)

        monkeypatch.setattr(os, 'write', write_once_refused)
        seen = []
        write('image', [buffer(), buffer()], seen)
        assert (root / 'image').stat().st_size == 2 * MiB
        assert seen == [False, False]

    def test_without_the_option_nothing_is_direct(self, root):
        policy = paths.PathPolicy([str(root)], 'download')
        dest = policy.destination(str(root / 'plain'))
        dir_fd = policy.open_directory(dest)
        try:
            with writer.AtomicFile(dest, dir_fd, 0o600, False) as out:
                out.write(buffer())
                assert not flags(out._fd) & os.O_DIRECT
        finally:
            os.close(dir_fd)
