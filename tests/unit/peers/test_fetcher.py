"""Fetching from peers: every byte checked against Glance's hash, liars
avoided, dead peers left for the next one or for Glance."""

import contextlib
import io
import os
import socket
import threading
import types

import pytest

from image_agent import conf
from image_agent import context as context_mod
from image_agent import exception
from image_agent.data import pipeline
from image_agent.data import verify
from image_agent.peers import fetcher
from image_agent.peers import server
from image_agent.peers import source as peer_source
from tests.unit.peers import fakes

DATA = os.urandom(6 * 1024 * 1024 + 5)


class GlanceRest:
    """Glance's answer from an offset on (what ``open_download`` gives)."""

    def __init__(self, data: bytes, start: int) -> None:
        self._body = io.BytesIO(data[start:])
        self.fetched = 0
        self.resumes = 0

    def readinto(self, view) -> int:
        count = self._body.readinto(view)
        self.fetched += count
        return count

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class Api:
    """Agents answering ``ping`` with their peer URL."""

    def __init__(self, urls: dict) -> None:
        self.urls = urls

    def ping(self, context, host=None):
        if host not in self.urls:
            raise exception.AgentNotListening(target=host, queue='q')
        return {'host': host, 'peer_url': self.urls[host]}


@pytest.fixture
def image():
    return fakes.make_image(DATA)


@pytest.fixture
def peer(config, tmp_path, image):
    """Start a peer server whose cache holds ``data`` for the image."""
    config.config(listen_port=0, group='peers')
    started = []

    def start(name: str, data: bytes = DATA) -> str:
        cache = fakes.cached(tmp_path / name, image, data)
        app = server.PeerApp(fakes.Images(image), cache, fakes.validator())
        peer_server = server.PeerServer(conf.CONF, app)
        started.append(peer_server)
        return peer_server.start()

    yield start
    for peer_server in started:
        peer_server.stop()


@pytest.fixture
def ctxt():
    return context_mod.RequestContext(auth_token=fakes.GOOD_TOKEN)


def copy(peers: fetcher.PeerFetcher, ctxt, image, urls):
    """What ``data.sources`` does with the peers: read, hash, write; on a
    hash mismatch tell the fetcher and raise."""
    out = io.BytesIO()
    glance = []

    def glance_at(offset):
        glance.append(offset)
        return GlanceRest(DATA, offset)

    stream = peer_source.PeersThenGlance(
        peer_source.PeerSource(ctxt, image, urls, peers._session), glance_at
    )
    try:
        pipeline.copy_verified(
            stream, verify.ImageHasher(image), lambda view: out.write(view)
        )
    except exception.ImageChecksumMismatch as e:
        peers.rejected(stream, e)
        raise
    outcome = types.SimpleNamespace(
        served=dict(stream.peers.served), fetched=stream.fetched
    )
    return out.getvalue(), outcome, glance


class TestCopy:
    def test_all_bytes_from_a_peer(self, peer, ctxt, image):
        url = peer('a')
        peers = fetcher.PeerFetcher(conf.CONF, Api({}))
        data, outcome, glance = copy(peers, ctxt, image, [url])
        assert data == DATA
        assert outcome.served == {url: len(DATA)}
        assert outcome.fetched == 0 and glance == []

    def test_a_dead_peer_is_skipped_for_the_next(self, peer, ctxt, image):
        url = peer('a')
        dead = 'http://127.0.0.1:9'
        peers = fetcher.PeerFetcher(conf.CONF, Api({}))
        data, outcome, glance = copy(peers, ctxt, image, [dead, url])
        assert data == DATA
        assert outcome.served == {url: len(DATA)}

    def test_without_a_peer_that_has_it_glance_gives_all(self, ctxt, image):
        peers = fetcher.PeerFetcher(conf.CONF, Api({}))
        data, outcome, glance = copy(
            peers, ctxt, image, ['http://127.0.0.1:9']
        )
        assert data == DATA
        assert glance == [0] and outcome.fetched == len(DATA)

    def test_a_peer_refusing_the_token_leaves_it_to_glance(self, peer, image):
        url = peer('a')
        refused = context_mod.RequestContext(auth_token='gAAAAAB-forged')
        peers = fetcher.PeerFetcher(conf.CONF, Api({}))
        data, outcome, glance = copy(peers, refused, image, [url])
        assert data == DATA and outcome.served == {}
        assert glance == [0]

    def test_a_lying_peer_is_caught_and_avoided(self, peer, ctxt, image):
        altered = bytearray(DATA)
        altered[len(DATA) // 2] ^= 0xFF
        liar = peer('liar', bytes(altered))
        peers = fetcher.PeerFetcher(conf.CONF, Api({'liar-host': liar}))
        with pytest.raises(exception.ImageChecksumMismatch):
            copy(peers, ctxt, image, [liar])
        assert peers.avoided(liar)
        assert peers.urls(ctxt, ['liar-host']) == {}

    def test_a_peer_that_dies_mid_transfer_is_resumed_from_glance(
        self, ctxt, image
    ):
        cut = 4 * 1024 * 1024 + 3
        with BreakingPeer(DATA, cut) as url:
            peers = fetcher.PeerFetcher(conf.CONF, Api({}))
            data, outcome, glance = copy(peers, ctxt, image, [url])
        assert data == DATA
        assert glance == [cut]
        assert outcome.served == {url: cut}
        assert outcome.fetched == len(DATA) - cut

    def test_the_next_peer_resumes_where_one_died(self, peer, ctxt, image):
        cut = 1024 * 1024
        good = peer('a')
        with BreakingPeer(DATA, cut) as dying:
            peers = fetcher.PeerFetcher(conf.CONF, Api({}))
            data, outcome, glance = copy(peers, ctxt, image, [dying, good])
        assert data == DATA and glance == []
        assert outcome.served == {dying: cut, good: len(DATA) - cut}


class BreakingPeer:
    """A peer that announces the whole image, sends ``cut`` bytes and
    closes the connection (killed mid-transfer)."""

    def __init__(self, data: bytes, cut: int) -> None:
        self._data = data
        self._cut = cut
        self._listener = socket.create_server(('127.0.0.1', 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        return 'http://127.0.0.1:%d' % self._listener.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self._listener.close()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self._listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n'
                    % len(self._data)
                )
                conn.sendall(self._data[: self._cut])


class TestUrls:
    def test_urls_come_from_the_peers_own_answers(self, ctxt):
        peers = fetcher.PeerFetcher(
            conf.CONF,
            Api({'a': 'http://a:1', 'b': 'http://b:2'}),
            own_url='http://b:2',
        )
        assert peers.urls(ctxt, ['a', 'missing', 'b']) == {'http://a:1': 'a'}

    def test_at_most_max_peers(self, config, ctxt):
        config.config(max_peers=2, group='peers')
        api = Api({h: 'http://%s:1' % h for h in 'abcd'})
        peers = fetcher.PeerFetcher(conf.CONF, api)
        assert len(peers.urls(ctxt, list('abcd'))) == 2
