"""The peer server serves a cached image only to a token Glance accepts."""

import os

import pytest
import webob

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
