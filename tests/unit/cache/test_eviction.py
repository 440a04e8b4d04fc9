"""Room in the cache: LRU eviction, reservations, entries in use."""

import os
import time

import pytest

from image_agent import cache as cache_mod
from image_agent import exception
from tests.unit.cache.helpers import put
from tests.unit.transfers.helpers import fake_image

MiB = 1024 * 1024


class TestEviction:
    def test_room_is_made_least_recently_used_first(self, cache):
        now = time.time()
        for n, name in enumerate(['a', 'b', 'c']):
            put(cache, fake_image(name, b'x' * 1000), b'x' * 1000, now + n)
        with cache.reserve(1000):
            pass
        assert [e.image_id for e in cache.entries()] == ['b', 'c']
        with cache.reserve(2000):
            pass
        assert [e.image_id for e in cache.entries()] == ['c']

    def test_an_entry_being_read_is_never_evicted(self, cache):
        now = time.time()
        entries = [
            put(cache, fake_image(name, b'x' * 1000), b'x' * 1000, now + n)
            for n, name in enumerate(['a', 'b', 'c'])
        ]
        with cache.open(entries[0]) as fd:
            # 'a' is the least recently used... but it is being read.
            os.utime(entries[0].path, (now - 10, now - 10))
            with cache.reserve(1000):
                pass
            assert [e.image_id for e in cache.entries()] == ['a', 'c']
            assert cache.in_use(cache.lookup(fake_image('a', b'x' * 1000)))
            assert os.pread(fd, 4, 0) == b'xxxx'
            with pytest.raises(exception.CacheEntryInUse):
                cache.evict('a')

    def test_no_room_when_everything_is_in_use(self, cache):
        entry = put(cache, fake_image('a', b'x' * 3000), b'x' * 3000)
        with (
            cache.open(entry),
            pytest.raises(exception.CacheFull),
            cache.reserve(1000),
        ):
            pass
        assert cache.lookup(fake_image('a', b'x' * 3000)) is not None

    def test_an_image_larger_than_the_cache_is_refused(self, cache):
        with (
            pytest.raises(exception.CacheFull, match='larger'),
            cache.reserve(3001),
        ):
            pass

    def test_entries_being_written_count_against_the_limit(self, cache):
        put(cache, fake_image('a', b'x' * 1000), b'x' * 1000)
        with cache.reserve(2000), cache.reserve(1000):
            pass
        assert cache.entries() == []

    def test_evict_removes_every_entry_of_the_image(self, cache):
        put(cache, fake_image('a', b'1'), b'1')
        put(cache, fake_image('a', b'2'), b'2')
        put(cache, fake_image('b', b'3'), b'3')
        assert len(cache.evict('a')) == 2
        assert [e.image_id for e in cache.entries()] == ['b']
        assert cache.evict('a') == []

    def test_an_entry_evicted_while_being_opened_is_a_miss(self, cache):
        entry = put(cache, fake_image('a', b'1'), b'1')
        cache.evict('a')
        with pytest.raises(FileNotFoundError), cache.open(entry):
            pass

    def test_no_limit_evicts_nothing(self, tmp_path):
        cache = cache_mod.ImageCache(str(tmp_path / 'c'))
        cache.ensure_directory()
        put(cache, fake_image('a', b'x' * 5000), b'x' * 5000)
        with cache.reserve(10**9):
            pass
        assert len(cache.entries()) == 1
