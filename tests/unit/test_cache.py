"""The image cache: its index, LRU eviction, entries in use, and downloads
served from it (verified, without Glance traffic)."""

import errno
import hashlib
import os
import threading
import time

import pytest

from image_agent import cache as cache_mod
from image_agent import exception
from image_agent import localcopy
from image_agent import transfers
from image_agent.image import glance as glance_mod
from tests.unit.glance_http import Answer

MiB = 1024 * 1024


def checks(glance_http):
    """Requests that asked Glance for a caller's right (one byte each)."""
    return [
        r
        for r in glance_http.requests
        if r.headers.get('Range') == 'bytes=0-0'
    ]


def image_bytes(glance_http):
    """Bytes of image data Glance sent, its answers to checks aside."""
    return glance_http.sent - len(checks(glance_http))


def fake_image(image_id, data):
    return {
        'id': image_id,
        'size': len(data),
        'os_hash_algo': 'sha512',
        'os_hash_value': hashlib.sha512(data).hexdigest(),
    }


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
            calls.append(kwargs.get('verify', True))
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


class TestLocalCopies:
    """``file://`` locations readable here: a kernel copy, verified, and
    Glance's API when anything goes wrong."""

    @pytest.fixture
    def plain(self, glance, glance_http, root, config):
        config.config(group='glance', allowed_direct_url_schemes=['file'])
        return transfers.Transfers(
            glance_mod.GlanceImageService(), [str(root)], None
        )

    def stored(self, glance, tmp_path, data, stored_data=None):
        store = tmp_path / 'store'
        store.mkdir(exist_ok=True)
        path = store / os.urandom(4).hex()
        path.write_bytes(data if stored_data is None else stored_data)
        return glance.add_image(
            data=data,
            direct_url='file://%s' % path,
            locations=[{'url': 'file://%s' % path, 'metadata': {}}],
        )

    def test_a_readable_location_is_copied_locally(
        self, plain, glance, glance_http, ctx, root, tmp_path
    ):
        image = self.stored(glance, tmp_path, DATA)
        result = plain.download(ctx, image['id'], str(root / 'disk'))
        assert result['source'] == 'file'
        assert result['fetched'] == 0
        assert image_bytes(glance_http) == 0
        assert (root / 'disk').read_bytes() == DATA

    def test_a_location_glance_refuses_now_is_not_copied(
        self, plain, glance, glance_http, ctx, root, tmp_path
    ):
        image = self.stored(glance, tmp_path, DATA)
        glance_http.add(Answer(status=403))
        with pytest.raises(exception.ImageNotAuthorized):
            plain.download(ctx, image['id'], str(root / 'disk'))
        assert os.listdir(root) == []

    @pytest.mark.parametrize('missing', ['os_hash_value', 'size'])
    def test_an_image_without_hash_or_size_is_fetched_from_glance(
        self, plain, glance, glance_http, ctx, root, tmp_path, missing
    ):
        image = self.stored(glance, tmp_path, DATA)
        glance.images[image['id']][missing] = None
        glance.images[image['id']].pop('checksum', None)
        result = plain.download(ctx, image['id'], str(root / 'disk'))
        assert result['source'] == 'glance'
        assert checks(glance_http) == []

    @pytest.mark.parametrize('kind', ['symlink', 'fifo', 'device'])
    def test_a_location_that_is_no_regular_file_is_never_read(
        self, plain, glance, glance_http, ctx, root, tmp_path, kind
    ):
        image = self.stored(glance, tmp_path, DATA)
        path = glance.images[image['id']]['direct_url'][len('file://') :]
        os.unlink(path)
        if kind == 'symlink':
            secret = tmp_path / 'agent.conf'
            secret.write_bytes(DATA)
            os.symlink(secret, path)
        elif kind == 'fifo':
            os.mkfifo(path)
        else:
            os.symlink('/dev/zero', path)
            path = '/dev/zero'
            glance.images[image['id']]['direct_url'] = 'file:///dev/zero'
            glance.images[image['id']]['locations'] = []
        started = time.monotonic()
        result = plain.download(ctx, image['id'], str(root / 'disk'))
        assert time.monotonic() - started < 5
        assert result['source'] == 'glance'
        assert (root / 'disk').read_bytes() == DATA

    def test_a_wrong_local_file_falls_back_to_glance(
        self, plain, glance, glance_http, ctx, root, tmp_path
    ):
        image = self.stored(glance, tmp_path, DATA, stored_data=b'x' * 3000)
        result = plain.download(ctx, image['id'], str(root / 'disk'))
        assert result['source'] == 'glance'
        assert image_bytes(glance_http) == len(DATA)
        assert (root / 'disk').read_bytes() == DATA

    def test_a_short_local_file_falls_back_to_glance(
        self, plain, glance, glance_http, ctx, root, tmp_path
    ):
        image = self.stored(glance, tmp_path, DATA, stored_data=DATA[:100])
        result = plain.download(ctx, image['id'], str(root / 'disk'))
        assert result['source'] == 'glance'
        assert (root / 'disk').read_bytes() == DATA

    def test_an_unreadable_location_uses_glance(
        self, plain, glance, glance_http, ctx, root, tmp_path
    ):
        image = glance.add_image(
            data=DATA, direct_url='file:///nonexistent/image'
        )
        result = plain.download(ctx, image['id'], str(root / 'disk'))
        assert result['source'] == 'glance'

    def test_without_the_file_scheme_glance_is_used(
        self, plain, glance, glance_http, ctx, root, tmp_path, config
    ):
        config.config(group='glance', allowed_direct_url_schemes=[])
        image = self.stored(glance, tmp_path, DATA)
        result = plain.download(ctx, image['id'], str(root / 'disk'))
        assert result['source'] == 'glance'


