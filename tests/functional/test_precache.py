"""Pre-caching on many hosts and the agents' image caches, end to end.

Six ``image-agent`` processes (own host names, roots and caches) on their
own RPC topic, against the real Keystone and Glance. Glance is reached
through a relay (``tools.testenv.relay``) that counts the bytes it sends,
so the tests see how many bytes each step took from Glance: pre-caching N
hosts costs N times the image size, a download after it costs none (only
the image's metadata, a few KiB, for the caller's right to it).
"""

import concurrent.futures
import io
import os
import time
import uuid

import pytest

from image_agent import rpcapi
from tools.testenv.relay import Relay

MiB = 1024 * 1024
SIZE = 2 * MiB
# What Glance sends besides image data for a call (show's JSON, headers).
METADATA_BYTES = 64 * 1024
HOSTS = ['pc-%d' % n for n in range(1, 7)]


@pytest.fixture(scope='module')
def proxy(deployment):
    proxy = Relay.to(deployment.glance_urls[0])
    yield proxy
    proxy.close()


@pytest.fixture(scope='module')
def pc_topic():
    return 'ia-precache-%s' % uuid.uuid4().hex[:8]


def start_agents(
    agent_factory, topic, proxy, hosts, extra='', **agent_options
):
    def start(host):
        agent = agent_factory(
            host, topic_=topic, glance_urls=[proxy.url], start=False
        )
        # The cache lies inside the download root, as it must.
        with open(agent.config_file, 'a') as f:
            f.write('[agent]\ncache_dir = %s\n' % os.path.join(
                agent.root, 'cache'))  # fmt: skip
            for key, value in agent_options.items():
                f.write('%s = %s\n' % (key, value))
            f.write(extra)
        return agent.start()

    with concurrent.futures.ThreadPoolExecutor(len(hosts)) as pool:
        return list(pool.map(start, hosts))


@pytest.fixture(scope='module')
def six_agents(agent_factory, pc_topic, proxy):
    return start_agents(agent_factory, pc_topic, proxy, HOSTS)


@pytest.fixture(scope='module')
def pc_api(transport, pc_topic):
    return rpcapi.ImageAgentAPI(
        transport=transport, topic=pc_topic, timeout=30
    )


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, context, event_type, payload, error=False):
        self.events.append((event_type, payload))


def test_precache_on_six_hosts_with_one_stopped(
    six_agents, pc_api, proxy, images, demo_context, admin_context
):
    """Pre-caching and the cache calls need the admin role (policy);
    downloads are the image owner's."""
    first = images(demo_context, data=io.BytesIO(os.urandom(SIZE)))
    second = images(demo_context, data=io.BytesIO(os.urandom(SIZE + 17)))
    ids = [first['id'], second['id']]
    stopped = six_agents[-1]
    stopped.stop()
    before = proxy.answer_bytes
    notes = Recorder()
    finished = []
    started = time.monotonic()
    result = pc_api.precache(
        admin_context,
        ids,
        HOSTS,
        ping_timeout=3,
        notifier=notes,
        progress=lambda host, *_: finished.append(host),
    )
    elapsed = time.monotonic() - started
    moved = proxy.answer_bytes - before
    for host in HOSTS[:-1]:
        assert {i: result[host][i]['status'] for i in ids} == dict.fromkeys(
            ids, 'cached'
        ), result[host]
        fetched = sum(result[host][i]['fetched'] for i in ids)
        assert fetched == 2 * SIZE + 17
    for image_id in ids:
        assert result[stopped.host][image_id]['status'] == 'skipped'
    assert sorted(finished) == sorted(HOSTS)
    # Five live hosts, each took both images from Glance, once.
    baseline = 5 * (2 * SIZE + 17)
    assert baseline <= moved <= baseline + 5 * METADATA_BYTES, moved
    types = [event for event, _ in notes.events]
    assert types == (
        ['image.precache.start']
        + ['image.precache.progress'] * 6
        + ['image.precache.end']
    )
    assert notes.events[-1][1]['summary'] == {'cached': 10, 'skipped': 2}
    print(
        '\nprecache of 2 images (%.1f MiB) on 5 live hosts + 1 stopped: '
        '%.2f s, %d bytes from Glance (%d per live host, %.4f x the images)'
        % ((2 * SIZE + 17) / MiB, elapsed, moved, moved // 5, moved / baseline)
    )

    # A download of a cached image is a local copy: no image bytes from
    # Glance, the hash checked all the same.
    agent = six_agents[0]
    before = proxy.answer_bytes
    path = os.path.join(agent.root, 'disk-%s' % uuid.uuid4().hex[:6])
    done = pc_api.download(demo_context, first['id'], path, host=agent.host)
    assert done['source'] == 'cache'
    assert done['fetched'] == 0
    assert proxy.answer_bytes - before < METADATA_BYTES
    print(
        'download of a pre-cached image: %d bytes from Glance (metadata)'
        % (proxy.answer_bytes - before)
    )
    assert os.path.getsize(path) == SIZE
    # Writing to the copy leaves the cache intact (it is not a hard link).
    listing = pc_api.list_cache(admin_context, agent.host)
    entry = next(e for e in listing['entries'] if e['image_id'] == first['id'])
    assert os.stat(path).st_ino != os.stat(entry['path']).st_ino

    # Pre-caching again finds the images in place.
    before = proxy.answer_bytes
    again = pc_api.precache(
        admin_context, ids, HOSTS[:-1], notifier=Recorder()
    )
    assert {r[i]['status'] for r in again.values() for i in ids} == {
        'existing'
    }
    assert proxy.answer_bytes - before < 5 * 2 * METADATA_BYTES


def test_the_cache_limit_evicts_the_least_recently_used(
    agent_factory, pc_topic, pc_api, proxy, images, demo_context, admin_context
):
    (agent,) = start_agents(
        agent_factory, pc_topic, proxy, ['pc-lru'], cache_max_size='5'
    )
    a, b, c = (
        images(demo_context, data=io.BytesIO(os.urandom(SIZE)))
        for _ in range(3)
    )
    for image in (a, b):
        pc_api.precache(admin_context, [image['id']], [agent.host])
    # Using a makes b the least recently used.
    pc_api.download(
        demo_context, a['id'], os.path.join(agent.root, 'a'), host=agent.host
    )
    result = pc_api.precache(admin_context, [c['id']], [agent.host])
    assert result[agent.host][c['id']]['status'] == 'cached'
    listing = pc_api.list_cache(admin_context, agent.host)
    assert {e['image_id'] for e in listing['entries']} == {a['id'], c['id']}
    assert listing['size'] <= 5 * MiB
    evicted = pc_api.evict(admin_context, a['id'], agent.host)
    assert [e['image_id'] for e in evicted['evicted']] == [a['id']]


def test_file_locations_are_copied_locally(
    agent_factory, pc_topic, pc_api, proxy, images, demo_context
):
    """Glance's file stores are readable here: with ``file`` allowed, the
    agent copies the store's file with the kernel, no bytes over HTTP."""
    (agent,) = start_agents(
        agent_factory,
        pc_topic,
        proxy,
        ['pc-local'],
        extra='[glance]\nallowed_direct_url_schemes = file\n',
    )
    image = images(demo_context, data=io.BytesIO(os.urandom(SIZE)))
    before = proxy.answer_bytes
    path = os.path.join(agent.root, 'disk')
    done = pc_api.download(demo_context, image['id'], path, host=agent.host)
    assert done['fetched'] == 0
    assert done['source'] == 'cache'  # filled from the file, then copied
    assert proxy.answer_bytes - before < METADATA_BYTES
