"""Writing chunks to a local file: all or nothing, in place atomically."""

import hashlib
import os
import stat
import threading

import pytest

from image_agent import exception
from image_agent import paths
from image_agent import space
from image_agent.data import pipeline
from image_agent.data import writer


@pytest.fixture
def policy(root):
    return paths.PathPolicy([str(root)], 'download')


@pytest.fixture
def write(policy):
    """write(path, chunks, **options) through an opened directory."""

    def write(
        path, chunks, mode=0o644, overwrite=False, progress=None, **kwargs
    ):
        dest = policy.destination(str(path))
        dir_fd = policy.open_directory(dest)
        try:
            with writer.AtomicFile(
                dest, dir_fd, mode, overwrite, **kwargs
            ) as out:
                for chunk in chunks:
                    out.write(chunk)
                    if progress is not None:
                        progress(out.written)
            return out.written
        finally:
            os.close(dir_fd)

    return write


def leftovers(root):
    return [name for name in os.listdir(root) if paths.is_temp_name(name)]


def failing_after(chunks, error):
    """Chunks, then ``error`` (as the verified Glance stream does)."""
    yield from chunks
    raise error


class TestWriteAtomically:
    def test_the_file_gets_every_chunk_and_the_mode(self, write, root):
        written = write(root / 'disk', [b'abc', b'', b'def'], mode=0o640)
        assert written == 6
        assert (root / 'disk').read_bytes() == b'abcdef'
        assert stat.S_IMODE(os.stat(root / 'disk').st_mode) == 0o640
        assert leftovers(root) == []

    def test_the_mode_ignores_the_umask(self, write, root):
        old = os.umask(0o077)
        try:
            write(root / 'disk', [b'x'], mode=0o644)
        finally:
            os.umask(old)
        assert stat.S_IMODE(os.stat(root / 'disk').st_mode) == 0o644

    def test_a_failing_stream_leaves_nothing(self, write, root):
        error = exception.ImageChecksumMismatch(
            image_id='i', algorithm='sha512', actual='a', expected='b'
        )
        with pytest.raises(exception.ImageChecksumMismatch):
            write(root / 'disk', failing_after([b'abc'], error))
        assert os.listdir(root) == []

    def test_a_failing_stream_leaves_an_old_file_untouched(self, write, root):
        (root / 'disk').write_bytes(b'old')
        with pytest.raises(OSError):
            write(
                root / 'disk',
                failing_after([b'new'], OSError('reset')),
                overwrite=True,
            )
        assert (root / 'disk').read_bytes() == b'old'
        assert leftovers(root) == []

    def test_no_overwrite_keeps_an_existing_file(self, write, root):
        (root / 'disk').write_bytes(b'old')
        with pytest.raises(exception.DestinationExists):
            write(root / 'disk', [b'new'])
        assert (root / 'disk').read_bytes() == b'old'
        assert leftovers(root) == []

    def test_a_file_appearing_during_the_transfer_is_not_replaced(
        self, write, root
    ):
        def chunks():
            yield b'new'
            (root / 'disk').write_bytes(b'theirs')

        with pytest.raises(exception.DestinationExists):
            write(root / 'disk', chunks())
        assert (root / 'disk').read_bytes() == b'theirs'
        assert leftovers(root) == []

    def test_overwrite_replaces(self, write, root):
        (root / 'disk').write_bytes(b'old')
        write(root / 'disk', [b'new'], overwrite=True)
        assert (root / 'disk').read_bytes() == b'new'

    def test_the_temporary_file_is_ours_and_locked_while_written(
        self, write, root
    ):
        seen = []

        def chunks():
            yield b'a'
            [name] = leftovers(root)
            seen.append(name)
            # A scan for orphans finds it locked and leaves it alone.
            assert paths.remove_orphans([str(root)], depth=0) == []
            yield b'b'

        write(root / 'disk', chunks())
        assert seen and seen[0].startswith('.disk' + paths.TEMP_MARK)
        assert (root / 'disk').read_bytes() == b'ab'

    def test_a_short_stream_fails_when_the_size_is_known(self, write, root):
        with pytest.raises(writer.SizeMismatch):
            write(root / 'disk', [b'abc'], expected_size=4)
        assert os.listdir(root) == []

    def test_cancel_stops_and_cleans_up(self, write, root):
        cancel = threading.Event()

        def chunks():
            yield b'a'
            cancel.set()
            yield b'b'
            raise AssertionError('read on after the cancel')

        with pytest.raises(pipeline.Cancelled):
            write(root / 'disk', chunks(), cancel=cancel)
        assert os.listdir(root) == []

    def test_fsync_of_file_then_rename_then_directory(
        self, write, root, monkeypatch
    ):
        events = []
        real_fsync, real_link = os.fsync, os.link

        def fsync(fd):
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
            events.append('fsync dir' if is_dir else 'fsync file')
            real_fsync(fd)

        def link(*args, **kwargs):
            events.append('link')
            real_link(*args, **kwargs)

        monkeypatch.setattr(os, 'fsync', fsync)
        monkeypatch.setattr(os, 'link', link)
        write(root / 'disk', [b'x'])
        assert events == ['fsync file', 'link', 'fsync dir']

    def test_without_hard_links_a_check_and_rename_is_used(
        self, write, root, monkeypatch
    ):
        def no_link(*args, **kwargs):
            raise PermissionError(1, 'Operation not permitted')

        monkeypatch.setattr(os, 'link', no_link)
        write(root / 'disk', [b'x'])
        assert (root / 'disk').read_bytes() == b'x'
        with pytest.raises(exception.DestinationExists):
            write(root / 'disk', [b'y'])
        assert (root / 'disk').read_bytes() == b'x'
        assert leftovers(root) == []


