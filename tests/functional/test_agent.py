"""The agent end to end: real agents, real RabbitMQ, Keystone and Glance.

Every call goes through ``image_agent.rpcapi.ImageAgentAPI`` over the
machine's RabbitMQ to an ``image-agent`` process, which acts towards Glance
with the caller's own token.
"""

import hashlib
import io
import json
import os
import stat
import time
import uuid

import kombu
import oslo_messaging as messaging
import pytest

from image_agent import context as ia_context
from image_agent import exception
from image_agent import paths

DATA = os.urandom(3 * 1024 * 1024 + 17)
MISSING = '6f1d8c1e-0000-4000-8000-000000000000'


@pytest.fixture(scope='module')
def notification_topic():
    return 'ia-notifications-%s' % uuid.uuid4().hex[:8]


@pytest.fixture(scope='module')
def agent_b(agent_factory, notification_topic):
    """A second agent on the same topic, sending notifications."""
    return agent_factory(
        'agent-b',
        options={
            'oslo_messaging_notifications': {
                'driver': 'messaging',
                'topics': notification_topic,
            }
        },
    )


@pytest.fixture
def image(images, demo_context):
    return images(demo_context, data=io.BytesIO(DATA))


@pytest.fixture
def outside(agents_dir):
    path = os.path.join(agents_dir, 'outside-%s' % uuid.uuid4().hex[:6])
    os.makedirs(path)
    return path


def snapshot(*roots):
    """Every file under ``roots`` with its size: to see nothing changed."""
    found = {}
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                found[path] = os.lstat(path).st_size
    return found


def temp_files(root):
    return [
        p for p in snapshot(root) if paths.is_temp_name(os.path.basename(p))
    ]


# -- every operation ----------------------------------------------------------


def test_ping_names_the_agent(api, agent, demo_context):
    status = api.ping(demo_context, host=agent.host)
    assert status['host'] == agent.host
    assert status['version'] == '1.4'
    assert status['transfers'] == []
    assert status['uptime'] > 0


def test_show_detail_members_and_stores(
    api,
    agent,
    demo_context,
    image,
):
    shown = api.show(demo_context, image['id'], host=agent.host)
    assert shown['id'] == image['id']
    assert shown['size'] == len(DATA)
    assert shown['os_hash_value'] == hashlib.sha512(DATA).hexdigest()
    # Datetimes arrive as ISO 8601 strings with a time zone.
    assert '+00:00' in shown['created_at'] or shown['created_at'].endswith('Z')

    listed = api.detail(demo_context, filters={'name': image['name']})
    assert [i['id'] for i in listed] == [image['id']]

    assert api.list_members(demo_context, image['id']) == []
    stores = {s['id']: s for s in api.get_stores(demo_context)}
    assert {'fast', 'cheap'} <= set(stores)
    assert stores['fast']['default'] is True


def test_download_writes_a_verified_file(
    api,
    agent,
    demo_context,
    image,
):
    os.makedirs(os.path.join(agent.root, 'sub'), exist_ok=True)
    path = os.path.join(agent.root, 'sub', 'disk-%s.raw' % image['id'][:8])
    result = api.download(demo_context, image['id'], path, host=agent.host)
    assert result == {
        'path': path,
        'size': len(DATA),
        'os_hash_algo': 'sha512',
        'os_hash_value': hashlib.sha512(DATA).hexdigest(),
        'reused': False,
        'source': 'glance',
        'fetched': len(DATA),
        # The agent's inspection: random bytes are no known format.
        'disk_format_detected': 'raw',
        'virtual_size': len(DATA),
        'converted_from': None,
    }
    with open(path, 'rb') as f:
        assert f.read() == DATA
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    again = api.download(demo_context, image['id'], path, host=agent.host)
    assert again['reused'] is True

    with open(path, 'wb') as f:
        f.write(b'something else')
    with pytest.raises(exception.DestinationExists):
        api.download(demo_context, image['id'], path, host=agent.host)
    replaced = api.download(
        demo_context, image['id'], path, host=agent.host, overwrite=True
    )
    assert replaced['reused'] is False
    with open(path, 'rb') as f:
        assert f.read() == DATA
    assert temp_files(agent.root) == []


