"""Agents fetching image bytes from each other ([peers] enabled).

Real agents on the machine's RabbitMQ, the suite's own Keystone and Glance,
Glance reached through a relay that counts the image bytes it serves:

* 80: a pre-cache on three hosts takes one copy from Glance, the rest from
  peers, every cache entry matching Glance's hash;
* 81: a peer whose cache entry was altered on disk sends wrong bytes: they
  are thrown away, the image comes from Glance, the peer is not asked again;
* 82: a peer killed mid-transfer: the transfer resumes on the next peer;
* 83: the peer server gives nothing without a token Glance accepts for the
  image now (none, forged, another project's, a deactivated image), and a
  peer "host" that is a URL is never connected to;
* 84: agents with TLS on their peer port exchange an image over HTTPS,
  verified with [peers] tls_ca_file; plain HTTP gets nothing.
"""

from __future__ import annotations

import io
import os
import socket
import threading
import uuid

import pytest
import requests

from image_agent import cache as image_cache
from tests import certs
from tests.faults import helpers
from tests.faults.helpers import MiB
from tools.testenv.relay import Relay
from tools.testenv.util import free_port

pytestmark = pytest.mark.slow

SIZE = 24 * MiB


@pytest.fixture
def relay(deployment):
    """Glance behind a relay that counts the image bytes it serves."""
    relay = Relay.to(deployment.glance_urls[0])
    yield relay
    relay.close()


@pytest.fixture
def peer_agent(agent_factory, agents_dir, relay):
    """peer_agent(**peers_options): an agent with a cache and peers on."""
    run = uuid.uuid4().hex[:6]

    def make(name: str, **peers):
        host = 'p2p-%s-%s' % (run, name)
        options = {
            'agent': {
                'cache_dir': os.path.join(agents_dir, host, 'root', 'cache')
            },
            'peers': {'enabled': 'true', 'listen_port': '0', **peers},
        }
        return agent_factory(host, glance_urls=[relay.url], options=options)

    return make


@pytest.fixture
def image_data():
    return os.urandom(SIZE)


@pytest.fixture
def image(images, admin_context, image_data):
    """An image of ``image_data``, in Glance."""
    return images(admin_context, data=io.BytesIO(image_data))


@pytest.fixture
def precache(api, admin_context, image):
    """precache(agent, peers=None): ``image`` cached by ``agent``, asking
    ``peers`` first; the outcome."""

    def run(agent, peers=None):
        return api.precache_host(
            admin_context, [image['id']], agent.host, peers=peers
        )[image['id']]

    return run


def entry_path(agent, image: dict) -> str:
    return os.path.join(
        agent.root, 'cache', image_cache.entry_name(image) or ''
    )


def assert_verified(agent, image: dict) -> None:
    path = entry_path(agent, image)
    assert helpers.file_sha512(path) == image['os_hash_value'], path


@pytest.mark.scenario('80. Peers: pre-cache spread among agents')
@pytest.mark.test_timeout(300)
def test_precache_takes_one_copy_from_glance(
    row,
    api,
    relay,
    peer_agent,
    admin_context,
    image,
):
    agents = [peer_agent(name) for name in ('a', 'b', 'c')]
    hosts = [a.host for a in agents]
    before = relay.file_bytes
    result = api.precache(admin_context, [image['id']], hosts, peer_fanout=2)
    glance_bytes = relay.file_bytes - before
    outcomes = {h: result[h][image['id']] for h in hosts}
    row.add(calls=1 + 2 * len(hosts))
    row.note(
        'Glance served %.2f image sizes to 3 hosts; sources %s'
        % (
            glance_bytes / SIZE,
            sorted(o.get('source') or '-' for o in outcomes.values()),
        )
    )
    bad = [h for h, o in outcomes.items() if o['status'] != 'cached']
    row.add(failures=len(bad))
    assert not bad, outcomes
    sources = sorted(o['source'] for o in outcomes.values())
    assert sources == ['glance', 'peers', 'peers'], outcomes
    for outcome in outcomes.values():
        if outcome['source'] == 'peers':
            assert outcome['fetched'] == 0
    # One copy, and the one-byte checks each agent makes with Glance.
    assert glance_bytes <= SIZE + 64, glance_bytes
    for agent in agents:
        assert_verified(agent, image)