def matches(path, image):
    return writer.matches_image(str(path), image, os.lstat(path))


class TestMatchesImage:
    def image(self, data):
        return {
            'id': 'i',
            'size': len(data),
            'os_hash_algo': 'sha512',
            'os_hash_value': hashlib.sha512(data).hexdigest(),
        }

    def test_same_bytes_match(self, root):
        (root / 'f').write_bytes(b'data')
        assert matches(root / 'f', self.image(b'data'))

    def test_other_bytes_of_the_same_size_do_not(self, root):
        (root / 'f').write_bytes(b'DATA')
        assert not matches(root / 'f', self.image(b'data'))

    def test_another_size_is_not_even_opened(self, root, monkeypatch):
        (root / 'f').write_bytes(b'datum')
        monkeypatch.setattr(os, 'open', None)
        assert not matches(root / 'f', self.image(b'data'))

    def test_an_image_without_hash_never_matches(self, root):
        (root / 'f').write_bytes(b'data')
        image = {'id': 'i', 'size': 4}
        assert not matches(root / 'f', image)

    def test_the_md5_checksum_is_the_fallback(self, root):
        (root / 'f').write_bytes(b'data')
        image = {
            'id': 'i',
            'size': 4,
            'checksum': hashlib.md5(b'data').hexdigest(),  # noqa: S324
        }
        assert matches(root / 'f', image)

    @pytest.mark.parametrize('mode', [0o620, 0o602, 0o666])
    def test_a_file_others_may_write_is_not_vouched_for(self, root, mode):
        (root / 'f').write_bytes(b'data')
        os.chmod(root / 'f', mode)
        assert not matches(root / 'f', self.image(b'data'))

    def test_a_file_swapped_after_its_lstat_is_not_read(self, root):
        (root / 'f').write_bytes(b'data')
        seen = os.lstat(root / 'f')
        os.rename(root / 'f', root / 'old')
        (root / 'f').write_bytes(b'data')
        assert not writer.matches_image(
            str(root / 'f'), self.image(b'data'), seen
        )

    def test_a_link_swapped_in_is_not_followed(self, root):
        (root / 'real').write_bytes(b'data')
        seen = os.lstat(root / 'real')
        os.symlink(root / 'real', root / 'f')
        assert not writer.matches_image(
            str(root / 'f'), self.image(b'data'), seen
        )

    def test_a_fifo_swapped_in_does_not_block(self, root):
        (root / 'f').write_bytes(b'data')
        seen = os.lstat(root / 'f')
        os.unlink(root / 'f')
        os.mkfifo(root / 'f')
        assert not writer.matches_image(
            str(root / 'f'), self.image(b'data'), seen
        )


