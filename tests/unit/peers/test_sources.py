"""Peers in the list of sources: after the local ones, before Glance;
only once Glance said the caller may have the image; bytes that fail the
hash thrown away for Glance's."""

import io
import os

import pytest

from image_agent import cache as cache_mod
from image_agent import exception
from image_agent import transfers
from image_agent.data import sources
from image_agent.image import glance as glance_mod
from tests.unit.glance_http import Answer
from tests.unit.transfers.helpers import checks
from tests.unit.transfers.helpers import image_bytes

DATA = os.urandom(3 * 1000)


class Stream:
    """A peers stream that gives ``data`` (what ``PeersThenGlance`` is)."""

    def __init__(self, data: bytes) -> None:
        self._body = io.BytesIO(data)
        self.fetched = 0
        self.resumes = 0

    def readinto(self, view) -> int:
        return self._body.readinto(view)

    def close(self) -> None:
        pass


class Peers:
    """Peers that have ``data`` for the image (or nothing to offer)."""

    def __init__(self, data: bytes | None) -> None:
        self.data = data
        self.opened = 0
        self.rejected_with: list[BaseException] = []
        self.rejected_hosts: list[str] = []

    def open(self, context, image, glance_at):
        self.opened += 1
        return None if self.data is None else Stream(self.data)

    def rejected(self, stream, error):
        self.rejected_with.append(error)
        self.rejected_hosts.append('peer-1')


@pytest.fixture
def xfers(glance, glance_http, root):
    return transfers.Transfers(
        glance_mod.GlanceImageService(),
        [str(root)],
        None,
        cache=cache_mod.ImageCache(str(root / 'cache')),
    )


def precache(xfers, monkeypatch, ctx, image, peers):
    monkeypatch.setattr(
        transfers.peer_fetcher, 'Peers', lambda fetcher, hosts: peers
    )
    xfers.peers = object()  # [peers] enabled
    return xfers.precache(ctx, image['id'], peers=['peer-1'])


def cached(xfers, image) -> bytes:
    with open(xfers.cache.lookup(image).path, 'rb') as f:
        return f.read()


def test_peers_come_before_glance():
    order = [s.__name__ for s in sources.SOURCES]
    assert order.index('peer_agents') == order.index('glance') - 1
    assert order.index('peer_agents') > order.index('file_location')


def test_bytes_from_peers_fill_the_cache(
    xfers, glance, glance_http, ctx, monkeypatch
):
    image = glance.add_image(data=DATA)
    peers = Peers(DATA)
    result = precache(xfers, monkeypatch, ctx, image, peers)
    assert result['status'] == 'cached' and result['source'] == 'peers'
    assert result['fetched'] == 0 and image_bytes(glance_http) == 0
    # Glance's word for the caller first, as for every other source.
    assert len(checks(glance_http)) == 1
    assert cached(xfers, image) == DATA


def test_altered_bytes_are_thrown_away_for_glance(
    xfers, glance, glance_http, ctx, monkeypatch
):
    image = glance.add_image(data=DATA)
    peers = Peers(DATA[:-1] + b'\0')
    result = precache(xfers, monkeypatch, ctx, image, peers)
    assert result['source'] == 'glance'
    assert result['fetched'] == len(DATA)
    assert len(peers.rejected_with) == 1
    assert isinstance(peers.rejected_with[0], exception.ImageChecksumMismatch)
    assert result['rejected_peers'] == ['peer-1']
    assert cached(xfers, image) == DATA


def test_no_peer_bytes_for_a_caller_glance_refuses(
    xfers, glance, glance_http, ctx, monkeypatch
):
    image = glance.add_image(data=DATA)
    peers = Peers(DATA)
    glance_http.add(Answer(status=403))
    with pytest.raises(exception.ImageNotAuthorized):
        precache(xfers, monkeypatch, ctx, image, peers)
    assert peers.opened == 0
    assert xfers.cache.lookup(image) is None


def test_without_peers_that_answer_glance_gives_it(
    xfers, glance, glance_http, ctx, monkeypatch
):
    image = glance.add_image(data=DATA)
    result = precache(xfers, monkeypatch, ctx, image, Peers(None))
    assert result['source'] == 'glance'


def test_peers_are_ignored_when_they_are_off(xfers, glance, ctx):
    image = glance.add_image(data=DATA)
    result = xfers.precache(ctx, image['id'], peers=['peer-1'])
    assert result['source'] == 'glance'