def test_create_update_and_delete_from_local_files(
    api,
    agent,
    demo_context,
    image_service,
    admin_context,
):
    source = os.path.join(agent.root, 'upload-%s.raw' % uuid.uuid4().hex[:6])
    with open(source, 'wb') as f:
        f.write(DATA)
    meta = {
        'name': 'agent-upload-%s' % uuid.uuid4().hex[:6],
        'disk_format': 'raw',
        'container_format': 'bare',
        'properties': {'origin': 'agent-test'},
    }
    created = api.create(demo_context, meta, path=source, host=agent.host)
    try:
        assert created['status'] == 'active'
        assert created['size'] == len(DATA)
        assert created['properties']['origin'] == 'agent-test'

        updated = api.update(
            demo_context,
            created['id'],
            {'name': meta['name'] + '-renamed', 'properties': {'k': 'v'}},
            purge_props=True,
        )
        assert updated['name'] == meta['name'] + '-renamed'
        assert updated['properties'].get('k') == 'v'
        assert 'origin' not in updated['properties']

        empty = api.create(demo_context, dict(meta, name=meta['name'] + '-2'))
        assert empty['status'] == 'queued'
        filled = api.update(
            demo_context,
            empty['id'],
            {},
            path=source,
            purge_props=False,
            host=agent.host,
        )
        assert filled['status'] == 'active'
        assert filled['size'] == len(DATA)
        assert api.delete(demo_context, empty['id']) is True
        with pytest.raises(exception.ImageNotFound):
            api.show(demo_context, empty['id'])
    finally:
        image_service.delete(admin_context, created['id'])


def test_uploads_from_outside_the_roots_are_refused(
    api,
    agent,
    demo_context,
    outside,
):
    secret = os.path.join(outside, 'secret')
    with open(secret, 'wb') as f:
        f.write(b'not for glance')
    meta = {
        'name': 'refused',
        'disk_format': 'raw',
        'container_format': 'bare',
    }
    for path in (secret, '/dev/zero', '/etc/hostname'):
        with pytest.raises(exception.PathNotAllowed):
            api.create(demo_context, meta, path=path, host=agent.host)
    with pytest.raises(exception.LocalFileNotFound):
        api.create(
            demo_context, meta, path=agent.root + '/missing', host=agent.host
        )
    named = api.detail(demo_context, filters={'name': 'refused'})
    assert named == []


def test_locations(
    api,
    agent,
    deployment,
    demo_context,
    images,
):
    name = 'agent-loc-%s.raw' % uuid.uuid4().hex[:8]
    with open(os.path.join(deployment.fileserver_dir, name), 'wb') as f:
        f.write(b'served over http')
    url = '%s/%s' % (deployment.fileserver_url, name)
    made = images(demo_context)
    image = api.add_location(
        demo_context, made['id'], url, {'origin': 'agent-test'}
    )
    assert image['id'] == made['id']
    direct_url, locations = api.get_location(demo_context, made['id'])
    assert [loc['url'] for loc in locations] == [url]
    assert locations[0]['metadata']['origin'] == 'agent-test'
    assert direct_url in (None, url)


# -- errors as the same classes ----------------------------------------------


def test_a_missing_image_raises_image_not_found_itself(
    api,
    agent,
    demo_context,
):
    with pytest.raises(exception.ImageNotFound) as info:
        api.show(demo_context, MISSING)
    assert not isinstance(info.value, messaging.RemoteError)
    assert info.value.msg == 'Image %s could not be found.' % MISSING
    with pytest.raises(exception.ImageNotFound):
        api.download(
            demo_context, MISSING, os.path.join(agent.root, 'missing')
        )
    assert not os.path.exists(os.path.join(agent.root, 'missing'))


def test_a_call_without_token_is_refused(api, agent):
    anonymous = ia_context.RequestContext(
        user_id='u', project_id='p', roles=['admin'], overwrite=False
    )
    with pytest.raises(exception.NotAuthorized):
        api.ping(anonymous, host=agent.host)


def test_another_projects_private_image_is_not_found(
    api,
    agent,
    alt_context,
    image,
):
    with pytest.raises(exception.ImageNotFound):
        api.download(
            alt_context, image['id'], os.path.join(agent.root, 'stolen')
        )
    assert not os.path.exists(os.path.join(agent.root, 'stolen'))


