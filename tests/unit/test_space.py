"""Disk space reserved per transfer and filesystem, before its first byte."""

import os

import pytest

from image_agent import exception
from image_agent import space

MiB = 1024 * 1024


@pytest.fixture
def free(tmp_path, monkeypatch):
    """Pretend ``tmp_path``'s filesystem has ``free[0]`` bytes free."""
    amount = [100 * MiB]
    real = os.statvfs

    class Stat:
        f_frsize = 1

        @property
        def f_bavail(self):
            return amount[0]

    def statvfs(path):
        if str(path).startswith(str(tmp_path)):
            return Stat()
        return real(path)

    monkeypatch.setattr(space.os, 'statvfs', statvfs)
    return amount


class TestReserve:
    def test_a_size_that_fits_is_granted(self, tmp_path, free):
        ledger = space.SpaceLedger(margin=10 * MiB)
        with ledger.reserve(str(tmp_path), 'img', 90 * MiB) as r:
            assert r.limit == 90 * MiB
            assert ledger.reserved() == 90 * MiB
        assert ledger.reserved() == 0

    def test_the_margin_counts(self, tmp_path, free):
        ledger = space.SpaceLedger(margin=10 * MiB)
        with pytest.raises(exception.InsufficientSpace) as e:
            ledger.reserve(str(tmp_path), 'img', 91 * MiB)
        assert 'img' in str(e.value)

    def test_two_that_fit_only_one_at_a_time(self, tmp_path, free):
        ledger = space.SpaceLedger()
        first = ledger.reserve(str(tmp_path), 'a', 60 * MiB)
        with pytest.raises(exception.InsufficientSpace):
            ledger.reserve(str(tmp_path), 'b', 60 * MiB)
        first.release()
        ledger.reserve(str(tmp_path), 'b', 60 * MiB).release()

    def test_written_bytes_are_not_counted_twice(self, tmp_path, free):
        ledger = space.SpaceLedger()
        first = ledger.reserve(str(tmp_path), 'a', 60 * MiB)
        # 50 MiB of it written: statvfs shows them used.
        first.written = 50 * MiB
        free[0] -= 50 * MiB
        # 50 free, 10 still promised: 40 left.
        assert ledger.available(str(tmp_path)) == 40 * MiB
        ledger.reserve(str(tmp_path), 'b', 40 * MiB).release()
        with pytest.raises(exception.InsufficientSpace):
            ledger.reserve(str(tmp_path), 'b', 41 * MiB)

    def test_a_cache_fill_and_its_copy_need_twice(self, tmp_path, free):
        (tmp_path / 'cache').mkdir()
        ledger = space.SpaceLedger()
        with (
            ledger.reserve(str(tmp_path), 'img', 60 * MiB),
            pytest.raises(exception.InsufficientSpace),
        ):
            ledger.reserve(str(tmp_path / 'cache'), 'img', 60 * MiB)

    def test_other_filesystems_are_apart(self, tmp_path, free):
        ledger = space.SpaceLedger()
        with ledger.reserve(str(tmp_path), 'img', 100 * MiB):
            # Another filesystem (the real /) does not see this one's.
            ledger.reserve('/', 'img', 1).release()


class TestUnknownSize:
    def test_it_takes_what_is_free_beyond_the_margin(self, tmp_path, free):
        ledger = space.SpaceLedger(margin=10 * MiB)
        with ledger.reserve(str(tmp_path), 'img', None) as r:
            assert r.limit == 90 * MiB
            assert not r.sized
            with pytest.raises(exception.InsufficientSpace):
                ledger.reserve(str(tmp_path), 'other', 1)

    def test_nothing_free_is_refused(self, tmp_path, free):
        free[0] = 5 * MiB
        ledger = space.SpaceLedger(margin=10 * MiB)
        with pytest.raises(exception.InsufficientSpace):
            ledger.reserve(str(tmp_path), 'img', 0)