class TestCopyVerified:
    @pytest.mark.parametrize('reflink', [True, False])
    def test_copy_methods(self, tmp_path, reflink, monkeypatch):
        data = os.urandom(3 * localcopy.COPY_STEP // 2 + 7)
        src = tmp_path / 'src'
        src.write_bytes(data)
        image = fake_image('x', data)
        seen = []
        with open(src, 'rb') as s, open(tmp_path / 'dst', 'w+b') as d:
            size, how = localcopy.copy_verified(
                s.fileno(), d.fileno(), image, seen.append, reflink=reflink
            )
        assert size == len(data)
        assert how in ('reflink', 'copy_file_range', 'read_write')
        assert (tmp_path / 'dst').read_bytes() == data
        assert seen[-1] == len(data)

    def test_without_kernel_copy_bytes_are_read_and_written(
        self, tmp_path, monkeypatch
    ):
        def unsupported(*args):
            raise OSError(errno.EXDEV, 'cross-device')

        monkeypatch.setattr(os, 'copy_file_range', unsupported)
        data = os.urandom(5000)
        (tmp_path / 'src').write_bytes(data)
        with (
            open(tmp_path / 'src', 'rb') as s,
            open(tmp_path / 'dst', 'w+b') as d,
        ):
            size, how = localcopy.copy_verified(
                s.fileno(), d.fileno(), fake_image('x', data), reflink=False
            )
        assert how == 'read_write'
        assert (tmp_path / 'dst').read_bytes() == data

    def test_a_wrong_hash_is_an_error(self, tmp_path):
        (tmp_path / 'src').write_bytes(b'abc')
        with (
            open(tmp_path / 'src', 'rb') as s,
            open(tmp_path / 'dst', 'w+b') as d,
            pytest.raises(exception.ImageChecksumMismatch),
        ):
            localcopy.copy_verified(
                s.fileno(), d.fileno(), fake_image('x', b'abd')
            )

    def test_file_locations(self, tmp_path):
        (tmp_path / 'img').write_bytes(b'a')
        image = fake_image('x', b'a')
        image.update(
            direct_url='http://x/y',
            locations=[
                {'url': 'file:///nonexistent'},
                {'url': 'file://%s' % (tmp_path / 'i%6Dg')},
                {'url': 'file://elsewhere/%s' % (tmp_path / 'img')},
            ],
        )
        assert localcopy.file_paths(image, ['file']) == [
            '/nonexistent',
            str(tmp_path / 'img'),
        ]
        assert localcopy.file_paths(image, ['http']) == []
        fd, path = localcopy.open_location(image, ['file'])
        os.close(fd)
        assert path == str(tmp_path / 'img')
        hashless = dict(image, os_hash_value=None)
        assert localcopy.file_paths(hashless, ['file']) == []
        sizeless = dict(image, size=None)
        assert localcopy.file_paths(sizeless, ['file']) == []
        with pytest.raises(OSError):
            localcopy.open_regular(str(tmp_path))
