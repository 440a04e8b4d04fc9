"""With a certificate and key the peer server speaks HTTPS only, and the
fetching side verifies it with [peers] tls_ca_file."""

import datetime
import io
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import pytest
import requests

from image_agent import conf
from image_agent import context as context_mod
from image_agent.data import pipeline
from image_agent.data import verify
from image_agent.peers import fetcher
from image_agent.peers import server
from image_agent.peers import source as peer_source
from tests.unit.peers import fakes

DATA = os.urandom(2 * 1024 * 1024 + 1)


def self_signed(directory) -> tuple[str, str]:
    """A certificate for 127.0.0.1 (its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'peer')])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / 'peer.crt', directory / 'peer.key'
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


@pytest.fixture
def tls_peer(config, tmp_path):
    cert, key = self_signed(tmp_path)
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
