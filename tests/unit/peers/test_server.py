"""The peer server serves a cached image only to a token Glance accepts."""

import os
import threading
import time

import pytest
import webob

from image_agent import cache as cache_mod
from image_agent import paths
from image_agent.peers import server
from tests.unit.peers import fakes

DATA = os.urandom(3 * 1024 * 1024 + 17)


@pytest.fixture
def image():
    return fakes.make_image(DATA)


@pytest.fixture
def images(image):
    return fakes.Images(image)


@pytest.fixture
def app(tmp_path, image, images):
    cache = fakes.cached(tmp_path / 'cache', image, DATA)
    return server.PeerApp(images, cache, fakes.validator())


def get(app, image_id, token=fakes.GOOD_TOKEN, **headers):
    request = webob.Request.blank('/v2/images/%s/file' % image_id)
    if token is not None:
        request.headers['X-Auth-Token'] = token
    request.headers.update(headers)
    return request.get_response(app)


class TestServing:
    def test_a_token_glance_accepts_gets_the_whole_image(self, app, image):
        response = get(app, image['id'])
        assert response.status_code == 200
        assert response.body == DATA
        assert response.content_length == len(DATA)

    def test_a_range_gets_the_rest_from_an_offset(self, app, image):
        response = get(app, image['id'], Range='bytes=1000-')
        assert response.status_code == 206
        assert response.body == DATA[1000:]
        assert response.headers['Content-Range'] == 'bytes 1000-%d/%d' % (
            len(DATA) - 1,
            len(DATA),
        )

    def test_glance_is_asked_for_every_request(self, app, image, images):
        get(app, image['id'])
        get(app, image['id'], Range='bytes=5-')
        assert images.checked == [fakes.GOOD_TOKEN] * 2

    def test_an_image_not_in_the_cache_is_not_found(self, app, images):
        other = fakes.make_image(b'other')
        images.image = other
        assert get(app, other['id']).status_code == 404

    def test_an_entry_of_an_older_hash_is_not_served(self, app, image, images):
        # The image's data changed in Glance: the entry is not its bytes.
        images.image = dict(image, os_hash_value='0' * 128)
        assert get(app, image['id']).status_code == 404

    def test_only_get_is_served(self, app, image):
        request = webob.Request.blank(
            '/v2/images/%s/file' % image['id'], method='DELETE'
        )
        request.headers['X-Auth-Token'] = fakes.GOOD_TOKEN
        assert request.get_response(app).status_code == 405


class TestRefusals:
    """No byte without Glance's word for the token that asks."""

    def test_no_token(self, app, image, images):
        response = get(app, image['id'], token=None)
        assert response.status_code == 401
        assert DATA[:64] not in response.body
        assert images.checked == []

    def test_a_token_keystone_does_not_know(self, app, image, images):
        response = get(app, image['id'], token='gAAAAAB-forged')
        assert response.status_code == 401
        assert DATA[:64] not in response.body
        assert images.checked == []

    def test_a_token_that_cannot_see_the_image(self, app, image):
        response = get(app, image['id'], token=fakes.OTHER_TOKEN)
        assert response.status_code == 404
        assert DATA[:64] not in response.body

    def test_a_token_glance_refuses_the_download(self, app, image):
        response = get(app, image['id'], token=fakes.DEACTIVATED_TOKEN)
        assert response.status_code == 403
        assert DATA[:64] not in response.body

    def test_a_path_outside_the_one_route(self, app, image):
        response = get(app, image['id'] + '/../x')
        assert response.status_code == 404


class TestGrowing:
    """An entry still being written is served as it grows."""

    @pytest.fixture
    def writing(self, tmp_path, image, images):
        """The cache with the image's entry half written, and the app."""
        cache = cache_mod.ImageCache(str(tmp_path / 'cache'))
        cache.ensure_directory()
        name = paths.temp_name(cache_mod.entry_name(image))
        path = os.path.join(cache.directory, name)
        with open(path, 'wb') as f:
            f.write(DATA[: len(DATA) // 2])
        app = server.PeerApp(images, cache, fakes.validator())
        return app, path

    def later(self, action):
        thread = threading.Thread(target=lambda: (time.sleep(0.3), action()))
        thread.start()
        return thread

    def test_the_rest_is_served_as_it_is_written(self, writing, image):
        app, path = writing

        def finish():
            with open(path, 'ab') as f:
                f.write(DATA[len(DATA) // 2 :])

        thread = self.later(finish)
        response = get(app, image['id'])
        thread.join()
        assert response.status_code == 200
        assert response.body == DATA

    def test_a_range_of_a_growing_entry(self, writing, image):
        app, path = writing
        thread = self.later(
            lambda: open(path, 'ab').write(DATA[len(DATA) // 2 :])  # noqa: SIM115
        )
        response = get(app, image['id'], Range='bytes=100-')
        thread.join()
        assert response.status_code == 206
        assert response.body == DATA[100:]

    @staticmethod
    def body(app, image) -> bytes:
        """The body as sent, however short (the server then closes)."""
        request = webob.Request.blank('/v2/images/%s/file' % image['id'])
        request.headers['X-Auth-Token'] = fakes.GOOD_TOKEN
        status, _headers, app_iter = request.call_application(app)
        assert status.startswith('200')
        try:
            return b''.join(app_iter)
        finally:
            app_iter.close()

    def test_a_download_that_fails_ends_the_answer_early(
        self, writing, image, config
    ):
        app, path = writing
        thread = self.later(lambda: os.unlink(path))
        body = self.body(app, image)
        thread.join()
        assert body == DATA[: len(DATA) // 2]

    def test_a_stalled_download_ends_the_answer(self, writing, image, config):
        config.config(timeout=0.3, group='peers')
        app, _ = writing
        started = time.monotonic()
        assert len(self.body(app, image)) == len(DATA) // 2
        assert time.monotonic() - started < 5

    def test_nothing_without_glances_word(self, writing, image):
        app, _ = writing
        response = get(app, image['id'], token=fakes.DEACTIVATED_TOKEN)
        assert response.status_code == 403
        assert DATA[:64] not in response.body
