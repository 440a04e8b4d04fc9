"""The sources of a download in their order: ``file://`` locations
readable here (a kernel copy, verified, and Glance's API when anything goes
wrong), then Glance."""

import os
import time

import pytest

from image_agent import exception
from image_agent import transfers
from image_agent.data import sources
from image_agent.image import glance as glance_mod
from tests.unit.glance_http import Answer
from tests.unit.transfers.helpers import checks
from tests.unit.transfers.helpers import fake_image
from tests.unit.transfers.helpers import image_bytes

# Three entries fill the cache of the tests (8000 bytes).
DATA = os.urandom(3 * 1000)


def test_the_order_is_cache_then_file_then_peers_then_glance():
    assert (
        sources.cache_entry,
        sources.file_location,
        sources.peer_agents,
        sources.glance,
    ) == sources.SOURCES


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


class TestFilePaths:
    def test_file_locations(self, tmp_path, config):
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
        config.config(group='glance', allowed_direct_url_schemes=['file'])
        assert sources.file_paths(image) == [
            '/nonexistent',
            str(tmp_path / 'img'),
        ]
        hashless = dict(image, os_hash_value=None)
        assert sources.file_paths(hashless) == []
        sizeless = dict(image, size=None)
        assert sources.file_paths(sizeless) == []
        config.config(group='glance', allowed_direct_url_schemes=['http'])
        assert sources.file_paths(image) == []
