"""The image cache: its index, LRU eviction and entries in use (downloads
served from it are in transfers/test_caching)."""

import os
import time

import pytest

from image_agent import cache as cache_mod
from image_agent import exception
from tests.unit.transfers.helpers import fake_image

MiB = 1024 * 1024


def put(cache, image, data, used=None):
    """An entry as the agent leaves it, last used at ``used``."""
    dest = cache.destination(image)
    with open(dest.path, 'wb') as f:
        f.write(data)
    os.chmod(dest.path, cache_mod.MODE)
    if used is not None:
        os.utime(dest.path, (used, used))
    return cache.lookup(image)


@pytest.fixture
def cache(tmp_path):
    c = cache_mod.ImageCache(str(tmp_path / 'cache'), max_size=3 * 1000)
    c.ensure_directory()
    return c


class TestIndex:
    def test_the_names_are_the_index(self, cache):
        image = fake_image('img-1', b'a' * 10)
        assert cache.lookup(image) is None
        entry = put(cache, image, b'a' * 10)
        assert entry.image_id == 'img-1'
        assert entry.algorithm == 'sha512'
        assert entry.hash == image['os_hash_value']
        assert entry.size == 10
        # A new cache object over the same directory (an agent restarted)
        # finds the same entries: nothing else needs to survive a crash.
        again = cache_mod.ImageCache(cache.directory)
        assert [e.image_id for e in again.entries()] == ['img-1']

    def test_another_hash_of_the_same_id_is_a_miss(self, cache):
        put(cache, fake_image('img-1', b'a'), b'a')
        assert cache.lookup(fake_image('img-1', b'b')) is None

    def test_temporary_and_foreign_files_are_not_entries(self, cache):
        for name in ('.x.image-agent-tmp-abcdefgh', 'notes.txt', 'a.b-c'):
            with open(os.path.join(cache.directory, name), 'w') as f:
                f.write('x')
        assert cache.entries() == []

    def test_an_image_without_hash_cannot_be_cached(self, cache):
        assert cache_mod.entry_name({'id': 'x', 'size': 1}) is None
        with pytest.raises(exception.Invalid):
            cache.destination({'id': 'x'})

    def test_md5_checksum_names_an_entry(self):
        name = cache_mod.entry_name({'id': 'x', 'checksum': 'ab' * 16})
        assert name == 'x.md5-' + 'ab' * 16

    def test_entries_are_least_recently_used_first(self, cache):
        now = time.time()
        put(cache, fake_image('new', b'1'), b'1', used=now)
        put(cache, fake_image('old', b'2'), b'2', used=now - 100)
        assert [e.image_id for e in cache.entries()] == ['old', 'new']

    def test_opening_an_entry_marks_it_used(self, cache):
        now = time.time()
        old = put(cache, fake_image('old', b'2'), b'2', used=now - 100)
        put(cache, fake_image('new', b'1'), b'1', used=now - 50)
        with cache.open(old):
            pass
        assert [e.image_id for e in cache.entries()] == ['new', 'old']


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
