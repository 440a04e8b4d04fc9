"""The cache's index: entries named after the image and its hash, found
by name, least recently used first (downloads served from the cache are
in transfers/test_caching)."""

import os
import time

import pytest

from image_agent import cache as cache_mod
from image_agent import exception
from tests.unit.cache.helpers import put
from tests.unit.transfers.helpers import fake_image

MiB = 1024 * 1024


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