@pytest.mark.scenario('81. Peers: a lying peer')
@pytest.mark.test_timeout(300)
def test_altered_bytes_from_a_peer_are_thrown_away(
    row,
    api,
    peer_agent,
    admin_context,
    image,
    precache,
):
    liar, honest = peer_agent('liar'), peer_agent('honest')
    precache(liar)
    path = entry_path(liar, image)
    with open(path, 'r+b') as f:  # root writes the 0400 entry all the same
        f.seek(SIZE // 2)
        f.write(b'\0' * 4096)
    row.add(faults=1)

    result = precache(honest, peers=[liar.host])
    row.add(calls=2)
    assert result['status'] == 'cached', result
    assert result['source'] == 'glance', result
    assert result['fetched'] == SIZE
    # The caller's placement is told, and names the liar no more.
    assert result['rejected_peers'] == [liar.host], result
    assert 'does not match the hash Glance recorded' in honest.log_text()
    assert_verified(honest, image)

    # The liar is avoided: asked again, the agent does not go to it.
    served = liar.log_text().count('Serving image %s' % image['id'])
    api.evict(admin_context, image['id'], honest.host)
    again = precache(honest, peers=[liar.host])
    row.add(calls=2)
    assert again['source'] == 'glance', again
    assert liar.log_text().count('Serving image %s' % image['id']) == served
    assert_verified(honest, image)


@pytest.mark.scenario('82. Peers: a peer killed mid-transfer')
@pytest.mark.test_timeout(300)
def test_a_peer_killed_mid_transfer_is_resumed_on_the_next(
    row,
    peer_agent,
    image,
    precache,
):
    port = free_port()
    # Its answers flow slowly, through a proxy it advertises.
    proxy = Relay(('127.0.0.1', port), rate=6 * MiB)
    try:
        dying = peer_agent(
            'dying', listen_port=str(port), advertise_port=str(proxy.port)
        )
        spare, fetcher = peer_agent('spare'), peer_agent('fetcher')
        for agent in (dying, spare):
            precache(agent)
        call = helpers.Background(
            lambda: precache(fetcher, peers=[dying.host, spare.host])
        )
        helpers.wait_until(
            lambda: proxy.answer_bytes > 4 * MiB, 60, 'the dying peer to send'
        )
        helpers.kill_agent(dying)
        row.add(faults=1, calls=3)
        call.join(120)
    finally:
        proxy.close()
    assert call.error is None, call.error
    outcome = call.result
    row.note(
        'killed after %.0f MiB; %s'
        % (
            proxy.answer_bytes / MiB,
            {k: outcome[k] for k in ('source', 'fetched')},
        )
    )
    assert outcome['status'] == 'cached', outcome
    assert outcome['source'] == 'peers', outcome
    assert outcome['fetched'] == 0  # not a byte from Glance
    assert 'broke off' in fetcher.log_text()
    assert_verified(fetcher, image)


def _peer_get(url: str, image_id: str, token: str | None):
    headers = {'X-Auth-Token': token} if token else {}
    return requests.get(
        '%s/v2/images/%s/file' % (url, image_id), headers=headers, timeout=30
    )


def _glance_action(deployment, context, image_id, action):
    response = requests.post(
        '%s/v2/images/%s/actions/%s'
        % (deployment.glance_urls[0], image_id, action),
        headers={'X-Auth-Token': context.auth_token},
        timeout=30,
    )
    assert response.status_code == 204, response.text


@pytest.mark.scenario('83. Peers: requests without proof are refused')
@pytest.mark.test_timeout(300)
def test_a_peer_serves_only_what_glance_grants(  # noqa: PLR0913
    row,
    api,
    deployment,
    peer_agent,
    images,
    admin_context,
    demo_context,
    alt_context,
    image_data,
):
    server = peer_agent('server')
    private = images(
        admin_context, data=io.BytesIO(image_data), visibility='private'
    )
    public = images(
        admin_context, data=io.BytesIO(image_data[::-1]), visibility='public'
    )
    api.precache_host(
        admin_context, [private['id'], public['id']], server.host
    )
    url = api.ping(admin_context, host=server.host)['peer_url']

    # The control: a token Glance accepts gets the bytes.
    assert _peer_get(url, private['id'], admin_context.auth_token).content == (
        image_data
    )
    _glance_action(deployment, admin_context, public['id'], 'deactivate')
    try:
        refusals = {
            'no token': (_peer_get(url, private['id'], None), 401),
            'forged token': (
                _peer_get(url, private['id'], 'gAAAAAB' + 'x' * 180),
                401,
            ),
            "another project's private image": (
                _peer_get(url, private['id'], alt_context.auth_token),
                404,
            ),
            'a deactivated image': (
                _peer_get(url, public['id'], demo_context.auth_token),
                403,
            ),
        }
    finally:
        _glance_action(deployment, admin_context, public['id'], 'reactivate')
    row.add(calls=5 + len(refusals), faults=len(refusals))
    for what, (response, status) in refusals.items():
        leaked = image_data[:4096] in response.content or (
            image_data[::-1][:4096] in response.content
        )
        if leaked or response.status_code != status:
            row.add(failures=1, bytes_lost=len(response.content))
        assert not leaked, what
        assert response.status_code == status, (what, response.status_code)

    # A peer named by a URL is a host name to ping, never an address.
    listener = socket.create_server(('127.0.0.1', 0))
    listener.settimeout(0.5)
    connected = threading.Event()

    def watch():
        try:
            listener.accept()[0].close()
            connected.set()
        except OSError:
            pass

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    bait = 'http://127.0.0.1:%d' % listener.getsockname()[1]
    fetcher = peer_agent('ssrf')
    outcome = api.precache_host(
        admin_context, [private['id']], fetcher.host, peers=[bait]
    )[private['id']]
    watcher.join(2)
    listener.close()
    row.add(calls=1, faults=1)
    assert outcome['source'] == 'glance', outcome
    assert not connected.is_set()


@pytest.mark.scenario('84. Peers: TLS between agents')
@pytest.mark.test_timeout(300)
def test_agents_exchange_images_over_tls(
    row,
    api,
    peer_agent,
    admin_context,
    image,
    precache,
    tmp_path,
):
    cert, key = certs.self_signed(tmp_path)
    tls = {'tls_cert_file': cert, 'tls_key_file': key, 'tls_ca_file': cert}
    server, fetcher = peer_agent('tls-a', **tls), peer_agent('tls-b', **tls)
    precache(server)
    url = api.ping(admin_context, host=server.host)['peer_url']
    outcome = precache(fetcher, peers=[server.host])
    row.add(calls=3)
    assert url.startswith('https://'), url
    assert outcome['source'] == 'peers', outcome
    assert outcome['fetched'] == 0
    assert_verified(fetcher, image)
    # Plain HTTP gets no answer from the TLS port.
    with pytest.raises(requests.exceptions.ConnectionError):
        _peer_get(
            url.replace('https://', 'http://'),
            image['id'],
            admin_context.auth_token,
        )
    row.add(calls=1, faults=1)
