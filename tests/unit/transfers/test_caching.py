"""Downloads served from the image cache (verified, without Glance
traffic), filled once per image, and pre-caching."""

import os
import threading
import time

import pytest

from image_agent import cache as cache_mod
from image_agent import exception
from image_agent import transfers
from image_agent.data import localcopy
from image_agent.image import glance as glance_mod
from tests.unit.glance_http import Answer
from tests.unit.transfers.helpers import checks
from tests.unit.transfers.helpers import image_bytes

# Three entries fill the cache of the tests (8000 bytes).
DATA = os.urandom(3 * 1000)


@pytest.fixture
def xfers(glance, glance_http, root):
    image_cache = cache_mod.ImageCache(str(root / 'cache'), 8000)
    return transfers.Transfers(
        glance_mod.GlanceImageService(),
        [str(root)],
        None,
        cache=image_cache,
    )


class TestDownloadsThroughTheCache:
    def test_the_cache_must_be_inside_the_download_roots(
        self, glance, tmp_path, root
    ):
        with pytest.raises(exception.InvalidConfigurationValue):
            transfers.Transfers(
                glance_mod.GlanceImageService(),
                [str(root)],
                None,
                cache=cache_mod.ImageCache(str(tmp_path / 'elsewhere')),
            )

    def test_a_second_download_is_served_from_the_cache(
        self, xfers, glance, glance_http, ctx, root
    ):
        image = glance.add_image(data=DATA)
        first = xfers.download(ctx, image['id'], str(root / 'one'))
        assert first['source'] == 'cache'
        assert first['fetched'] == len(DATA)
        second = xfers.download(ctx, image['id'], str(root / 'two'))
        assert second['source'] == 'cache'
        assert second['fetched'] == 0
        assert (root / 'two').read_bytes() == DATA
        assert image_bytes(glance_http) == len(DATA)
        # The second caller's right was Glance's answer to a check.
        assert len(glance_http.requests) == 2
        assert len(checks(glance_http)) == 1
        # The destination is a copy: changing it leaves the cache intact.
        os.chmod(root / 'two', 0o644)
        with open(root / 'two', 'r+b') as f:
            f.write(b'changed')
        entry = xfers.cache.lookup(image)
        with open(entry.path, 'rb') as f:
            assert f.read() == DATA
        assert os.stat(entry.path).st_mode & 0o777 == 0o400
        assert os.stat(xfers.cache.directory).st_mode & 0o777 == 0o700

    def test_a_cached_image_glance_refuses_now_is_not_served(
        self, xfers, glance, glance_http, ctx, root
    ):
        """A deactivated image: Glance answers 403 on its data."""
        image = glance.add_image(data=DATA)
        xfers.precache(ctx, image['id'])
        glance_http.add(Answer(status=403))
        with pytest.raises(exception.ImageNotAuthorized):
            xfers.download(ctx, image['id'], str(root / 'disk'))
        assert sorted(os.listdir(root)) == ['cache']

    def test_the_cache_is_no_upload_source(self, xfers, glance, ctx, root):
        image = glance.add_image(data=DATA)
        xfers.precache(ctx, image['id'])
        entry = xfers.cache.lookup(image)
        sent = []
        os.symlink(root / 'cache', root / 'alias')
        for path in (entry.path, str(root / 'alias' / entry.name)):
            with pytest.raises(exception.PathNotAllowed):
                xfers.upload(ctx, path, sent.append)
        os.symlink(entry.path, root / 'link')
        with pytest.raises(exception.InvalidPath):
            xfers.upload(ctx, str(root / 'link'), sent.append)
        assert sent == []

    def test_an_entry_filled_by_the_same_call_is_not_hashed_twice(
        self, xfers, glance, ctx, root, monkeypatch
    ):
        calls = []
        real = localcopy.copy_verified

        def spy(*args, **kwargs):
            calls.append(args[3] is not None)  # hashed
            return real(*args, **kwargs)

        monkeypatch.setattr(localcopy, 'copy_verified', spy)
        image = glance.add_image(data=DATA)
        xfers.download(ctx, image['id'], str(root / 'one'))
        xfers.download(ctx, image['id'], str(root / 'two'))
        # Filled and verified by the first call; found by the second.
        assert calls == [False, True]

    def test_one_image_to_many_paths_at_once_is_one_glance_transfer(
        self, xfers, glance, glance_http, ctx, root
    ):
        image = glance.add_image(data=DATA)
        results = []

        def download(name):
            results.append(xfers.download(ctx, image['id'], str(root / name)))

        threads = [
            threading.Thread(target=download, args=('d%d' % n,))
            for n in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 3
        assert image_bytes(glance_http) == len(DATA)
        for n in range(3):
            assert (root / ('d%d' % n)).read_bytes() == DATA

    def test_a_damaged_entry_is_dropped_and_glance_asked(
        self, xfers, glance, ctx, root
    ):
        image = glance.add_image(data=DATA)
        xfers.precache(ctx, image['id'])
        entry = xfers.cache.lookup(image)
        os.chmod(entry.path, 0o644)
        with open(entry.path, 'r+b') as f:
            f.write(b'rot')
        result = xfers.download(ctx, image['id'], str(root / 'disk'))
        assert result['source'] == 'glance'
        assert (root / 'disk').read_bytes() == DATA
        assert xfers.cache.lookup(image) is None

    def test_precache_reports_cached_then_existing(self, xfers, glance, ctx):
        image = glance.add_image(data=DATA)
        first = xfers.precache(ctx, image['id'])
        assert first['status'] == 'cached'
        assert first['fetched'] == len(DATA)
        again = xfers.precache(ctx, image['id'])
        assert again['status'] == 'existing'
        assert again['fetched'] == 0
        assert [e['image_id'] for e in xfers.list_cache()['entries']] == [
            image['id']
        ]

    def test_the_limit_evicts_the_least_recently_used_image(
        self, xfers, glance, ctx
    ):
        images = [glance.add_image(data=os.urandom(3000)) for _ in range(3)]
        xfers.precache(ctx, images[0]['id'])
        xfers.precache(ctx, images[1]['id'])
        entry = xfers.cache.lookup(images[0])
        old = time.time() - 100
        os.utime(entry.path, (old, old))
        # Using image 1 again makes image 0 the least recently used.
        xfers.precache(ctx, images[2]['id'])
        cached = {e['image_id'] for e in xfers.list_cache()['entries']}
        assert cached == {images[1]['id'], images[2]['id']}

    def test_an_image_too_large_for_the_cache_goes_straight(
        self, xfers, glance, ctx, root
    ):
        image = glance.add_image(data=os.urandom(9000))
        result = xfers.download(ctx, image['id'], str(root / 'big'))
        assert result['source'] == 'glance'
        assert xfers.cache.entries() == []
        with pytest.raises(exception.CacheFull):
            xfers.precache(ctx, image['id'])

    def test_downloads_into_the_cache_directory_are_refused(
        self, xfers, glance, ctx, root
    ):
        image = glance.add_image(data=DATA)
        with pytest.raises(exception.InvalidPath, match='cache'):
            xfers.download(ctx, image['id'], str(root / 'cache' / 'x'))

    def test_orphans_in_a_deep_cache_are_removed(
        self, glance, glance_http, root
    ):
        deep = root / 'a' / 'b' / 'c' / 'd' / 'e' / 'cache'
        xfers = transfers.Transfers(
            glance_mod.GlanceImageService(),
            [str(root)],
            None,
            cache=cache_mod.ImageCache(str(deep)),
        )
        orphan = deep / '.x.image-agent-tmp-abcdefgh'
        orphan.write_bytes(b'partial')
        assert xfers.remove_orphans(depth=1) == [str(orphan)]
        assert not orphan.exists()

    def test_evict_and_list_without_cache(self, glance, glance_http, root):
        plain = transfers.Transfers(
            glance_mod.GlanceImageService(), [str(root)], None
        )
        with pytest.raises(exception.CacheDisabled):
            plain.list_cache()
        with pytest.raises(exception.CacheDisabled):
            plain.evict('x')