def test_altered_bytes_in_the_store_fail_verification(
    api,
    agent,
    deployment,
    demo_context,
    image,
):
    stored = os.path.join(deployment.store_dirs['fast'], image['id'])
    with open(stored, 'r+b') as f:
        f.seek(len(DATA) // 2)
        f.write(bytes([DATA[len(DATA) // 2] ^ 0xFF]))
    path = os.path.join(agent.root, 'tampered-%s' % image['id'][:8])
    with pytest.raises(exception.ImageChecksumMismatch):
        api.download(demo_context, image['id'], path, host=agent.host)
    assert not os.path.exists(path)
    assert temp_files(agent.root) == []


@pytest.mark.parametrize(
    'case',
    [
        'outside',
        'dotdot',
        'symlink-out',
        'existing',
        'directory',
        'dev-null',
        'device-in-root',
        'nul-byte',
        'long-name',
        'long-path',
        'relative',
    ],
)
def test_bad_paths_are_typed_errors_and_write_nothing(
    api,
    agent,
    demo_context,
    image,
    outside,
    case,
):
    root = agent.root
    work = os.path.join(root, 'bad-%s' % uuid.uuid4().hex[:6])
    os.makedirs(work)
    expected = exception.InvalidPath
    if case == 'outside':
        path, expected = os.path.join(outside, 'x'), exception.PathNotAllowed
    elif case == 'dotdot':
        path = work + '/../../' + os.path.basename(outside) + '/x'
    elif case == 'symlink-out':
        os.symlink(outside, os.path.join(work, 'link'))
        path, expected = work + '/link/x', exception.PathNotAllowed
    elif case == 'existing':
        path = os.path.join(work, 'existing')
        with open(path, 'wb') as f:
            f.write(b'keep me')
        expected = exception.DestinationExists
    elif case == 'directory':
        path = work
    elif case == 'dev-null':
        path, expected = '/dev/null', exception.PathNotAllowed
    elif case == 'device-in-root':
        path = os.path.join(work, 'null')
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    elif case == 'nul-byte':
        path = work + '/a\0b'
    elif case == 'long-name':
        path = os.path.join(work, 'n' * 300)
    elif case == 'long-path':
        path = work + ('/' + 'd' * 200) * 25
    else:
        path = 'relative/x'
    before = snapshot(root, outside)
    with pytest.raises(expected):
        api.download(demo_context, image['id'], path, host=agent.host)
    assert snapshot(root, outside) == before
    if case == 'existing':
        with open(path, 'rb') as f:
            assert f.read() == b'keep me'


# -- two agents on one topic -----------------------------------------------


def test_a_host_targeted_download_lands_on_that_agent(
    api,
    agent,
    agent_b,
    demo_context,
    image,
):
    path_b = os.path.join(agent_b.root, 'on-b-%s' % image['id'][:8])
    result = api.download(demo_context, image['id'], path_b, host='agent-b')
    assert result['path'] == path_b
    with open(path_b, 'rb') as f:
        assert f.read() == DATA
    # Agent a may not write under b's root: the host decided where it ran.
    other = os.path.join(agent_b.root, 'via-a')
    with pytest.raises(exception.PathNotAllowed):
        api.download(demo_context, image['id'], other, host='agent-a')
    assert not os.path.exists(other)


def test_calls_without_host_reach_every_agent_of_the_topic(
    api,
    agent,
    agent_b,
    demo_context,
):
    hosts = {api.ping(demo_context)['host'] for _ in range(8)}
    assert hosts == {agent.host, agent_b.host}


def test_downloads_send_notifications(
    api,
    agent_b,
    demo_context,
    image,
    rabbit_url,
    notification_topic,
):
    path = os.path.join(agent_b.root, 'notified-%s' % image['id'][:8])
    api.download(demo_context, image['id'], path, host=agent_b.host)
    bad = os.path.join(agent_b.root, 'notified-missing')
    with pytest.raises(exception.ImageNotFound):
        api.download(demo_context, MISSING, bad, host=agent_b.host)

    events = [
        e
        for e in collect_notifications(rabbit_url, notification_topic, path)
        if e['payload'].get('path') == path
    ]
    types = [e['event_type'] for e in events]
    assert types == ['image.download.start', 'image.download.end']
    end = events[1]
    assert end['publisher_id'] == 'image-agent.agent-b'
    assert end['payload']['image_id'] == image['id']
    assert end['payload']['bytes'] == len(DATA)
    assert end['payload']['duration'] >= 0
    assert demo_context.auth_token not in json.dumps(end)


def collect_notifications(url, topic_name, path, timeout=10):
    """Read (and delete) ``<topic>.info`` up to the end event of ``path``."""
    found = []
    queue_name = topic_name + '.info'
    deadline = time.monotonic() + timeout
    amqp_url = url.replace('rabbit://', 'amqp://', 1)
    with kombu.Connection(amqp_url) as conn:
        channel = conn.channel()
        queue = kombu.Queue(queue_name, channel=channel, no_declare=True)
        while time.monotonic() < deadline:
            message = queue.get(no_ack=True)
            if message is None:
                time.sleep(0.1)
                continue
            event = message.decode()
            if 'oslo.message' in event:  # the messagingv2 envelope
                event = json.loads(event['oslo.message'])
            found.append(event)
            if (
                event['event_type'] == 'image.download.end'
                and event['payload'].get('path') == path
            ):
                break
        channel.queue_delete(queue_name)
    return found