class TestTheStreamIsCut:
    """A stream never writes past the image's size or its reservation."""

    def test_more_bytes_than_the_size_are_refused(self, write, root):
        written = []
        with pytest.raises(writer.TooManyBytes) as e:
            write(
                root / 'disk',
                [b'abcd', b'efgh', b'ij'],
                expected_size=9,
                progress=written.append,
            )
        # The last chunk was refused before a byte of it was written.
        assert written == [4, 8]
        assert "image's size" in str(e.value)
        assert not (root / 'disk').exists()
        assert leftovers(root) == []

    def test_an_endless_stream_stops_at_the_size(self, write, root):
        def endless():
            while True:
                yield b'x' * 1024

        with pytest.raises(writer.TooManyBytes):
            write(root / 'disk', endless(), expected_size=10 * 1024)
        assert leftovers(root) == []

    def test_without_a_size_the_reservation_bounds_it(self, write, root):
        ledger = space.SpaceLedger()
        reservation = space.Reservation(ledger, 0, 6, sized=False)
        with pytest.raises(writer.TooManyBytes) as e:
            write(root / 'disk', [b'abcd', b'efgh'], reservation=reservation)
        assert 'unknown size' in str(e.value)
        assert leftovers(root) == []

    def test_the_reservation_learns_what_is_written(self, write, root):
        ledger = space.SpaceLedger()
        reservation = space.Reservation(ledger, 0, 8, sized=True)
        write(
            root / 'disk',
            [b'abcd', b'efgh'],
            expected_size=8,
            reservation=reservation,
        )
        assert reservation.written == 8
        assert reservation.outstanding == 0


class TestMode:
    @pytest.mark.parametrize(
        'text, mode', [('0644', 0o644), ('600', 0o600), ('0440', 0o440)]
    )
    def test_modes_are_octal(self, text, mode):
        assert writer.parse_mode(text) == mode

    @pytest.mark.parametrize('text', ['rw-r--r--', '0o9', '99999'])
    def test_bad_modes_are_configuration_errors(self, text):
        with pytest.raises(exception.InvalidConfigurationValue):
            writer.parse_mode(text)


class TestAtomicFile:
    def test_views_written_from_another_thread_land_in_place(
        self, policy, root
    ):
        dest = policy.destination(str(root / 'disk'))
        dir_fd = policy.open_directory(dest)
        buffer = bytearray(b'abcdef')
        try:
            with writer.AtomicFile(dest, dir_fd, 0o600, False) as out:
                worker = threading.Thread(
                    target=out.write, args=(memoryview(buffer)[:4],)
                )
                worker.start()
                worker.join()
                buffer[:] = b'zzzzzz'  # reused afterwards: already written
        finally:
            os.close(dir_fd)
        assert (root / 'disk').read_bytes() == b'abcd'
        assert out.written == 4
        assert leftovers(root) == []

    def test_an_error_inside_removes_the_temporary_file(self, policy, root):
        dest = policy.destination(str(root / 'disk'))
        dir_fd = policy.open_directory(dest)
        try:
            with (
                pytest.raises(RuntimeError),
                writer.AtomicFile(dest, dir_fd, 0o600, False) as out,
            ):
                out.write(b'partial')
                raise RuntimeError('stream failed')
        finally:
            os.close(dir_fd)
        assert os.listdir(root) == []


def test_writeback_is_started_while_writing(write, root, monkeypatch):
    ranges = []
    monkeypatch.setattr(writer, 'WRITEBACK_STEP', 4)
    monkeypatch.setattr(
        os, 'posix_fadvise', lambda fd, off, n, advice: ranges.append((off, n))
    )
    write(root / 'disk', [b'ab'] * 6)
    assert (root / 'disk').read_bytes() == b'ab' * 6
    assert ranges == [(0, 4), (0, 8), (4, 8)]


class TestScratch:
    """A file whose bytes go elsewhere (a download converted into another
    file) is removed at the end, never published."""

    def test_a_scratch_file_leaves_nothing(self, policy, root):
        dest = policy.destination(str(root / 'disk'))
        dir_fd = policy.open_directory(dest)
        try:
            with writer.AtomicFile(
                dest, dir_fd, 0o600, False, writeback=False
            ) as out:
                out.write(b'x' * (writer.WRITEBACK_STEP + 1))
                out.scratch()
        finally:
            os.close(dir_fd)
        assert os.listdir(root) == []
