"""The download engine end to end: resume, sharing, reuse, odd streams.

Real agents over RabbitMQ, talking to the real Glance servers through
``relay.Relay``: a relay counts the image bytes each server really sent
(and can slow them down, or re-frame them as a chunked stream of unknown
size), so the tests check bytes on the wire, not only outcomes.
"""

import contextlib
import hashlib
import io
import os
import subprocess
import uuid

import pytest

from image_agent import exception
from tests.functional.background import Background
from tests.functional.background import wait_until
from tools.testenv import databases
from tools.testenv.deployment import DEFAULT_STATE_DIR
from tools.testenv.relay import Relay

MiB = 1024 * 1024
BIG = os.urandom(24 * MiB)
SMALL = os.urandom(6 * MiB + 5)


def read(path):
    with open(path, 'rb') as f:
        return f.read()


@pytest.fixture(scope='module')
def relayed(deployment, agent_factory):
    """An agent whose only Glance is behind a relay at 24 MiB/s."""
    relay = Relay.to(deployment.glance_urls[0], rate=24 * MiB)
    agent = agent_factory(glance_urls=[relay.url])
    yield relay, agent
    relay.close()


def forget_multihash(deployment, image_id):
    """Leave only the md5 checksum in Glance's record of an image."""
    name = databases.names(deployment.state_dir, DEFAULT_STATE_DIR)['glance']
    done = subprocess.run(
        ['psql', '-q', '-h', '127.0.0.1', '-U', 'root', '-d', name]
        + ['-v', 'id=%s' % image_id],
        input='UPDATE images SET os_hash_algo = NULL, os_hash_value = NULL '
        "WHERE id = :'id';\n",
        env=dict(os.environ, PGOPTIONS=''),
        check=True,
        capture_output=True,
        text=True,
    )
    assert 'ERROR' not in done.stderr, done.stderr


# -- resume ------------------------------------------------------------------


@contextlib.contextmanager
def serving_glance_killed(deployment, agent_factory, api, ctxt, image, after):
    """Download ``image`` through a relay before each Glance server and
    SIGKILL the server streaming it once ``after`` bytes passed: yields
    the finished call, the other server's relay, every relay and the path.
    The server is started again and the relays closed afterwards."""
    relays = [Relay.to(url, rate=16 * MiB) for url in deployment.glance_urls]
    agent = agent_factory(glance_urls=[r.url for r in relays])
    path = os.path.join(agent.root, 'resumed-%s' % image['id'][:8])
    call = Background(
        lambda: api.download(ctxt, image['id'], path, host=agent.host)
    )
    wait_until(
        lambda: sum(r.file_bytes for r in relays) >= after,
        what='%d bytes of the image' % after,
    )
    serving = next(i for i, r in enumerate(relays) if r.file_bytes)
    deployment.kill_glance(serving)
    try:
        yield call.join(), relays[1 - serving], relays, path
    finally:
        deployment.start_glance(serving)
        for relay in relays:
            relay.close()


def test_a_glance_killed_half_way_is_resumed_on_the_other_one(
    deployment,
    agent_factory,
    api,
    demo_context,
    images,
):
    image = images(demo_context, data=io.BytesIO(BIG))
    with serving_glance_killed(
        deployment, agent_factory, api, demo_context, image, len(BIG) // 2
    ) as (call, other, relays, path):
        assert call.error is None, call.error
        assert call.result['size'] == len(BIG)
        assert read(path) == BIG
        [resumed] = other.file_requests
        assert resumed.header('Range').startswith('bytes=')
        # Only the compared overlap (64 KiB) was sent twice.
        fetched = sum(r.file_bytes for r in relays)
        assert len(BIG) <= fetched <= len(BIG) + MiB


def test_an_image_without_hash_resumes_without_a_range(
    deployment,
    agent_factory,
    api,
    demo_context,
    images,
    image_service,
):
    """An http-store image: Glance refuses ranges for it, and no hash could
    prove that a ranged answer fits; the start is fetched again."""
    name = 'nohash-%s.raw' % uuid.uuid4().hex[:8]
    with open(os.path.join(deployment.fileserver_dir, name), 'wb') as f:
        f.write(BIG)
    made = images(demo_context)
    image_service.add_location(
        demo_context,
        made['id'],
        '%s/%s' % (deployment.fileserver_url, name),
        {'origin': 'test'},
    )
    shown = api.show(demo_context, made['id'])
    assert (shown['checksum'], shown['os_hash_value']) == (None, None)
    with serving_glance_killed(
        deployment, agent_factory, api, demo_context, made, len(BIG) // 3
    ) as (call, other, _, path):
        assert call.error is None, call.error
        assert call.result['os_hash_algo'] is None
        assert read(path) == BIG
        [again] = other.file_requests
        assert again.header('Range') is None


