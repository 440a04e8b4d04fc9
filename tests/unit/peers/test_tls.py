"""With a certificate and key the peer server speaks HTTPS only, and the
fetching side verifies it with [peers] tls_ca_file."""

import io
import os

import pytest
import requests

from image_agent import conf
from image_agent import context as context_mod
from image_agent.data import pipeline
from image_agent.data import verify
from image_agent.peers import fetcher
from image_agent.peers import server
from image_agent.peers import source as peer_source
from tests import certs
from tests.unit.peers import fakes

DATA = os.urandom(2 * 1024 * 1024 + 1)


@pytest.fixture
def tls_peer(config, tmp_path):
    cert, key = certs.self_signed(tmp_path)
    config.config(
        listen_port=0,
        tls_cert_file=cert,
        tls_key_file=key,
        group='peers',
    )
    image = fakes.make_image(DATA)
    cache = fakes.cached(tmp_path / 'cache', image, DATA)
    app = server.PeerApp(fakes.Images(image), cache, fakes.validator())
    peer_server = server.PeerServer(conf.CONF, app)
    url = peer_server.start()
    yield url, image, cert
    peer_server.stop()


def test_the_url_is_https(tls_peer):
    url, _, _ = tls_peer
    assert url.startswith('https://127.0.0.1:')


def test_plain_http_gets_nothing(tls_peer):
    url, image, _ = tls_peer
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(
            url.replace('https', 'http') + '/v2/images/%s/file' % image['id'],
            headers={'X-Auth-Token': fakes.GOOD_TOKEN},
            timeout=5,
        )


def read(url, image, glance_at=None) -> bytes:
    peers = fetcher.PeerFetcher(conf.CONF, api=None)
    stream = peer_source.PeersThenGlance(
        peer_source.PeerSource(
            context_mod.RequestContext(auth_token=fakes.GOOD_TOKEN),
            image,
            [url],
            peers._session,
        ),
        glance_at or (lambda offset: pytest.fail('Glance asked')),
    )
    out = io.BytesIO()
    pipeline.copy_verified(stream, verify.ImageHasher(image), out.write)
    return out.getvalue()


def test_a_peer_verified_with_the_ca_gives_the_image(config, tls_peer):
    url, image, cert = tls_peer
    config.config(tls_ca_file=cert, group='peers')
    assert read(url, image) == DATA


def test_an_unverified_peer_is_not_used(tls_peer):
    url, image, _ = tls_peer
    asked = []

    def glance_at(offset):
        asked.append(offset)
        raise RuntimeError('stop here')

    with pytest.raises(RuntimeError):
        read(url, image, glance_at)
    assert asked == [0]