# -- one transfer, or none ---------------------------------------------------


def _checks(relay, since: int) -> int:
    """Requests since the ``since``-th that only asked Glance for a
    caller's right (one byte of data each)."""
    return sum(
        request.header('Range') == 'bytes=0-0'
        for request in relay.file_requests[since:]
    )


def test_identical_concurrent_downloads_take_the_image_once(
    relayed,
    api,
    demo_context,
    images,
):
    relay, agent = relayed
    image = images(demo_context, data=io.BytesIO(SMALL))
    path = os.path.join(agent.root, 'shared-%s' % image['id'][:8])
    before, requests = relay.file_bytes, len(relay.file_requests)
    calls = [
        Background(
            lambda: api.download(
                demo_context, image['id'], path, host=agent.host
            )
        )
        for _ in range(2)
    ]
    for call in calls:
        call.join()
        assert call.error is None, call.error
    assert read(path) == SMALL
    # The image once; the second caller was checked by Glance (one byte).
    checks = _checks(relay, requests)
    assert checks == 1
    assert len(SMALL) <= relay.file_bytes - before <= len(SMALL) + checks


def test_a_verified_file_in_place_is_reused_without_its_bytes(
    relayed,
    api,
    demo_context,
    images,
):
    relay, agent = relayed
    image = images(demo_context, data=io.BytesIO(SMALL))
    path = os.path.join(agent.root, 'reused-%s' % image['id'][:8])
    first = api.download(demo_context, image['id'], path, host=agent.host)
    assert first['reused'] is False
    before, requests = relay.file_bytes, len(relay.file_requests)
    again = api.download(demo_context, image['id'], path, host=agent.host)
    assert again['reused'] is True
    # Glance was asked for the caller's right only.
    assert _checks(relay, requests) == len(relay.file_requests) - requests
    assert _checks(relay, requests) == 1
    assert relay.file_bytes - before <= 1


# -- streams and images of every kind ----------------------------------------


def test_a_stream_of_unknown_size_is_downloaded_verified(
    deployment,
    agent_factory,
    api,
    demo_context,
    images,
):
    relay = Relay.to(deployment.glance_urls[0], chunked=True)
    try:
        agent = agent_factory(glance_urls=[relay.url])
        image = images(demo_context, data=io.BytesIO(SMALL))
        path = os.path.join(agent.root, 'chunked')
        result = api.download(demo_context, image['id'], path, host=agent.host)
        assert result['os_hash_value'] == hashlib.sha512(SMALL).hexdigest()
        assert read(path) == SMALL
        [answer] = [h for h in relay.answer_heads if b'octet-stream' in h]
        assert b'Transfer-Encoding: chunked' in answer
        assert b'Content-Length' not in answer
    finally:
        relay.close()


def test_an_image_with_only_an_md5_checksum_is_verified_with_it(
    relayed,
    deployment,
    api,
    demo_context,
    images,
):
    """As images uploaded before Glance had multihash."""
    _, agent = relayed
    image = images(demo_context, data=io.BytesIO(SMALL))
    forget_multihash(deployment, image['id'])
    path = os.path.join(agent.root, 'md5-%s' % image['id'][:8])
    result = api.download(demo_context, image['id'], path, host=agent.host)
    md5 = hashlib.md5(SMALL, usedforsecurity=False).hexdigest()
    assert (result['os_hash_algo'], result['os_hash_value']) == ('md5', md5)
    assert read(path) == SMALL

    stored = os.path.join(deployment.store_dirs['fast'], image['id'])
    with open(stored, 'r+b') as f:
        f.seek(1000)
        f.write(bytes([SMALL[1000] ^ 0xFF]))
    with pytest.raises(exception.ImageChecksumMismatch) as info:
        api.download(demo_context, image['id'], path + '.2', host=agent.host)
    assert 'its md5 is' in info.value.msg
    assert not os.path.exists(path + '.2')
